import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkers } from '../src/workers/index.js';
import {
  bootAppOnOwnDatabase,
  call,
  createTenant,
  ok,
  PLATFORM_KEY,
  payByCard,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { waitFor } from './process.js';

// The real worker loops on a database of their own, with one tenant made to fail by a trigger the
// test installs: a real database error inside that tenant's settlement, nothing mocked.

let t: TestApp;

beforeAll(async () => {
  t = await bootAppOnOwnDatabase('worker_isolation', {
    SETTLEMENT_INTERVAL_MS: '20',
    WORKER_RETRY_BASE_MS: '20',
    WORKER_RETRY_MAX_MS: '200',
  });
});
afterAll(() => t?.close());

async function dailyTenant(name: string): Promise<TestTenant> {
  const tenant = await createTenant(t.app, name);
  const schedule = { settlement_schedule: { type: 'daily', delay_days: 0 } };
  await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, schedule));
  return tenant;
}

const pay = (key: string, amount: number) => payByCard(t.app, key, amount);

async function available(key: string) {
  const body = await ok(await call(t.app, key, 'GET', '/v1/balance'));
  return body.available.find((f: { currency: string }) => f.currency === 'usd')?.amount ?? 0;
}

async function settlementFailures() {
  const counter = await t.platform.metrics.registry.getSingleMetric('worker_item_failures_total')?.get();
  return counter?.values.find((v) => v.labels.worker === 'settlement')?.value ?? 0;
}

describe('worker loops isolate failures', () => {
  it('a tenant whose settlement fails is logged, counted and retried with backoff while the others settle; it settles once it can', async () => {
    // Created first, so that its group tends to come first and, unisolated, would stop the pass.
    const failing = await dailyTenant('Failing settlement');
    const healthy = await dailyTenant('Healthy settlement');
    await t.admin.unsafe(`
      CREATE FUNCTION test_refuse_settlement() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.tenant_id = '${failing.id}' THEN RAISE EXCEPTION 'test trigger refuses settlements of %', NEW.tenant_id; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_refuse_settlement BEFORE INSERT ON settlements FOR EACH ROW EXECUTE FUNCTION test_refuse_settlement();`);
    const failingPayment = await pay(failing.testKey, 1_000);
    const healthyPayment = await pay(healthy.testKey, 2_000);

    const workers = startWorkers(t.platform, t.app.log);
    try {
      await waitFor(
        async () => (await available(healthy.testKey)) === healthyPayment.net,
        30_000,
        'the healthy tenant settled',
      );
      // Retried, not given up after the first failure.
      await waitFor(async () => (await settlementFailures()) >= 2, 30_000, 'the failing group retried');
      expect(await available(failing.testKey)).toBe(0);
      const logged = t.logs
        .map((line) => JSON.parse(line))
        .filter((line) => line.worker === 'settlement' && line.item === `${failing.id}:false:usd`);
      expect(logged.length).toBeGreaterThanOrEqual(2);
      expect(JSON.stringify(logged[0])).toContain('test trigger refuses settlements');
      // Backoff: each retry waits longer than the one before (20 ms, 40, 80…, at most 200).
      const delays = logged.map((line) => line.retry_in_ms);
      expect(delays.slice(0, 2)).toEqual([20, 40]);
      expect(logged.map((line) => line.failures).slice(0, 2)).toEqual([1, 2]);

      await t.admin`DROP TRIGGER test_refuse_settlement ON settlements`;
      await waitFor(
        async () => (await available(failing.testKey)) === failingPayment.net,
        30_000,
        'the failing tenant settled after the fault was removed',
      );
    } finally {
      await workers.stop();
      await t.admin`DROP TRIGGER IF EXISTS test_refuse_settlement ON settlements`;
    }
  });
});
