import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerService } from '../ledger/service.js';
import {
  bootWithTenants,
  call,
  card,
  createTenant,
  ok,
  TEST_CARDS,
  expectError,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  [t, tenant, other] = await bootWithTenants('Customers tenant', 'Customers other tenant');
});
afterAll(() => t.close());

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const del = (url: string, key = tenant.testKey) => call(t.app, key, 'DELETE', url);
const newCustomer = async (body: Record<string, unknown> = {}, key = tenant.testKey) =>
  ok(await post('/v1/customers', body, key));
const saveCard = async (extra: Record<string, unknown> = {}, key = tenant.testKey) =>
  ok(await post('/v1/payment_methods', { ...card(TEST_CARDS.visa), ...extra }, key));

async function eventTypes(objectId: string, key = tenant.testKey) {
  const events = await ok(await get(`/v1/events?object_id=${objectId}&limit=100`, key));
  return events.data.map((e: { type: string }) => e.type).reverse();
}

describe('/v1/customers', () => {
  it('creates, retrieves, updates, lists and deletes a customer, with events', async () => {
    const created = await newCustomer({
      email: 'Jenny.Rosen@example.com',
      name: 'Jenny Rosen',
      phone: '+1 415 555 0100',
      metadata: { crm_id: '42', tier: 'gold' },
    });
    expect(created).toMatchObject({
      object: 'customer',
      email: 'Jenny.Rosen@example.com',
      name: 'Jenny Rosen',
      phone: '+1 415 555 0100',
      metadata: { crm_id: '42', tier: 'gold' },
      default_payment_method: null,
      erased: false,
      livemode: false,
    });
    expect(created.id).toMatch(/^cus_[0-9a-z]{24}$/);
    expect(await ok(await get(`/v1/customers/${created.id}`))).toEqual(created);

    const updated = await ok(
      await post(`/v1/customers/${created.id}`, { phone: '', name: 'Jenny R.', metadata: { tier: '', note: 'vip' } }),
    );
    expect(updated).toMatchObject({ name: 'Jenny R.', phone: null, metadata: { crm_id: '42', note: 'vip' } });
    expect(updated.metadata).not.toHaveProperty('tier');

    const byEmail = await ok(await get('/v1/customers?email=jenny.rosen@EXAMPLE.com'));
    expect(byEmail.data.map((c: { id: string }) => c.id)).toEqual([created.id]);
    expect(byEmail).toMatchObject({ object: 'list', url: '/v1/customers', has_more: false });

    expect(await ok(await del(`/v1/customers/${created.id}`))).toEqual({
      id: created.id,
      object: 'customer',
      deleted: true,
    });
    expectError(await get(`/v1/customers/${created.id}`), 404, { code: 'resource_missing', param: 'id' });
    expectError(await del(`/v1/customers/${created.id}`), 404, { code: 'resource_missing' });
    expect((await ok(await get('/v1/customers?email=jenny.rosen@example.com'))).data).toEqual([]);
    expect(await eventTypes(created.id)).toEqual(['customer.created', 'customer.updated', 'customer.deleted']);
  });

  it('lists newest first and pages', async () => {
    const owner = await createTenant(t.app, 'Customer list');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await newCustomer({ name: `C${i}` }, owner.testKey)).id);
    const first = await ok(await get('/v1/customers?limit=2', owner.testKey));
    expect(first.data.map((c: { id: string }) => c.id)).toEqual([ids[2], ids[1]]);
    expect(first.has_more).toBe(true);
    const second = await ok(await get(`/v1/customers?limit=2&starting_after=${ids[1]}`, owner.testKey));
    expect(second.data.map((c: { id: string }) => c.id)).toEqual([ids[0]]);
    expect(second.has_more).toBe(false);
  });

  it.each([
    [{ email: 'not an email' }, 'email'],
    [{ name: '' }, 'name'],
    [{ phone: 'call me' }, 'phone'],
    [{ metadata: { k: 1 } }, 'metadata[k]'],
    [{ bogus: 1 }, 'bogus'],
  ])('refuses %j with 400 on %s', async (body, param) => {
    const response = await post('/v1/customers', body);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error.type).toBe('invalid_request_error');
    expect(response.json().error.param).toBe(param);
  });

  it('needs credentials, the customers scopes, and sees only its own tenant and mode', async () => {
    const mine = await newCustomer({ name: 'Mine' });
    expectError(await t.app.inject({ method: 'GET', url: `/v1/customers/${mine.id}` }), 401, {
      type: 'authentication_error',
    });
    const reader = await ok(await post('/v1/api_keys', { scopes: ['customers:read'] }));
    const stranger = await ok(await post('/v1/api_keys', { scopes: ['payments:write'] }));
    expect((await get(`/v1/customers/${mine.id}`, reader.secret)).statusCode).toBe(200);
    expectError(await post('/v1/customers', {}, reader.secret), 403, { type: 'permission_error' });
    expectError(await post(`/v1/customers/${mine.id}/erase`, undefined, reader.secret), 403, {
      type: 'permission_error',
    });
    expectError(await get('/v1/customers', stranger.secret), 403, { type: 'permission_error' });

    for (const key of [other.testKey, tenant.liveKey]) {
      for (const [method, url, body] of [
        ['GET', `/v1/customers/${mine.id}`],
        ['POST', `/v1/customers/${mine.id}`, { name: 'x' }],
        ['DELETE', `/v1/customers/${mine.id}`],
        ['POST', `/v1/customers/${mine.id}/erase`],
        ['GET', `/v1/customers/${mine.id}/payment_methods`],
      ] as const) {
        expectError(await call(t.app, key, method, url, body), 404, { code: 'resource_missing' });
      }
    }
    expect((await get(`/v1/customers/${mine.id}`)).json().name).toBe('Mine');
  });
});

