import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, createTenant, PLATFORM_KEY, TestClock, type TestApp } from './helpers.js';
import { freePort, waitFor } from './process.js';

// Windows are fixed and aligned to the clock; one this long (11 days) keeps every burst below inside
// one window without the test having to wait for anything, and the apps judge time by a clock
// stopped in the middle of one, so no burst can straddle a boundary however slowly it runs.
const LONG_WINDOW = '1000000000';
const clock = new TestClock();
clock.freeze((Math.floor(Date.now() / Number(LONG_WINDOW)) + 0.5) * Number(LONG_WINDOW));

type Response = Awaited<ReturnType<typeof call>>;

function expectThrottled(response: Response) {
  expect(response.statusCode, response.body).toBe(429);
  const { error } = response.json();
  expect(error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit', param: null });
  expect(error.request_id).toBe(response.headers['request-id']);
  expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1);
}

const from = (t: TestApp, remoteAddress: string, url: string, authorization?: string) =>
  t.app.inject({ method: 'GET', url, remoteAddress, headers: authorization ? { authorization } : {} });

describe('per-address limit, before authentication', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await bootApp({ RATE_LIMIT_PER_ADDRESS: '5', RATE_LIMIT_WINDOW_MS: LONG_WINDOW }, undefined, { clock });
  });
  afterAll(() => t.close());

  it('the 6th request from one address is 429 with Retry-After, whatever it carries', async () => {
    const tenant = await createTenant(t.app); // from 127.0.0.1, the default inject address
    for (let i = 0; i < 5; i++) expect((await from(t, '10.0.0.1', '/health')).statusCode).toBe(200);
    expectThrottled(await from(t, '10.0.0.1', '/health'));
    expectThrottled(await from(t, '10.0.0.1', '/v1/payments', `Bearer ${tenant.testKey}`));
    expectThrottled(await from(t, '10.0.0.1', '/v1/payments', 'Bearer sk_test_guessguessguessguess'));
    // Another address has its own budget.
    expect((await from(t, '10.0.0.2', '/health')).statusCode).toBe(200);
  });
});

describe('failed authentications per address', () => {
  let t: TestApp;
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  beforeAll(async () => {
    t = await bootApp({ AUTH_FAILURES_PER_ADDRESS: '3', AUTH_FAILURE_WINDOW_MS: LONG_WINDOW }, undefined, { clock });
    tenant = await createTenant(t.app);
  });
  afterAll(() => t.close());

  const revokedKey = async () => {
    const key = (await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] })).json();
    await call(t.app, tenant.testKey, 'POST', `/v1/api_keys/${key.id}/revoke`);
    return key.secret as string;
  };

  const failures: Record<string, (address: string) => Promise<Response>> = {
    'an unknown key': (address) => from(t, address, '/v1/payments', 'Bearer sk_test_guessguessguessguess'),
    'a revoked key': async (address) => from(t, address, '/v1/payments', `Bearer ${await revokedKey()}`),
    'a wrong operator key': (address) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/tenants',
        remoteAddress: address,
        headers: { authorization: `Bearer ${PLATFORM_KEY}x` },
        payload: { name: 'x' },
      }),
    'a failed /v1/oauth/token exchange': (address) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/oauth/token',
        remoteAddress: address,
        payload: { grant_type: 'client_credentials', client_secret: 'sk_test_guessguessguessguess' },
      }),
  };

  it.each(Object.keys(failures).map((name, i) => [name, `10.1.0.${i + 1}`]))(
    'after 3 failures with %s the address is refused, even with a valid key',
    async (name, address) => {
      for (let i = 0; i < 3; i++) expect((await failures[name](address)).statusCode).toBe(401);
      expectThrottled(await from(t, address, '/v1/payments', `Bearer ${tenant.testKey}`));
      expectThrottled(await failures[name](address));
      // Successes elsewhere are untouched.
      expect((await from(t, '10.1.1.1', '/v1/payments', `Bearer ${tenant.testKey}`)).statusCode).toBe(200);
    },
  );

  it('requests presenting no credential at all do not count (they guess nothing)', async () => {
    for (let i = 0; i < 6; i++) expect((await from(t, '10.1.3.1', '/favicon.ico')).statusCode).toBe(401);
    expect((await from(t, '10.1.3.1', '/v1/payments', `Bearer ${tenant.testKey}`)).statusCode).toBe(200);
  });

  it('successful requests do not count', async () => {
    for (let i = 0; i < 6; i++)
      expect((await from(t, '10.1.2.1', '/v1/payments', `Bearer ${tenant.testKey}`)).statusCode).toBe(200);
  });
});

