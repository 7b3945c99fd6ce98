import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, ok, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';

// Metadata limits, numeric bounds on query parameters, cursors and repeated query parameters:
// every one of them answers 400 in the error envelope naming the parameter, on every route it applies to.

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;
let otherPayment: string;
let otherPaymentMethod: string;
let otherEvent: string;
let otherKey: string;
let otherBalanceTransaction: string;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Bad input tenant');
  other = await createTenant(t.app, 'Bad input neighbour');
  const payment = await ok(
    await call(t.app, other.testKey, 'POST', '/v1/payments', {
      amount: 1000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    }),
  );
  otherPayment = payment.id;
  otherBalanceTransaction = payment.balance_transaction;
  otherPaymentMethod = (
    await ok(await call(t.app, other.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa)))
  ).id;
  otherEvent = (await ok(await call(t.app, other.testKey, 'GET', '/v1/events?limit=1'))).data[0].id;
  otherKey = (await ok(await call(t.app, other.testKey, 'POST', '/v1/api_keys', { scopes: ['payments:read'] }))).id;
});
afterAll(() => t.close());

type Response = Awaited<ReturnType<typeof call>>;

function expectError(response: Response, status: number, code: string, param: string | null) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const { error } = response.json();
  expect(error.code).toBe(code);
  expect(error.param).toBe(param);
  expect(error.request_id).toBe(response.headers['request-id']);
  return error as { message: string; type: string };
}

const LIST_ENDPOINTS = [
  '/v1/payments',
  '/v1/payment_methods',
  '/v1/refunds',
  '/v1/payouts',
  '/v1/disputes',
  '/v1/events',
  '/v1/balance_transactions',
  '/v1/settlements',
  '/v1/reconciliation_reports',
  '/v1/api_keys',
];

describe('metadata follows Stripe limits on every route that takes it', () => {
  // Validation runs before any handler, so bodies that would later fail for other reasons
  // (an unknown payment to refund, an empty balance to pay out) still prove the schema.
  const routes: Array<[string, string, Record<string, unknown>]> = [
    ['create payment', '/v1/payments', { amount: 100, currency: 'usd' }],
    ['create payment method', '/v1/payment_methods', card(TEST_CARDS.visa)],
    ['create refund', '/v1/refunds', { payment: 'pay_missing' }],
    ['create payout', '/v1/payouts', { amount: 100, currency: 'usd' }],
    ['update dispute', '/v1/disputes/dp_missing', { submit: false }],
  ];
  const tooLongKey = 'k'.repeat(300);
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['a key with a line break holding nested JSON', { 'a\nb': { nested: { deeper: [1, 2] } } }, 'metadata[a\nb]'],
    ['a key with a line break holding a string', { 'a\nb': 'x' }, 'metadata[a\nb]'],
    ['a key with a tab', { 'a\tb': 'x' }, 'metadata[a\tb]'],
    ['a key with DEL', { 'a\u007fb': 'x' }, 'metadata[a\u007fb]'],
    ['a key with a C1 control character', { 'a\u0085b': 'x' }, 'metadata[a\u0085b]'],
    ['a 300-character key', { [tooLongKey]: 'x' }, `metadata[${tooLongKey.slice(0, 64)}]`],
    ['a 41-character key', { ['k'.repeat(41)]: 'x' }, `metadata[${'k'.repeat(41)}]`],
    ['an empty key', { '': 'x' }, 'metadata[]'],
    ['a 501-character value', { note: 'v'.repeat(501) }, 'metadata[note]'],
    ['a number value', { note: 5 }, 'metadata[note]'],
    ['an object value', { note: { a: 'b' } }, 'metadata[note]'],
    ['a null value', { note: null }, 'metadata[note]'],
    ['51 keys', Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])), 'metadata'],
    ['a card number as a key', { [`${TEST_CARDS.visa}\n`]: 'x' }, 'metadata[[redacted]\n]'],
  ];
  for (const [routeName, url, body] of routes) {
    it.each(cases)(`${routeName}: %s -> 400 naming the key`, async (_name, metadata, param) => {
      const response = await call(t.app, tenant.testKey, 'POST', url, { ...body, metadata });
      const error = expectError(response, 400, 'parameter_invalid', param);
      expect(error.type).toBe('invalid_request_error');
      expect(error.message).not.toContain(TEST_CARDS.visa);
    });
  }

  it('the messages say which rule a key broke', async () => {
    const message = async (metadata: Record<string, unknown>) =>
      (await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd', metadata })).json()
        .error.message as string;
    expect(await message({ ['k'.repeat(41)]: 'x' })).toContain('at most 40 characters');
    expect(await message({ 'a\nb': 'x' })).toContain('control characters');
    expect(await message({ '': 'x' })).toContain('cannot be empty');
    expect(await message(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])))).toContain(
      'at most 50 keys',
    );
  });

  it('the limits themselves are accepted and stored intact', async () => {
    const metadata = Object.fromEntries(
      Array.from({ length: 50 }, (_, i) => [`${String(i).padStart(2, '0')}${'k'.repeat(38)}`, 'é'.repeat(500)]),
    );
    metadata['clé 🔑 with spaces'] = 'ok';
    delete metadata[Object.keys(metadata)[0]];
    const payment = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd', metadata }),
    );
    expect(payment.metadata).toEqual(metadata);
    const method = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', { ...card(TEST_CARDS.visa), metadata }),
    );
    expect(method.metadata).toEqual(metadata);
  });
});

