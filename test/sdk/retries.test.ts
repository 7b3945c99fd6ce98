import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PayForward, PayForwardConnectionError, PayForwardError, type RequestBody } from '../../sdk/src/index.js';
import { bootApp, createTenant, TEST_CARDS, type TestApp, type TestTenant } from '../helpers.js';
import { freePort } from '../process.js';
import { startDroppingProxy } from './dropping-proxy.js';

// Every processor call takes this long, so a retry can arrive while the first try is still being worked on.
const PROCESSOR_LATENCY_MS = 400;

let t: TestApp;
let proxy: Awaited<ReturnType<typeof startDroppingProxy>>;
let tenant: TestTenant;

beforeAll(async () => {
  const port = await freePort();
  t = await bootApp({ PROCESSOR_LATENCY_MS: String(PROCESSOR_LATENCY_MS) });
  await t.app.listen({ port, host: '127.0.0.1' });
  proxy = await startDroppingProxy(`http://127.0.0.1:${port}`);
});
afterAll(async () => {
  await proxy?.close();
  await t?.close();
});
beforeEach(async () => {
  proxy.reset();
  // A tenant per test: "exactly one payment" is counted in it.
  tenant = await createTenant(t.app, 'SDK retries tenant');
});

const client = (retry = { maxRetries: 4, baseDelayMs: 20, maxDelayMs: 200 }) =>
  new PayForward({ apiKey: tenant.testKey, baseUrl: proxy.url, retry });

async function paymentsInDatabase() {
  const rows = await t.admin<{ id: string; idempotency_key: string | null }[]>`
    SELECT id, idempotency_key FROM payments WHERE tenant_id = ${tenant.id}`;
  return rows;
}

const createBody: RequestBody<'/v1/payments', 'post'> = {
  amount: 4200,
  currency: 'usd',
  payment_method: {
    type: 'card',
    card: { number: TEST_CARDS.visa, exp_month: 12, exp_year: new Date().getUTCFullYear() + 3, cvc: '123' },
  },
  confirm: true,
  description: 'retry me',
};

