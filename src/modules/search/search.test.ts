import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inScope } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { bootApp, call, card, createTenant, ok, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { parseSearchQuery } from './query.js';
import {
  customerSearchStatement,
  CUSTOMER_SEARCH_FIELDS,
  PAYMENT_SEARCH_FIELDS,
  paymentSearchStatement,
} from './service.js';

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;
const ids: Record<string, string> = {};

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const search = async (resource: string, query: string, extra = '', key = tenant.testKey) =>
  get(`/v1/${resource}/search?query=${encodeURIComponent(query)}${extra}`, key);
const found = async (resource: string, query: string) => {
  const result = await ok(await search(resource, query));
  return result.data.map((o: { id: string }) => o.id);
};

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Search tenant');
  other = await createTenant(t.app, 'Search other tenant');
  const ada = await ok(
    await post('/v1/customers', { email: 'Ada@Example.com', name: 'Ada Lovelace', metadata: { segment: 'b2b' } }),
  );
  const bob = await ok(await post('/v1/customers', { email: 'bob@example.com', name: 'Bob', phone: '+1 555 0100' }));
  ids.ada = ada.id;
  ids.bob = bob.id;
  const pay = async (name: string, body: Record<string, unknown>) => {
    ids[name] = (await ok(await post('/v1/payments', { currency: 'usd', ...body }))).id;
  };
  await pay('small', { amount: 500, customer: ada.id, metadata: { order_id: '1234' } });
  await pay('big', {
    amount: 5000,
    customer: ada.id,
    confirm: true,
    payment_method: card('4242424242424242'),
    metadata: { order_id: '1235', channel: 'web' },
  });
  await pay('mastercard', {
    amount: 2500,
    customer: bob.id,
    confirm: true,
    payment_method: card('5555555555554444'),
    metadata: { order_id: '1234' },
  });
  await pay('euro', { amount: 9000, currency: 'eur' });
  // Another tenant's payment with the same metadata must never be found.
  await ok(await post('/v1/payments', { amount: 500, currency: 'usd', metadata: { order_id: '1234' } }, other.testKey));
});
afterAll(() => t.close());

