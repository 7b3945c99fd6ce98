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

// sim_alpha fails every call; sim_beta never does: routing must fail over on every payment.
let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp({ SIM_ALPHA_FAILURE_RATE: '1', SIM_BETA_FAILURE_RATE: '0' });
  tenant = await createTenant(t.app);
});
afterAll(() => t.close());

const pay = (key: string) =>
  call(t.app, key, 'POST', '/v1/payments', {
    amount: 1500,
    currency: 'usd',
    payment_method: card(TEST_CARDS.visa),
    confirm: true,
  });

describe('processor routing', () => {
  it('fails over from a processor configured to fail, keeping both attempts on the payment', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await pay(tenant.testKey);
      expect(res.statusCode).toBe(200);
      const payment = res.json();
      expect(payment.status).toBe('succeeded');
      expect(payment.processor).toBe('sim_beta');
      expect(payment.attempts.map((a: { processor: string; status: string }) => `${a.processor}:${a.status}`)).toEqual([
        'sim_alpha:error',
        'sim_beta:succeeded',
      ]);
    }
  });

  it('follows the order the operator sets per tenant', async () => {
    const update = await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, {
      processors: ['sim_beta', 'sim_alpha'],
    });
    expect(update.statusCode).toBe(200);
    expect(update.json().processors).toEqual(['sim_beta', 'sim_alpha']);
    const payment = (await pay(tenant.testKey)).json();
    expect(payment.attempts.map((a: { processor: string }) => a.processor)).toEqual(['sim_beta']);
  });

  it('refuses unknown processors, tenant keys and unknown tenants', async () => {
    const unknown = await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, { processors: ['acme_pay'] });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error).toMatchObject({ code: 'parameter_invalid', param: 'processors' });
    const asTenant = await call(t.app, tenant.testKey, 'POST', `/v1/tenants/${tenant.id}`, {
      processors: ['sim_alpha'],
    });
    expect(asTenant.statusCode).toBe(403);
    const missing = await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants/ten_missing', { name: 'x' });
    expect(missing.statusCode).toBe(404);
    const retrieved = await call(t.app, PLATFORM_KEY, 'GET', `/v1/tenants/${tenant.id}`);
    expect(retrieved.json().processors).toEqual(['sim_beta', 'sim_alpha']);
  });
});