describe('SDK retries against a connection-dropping proxy', () => {
  it('an answer lost after the API made the payment: the retry, with the same key, returns it and no second one', async () => {
    proxy.plan('drop-after-answer');
    const payment = await client().payments.create(createBody);
    expect(payment).toMatchObject({ object: 'payment', status: 'succeeded', amount: 4200 });

    const posts = proxy.seen.filter((s) => s.method === 'POST');
    expect(posts).toHaveLength(2);
    expect(posts[0].idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    expect(posts[1].idempotencyKey).toBe(posts[0].idempotencyKey);
    // The first try's answer, which the SDK never saw, was the same payment; the retry got it replayed.
    expect(JSON.parse(posts[0].body!).id).toBe(payment.id);
    expect(posts[1].replayed).toBe('true');
    const rows = await paymentsInDatabase();
    expect(rows.map((r) => r.id)).toEqual([payment.id]);
    const listed = await client().payments.list({ limit: 10 });
    expect(listed.data.map((p) => p.id)).toEqual([payment.id]);
  });

  it('connections cut before the request reaches the API are retried until one gets through', async () => {
    proxy.plan('drop-before-forwarding', 'drop-before-forwarding');
    const payment = await client().payments.create(createBody);
    expect(payment.status).toBe('succeeded');
    const keys = proxy.seen.map((s) => s.idempotencyKey);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    expect((await paymentsInDatabase()).map((r) => r.id)).toEqual([payment.id]);
  });

  it('a retry while the first try is still running gets 409 idempotency_key_in_use, waits, and gets the one payment', async () => {
    proxy.plan('drop-while-processing');
    const payment = await client({ maxRetries: 10, baseDelayMs: 50, maxDelayMs: 200 }).payments.create(createBody);
    expect(payment.status).toBe('succeeded');
    await proxy.settled();
    const tries = proxy.seen.filter((s) => s.method === 'POST');
    expect(new Set(tries.map((s) => s.idempotencyKey)).size).toBe(1);
    const inUse = tries.filter((s) => s.status === 409 && JSON.parse(s.body!).error.code === 'idempotency_key_in_use');
    expect(inUse.length).toBeGreaterThan(0);
    expect(tries.at(-1)!.status).toBe(200);
    expect((await paymentsInDatabase()).map((r) => r.id)).toEqual([payment.id]);
  });

  it('keeps an Idempotency-Key of the caller across its retries', async () => {
    proxy.plan('drop-after-answer');
    const payment = await client().payments.create(createBody, { idempotencyKey: 'order-1234' });
    expect(proxy.seen.map((s) => s.idempotencyKey)).toEqual(['order-1234', 'order-1234']);
    const rows = await paymentsInDatabase();
    expect(rows).toHaveLength(1);
    expect(rows[0].id).toBe(payment.id);
  });

  it('gives up after maxRetries with a PayForwardConnectionError, and nothing was made', async () => {
    proxy.plan(...Array(3).fill('drop-before-forwarding'));
    const error = await client({ maxRetries: 2, baseDelayMs: 10, maxDelayMs: 50 })
      .payments.create(createBody)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayForwardConnectionError);
    expect(error).toMatchObject({ type: 'connection_error', status: 0 });
    expect((error as Error).message).toContain('after 3 tries');
    expect(proxy.seen).toHaveLength(3);
    expect(await paymentsInDatabase()).toEqual([]);
  });

  it('retries a 5xx with the same key', async () => {
    const unavailable = { type: 'api_error', code: 'service_unavailable', message: 'try again', param: null };
    proxy.plan({ status: 503, body: { error: unavailable } }, { status: 502, body: { error: unavailable } });
    const payment = await client().payments.create(createBody);
    expect(proxy.seen).toHaveLength(3);
    expect(new Set(proxy.seen.map((s) => s.idempotencyKey)).size).toBe(1);
    expect((await paymentsInDatabase()).map((r) => r.id)).toEqual([payment.id]);
  });

  it('honours Retry-After on 429 before retrying', async () => {
    const limited = { type: 'rate_limit_error', code: 'rate_limit', message: 'slow down', param: null };
    proxy.plan({ status: 429, headers: { 'retry-after': '1' }, body: { error: limited } });
    const started = Date.now();
    const customer = await client().customers.create({ email: 'limited@example.com' });
    expect(customer.object).toBe('customer');
    expect(proxy.seen).toHaveLength(2);
    // The SDK waited at least what the server asked for (its own backoff here would be 10-20 ms).
    expect(proxy.seen[1].at - proxy.seen[0].at).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('a 429 that lasts past the retries becomes a rate_limit_error; a 400 is never retried', async () => {
    const limited = { type: 'rate_limit_error', code: 'rate_limit', message: 'slow down', param: null };
    proxy.plan(...Array(3).fill({ status: 429, headers: { 'retry-after': '0' }, body: { error: limited } }));
    const error = await client({ maxRetries: 2, baseDelayMs: 10, maxDelayMs: 50 })
      .customers.create({})
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayForwardError);
    expect(error).toMatchObject({ type: 'rate_limit_error', status: 429 });
    expect(proxy.seen).toHaveLength(3);

    proxy.reset();
    const invalid = await client()
      .payments.create({ amount: -1, currency: 'usd' })
      .catch((e: unknown) => e);
    expect(invalid).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'amount' });
    expect(proxy.seen).toHaveLength(1);
  });

  it('a 409 for a key reused with another body is an idempotency_error, not retried', async () => {
    await client().customers.create({ email: 'a@example.com' }, { idempotencyKey: 'same-key' });
    proxy.reset();
    const error = await client()
      .customers.create({ email: 'b@example.com' }, { idempotencyKey: 'same-key' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 409, type: 'idempotency_error' });
    expect((error as PayForwardError).code).not.toBe('idempotency_key_in_use');
    expect(proxy.seen).toHaveLength(1);
  });
});
