import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What the proxy does with one request: pass it on; cut the client's connection before forwarding it, while the
 * API is still working on it, or after the API answered (the answer is lost on the way back); or answer itself.
 */
export type Behaviour =
  | 'pass'
  | 'drop-before-forwarding'
  | 'drop-while-processing'
  | 'drop-after-answer'
  | { status: number; headers?: Record<string, string>; body: unknown };

export interface Seen {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  behaviour: Behaviour;
  /** The API's answer, when the request reached it and the proxy waited for it. */
  status?: number;
  replayed?: string | null;
  body?: string;
  at: number;
}

const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/** A small HTTP proxy in front of the API whose behaviour per request the test scripts, to break connections. */
export async function startDroppingProxy(upstream: string) {
  const plan: Behaviour[] = [];
  const seen: Seen[] = [];
  const inFlight = new Set<Promise<unknown>>();
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const behaviour = plan.shift() ?? 'pass';
    const record: Seen = {
      method: req.method!,
      path: req.url!,
      idempotencyKey: req.headers['idempotency-key'] as string | undefined,
      behaviour,
      at: Date.now(),
    };
    seen.push(record);
    if (behaviour === 'drop-before-forwarding') return void req.socket.destroy();
    if (typeof behaviour === 'object') {
      res.writeHead(behaviour.status, { 'content-type': 'application/json', ...behaviour.headers });
      return void res.end(JSON.stringify(behaviour.body));
    }
    const headers = Object.entries(req.headers).flatMap(([name, value]) =>
      HOP_BY_HOP.has(name) || value === undefined ? [] : [[name, String(value)] as [string, string]],
    );
    const forwarded = fetch(upstream + req.url, {
      method: req.method,
      headers,
      body: body.length ? body : undefined,
    }).then(async (response) => {
      const text = await response.text();
      Object.assign(record, {
        status: response.status,
        replayed: response.headers.get('idempotent-replayed'),
        body: text,
      });
      return { response, text };
    });
    inFlight.add(forwarded);
    void forwarded.finally(() => inFlight.delete(forwarded)).catch(() => {});
    if (behaviour === 'drop-while-processing') return void req.socket.destroy();
    const { response, text } = await forwarded;
    if (behaviour === 'drop-after-answer') return void req.socket.destroy();
    const answerHeaders = [...response.headers].filter(
      ([name]) => !HOP_BY_HOP.has(name) && name !== 'content-encoding',
    );
    res.writeHead(response.status, Object.fromEntries(answerHeaders));
    res.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    /** Behaviours for the next requests, in order; after them, every request passes. */
    plan(...behaviours: Behaviour[]) {
      plan.push(...behaviours);
    },
    seen,
    /** Waits for the requests the proxy forwarded and then cut off, so the API has finished with them. */
    async settled() {
      await Promise.allSettled([...inFlight]);
    },
    reset() {
      plan.length = 0;
      seen.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
