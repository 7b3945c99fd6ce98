import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app);
});
afterAll(() => t.close());

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);

const createPayment = (body: Record<string, unknown>) =>
  post('/v1/payments', { amount: 2000, currency: 'usd', ...body });

/** A manual-capture payment authorized and waiting in requires_capture. */
async function authorized(amount = 5000) {
  const res = await createPayment({
    amount,
    payment_method: card(TEST_CARDS.visa),
    confirm: true,
    capture_method: 'manual',
  });
  expect(res.statusCode).toBe(200);
  expect(res.json().status).toBe('requires_capture');
  return res.json();
}

async function eventsFor(objectId: string, key = tenant.testKey) {
  const res = await get(`/v1/events?object_id=${objectId}&limit=100`, key);
  expect(res.statusCode).toBe(200);
  return res.json().data as Array<{ id: string; type: string; data: { object: Record<string, unknown> } }>;
}

describe('POST /v1/payments', () => {
  it('creates and confirms a card payment with automatic capture', async () => {
    const res = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 2000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    });
    expect(res.statusCode).toBe(200);
    const payment = res.json();
    expect(payment).toMatchObject({
      object: 'payment',
      amount: 2000,
      currency: 'usd',
      status: 'succeeded',
      amount_received: 2000,
      livemode: false,
    });
    expect(payment.id).toMatch(/^pay_/);
    expect(payment.attempts).toHaveLength(1);
    expect(payment.attempts[0]).toMatchObject({
      operation: 'authorize',
      status: 'succeeded',
      amount: 2000,
      processor: 'sim_alpha',
    });
    expect(payment.payment_method).toMatch(/^pm_/);
    expect(payment.amount_capturable).toBe(0);
    expect(payment.last_payment_error).toBeNull();
  });

  it('without a payment method waits in requires_payment_method', async () => {
    const customer = (await ok(await post('/v1/customers', { name: 'Order one' }))).id;
    const res = await createPayment({
      description: 'Order #1',
      customer,
      metadata: { order: '1' },
      statement_descriptor: 'ACME',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'requires_payment_method',
      payment_method: null,
      amount_received: 0,
      description: 'Order #1',
      customer,
      metadata: { order: '1' },
      statement_descriptor: 'ACME',
      attempts: [],
    });
  });

  it('with a payment method but no confirm waits in requires_confirmation, then confirm captures it', async () => {
    const created = await createPayment({ payment_method: card(TEST_CARDS.visa) });
    expect(created.statusCode).toBe(200);
    const payment = created.json();
    expect(payment).toMatchObject({ status: 'requires_confirmation', amount_received: 0, attempts: [] });
    expect(payment.payment_method).toMatch(/^pm_/);

    const confirmed = await post(`/v1/payments/${payment.id}/confirm`);
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.json()).toMatchObject({
      id: payment.id,
      status: 'succeeded',
      amount_received: 2000,
      payment_method: payment.payment_method,
    });
    expect(confirmed.json().attempts).toHaveLength(1);
  });

  it('confirms a requires_payment_method payment with a card given at confirmation', async () => {
    const payment = (await createPayment({})).json();
    const confirmed = await post(`/v1/payments/${payment.id}/confirm`, { payment_method: card(TEST_CARDS.visa) });
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.json()).toMatchObject({ status: 'succeeded', amount_received: 2000 });
  });

  it('confirms with a saved payment method id', async () => {
    const pm = await post('/v1/payment_methods', card(TEST_CARDS.visa));
    expect(pm.statusCode).toBe(200);
    const res = await createPayment({ payment_method: pm.json().id, confirm: true });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'succeeded', payment_method: pm.json().id });
  });

  it('refuses to confirm a payment with no payment method (400 param payment_method)', async () => {
    const payment = (await createPayment({})).json();
    const res = await post(`/v1/payments/${payment.id}/confirm`, {});
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'parameter_missing',
      param: 'payment_method',
    });
    const inline = await createPayment({ confirm: true });
    expect(inline.statusCode).toBe(400);
    expect(inline.json().error.param).toBe('payment_method');
  });

  it('refuses to confirm a succeeded payment', async () => {
    const payment = (await createPayment({ payment_method: card(TEST_CARDS.visa), confirm: true })).json();
    const res = await post(`/v1/payments/${payment.id}/confirm`);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('payment_intent_unexpected_state');
  });

  it('answers 404 for an unknown saved payment method', async () => {
    const res = await createPayment({ payment_method: 'pm_doesnotexist', confirm: true });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ code: 'resource_missing', param: 'payment_method' });
  });
});

