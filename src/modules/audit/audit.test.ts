import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import {
  bootWithTenants,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { entryHash } from './verify.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Audit tenant');
});
afterAll(() => t.close());

interface Entry {
  id: string;
  action: string;
  actor: { type: string; id: string; ip: string | null; user_agent: string | null };
  target: { type: string; id: string };
  changes: { before: Record<string, unknown> | null; after: Record<string, unknown> | null };
  request_id: string | null;
  sequence: number;
  hash: string;
  livemode: boolean;
}

const UA = { 'user-agent': 'audit-test/1.0' };

async function entries(key: string, query = ''): Promise<Entry[]> {
  const body = await ok(await call(t.app, key, 'GET', `/v1/audit_logs${query}`));
  return body.data;
}

async function only(key: string, query: string): Promise<Entry> {
  const found = await entries(key, query);
  expect(found).toHaveLength(1);
  return found[0];
}

/** Asserts the tenant's entries form one unbroken chain from the genesis hash; returns its length. */
async function expectChain(tenantId: string): Promise<number> {
  const rows = await t.admin<{ seq: number; content: string; prev_hash: Buffer; hash: Buffer }[]>`
    SELECT seq, content, prev_hash, hash FROM audit_entries WHERE tenant_id = ${tenantId} ORDER BY seq`;
  let prev: Buffer = Buffer.alloc(32);
  rows.forEach((row, i) => {
    expect(row.seq).toBe(i + 1);
    expect(row.prev_hash.equals(prev)).toBe(true);
    expect(entryHash(prev, row.seq, row.content).equals(row.hash)).toBe(true);
    prev = row.hash;
  });
  const [head] = await t.admin<{ seq: number; head_hash: Buffer }[]>`
    SELECT seq, head_hash FROM audit_chains WHERE tenant_id = ${tenantId}`;
  expect(head.seq).toBe(rows.length);
  expect(head.head_hash.equals(prev)).toBe(true);
  return rows.length;
}

describe('API keys are audited', () => {
  it('records create, roll and revoke with actor, request id and the changed fields, never the secret', async () => {
    const created = await call(
      t.app,
      tenant.testKey,
      'POST',
      '/v1/api_keys',
      { scopes: ['payments:read'], name: 'ro' },
      UA,
    );
    const key = await ok(created);
    const entry = await only(tenant.testKey, `?action=api_key.created&object=${key.id}`);
    expect(entry.actor).toEqual({
      type: 'api_key',
      id: tenant.testKeyId,
      ip: '127.0.0.1',
      user_agent: 'audit-test/1.0',
    });
    expect(entry.request_id).toBe(created.headers['request-id']);
    expect(entry.changes.before).toBeNull();
    expect(entry.changes.after).toMatchObject({ type: 'restricted', name: 'ro', scopes: ['payments:read'] });
    expect(JSON.stringify(entry)).not.toContain(key.secret);

    const rolled = await ok(await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/roll`, {}));
    const roll = await only(tenant.testKey, `?action=api_key.rolled&object=${key.id}`);
    expect(roll.changes).toEqual({
      before: { rolled_to: null, expires_at: null },
      after: { rolled_to: rolled.id, expires_at: expect.any(Number) },
    });
    expect(JSON.stringify(await entries(tenant.testKey, `?object=${rolled.id}`))).not.toContain(rolled.secret);

    await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/api_keys/${rolled.id}/revoke`));
    const revoke = await only(tenant.testKey, `?action=api_key.revoked&object=${rolled.id}`);
    expect(revoke.actor).toMatchObject({ type: 'operator', id: 'platform_api_key' });
    expect(revoke.changes).toEqual({ before: { revoked: false }, after: { revoked: true } });
  });
});

describe('the hash chain', () => {
  it('links every entry of a tenant to the one before, in both modes', async () => {
    expect(await expectChain(tenant.id)).toBeGreaterThanOrEqual(3);
  });

  it('stays one valid chain under 30 concurrent appends', async () => {
    const other = await createTenant(t.app, 'Concurrent audit tenant');
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        call(t.app, other.testKey, 'POST', '/v1/api_keys', { scopes: ['events:read'], name: `k${i}` }),
      ),
    );
    results.forEach((r) => expect(r.statusCode).toBe(200));
    // Tenant creation wrote three (the tenant and its two keys).
    expect(await expectChain(other.id)).toBe(33);
  });
});

