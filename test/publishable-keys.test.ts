import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  expectError,
  newCustomer,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { PUBLISHABLE_PAYMENT_FIELDS } from '../src/modules/payments/client-view.js';
import { waitFor } from './process.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;
let pk: string;
let otherPk: string;

const publishableKey = async (key: string) => (await ok(await call(t.app, key, 'GET', '/v1/publishable_key'))).key;

beforeAll(async () => {
  t = await bootApp({ LOG_LEVEL: 'debug' });
  tenant = await createTenant(t.app, 'Publishable keys');
  other = await createTenant(t.app, 'Publishable keys (other tenant)');
  pk = await publishableKey(tenant.testKey);
  otherPk = await publishableKey(other.testKey);
});
afterAll(() => t?.close());

const tokenize = (key: string, number = TEST_CARDS.visa) =>
  call(t.app, key, 'POST', '/v1/payment_methods', card(number));
const newPayment = async (key = tenant.testKey, amount = 2500) =>
  ok(await call(t.app, key, 'POST', '/v1/payments', { amount, currency: 'eur' }));

describe('publishable keys', () => {
  it('come with a new tenant, one per mode, and the secret key of each mode reads its own', async () => {
    const created = await ok(
      await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name: 'Publishable keys (new)' }),
    );
    expect(created.publishable_keys.test.key).toMatch(/^pk_test_[A-Za-z0-9_-]{32}$/);
    expect(created.publishable_keys.live.key).toMatch(/^pk_live_[A-Za-z0-9_-]{32}$/);
    expect(await publishableKey(created.secret_keys.test.secret)).toBe(created.publishable_keys.test.key);
    const live = await ok(await call(t.app, created.secret_keys.live.secret, 'GET', '/v1/publishable_key'));
    expect(live).toMatchObject({ object: 'publishable_key', key: created.publishable_keys.live.key, livemode: true });
    // Stored hashed like every key (the lookup path is the same), and never listed with the secret keys.
    const [row] = await t.admin<{ key_hash: Buffer; kind: string }[]>`
      SELECT key_hash, kind FROM api_keys WHERE id = ${created.publishable_keys.test.id}`;
    expect(row.kind).toBe('publishable');
    expect(row.key_hash.length).toBe(32);
    const keys = await ok(await call(t.app, created.secret_keys.test.secret, 'GET', '/v1/api_keys'));
    expect(keys.data.map((k: { id: string }) => k.id)).not.toContain(created.publishable_keys.test.id);
  });

  it('are created for tenants that existed before them, by the migration', async () => {
    const before = await createTenant(t.app, 'Publishable keys (older tenant)');
    await t.admin`DELETE FROM api_keys WHERE tenant_id = ${before.id} AND kind = 'publishable'`;
    await expectError(await call(t.app, before.testKey, 'GET', '/v1/publishable_key'), 404, {
      code: 'resource_missing',
    });
    const migration = readFileSync(new URL('../src/db/migrations/024_publishable_keys.sql', import.meta.url), 'utf8');
    await t.admin.unsafe(migration.slice(migration.indexOf('INSERT INTO api_keys')));
    const test = await publishableKey(before.testKey);
    const live = await publishableKey(before.liveKey);
    expect(test).toMatch(/^pk_test_[0-9a-f]{64}$/);
    expect(live).toMatch(/^pk_live_[0-9a-f]{64}$/);
    const method = await ok(await tokenize(test));
    expect(method.id).toMatch(/^pm_/);
  });

  it('tokenize a card and get back only what a checkout form shows', async () => {
    const method = await ok(await tokenize(pk));
    expect(Object.keys(method).sort()).toEqual(['card', 'created', 'id', 'livemode', 'object', 'type']);
    expect(method.card).toEqual({ brand: 'visa', last4: '4242', exp_month: 12, exp_year: expect.any(Number) });
    // The tenant's server sees the whole object.
    const full = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payment_methods/${method.id}`));
    expect(full.card.fingerprint).toEqual(expect.any(String));
  });

  it('refuse bad card input with the 400 envelope, and cannot attach a card to a customer', async () => {
    await expectError(await tokenize(pk, '4242'), 400, { type: 'invalid_request_error' });
    await expectError(
      await call(t.app, pk, 'POST', '/v1/payment_methods', { ...card(TEST_CARDS.visa), customer: 'cus_123' }),
      403,
      { type: 'permission_error', code: 'publishable_key_not_allowed', param: 'customer' },
    );
  });

  it('are refused (403, our envelope) on every route that does not declare them', async () => {
    const payment = await newPayment();
    const method = await ok(await tokenize(tenant.testKey));
    const refused: [string, string, unknown?][] = [
      ['GET', '/v1/payments'],
      ['POST', '/v1/payments', { amount: 1000, currency: 'eur' }],
      ['GET', `/v1/payment_methods/${method.id}`],
      ['GET', '/v1/payment_methods'],
      ['POST', `/v1/payments/${payment.id}/capture`, { client_secret: payment.client_secret }],
      ['POST', `/v1/payments/${payment.id}/cancel`, { client_secret: payment.client_secret }],
      ['POST', `/v1/payments/${payment.id}`, { client_secret: payment.client_secret }],
      ['POST', '/v1/refunds', { payment: payment.id }],
      ['GET', '/v1/events'],
      ['GET', '/v1/publishable_key'],
      ['POST', '/v1/publishable_key/roll'],
      ['GET', '/v1/api_keys'],
      ['GET', '/v1/customers'],
    ];
    for (const [method, url, body] of refused)
      expectError(await call(t.app, pk, method as 'GET', url, body), 403, {
        type: 'permission_error',
        code: 'publishable_key_not_allowed',
      });
    // Nor can it buy an access token that would carry it further.
    const token = await t.app.inject({
      method: 'POST',
      url: '/v1/oauth/token',
      payload: { grant_type: 'client_credentials', client_secret: pk },
    });
    expectError(token, 401, { code: 'invalid_client' });
  });
});

describe('client_secret', () => {
  it('is on every payment a secret key reads, and never in its events', async () => {
    const payment = await newPayment();
    expect(payment.client_secret).toMatch(new RegExp(`^${payment.id}_secret_[A-Za-z0-9_-]{32}$`));
    const again = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(again.client_secret).toBe(payment.client_secret);
    const list = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/payments?limit=3'));
    expect(list.data.find((p: { id: string }) => p.id === payment.id).client_secret).toBe(payment.client_secret);
    const events = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/events?limit=20'));
    const created = events.data.find(
      (e: { type: string; data: { object: { id: string } } }) =>
        e.type === 'payment.created' && e.data.object.id === payment.id,
    );
    expect(created).toBeDefined();
    expect(JSON.stringify(events.data)).not.toContain(payment.client_secret);
    // Another mode or tenant derives a different secret for an id: it is worth nothing outside its scope.
    const livePayment = await newPayment(tenant.liveKey);
    expect(livePayment.client_secret.split('_secret_')[1]).not.toBe(payment.client_secret.split('_secret_')[1]);
  });

  it('lets a publishable key confirm and read back that payment, with limited fields', async () => {
    const payment = await newPayment();
    const method = await ok(await tokenize(pk));
    const confirmed = await ok(
      await call(t.app, pk, 'POST', `/v1/payments/${payment.id}/confirm`, {
        client_secret: payment.client_secret,
        payment_method: method.id,
      }),
    );
    expect(confirmed.status).toBe('succeeded');
    expect(Object.keys(confirmed).every((k) => (PUBLISHABLE_PAYMENT_FIELDS as readonly string[]).includes(k))).toBe(
      true,
    );
    expect(confirmed).not.toHaveProperty('attempts');
    expect(confirmed).not.toHaveProperty('metadata');
    expect(confirmed.client_secret).toBe(payment.client_secret);
    const read = await ok(
      await call(
        t.app,
        pk,
        'GET',
        `/v1/payments/${payment.id}?client_secret=${encodeURIComponent(payment.client_secret)}`,
      ),
    );
    expect(read).toMatchObject({ id: payment.id, status: 'succeeded', amount: 2500, payment_method: method.id });
    expect(read).not.toHaveProperty('outcome');
    const server = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(server.status).toBe('succeeded');
    expect(server.amount_received).toBe(2500);
  });

  it('may not expand related objects of that payment, which a secret key may', async () => {
    const payment = await newPayment();
    const url = `/v1/payments/${payment.id}?client_secret=${encodeURIComponent(payment.client_secret)}&expand[]=customer`;
    await expectError(await call(t.app, pk, 'GET', url), 403, {
      code: 'publishable_key_not_allowed',
      param: 'expand[]',
    });
    expect((await call(t.app, tenant.testKey, 'GET', url)).statusCode).toBe(200);
  });

  it("takes the buyer's IP address from the request, not from what the page claims", async () => {
    const lists = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/fraud/lists'));
    const blockedIps = lists.data.find((l: { name: string }) => l.name === 'blocked_ips').id;
    const confirm = async (key: string, ip: string) => {
      const payment = await newPayment(tenant.testKey, 5100);
      return call(t.app, key, 'POST', `/v1/payments/${payment.id}/confirm`, {
        client_secret: payment.client_secret,
        payment_method: (await ok(await tokenize(pk))).id,
        fraud_details: { ip_address: ip },
      });
    };
    // Injected requests come from 127.0.0.1: on the block list, a page cannot talk its way past it.
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/fraud/lists/${blockedIps}/items`, { value: '127.0.0.1' }));
    try {
      const blocked = await confirm(pk, '198.51.100.10');
      expect(blocked.statusCode, blocked.body).toBe(402);
      expect(blocked.json().error.payment.outcome).toBeUndefined();
      const decided = await ok(
        await call(t.app, tenant.testKey, 'GET', `/v1/payments/${blocked.json().error.payment.id}`),
      );
      expect(decided.outcome).toMatchObject({ action: 'block', rule: { name: 'Block listed values' } });
      // The shop's server, with its secret key, states the buyer's address itself: the list does not apply to it.
      const stated = await confirm(tenant.testKey, '198.51.100.10');
      const payment = stated.statusCode === 200 ? stated.json() : stated.json().error.payment;
      expect(payment.outcome.rule?.name).not.toBe('Block listed values');
    } finally {
      const items = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/fraud/lists/${blockedIps}/items`));
      for (const item of items.data)
        await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/lists/${blockedIps}/items/${item.id}`);
    }
  });

  it('a decline answers 402 with the limited payment in error.payment', async () => {
    const payment = await newPayment(tenant.testKey, 3100);
    const declined = await call(t.app, pk, 'POST', `/v1/payments/${payment.id}/confirm`, {
      client_secret: payment.client_secret,
      payment_method: (await ok(await tokenize(pk, TEST_CARDS.declined))).id,
    });
    expectError(declined, 402, { type: 'card_error', code: 'card_declined' });
    const shown = declined.json().error.payment;
    expect(shown).toMatchObject({ id: payment.id, status: 'requires_payment_method' });
    expect(shown).not.toHaveProperty('attempts');
  });

  it('is required, must be the payment’s own, and is worth nothing with another tenant’s key', async () => {
    const payment = await newPayment();
    const another = await newPayment();
    const confirm = (key: string, body: unknown) =>
      call(t.app, key, 'POST', `/v1/payments/${payment.id}/confirm`, body);
    expectError(await confirm(pk, {}), 400, { code: 'parameter_missing', param: 'client_secret' });
    expectError(await confirm(pk, { client_secret: another.client_secret }), 404, { code: 'resource_missing' });
    expectError(await confirm(pk, { client_secret: `${payment.id}_secret_${'A'.repeat(32)}` }), 404, {
      code: 'resource_missing',
    });
    expectError(await confirm(otherPk, { client_secret: payment.client_secret }), 404, { code: 'resource_missing' });
    expectError(await call(t.app, otherPk, 'GET', `/v1/payments/${payment.id}?client_secret=x`), 404, {
      code: 'resource_missing',
    });
    expectError(await call(t.app, pk, 'GET', `/v1/payments/${payment.id}`), 400, { code: 'parameter_missing' });
    expectError(await confirm(pk, { client_secret: payment.client_secret, amount: 5 }), 400, {
      type: 'invalid_request_error',
    });
    // A card given inline may not be saved to a customer from the browser.
    const customer = await newCustomer(t.app, tenant.testKey);
    expectError(
      await confirm(pk, {
        client_secret: payment.client_secret,
        payment_method: { ...card(TEST_CARDS.visa), customer },
      }),
      403,
      { code: 'publishable_key_not_allowed', param: 'payment_method[customer]' },
    );
    // Another tenant's secret key cannot read the payment either.
    expectError(await call(t.app, other.testKey, 'GET', `/v1/payments/${payment.id}`), 404, {
      code: 'resource_missing',
    });
    const unchanged = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(unchanged.status).toBe('requires_payment_method');
  });

  it('never reaches the logs, even at debug level where request URLs are logged, nor the request log', async () => {
    const payment = await newPayment();
    await ok(await call(t.app, pk, 'GET', `/v1/payments/${payment.id}?client_secret=${payment.client_secret}`));
    const secretPart = payment.client_secret.split('_secret_')[1];
    expect(t.logs.some((line) => line.includes(`${payment.id}?client_secret=`))).toBe(true);
    expect(t.logs.filter((line) => line.includes(secretPart))).toEqual([]);
    // The tenant's request log names the call (by the publishable key's id) without its query string.
    const keyId = (await ok(await call(t.app, tenant.testKey, 'GET', '/v1/publishable_key'))).id;
    const logged = await waitFor(async () => {
      const list = await ok(
        await call(t.app, tenant.testKey, 'GET', `/v1/request_logs?path=/v1/payments/${payment.id}&limit=10`),
      );
      return list.data.find((log: { api_key: string }) => log.api_key === keyId);
    }, 10_000);
    expect(logged).toMatchObject({ method: 'GET', path: `/v1/payments/${payment.id}`, status: 200 });
    expect(JSON.stringify(logged)).not.toContain(secretPart);
  });
});

