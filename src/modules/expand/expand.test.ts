import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  expectError,
  newCustomer,
  ok,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;

const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const post = (url: string, body?: unknown) => call(t.app, tenant.testKey, 'POST', url, body);

/** A customer with a saved default card, a captured payment with that card, and a partial refund of it. */
async function paymentWithEverything() {
  const customer = await newCustomer(t.app, tenant.testKey, { email: 'expand@example.com' });
  const method = await ok(await post('/v1/payment_methods', card(TEST_CARDS.visa)));
  await ok(await post(`/v1/payment_methods/${method.id}/attach`, { customer }));
  await ok(await post(`/v1/customers/${customer}`, { default_payment_method: method.id }));
  const payment = await ok(
    await post('/v1/payments', { amount: 5000, currency: 'usd', customer, payment_method: method.id, confirm: true }),
  );
  expect(payment.status).toBe('succeeded');
  const refund = await ok(await post('/v1/refunds', { payment: payment.id, amount: 1000 }));
  return { customer, method: method.id as string, payment, refund };
}

let fixture: Awaited<ReturnType<typeof paymentWithEverything>>;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Expand tenant');
  other = await createTenant(t.app, 'Expand other tenant');
  fixture = await paymentWithEverything();
});
afterAll(() => t.close());

describe('expand[] on a payment', () => {
  it('leaves ids as they are without expand[], and has no refunds list', async () => {
    const payment = await ok(await get(`/v1/payments/${fixture.payment.id}`));
    expect(payment.customer).toBe(fixture.customer);
    expect(payment.payment_method).toBe(fixture.method);
    expect(payment.balance_transaction).toMatch(/^txn_/);
    expect(payment.latest_attempt).toBe(payment.attempts.at(-1).id);
    expect(payment).not.toHaveProperty('refunds');
  });

  it('expands each expandable field', async () => {
    const payment = await ok(
      await get(
        `/v1/payments/${fixture.payment.id}?expand[]=customer&expand[]=payment_method&expand[]=balance_transaction` +
          '&expand[]=latest_attempt&expand[]=refunds',
      ),
    );
    expect(payment.customer).toMatchObject({ id: fixture.customer, object: 'customer', email: 'expand@example.com' });
    expect(payment.payment_method).toMatchObject({
      id: fixture.method,
      object: 'payment_method',
      card: { last4: '4242' },
    });
    expect(payment.payment_method.card).not.toHaveProperty('number');
    expect(payment.balance_transaction).toMatchObject({
      object: 'balance_transaction',
      source: fixture.payment.id,
      amount: 5000,
    });
    expect(payment.latest_attempt).toMatchObject({ operation: 'authorize', status: 'succeeded', amount: 5000 });
    expect(payment.latest_attempt.id).toBe(payment.attempts.at(-1).id);
    expect(payment.refunds).toEqual({
      object: 'list',
      url: `/v1/refunds?payment=${fixture.payment.id}`,
      has_more: false,
      data: [expect.objectContaining({ id: fixture.refund.id, object: 'refund', amount: 1000 })],
    });
  });

  it('expands nested objects, up to four levels', async () => {
    const payment = await ok(
      await get(
        `/v1/payments/${fixture.payment.id}?expand[]=customer.default_payment_method` +
          '&expand[]=refunds.data.balance_transaction&expand[]=payment_method.customer',
      ),
    );
    expect(payment.customer.default_payment_method).toMatchObject({ id: fixture.method, object: 'payment_method' });
    expect(payment.refunds.data[0].balance_transaction).toMatchObject({
      object: 'balance_transaction',
      source: fixture.refund.id,
    });
    expect(payment.payment_method.customer).toMatchObject({ id: fixture.customer, object: 'customer' });

    const refund = await ok(
      await get(`/v1/refunds/${fixture.refund.id}?expand[]=payment.refunds.data.payment&expand[]=payment.customer`),
    );
    expect(refund.payment).toMatchObject({ id: fixture.payment.id, object: 'payment' });
    expect(refund.payment.customer).toMatchObject({ id: fixture.customer, object: 'customer' });
    expect(refund.payment.refunds.data[0].payment).toMatchObject({ id: fixture.payment.id, object: 'payment' });
    // Expanded once on that path only: the innermost payment keeps its customer id.
    expect(refund.payment.refunds.data[0].payment.customer).toBe(fixture.customer);
  });

  it('refuses a fifth level, an unknown field, a list path without data. and a list field without .data', async () => {
    expectError(await get(`/v1/refunds/${fixture.refund.id}?expand[]=payment.refunds.data.payment.customer`), 400, {
      type: 'invalid_request_error',
      code: 'parameter_invalid',
      param: 'expand[]',
      message: expect.stringContaining('at most 4 levels'),
    });
    expectError(await get(`/v1/payments/${fixture.payment.id}?expand[]=amount`), 400, {
      code: 'parameter_invalid',
      param: 'expand[]',
      message: expect.stringContaining("'amount' is not an expandable field of payment"),
    });
    expectError(await get(`/v1/payments/${fixture.payment.id}?expand[]=customer.email`), 400, {
      param: 'expand[]',
      message: expect.stringContaining('of customer'),
    });
    expectError(await get(`/v1/payments/${fixture.payment.id}?expand[]=data.customer`), 400, { param: 'expand[]' });
    expectError(await get(`/v1/payments?expand[]=customer`), 400, {
      param: 'expand[]',
      message: expect.stringContaining("starts with 'data.'"),
    });
    expectError(await get(`/v1/payments/${fixture.payment.id}?expand[]=refunds.payment`), 400, {
      param: 'expand[]',
      message: expect.stringContaining("'refunds.data.'"),
    });
    expectError(await get(`/v1/payments/${fixture.payment.id}?expand=customer`), 400, {
      code: 'parameter_unknown',
      param: 'expand',
    });
  });

  it("answers 404 for another tenant's payment and refund, expanded or not", async () => {
    expectError(await get(`/v1/payments/${fixture.payment.id}?expand[]=customer`, other.testKey), 404, {
      code: 'resource_missing',
    });
    expectError(await get(`/v1/refunds/${fixture.refund.id}?expand[]=payment`, other.testKey), 404, {
      code: 'resource_missing',
    });
    expectError(await get(`/v1/customers/${fixture.customer}?expand[]=default_payment_method`, other.testKey), 404, {
      code: 'resource_missing',
    });
  });

  it('never expands an id of another tenant or mode: row-level security keeps it a bare id', async () => {
    const foreign = await newCustomer(t.app, other.testKey, { email: 'foreign@example.com' });
    const liveCustomer = await newCustomer(t.app, tenant.liveKey, { email: 'live@example.com' });
    const own = await ok(
      await post('/v1/payments', { amount: 3000, currency: 'usd', payment_method: card(TEST_CARDS.visa) }),
    );
    // The API refuses to link these; the database is changed directly to prove the expansion's own scope.
    await t.admin`UPDATE payments SET customer = ${foreign} WHERE id = ${own.id}`;
    const payment = await ok(await get(`/v1/payments/${own.id}?expand[]=customer`));
    expect(payment.customer).toBe(foreign);
    await t.admin`UPDATE payments SET customer = ${liveCustomer} WHERE id = ${own.id}`;
    expect((await ok(await get(`/v1/payments/${own.id}?expand[]=customer`))).customer).toBe(liveCustomer);
  });
});

