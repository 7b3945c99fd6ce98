import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bootApp, call, createTenant, expectError, ok, type TestApp, type TestTenant } from './helpers.js';
import { waitFor } from './process.js';
import { startStreamingReplica, type StreamingReplica } from './streaming-replica.js';
import { ReadRouter } from '../src/db/replica.js';

// Two API processes on one primary, both reading from a real hot standby of it.
let replica: StreamingReplica;
let a: TestApp;
let b: TestApp;
let tenant: TestTenant;
let writer: TestTenant;

const env = (replicaUrl: string, maxLagMs = '600000') => ({
  DATABASE_REPLICA_URL: replicaUrl,
  DATABASE_REPLICA_MAX_LAG_MS: maxLagMs,
});
const router = (t: TestApp) => t.platform.readRouter as ReadRouter;
const scopeOf = (t: TestTenant) => ({ tenantId: t.id, livemode: false });
const customerIds = async (t: TestApp, key: string, headers: Record<string, string> = {}) =>
  (
    (await ok(await call(t.app, key, 'GET', '/v1/customers?limit=100', undefined, headers))).data as { id: string }[]
  ).map((c) => c.id);
const readsServed = async (t: TestApp, reason: string) =>
  (await t.platform.metrics.dbReads.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

/** Until the replica has replayed everything the primary has flushed now, and `t` sends the tenants' reads there. */
async function caughtUp(t: TestApp, tenants: TestTenant[] = []) {
  const [{ lsn }] = await t.admin<{ lsn: string }[]>`SELECT pg_current_wal_flush_lsn()::text AS lsn`;
  const target = lsn.split('/').map((part) => parseInt(part, 16));
  await waitFor(
    async () => {
      const status = await router(t).refresh();
      const replay = status.replay_lsn?.split('/').map((part) => parseInt(part, 16));
      return (
        status.state === 'up' &&
        tenants.every((one) => router(t).routeFor(scopeOf(one)) === 'replica') &&
        replay !== undefined &&
        (replay[0] > target[0] || (replay[0] === target[0] && replay[1] >= target[1]))
      );
    },
    30_000,
    'the replica to catch up',
  );
}

beforeAll(async () => {
  replica = await startStreamingReplica(inject('adminDatabaseUrl'));
  a = await bootApp(env(replica.url));
  b = await bootApp(env(replica.url));
  tenant = await createTenant(a.app, 'Replica reader');
  writer = await createTenant(a.app, 'Replica writer');
  await caughtUp(a, [tenant, writer]);
  await caughtUp(b, [tenant, writer]);
}, 120_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await replica?.remove();
});

