import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp();
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
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/v1\/payments"[^}]*status="200"/);
    expect(res.body).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/v1\/payments"[^}]*status="402"/);
    expect(res.body).toMatch(/payments_total\{status="succeeded"\} [1-9]/);
    expect(res.body).toMatch(/payments_total\{status="requires_payment_method"\} [1-9]/);
    expect(res.body).toMatch(/write_batch_size_count [1-9]/);
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