describe('saved cards', () => {
  it('attaches, lists, makes default and detaches a card', async () => {
    const customer = await newCustomer({ email: 'cards@example.com' });
    const pm = await saveCard();
    const attached = await ok(await post(`/v1/payment_methods/${pm.id}/attach`, { customer: customer.id }));
    expect(attached).toMatchObject({ id: pm.id, customer: customer.id });
    // Attaching again to the same customer changes nothing.
    expect(await ok(await post(`/v1/payment_methods/${pm.id}/attach`, { customer: customer.id }))).toEqual(attached);

    const second = await saveCard({ customer: customer.id });
    const list = await ok(await get(`/v1/customers/${customer.id}/payment_methods`));
    expect(list).toMatchObject({ object: 'list', url: `/v1/customers/${customer.id}/payment_methods` });
    expect(list.data.map((m: { id: string }) => m.id)).toEqual([second.id, pm.id]);

    const withDefault = await ok(await post(`/v1/customers/${customer.id}`, { default_payment_method: pm.id }));
    expect(withDefault.default_payment_method).toBe(pm.id);

    const detached = await ok(await post(`/v1/payment_methods/${pm.id}/detach`));
    expect(detached.customer).toBeNull();
    expect((await ok(await get(`/v1/customers/${customer.id}`))).default_payment_method).toBeNull();
    expectError(await post(`/v1/payment_methods/${pm.id}/detach`), 400, { code: 'payment_method_unattached' });
    expect(await eventTypes(pm.id)).toEqual(['payment_method.attached', 'payment_method.detached']);
  });

  it('refuses a default card not attached, a card attached elsewhere, and unknown or foreign ids', async () => {
    const a = await newCustomer();
    const b = await newCustomer();
    const pm = await saveCard({ customer: a.id });
    expectError(await post(`/v1/customers/${b.id}`, { default_payment_method: pm.id }), 400, {
      code: 'payment_method_not_attached',
      param: 'default_payment_method',
    });
    expectError(await post(`/v1/payment_methods/${pm.id}/attach`, { customer: b.id }), 400, {
      code: 'payment_method_already_attached',
    });
    expectError(await post(`/v1/payment_methods/${pm.id}/attach`, { customer: 'cus_unknown' }), 400, {
      code: 'resource_missing',
      param: 'customer',
    });
    expectError(await post(`/v1/payment_methods/${pm.id}/attach`, { customer: 'nope' }), 400, { param: 'customer' });
    expectError(await post(`/v1/payment_methods/${pm.id}/attach`, {}), 400, { param: 'customer' });
    const foreignCustomer = await newCustomer({}, other.testKey);
    expectError(await post(`/v1/payment_methods/${pm.id}/attach`, { customer: foreignCustomer.id }), 400, {
      code: 'resource_missing',
    });
    expectError(await post(`/v1/payment_methods/${pm.id}/detach`, undefined, other.testKey), 404, {
      code: 'resource_missing',
    });
    expectError(await post('/v1/payment_methods', { ...card(TEST_CARDS.visa), customer: foreignCustomer.id }), 400, {
      code: 'resource_missing',
      param: 'customer',
    });
    const cardReader = await ok(await post('/v1/api_keys', { scopes: ['payment_methods:read', 'customers:write'] }));
    expectError(await post(`/v1/payment_methods/${pm.id}/detach`, undefined, cardReader.secret), 403, {
      type: 'permission_error',
    });
  });

  it('a deleted customer keeps its cards, which nobody can be charged with any more', async () => {
    const customer = await newCustomer();
    const pm = await saveCard({ customer: customer.id });
    await ok(await del(`/v1/customers/${customer.id}`));
    expect((await ok(await get(`/v1/payment_methods/${pm.id}`))).customer).toBe(customer.id);
    expectError(
      await post('/v1/payments', { amount: 500, currency: 'usd', customer: customer.id, payment_method: pm.id }),
      400,
      { code: 'resource_missing', param: 'customer' },
    );
    expectError(await post('/v1/payments', { amount: 500, currency: 'usd', payment_method: pm.id }), 400, {
      code: 'payment_method_customer_mismatch',
    });
  });
});

