import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootWithTenants,
  call,
  card,
  LIVE_CARD,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;

beforeAll(async () => {
  [t, a, b] = await bootWithTenants('Idempotency A', 'Idempotency B');
});
afterAll(() => t.close());

const withKey = (key: string) => ({ 'idempotency-key': key });
const body = (extra: Record<string, unknown> = {}) => ({
  amount: 1234,
  currency: 'usd',
  payment_method: card(TEST_CARDS.visa),
  confirm: true,
  ...extra,
});

/** Payments of a tenant carrying a given description, counted past row-level security. */
async function paymentCount(tenantId: string, description: string, livemode?: boolean) {
  const [{ count }] = await t.admin<{ count: number }[]>`
    SELECT count(*)::int AS count FROM payments
    WHERE tenant_id = ${tenantId} AND description = ${description} ${livemode === undefined ? t.admin`` : t.admin`AND livemode = ${livemode}`}`;
  return count;
}

describe('Idempotency-Key', () => {
  it("a create+confirm's answer is stored by its payment's final write, as sent; a decline's 402 after it", async () => {
    const stored = async (key: string) => {
      const [row] = await t.admin<{ response_status: number; response_body: string; xmin: string }[]>`
        SELECT response_status, response_body::text, xmin::text FROM idempotency_keys
        WHERE tenant_id = ${a.id} AND livemode = false AND key LIKE ${`%/${key}`}`;
      return row;
    };
    const key = randomUUID();
    const paid = await call(t.app, a.testKey, 'POST', '/v1/payments', body(), withKey(key));
    expect(paid.statusCode).toBe(200);
    const answer = await stored(key);
    expect(answer).toMatchObject({ response_status: 200, response_body: paid.body });
    const [payment] = await t.admin<{ xmin: string; status: string }[]>`
      SELECT xmin::text, status FROM payments WHERE id = ${paid.json().id}`;
    expect(payment).toEqual({ xmin: answer.xmin, status: 'succeeded' });
    const again = await call(t.app, a.testKey, 'POST', '/v1/payments', body(), withKey(key));
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(paid.json());

    const declinedKey = randomUUID();
    const declined = body({ payment_method: card(TEST_CARDS.declined) });
    const refused = await call(t.app, a.testKey, 'POST', '/v1/payments', declined, withKey(declinedKey));
    expect(refused.statusCode).toBe(402);
    expect(await stored(declinedKey)).toMatchObject({ response_status: 402, response_body: refused.body });
    const replayed = await call(t.app, a.testKey, 'POST', '/v1/payments', declined, withKey(declinedKey));
    expect(replayed.statusCode).toBe(402);
    expect(replayed.json()).toEqual(refused.json());
  });

  it('a confirm and a capture with a key store their 200 with the payment write that makes it, as sent', async () => {
    const storedWithPayment = async (key: string, answer: { body: string; json: () => { id: string } }) => {
      const [row] = await t.admin<{ response_status: number; response_body: string; same: boolean }[]>`
        SELECT k.response_status, k.response_body::text, k.xmin = p.xmin AS same
        FROM idempotency_keys k, payments p
        WHERE k.tenant_id = ${a.id} AND k.livemode = false AND k.key LIKE ${`%/${key}`} AND p.id = ${answer.json().id}`;
      expect(row).toEqual({ response_status: 200, response_body: answer.body, same: true });
    };
    const created = await call(t.app, a.testKey, 'POST', '/v1/payments', {
      amount: 2500,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      capture_method: 'manual',
    });
    expect(created.statusCode).toBe(200);
    const id = created.json().id;
    const confirmKey = randomUUID();
    const confirmed = await call(t.app, a.testKey, 'POST', `/v1/payments/${id}/confirm`, {}, withKey(confirmKey));
    expect(confirmed.json()).toMatchObject({ id, status: 'requires_capture' });
    await storedWithPayment(confirmKey, confirmed);

    const captureKey = randomUUID();
    const capture = { amount_to_capture: 2000 };
    const captured = await call(t.app, a.testKey, 'POST', `/v1/payments/${id}/capture`, capture, withKey(captureKey));
    expect(captured.json()).toMatchObject({ id, status: 'succeeded', amount_received: 2000 });
    await storedWithPayment(captureKey, captured);
    const again = await call(t.app, a.testKey, 'POST', `/v1/payments/${id}/capture`, capture, withKey(captureKey));
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toBe(captured.body);
  });

  it('same key and body: the stored response is replayed and only one payment exists', async () => {
    const key = randomUUID();
    const request = body({ description: `replay-${key}` });
    const first = await call(t.app, a.testKey, 'POST', '/v1/payments', request, withKey(key));
    expect(first.statusCode).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      const again = await call(t.app, a.testKey, 'POST', '/v1/payments', request, withKey(key));
      expect(again.statusCode).toBe(200);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.json()).toEqual(first.json());
    }
    // Key order in the body does not matter: the same parameters are the same request.
    const reordered = Object.fromEntries(Object.entries(request).reverse());
    const again = await call(t.app, a.testKey, 'POST', '/v1/payments', reordered, withKey(key));
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().id).toBe(first.json().id);
    expect(await paymentCount(a.id, `replay-${key}`)).toBe(1);
    const [{ count: events }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM events WHERE object_id = ${first.json().id} AND type = 'payment.created'`;
    expect(events).toBe(1);
    // Requests without a key are never deduplicated.
    await call(t.app, a.testKey, 'POST', '/v1/payments', request);
    await call(t.app, a.testKey, 'POST', '/v1/payments', request);
    expect(await paymentCount(a.id, `replay-${key}`)).toBe(3);
  });

  it('same key, different body -> 409 idempotency_error and nothing is created', async () => {
    const key = randomUUID();
    const description = `conflict-${key}`;
    expect((await call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(key))).statusCode).toBe(
      200,
    );
    const conflicting = await call(
      t.app,
      a.testKey,
      'POST',
      '/v1/payments',
      body({ description, amount: 999 }),
      withKey(key),
    );
    expect(conflicting.statusCode).toBe(409);
    expect(conflicting.json().error).toMatchObject({
      type: 'idempotency_error',
      code: 'idempotency_key_reused',
      param: null,
    });
    expect(conflicting.json().error.request_id).toBe(conflicting.headers['request-id']);
    expect(conflicting.headers['idempotent-replayed']).toBeUndefined();
    // The same body on another endpoint is a different request too.
    const elsewhere = await call(t.app, a.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa), withKey(key));
    expect(elsewhere.statusCode).toBe(409);
    expect(elsewhere.json().error.type).toBe('idempotency_error');
    expect(await paymentCount(a.id, description)).toBe(1);
  });

  it('10 concurrent requests with one key create exactly one payment', async () => {
    const key = randomUUID();
    const description = `concurrent-${key}`;
    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(key)),
      ),
    );
    const created = responses.filter((r) => r.statusCode === 200 && r.headers['idempotent-replayed'] === undefined);
    const replayed = responses.filter((r) => r.statusCode === 200 && r.headers['idempotent-replayed'] === 'true');
    const inUse = responses.filter((r) => r.statusCode === 409);
    expect(created).toHaveLength(1);
    expect(created.length + replayed.length + inUse.length).toBe(10);
    for (const r of replayed) expect(r.json()).toEqual(created[0].json());
    for (const r of inUse)
      expect(r.json().error).toMatchObject({ type: 'idempotency_error', code: 'idempotency_key_in_use' });
    expect(await paymentCount(a.id, description)).toBe(1);
    // Once the first finished, a retry replays it.
    const retry = await call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(key));
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json().id).toBe(created[0].json().id);
  });

  it('keys are scoped per tenant and per mode', async () => {
    const key = randomUUID();
    const description = `scoped-${key}`;
    const ids = new Set<string>();
    for (const secret of [a.testKey, b.testKey, a.liveKey, b.liveKey]) {
      // Live mode refuses the documented test cards.
      const payment_method = card(secret.includes('_live_') ? LIVE_CARD : TEST_CARDS.visa);
      const response = await call(
        t.app,
        secret,
        'POST',
        '/v1/payments',
        body({ description, payment_method }),
        withKey(key),
      );
      expect(response.statusCode).toBe(200);
      expect(response.headers['idempotent-replayed']).toBeUndefined();
      ids.add(response.json().id);
    }
    expect(ids.size).toBe(4);
    expect(await paymentCount(a.id, description, false)).toBe(1);
    expect(await paymentCount(a.id, description, true)).toBe(1);
    expect(await paymentCount(b.id, description, false)).toBe(1);
    expect(await paymentCount(b.id, description, true)).toBe(1);
    // A different body under another tenant's identical key is no conflict either.
    const differentBody = await call(
      t.app,
      b.testKey,
      'POST',
      '/v1/payment_methods',
      card(TEST_CARDS.visa),
      withKey(`${key}-pm`),
    );
    expect(differentBody.statusCode).toBe(200);
    expect(
      (await call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(`${key}-pm`))).statusCode,
    ).toBe(200);
  });

  it('a 402 decline is stored and replayed as 402', async () => {
    const key = randomUUID();
    const description = `declined-${key}`;
    const request = { ...body({ description }), payment_method: card(TEST_CARDS.declined) };
    const first = await call(t.app, a.testKey, 'POST', '/v1/payments', request, withKey(key));
    expect(first.statusCode).toBe(402);
    expect(first.json().error).toMatchObject({
      type: 'card_error',
      code: 'card_declined',
      decline_code: 'generic_decline',
    });
    const again = await call(t.app, a.testKey, 'POST', '/v1/payments', request, withKey(key));
    expect(again.statusCode).toBe(402);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(await paymentCount(a.id, description)).toBe(1);
    const [{ count: attempts }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM payment_attempts WHERE payment_id = ${first.json().error.payment.id}`;
    expect(attempts).toBe(1);
  });

  it('a validation error (400) does not consume the key', async () => {
    const key = randomUUID();
    const description = `invalid-${key}`;
    const invalid = await call(
      t.app,
      a.testKey,
      'POST',
      '/v1/payments',
      body({ description, amount: 'lots' }),
      withKey(key),
    );
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error).toMatchObject({ type: 'invalid_request_error', param: 'amount' });
    const unknown = await call(
      t.app,
      a.testKey,
      'POST',
      '/v1/payments',
      body({ description, colour: 'red' }),
      withKey(key),
    );
    expect(unknown.statusCode).toBe(400);
    const malformed = await t.app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: { authorization: `Bearer ${a.testKey}`, 'content-type': 'application/json', ...withKey(key) },
      payload: '{"amount": 12',
    });
    expect(malformed.statusCode).toBe(400);
    const [{ count: stored }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM idempotency_keys WHERE tenant_id = ${a.id} AND key LIKE ${'%/' + key}`;
    expect(stored).toBe(0);
    const valid = await call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(key));
    expect(valid.statusCode).toBe(200);
    expect(valid.headers['idempotent-replayed']).toBeUndefined();
    expect(await paymentCount(a.id, description)).toBe(1);
  });

  it('an error the create answers before writing anything (its key claimed in that write) is stored and replayed', async () => {
    const key = randomUUID();
    const description = `unwritten-${key}`;
    const request = { amount: 500, currency: 'usd', confirm: true, description };
    const first = await call(t.app, a.testKey, 'POST', '/v1/payments', request, withKey(key));
    expect(first.statusCode).toBe(400);
    expect(first.json().error).toMatchObject({ code: 'parameter_missing', param: 'payment_method' });
    const again = await call(t.app, a.testKey, 'POST', '/v1/payments', request, withKey(key));
    expect(again.statusCode).toBe(400);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    const changed = await call(t.app, a.testKey, 'POST', '/v1/payments', { ...request, amount: 501 }, withKey(key));
    expect(changed.json().error).toMatchObject({ type: 'idempotency_error', code: 'idempotency_key_reused' });
    expect(await paymentCount(a.id, description)).toBe(0);
  });

  it('a retry that finds the key held by a running request writes nothing and is refused (409)', async () => {
    const key = randomUUID();
    const description = `running-${key}`;
    const first = await call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(key));
    expect(first.statusCode).toBe(200);
    // As while the first request ran: its claim written with its payment, its answer not yet stored, its owner beating.
    const held = await t.admin`
      UPDATE idempotency_keys SET completed_at = NULL, response_status = NULL, response_body = NULL,
        owner = 'a.running.owner', heartbeat_at = now()
      WHERE tenant_id = ${a.id} AND key LIKE ${'%/' + key} RETURNING key`;
    expect(held).toHaveLength(1);
    const retry = await call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(key));
    expect(retry.statusCode).toBe(409);
    expect(retry.json().error).toMatchObject({ type: 'idempotency_error', code: 'idempotency_key_in_use' });
    expect(await paymentCount(a.id, description)).toBe(1);
  });

  it('a refused (401/403) request does not consume the key either', async () => {
    const key = randomUUID();
    const description = `refused-${key}`;
    const reader = (await call(t.app, a.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] })).json();
    expect(
      (await call(t.app, reader.secret, 'POST', '/v1/payments', body({ description }), withKey(key))).statusCode,
    ).toBe(403);
    expect(
      (await call(t.app, 'sk_test_unknownunknownunknown', 'POST', '/v1/payments', body({ description }), withKey(key)))
        .statusCode,
    ).toBe(401);
    const valid = await call(t.app, a.testKey, 'POST', '/v1/payments', body({ description }), withKey(key));
    expect(valid.statusCode).toBe(200);
    expect(valid.headers['idempotent-replayed']).toBeUndefined();
  });

  it('rejects an empty or overlong key', async () => {
    for (const key of ['', 'k'.repeat(256)]) {
      const response = await call(
        t.app,
        a.testKey,
        'POST',
        '/v1/payments',
        body({ description: 'bad key' }),
        withKey(key),
      );
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toMatchObject({ code: 'idempotency_key_invalid', param: 'Idempotency-Key' });
    }
    expect(await paymentCount(a.id, 'bad key')).toBe(0);
    const longest = await call(
      t.app,
      a.testKey,
      'POST',
      '/v1/payments',
      body({ description: 'longest key' }),
      withKey('k'.repeat(255)),
    );
    expect(longest.statusCode).toBe(200);
  });

  it("applies to every POST: state changes, refunds, keys and the platform's own requests", async () => {
    const payment = (await call(t.app, a.testKey, 'POST', '/v1/payments', body({ capture_method: 'manual' }))).json();
    const captureKey = randomUUID();
    const capture = await call(
      t.app,
      a.testKey,
      'POST',
      `/v1/payments/${payment.id}/capture`,
      { amount_to_capture: 1000 },
      withKey(captureKey),
    );
    expect(capture.statusCode).toBe(200);
    const captureAgain = await call(
      t.app,
      a.testKey,
      'POST',
      `/v1/payments/${payment.id}/capture`,
      { amount_to_capture: 1000 },
      withKey(captureKey),
    );
    expect(captureAgain.headers['idempotent-replayed']).toBe('true');
    expect(captureAgain.json()).toEqual(capture.json());

    const refundKey = randomUUID();
    const refund = await call(
      t.app,
      a.testKey,
      'POST',
      '/v1/refunds',
      { payment: payment.id, amount: 100 },
      withKey(refundKey),
    );
    const refundAgain = await call(
      t.app,
      a.testKey,
      'POST',
      '/v1/refunds',
      { payment: payment.id, amount: 100 },
      withKey(refundKey),
    );
    expect(refundAgain.json().id).toBe(refund.json().id);
    const [{ count: refunds }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM refunds WHERE payment_id = ${payment.id}`;
    expect(refunds).toBe(1);

    const tenantKey = randomUUID();
    const name = `Idempotent tenant ${tenantKey}`;
    const tenant = await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name }, withKey(tenantKey));
    const tenantAgain = await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name }, withKey(tenantKey));
    expect(tenantAgain.headers['idempotent-replayed']).toBe('true');
    expect(tenantAgain.json().id).toBe(tenant.json().id);
    const [{ count: tenants }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM tenants WHERE name = ${name}`;
    expect(tenants).toBe(1);
  });
});
