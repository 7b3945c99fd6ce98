import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app);
});
afterAll(() => t.close());

describe('POST /v1/payments', () => {
  it('creates and confirms a card payment with automatic capture', async () => {
    const res = await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 2000, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true });
    expect(res.statusCode).toBe(200);
    const payment = res.json();
    expect(payment).toMatchObject({ object: 'payment', amount: 2000, currency: 'usd', status: 'succeeded', amount_received: 2000, livemode: false });
    expect(payment.id).toMatch(/^pay_/);
    expect(payment.attempts).toHaveLength(1);
  });
});