describe('numeric query parameters are bounded', () => {
  const bad = ['999999999999999999999999', '253402300800', '-1', '1.5', '1e400', 'abc'];
  for (const url of LIST_ENDPOINTS) {
    it(`${url}: created[...] out of range -> 400 naming it, never 500`, async () => {
      for (const op of ['gte', 'gt', 'lte', 'lt']) {
        for (const value of bad) {
          const response = await call(t.app, tenant.testKey, 'GET', `${url}?created[${op}]=${value}`);
          expectError(response, 400, 'parameter_invalid', `created[${op}]`);
        }
        await ok(await call(t.app, tenant.testKey, 'GET', `${url}?created[${op}]=253402300799`));
        await ok(await call(t.app, tenant.testKey, 'GET', `${url}?created[${op}]=0`));
      }
      for (const value of ['0', '101', '999999999999999999999999', '-5', '2.5']) {
        expectError(
          await call(t.app, tenant.testKey, 'GET', `${url}?limit=${value}`),
          400,
          'parameter_invalid',
          'limit',
        );
      }
      await ok(await call(t.app, tenant.testKey, 'GET', `${url}?limit=100`));
    });
  }

  it('a date PostgreSQL cannot hold (year 0) is a 400, not a 500', async () => {
    for (const value of ['0000-01-01', '0000-12-31', '2024-02-30', '10000-01-01']) {
      expectError(
        await call(t.app, tenant.testKey, 'GET', `/v1/reconciliation_reports?report_date=${value}`),
        400,
        'parameter_invalid',
        'report_date',
      );
    }
    await ok(await call(t.app, tenant.testKey, 'GET', '/v1/reconciliation_reports?report_date=0001-01-01'));
    await ok(await call(t.app, tenant.testKey, 'GET', '/v1/reconciliation_reports?report_date=9999-12-31'));
  });

  it('the pricing version is bounded', async () => {
    for (const value of ['999999999999999999999999', '2147483648', '-1', '1.5']) {
      expectError(
        await call(t.app, tenant.testKey, 'GET', `/v1/pricing?version=${value}`),
        400,
        'parameter_invalid',
        'version',
      );
    }
  });
});

