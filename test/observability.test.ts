import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { freePort } from './process.js';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef0123456789';
let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp({ METRICS_TOKEN });
  tenant = await createTenant(t.app);
});
afterAll(() => t.close());

describe('health and readiness', () => {
  it('/health answers without credentials', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('/ready checks the database', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ready', database: 'ok' });
  });

  it('/ready reports 503 when the database is unreachable', async () => {
    const broken = await bootApp({});
    await broken.platform.sql.end({ timeout: 1 });
    const res = await broken.app.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ status: 'unavailable' });
    await broken.app.close();
    await broken.admin.end();
  });
});

describe('/metrics', () => {
  it('exposes request durations per route and status, and payments by status', async () => {
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 500,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    });
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 500,
      currency: 'usd',
      payment_method: card(TEST_CARDS.declined),
      confirm: true,
    });
    const res = await t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/v1\/payments"[^}]*status="200"/);
    expect(res.body).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/v1\/payments"[^}]*status="402"/);
    expect(res.body).toMatch(/payments_total\{status="succeeded"\} [1-9]/);
    expect(res.body).toMatch(/payments_total\{status="requires_payment_method"\} [1-9]/);
    expect(res.body).toMatch(/write_batch_size_count [1-9]/);
  });
});

describe('/metrics is not public', () => {
  const expectRefused = (res: Awaited<ReturnType<typeof call>>) => {
    expect(res.statusCode, res.body).toBe(401);
    expect(res.json().error).toMatchObject({ type: 'authentication_error', code: 'invalid_metrics_token' });
    expect(res.json().error.request_id).toBe(res.headers['request-id']);
    expect(res.body).not.toContain('http_request_duration_seconds');
  };

  it('needs Authorization: Bearer $METRICS_TOKEN on the API port', async () => {
    expectRefused(await t.app.inject({ method: 'GET', url: '/metrics' }));
    for (const key of [`${METRICS_TOKEN}x`, tenant.testKey, PLATFORM_KEY])
      expectRefused(await call(t.app, key, 'GET', '/metrics'));
  });

  it('refuses every request when no METRICS_TOKEN is configured', async () => {
    const untokened = await bootApp();
    try {
      expectRefused(await untokened.app.inject({ method: 'GET', url: '/metrics' }));
      for (const authorization of ['Bearer ', 'Bearer undefined', `Bearer ${PLATFORM_KEY}`])
        expectRefused(await untokened.app.inject({ method: 'GET', url: '/metrics', headers: { authorization } }));
    } finally {
      await untokened.close();
    }
  });

  it('is served without a token on METRICS_PORT, a listener of its own that serves nothing else', async () => {
    const metricsPort = await freePort();
    const separate = await bootApp({ METRICS_PORT: String(metricsPort) });
    try {
      await separate.app.listen({ port: 0, host: '127.0.0.1' });
      const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toContain('http_request_duration_seconds');
      expect((await fetch(`http://127.0.0.1:${metricsPort}/v1/payments`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${metricsPort}/health`)).status).toBe(404);
      // The API port still wants the token (none is configured here, so it refuses).
      expectRefused(await separate.app.inject({ method: 'GET', url: '/metrics' }));
    } finally {
      await separate.close();
    }
    await expect(fetch(`http://127.0.0.1:${metricsPort}/metrics`)).rejects.toThrow();
  });
});

describe('logs', () => {
  it('are ECS JSON lines carrying the request id, with secrets redacted', async () => {
    const before = t.logs.length;
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/payments/pay_does_not_exist',
      headers: { authorization: `Bearer ${tenant.testKey}` },
    });
    expect(res.statusCode).toBe(404);
    t.app.log.info(
      { headers: { authorization: `Bearer ${tenant.testKey}` }, card: { number: TEST_CARDS.visa } },
      'probe',
    );
    const lines = t.logs.slice(before).map((line) => JSON.parse(line));
    const probe = lines.find((l) => l.message === 'probe');
    expect(probe).toBeDefined();
    expect(probe['ecs.version']).toBeTruthy();
    expect(probe['log.level']).toBe('info');
    expect(JSON.stringify(lines)).not.toContain(tenant.testKey);
    expect(JSON.stringify(lines)).not.toContain(TEST_CARDS.visa);
  });
});

describe('/openapi.json', () => {
  it('is OpenAPI 3.1 with an authentication section, the test-card table and every shared schema', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const document = res.json();
    expect(document.openapi).toBe('3.1.0');
    expect(document.info.description).toContain('## Authentication');
    expect(document.info.description).toContain('## Test cards');
    for (const number of ['4242 4242 4242 4242', '4000 0000 0000 0119', '4000 0000 0000 3220', '4100 0000 0000 0019']) {
      expect(document.info.description).toContain(number);
    }
    expect(Object.keys(document.components.securitySchemes)).toEqual(
      expect.arrayContaining(['secretKey', 'platformKey']),
    );
    expect(Object.keys(document.components.schemas)).toEqual(
      expect.arrayContaining(['Error', 'Payment', 'PaymentMethod', 'Refund', 'Event', 'ApiKey', 'Tenant']),
    );
  });
});
