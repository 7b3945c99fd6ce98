import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  API_VERSION,
  PayForward,
  PayForwardError,
  PayForwardSignatureError,
  type RequestBody,
} from '../../sdk/src/index.js';
import { LATEST_API_VERSION } from '../../src/modules/versions/versions.js';
import { signatures } from '../../src/workers/webhook-delivery.js';
import { bootApp, createTenant, PLATFORM_KEY, TEST_CARDS, type TestApp, type TestTenant } from '../helpers.js';
import { freePort } from '../process.js';

let t: TestApp;
let baseUrl: string;
let tenant: TestTenant;
let payforward: PayForward;

const cardBody = (number: string) =>
  ({
    type: 'card',
    card: { number, exp_month: 12, exp_year: new Date().getUTCFullYear() + 3, cvc: '123' },
  }) as const;

/** The SDK with a fetch that records every answer it gets. */
function recordingClient(options: { apiKey?: string; apiVersion?: string | null } = {}) {
  const answers: Response[] = [];
  const client = new PayForward({
    apiKey: options.apiKey ?? tenant.testKey,
    baseUrl,
    apiVersion: options.apiVersion,
    retry: { maxRetries: 0 },
    fetch: async (request) => {
      const response = await fetch(request);
      answers.push(response.clone());
      return response;
    },
  });
  return { client, answers };
}

beforeAll(async () => {
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  t = await bootApp({ PUBLIC_URL: baseUrl });
  await t.app.listen({ port, host: '127.0.0.1' });
  tenant = await createTenant(t.app, 'SDK tenant');
  payforward = new PayForward({ apiKey: tenant.testKey, baseUrl });
});
afterAll(() => t?.close());

describe('SDK happy paths against the running server', () => {
  it('creates a customer, saves a card, pays, captures, refunds and reads it all back, typed', async () => {
    const customer = await payforward.customers.create({ email: 'sdk@example.com', name: 'SDK Buyer' });
    expect(customer.id).toMatch(/^cus_/);
    const method = await payforward.paymentMethods.create(cardBody(TEST_CARDS.visa));
    await payforward.paymentMethods.attach(method.id, { customer: customer.id });
    const payment = await payforward.payments.create({
      amount: 2500,
      currency: 'usd',
      customer: customer.id,
      payment_method: method.id,
      capture_method: 'manual',
      confirm: true,
      metadata: { order_id: 'A-1' },
    });
    expect(payment.status).toBe('requires_capture');
    const captured = await payforward.payments.capture(payment.id, { amount_to_capture: 2000 });
    expect(captured).toMatchObject({ status: 'succeeded', amount_received: 2000 });
    const refund = await payforward.refunds.create({ payment: payment.id, amount: 500 });
    expect(refund).toMatchObject({ object: 'refund', status: 'succeeded', payment: payment.id });

    const expanded = await payforward.payments.retrieve(payment.id, { 'expand[]': ['customer', 'refunds'] });
    expect(expanded.customer).toMatchObject({ id: customer.id, email: 'sdk@example.com' });
    expect(expanded.refunds?.data.map((r) => r.id)).toEqual([refund.id]);
    const single = await payforward.refunds.retrieve(refund.id, { 'expand[]': 'payment' });
    expect(single.payment).toMatchObject({ id: payment.id, object: 'payment' });

    const updated = await payforward.payments.update(payment.id, { description: 'Order A-1' });
    expect(updated.description).toBe('Order A-1');
    const balance = await payforward.balanceTransactions.retrieve(captured.balance_transaction as string);
    expect(balance.source).toBe(payment.id);
    const events = await payforward.events.list({ limit: 100 });
    expect(events.data.map((e) => e.type)).toEqual(expect.arrayContaining(['payment.succeeded', 'refund.created']));

    // Every operation, typed, through the generated client.
    const { data } = await payforward.api.GET('/v1/payments/{id}', { params: { path: { id: payment.id } } });
    expect(data?.amount_refunded).toBe(500);
  });

  it('gives every POST an Idempotency-Key: the same create sent again by the caller with its key is replayed', async () => {
    const body: RequestBody<'/v1/payments', 'post'> = { amount: 1500, currency: 'usd' };
    const first = await payforward.payments.create(body, { idempotencyKey: 'sdk-order-7' });
    const again = await payforward.payments.create(body, { idempotencyKey: 'sdk-order-7' });
    expect(again.id).toBe(first.id);
    const { client, answers } = recordingClient();
    await client.customers.create({});
    await client.customers.create({});
    expect(answers.map((a) => a.headers.get('idempotent-replayed'))).toEqual([null, null]);
  });
});