describe('behind a proxy (TRUST_PROXY)', () => {
  it('counts the client address from X-Forwarded-For, one budget per client', async () => {
    const t = await bootApp(
      { TRUST_PROXY: 'true', RATE_LIMIT_PER_ADDRESS: '2', RATE_LIMIT_WINDOW_MS: LONG_WINDOW },
      undefined,
      { clock },
    );
    try {
      const viaProxy = (client: string) =>
        t.app.inject({ method: 'GET', url: '/health', headers: { 'x-forwarded-for': client } });
      expect((await viaProxy('203.0.113.1')).statusCode).toBe(200);
      expect((await viaProxy('203.0.113.1')).statusCode).toBe(200);
      expectThrottled(await viaProxy('203.0.113.1'));
      expect((await viaProxy('203.0.113.2')).statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });
});

/** A redis-server of this test's own on a free port: the shared one on 6379 is never touched. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await waitFor(
      async () => {
        await probe.connect().catch(() => {});
        return probe.status === 'ready' && (await probe.ping()) === 'PONG';
      },
      20_000,
      `redis-server on ${port}`,
    );
  } finally {
    probe.disconnect();
  }
  return child;
}

async function stopRedis(child: ChildProcess | undefined) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe('with Redis down, every limiter counts in process, and goes back to Redis', () => {
  let port: number;
  let redisServer: ChildProcess | undefined;
  let t: TestApp;
  let redis: Redis;
  beforeAll(async () => {
    port = await freePort();
    redisServer = await startRedis(port);
    t = await bootApp(
      {
        REDIS_URL: `redis://127.0.0.1:${port}`,
        RATE_LIMIT_PER_KEY: '5',
        RATE_LIMIT_WINDOW_MS: LONG_WINDOW,
      },
      undefined,
      { clock },
    );
    redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
  });
  afterAll(async () => {
    redis?.disconnect();
    await t?.close();
    await stopRedis(redisServer);
  });

  const countsInRedis = async (keyId: string) => {
    const keys = await redis.keys(`rl:key:${keyId}:*`);
    return keys.length ? Number(await redis.get(keys[0])) : 0;
  };

  it('never answers 500, keeps limiting, and returns to Redis once it is back', async () => {
    const tenant = await createTenant(t.app);
    const get = () => call(t.app, tenant.testKey, 'GET', '/v1/payments');
    expect((await get()).statusCode).toBe(200);
    expect(await countsInRedis(tenant.testKeyId)).toBe(1);

    await stopRedis(redisServer);
    await waitFor(() => t.platform.redis!.status !== 'ready', 20_000, 'the app to see Redis gone');
    // In process now: a fresh count of 5 for the key, then 429, never 500.
    for (let i = 0; i < 5; i++) expect((await get()).statusCode).toBe(200);
    const limited = await get();
    expect(limited.statusCode, limited.body).toBe(429);
    expect(limited.json().error.type).toBe('rate_limit_error');
    expect((await t.app.inject({ method: 'GET', url: '/v1/payments' })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    const local = await t.platform.metrics.rateLimitLocalDecisions.get();
    expect(local.values[0].value).toBeGreaterThan(0);

    redisServer = await startRedis(port);
    await waitFor(() => t.platform.redis!.status === 'ready', 30_000, 'the app to reconnect to Redis');
    // The new Redis is empty (nothing was saved): counting starts again there.
    expect((await get()).statusCode).toBe(200);
    await waitFor(async () => (await countsInRedis(tenant.testKeyId)) === 1, 10_000, 'the count in Redis');
  });
});