describe('read replica', () => {
  it('serves a client with no recent write from the replica: a write it has not replayed is not in the list', async () => {
    const before = await customerIds(a, tenant.testKey);
    await replica.pauseReplay();
    try {
      // Another API process writes: process `a` has no mark for this tenant.
      const created = await call(b.app, tenant.testKey, 'POST', '/v1/customers', { name: 'Written elsewhere' });
      const customer = await ok(created);
      const readAfter = created.headers['payforward-read-after'] as string;
      expect(readAfter).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      const replicaReads = await readsServed(a, 'replica');
      const stale = await customerIds(a, tenant.testKey);
      expect(stale).toEqual(before);
      expect(stale).not.toContain(customer.id);
      expect(await readsServed(a, 'replica')).toBe(replicaReads + 1);

      // The write's position, presented to the other process, sends the read to the primary.
      expect(await customerIds(a, tenant.testKey, { 'PayForward-Read-After': readAfter })).toContain(customer.id);
      // ... and every read of this tenant in `a` after it, until the replica has replayed that far.
      expect(await customerIds(a, tenant.testKey)).toContain(customer.id);
      expect(router(a).routeFor(scopeOf(tenant))).toBe('recent_write');
    } finally {
      await replica.resumeReplay();
    }
    await caughtUp(a, [tenant]);
  });

  it("shows a client's own write in its next list while the replica has not replayed it", async () => {
    await replica.pauseReplay();
    try {
      const customer = await ok(await call(a.app, writer.testKey, 'POST', '/v1/customers', { name: 'Own write' }));
      const primaryReads = await readsServed(a, 'recent_write');
      expect(await customerIds(a, writer.testKey)).toContain(customer.id);
      expect(await readsServed(a, 'recent_write')).toBe(primaryReads + 1);
      // The payments list goes the same way, and the replica really lacks the customer.
      await ok(await call(a.app, writer.testKey, 'GET', '/v1/payments'));
      const onReplica = await replica.admin`SELECT 1 FROM customers WHERE id = ${customer.id}`;
      expect(onReplica).toHaveLength(0);
      // Another tenant, which wrote nothing, still reads the replica.
      expect(router(a).routeFor(scopeOf(tenant))).toBe('replica');
    } finally {
      await replica.resumeReplay();
    }
    await caughtUp(a, [writer]);
  });

  it('answers from the primary while the replica is stopped, and goes back to it once it is started', async () => {
    const customer = await ok(await call(b.app, tenant.testKey, 'POST', '/v1/customers', { name: 'Before the stop' }));
    await caughtUp(a, [tenant]);
    await replica.stop();
    try {
      for (let i = 0; i < 3; i++) expect(await customerIds(a, tenant.testKey)).toContain(customer.id);
      const status = await router(a).refresh();
      expect(status.state).toBe('down');
      expect(router(a).routeFor(scopeOf(tenant))).toBe('replica_down');
      const ready = await ok(await a.app.inject({ method: 'GET', url: '/ready' }));
      expect(ready).toMatchObject({ status: 'ready', replica: { state: 'down', lag_ms: null } });
      const metrics = await a.platform.metrics.registry.getSingleMetricAsString('db_replica_serving');
      expect(metrics).toContain('db_replica_serving 0');
    } finally {
      await replica.start();
    }
    await waitFor(async () => router(a).routeFor(scopeOf(tenant)) === 'replica', 30_000, 'reads back on the replica');
    const replicaReads = await readsServed(a, 'replica');
    expect(await customerIds(a, tenant.testKey)).toContain(customer.id);
    expect(await readsServed(a, 'replica')).toBe(replicaReads + 1);
  });

  it('sends reads to the primary while the replica lags more than DATABASE_REPLICA_MAX_LAG_MS', async () => {
    const strict = await bootApp(env(replica.url, '300'));
    try {
      await caughtUp(strict, [tenant]);
      await replica.pauseReplay();
      try {
        const customer = await ok(
          await call(b.app, tenant.testKey, 'POST', '/v1/customers', { name: 'While lagging' }),
        );
        await waitFor(async () => (await router(strict).refresh()).state === 'lagging', 20_000, 'lagging');
        expect(router(strict).routeFor(scopeOf(tenant))).toBe('replica_lagging');
        expect(await customerIds(strict, tenant.testKey)).toContain(customer.id);
        expect(router(strict).status().lag_ms).toBeGreaterThan(300);
      } finally {
        await replica.resumeReplay();
      }
      await waitFor(async () => (await router(strict).refresh()).state === 'up', 20_000, 'up again');
    } finally {
      await strict.close();
    }
  });

  it('keeps a forgotten client waiting: marks beyond the bound become a floor for every client', async () => {
    const small = new ReadRouter(a.platform.sql, a.platform.replica, { maxLagMs: 600_000, pollMs: 5, maxClients: 2 });
    try {
      await waitFor(async () => (await small.refresh()).state === 'up', 20_000, 'up');
      const [first, second, third] = ['t1', 't2', 't3'].map((id) => ({ tenantId: `tenant_${id}`, livemode: false }));
      await replica.pauseReplay();
      try {
        // Something the paused replica lacks, so that the positions below are ahead of its replay.
        await ok(await call(b.app, tenant.testKey, 'POST', '/v1/customers', { name: 'Unreplayed' }));
        expect(await small.wrote(first)).toBeGreaterThan(0);
        await small.wrote(second);
        await small.wrote(third);
        // Whatever `first` wrote is no longer remembered for it alone, so every client waits for it.
        for (const scope of [first, second, third, scopeOf(tenant)]) expect(small.routeFor(scope)).toBe('recent_write');
      } finally {
        await replica.resumeReplay();
      }
      await waitFor(async () => (await small.refresh()) && small.routeFor(first) === 'replica', 20_000, 'replayed');
      expect(small.routeFor(scopeOf(tenant))).toBe('replica');
    } finally {
      small.close();
    }
  });

  it('refuses a PayForward-Read-After that is not a position', async () => {
    expectError(
      await call(a.app, tenant.testKey, 'GET', '/v1/customers', undefined, { 'PayForward-Read-After': 'x' }),
      400,
      {
        type: 'invalid_request_error',
        code: 'read_after_invalid',
        param: 'PayForward-Read-After',
      },
    );
  });
});
