import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { appDatabaseUrl, connect, inScope, type Sql } from '../src/db/index.js';
import { bootApp, call, card, createTenant, LIVE_CARD, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';

// Tenant isolation, from the HTTP surface down to row-level security in PostgreSQL.

let t: TestApp;
let a: TestTenant;
let b: TestTenant;

/** Everything tenant A owns in test mode, created through the API. */
const own = {} as {
  succeeded: string;
  authorized: string;
  unconfirmed: string;
  paymentMethod: string;
  refund: string;
  event: string;
  restrictedKey: string;
};
/** The same kinds of objects created by A in live mode. */
const live = {} as { payment: string; paymentMethod: string; refund: string; event: string };

async function ok(response: Awaited<ReturnType<typeof call>>) {
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

function expectNotFound(response: Awaited<ReturnType<typeof call>>) {
  expect(response.statusCode, response.body).toBe(404);
  const body = response.json();
  expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
  expect(typeof body.error.message).toBe('string');
  expect(body.error).toHaveProperty('param');
  expect(body.error.request_id).toBe(response.headers['request-id']);
}

async function createObjects(key: string) {
  const visa = key.startsWith('sk_live_') ? LIVE_CARD : TEST_CARDS.visa;
  const succeeded = await ok(
    await call(t.app, key, 'POST', '/v1/payments', {
      amount: 1500,
      currency: 'usd',
      payment_method: card(visa),
      confirm: true,
    }),
  );
  const authorized = await ok(
    await call(t.app, key, 'POST', '/v1/payments', {
      amount: 900,
      currency: 'usd',
      payment_method: card(visa),
      confirm: true,
      capture_method: 'manual',
    }),
  );
  const unconfirmed = await ok(
    await call(
      t.app,
      key,
      'POST',
      '/v1/payments',
      { amount: 700, currency: 'eur' },
      { 'idempotency-key': `iso-${key.slice(0, 12)}` },
    ),
  );
  const paymentMethod = await ok(await call(t.app, key, 'POST', '/v1/payment_methods', card(visa)));
  const refund = await ok(await call(t.app, key, 'POST', '/v1/refunds', { payment: succeeded.id, amount: 100 }));
  const events = await ok(await call(t.app, key, 'GET', '/v1/events?limit=1'));
  return {
    succeeded: succeeded.id,
    authorized: authorized.id,
    unconfirmed: unconfirmed.id,
    paymentMethod: paymentMethod.id,
    refund: refund.id,
    event: events.data[0].id as string,
  };
}

beforeAll(async () => {
  t = await bootApp();
  a = await createTenant(t.app, 'Tenant A');
  b = await createTenant(t.app, 'Tenant B');
  Object.assign(own, await createObjects(a.testKey));
  own.restrictedKey = (
    await ok(await call(t.app, a.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }))
  ).id;
  const l = await createObjects(a.liveKey);
  Object.assign(live, { payment: l.succeeded, paymentMethod: l.paymentMethod, refund: l.refund, event: l.event });
});
afterAll(() => t.close());

/** Every tenant endpoint that names one of A's objects, as B would call it. */
const foreignRequests = (): Array<[string, string, string, unknown?]> => [
  ['payments retrieve', 'GET', `/v1/payments/${own.succeeded}`],
  ['payments confirm', 'POST', `/v1/payments/${own.unconfirmed}/confirm`, { payment_method: card(TEST_CARDS.visa) }],
  ['payments capture', 'POST', `/v1/payments/${own.authorized}/capture`, {}],
  ['payments cancel', 'POST', `/v1/payments/${own.authorized}/cancel`, {}],
  ['payment_methods retrieve', 'GET', `/v1/payment_methods/${own.paymentMethod}`],
  ['payment_methods verify', 'POST', `/v1/payment_methods/${own.paymentMethod}/verify`, {}],
  ['refunds retrieve', 'GET', `/v1/refunds/${own.refund}`],
  ['refunds create on a foreign payment', 'POST', '/v1/refunds', { payment: own.succeeded, amount: 50 }],
  ['events retrieve', 'GET', `/v1/events/${own.event}`],
  ['api_keys roll', 'POST', `/v1/api_keys/${own.restrictedKey}/roll`, { expires_in: 0 }],
  ['api_keys revoke', 'POST', `/v1/api_keys/${own.restrictedKey}/revoke`, {}],
  [
    'payments create with a foreign pm_',
    'POST',
    '/v1/payments',
    { amount: 500, currency: 'usd', payment_method: own.paymentMethod, confirm: true },
  ],
  [
    'payments confirm with a foreign pm_',
    'POST',
    '/v1/payments/__B_PAYMENT__/confirm',
    { payment_method: own.paymentMethod },
  ],
];

describe('another tenant is told the object does not exist', () => {
  it("every endpoint naming one of A's objects answers 404 resource_missing to B", async () => {
    const bPayment = await ok(await call(t.app, b.testKey, 'POST', '/v1/payments', { amount: 300, currency: 'usd' }));
    const requests = foreignRequests();
    expect(requests.length).toBeGreaterThanOrEqual(13);
    for (const [name, method, url, body] of requests) {
      const response = await call(t.app, b.testKey, method as 'GET', url.replace('__B_PAYMENT__', bPayment.id), body);
      expect.soft(response.statusCode, `${name}: ${response.body}`).toBe(404);
      if (response.statusCode === 404) expectNotFound(response);
    }
    // B's payment was not confirmed with A's card.
    expect((await ok(await call(t.app, b.testKey, 'GET', `/v1/payments/${bPayment.id}`))).status).toBe(
      'requires_payment_method',
    );
  });

  it("nothing B tried changed A's objects", async () => {
    const authorized = await ok(await call(t.app, a.testKey, 'GET', `/v1/payments/${own.authorized}`));
    expect(authorized).toMatchObject({ status: 'requires_capture', amount_capturable: 900 });
    const unconfirmed = await ok(await call(t.app, a.testKey, 'GET', `/v1/payments/${own.unconfirmed}`));
    expect(unconfirmed.status).toBe('requires_payment_method');
    const succeeded = await ok(await call(t.app, a.testKey, 'GET', `/v1/payments/${own.succeeded}`));
    expect(succeeded.amount_refunded).toBe(100);
    const keys = await ok(await call(t.app, a.testKey, 'GET', '/v1/api_keys?limit=100'));
    expect(keys.data.find((k: { id: string }) => k.id === own.restrictedKey)).toMatchObject({
      revoked: false,
      rolled_to: null,
    });
    const [{ count }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${b.id} AND payment_method_id = ${own.paymentMethod}`;
    expect(count).toBe(0);
  });

  it('A still sees every one of its objects (the 404s above are not just broken endpoints)', async () => {
    for (const [url, id] of [
      [`/v1/payments/${own.succeeded}`, own.succeeded],
      [`/v1/payment_methods/${own.paymentMethod}`, own.paymentMethod],
      [`/v1/refunds/${own.refund}`, own.refund],
      [`/v1/events/${own.event}`, own.event],
    ]) {
      expect((await ok(await call(t.app, a.testKey, 'GET', url))).id).toBe(id);
    }
  });
});

describe('lists', () => {
  const lists = ['/v1/payments', '/v1/payment_methods', '/v1/refunds', '/v1/events', '/v1/api_keys'];

  it("B's lists never contain A's objects, whatever the filters", async () => {
    const aIds = new Set<string>();
    for (const list of lists)
      for (const item of (await ok(await call(t.app, a.testKey, 'GET', `${list}?limit=100`))).data) aIds.add(item.id);
    expect(aIds.size).toBeGreaterThan(10);
    const queries = [
      ...lists.map((l) => `${l}?limit=100`),
      `/v1/refunds?limit=100&payment=${own.succeeded}`,
      `/v1/events?limit=100&object_id=${own.succeeded}`,
      `/v1/events?limit=100&type=payment.*`,
      `/v1/payments?limit=100&status=succeeded`,
    ];
    for (const query of queries) {
      const page = await ok(await call(t.app, b.testKey, 'GET', query));
      expect(page.object).toBe('list');
      for (const item of page.data) expect(aIds.has(item.id), `${query} leaked ${item.id}`).toBe(false);
    }
    // A's ids are no cursor for B: refused, never a page positioned by another tenant's data.
    const [aId] = aIds;
    for (const param of ['starting_after', 'ending_before']) {
      const response = await call(t.app, b.testKey, 'GET', `/v1/payments?limit=100&${param}=${aId}`);
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().error).toMatchObject({ code: 'resource_missing', param });
    }
    // B sees its own keys only.
    const bKeys = await ok(await call(t.app, b.testKey, 'GET', '/v1/api_keys?limit=100'));
    expect(bKeys.data.map((k: { id: string }) => k.id)).toEqual([b.testKeyId]);
  });
});

describe('test and live mode', () => {
  it('a test key never sees live objects', async () => {
    for (const url of [
      `/v1/payments/${live.payment}`,
      `/v1/payment_methods/${live.paymentMethod}`,
      `/v1/refunds/${live.refund}`,
      `/v1/events/${live.event}`,
    ]) {
      expectNotFound(await call(t.app, a.testKey, 'GET', url));
      expect((await ok(await call(t.app, a.liveKey, 'GET', url))).livemode).toBe(true);
    }
    expectNotFound(await call(t.app, a.testKey, 'POST', '/v1/refunds', { payment: live.payment, amount: 1 }));
    expectNotFound(
      await call(t.app, a.testKey, 'POST', '/v1/payments', {
        amount: 500,
        currency: 'usd',
        payment_method: live.paymentMethod,
      }),
    );
    expectNotFound(await call(t.app, a.testKey, 'POST', `/v1/api_keys/${a.liveKeyId}/roll`, {}));
    const liveIds = new Set(Object.values(live));
    for (const list of ['/v1/payments', '/v1/payment_methods', '/v1/refunds', '/v1/events']) {
      const page = await ok(await call(t.app, a.testKey, 'GET', `${list}?limit=100`));
      for (const item of page.data) {
        expect(item.livemode).toBe(false);
        expect(liveIds.has(item.id)).toBe(false);
      }
    }
  });

  it('a live key never sees test objects', async () => {
    for (const url of [
      `/v1/payments/${own.succeeded}`,
      `/v1/payment_methods/${own.paymentMethod}`,
      `/v1/refunds/${own.refund}`,
      `/v1/events/${own.event}`,
    ]) {
      expectNotFound(await call(t.app, a.liveKey, 'GET', url));
    }
    expectNotFound(await call(t.app, a.liveKey, 'POST', `/v1/payments/${own.authorized}/capture`, {}));
    expectNotFound(await call(t.app, a.liveKey, 'POST', `/v1/payment_methods/${own.paymentMethod}/verify`, {}));
    expectNotFound(await call(t.app, a.liveKey, 'POST', `/v1/api_keys/${own.restrictedKey}/revoke`, {}));
    const testIds = new Set<string>(Object.values(own));
    for (const list of ['/v1/payments', '/v1/payment_methods', '/v1/refunds', '/v1/events', '/v1/api_keys']) {
      const page = await ok(await call(t.app, a.liveKey, 'GET', `${list}?limit=100`));
      expect(page.data.length).toBeGreaterThan(0);
      for (const item of page.data) {
        expect(item.livemode).toBe(true);
        expect(testIds.has(item.id)).toBe(false);
      }
    }
  });
});

describe('bank accounts', () => {
  const register = (key: string) =>
    call(t.app, key, 'POST', '/v1/bank_accounts', {
      account_number: '000123456789',
      routing_number: '110000000',
      country: 'US',
      currency: 'usd',
    });
  const endpoints = (id: string): Array<[string, string, unknown?]> => [
    ['GET', `/v1/bank_accounts/${id}`],
    ['POST', `/v1/bank_accounts/${id}`, { default_for_currency: true, metadata: { taken: 'yes' } }],
    ['POST', `/v1/bank_accounts/${id}/verify`, { amounts: [32, 45] }],
    ['DELETE', `/v1/bank_accounts/${id}`],
  ];

  it("another tenant's key and the other mode get 404 on every bank-account endpoint, and change nothing", async () => {
    const accountA = await ok(await register(a.testKey));
    const liveA = await ok(await register(a.liveKey));
    for (const [key, id, who] of [
      [b.testKey, accountA.id, 'tenant B'],
      [b.liveKey, liveA.id, 'tenant B live'],
      [a.liveKey, accountA.id, 'live key on a test account'],
      [a.testKey, liveA.id, 'test key on a live account'],
    ]) {
      for (const [method, url, body] of endpoints(id)) {
        const response = await call(t.app, key, method as 'GET', url, body);
        expect.soft(response.statusCode, `${who}: ${method} ${url}: ${response.body}`).toBe(404);
        if (response.statusCode === 404) expectNotFound(response);
      }
      const listed = await ok(await call(t.app, key, 'GET', '/v1/bank_accounts?limit=100'));
      expect(listed.data.map((x: { id: string }) => x.id)).not.toContain(id);
    }
    for (const [key, account] of [
      [a.testKey, accountA],
      [a.liveKey, liveA],
    ]) {
      expect(await ok(await call(t.app, key, 'GET', `/v1/bank_accounts/${account.id}`))).toEqual(account);
    }
    const payout = await call(t.app, b.testKey, 'POST', '/v1/payouts', {
      amount: 1,
      currency: 'usd',
      destination: accountA.id,
    });
    expect(payout.statusCode).toBe(400);
    expect(payout.json().error).toMatchObject({ code: 'resource_missing', param: 'destination' });
  });
});

describe('row-level security in PostgreSQL', () => {
  let appSql: Sql;
  beforeAll(() => {
    appSql = connect(appDatabaseUrl(inject('adminDatabaseUrl'), t.config), { max: 2 });
  });
  afterAll(() => appSql.end());

  const tables = [
    'payments',
    'payment_methods',
    'payment_attempts',
    'refunds',
    'events',
    'api_keys',
    'idempotency_keys',
    'tenants',
    'bank_accounts',
  ];

  it('the application role is neither superuser nor BYPASSRLS', async () => {
    const [role] = await appSql<{ current_user: string; rolsuper: boolean; rolbypassrls: boolean }[]>`
      SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`;
    expect(role.current_user).toBe(t.config.appDbRole);
    expect(role.rolsuper).toBe(false);
    expect(role.rolbypassrls).toBe(false);
    // The platform's own pool runs as that role too.
    const [platformRole] = await t.platform.sql<{ current_user: string }[]>`SELECT current_user`;
    expect(platformRole.current_user).toBe(t.config.appDbRole);
  });

  it('without app.scope the application role sees no rows, while the superuser does', async () => {
    for (const table of tables) {
      const [{ count: superCount }] = await t.admin<
        { count: number }[]
      >`SELECT count(*)::int AS count FROM ${t.admin(table)}`;
      expect(superCount, table).toBeGreaterThan(0);
      const [{ count }] = await appSql<{ count: number }[]>`SELECT count(*)::int AS count FROM ${appSql(table)}`;
      expect(count, table).toBe(0);
      const [{ count: platformCount }] = await t.platform.sql<
        { count: number }[]
      >`SELECT count(*)::int AS count FROM ${t.platform.sql(table)}`;
      expect(platformCount, table).toBe(0);
    }
  });

  it('a scope shows exactly that tenant and mode, even without a WHERE clause', async () => {
    const rows = await inScope(
      appSql,
      { tenantId: b.id, livemode: false },
      (tx) => tx<{ tenant_id: string; livemode: boolean }[]>`SELECT tenant_id, livemode FROM payments`,
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row).toEqual({ tenant_id: b.id, livemode: false });
    const [{ count }] = await inScope(
      appSql,
      { tenantId: b.id, livemode: false },
      (tx) => tx<{ count: number }[]>`
      SELECT count(*)::int AS count FROM payments WHERE id = ${own.succeeded}`,
    );
    expect(count).toBe(0);
    // The scope is transaction-local: the next statement on the pool is unscoped again.
    const [{ count: after }] = await appSql<{ count: number }[]>`SELECT count(*)::int AS count FROM payments`;
    expect(after).toBe(0);
  });

  it('a scope of many pairs, as a batch sets it, shows exactly those pairs', async () => {
    const others = Array.from({ length: 60 }, (_, i) => ({ tenantId: `ten_rls_absent_${i}`, livemode: i % 2 === 0 }));
    const seen = (scopes: { tenantId: string; livemode: boolean }[]) =>
      inScope(
        appSql,
        scopes,
        (tx) => tx<{ tenant_id: string; livemode: boolean }[]>`
        SELECT DISTINCT tenant_id, livemode FROM payments ORDER BY tenant_id, livemode`,
      );
    expect(await seen([...others, { tenantId: b.id, livemode: false }, ...others])).toEqual([
      { tenant_id: b.id, livemode: false },
    ]);
    expect(await seen(others)).toEqual([]);
    // The tables a tenant owns in both modes (its row, its members) go by the tenants of the scope.
    const tenants = await inScope(
      appSql,
      [...others, { tenantId: b.id, livemode: true }],
      (tx) => tx<{ id: string }[]>`SELECT id FROM tenants`,
    );
    expect(tenants).toEqual([{ id: b.id }]);
    const write = inScope(
      appSql,
      [...others, { tenantId: b.id, livemode: false }],
      (tx) => tx`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method)
      VALUES ('pay_rls_probe_0003', ${a.id}, false, 100, 'usd', 'requires_payment_method', 'automatic')`,
    );
    await expect(write).rejects.toMatchObject({ code: '42501' });
  });

  it("every policy reads the transaction's scope once per statement (an InitPlan), never once per row", async () => {
    const policies = await t.admin<{ tablename: string; qual: string; with_check: string }[]>`
      SELECT tablename, qual, with_check FROM pg_policies WHERE schemaname = 'public'`;
    expect(policies.length).toBeGreaterThan(50);
    for (const policy of policies) {
      expect(policy.with_check, policy.tablename).toBe(policy.qual);
      expect(policy.qual, policy.tablename).toMatch(
        /= ANY \(\( SELECT app_scope_(keys|tenant_ids)\(\) AS app_scope_\1\)::text\[\]\)\)$/,
      );
    }
    const lines = await inScope(
      appSql,
      { tenantId: b.id, livemode: false },
      (tx) => tx<{ 'QUERY PLAN': string }[]>`EXPLAIN SELECT id FROM payments`,
    );
    expect(lines.map((line) => line['QUERY PLAN']).join('\n')).toMatch(/InitPlan/);
  });

  it('rejects writing a row for another tenant under a scoped transaction', async () => {
    const insert = inScope(
      appSql,
      { tenantId: b.id, livemode: false },
      (tx) => tx`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method)
      VALUES ('pay_rls_probe_0001', ${a.id}, false, 100, 'usd', 'requires_payment_method', 'automatic')`,
    );
    await expect(insert).rejects.toMatchObject({ code: '42501' });
    await expect(insert).rejects.toThrow(/row-level security/);
    // The other mode of one's own tenant is another scope too.
    const otherMode = inScope(
      appSql,
      { tenantId: b.id, livemode: false },
      (tx) => tx`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method)
      VALUES ('pay_rls_probe_0002', ${b.id}, true, 100, 'usd', 'requires_payment_method', 'automatic')`,
    );
    await expect(otherMode).rejects.toMatchObject({ code: '42501' });
    const [{ count }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM payments WHERE id LIKE 'pay_rls_probe_%'`;
    expect(count).toBe(0);
  });

  it("cannot update or re-home another tenant's rows", async () => {
    const updated = await inScope(
      appSql,
      { tenantId: b.id, livemode: false },
      (tx) => tx`UPDATE payments SET amount = 1 WHERE id = ${own.succeeded} RETURNING id`,
    );
    expect(updated).toHaveLength(0);
    const bPayment = await ok(await call(t.app, b.testKey, 'POST', '/v1/payments', { amount: 300, currency: 'usd' }));
    const rehome = inScope(
      appSql,
      { tenantId: b.id, livemode: false },
      (tx) => tx`UPDATE payments SET tenant_id = ${a.id} WHERE id = ${bPayment.id}`,
    );
    await expect(rehome).rejects.toMatchObject({ code: '42501' });
    const [row] = await t.admin<
      { tenant_id: string; amount: number }[]
    >`SELECT tenant_id, amount FROM payments WHERE id = ${own.succeeded}`;
    expect(row.amount).toBe(1500);
  });
});