describe('customer on payments', () => {
  it('must be a customer of the same tenant and mode', async () => {
    const customer = await newCustomer();
    const paid = await ok(
      await post('/v1/payments', {
        amount: 1500,
        currency: 'usd',
        customer: customer.id,
        confirm: true,
        payment_method: card(TEST_CARDS.visa),
      }),
    );
    expect(paid).toMatchObject({ status: 'succeeded', customer: customer.id });
    const listed = await ok(await get(`/v1/payments?customer=${customer.id}`));
    expect(listed.data.map((p: { id: string }) => p.id)).toEqual([paid.id]);

    const foreign = await newCustomer({}, other.testKey);
    const live = await newCustomer({}, tenant.liveKey);
    for (const id of ['cus_unknown', 'free text', foreign.id, live.id]) {
      expectError(await post('/v1/payments', { amount: 1500, currency: 'usd', customer: id }), 400, {
        code: 'resource_missing',
        param: 'customer',
      });
    }
  });

  it("a card saved inline with a payment is saved for the payment's own customer", async () => {
    const a = await newCustomer();
    const b = await newCustomer();
    const inline = { ...card(TEST_CARDS.visa), customer: b.id };
    expectError(
      await post('/v1/payments', { amount: 900, currency: 'usd', customer: a.id, payment_method: inline }),
      400,
      {
        code: 'payment_method_customer_mismatch',
        param: 'payment_method[customer]',
      },
    );
    const payment = await ok(
      await post('/v1/payments', {
        amount: 900,
        currency: 'usd',
        customer: b.id,
        payment_method: inline,
        confirm: true,
      }),
    );
    expect((await ok(await get(`/v1/payment_methods/${payment.payment_method}`))).customer).toBe(b.id);
  });
});