describe('SDK errors', () => {
  it('throws a PayForwardError with type, code, param, status and request id', async () => {
    const declined = await payforward.payments
      .create({ amount: 3000, currency: 'usd', payment_method: cardBody(TEST_CARDS.declined), confirm: true })
      .catch((e: unknown) => e);
    expect(declined).toBeInstanceOf(PayForwardError);
    expect(declined).toMatchObject({
      type: 'card_error',
      code: 'card_declined',
      status: 402,
      declineCode: 'generic_decline',
      requestId: expect.stringMatching(/^req_/),
    });
    expect((declined as PayForwardError).payment).toMatchObject({
      object: 'payment',
      status: 'requires_payment_method',
    });

    const missing = await payforward.payments.retrieve('pay_doesnotexist').catch((e: unknown) => e);
    expect(missing).toMatchObject({
      type: 'invalid_request_error',
      code: 'resource_missing',
      status: 404,
      param: 'id',
    });

    const invalid = await payforward.payments.create({ amount: 10, currency: 'dollars' }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ status: 400, param: 'currency' });

    const badExpand = await payforward.payments.list({ 'expand[]': 'customer' }).catch((e: unknown) => e);
    expect(badExpand).toMatchObject({ status: 400, code: 'parameter_invalid', param: 'expand[]' });

    const unauthenticated = await new PayForward({ apiKey: 'sk_test_wrong', baseUrl }).customers
      .list()
      .catch((e: unknown) => e);
    expect(unauthenticated).toMatchObject({ type: 'authentication_error', status: 401 });
  });

  it("answers 404 for another tenant's objects", async () => {
    const other = await createTenant(t.app, 'SDK other tenant');
    const customer = await payforward.customers.create({ email: 'mine@example.com' });
    const error = await new PayForward({ apiKey: other.testKey, baseUrl }).customers
      .retrieve(customer.id)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 404, code: 'resource_missing' });
  });
});

describe('SDK pagination', () => {
  it('iterates every page of a list with listAll, fetching each page once', async () => {
    const own = await createTenant(t.app, 'SDK pagination tenant');
    const created: string[] = [];
    for (let i = 0; i < 5; i++)
      created.push((await new PayForward({ apiKey: own.testKey, baseUrl }).customers.create({ name: `C${i}` })).id);
    const { client, answers } = recordingClient({ apiKey: own.testKey });
    const seen: string[] = [];
    for await (const customer of client.customers.listAll({ limit: 2 })) seen.push(customer.id);
    expect(seen).toEqual([...created].reverse());
    expect(answers).toHaveLength(3);

    answers.length = 0;
    for await (const customer of client.customers.listAll({ limit: 2 })) {
      expect(customer.id).toBe(created.at(-1));
      break;
    }
    expect(answers).toHaveLength(1);
  });
});