describe('administrative actions are audited', () => {
  it('records tenant creation, routing, settlement schedule and pricing changes by the operator', async () => {
    const created = await ok(await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', { name: 'Audited settings' }, UA));
    const live = created.secret_keys.live.secret;
    const creation = await only(live, '?action=tenant.created');
    expect(creation.actor).toMatchObject({ type: 'operator', id: 'platform_api_key', user_agent: 'audit-test/1.0' });
    expect(creation.changes.after).toEqual({
      name: 'Audited settings',
      processors: ['sim_alpha', 'sim_beta'],
      settlement_schedule: { type: 'daily', delay_days: 2 },
    });
    // The default keys' creation is in each mode's view, the secret nowhere.
    const testKeys = await entries(created.secret_keys.test.secret, '?action=api_key.created');
    expect(testKeys.map((e) => e.target.id)).toEqual([created.secret_keys.test.id]);
    expect(JSON.stringify(testKeys)).not.toContain(created.secret_keys.test.secret);

    const update = await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${created.id}`, {
      processors: ['sim_beta', 'sim_alpha'],
      settlement_schedule: { type: 'instant', delay_days: 0 },
    });
    await ok(update);
    const routing = await only(live, '?action=tenant.routing_updated');
    expect(routing.changes).toEqual({
      before: { processors: ['sim_alpha', 'sim_beta'] },
      after: { processors: ['sim_beta', 'sim_alpha'] },
    });
    expect(routing.request_id).toBe(update.headers['request-id']);
    const schedule = await only(live, '?action=tenant.settlement_schedule_updated');
    expect(schedule.changes.after).toEqual({ settlement_schedule: { type: 'instant', delay_days: 0 } });
    expect(await entries(live, '?action=tenant.renamed')).toEqual([]);

    await ok(
      await call(t.app, PLATFORM_KEY, 'PUT', `/v1/tenants/${created.id}/pricing`, {
        livemode: false,
        type: 'blended',
        processing: { percent_bps: 250, fixed: 25 },
        international_bps: 150,
        currency_conversion_bps: 100,
        instant_settlement_bps: 100,
        refund_fee: { fixed: 0 },
        dispute_fee: { fixed: 1500 },
      }),
    );
    const pricing = await only(created.secret_keys.test.secret, '?action=pricing_plan.updated');
    expect(pricing.changes.before).toMatchObject({ version: 0, plan: { processing: { percent_bps: 290, fixed: 30 } } });
    expect(pricing.changes.after).toMatchObject({ version: 1, plan: { processing: { percent_bps: 250, fixed: 25 } } });
  });

  it('records bank accounts, payouts and refunds without account or card numbers', async () => {
    const money = await createTenant(t.app, 'Audited money');
    await ok(
      await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${money.id}`, {
        settlement_schedule: { type: 'instant', delay_days: 0 },
      }),
    );
    const account = await ok(
      await call(t.app, money.testKey, 'POST', '/v1/bank_accounts', {
        account_number: '000999888777',
        routing_number: '110000000',
        country: 'US',
        currency: 'usd',
      }),
    );
    const wrong = await call(t.app, money.testKey, 'POST', `/v1/bank_accounts/${account.id}/verify`, {
      amounts: [1, 2],
    });
    expect(wrong.statusCode).toBe(400);
    await ok(await call(t.app, money.testKey, 'POST', `/v1/bank_accounts/${account.id}/verify`, { amounts: [32, 45] }));
    const actions = (await entries(money.testKey, `?object=${account.id}`)).map((e) => e.action);
    expect(actions).toEqual(['bank_account.verified', 'bank_account.verification_failed', 'bank_account.created']);
    const failed = await only(money.testKey, `?action=bank_account.verification_failed&object=${account.id}`);
    expect(failed.changes.after).toEqual({ attempts_left: 2 });

    const payment = await ok(
      await call(t.app, money.testKey, 'POST', '/v1/payments', {
        amount: 10_000,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
      }),
    );
    const refund = await ok(
      await call(t.app, money.testKey, 'POST', '/v1/refunds', { payment: payment.id, amount: 500 }),
    );
    const refunded = await only(money.testKey, `?action=refund.created&object=${refund.id}`);
    expect(refunded.changes.after).toEqual({
      amount: 500,
      currency: 'usd',
      payment: payment.id,
      reason: null,
      status: 'pending',
    });
    const payout = await ok(await call(t.app, money.testKey, 'POST', '/v1/payouts', { amount: 1000, currency: 'usd' }));
    const paidOut = await only(money.testKey, `?action=payout.created&object=${payout.id}`);
    expect(paidOut.changes.after).toMatchObject({ amount: 1000, currency: 'usd', destination: account.id });

    await ok(await call(t.app, money.testKey, 'POST', `/v1/bank_accounts/${account.id}`, { metadata: { a: 'b' } }));
    expect((await only(money.testKey, '?action=bank_account.updated')).changes).toEqual({
      before: { metadata: {} },
      after: { metadata: { a: 'b' } },
    });
    await ok(await call(t.app, money.testKey, 'DELETE', `/v1/bank_accounts/${account.id}`));
    expect((await only(money.testKey, '?action=bank_account.deleted')).changes.after).toMatchObject({ deleted: true });

    const [{ contents }] = await t.admin<{ contents: string }[]>`
      SELECT string_agg(content, ' ') AS contents FROM audit_entries WHERE tenant_id = ${money.id}`;
    expect(contents).not.toContain('000999888777');
    expect(contents).not.toContain(TEST_CARDS.visa);
    expect(contents).not.toContain(money.testKey);
  });
});

