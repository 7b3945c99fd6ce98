import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, createTenant, type TestApp, type TestTenant } from './helpers.js';

// Requests refused before routing, sent over a real socket: app.inject skips Node's HTTP parser,
// which is what refuses most of them. Every answer is a 4xx carrying the error envelope.

let t: TestApp;
let tenant: TestTenant;
let port: number;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Client errors tenant');
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});
afterAll(() => t.close());

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Writes `request` as is and reads until the server closes the connection or one response is complete. */
function rawRequest(request: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const parse = (): RawResponse | undefined => {
      const text = received.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(
        lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      );
      const length = Number(headers['content-length']);
      const body = received.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
      if (!Number.isFinite(length) || body.length < length) return undefined;
      return { status: Number(statusLine.split(' ')[1]), headers, body: body.subarray(0, length).toString('utf8') };
    };
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const response = parse();
      if (response) {
        socket.destroy();
        resolve(response);
      }
    });
    // The server may close while we are still writing an oversized request: what it answered counts.
    socket.on('error', () => {});
    socket.on('close', () => {
      const response = parse();
      if (response) resolve(response);
      else reject(new Error(`connection closed without a complete response: ${JSON.stringify(received.toString())}`));
    });
    socket.write(request);
  });
}

function expectEnvelope(response: RawResponse, status: number, code: string) {
  expect(response.status, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const parsed = JSON.parse(response.body);
  expect(Object.keys(parsed)).toEqual(['error']);
  const { error } = parsed;
  expect(error.type).toBe('invalid_request_error');
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(0);
  expect(error.param).toBeNull();
  expect(error.request_id).toMatch(/^req_/);
  expect(error.request_id).toBe(response.headers['request-id']);
  return error as { message: string };
}

const auth = () => `Authorization: Bearer ${tenant.testKey}\r\n`;

describe('errors before routing, over a real socket', () => {
  it('a well-formed request still works through the same socket helper', async () => {
    const response = await rawRequest(`GET /v1/payments HTTP/1.1\r\nHost: x\r\n${auth()}Connection: close\r\n\r\n`);
    expect(response.status, response.body).toBe(200);
    expect(JSON.parse(response.body).object).toBe('list');
  });

  it('headers over the limit -> 431 in the envelope', async () => {
    const response = await rawRequest(
      `GET /v1/payments HTTP/1.1\r\nHost: x\r\n${auth()}X-Padding: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expectEnvelope(response, 431, 'request_header_fields_too_large');
  });

  it('many small headers over the limit -> 431 in the envelope', async () => {
    const headers = Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'b'.repeat(50)}\r\n`).join('');
    expectEnvelope(
      await rawRequest(`GET /v1/payments HTTP/1.1\r\nHost: x\r\n${headers}\r\n`),
      431,
      'request_header_fields_too_large',
    );
  });

  it('a URL over the limit -> 431 in the envelope, the URL not echoed', async () => {
    const response = await rawRequest(
      `GET /v1/payments?customer=${'4242424242424242'.repeat(1500)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    const error = expectEnvelope(response, 431, 'request_header_fields_too_large');
    expect(error.message).not.toContain('4242');
  });

  it('a path segment over the router limit -> 414 in the envelope', async () => {
    const response = await rawRequest(`GET /v1/payments/${'p'.repeat(3000)} HTTP/1.1\r\nHost: x\r\n${auth()}\r\n`);
    expectEnvelope(response, 414, 'url_too_long');
  });

  it.each(['/v1/payments/%zz', '/v1/payments/x%', '/v1/payments/%ED%A0%80', '/v1/pay%zzments'])(
    'bad percent-encoding %s -> 400 invalid_url',
    async (url) => {
      const error = expectEnvelope(
        await rawRequest(`GET ${url} HTTP/1.1\r\nHost: x\r\n${auth()}\r\n`),
        400,
        'invalid_url',
      );
      expect(error.message).not.toContain('%');
    },
  );

  it.each(['BREW', 'GARBAGE', 'get'])('an unknown method (%s) -> 405 in the envelope', async (method) => {
    const response = await rawRequest(`${method} /v1/payments HTTP/1.1\r\nHost: x\r\n${auth()}\r\n`);
    expectEnvelope(response, 405, 'method_not_allowed');
    expect(response.headers.allow).toBe('GET, POST');
  });

  it('CONNECT -> 405 in the envelope, not a dropped connection', async () => {
    const response = await rawRequest('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectEnvelope(response, 405, 'method_not_allowed');
  });

  it.each(['PROPFIND', 'TRACE', 'DELETE'])('a method we do not route (%s) -> 404 in the envelope', async (method) => {
    const response = await rawRequest(`${method} /v1/payments HTTP/1.1\r\nHost: x\r\n${auth()}\r\n`);
    expectEnvelope(response, 404, 'resource_missing');
  });

  it.each([
    ['a request line without a version', 'GET /v1/payments HTTP/1.1 extra\r\nHost: x\r\n\r\n'],
    ['an unknown HTTP version', 'GET /v1/payments HTTP/7.3\r\nHost: x\r\n\r\n'],
    ['a space in the URL', 'GET /v1/pay ments now HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a header name with a space', 'GET /v1/payments HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n'],
    ['a header line without a colon', 'GET /v1/payments HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n'],
    [
      'two different Content-Lengths',
      'POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
    ],
    ['a non-numeric Content-Length', 'POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}'],
    [
      'Content-Length with Transfer-Encoding',
      'POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    ['binary garbage', '\u0000\u0001\u0002\u0003\r\n\r\n'],
    ['a bare LF request line', 'GET /v1/payments HTTP/1.1\nHost: x\n\rX\n\n'],
  ])('a malformed request (%s) -> 400 in the envelope', async (_name, request) => {
    expectEnvelope(await rawRequest(request), 400, 'invalid_request');
  });

  it('the server still answers normally afterwards', async () => {
    const response = await rawRequest(`GET /v1/payments HTTP/1.1\r\nHost: x\r\n${auth()}Connection: close\r\n\r\n`);
    expect(response.status).toBe(200);
  });
});
