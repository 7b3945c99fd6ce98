import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, ok, TEST_CARDS, type TestApp } from '../../../test/helpers.js';
import { freePort, waitFor } from '../../../test/process.js';
import { serviceUrl } from '../../../test/services.js';
import { decisionInputs, type StoredInputs } from './engine.js';
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

/**
 * Payments at chosen times (an injected clock) around the bucket edges of each window: the 1 h
 * window is the current minute and the 59 before it, the 24 h and 7 d ones the current hour and
 * the 23 (167) before it. `start` is on an hour boundary.
 */
async function bucketEdges(store: VelocityStore, tenantId: string) {
  const start = 1_800_000_000_000;
  const at = (offset: number, amount: number) =>
    store.recordAndRead(keysFor(tenantId, start + offset, { amount, email: null, ip: null, customer: null }));
  await at(0, 100); // minute 0, hour 0
  await at(59 * MINUTE + 59_999, 200); // the last millisecond of minute 59
  return {
    // 60 min after the first: minute 60's window is minutes 1..60, which no longer holds minute 0.
    minute60: await at(60 * MINUTE, 400),
    // 61 min 59.999 s: minute 61's window is minutes 2..61; minute 59 still in it.
    minute61: await at(61 * MINUTE + 59_999, 800),
    // 23 h 59 min: hour 23's day is hours 0..23, all four so far.
    hour23: await at(23 * HOUR + 59 * MINUTE, 1600),
    // 24 h: hour 24's day is hours 1..24: hour 0's two payments left it, the week keeps them.
    hour24: await at(24 * HOUR, 3200),
    // 7 d later: hour 168's week is hours 1..168, without hour 0.
    week: await at(7 * 24 * HOUR, 6400),
  };
}

function expectBucketEdges(edges: Awaited<ReturnType<typeof bucketEdges>>) {
  expect(edges.minute60).toMatchObject({ card_count_1h: 1, card_sum_1h: 200, card_count_24h: 2, card_sum_24h: 300 });
  expect(edges.minute61).toMatchObject({ card_count_1h: 2, card_sum_1h: 600, card_count_24h: 3 });
  expect(edges.hour23).toMatchObject({ card_count_1h: 0, card_count_24h: 4, card_sum_24h: 1500 });
  expect(edges.hour24).toMatchObject({
    card_count_24h: 3,
    card_sum_24h: 2800,
    card_count_7d: 5,
    card_sum_7d: 3100,
    seconds_since_card_last_seen: 60,
  });
  expect(edges.week).toMatchObject({
    card_count_24h: 0,
    card_count_7d: 4,
    card_sum_7d: 6000,
    seconds_since_card_last_seen: (6 * 24 * HOUR) / 1000,
  });
}