describe('SDK version pin', () => {
  it('sends the version it was generated for, whatever the tenant is pinned to; null uses the pin', async () => {
    expect(API_VERSION).toBe(LATEST_API_VERSION);
    const created = await fetch(`${baseUrl}/v1/tenants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PLATFORM_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'SDK old tenant', api_version: '2026-11-01' }),
    }).then((r) => r.json());
    const apiKey = created.secret_keys.test.secret as string;

    const pinned = recordingClient({ apiKey });
    await pinned.client.payments.list();
    expect(pinned.answers[0].headers.get('payforward-version')).toBe(API_VERSION);

    const tenantDefault = recordingClient({ apiKey, apiVersion: null });
    await tenantDefault.client.payments.list();
    expect(tenantDefault.answers[0].headers.get('payforward-version')).toBe('2026-11-01');

    const chosen = recordingClient({ apiVersion: '2026-11-01' });
    await chosen.client.payments.list();
    expect(chosen.answers[0].headers.get('payforward-version')).toBe('2026-11-01');

    const unknown = await recordingClient({ apiVersion: '1999-01-01' })
      .client.payments.list()
      .catch((e: unknown) => e);
    expect(unknown).toMatchObject({ status: 400, code: 'api_version_invalid', param: 'PayForward-Version' });
  });
});

describe('SDK webhook verification', () => {
  it('verifies a delivery signed the way the platform signs, and refuses a tampered, stale or unsigned one', async () => {
    const endpoint = await payforward.webhookEndpoints.create({
      url: 'https://93.184.215.14/hooks',
      // No payout happens in this tenant: nothing is ever delivered to this address.
      enabled_events: ['payout.paid'],
    });
    const secret = (endpoint as { secret?: string }).secret!;
    expect(secret).toMatch(/^whsec_/);
    await payforward.payments.create({ amount: 1200, currency: 'usd' });
    const [event] = (await payforward.events.list({ limit: 1 })).data;
    const body = JSON.stringify(event);
    const now = Math.floor(Date.now() / 1000);
    const headers = {
      'webhook-id': event.id,
      'webhook-timestamp': String(now),
      'webhook-signature': signatures([secret], event.id, now, body),
    };

    const verified = payforward.webhooks.verify(body, headers, secret);
    expect(verified).toMatchObject({ id: event.id, type: event.type });
    expect(PayForward.webhooks.verify(Buffer.from(body), new Headers(headers), secret).id).toBe(event.id);

    const tampered = body.replace('"usd"', '"eur"');
    expect(() => payforward.webhooks.verify(tampered, headers, secret)).toThrow(PayForwardSignatureError);
    const stale = String(now - 3600);
    expect(() =>
      payforward.webhooks.verify(
        body,
        {
          ...headers,
          'webhook-timestamp': stale,
          'webhook-signature': signatures([secret], event.id, now - 3600, body),
        },
        secret,
      ),
    ).toThrow(/timestamp/i);
    expect(() => payforward.webhooks.verify(body, { 'webhook-id': event.id }, secret)).toThrow(/webhook-timestamp/);
  });

  it('accepts either secret during a rotation', async () => {
    const endpoint = await payforward.webhookEndpoints.create({
      url: 'https://93.184.215.14/rotating',
      enabled_events: ['payout.paid'],
    });
    const oldSecret = (endpoint as { secret?: string }).secret!;
    const rotated = await payforward.api.POST('/v1/webhook_endpoints/{id}/rotate_secret', {
      params: { path: { id: endpoint.id } },
      body: {},
    });
    const newSecret = (rotated.data as { secret?: string }).secret!;
    expect(newSecret).not.toBe(oldSecret);
    const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'payment.succeeded' });
    const now = Math.floor(Date.now() / 1000);
    const headers = {
      'webhook-id': 'evt_1',
      'webhook-timestamp': String(now),
      // The platform signs with both secrets until the old one expires.
      'webhook-signature': signatures([newSecret, oldSecret], 'evt_1', now, body),
    };
    expect(payforward.webhooks.verify(body, headers, oldSecret).id).toBe('evt_1');
    expect(payforward.webhooks.verify(body, headers, [newSecret]).id).toBe('evt_1');
    const onlyOld = { ...headers, 'webhook-signature': signatures([oldSecret], 'evt_1', now, body) };
    expect(() => payforward.webhooks.verify(body, onlyOld, newSecret)).toThrow(PayForwardSignatureError);
    expect(payforward.webhooks.verify(body, onlyOld, [newSecret, oldSecret]).id).toBe('evt_1');
  });
});
