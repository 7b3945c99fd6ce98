import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, createTenant, TestClock, type TestApp, type TestTenant } from './helpers.js';
import { serviceUrl } from './services.js';

const WINDOW_MS = 60_000;
const limits = { RATE_LIMIT_PER_KEY: '5', RATE_LIMIT_PER_TENANT: '1000', RATE_LIMIT_WINDOW_MS: String(WINDOW_MS) };

type Response = Awaited<ReturnType<typeof call>>;

/**
 * Windows are fixed and aligned to the clock; a burst that straddled a boundary would be counted in
 * two windows. Every app here judges time by this clock, stopped in the middle of a window, so a
 * burst stays in one window however slowly the machine runs it; tests move it on explicitly.
 */
const clock = new TestClock();
clock.freeze((Math.floor(Date.now() / WINDOW_MS) + 0.5) * WINDOW_MS);
const bootLimited = (env: Record<string, string>) => bootApp(env, undefined, { clock });

function expectLimited(response: Response, limit: number) {
  expect(response.statusCode, response.body).toBe(429);
  const { error } = response.json();
  expect(error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit', param: null });
  expect(error.request_id).toBe(response.headers['request-id']);
  const retryAfter = Number(response.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW_MS / 1000);
  expect(response.headers['ratelimit-limit']).toBe(String(limit));
  expect(response.headers['ratelimit-remaining']).toBe('0');
  expect(Number(response.headers['ratelimit-reset'])).toBe(retryAfter);
}

function expectAllowed(response: Response, limit: number, remaining: number) {
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['ratelimit-limit']).toBe(String(limit));
  expect(response.headers['ratelimit-remaining']).toBe(String(remaining));
  const reset = Number(response.headers['ratelimit-reset']);
  expect(reset).toBeGreaterThanOrEqual(1);
  expect(reset).toBeLessThanOrEqual(WINDOW_MS / 1000);
  expect(response.headers['retry-after']).toBeUndefined();
}

