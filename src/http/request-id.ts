import type { IncomingMessage } from 'node:http';
import { idTime, newId } from '../lib/ids.js';

/**
 * How far a proxy's request id may be from this process's clock: the two clocks differ by a little, an id made before
 * a request waited in a queue is a little old. Further out, it would list far from its request in the request logs.
 */
export const REQUEST_ID_SKEW_MS = 5 * 60_000;

/**
 * fastify's genReqId. Each request gets a new `req_…` id, unless `header` (REQUEST_ID_HEADER) is set: then an id the
 * proxy in front sent in that header is kept, so its logs and ours carry the same id. Kept only in our own format
 * (`req_`, then 24 characters of newId's alphabet) and within REQUEST_ID_SKEW_MS of now, because the id is more than a
 * label: it is the request log's key and its newest-first order (`/v1/request_logs` sorts by id, which must be a
 * time), and it is echoed in a response header. Anything else (another format, a time far off, a repeated header,
 * bytes of any kind) gets a fresh id, never an error: a bad id from the proxy must not cost the client its request.
 */
export function requestIdGenerator(header: string | undefined, now: () => number = Date.now) {
  const name = header?.toLowerCase();
  return (request: IncomingMessage): string => {
    const sent = name === undefined ? undefined : request.headers[name];
    if (typeof sent === 'string') {
      const time = idTime('req', sent);
      if (time !== undefined && Math.abs(time - now()) <= REQUEST_ID_SKEW_MS) return sent;
    }
    return newId('req');
  };
}
