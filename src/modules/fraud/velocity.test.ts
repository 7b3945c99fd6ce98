import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, ok, TEST_CARDS, type TestApp } from '../../../test/helpers.js';
import { freePort } from '../../../test/process.js';
import { serviceUrl } from '../../../test/services.js';
import {
  InProcessVelocityStore,
  RedisVelocityStore,
  ResilientVelocityStore,
  type VelocityKeys,
  type VelocityStore,
} from './velocity.js';

const redisUrl = serviceUrl('REDIS_URL');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const keysFor = (tenantId: string, at: number, overrides: Partial<VelocityKeys> = {}): VelocityKeys => ({
  tenantId,
  livemode: false,
  decision: `pay_${randomUUID()}`,
  at,
  amount: 1000,
  card: 'fp_card',
  platformCard: `pfp_${tenantId}`,
  email: 'a@example.com',
  ip: '192.0.2.1',
  ipCountry: 'US',
  customer: 'cus_1',
  ...overrides,
});

/** A small history exercising every window and key: the same on both stores. */
function history(tenantId: string, otherTenant: string, start: number): VelocityKeys[] {
  const steps: [number, Partial<VelocityKeys>][] = [
    [0, {}],
    [30 * MINUTE, { amount: 2500, card: 'fp_other', platformCard: `pfp_other_${tenantId}` }],
    [2 * HOUR, { ipCountry: 'GB', ip: '198.51.100.1' }],
    [2 * HOUR + 1, { tenantId: otherTenant }],
    [25 * HOUR, { email: null, amount: 700 }],
    [8 * 24 * HOUR, { amount: 900 }],
    [8 * 24 * HOUR + 10_500, { customer: null, ipCountry: 'DE', ip: '203.0.113.9' }],
    [8 * 24 * HOUR + 20_000, { ipCountry: 'FR', ip: '198.18.48.1' }],
  ];
  return steps.map(([offset, overrides]) => keysFor(tenantId, start + offset, overrides));
}

async function replay(store: VelocityStore, keys: VelocityKeys[]) {
  const snapshots = [];
  for (const k of keys) snapshots.push(await store.recordAndRead(k));
  return snapshots;
}

describe('the in-process store (the training tracker)', () => {
  it('counts sliding windows, sums, distinct cards, tenants, new IP country and last seen', async () => {
    const snapshots = await replay(new InProcessVelocityStore(), history('ten_a', 'ten_b', 1_800_000_000_000));
    expect(snapshots[0]).toMatchObject({ card_count_7d: 0, seconds_since_card_last_seen: -1 });
    expect(snapshots[2]).toMatchObject({
      card_count_1h: 0,
      card_count_24h: 1,
      ip_count_24h: 0,
      email_count_24h: 2,
      email_sum_24h: 3500,
      customer_distinct_cards_24h: 2,
      customer_new_ip_country: 1,
      seconds_since_card_last_seen: 7200,
    });
    // The other tenant's payment sees none of the first tenant's activity, but the card's tenants.
    expect(snapshots[3]).toMatchObject({ card_count_7d: 0, card_distinct_tenants_24h: 1 });
    expect(snapshots[5]).toMatchObject({ card_count_7d: 1, card_sum_7d: 700 });
    expect(snapshots[7]).toMatchObject({ seconds_since_card_last_seen: 9.5, customer_new_ip_country: 1 });
  });
});

describe.skipIf(!redisUrl)('the Redis store', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(redisUrl!);
  });
  afterAll(() => redis.quit());

  it('produces exactly what the in-process store produces, over every window and key', async () => {
    const tenant = `ten_${randomUUID()}`;
    const other = `ten_${randomUUID()}`;
    const start = 1_800_000_000_000;
    expect(await replay(new RedisVelocityStore(redis), history(tenant, other, start))).toEqual(
      await replay(new InProcessVelocityStore(), history(tenant, other, start)),
    );
  });

  it('N payments on one card at once see prior counts 0..N-1, each exactly once', async () => {
    const store = new RedisVelocityStore(redis);
    const tenant = `ten_${randomUUID()}`;
    const at = Date.now();
    const snapshots = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.recordAndRead(keysFor(tenant, at, { amount: 100 + i }))),
    );
    const counts = snapshots.map((s) => s.card_count_1h).sort((a, b) => a - b);
    expect(counts).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('falls back to the in-process store while Redis is unreachable, and says so', async () => {
    const port = await freePort();
    const away = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    away.on('error', () => {});
    const reasons: string[] = [];
    const store = new ResilientVelocityStore(new RedisVelocityStore(away), new InProcessVelocityStore(), (reason) =>
      reasons.push(reason),
    );
    const first = await store.recordAndRead(keysFor('ten_away', Date.now()));
    const second = await store.recordAndRead(keysFor('ten_away', Date.now()));
    expect([first.card_count_1h, second.card_count_1h]).toEqual([0, 1]);
    expect(reasons).toEqual(['redis_unavailable', 'redis_unavailable']);
    away.disconnect();
  });
});

describe.each([
  ['Redis', () => (redisUrl ? { REDIS_URL: redisUrl } : undefined)],
  ['in-process', () => ({})],
])('parallel payments through the API (%s store)', (_name, env) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await bootApp(env() ?? {});
  });
  afterAll(() => t.close());

  it('each of N parallel payments on one card sees a distinct prior count, 0..N-1', async () => {
    const tenant = await createTenant(t.app, 'Velocity');
    const n = 12;
    const payments = await Promise.all(
      Array.from({ length: n }, async () =>
        ok(
          await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
            amount: 2000,
            currency: 'usd',
            payment_method: card(TEST_CARDS.visa),
            confirm: true,
          }),
        ),
      ),
    );
    const rows = await t.admin<{ count: number }[]>`
      SELECT (fraud_inputs->'velocity'->>'card_count_1h')::int AS count FROM payments
      WHERE id = ANY(${payments.map((p) => p.id as string)})`;
    expect(rows.map((r) => r.count).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});

describe('Redis away', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await bootApp({ REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
  });
  afterAll(() => t.close());

  it('the decision still completes (velocity in process), and the degradation is metered', async () => {
    const tenant = await createTenant(t.app, 'Velocity without Redis');
    const payment = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 2000,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
      }),
    );
    expect(payment.outcome.action).toBe('allow');
    const metrics = await t.platform.metrics.registry.getSingleMetricAsString('fraud_velocity_degraded_total');
    expect(metrics).toMatch(/fraud_velocity_degraded_total\{reason="redis_unavailable"\} [1-9]/);
  });
});