/** The behaviour every limiter must have, whichever store counts. */
function sharedBehaviour(boot: () => Promise<TestApp>) {
  let t: TestApp;
  beforeAll(async () => {
    t = await boot();
  });
  afterAll(() => t.close());

  it('the 6th request with one key gets 429 with Retry-After and RateLimit-* headers', async () => {
    const tenant = await createTenant(t.app);
    for (let i = 1; i <= 5; i++) expectAllowed(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 5, 5 - i);
    expectLimited(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 5);
    // Every kind of request counts, and a limited write does nothing.
    const write = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 100,
      currency: 'usd',
      description: 'limited',
    });
    expectLimited(write, 5);
    const [{ count }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${tenant.id}`;
    expect(count).toBe(0);
  });

  it('counts per key: another key, of the same tenant or another, is unaffected', async () => {
    const tenant = await createTenant(t.app);
    const other = await createTenant(t.app);
    for (let i = 0; i < 5; i++) expect((await call(t.app, tenant.testKey, 'GET', '/v1/payments')).statusCode).toBe(200);
    expectLimited(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 5);
    expectAllowed(await call(t.app, tenant.liveKey, 'GET', '/v1/payments'), 5, 4);
    expectAllowed(await call(t.app, other.testKey, 'GET', '/v1/payments'), 5, 4);
  });

  it('a limited key is allowed again in the next window', async () => {
    const tenant = await createTenant(t.app);
    for (let i = 0; i < 5; i++) expect((await call(t.app, tenant.testKey, 'GET', '/v1/payments')).statusCode).toBe(200);
    expectLimited(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 5);
    clock.advance(WINDOW_MS);
    expectAllowed(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 5, 4);
  });

  it('unauthenticated and platform requests are not counted against a tenant', async () => {
    const tenant = await createTenant(t.app);
    for (let i = 0; i < 8; i++) {
      expect(
        (
          await t.app.inject({
            method: 'GET',
            url: '/v1/payments',
            headers: { authorization: 'Bearer sk_test_unknownunknownunknown' },
          })
        ).statusCode,
      ).toBe(401);
    }
    expectAllowed(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 5, 4);
  });
}

describe('in-process limiter (no Redis)', () => {
  sharedBehaviour(() => bootLimited(limits));

  it('uses the in-process store', async () => {
    const t = await bootLimited(limits);
    try {
      expect(t.platform.redis).toBeUndefined();
      expect(t.platform.rateLimiter.constructor.name).toBe('InProcessRateLimiter');
    } finally {
      await t.close();
    }
  });

  it('limits a tenant across its keys (RATE_LIMIT_PER_TENANT)', async () => {
    const t = await bootLimited({ ...limits, RATE_LIMIT_PER_KEY: '100', RATE_LIMIT_PER_TENANT: '4' });
    try {
      const tenant = await createTenant(t.app);
      const other = await createTenant(t.app);
      const restricted = (
        await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] })
      ).json();
      expect(restricted.secret).toMatch(/^rk_test_/);
      // The key creation above already counted once.
      expectAllowed(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 4, 2);
      expectAllowed(await call(t.app, restricted.secret, 'GET', '/v1/payments'), 4, 1);
      expectAllowed(await call(t.app, tenant.liveKey, 'GET', '/v1/payments'), 4, 0);
      expectLimited(await call(t.app, restricted.secret, 'GET', '/v1/payments'), 4);
      expectLimited(await call(t.app, tenant.testKey, 'GET', '/v1/payments'), 4);
      // Another tenant has its own budget.
      expectAllowed(await call(t.app, other.testKey, 'GET', '/v1/payments'), 4, 3);
    } finally {
      await t.close();
    }
  });
});

const redisUrl = serviceUrl('REDIS_URL');

// Skipped only on a developer machine without Redis; under CI serviceUrl throws instead.
describe.skipIf(!redisUrl)('Redis-backed limiter', () => {
  const boot = () => bootLimited({ ...limits, REDIS_URL: redisUrl! });
  sharedBehaviour(boot);

  let one: TestApp;
  let two: TestApp;
  let redis: Redis;
  let tenant: TestTenant;
  beforeAll(async () => {
    [one, two] = await Promise.all([boot(), boot()]);
    redis = new Redis(redisUrl!);
    tenant = await createTenant(one.app);
  });
  afterAll(async () => {
    await redis.quit();
    await Promise.all([one.close(), two.close()]);
  });

  it('uses Redis', () => {
    expect(one.platform.redis).toBeDefined();
    expect(one.platform.rateLimiter.constructor.name).toBe('ResilientRateLimiter');
  });

  it('two app instances sharing Redis share one count', async () => {
    expectAllowed(await call(one.app, tenant.testKey, 'GET', '/v1/payments'), 5, 4);
    expectAllowed(await call(two.app, tenant.testKey, 'GET', '/v1/payments'), 5, 3);
    expectAllowed(await call(one.app, tenant.testKey, 'GET', '/v1/payments'), 5, 2);
    expectAllowed(await call(two.app, tenant.testKey, 'GET', '/v1/payments'), 5, 1);
    expectAllowed(await call(one.app, tenant.testKey, 'GET', '/v1/payments'), 5, 0);
    expectLimited(await call(two.app, tenant.testKey, 'GET', '/v1/payments'), 5);
    expectLimited(await call(one.app, tenant.testKey, 'GET', '/v1/payments'), 5);
    // The count lives in Redis under the key's id, expiring on its own.
    const keys = await redis.keys(`rl:key:${tenant.testKeyId}:*`);
    expect(keys).toHaveLength(1);
    expect(Number(await redis.get(keys[0]))).toBe(7);
    const ttl = await redis.pttl(keys[0]);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(WINDOW_MS * 2);
  });

  it('concurrent requests across instances never let more than the limit through', async () => {
    const other = await createTenant(two.app);
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call(i % 2 ? one.app : two.app, other.testKey, 'GET', '/v1/payments')),
    );
    expect(responses.filter((r) => r.statusCode === 200)).toHaveLength(5);
    expect(responses.filter((r) => r.statusCode === 429)).toHaveLength(15);
  });

  it('the per-tenant count is shared too', async () => {
    const [a, b] = await Promise.all([
      bootLimited({ ...limits, RATE_LIMIT_PER_KEY: '100', RATE_LIMIT_PER_TENANT: '3', REDIS_URL: redisUrl! }),
      bootLimited({ ...limits, RATE_LIMIT_PER_KEY: '100', RATE_LIMIT_PER_TENANT: '3', REDIS_URL: redisUrl! }),
    ]);
    try {
      const shared = await createTenant(a.app);
      expectAllowed(await call(a.app, shared.testKey, 'GET', '/v1/payments'), 3, 2);
      expectAllowed(await call(b.app, shared.liveKey, 'GET', '/v1/payments'), 3, 1);
      expectAllowed(await call(b.app, shared.testKey, 'GET', '/v1/payments'), 3, 0);
      expectLimited(await call(a.app, shared.liveKey, 'GET', '/v1/payments'), 3);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
