import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
  verifiedBankAccount,
} from './helpers.js';

// Who may replay a stored response, what a stored key keeps, and what a retry after a server error
// does: the identity of an idempotency key includes the caller's principal, stored responses hold no
// secret, and a key whose handler started is never handed to a fresh run.

let t: TestApp;
let a: TestTenant;

beforeAll(async () => {
  t = await bootApp();
  a = await createTenant(t.app, 'Idempotency identity');
  // Captured funds are available at once, so payouts have a balance to draw on.
  await ok(
    await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${a.id}`, {
      settlement_schedule: { type: 'instant', delay_days: 0 },
    }),
  );
});
afterAll(() => t.close());

const withKey = (key: string) => ({ 'idempotency-key': key });
const paymentBody = (description: string, number: string = TEST_CARDS.visa) => ({
  amount: 1500,
  currency: 'usd',
  payment_method: card(number),
  confirm: true,
  description,
});

async function restrictedKey(scopes: string[]): Promise<string> {
  return (await ok(await call(t.app, a.testKey, 'POST', '/v1/api_keys', { scopes }))).secret;
}

/** Every text, JSON and bytea column of every table that holds one of the needles. */
async function columnsHolding(needles: string[]): Promise<string[]> {
  const columns = await t.admin<{ table_name: string; column_name: string; data_type: string }[]>`
    SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      AND t.table_type = 'BASE TABLE'
    WHERE c.table_schema = 'public'
      AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')`;
  const textPatterns = needles.map((n) => `%${n}%`);
  const hexPatterns = needles.map((n) => `%${Buffer.from(n).toString('hex')}%`);
  const found: string[] = [];
  for (const { table_name: table, column_name: column, data_type: type } of columns) {
    const hex =
      type === 'bytea'
        ? t.admin`encode(${t.admin(column)}, 'hex')`
        : t.admin`encode(convert_to(${t.admin(column)}::text, 'UTF8'), 'hex')`;
    const hits = await t.admin`
      SELECT 1 FROM ${t.admin(table)}
      WHERE ${t.admin(column)}::text LIKE ANY(${textPatterns}) OR ${hex} LIKE ANY(${hexPatterns}) LIMIT 1`;
    if (hits.length) found.push(`${table}.${column}`);
  }
  expect(columns.length).toBeGreaterThan(30);
  return found;
}

describe('the idempotency identity includes the principal', () => {
  it("a read-only key replaying a secret key's keys gets 403, not the stored response", async () => {
    const key = randomUUID();
    const body = paymentBody(`principal-${key}`);
    const created = await ok(await call(t.app, a.testKey, 'POST', '/v1/payments', body, withKey(key)));
    const reader = await restrictedKey(['payments:read']);
    const replayed = await call(t.app, reader, 'POST', '/v1/payments', body, withKey(key));
    expect(replayed.statusCode, replayed.body).toBe(403);
    expect(replayed.headers['idempotent-replayed']).toBeUndefined();
    expect(replayed.json().error).toMatchObject({ type: 'permission_error', code: 'missing_scope' });
    expect(replayed.body).not.toContain(created.id);
    // The owner still gets its replay.
    const again = await call(t.app, a.testKey, 'POST', '/v1/payments', body, withKey(key));
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().id).toBe(created.id);

    // Rolling a key is authorized in its handler (only a key manager may): a replay of the secret
    // key's roll must not hand the rolled secret to a read-only key.
    const target = (await ok(await call(t.app, a.testKey, 'POST', '/v1/api_keys', { scopes: ['refunds:read'] }))).id;
    const rollKey = randomUUID();
    const rolled = await ok(
      await call(t.app, a.testKey, 'POST', `/v1/api_keys/${target}/roll`, { expires_in: 0 }, withKey(rollKey)),
    );
    const stolen = await call(
      t.app,
      reader,
      'POST',
      `/v1/api_keys/${target}/roll`,
      { expires_in: 0 },
      withKey(rollKey),
    );
    expect(stolen.statusCode, stolen.body).toBe(403);
    expect(stolen.headers['idempotent-replayed']).toBeUndefined();
    expect(stolen.body).not.toContain(rolled.secret);
  });

  it('two principals with one key get two independent payments, refunds and payouts', async () => {
    const writer = await restrictedKey(['payments:write', 'refunds:write', 'payouts:write']);
    const key = randomUUID();
    const description = `two-principals-${key}`;
    const first = await ok(
      await call(t.app, a.testKey, 'POST', '/v1/payments', paymentBody(description), withKey(key)),
    );
    const second = await call(t.app, writer, 'POST', '/v1/payments', paymentBody(description), withKey(key));
    expect(second.statusCode, second.body).toBe(200);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(second.json().id).not.toBe(first.id);
    const [{ count }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${a.id} AND description = ${description}`;
    expect(count).toBe(2);

    const refundKey = randomUUID();
    const refundBody = { payment: first.id, amount: 100 };
    const refundA = await ok(await call(t.app, a.testKey, 'POST', '/v1/refunds', refundBody, withKey(refundKey)));
    const refundB = await call(t.app, writer, 'POST', '/v1/refunds', refundBody, withKey(refundKey));
    expect(refundB.statusCode, refundB.body).toBe(200);
    expect(refundB.headers['idempotent-replayed']).toBeUndefined();
    expect(refundB.json().id).not.toBe(refundA.id);
    const refunds = await t.admin<{ id: string }[]>`SELECT id FROM refunds WHERE payment_id = ${first.id}`;
    expect(refunds.map((r) => r.id).sort()).toEqual([refundA.id, refundB.json().id].sort());

    await verifiedBankAccount(t.app, a.testKey);
    const payoutKey = randomUUID();
    const payoutBody = { amount: 100, currency: 'usd', method: 'instant' };
    const payoutA = await ok(await call(t.app, a.testKey, 'POST', '/v1/payouts', payoutBody, withKey(payoutKey)));
    const payoutB = await call(t.app, writer, 'POST', '/v1/payouts', payoutBody, withKey(payoutKey));
    expect(payoutB.statusCode, payoutB.body).toBe(200);
    expect(payoutB.headers['idempotent-replayed']).toBeUndefined();
    expect(payoutB.json().id).not.toBe(payoutA.id);
  });

  it('an access token for the same key and scopes is the same principal: it gets the replay', async () => {
    const key = randomUUID();
    const body = paymentBody(`token-${key}`);
    const created = await ok(await call(t.app, a.testKey, 'POST', '/v1/payments', body, withKey(key)));
    const token = await ok(
      await t.app.inject({
        method: 'POST',
        url: '/v1/oauth/token',
        payload: { grant_type: 'client_credentials', client_secret: a.testKey },
      }),
    );
    const replayed = await call(t.app, token.access_token, 'POST', '/v1/payments', body, withKey(key));
    expect(replayed.statusCode, replayed.body).toBe(200);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.json().id).toBe(created.id);
  });
});

describe('request fingerprints', () => {
  it('are keyed and leave card number, CVC and expiry out: an inline card counts by its card fingerprint', () => {
    const { idempotency } = t.platform;
    const fingerprint = (body: unknown, tenantId = a.id) =>
      idempotency.fingerprint(tenantId, 'POST', '/v1/payments', body);
    const base = paymentBody('fingerprint');
    const sameCardOtherCvcAndExpiry = {
      ...base,
      payment_method: card(TEST_CARDS.visa, { cvc: '999', exp_month: 1, exp_year: 2040 }),
    };
    expect(fingerprint(sameCardOtherCvcAndExpiry)).toBe(fingerprint(base));
    expect(fingerprint(paymentBody('fingerprint', TEST_CARDS.debit))).not.toBe(fingerprint(base));
    expect(fingerprint({ ...base, amount: 1501 })).not.toBe(fingerprint(base));
    expect(fingerprint(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the same key with another inline card is 409 idempotency_key_reused', async () => {
    const key = randomUUID();
    const description = `other-card-${key}`;
    await ok(await call(t.app, a.testKey, 'POST', '/v1/payments', paymentBody(description), withKey(key)));
    const otherCard = await call(
      t.app,
      a.testKey,
      'POST',
      '/v1/payments',
      paymentBody(description, TEST_CARDS.debit),
      withKey(key),
    );
    expect(otherCard.statusCode, otherCard.body).toBe(409);
    expect(otherCard.json().error).toMatchObject({ type: 'idempotency_error', code: 'idempotency_key_reused' });
  });
});

describe('stored responses that carry secrets', () => {
  it('new tenant and API keys are stored encrypted, and the same caller replays the identical secret', async () => {
    const tenantKey = randomUUID();
    const name = `Sealed tenant ${tenantKey}`;
    const tenant = await ok(await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name }, withKey(tenantKey)));
    const testSecret: string = tenant.secret_keys.test.secret;
    const liveSecret: string = tenant.secret_keys.live.secret;
    expect(testSecret).toMatch(/^sk_test_/);

    const apiKey = randomUUID();
    const keyBody = { scopes: ['payments:read'], name: 'sealed' };
    const restricted = await ok(await call(t.app, testSecret, 'POST', '/v1/api_keys', keyBody, withKey(apiKey)));
    const rollKey = randomUUID();
    const rolled = await ok(
      await call(t.app, testSecret, 'POST', `/v1/api_keys/${restricted.id}/roll`, { expires_in: 60 }, withKey(rollKey)),
    );
    const secrets = [testSecret, liveSecret, restricted.secret as string, rolled.secret as string];
    const [stored] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM idempotency_keys
      WHERE response_ciphertext IS NOT NULL AND response_body IS NULL AND completed_at IS NOT NULL
        AND (key LIKE ${'%/' + tenantKey} OR key LIKE ${'%/' + apiKey} OR key LIKE ${'%/' + rollKey})`;
    expect(stored.count).toBe(3);
    expect(await columnsHolding(secrets.flatMap((s) => [s, s.slice(8)]))).toEqual([]);

    const tenantAgain = await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name }, withKey(tenantKey));
    expect(tenantAgain.headers['idempotent-replayed']).toBe('true');
    expect(tenantAgain.json()).toEqual(tenant);
    const keyAgain = await call(t.app, testSecret, 'POST', '/v1/api_keys', keyBody, withKey(apiKey));
    expect(keyAgain.headers['idempotent-replayed']).toBe('true');
    expect(keyAgain.json().secret).toBe(restricted.secret);
    const rollAgain = await call(
      t.app,
      testSecret,
      'POST',
      `/v1/api_keys/${restricted.id}/roll`,
      { expires_in: 60 },
      withKey(rollKey),
    );
    expect(rollAgain.headers['idempotent-replayed']).toBe('true');
    expect(rollAgain.json().secret).toBe(rolled.secret);

    // A sealed response moved onto another key's row does not open: the identity is authenticated.
    const otherKey = randomUUID();
    await ok(await call(t.app, testSecret, 'POST', '/v1/api_keys', keyBody, withKey(otherKey)));
    await t.admin`
      UPDATE idempotency_keys SET (response_kek_id, response_wrapped_dek, response_ciphertext) = (
        SELECT response_kek_id, response_wrapped_dek, response_ciphertext FROM idempotency_keys
        WHERE key LIKE ${'%/' + apiKey})
      WHERE key LIKE ${'%/' + otherKey}`;
    const swapped = await call(t.app, testSecret, 'POST', '/v1/api_keys', keyBody, withKey(otherKey));
    expect(swapped.statusCode).toBe(500);
    expect(swapped.body).not.toContain(restricted.secret);
  });
});

