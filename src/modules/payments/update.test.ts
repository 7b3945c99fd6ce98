import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootWithTenants,
  call,
  card,
  createTenant,
  ok,
  TEST_CARDS,
  expectError,
  newCustomer,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Payment updates');
});
afterAll(() => t.close());

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const customerOf = (key = tenant.testKey) => newCustomer(t.app, key);

describe('POST /v1/payments/{id}', () => {
  it('updates description, metadata, customer and statement descriptor, with a payment.updated event', async () => {
    const customer = await customerOf();
    const payment = await ok(
      await post('/v1/payments', {
        amount: 1000,
        currency: 'usd',
        confirm: true,
        payment_method: card(TEST_CARDS.visa),
        metadata: { order_id: '1', keep: 'yes' },
        description: 'first',
      }),
    );
    const updated = await ok(
      await post(`/v1/payments/${payment.id}`, {
        description: 'Order #1234',
        metadata: { order_id: '1234', keep: '' },
        customer,
        statement_descriptor: 'ACME SHOP',
      }),
    );
    expect(updated).toMatchObject({
      id: payment.id,
      status: 'succeeded',
      amount: 1000,
      amount_received: 1000,
      description: 'Order #1234',
      metadata: { order_id: '1234' },
      customer,
      statement_descriptor: 'ACME SHOP',
    });
    expect(updated.metadata).not.toHaveProperty('keep');
    expect(await ok(await get(`/v1/payments/${payment.id}`))).toEqual(updated);
    const cleared = await ok(await post(`/v1/payments/${payment.id}`, { customer: '', statement_descriptor: '' }));
    expect(cleared).toMatchObject({ customer: null, statement_descriptor: null });

    const events = await ok(await get(`/v1/events?object_id=${payment.id}&type=payment.updated`));
    expect(events.data.map((e: { data: { object: { description: string } } }) => e.data.object.description)).toEqual([
      'Order #1234',
      'Order #1234',
    ]);
    // A refund after an update still works on the same payment: its state was not disturbed.
    expect((await ok(await post('/v1/refunds', { payment: payment.id, amount: 100 }))).status).toBe('succeeded');
  });

  it('changes amount and currency only before confirmation', async () => {
    const draft = await ok(await post('/v1/payments', { amount: 1000, currency: 'usd' }));
    const changed = await ok(await post(`/v1/payments/${draft.id}`, { amount: 2500, currency: 'EUR' }));
    expect(changed).toMatchObject({ amount: 2500, currency: 'eur', status: 'requires_payment_method' });
    expectError(await post(`/v1/payments/${draft.id}`, { currency: 'xyz' }), 400, { code: 'invalid_currency' });
    expectError(await post(`/v1/payments/${draft.id}`, { currency: 'jpy', amount: 10_000_000_000_000 }), 400, {
      param: 'amount',
    });
    const confirmed = await ok(
      await post(`/v1/payments/${draft.id}/confirm`, { payment_method: card(TEST_CARDS.visa) }),
    );
    expect(confirmed).toMatchObject({ status: 'succeeded', amount_received: 2500, currency: 'eur' });
    expectError(await post(`/v1/payments/${draft.id}`, { amount: 100 }), 400, {
      code: 'payment_intent_unexpected_state',
      param: 'amount',
    });
    expect((await ok(await get(`/v1/payments/${draft.id}`))).amount).toBe(2500);
  });

  it("refuses another tenant's or mode's customer and a customer its saved card does not belong to", async () => {
    const owner = await customerOf();
    const stranger = await customerOf();
    const pm = await ok(await post('/v1/payment_methods', { ...card(TEST_CARDS.visa), customer: owner }));
    const payment = await ok(
      await post('/v1/payments', { amount: 700, currency: 'usd', customer: owner, payment_method: pm.id }),
    );
    expectError(await post(`/v1/payments/${payment.id}`, { customer: stranger }), 400, {
      code: 'payment_method_customer_mismatch',
      param: 'customer',
    });
    const other = await createTenant(t.app, 'Payment updates, other');
    for (const customer of [await customerOf(other.testKey), await customerOf(tenant.liveKey), 'cus_missing'])
      expectError(await post(`/v1/payments/${payment.id}`, { customer }), 400, {
        code: 'resource_missing',
        param: 'customer',
      });
    expect((await ok(await get(`/v1/payments/${payment.id}`))).customer).toBe(owner);
  });

  it.each([
    [{ amount: 0 }, 'amount'],
    [{ amount: 1.5 }, 'amount'],
    [{ customer: 'not-a-customer' }, 'customer'],
    [{ statement_descriptor: 'x'.repeat(23) }, 'statement_descriptor'],
    [{ metadata: { k: 5 } }, 'metadata[k]'],
    [{ status: 'succeeded' }, 'status'],
  ])('refuses %j with 400 on %s', async (body, param) => {
    const payment = await ok(await post('/v1/payments', { amount: 700, currency: 'usd' }));
    const response = await post(`/v1/payments/${payment.id}`, body);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error).toMatchObject({ type: 'invalid_request_error', param });
  });

  it('needs payments:write, credentials, and the payment of its own tenant and mode', async () => {
    const payment = await ok(await post('/v1/payments', { amount: 700, currency: 'usd' }));
    const reader = await ok(await post('/v1/api_keys', { scopes: ['payments:read'] }));
    expectError(await post(`/v1/payments/${payment.id}`, { description: 'x' }, reader.secret), 403, {
      type: 'permission_error',
    });
    const anonymous = await t.app.inject({ method: 'POST', url: `/v1/payments/${payment.id}`, payload: {} });
    expect(anonymous.statusCode).toBe(401);
    const other = await createTenant(t.app, 'Payment updates, stranger');
    for (const key of [other.testKey, tenant.liveKey])
      expectError(await post(`/v1/payments/${payment.id}`, { description: 'x' }, key), 404, {
        code: 'resource_missing',
      });
    expect((await ok(await get(`/v1/payments/${payment.id}`))).description).toBeNull();
  });
});
