import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, createTenant, ok, PLATFORM_KEY, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { entryHash } from './verify.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Audit tenant');
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