describe('rolling the publishable key', () => {
  it('replaces it (the old one stops at once by default), with an audit entry; a grace period is possible', async () => {
    const own = await createTenant(t.app, 'Publishable keys (roll)');
    const first = await publishableKey(own.testKey);
    const rolled = await ok(await call(t.app, own.testKey, 'POST', '/v1/publishable_key/roll'));
    expect(rolled.key).toMatch(/^pk_test_/);
    expect(rolled.key).not.toBe(first);
    expect(await publishableKey(own.testKey)).toBe(rolled.key);
    expectError(await tokenize(first), 401, { type: 'authentication_error' });
    await ok(await tokenize(rolled.key));
    const [entry] = await t.admin<{ action: string; target_id: string }[]>`
      SELECT action, target_id FROM audit_entries WHERE tenant_id = ${own.id} AND action = 'publishable_key.rolled'`;
    expect(entry).toBeDefined();

    const graced = await ok(await call(t.app, own.testKey, 'POST', '/v1/publishable_key/roll', { expires_in: 3600 }));
    await ok(await tokenize(rolled.key));
    await ok(await tokenize(graced.key));
    expectError(await call(t.app, own.testKey, 'POST', '/v1/publishable_key/roll', { expires_in: -1 }), 400, {
      type: 'invalid_request_error',
    });
    // The secret-key routes do not manage publishable keys.
    const current = await ok(await call(t.app, own.testKey, 'GET', '/v1/publishable_key'));
    expectError(await call(t.app, own.testKey, 'POST', `/v1/api_keys/${current.id}/revoke`), 404, {
      code: 'resource_missing',
    });
  });

  it('needs api_keys:write; a restricted key without it gets 403', async () => {
    const restricted = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }),
    );
    expectError(await call(t.app, restricted.secret, 'POST', '/v1/publishable_key/roll'), 403, {
      code: 'missing_scope',
    });
    expectError(await call(t.app, restricted.secret, 'GET', '/v1/publishable_key'), 403, { code: 'missing_scope' });
  });
});

describe('the operator key', () => {
  it('uses the op_ prefix; a pk_ operator key is refused at start', async () => {
    expect(PLATFORM_KEY.startsWith('op_')).toBe(true);
    const { Authenticator } = await import('../src/http/auth.js');
    expect(
      () => new Authenticator(t.admin, { platformApiKey: 'pk_platform_0123456789', jwtSecret: 'x', cacheTtlMs: 0 }),
    ).toThrow(/op_/);
  });
});