describe('amounts and currencies', () => {
  it('accepts JPY (zero-decimal) and KWD (three-decimal) amounts in minor units', async () => {
    const jpy = await createPayment({
      amount: 1000,
      currency: 'jpy',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    });
    expect(jpy.statusCode).toBe(200);
    expect(jpy.json()).toMatchObject({ amount: 1000, currency: 'jpy', amount_received: 1000, status: 'succeeded' });
    const kwd = await createPayment({
      amount: 1500,
      currency: 'KWD',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    });
    expect(kwd.statusCode).toBe(200);
    expect(kwd.json()).toMatchObject({ amount: 1500, currency: 'kwd', status: 'succeeded' });
  });

  it('rejects an unknown currency with 400 param currency', async () => {
    const res = await createPayment({ currency: 'xyz' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_currency',
      param: 'currency',
    });
    const malformed = await createPayment({ currency: 'us' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.param).toBe('currency');
  });

  it('rejects an amount above the currency maximum', async () => {
    // 99,999,999 major units is the cap: in JPY that is 99,999,999 minor units.
    const res = await createPayment({ amount: 100_000_000, currency: 'jpy' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'amount_too_large', param: 'amount' });
  });

  it.each([
    ['a string', '100'],
    ['zero', 0],
    ['negative', -5],
    ['fractional', 10.5],
  ])('rejects an amount that is %s with 400 param amount', async (_label, amount) => {
    const res = await createPayment({ amount });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ type: 'invalid_request_error', param: 'amount' });
  });

  it('rejects a missing amount and unknown fields', async () => {
    const missing = await post('/v1/payments', { currency: 'usd' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error).toMatchObject({ code: 'parameter_missing', param: 'amount' });
    const unknown = await createPayment({ amount_cents: 10 });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error).toMatchObject({ code: 'parameter_unknown', param: 'amount_cents' });
  });
});