describe('POST /v1/customers/{id}/erase', () => {
  it("pseudonymises the customer's personal data across its payments and events; money and ledger stay", async () => {
    const customer = await newCustomer({
      email: 'ada.lovelace@example.com',
      name: 'Ada Lovelace',
      phone: '+44 20 7946 0000',
      metadata: { crm_id: 'c-77', first_name: 'Ada', ip_address: '203.0.113.9' },
    });
    const payment = await ok(
      await post('/v1/payments', {
        amount: 4200,
        currency: 'usd',
        customer: customer.id,
        confirm: true,
        payment_method: card(TEST_CARDS.visa),
        description: 'Order for Ada Lovelace <ada.lovelace@example.com>',
        metadata: { order_id: '1234', customer_name: 'Ada Lovelace', note: 'call +44 20 7946 0000' },
        fraud_details: { email: 'ada.lovelace@example.com', ip_address: '203.0.113.9', billing_country: 'GB' },
      }),
    );
    const fraudRecords = async () => {
      const [{ details, inputs }] = await t.admin<{ details: string; inputs: string }[]>`
        SELECT p.fraud_details::text AS details, f.inputs::text AS inputs
        FROM payments p JOIN payment_fraud_decisions f ON f.payment_id = p.id WHERE p.id = ${payment.id}`;
      return details + inputs;
    };
    expect(await fraudRecords()).toContain('203.0.113.9');
    const refund = await ok(
      await post('/v1/refunds', { payment: payment.id, amount: 200, metadata: { contact_email: 'x@example.com' } }),
    );
    const untouched = await newCustomer({ name: 'Ada Lovelace' });

    const erasing = await post(`/v1/customers/${customer.id}/erase`);
    const erased = await ok(erasing);
    const [audited] =
      await t.admin`SELECT action, request_id, content FROM audit_entries WHERE target_id = ${customer.id}`;
    expect(audited).toMatchObject({ action: 'customer.erased', request_id: erasing.headers['request-id'] });
    expect(JSON.stringify(audited.content)).not.toContain('Ada');
    expect(erased).toMatchObject({
      id: customer.id,
      email: null,
      name: null,
      phone: null,
      erased: true,
      metadata: { crm_id: 'c-77', first_name: '[erased]', ip_address: '[erased]' },
    });
    const after = await ok(await get(`/v1/payments/${payment.id}`));
    expect(after).toMatchObject({
      amount: 4200,
      amount_received: 4200,
      amount_refunded: 200,
      currency: 'usd',
      status: 'succeeded',
      fee: payment.fee,
      balance_transaction: payment.balance_transaction,
      customer: customer.id,
      description: 'Order for [erased] <[erased]>',
      metadata: { order_id: '1234', customer_name: '[erased]', note: 'call [erased]' },
    });
    expect((await ok(await get(`/v1/refunds/${refund.id}`))).metadata).toEqual({ contact_email: '[erased]' });

    // No event about the customer, its payment or refund still holds the personal data; their amounts do.
    const stored = await t.admin<{ data: unknown; object_id: string }[]>`
      SELECT data, object_id FROM events WHERE object_id IN (${customer.id}, ${payment.id}, ${refund.id})`;
    expect(stored.length).toBeGreaterThan(3);
    const text = JSON.stringify(stored);
    for (const personal of ['ada.lovelace@example.com', 'Ada Lovelace', '7946', '203.0.113.9', 'x@example.com'])
      expect(text).not.toContain(personal);
    // Nor what the payment gave the fraud decision, nor the inputs the decision kept for backtests.
    const fraud = await fraudRecords();
    for (const personal of ['ada.lovelace@example.com', '203.0.113.9']) expect(fraud).not.toContain(personal);
    expect(fraud).toContain('GB');
    const succeeded = stored.find(
      (e) => e.object_id === payment.id && (e.data as { object: { status: string } }).object.status === 'succeeded',
    );
    expect(succeeded?.data).toMatchObject({ object: { amount: 4200, amount_received: 4200, fee: payment.fee } });

    // Another customer with the same name is someone else's data: untouched.
    expect((await ok(await get(`/v1/customers/${untouched.id}`))).name).toBe('Ada Lovelace');
    // This tenant's ledger: other test files share the database, and one of them corrupts a balance on purpose.
    const { accounts, transactions } = await LedgerService.verify(t.admin);
    expect(accounts.filter((a) => a.tenant_id === tenant.id)).toEqual([]);
    expect(transactions.filter((x) => x.tenant_id === tenant.id)).toEqual([]);
    const balance = await ok(await get('/v1/balance_transactions?source=' + payment.id));
    expect(balance.data[0]).toMatchObject({ amount: 4200, fee: payment.fee });
  });
});