describe('cursors', () => {
  for (const url of LIST_ENDPOINTS) {
    it(`${url}: a cursor naming no object -> 400 resource_missing`, async () => {
      for (const param of ['starting_after', 'ending_before']) {
        const error = expectError(
          await call(t.app, tenant.testKey, 'GET', `${url}?${param}=pay_nonexistent`),
          400,
          'resource_missing',
          param,
        );
        expect(error.message).toContain('pay_nonexistent');
      }
      expectError(
        await call(t.app, tenant.testKey, 'GET', `${url}?starting_after=x&ending_before=y`),
        400,
        'parameter_invalid',
        'ending_before',
      );
    });
  }

  it("another tenant's object (or the other mode's) is no cursor", async () => {
    const foreign: Array<[string, string]> = [
      ['/v1/payments', otherPayment],
      ['/v1/payment_methods', otherPaymentMethod],
      ['/v1/events', otherEvent],
      ['/v1/api_keys', otherKey],
      ['/v1/balance_transactions', otherBalanceTransaction],
    ];
    for (const [url, id] of foreign) {
      for (const param of ['starting_after', 'ending_before']) {
        expectError(await call(t.app, tenant.testKey, 'GET', `${url}?${param}=${id}`), 400, 'resource_missing', param);
        // The owner's live mode does not see its test-mode objects either.
        expectError(await call(t.app, other.liveKey, 'GET', `${url}?${param}=${id}`), 400, 'resource_missing', param);
      }
      // The owner pages from it normally.
      await ok(await call(t.app, other.testKey, 'GET', `${url}?starting_after=${id}`));
    }
  });

  it('a valid cursor still pages forwards and backwards', async () => {
    const created: string[] = [];
    for (let i = 0; i < 3; i++) {
      created.push(
        (await ok(await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd' }))).id,
      );
    }
    const [first, second, third] = created;
    const after = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments?limit=1&starting_after=${third}`));
    expect(after.data.map((p: { id: string }) => p.id)).toEqual([second]);
    expect(after.has_more).toBe(true);
    const before = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments?limit=5&ending_before=${first}`));
    expect(before.data.map((p: { id: string }) => p.id)).toEqual([third, second]);
  });
});

describe('repeated query parameters and enum errors', () => {
  it.each([
    ['/v1/payments?limit=1&limit=2', 'limit'],
    ['/v1/payments?customer=a&customer=b', 'customer'],
    ['/v1/payments?status=succeeded&status=canceled', 'status'],
    ['/v1/events?type=payment.created&type=payment.succeeded', 'type'],
    ['/v1/refunds?payment=pay_a&payment=pay_b', 'payment'],
    ['/v1/balance_transactions?created[gte]=1&created[gte]=2', 'created[gte]'],
    ['/v1/pricing?version=1&version=2', 'version'],
  ])('%s -> 400 naming the parameter', async (url, param) => {
    const error = expectError(await call(t.app, tenant.testKey, 'GET', url), 400, 'parameter_invalid', param);
    expect(error.message).toContain('more than once');
  });

  it.each([
    ['/v1/payments?status=paid', 'status', ['requires_payment_method', 'succeeded', 'canceled']],
    ['/v1/payouts?status=sent', 'status', ['pending', 'in_transit', 'paid', 'failed']],
    ['/v1/balance_transactions?type=gift', 'type', ['charge', 'refund']],
    ['/v1/reconciliation_reports?status=ok', 'status', ['balanced', 'discrepancies']],
  ])('%s -> 400 listing the allowed values', async (url, param, values) => {
    const error = expectError(await call(t.app, tenant.testKey, 'GET', url), 400, 'parameter_invalid', param);
    for (const value of values) expect(error.message).toContain(value);
  });

  it('an enum in a body lists its values too', async () => {
    const payment = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 100, currency: 'usd' }),
    );
    const error = expectError(
      await call(t.app, tenant.testKey, 'POST', `/v1/payments/${payment.id}/cancel`, { cancellation_reason: 'bored' }),
      400,
      'parameter_invalid',
      'cancellation_reason',
    );
    expect(error.message).toContain('duplicate, fraudulent, requested_by_customer, abandoned');
    const literal = expectError(
      await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', { ...card(TEST_CARDS.visa), type: 'sepa' }),
      400,
      'parameter_invalid',
      'type',
    );
    expect(literal.message).toContain('card');
  });
});