describe('a key whose handler started is never released for a fresh run', () => {
  it('after a 5xx, the retry resumes the refund the first run left pending instead of refunding again', async () => {
    const payment = await ok(
      await call(t.app, a.testKey, 'POST', '/v1/payments', paymentBody(`refund-5xx-${randomUUID()}`)),
    );
    // The first run's final write fails (a real database error raised by a trigger on its event):
    // the processor has refunded, the refund row is pending, the request answers 500.
    const trigger = `fail_refund_${payment.id.toLowerCase().replace(/[^a-z0-9]/g, '')}`;
    await t.admin.unsafe(`
      CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.type = 'refund.succeeded' AND NEW.data->'object'->>'payment' = '${payment.id}' THEN
          RAISE EXCEPTION 'refund write failed on purpose';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER ${trigger} BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION ${trigger}();`);
    const key = randomUUID();
    const body = { payment: payment.id, amount: 300 };
    try {
      const failed = await call(t.app, a.testKey, 'POST', '/v1/refunds', body, withKey(key));
      expect(failed.statusCode, failed.body).toBe(500);
    } finally {
      await t.admin.unsafe(`DROP TRIGGER ${trigger} ON events; DROP FUNCTION ${trigger}();`);
    }
    const [pending] = await t.admin<{ id: string; status: string }[]>`
      SELECT id, status FROM refunds WHERE payment_id = ${payment.id}`;
    expect(pending.status).toBe('pending');

    // Taking the claim over needs the same request: another body is still refused.
    const otherBody = await call(t.app, a.testKey, 'POST', '/v1/refunds', { ...body, amount: 301 }, withKey(key));
    expect(otherBody.statusCode).toBe(409);
    expect(otherBody.json().error.code).toBe('idempotency_key_reused');

    const retry = await call(t.app, a.testKey, 'POST', '/v1/refunds', body, withKey(key));
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toMatchObject({ id: pending.id, status: 'succeeded', amount: 300 });
    const refunds = await t.admin<{ id: string }[]>`SELECT id FROM refunds WHERE payment_id = ${payment.id}`;
    expect(refunds).toHaveLength(1);
    const [{ amount_refunded: refunded }] = await t.admin<{ amount_refunded: number }[]>`
      SELECT amount_refunded::int FROM payments WHERE id = ${payment.id}`;
    expect(refunded).toBe(300);
    const postings = await t.admin`
      SELECT id FROM ledger_transactions WHERE type = 'refund' AND source_id = ${pending.id}`;
    expect(postings).toHaveLength(1);
    // And once completed, it is replayed.
    const replay = await call(t.app, a.testKey, 'POST', '/v1/refunds', body, withKey(key));
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json().id).toBe(pending.id);
  });
});