describe('GET /v1/payments/search', () => {
  it.each([
    ["metadata['order_id']:'1234'", ['mastercard', 'small']],
    ["status:'succeeded' AND metadata['order_id']:'1234'", ['mastercard']],
    ['amount>1000', ['euro', 'mastercard', 'big']],
    ['amount>=2500 amount<=5000', ['mastercard', 'big']],
    ["currency:'EUR' OR last4:'4444'", ['euro', 'mastercard']],
    ["email:'ada@example.com'", ['big', 'small']],
    ["-status:'succeeded' AND currency:'usd'", ['small']],
    ['last4:"4242"', ['big']],
    ["metadata['channel']:'web' AND metadata['order_id']:'1235'", ['big']],
    ["metadata['order_id']:'nope'", []],
  ])('%s', async (query, expected) => {
    expect(await found('payments', query)).toEqual(expected.map((name) => ids[name]));
  });

  it('filters by customer and creation time', async () => {
    expect(await found('payments', `customer:'${ids.bob}'`)).toEqual([ids.mastercard]);
    const now = Math.floor(Date.now() / 1000);
    expect(await found('payments', `created>${now - 3600} AND created<${now + 3600}`)).toHaveLength(4);
    expect(await found('payments', `created>${now + 3600}`)).toEqual([]);
    expect(await found('payments', `created<${now - 3600}`)).toEqual([]);
  });

  it('pages with next_page', async () => {
    const first = await ok(await search('payments', 'amount>0', '&limit=3'));
    expect(first).toMatchObject({ object: 'search_result', url: '/v1/payments/search', has_more: true });
    expect(first.data.map((p: { id: string }) => p.id)).toEqual([ids.euro, ids.mastercard, ids.big]);
    const second = await ok(await search('payments', 'amount>0', `&limit=3&page=${first.next_page}`));
    expect(second.data.map((p: { id: string }) => p.id)).toEqual([ids.small]);
    expect(second).toMatchObject({ has_more: false, next_page: null });
    const bad = await search('payments', 'amount>0', '&page=!!');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'invalid_page', param: 'page' });
  });

  it.each([
    ["status:'succeeded' AND amount>1 OR amount<5", 'AND and OR cannot be combined', 32],
    ['colour:"red"', "unknown field 'colour'", 0],
    ["status:'open", 'unterminated string', 7],
    ['amount>many', 'expected a quoted string or an integer', 7],
    ["status>'a'", "'status' supports only ':'", 6],
    ['', 'fewer than 1 characters', null],
    ["metadata:'x'", "expected metadata['key']", 8],
    [
      'amount:1 amount:2 amount:3 amount:4 amount:5 amount:6 amount:7 amount:8 amount:9 amount:10 amount:11',
      'at most 10',
      91,
    ],
  ])('%j is a 400 naming the position', async (query, message, position) => {
    const response = await search('payments', query);
    expect(response.statusCode, response.body).toBe(400);
    const error = response.json().error;
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'query' });
    expect(error.message).toContain(message);
    if (position !== null) {
      expect(error.code).toBe('invalid_search_query');
      expect(error.message).toContain(`at position ${position}:`);
    }
  });

  it('needs payments:read and credentials, and sees only its own tenant and mode', async () => {
    const customersOnly = await ok(await post('/v1/api_keys', { scopes: ['customers:read'] }));
    expect((await search('payments', 'amount>0', '', customersOnly.secret)).statusCode).toBe(403);
    expect((await search('customers', "name:'Bob'", '', customersOnly.secret)).statusCode).toBe(200);
    const anonymous = await t.app.inject({ method: 'GET', url: '/v1/payments/search?query=amount%3E0' });
    expect(anonymous.statusCode).toBe(401);
    const theirs = await ok(await search('payments', "metadata['order_id']:'1234'", '', other.testKey));
    expect(theirs.data).toHaveLength(1);
    expect(theirs.data[0].id).not.toBe(ids.small);
    expect((await ok(await search('payments', 'amount>0', '', tenant.liveKey))).data).toEqual([]);
  });

  it("answers metadata filters from an index, never from a scan of the tenant's history", async () => {
    const big = await createTenant(t.app, 'Search, many payments');
    await t.admin`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method, metadata)
      SELECT 'pay_bulk' || lpad(i::text, 20, '0'), ${big.id}, false, 100, 'usd', 'requires_payment_method',
        'automatic', CASE WHEN i % 500 = 0 THEN jsonb_build_object('order_id', i::text) ELSE '{}'::jsonb END
      FROM generate_series(1, 20000) i`;
    await t.admin`ANALYZE payments`;
    const scope = { tenantId: big.id, livemode: false };
    const plan = await inScope(t.platform.sql, scope, async (tx) => {
      const query = parseSearchQuery("metadata['order_id']:'1000'", PAYMENT_SEARCH_FIELDS);
      const rows = await tx`EXPLAIN ${paymentSearchStatement(tx, scope, query, 10)}`;
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan, plan).toContain('metadata_index_pkey');
    expect(plan).not.toMatch(/Seq Scan on payments/);
    expect(await found('payments', "metadata['order_id']:'1234'")).toHaveLength(2);
    const customerPlan = await inScope(t.platform.sql, scope, async (tx) => {
      const query = parseSearchQuery("metadata['crm']:'1'", CUSTOMER_SEARCH_FIELDS);
      const rows = await tx`EXPLAIN ${customerSearchStatement(tx, scope, query, 10)}`;
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(customerPlan, customerPlan).toContain('metadata_index_pkey');
    expect(customerPlan).not.toMatch(/Seq Scan on customers/);
  });
});

describe('GET /v1/customers/search', () => {
  it.each([
    ["email:'ADA@example.com'", ['ada']],
    ["name:'bob' OR name:'ada lovelace'", ['bob', 'ada']],
    ["phone:'+1 555 0100'", ['bob']],
    ["metadata['segment']:'b2b'", ['ada']],
    ["-name:'bob'", ['ada']],
  ])('%s', async (query, expected) => {
    expect(await found('customers', query)).toEqual(expected.map((name) => ids[name]));
  });

  it('refuses payment fields', async () => {
    const response = await search('customers', 'amount>1');
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toContain("unknown field 'amount'");
  });
});

describe('the query grammar', () => {
  const field = fc.constantFrom('status', 'currency', 'customer', 'email', 'last4');
  const value = fc.string({ maxLength: 12 }).filter((v) => !v.includes("'") && !v.includes('\\'));
  const clause = fc.oneof(
    fc
      .record({ field, value, negated: fc.boolean() })
      .map((c) => ({ ...c, text: `${c.negated ? '-' : ''}${c.field}:'${c.value}'` })),
    fc
      .record({
        field: fc.constantFrom('amount', 'created'),
        operator: fc.constantFrom('>', '>=', '<', '<=', ':'),
        value: fc.integer({ min: 0, max: 10 ** 12 }),
      })
      .map((c) => ({ ...c, negated: false, text: `${c.field}${c.operator}${c.value}` })),
  );

  it('parses every well-formed query back into its clauses', () => {
    fc.assert(
      fc.property(
        fc.array(clause, { minLength: 1, maxLength: 10 }),
        fc.constantFrom(' AND ', ' OR ', ' '),
        (clauses, joiner) => {
          const parsed = parseSearchQuery(clauses.map((c) => c.text).join(joiner), PAYMENT_SEARCH_FIELDS);
          expect(parsed.combinator).toBe(joiner === ' OR ' && clauses.length > 1 ? 'OR' : 'AND');
          expect(parsed.clauses.map((c) => [c.field, c.value, c.negated])).toEqual(
            clauses.map((c) => [c.field, c.value, c.negated]),
          );
        },
      ),
    );
  });

  it('answers any other text with a 400 invalid_search_query, never another error', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (text) => {
        try {
          parseSearchQuery(text, PAYMENT_SEARCH_FIELDS);
        } catch (error) {
          expect(error).toBeInstanceOf(ApiError);
          expect((error as ApiError).statusCode).toBe(400);
          expect((error as ApiError).code).toBe('invalid_search_query');
        }
      }),
      { numRuns: 2000 },
    );
  });
});
