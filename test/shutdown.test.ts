import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from './helpers.js';
import { waitFor } from './process.js';

// A graceful shutdown over a real socket: app.inject never sees the server closing. A request held
// in flight keeps its kept-alive connection open past close(); a request pipelined on that
// connection then arrives while the server closes.

let t: TestApp;
let port: number;
let entered = false;
let release: () => void = () => {};
const released = new Promise<void>((resolve) => (release = resolve));

beforeAll(async () => {
  t = await bootApp({}, undefined, {
    extraRoutes: async (app) => {
      app.get('/test/held', { config: { auth: 'none' } }, async () => {
        entered = true;
        await released;
        return { finished: true };
      });
    },
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});
afterAll(async () => {
  release();
  await t.close();
});

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads HTTP/1.1 responses off `socket` in order, as they complete. */
function responseReader(socket: Socket) {
  let received = Buffer.alloc(0);
  let closed = false;
  socket.on('data', (chunk) => (received = Buffer.concat([received, chunk])));
  socket.on('close', () => (closed = true));
  const next = (): RawResponse | undefined => {
    const end = received.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
    const headers = Object.fromEntries(
      lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
    );
    const length = Number(headers['content-length']);
    if (!Number.isFinite(length) || received.length < end + 4 + length) return undefined;
    const body = received.subarray(end + 4, end + 4 + length).toString('utf8');
    received = received.subarray(end + 4 + length);
    return { status: Number(statusLine.split(' ')[1]), headers, body };
  };
  return { next, closed: () => closed };
}

describe('graceful shutdown', () => {
  it('a request arriving while the server closes gets 503 in the envelope; the one in flight still finishes', async () => {
    const serverSockets = new Map<number, Socket>();
    t.app.server.on('connection', (socket: Socket) => serverSockets.set(socket.remotePort!, socket));

    const held = connect(port, '127.0.0.1');
    held.on('error', () => {});
    const heldReader = responseReader(held);
    held.write('GET /test/held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await waitFor(() => entered, 20_000, 'the held request to reach its handler');

    // A kept-alive connection that has begun its next request when close() starts: close() ends
    // only idle connections, so this one stays open and its request completes during the close.
    const kept = connect(port, '127.0.0.1');
    kept.on('error', () => {});
    const keptReader = responseReader(kept);
    const first = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n';
    kept.write(first);
    const healthy = await waitFor(() => keptReader.next(), 20_000, 'the first response on the kept-alive connection');
    expect(healthy.status, healthy.body).toBe(200);
    // A key that does not exist: had authentication (or anything touching the database) run first, this would be 401.
    const begun = 'GET /v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk_test_does_not_exist\r\n';
    kept.write(begun);
    await waitFor(
      () => serverSockets.get(kept.localPort!)?.bytesRead === Buffer.byteLength(first + begun),
      20_000,
      'the server to read the begun request',
    );

    const closed = t.app.close();
    // close() stops listening after the preClose hooks, when it ends the idle connections.
    await waitFor(() => !t.app.server.listening, 20_000, 'the server to stop listening');
    kept.write('\r\n');

    const refused = await waitFor(() => keptReader.next(), 20_000, 'the answer to the request made while closing');
    expect(refused.status, refused.body).toBe(503);
    expect(refused.headers['content-type']).toMatch(/^application\/json/);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers.connection).toBe('close');
    const parsed = JSON.parse(refused.body);
    expect(Object.keys(parsed)).toEqual(['error']);
    expect(parsed.error).toEqual({
      type: 'api_error',
      code: 'shutting_down',
      message: expect.stringMatching(/shutting down/),
      param: null,
      request_id: expect.stringMatching(/^req_/),
    });
    expect(parsed.error.request_id).toBe(refused.headers['request-id']);
    await waitFor(() => keptReader.closed(), 20_000, 'the server to close the kept-alive connection');

    // The request in flight all along still finishes, and only then does close() complete.
    release();
    const finished = await waitFor(() => heldReader.next(), 20_000, 'the held response');
    expect(finished.status, finished.body).toBe(200);
    expect(JSON.parse(finished.body)).toEqual({ finished: true });
    expect(finished.headers.connection).toBe('close');
    await closed;
    await waitFor(() => heldReader.closed(), 20_000, 'the server to close the held connection');
  });
});