describe('GET /v1/audit_logs', () => {
  let tenant2: TestTenant;
  beforeAll(async () => {
    tenant2 = await createTenant(t.app, 'Audit list tenant');
    for (let i = 0; i < 5; i++)
      await ok(await call(t.app, tenant2.testKey, 'POST', '/v1/api_keys', { scopes: ['events:read'], name: `n${i}` }));
  });

  it('pages newest first with a cursor and filters by actor, action prefix, object and time', async () => {
    const first = await ok(await call(t.app, tenant2.testKey, 'GET', '/v1/audit_logs?limit=3'));
    expect(first.has_more).toBe(true);
    const second = await ok(
      await call(t.app, tenant2.testKey, 'GET', `/v1/audit_logs?limit=3&starting_after=${first.data[2].id}`),
    );
    const sequences = [...first.data, ...second.data].map((e: Entry) => e.sequence);
    // Test mode's share of the chain: the default test key (1), then the five keys (4–8); 2 and 3 are live.
    expect(sequences).toEqual([8, 7, 6, 5, 4, 1]);
    expect((await entries(tenant2.testKey, `?actor=${tenant2.testKeyId}&limit=100`)).length).toBe(5);
    expect((await entries(tenant2.testKey, '?action=api_key.*&limit=100')).length).toBe(6);
    expect(await entries(tenant2.testKey, '?action=api_key.%25')).toEqual([]);
    expect((await entries(tenant2.testKey, `?object=${tenant2.testKeyId}`)).map((e) => e.action)).toEqual([
      'api_key.created',
    ]);
    expect(await entries(tenant2.testKey, '?created[lt]=1000')).toEqual([]);
  });

  it('shows a tenant only its own entries in its own mode; the operator reads any chain', async () => {
    const mine = await entries(tenant2.testKey, '?limit=100');
    expect(mine.every((e) => !e.livemode)).toBe(true);
    expect(await entries(tenant.testKey, `?object=${tenant2.testKeyId}`)).toEqual([]);
    const cursor = await call(t.app, tenant.testKey, 'GET', `/v1/audit_logs?starting_after=${mine[0].id}`);
    expect(cursor.statusCode).toBe(400);
    expect(cursor.json().error.param).toBe('starting_after');
    const operator = await entries(PLATFORM_KEY, `?tenant=${tenant2.id}&limit=100`);
    expect(operator.map((e) => e.id)).toEqual(mine.map((e) => e.id));
    const live = await entries(PLATFORM_KEY, `?tenant=${tenant2.id}&livemode=true`);
    expect(live.map((e) => e.action)).toEqual(['tenant.created', 'api_key.created']);
  });

  it('answers 400, 401 and 403 in the error envelope', async () => {
    const bad = await call(t.app, tenant2.testKey, 'GET', '/v1/audit_logs?limit=0');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ type: 'invalid_request_error', param: 'limit' });
    const foreign = await call(t.app, tenant2.testKey, 'GET', `/v1/audit_logs?tenant=${tenant.id}`);
    expect(foreign.statusCode).toBe(400);
    expect(foreign.json().error.param).toBe('tenant');
    const unknown = await call(t.app, tenant2.testKey, 'GET', '/v1/audit_logs/export?colour=red');
    expect(unknown.statusCode).toBe(400);
    const none = await t.app.inject({ method: 'GET', url: '/v1/audit_logs' });
    expect(none.statusCode).toBe(401);
    const restricted = await ok(
      await call(t.app, tenant2.testKey, 'POST', '/v1/api_keys', { scopes: ['events:read'] }),
    );
    for (const url of ['/v1/audit_logs', '/v1/audit_logs/export']) {
      const refused = await call(t.app, restricted.secret, 'GET', url);
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.code).toBe('missing_scope');
    }
    const reader = await ok(
      await call(t.app, tenant2.testKey, 'POST', '/v1/api_keys', { scopes: ['audit_logs:read'] }),
    );
    await ok(await call(t.app, reader.secret, 'GET', '/v1/audit_logs'));
  });

  it('exports every matching entry as CSV, oldest first, and audits the export', async () => {
    const response = await call(t.app, tenant2.testKey, 'GET', '/v1/audit_logs/export?action=api_key.*', undefined, UA);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/csv');
    const rows = parse(response.body, { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => r.action).every((a) => a === 'api_key.created')).toBe(true);
    const sequences = rows.map((r) => Number(r.sequence));
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
    expect(JSON.parse(rows[1].after)).toMatchObject({ scopes: ['events:read'] });
    const listed = await entries(tenant2.testKey, '?action=api_key.created&limit=100');
    expect(rows.map((r) => r.id)).toEqual(listed.map((e) => e.id).reverse());
    const exported = await only(tenant2.testKey, '?action=audit_log.exported');
    expect(exported.actor).toMatchObject({ type: 'api_key', id: tenant2.testKeyId, user_agent: 'audit-test/1.0' });
    expect(exported.changes.after).toMatchObject({ format: 'csv', filters: { action: 'api_key.*' } });
    expect(exported.request_id).toBe(response.headers['request-id']);
  });
});