describe('bucket boundaries (injected clock)', () => {
  it('in process: each window holds its own bucket and the n - 1 before it', async () => {
    expectBucketEdges(await bucketEdges(new InProcessVelocityStore(), `ten_${randomUUID()}`));
  });

  it('in process: the same decision asked again reads the same and counts once', async () => {
    const store = new InProcessVelocityStore();
    const first = keysFor('ten_replay', 1_800_000_000_000);
    await store.recordAndRead(keysFor('ten_replay', 1_800_000_000_000 - MINUTE));
    const reading = await store.recordAndRead(first);
    expect(await store.recordAndRead({ ...first, at: first.at + 5 * MINUTE })).toEqual(reading);
    const next = await store.recordAndRead(keysFor('ten_replay', first.at + 6 * MINUTE));
    expect([reading.card_count_1h, next.card_count_1h]).toEqual([1, 2]);
  });

  it('in process: a settled decision is forgotten, so memory holds only the decisions in flight', async () => {
    const store = new InProcessVelocityStore();
    const keys = [0, 1, 2].map((i) => keysFor('ten_settle', 1_800_000_000_000 + i * MINUTE));
    for (const k of keys) await store.recordAndRead(k);
    expect(store.kept).toBe(3);
    store.settle(keys[0]);
    store.settle(keys[2]);
    expect(store.kept).toBe(1);
    // The unsettled one still replays its reading.
    expect((await store.recordAndRead({ ...keys[1], at: keys[1].at + MINUTE })).card_count_1h).toBe(1);
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

  it('has the in-process bucket boundaries', async () => {
    expectBucketEdges(await bucketEdges(new RedisVelocityStore(redis), `ten_${randomUUID()}`));
  });

  it('the same decision asked again (a recovery replay) reads the same and counts once', async () => {
    const store = new RedisVelocityStore(redis);
    const tenant = `ten_${randomUUID()}`;
    const first = keysFor(tenant, Date.now());
    await store.recordAndRead(keysFor(tenant, first.at - MINUTE));
    const reading = await store.recordAndRead(first);
    expect(await store.recordAndRead({ ...first, at: first.at + 5 * MINUTE })).toEqual(reading);
    const next = await store.recordAndRead(keysFor(tenant, first.at + 6 * MINUTE));
    expect([reading.card_count_1h, next.card_count_1h]).toEqual([1, 2]);
    expect(reading.seconds_since_card_last_seen).toBe(60);
  });

  it("deletes a settled decision's reading", async () => {
    const store = new RedisVelocityStore(redis);
    const keys = keysFor(`ten_${randomUUID()}`, Date.now());
    await store.recordAndRead(keys);
    const decisionKeys = () => redis.keys(`fraud:v:${keys.tenantId}:*:decision:*`);
    expect(await decisionKeys()).toHaveLength(1);
    store.settle(keys);
    await waitFor(async () => (await decisionKeys()).length === 0, 5_000, 'the decision key is deleted');
  });

  it('sums large amounts exactly, as the in-process store does', async () => {
    const tenant = `ten_${randomUUID()}`;
    const at = Date.now();
    const amount = 4_000_000_000_000_001;
    const stores = [new RedisVelocityStore(redis), new InProcessVelocityStore()];
    for (const store of stores) await store.recordAndRead(keysFor(tenant, at, { amount }));
    const readings = await Promise.all(stores.map((store) => store.recordAndRead(keysFor(tenant, at + 1))));
    expect(readings.map((r) => r.card_sum_1h)).toEqual([amount, amount]);
  });

  it("keeps a hot key's hash bounded: stale buckets are deleted as they leave the windows", async () => {
    const store = new RedisVelocityStore(redis);
    const tenant = `ten_${randomUUID()}`;
    const start = 1_800_000_000_000;
    // One payment every 7 minutes for 9 days: 1,851 payments over more buckets than any window spans.
    const n = Math.floor((9 * 24 * HOUR) / (7 * MINUTE));
    // Sent at once on one connection, which Redis runs in the order sent.
    const readings = await Promise.all(
      Array.from({ length: n }, (_, i) => store.recordAndRead(keysFor(tenant, start + i * 7 * MINUTE))),
    );
    const last = readings.at(-1)!;
    const fields = await redis.hlen(`fraud:v:${tenant}:test:card:fp_card`);
    // Two fields (count, sum) per minute bucket of the last hour and per hour bucket of the week, and last.
    expect(fields).toBeLessThanOrEqual(2 * (60 + 168) + 1);
    expect(last.card_count_7d).toBeGreaterThan(1400);
    // The payments of minutes m - 7 … m - 56 before the last one's minute m.
    expect(last.card_count_1h).toBe(8);
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
    const rows = await t.admin<{ inputs: StoredInputs }[]>`
      SELECT inputs FROM payment_fraud_decisions WHERE payment_id = ANY(${payments.map((p) => p.id as string)})`;
    expect(rows).toHaveLength(n);
    const counts = rows.map((r) => decisionInputs(r.inputs).velocity.card_count_1h);
    expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
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
    // The start waited a moment for Redis, then went on without it, and said so.
    expect(t.logs.join('')).toContain('Redis is not answering');
  });
});