describe('expand[] on lists', () => {
  it('expands every item of a payments list with data.-prefixed paths', async () => {
    const second = await ok(
      await post('/v1/payments', {
        amount: 2500,
        currency: 'usd',
        customer: fixture.customer,
        payment_method: fixture.method,
        confirm: true,
      }),
    );
    const list = await ok(
      await get(`/v1/payments?customer=${fixture.customer}&expand[]=data.customer&expand[]=data.refunds`),
    );
    expect(list.data.map((p: { id: string }) => p.id)).toEqual([second.id, fixture.payment.id]);
    for (const payment of list.data)
      expect(payment.customer).toMatchObject({ id: fixture.customer, object: 'customer' });
    expect(list.data[0].refunds.data).toEqual([]);
    expect(list.data[1].refunds.data.map((r: { id: string }) => r.id)).toEqual([fixture.refund.id]);
  });

  it('expands refunds, customers and payment methods lists', async () => {
    const refunds = await ok(await get(`/v1/refunds?payment=${fixture.payment.id}&expand[]=data.payment.customer`));
    expect(refunds.data[0].payment).toMatchObject({ id: fixture.payment.id, customer: { id: fixture.customer } });
    const customers = await ok(
      await get('/v1/customers?email=expand@example.com&expand[]=data.default_payment_method'),
    );
    expect(customers.data[0].default_payment_method).toMatchObject({ id: fixture.method, object: 'payment_method' });
    const methods = await ok(await get(`/v1/payment_methods?customer=${fixture.customer}&expand[]=data.customer`));
    expect(methods.data[0].customer).toMatchObject({ id: fixture.customer, object: 'customer' });
    const method = await ok(await get(`/v1/payment_methods/${fixture.method}?expand[]=customer`));
    expect(method.customer).toMatchObject({ id: fixture.customer });
  });

  it('caps an expanded refunds list at 10 and says it has more', async () => {
    const payment = await ok(
      await post('/v1/payments', {
        amount: 12_000,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
      }),
    );
    for (let i = 0; i < 11; i++) await ok(await post('/v1/refunds', { payment: payment.id, amount: 1000 }));
    const expanded = await ok(await get(`/v1/payments/${payment.id}?expand[]=refunds`));
    expect(expanded.refunds.data).toHaveLength(10);
    expect(expanded.refunds.has_more).toBe(true);
  });

  it('documents expandable fields as id-or-object unions in the OpenAPI document', async () => {
    const document = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const payment = document.components.schemas.Payment.properties;
    expect(payment.customer.anyOf).toEqual(
      expect.arrayContaining([{ type: 'string' }, { $ref: '#/components/schemas/Customer' }]),
    );
    expect(payment.payment_method.anyOf).toContainEqual({ $ref: '#/components/schemas/PaymentMethod' });
    expect(document.components.schemas.Refund.properties.payment.anyOf).toContainEqual({
      $ref: '#/components/schemas/Payment',
    });
    const parameters = document.paths['/v1/payments/{id}'].get.parameters.map((p: { name: string }) => p.name);
    expect(parameters).toContain('expand[]');
  });
});