describe('manual capture', () => {
  it('authorizes into requires_capture with an authorization that expires in 7 days', async () => {
    const before = Math.floor(Date.now() / 1000);
    const payment = await authorized(5000);
    const after = Math.ceil(Date.now() / 1000);
    expect(payment).toMatchObject({ capture_method: 'manual', amount_capturable: 5000, amount_received: 0 });
    expect(payment.authorization_expires_at).toBeGreaterThanOrEqual(before + 7 * 86_400 - 1);
    expect(payment.authorization_expires_at).toBeLessThanOrEqual(after + 7 * 86_400);
  });

  it('captures in full', async () => {
    const payment = await authorized(5000);
    const res = await post(`/v1/payments/${payment.id}/capture`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'succeeded',
      amount_received: 5000,
      amount_capturable: 0,
      authorization_expires_at: null,
    });
    const ops = res
      .json()
      .attempts.map((a: { operation: string; status: string; amount: number }) => [a.operation, a.status, a.amount]);
    expect(ops).toEqual([
      ['authorize', 'succeeded', 5000],
      ['capture', 'succeeded', 5000],
    ]);
  });

  it('captures part and releases the rest', async () => {
    const payment = await authorized(5000);
    const res = await post(`/v1/payments/${payment.id}/capture`, { amount_to_capture: 1500 });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'succeeded',
      amount: 5000,
      amount_received: 1500,
      amount_capturable: 0,
    });
    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved).toMatchObject({ status: 'succeeded', amount_received: 1500, amount_capturable: 0 });
    // The refundable amount is what was captured, not what was authorized.
    const refund = await post('/v1/refunds', { payment: payment.id, amount: 1501 });
    expect(refund.statusCode).toBe(400);
    expect(refund.json().error.param).toBe('amount');
  });

  it('refuses to capture more than is capturable (400 param amount_to_capture) and leaves the payment capturable', async () => {
    const payment = await authorized(5000);
    const res = await post(`/v1/payments/${payment.id}/capture`, { amount_to_capture: 5001 });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'amount_too_large',
      param: 'amount_to_capture',
    });
    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved).toMatchObject({ status: 'requires_capture', amount_capturable: 5000 });
  });

  it('refuses to capture a payment that is not waiting for capture', async () => {
    const automatic = (await createPayment({ payment_method: card(TEST_CARDS.visa), confirm: true })).json();
    const res = await post(`/v1/payments/${automatic.id}/capture`);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('payment_intent_unexpected_state');

    const unconfirmed = (
      await createPayment({ payment_method: card(TEST_CARDS.visa), capture_method: 'manual' })
    ).json();
    const again = await post(`/v1/payments/${unconfirmed.id}/capture`);
    expect(again.statusCode).toBe(400);
    expect(again.json().error.code).toBe('payment_intent_unexpected_state');

    const captured = await authorized();
    expect((await post(`/v1/payments/${captured.id}/capture`)).statusCode).toBe(200);
    const twice = await post(`/v1/payments/${captured.id}/capture`);
    expect(twice.statusCode).toBe(400);
    expect(twice.json().error.code).toBe('payment_intent_unexpected_state');
  });

  it('404s a capture of an unknown payment', async () => {
    const res = await post('/v1/payments/pay_unknown/capture');
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('resource_missing');
  });
});

describe('POST /v1/payments/{id}/cancel', () => {
  it('cancels a payment in requires_confirmation', async () => {
    const payment = (await createPayment({ payment_method: card(TEST_CARDS.visa) })).json();
    const res = await post(`/v1/payments/${payment.id}/cancel`, { cancellation_reason: 'requested_by_customer' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'canceled',
      cancellation_reason: 'requested_by_customer',
      attempts: [],
    });
    expect(res.json().canceled_at).toEqual(expect.any(Number));
  });

  it('cancels an authorized payment by voiding the authorization', async () => {
    const payment = await authorized(3000);
    const res = await post(`/v1/payments/${payment.id}/cancel`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'canceled',
      amount_capturable: 0,
      amount_received: 0,
      authorization_expires_at: null,
    });
    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved.status).toBe('canceled');
    expect(
      retrieved.attempts.map((a: { operation: string; status: string; amount: number }) => [
        a.operation,
        a.status,
        a.amount,
      ]),
    ).toEqual([
      ['authorize', 'succeeded', 3000],
      ['void', 'succeeded', 3000],
    ]);
    // A canceled payment can no longer be captured.
    const capture = await post(`/v1/payments/${payment.id}/capture`);
    expect(capture.statusCode).toBe(400);
  });

  it('refuses to cancel a succeeded payment or cancel twice', async () => {
    const payment = (await createPayment({ payment_method: card(TEST_CARDS.visa), confirm: true })).json();
    const res = await post(`/v1/payments/${payment.id}/cancel`);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'payment_intent_unexpected_state' });
    expect((await get(`/v1/payments/${payment.id}`)).json().status).toBe('succeeded');

    const pending = (await createPayment({})).json();
    expect((await post(`/v1/payments/${pending.id}/cancel`)).statusCode).toBe(200);
    const twice = await post(`/v1/payments/${pending.id}/cancel`);
    expect(twice.statusCode).toBe(400);
  });

  it('rejects an unknown cancellation reason', async () => {
    const payment = (await createPayment({})).json();
    const res = await post(`/v1/payments/${payment.id}/cancel`, { cancellation_reason: 'bored' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe('cancellation_reason');
  });
});

