import { PayForwardConnectionError } from './errors.js';

export interface RetryOptions {
  /** Retries after the first try (default 3); 0 turns retrying off. */
  maxRetries?: number;
  /** The first backoff (default 500 ms); it doubles on each retry, with jitter. */
  baseDelayMs?: number;
  /** No backoff is longer than this (default 20 s); a 429's Retry-After is waited as asked, up to 60 s. */
  maxDelayMs?: number;
}

export interface TransportOptions extends RetryOptions {
  fetch: typeof fetch;
  /** Each try is abandoned (and retried) after this long; default 60 s. */
  timeoutMs: number;
  newIdempotencyKey: () => string;
}

/** A Retry-After longer than this is not waited for: the 429 is returned (as a PayForwardError). */
export const MAX_RETRY_AFTER_MS = 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Exponential backoff with "equal jitter": half the delay fixed, half random, so retrying clients spread out. */
export function backoff(attempt: number, baseDelayMs: number, maxDelayMs: number): number {
  const delay = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt);
  return delay / 2 + Math.random() * (delay / 2);
}

/** Retry-After in seconds or as an HTTP date, in milliseconds; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (header.trim() !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * How long to wait before retrying an answer, or undefined when it is final. Retrying is safe because every POST
 * carries an Idempotency-Key, the same on each try: the API answers a repeat with the first outcome, resumes a
 * request whose first try failed with a 5xx, and answers 409 `idempotency_key_in_use` while the first try still
 * runs.
 */
async function retryDelay(response: Response, attempt: number, options: Required<RetryOptions>) {
  const wait = () => backoff(attempt, options.baseDelayMs, options.maxDelayMs);
  if (response.status === 429) {
    // The server knows when its window reopens: wait exactly that, unless it is longer than a caller should be
    // held, when the 429 is the answer.
    const asked = retryAfterMs(response.headers.get('retry-after'));
    if (asked === undefined) return wait();
    return asked <= MAX_RETRY_AFTER_MS ? asked : undefined;
  }
  if (response.status === 409) {
    const body = (await response
      .clone()
      .json()
      .catch(() => null)) as { error?: { code?: string } } | null;
    return body?.error?.code === 'idempotency_key_in_use' ? wait() : undefined;
  }
  if (response.status >= 500 && response.status !== 501) return wait();
  return undefined;
}

/**
 * A fetch that gives every POST an Idempotency-Key (unless the caller set one) and retries network failures,
 * timeouts, 409 `idempotency_key_in_use`, 429 (after Retry-After) and 5xx answers with the same key.
 */
export function retryingFetch(options: TransportOptions): typeof fetch {
  const limits: Required<RetryOptions> = {
    maxRetries: options.maxRetries ?? 3,
    baseDelayMs: options.baseDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 20_000,
  };
  return async (input, init) => {
    const original = new Request(input, init);
    const headers = new Headers(original.headers);
    if (original.method === 'POST' && !headers.has('idempotency-key'))
      headers.set('idempotency-key', options.newIdempotencyKey());
    // Read once: a request body is a stream, spent by the first try.
    const body = original.body ? await original.arrayBuffer() : undefined;
    for (let attempt = 0; ; attempt++) {
      const signal = AbortSignal.any([original.signal, AbortSignal.timeout(options.timeoutMs)]);
      let response: Response;
      try {
        response = await options.fetch(new Request(original.url, { method: original.method, headers, body, signal }));
      } catch (error) {
        // The caller's own abort is final; anything else (reset, refused, timeout) may be retried.
        if (original.signal.aborted) throw error;
        if (attempt >= limits.maxRetries)
          throw new PayForwardConnectionError(
            `${original.method} ${new URL(original.url).pathname} got no answer after ${attempt + 1} tries: ` +
              `${(error as Error).message}`,
            error,
          );
        await sleep(backoff(attempt, limits.baseDelayMs, limits.maxDelayMs));
        continue;
      }
      const delay = attempt < limits.maxRetries ? await retryDelay(response, attempt, limits) : undefined;
      if (delay === undefined) return response;
      await response.body?.cancel();
      await sleep(delay);
    }
  };
}
