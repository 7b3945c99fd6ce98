import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, LIVE_CARD, ok, type TestApp, type TestTenant } from './helpers.js';

let t: TestApp;
let tenant: TestTenant;
let stranger: TestTenant;
/** Retrieve URLs of objects that exist only in the tenant's live mode. */
let liveUrls: string[];
let testUrls: string[];

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Two modes');
  stranger = await createTenant(t.app, 'Two modes, stranger');
  const objectsIn = async (key: string, number: string) => {
    const post = (url: string, body: unknown) => call(t.app, key, 'POST', url, body);
    const customer = await ok(await post('/v1/customers', { name: 'Both modes' }));
    const pm = await ok(await post('/v1/payment_methods', card(number)));
    const payment = await ok(
      await post('/v1/payments', { amount: 5000, currency: 'usd', payment_method: pm.id, confirm: true }),
    );
    const refund = await ok(await post('/v1/refunds', { payment: payment.id, amount: 100 }));
    const [event] = (await ok(await call(t.app, key, 'GET', `/v1/events?object_id=${customer.id}`))).data;
    return [
      `/v1/customers/${customer.id}`,
      `/v1/payment_methods/${pm.id}`,
      `/v1/payments/${payment.id}`,
      `/v1/refunds/${refund.id}`,
      `/v1/events/${event.id}`,
      `/v1/balance_transactions/${payment.balance_transaction}`,
    ];
  };
  liveUrls = await objectsIn(tenant.liveKey, LIVE_CARD);
  testUrls = await objectsIn(tenant.testKey, '4242424242424242');
});
afterAll(() => t.close());

describe('a 404 for an object of the other mode says so', () => {
  it('names the mode the object exists in, and the mode of the key used', async () => {
    for (const [urls, key, exists, used] of [
      [liveUrls, tenant.testKey, 'live', 'test'],
      [testUrls, tenant.liveKey, 'test', 'live'],
    ] as const) {
      for (const url of urls) {
        const response = await call(t.app, key, 'GET', url);
        expect(response.statusCode, url).toBe(404);
        expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
        expect(response.json().error.message).toContain(
          `a similar object exists in ${exists} mode, but a ${used} mode key was used to make this request`,
        );
      }
    }
    // Writes on an object of the other mode get the same hint.
    const customer = liveUrls[0];
    const update = await call(t.app, tenant.testKey, 'POST', customer, { name: 'x' });
    expect(update.statusCode).toBe(404);
    expect(update.json().error.message).toContain('exists in live mode');
  });

  it("says nothing about another tenant's objects, or ids that exist nowhere", async () => {
    for (const url of [...liveUrls, ...testUrls]) {
      for (const key of [stranger.testKey, stranger.liveKey]) {
        const response = await call(t.app, key, 'GET', url);
        expect(response.statusCode, url).toBe(404);
        expect(response.json().error.message).not.toContain('similar object');
      }
    }
    const unknown = await call(t.app, tenant.testKey, 'GET', '/v1/payments/pay_nosuchpaymentanywhere');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toBe("No such payment: 'pay_nosuchpaymentanywhere'");
  });
});