describe('GET /v1/payments/{id}', () => {
  it('retrieves a payment as it was returned', async () => {
    const created = (
      await createPayment({ payment_method: card(TEST_CARDS.visa), confirm: true, metadata: { a: 'b' } })
    ).json();
    const res = await get(`/v1/payments/${created.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['request-id']).toMatch(/^req_/);
    expect(res.json()).toEqual(created);
  });

  it('answers 404 resource_missing for an unknown id', async () => {
    const res = await get('/v1/payments/pay_00000000000000000000000000');
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
  });
});

describe('GET /v1/payments', () => {
  let listTenant: TestTenant;
  const ids: string[] = []; // oldest first

  beforeAll(async () => {
    listTenant = await createTenant(t.app, 'List tenant');
    for (let i = 0; i < 5; i++) {
      const confirm = i % 2 === 0;
      const res = await call(t.app, listTenant.testKey, 'POST', '/v1/payments', {
        amount: 100 + i,
        currency: 'usd',
        ...(confirm ? { payment_method: card(TEST_CARDS.visa), confirm: true } : {}),
      });
      expect(res.statusCode).toBe(200);
      ids.push(res.json().id);
    }
  });

  const list = (query: string) => call(t.app, listTenant.testKey, 'GET', `/v1/payments${query}`);

  it('lists newest first with the list envelope', async () => {
    const res = await list('');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ object: 'list', url: '/v1/payments', has_more: false });
    expect(body.data.map((p: { id: string }) => p.id)).toEqual([...ids].reverse());
  });

  it('pages with limit and starting_after / ending_before', async () => {
    const first = (await list('?limit=2')).json();
    expect(first.data.map((p: { id: string }) => p.id)).toEqual([ids[4], ids[3]]);
    expect(first.has_more).toBe(true);
    const second = (await list(`?limit=2&starting_after=${ids[3]}`)).json();
    expect(second.data.map((p: { id: string }) => p.id)).toEqual([ids[2], ids[1]]);
    expect(second.has_more).toBe(true);
    const last = (await list(`?limit=2&starting_after=${ids[1]}`)).json();
    expect(last.data.map((p: { id: string }) => p.id)).toEqual([ids[0]]);
    expect(last.has_more).toBe(false);
    const back = (await list(`?limit=2&ending_before=${ids[1]}`)).json();
    expect(back.data.map((p: { id: string }) => p.id)).toEqual([ids[3], ids[2]]);
    expect(back.has_more).toBe(true);
  });

  it('filters by status and includes attempts', async () => {
    const succeeded = (await list('?status=succeeded')).json();
    expect(succeeded.data.map((p: { id: string }) => p.id)).toEqual([ids[4], ids[2], ids[0]]);
    expect(succeeded.data.every((p: { attempts: unknown[] }) => p.attempts.length === 1)).toBe(true);
    const waiting = (await list('?status=requires_payment_method')).json();
    expect(waiting.data.map((p: { id: string }) => p.id)).toEqual([ids[3], ids[1]]);
    const none = (await list('?status=canceled')).json();
    expect(none.data).toEqual([]);
  });

  it('filters by created[gte]', async () => {
    const newest = (await call(t.app, listTenant.testKey, 'GET', `/v1/payments/${ids[4]}`)).json();
    const from = (await list(`?created[gte]=${newest.created}`)).json();
    expect(from.data.map((p: { id: string }) => p.id)).toContain(ids[4]);
    expect(from.data.every((p: { created: number }) => p.created >= newest.created)).toBe(true);
    const future = (await list(`?created[gte]=${newest.created + 3600}`)).json();
    expect(future.data).toEqual([]);
    const all = (await list('?created[gte]=0&limit=100')).json();
    expect(all.data).toHaveLength(5);
  });

  it('rejects invalid list parameters', async () => {
    for (const query of ['?limit=0', '?limit=101', '?status=paid', '?created[gte]=yesterday']) {
      const res = await list(query);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error.type).toBe('invalid_request_error');
    }
  });
});

describe('test cards', () => {
  it.each([
    ['declined', TEST_CARDS.declined, 'card_declined', 'generic_decline'],
    ['insufficientFunds', TEST_CARDS.insufficientFunds, 'card_declined', 'insufficient_funds'],
    ['incorrectCvc', TEST_CARDS.incorrectCvc, 'incorrect_cvc', 'incorrect_cvc'],
    ['expired', TEST_CARDS.expired, 'expired_card', 'expired_card'],
    ['fraud', TEST_CARDS.fraud, 'card_declined', 'fraudulent'],
  ])('%s card: 402 card_error, payment back to requires_payment_method', async (_name, number, code, declineCode) => {
    const res = await createPayment({ payment_method: card(number), confirm: true });
    expect(res.statusCode).toBe(402);
    const { error } = res.json();
    expect(error).toMatchObject({ type: 'card_error', code, decline_code: declineCode });
    expect(error.request_id).toMatch(/^req_/);
    expect(error.payment).toMatchObject({ status: 'requires_payment_method', amount_received: 0 });
    expect(error.payment.last_payment_error).toMatchObject({
      type: 'card_error',
      code,
      decline_code: declineCode,
      processor: 'sim_alpha',
    });
    expect(error.payment.attempts).toHaveLength(1);
    expect(error.payment.attempts[0]).toMatchObject({
      status: 'declined',
      error_code: code,
      decline_code: declineCode,
    });
    const retrieved = (await get(`/v1/payments/${error.payment.id}`)).json();
    expect(retrieved).toEqual(error.payment);
  });

  it('a declined payment can be confirmed again with another card and succeed', async () => {
    const declined = await createPayment({ payment_method: card(TEST_CARDS.declined), confirm: true });
    expect(declined.statusCode).toBe(402);
    const payment = declined.json().error.payment;
    const declinedPm = payment.payment_method;
    const retry = await post(`/v1/payments/${payment.id}/confirm`, { payment_method: card(TEST_CARDS.visa) });
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toMatchObject({ status: 'succeeded', amount_received: 2000, last_payment_error: null });
    expect(retry.json().payment_method).not.toBe(declinedPm);
    expect(retry.json().attempts.map((a: { status: string }) => a.status)).toEqual(['declined', 'succeeded']);
  });

  it('a declined payment confirmed again with the same card declines again', async () => {
    const declined = (await createPayment({ payment_method: card(TEST_CARDS.insufficientFunds), confirm: true })).json()
      .error.payment;
    const again = await post(`/v1/payments/${declined.id}/confirm`);
    expect(again.statusCode).toBe(402);
    expect(again.json().error).toMatchObject({ code: 'card_declined', decline_code: 'insufficient_funds' });
    expect(again.json().error.payment.attempts).toHaveLength(2);
  });

  it('disputed card succeeds at payment time', async () => {
    const res = await createPayment({ payment_method: card(TEST_CARDS.disputed), confirm: true });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'succeeded', amount_received: 2000 });
  });

  it('processing-error card fails on sim_alpha and succeeds on sim_beta, both attempts visible', async () => {
    const res = await createPayment({ payment_method: card(TEST_CARDS.processingError), confirm: true });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'succeeded', processor: 'sim_beta', amount_received: 2000 });
    const retrieved = (await get(`/v1/payments/${res.json().id}`)).json();
    expect(
      retrieved.attempts.map((a: { processor: string; status: string; error_code: string | null }) => [
        a.processor,
        a.status,
        a.error_code,
      ]),
    ).toEqual([
      ['sim_alpha', 'error', 'processing_error'],
      ['sim_beta', 'succeeded', null],
    ]);
  });

  it('processing-error card with manual capture is captured on the processor that authorized it', async () => {
    const res = await createPayment({
      payment_method: card(TEST_CARDS.processingError),
      confirm: true,
      capture_method: 'manual',
    });
    expect(res.json()).toMatchObject({ status: 'requires_capture', processor: 'sim_beta' });
    const captured = await post(`/v1/payments/${res.json().id}/capture`);
    expect(captured.statusCode).toBe(200);
    expect(captured.json().attempts.at(-1)).toMatchObject({
      operation: 'capture',
      processor: 'sim_beta',
      status: 'succeeded',
    });
  });

  it('processing-error card fails with 402 when the tenant has no failover processor', async () => {
    const single = await call(t.app, PLATFORM_KEY, 'POST', '/v1/tenants', {
      name: 'Alpha only',
      processors: ['sim_alpha'],
    });
    expect(single.statusCode).toBe(200);
    const key = single.json().secret_keys.test.secret;
    const res = await call(t.app, key, 'POST', '/v1/payments', {
      amount: 2000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.processingError),
      confirm: true,
    });
    expect(res.statusCode).toBe(402);
    expect(res.json().error).toMatchObject({ type: 'card_error', code: 'processing_error' });
    expect(res.json().error.payment).toMatchObject({ status: 'requires_payment_method' });
  });
});

describe('3-D Secure', () => {
  async function requiresAction(extra: Record<string, unknown> = {}) {
    const res = await createPayment({ payment_method: card(TEST_CARDS.threeDSecure), confirm: true, ...extra });
    expect(res.statusCode).toBe(200);
    const payment = res.json();
    expect(payment.status).toBe('requires_action');
    expect(payment.next_action).toMatchObject({
      type: 'redirect_to_url',
      redirect_to_url: { url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:4000\/3ds\//) },
    });
    return { payment, path: new URL(payment.next_action.redirect_to_url.url).pathname };
  }

  it('serves the challenge page and completing it succeeds the payment', async () => {
    const { payment, path } = await requiresAction({ return_url: 'https://shop.example/return' });
    expect(payment.next_action.redirect_to_url.return_url).toBe('https://shop.example/return');
    expect(payment.amount_received).toBe(0);

    const page = await t.app.inject({ method: 'GET', url: path });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain(payment.id);
    expect(page.body).toContain('requires_action');

    const done = await t.app.inject({ method: 'POST', url: `${path}/complete`, payload: { outcome: 'succeeded' } });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toEqual({ id: payment.id, status: 'succeeded', return_url: 'https://shop.example/return' });

    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved).toMatchObject({ status: 'succeeded', amount_received: 2000, next_action: null });
    expect(retrieved.attempts.map((a: { status: string }) => a.status)).toEqual(['requires_action', 'succeeded']);

    // The link works once: used, it is no link at all.
    const again = await t.app.inject({ method: 'POST', url: `${path}/complete`, payload: { outcome: 'succeeded' } });
    expect(again.statusCode).toBe(404);
  });

  it('failing the challenge returns the payment to requires_payment_method', async () => {
    const { payment, path } = await requiresAction();
    const done = await t.app.inject({ method: 'POST', url: `${path}/complete`, payload: { outcome: 'failed' } });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ id: payment.id, status: 'requires_payment_method' });
    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved).toMatchObject({ status: 'requires_payment_method', next_action: null, amount_received: 0 });
    expect(retrieved.last_payment_error).toMatchObject({
      type: 'card_error',
      code: 'payment_intent_authentication_failure',
    });
    // And the customer can then pay with another card.
    const retry = await post(`/v1/payments/${payment.id}/confirm`, { payment_method: card(TEST_CARDS.visa) });
    expect(retry.statusCode).toBe(200);
    expect(retry.json().status).toBe('succeeded');
  });

  it('manual capture after 3-D Secure ends in requires_capture', async () => {
    const { payment, path } = await requiresAction({ capture_method: 'manual' });
    const done = await t.app.inject({ method: 'POST', url: `${path}/complete`, payload: { outcome: 'succeeded' } });
    expect(done.json().status).toBe('requires_capture');
    const captured = await post(`/v1/payments/${payment.id}/capture`);
    expect(captured.json()).toMatchObject({ status: 'succeeded', amount_received: 2000 });
  });

  it('a payment waiting for 3-D Secure can be canceled, and the link then stops working', async () => {
    const { payment, path } = await requiresAction();
    const canceled = await post(`/v1/payments/${payment.id}/cancel`);
    expect(canceled.statusCode).toBe(200);
    expect(canceled.json()).toMatchObject({ status: 'canceled', next_action: null });
    const done = await t.app.inject({ method: 'POST', url: `${path}/complete`, payload: { outcome: 'succeeded' } });
    expect(done.statusCode).toBe(404);
    expect((await get(`/v1/payments/${payment.id}`)).json().status).toBe('canceled');
  });

  it('rejects a tampered token and an unknown outcome', async () => {
    const { path } = await requiresAction();
    const tampered = path.slice(0, -3) + (path.endsWith('aaa') ? 'bbb' : 'aaa');
    const page = await t.app.inject({ method: 'GET', url: tampered });
    expect(page.statusCode).toBe(404);
    const bad = await t.app.inject({ method: 'POST', url: `${path}/complete`, payload: { outcome: 'maybe' } });
    expect(bad.statusCode).toBe(400);
  });
});

describe('concurrency', () => {
  it('20 concurrent captures of one payment: one capture, one payment.succeeded event', async () => {
    const payment = await authorized(4000);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => post(`/v1/payments/${payment.id}/capture`, { amount_to_capture: 2500 })),
    );
    // A request that finds the capture pending joins it (replaying the same processor call) and
    // answers with its outcome; one that comes after it finds nothing to capture.
    const ok = results.filter((r) => r.statusCode === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const r of ok) expect(r.json()).toMatchObject({ status: 'succeeded', amount_received: 2500 });
    for (const r of results.filter((r) => r.statusCode !== 200)) {
      expect(r.statusCode).toBe(400);
      expect(r.json().error.code).toBe('payment_intent_unexpected_state');
    }
    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved).toMatchObject({ status: 'succeeded', amount_received: 2500, amount_capturable: 0 });
    expect(retrieved.attempts.filter((a: { operation: string }) => a.operation === 'capture')).toHaveLength(1);
    // The processor's own records: captured once.
    const captures = await t.admin`
      SELECT 1 FROM sim_processor_calls WHERE order_id = ${payment.id} AND operation = 'capture'`;
    expect(captures).toHaveLength(1);
    const events = await eventsFor(payment.id);
    expect(events.filter((e) => e.type === 'payment.succeeded')).toHaveLength(1);
    const [row] = await t.admin<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM events WHERE object_id = ${payment.id} AND type = 'payment.succeeded'`;
    expect(row.n).toBe(1);
  });

  it('concurrent capture and cancel: exactly one wins and the final state matches it', async () => {
    const payment = await authorized(4000);
    const [capture, cancel] = await Promise.all([
      post(`/v1/payments/${payment.id}/capture`),
      post(`/v1/payments/${payment.id}/cancel`),
    ]);
    expect([capture.statusCode, cancel.statusCode].sort()).toEqual([200, 400]);
    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved.status).toBe(capture.statusCode === 200 ? 'succeeded' : 'canceled');
    const events = await eventsFor(payment.id);
    expect(events.filter((e) => e.type === 'payment.succeeded' || e.type === 'payment.canceled')).toHaveLength(1);
  });

  it('20 concurrent confirms of one payment authorize it once', async () => {
    const payment = (await createPayment({ payment_method: card(TEST_CARDS.visa) })).json();
    const results = await Promise.all(Array.from({ length: 20 }, () => post(`/v1/payments/${payment.id}/confirm`)));
    const ok = results.filter((r) => r.statusCode === 200);
    expect(ok).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 400)).toHaveLength(19);
    const retrieved = (await get(`/v1/payments/${payment.id}`)).json();
    expect(retrieved).toMatchObject({ status: 'succeeded', amount_received: 2000 });
    expect(retrieved).toEqual(ok[0].json());
    expect(retrieved.attempts).toHaveLength(1);
    expect((await eventsFor(payment.id)).map((e) => e.type).sort()).toEqual(['payment.created', 'payment.succeeded']);
  });
});
