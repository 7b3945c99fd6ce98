import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  newCustomer,
  bootApp,
  call,
  card,
  createTenant,
  ok,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { VELOCITY_FIELDS } from './model/signals.js';

let t: TestApp;

beforeAll(async () => {
  t = await bootApp();
});
afterAll(() => t.close());

const ELEVATED = '4000000000009235';
const HIGHEST = '4000000000004954';
const GB_CARD = '4000008260000000';
const US_IP = '192.0.2.10';

const pay = (tenant: TestTenant, number: string, extra: Record<string, unknown> = {}) =>
  call(t.app, tenant.testKey, 'POST', '/v1/payments', {
    amount: 2000,
    currency: 'usd',
    payment_method: card(number),
    confirm: true,
    ...extra,
  });

const rule = (tenant: TestTenant, body: Record<string, unknown>) =>
  call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules', body);

async function listId(tenant: TestTenant, name: string): Promise<string> {
  const lists = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/fraud/lists'));
  return lists.data.find((l: { name: string }) => l.name === name).id;
}

/** Disables every default rule, so a test sees only its own. */
async function withoutDefaults(tenant: TestTenant) {
  const rules = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/fraud/rules'));
  for (const r of rules.data)
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/fraud/rules/${r.id}`, { enabled: false }));
}

describe('the decision on the payment path', () => {
  let tenant: TestTenant;
  beforeAll(async () => {
    tenant = await createTenant(t.app, 'Fraud decisions');
  });

  it('allows an ordinary payment and returns its outcome on the payment', async () => {
    const payment = await ok(await pay(tenant, TEST_CARDS.visa));
    expect(payment.status).toBe('succeeded');
    expect(payment.outcome).toMatchObject({ action: 'allow', rule: null, risk_level: expect.any(String) });
    expect(payment.outcome.risk_score).toBeGreaterThanOrEqual(0);
    expect(payment.outcome.risk_score).toBeLessThanOrEqual(100);
    expect(typeof payment.outcome.model_version).toBe('string');
    const retrieved = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(retrieved.outcome).toEqual(payment.outcome);
    // Lists, searches and expansions read the decision from its own table too (migration 034).
    const listed = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/payments?limit=5'));
    expect(listed.data.find((p: { id: string }) => p.id === payment.id).outcome).toEqual(payment.outcome);
    const unpaid = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 500, currency: 'usd' }),
    );
    expect(unpaid.outcome).toBeNull();
    const refund = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payment.id, amount: 100 }),
    );
    const expanded = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/refunds/${refund.id}?expand[]=payment`));
    expect(expanded.payment.outcome).toEqual(payment.outcome);
  });

  it('blocks the 4100000000000019 test card through the default blocked_cards list, not the processor', async () => {
    const response = await pay(tenant, TEST_CARDS.fraud);
    expect(response.statusCode).toBe(402);
    const { error } = response.json();
    expect(error).toMatchObject({ type: 'card_error', code: 'card_declined', decline_code: 'fraudulent' });
    expect(error.payment.status).toBe('requires_payment_method');
    expect(error.payment.outcome).toMatchObject({ action: 'block', rule: { name: 'Block listed values' } });
    const [sim] =
      await t.admin`SELECT count(*)::int AS n FROM sim_processor_calls WHERE order_id = ${error.payment.id}`;
    expect(sim.n).toBe(0);
  });

  it('reviews the elevated-risk test card: the payment succeeds and a review opens', async () => {
    const payment = await ok(await pay(tenant, ELEVATED, { fraud_details: { ip_address: US_IP } }));
    expect(payment.status).toBe('succeeded');
    expect(payment.outcome).toMatchObject({
      action: 'review',
      risk_level: 'elevated',
      rule: { name: 'Review elevated risk' },
    });
    const reviews = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/reviews?status=open'));
    expect(reviews.data.map((r: { payment: string }) => r.payment)).toContain(payment.id);
  });

  it('blocks the highest-risk test card by the default rule', async () => {
    const response = await pay(tenant, HIGHEST, { fraud_details: { ip_address: US_IP } });
    expect(response.statusCode).toBe(402);
    expect(response.json().error.payment.outcome).toMatchObject({
      action: 'block',
      risk_level: 'highest',
      rule: { name: 'Block highest risk' },
    });
  });

  it('asks for 3-D Secure on a country mismatch above 1,000.00, then authorizes once authenticated', async () => {
    // Only the default country-mismatch rule, so that the model's score of the day cannot decide first.
    const own = await createTenant(t.app, 'Fraud 3-D Secure');
    const rules = await ok(await call(t.app, own.testKey, 'GET', '/v1/fraud/rules'));
    for (const r of rules.data.filter((r: { action: string }) => r.action !== 'request_3ds'))
      await ok(await call(t.app, own.testKey, 'POST', `/v1/fraud/rules/${r.id}`, { enabled: false }));
    const payment = await ok(await pay(own, GB_CARD, { amount: 150_000, fraud_details: { ip_address: US_IP } }));
    expect(payment.status).toBe('requires_action');
    expect(payment.outcome).toMatchObject({ action: 'request_3ds' });
    const url = new URL(payment.next_action.redirect_to_url.url).pathname;
    const done = await t.app.inject({ method: 'POST', url: `${url}/complete`, payload: { outcome: 'succeeded' } });
    expect(done.statusCode).toBeLessThan(400);
    const after = await ok(await call(t.app, own.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(after.status).toBe('succeeded');
    expect(after.outcome.action).toBe('request_3ds');
  });
});

describe("a small ordinary payment and the buyer's IP address", () => {
  // The buyer's real address is outside the simulation's IP table (its country is not known), or the
  // shop's own loopback in development; a card-country mismatch alone is a traveller's ordinary payment.
  const cases: [string, string, string[]][] = [
    ['127.0.0.1', 'allow', ['allow']],
    ['8.8.8.8', 'allow', ['allow']],
    ['203.0.113.5', 'allow or review', ['allow', 'review']],
  ];
  for (const [ip, expected, actions] of cases)
    for (const currency of ['eur', 'usd'])
      it(`${expected}s 49.00 ${currency.toUpperCase()} on a US card from ${ip}, without "differs" reasons for what is not given`, async () => {
        const tenant = await createTenant(t.app, `Fraud IP ${ip} ${currency}`);
        const payment = await ok(
          await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
            amount: 4900,
            currency,
            payment_method: card(TEST_CARDS.visa),
            confirm: true,
            fraud_details: { ip_address: ip },
          }),
        );
        expect(actions).toContain(payment.outcome.action);
        expect(payment.outcome.risk_level).not.toBe('highest');
        const features = payment.outcome.reasons.map((r: { feature: string }) => r.feature);
        // No billing country was given, and 127.0.0.1 / 8.8.8.8 have no IP country.
        expect(features).not.toContain('Card country differs from billing country');
        expect(features).not.toContain('Billing country differs from IP country');
        if (ip !== '203.0.113.5') expect(features).not.toContain('Card country differs from IP country');
      });
});

describe('rules', () => {
  let tenant: TestTenant;
  beforeAll(async () => {
    tenant = await createTenant(t.app, 'Fraud rules');
    await withoutDefaults(tenant);
  });

  it('runs in priority order: the first enabled non-shadow match decides', async () => {
    const review = await ok(
      await rule(tenant, { name: 'big review', expression: 'amount > 5000', action: 'review', priority: 200 }),
    );
    const block = await ok(
      await rule(tenant, { name: 'huge block', expression: 'amount > 9000', action: 'block', priority: 100 }),
    );
    expect((await ok(await pay(tenant, TEST_CARDS.visa, { amount: 6000 }))).outcome.rule.id).toBe(review.id);
    const blocked = await pay(tenant, TEST_CARDS.visa, { amount: 9500 });
    expect(blocked.json().error.payment.outcome.rule.id).toBe(block.id);
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/fraud/rules/${block.id}`, { priority: 300 }));
    expect((await ok(await pay(tenant, TEST_CARDS.visa, { amount: 9500 }))).outcome.rule.id).toBe(review.id);
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/rules/${review.id}`));
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/rules/${block.id}`));
  });

  it('shadow rules are evaluated and logged, never acted on', async () => {
    const shadow = await ok(
      await rule(tenant, { name: 'shadow block', expression: 'amount == 4321', action: 'block', shadow: true }),
    );
    const payment = await ok(await pay(tenant, TEST_CARDS.visa, { amount: 4321 }));
    expect(payment.outcome).toMatchObject({ action: 'allow', rule: null });
    expect(t.logs.some((line) => line.includes('fraud shadow rule matched') && line.includes(shadow.id))).toBe(true);
    const [row] = await t.admin`SELECT inputs FROM payment_fraud_decisions WHERE payment_id = ${payment.id}`;
    expect(row.inputs.shadow_matches).toEqual([{ id: shadow.id, name: 'shadow block' }]);
    // Velocity is stored by position (VELOCITY_FIELDS order), not by name.
    expect(row.inputs.velocity).toHaveLength(VELOCITY_FIELDS.length);
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/rules/${shadow.id}`));
  });

  it('reads the documented variables: card, ip, email, billing country, velocity, hour', async () => {
    const customer = await newCustomer(t.app, tenant.testKey);
    const r = await ok(
      await rule(tenant, {
        name: 'all variables',
        expression:
          "card.brand == 'visa' && card.bin == '424242' && card.country == 'US' && ip.country == 'GB' && " +
          "ip.address == '198.51.100.7' && email == 'buyer@example.com' && billing_country == 'FR' && " +
          `customer == '${customer}' && currency == 'eur' && velocity.card_count_7d >= 0 && hour >= 0 && ` +
          'risk_score >= 0',
        action: 'review',
      }),
    );
    const payment = await ok(
      await pay(tenant, TEST_CARDS.visa, {
        currency: 'eur',
        customer,
        fraud_details: { ip_address: '198.51.100.7', email: 'Buyer@Example.com', billing_country: 'fr' },
      }),
    );
    expect(payment.outcome.rule?.id).toBe(r.id);
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/rules/${r.id}`));
  });

  it.each([
    ['syntax', 'amount > ', 'expression_syntax_error', 9],
    ['unknown variable', 'amount > 1 && colour == "red"', 'expression_unknown_variable', 14],
    ['unknown field', 'card.colour == "red"', 'expression_unknown_variable', 5],
    ['wrong type', 'amount > "ten"', 'expression_type_error', 0],
    ['not a condition', 'amount + 1', 'expression_type_error', 0],
    ['too large', Array.from({ length: 200 }, () => 'amount > 1').join(' && '), 'expression_too_large', undefined],
    ['unknown list', "lists.contains('no_such_list', email)", 'expression_unknown_list', 16],
  ])('refuses a bad expression (%s) with 400 and the position', async (_name, expression, code, position) => {
    const response = await rule(tenant, { name: 'bad', expression, action: 'block' });
    expect(response.statusCode, response.body).toBe(400);
    const { error } = response.json();
    expect(error).toMatchObject({ type: 'invalid_request_error', code, param: 'expression' });
    expect(error.message).toMatch(/at position \d+: line \d+, column \d+/);
    if (position !== undefined) expect(error.message).toContain(`at position ${position}:`);
  });
});

describe('lists', () => {
  let tenant: TestTenant;
  beforeAll(async () => {
    tenant = await createTenant(t.app, 'Fraud lists');
  });

  const add = async (list: string, value: string) =>
    ok(await call(t.app, tenant.testKey, 'POST', `/v1/fraud/lists/${await listId(tenant, list)}/items`, { value }));

  it.each([
    ['blocked_bins', '400005', { number: '4000056655665556' }],
    ['blocked_emails', 'thief@example.com', { email: 'Thief@Example.com' }],
    ['blocked_ips', '198.51.100.66', { ip_address: '198.51.100.66' }],
    ['blocked_countries', 'gb', { ip_address: '198.51.100.67' }],
    ['blocked_customers', 'a customer of the tenant', { customer: 'created for the test' }],
  ])('a value on %s blocks through the default rule', async (list, value, via) => {
    const { number, customer: wanted, ...details } = via as Record<string, string>;
    const customer = wanted ? await newCustomer(t.app, tenant.testKey) : undefined;
    await add(list, customer ?? value);
    const response = await pay(tenant, number ?? TEST_CARDS.visa, {
      ...(customer ? { customer } : {}),
      ...(Object.keys(details).length ? { fraud_details: details } : {}),
    });
    expect(response.statusCode, response.body).toBe(402);
    expect(response.json().error.payment.outcome).toMatchObject({
      action: 'block',
      rule: { name: 'Block listed values' },
    });
  });

  it('a card fingerprint on blocked_cards blocks; report_fraud with block_card puts it there', async () => {
    const first = await ok(await pay(tenant, '4000002760000016'));
    const reported = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/payments/${first.id}/report_fraud`, { block_card: true }),
    );
    expect(reported.id).toBe(first.id);
    const second = await pay(tenant, '4000002760000016');
    expect(second.statusCode).toBe(402);
    expect(second.json().error.payment.outcome.rule.name).toBe('Block listed values');
  });

  it('an allow-list wins over block rules', async () => {
    await add('blocked_emails', 'vip@example.com');
    expect((await pay(tenant, TEST_CARDS.visa, { fraud_details: { email: 'vip@example.com' } })).statusCode).toBe(402);
    await add('allowed_emails', 'vip@example.com');
    const payment = await ok(await pay(tenant, TEST_CARDS.visa, { fraud_details: { email: 'vip@example.com' } }));
    expect(payment.outcome).toMatchObject({ action: 'allow', rule: { name: 'allowed_emails' } });
  });

  it('a change reaches the decision at once, and removing the value unblocks', async () => {
    const customer = await newCustomer(t.app, tenant.testKey);
    const item = await add('blocked_customers', customer);
    expect((await pay(tenant, TEST_CARDS.visa, { customer })).statusCode).toBe(402);
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/fraud/lists/${item.list}/items/${item.id}`));
    expect((await pay(tenant, TEST_CARDS.visa, { customer })).statusCode).toBe(200);
  });

  it('custom lists: create, use in a rule, refuse a malformed value, list items', async () => {
    const list = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fraud/lists', { name: 'risky_bins', item_type: 'card_bin' }),
    );
    expect(list).toMatchObject({ object: 'fraud_list', kind: 'block', item_type: 'card_bin' });
    const bad = await call(t.app, tenant.testKey, 'POST', `/v1/fraud/lists/${list.id}/items`, { value: 'abc' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'invalid_list_item', param: 'value' });
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/fraud/lists/${list.id}/items`, { value: '424242' }));
    const r = await ok(
      await rule(tenant, {
        name: 'risky bins',
        expression: "lists.contains('risky_bins', card.bin)",
        action: 'review',
        priority: 1,
      }),
    );
    const payment = await ok(await pay(tenant, TEST_CARDS.visa));
    expect(payment.outcome.rule.id).toBe(r.id);
    const items = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/fraud/lists/${list.id}/items`));
    expect(items.data.map((i: { value: string }) => i.value)).toEqual(['424242']);
    const duplicate = await call(t.app, tenant.testKey, 'POST', '/v1/fraud/lists', {
      name: 'risky_bins',
      item_type: 'email',
    });
    expect(duplicate.statusCode).toBe(400);
  });
});

describe('reviews', () => {
  let tenant: TestTenant;
  beforeAll(async () => {
    tenant = await createTenant(t.app, 'Fraud reviews');
  });

  /** A payment the elevated-risk test card sends to review, and its review. */
  async function reviewed(extra: Record<string, unknown> = {}) {
    const payment = await ok(await pay(tenant, ELEVATED, { fraud_details: { ip_address: US_IP }, ...extra }));
    expect(payment.outcome.action).toBe('review');
    const reviews = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/reviews?status=open&limit=100'));
    const review = reviews.data.find((r: { payment: string }) => r.payment === payment.id);
    expect(review).toMatchObject({ object: 'review', status: 'open', opened_reason: 'Review elevated risk' });
    return { payment, review };
  }

  it('approve captures an uncaptured payment and records who, why and when', async () => {
    const { payment, review } = await reviewed({ capture_method: 'manual' });
    expect(payment.status).toBe('requires_capture');
    const approved = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/reviews/${review.id}/approve`, { reason: 'known buyer' }),
    );
    expect(approved).toMatchObject({ status: 'approved', closed_reason: 'known buyer', closed_by: tenant.testKeyId });
    expect(approved.closed_at).toBeGreaterThan(0);
    const after = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(after.status).toBe('succeeded');
    const again = await call(t.app, tenant.testKey, 'POST', `/v1/reviews/${review.id}/approve`, {});
    expect(again.statusCode).toBe(400);
    expect(again.json().error.code).toBe('review_not_open');
  });

  it('reject cancels an uncaptured payment', async () => {
    const { payment, review } = await reviewed({ capture_method: 'manual' });
    const rejected = await ok(await call(t.app, tenant.testKey, 'POST', `/v1/reviews/${review.id}/reject`, null));
    expect(rejected.status).toBe('rejected');
    const after = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(after).toMatchObject({ status: 'canceled', cancellation_reason: 'fraudulent' });
  });

  it('reject refunds a captured payment in full', async () => {
    const { payment, review } = await reviewed();
    expect(payment.status).toBe('succeeded');
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/reviews/${review.id}/reject`, { reason: 'stolen card' }));
    const after = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payments/${payment.id}`));
    expect(after.amount_refunded).toBe(payment.amount);
  });
});

describe('backtest', () => {
  it('replays stored decisions: matches, amount, precision and recall against fraud labels', async () => {
    const tenant = await createTenant(t.app, 'Fraud backtest');
    const since = Math.floor(Date.now() / 1000) - 5;
    // A hand-built history: amounts 1000, 2000, 3000, 7000, 8000; the 2000, 7000 and 8000 are fraud.
    const ids: Record<number, string> = {};
    for (const amount of [1000, 2000, 3000, 7000, 8000])
      ids[amount] = (await ok(await pay(tenant, TEST_CARDS.visa, { amount }))).id;
    for (const amount of [2000, 7000])
      await ok(await call(t.app, tenant.testKey, 'POST', `/v1/payments/${ids[amount]}/report_fraud`, {}));
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/payments/${ids[8000]}/report_fraud`, null));
    const result = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules/backtest', {
        expression: 'amount >= 3000',
        since,
        until: Math.floor(Date.now() / 1000) + 5,
      }),
    );
    // Matched: 3000, 7000, 8000 (two of them fraud) out of three fraud payments.
    expect(result).toMatchObject({
      object: 'fraud_backtest',
      payments: 5,
      matched: 3,
      matched_amount: 18000,
      matched_fraud: 2,
      fraud: 3,
      truncated: false,
    });
    expect(result.precision).toBeCloseTo(2 / 3, 10);
    expect(result.recall).toBeCloseTo(2 / 3, 10);
    const r = await ok(
      await rule(tenant, { name: 'small', expression: 'amount < 1500', action: 'review', shadow: true }),
    );
    const byRule = await ok(
      // An explicit end: the default (now, in whole seconds) can fall before payments made within this second.
      await call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules/backtest', {
        rule: r.id,
        since,
        until: Math.floor(Date.now() / 1000) + 5,
      }),
    );
    expect(byRule).toMatchObject({ matched: 1, matched_fraud: 0, precision: 0, recall: 0 });
    const neither = await call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules/backtest', { since });
    expect(neither.statusCode).toBe(400);
    const bad = await call(t.app, tenant.testKey, 'POST', '/v1/fraud/rules/backtest', {
      expression: 'amount >',
      since,
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('expression_syntax_error');
  });
});

describe('access', () => {
  let owner: TestTenant;
  let other: TestTenant;
  beforeAll(async () => {
    owner = await createTenant(t.app, 'Fraud owner');
    other = await createTenant(t.app, 'Fraud other');
  });

  it("another tenant's rules, lists, reviews and payments answer 404", async () => {
    const r = await ok(await rule(owner, { name: 'mine', expression: 'amount > 1', action: 'review', shadow: true }));
    const list = await listId(owner, 'blocked_emails');
    const payment = await ok(await pay(owner, ELEVATED, { fraud_details: { ip_address: US_IP } }));
    const review = (await ok(await call(t.app, owner.testKey, 'GET', '/v1/reviews'))).data[0];
    for (const [method, url, body] of [
      ['GET', `/v1/fraud/rules/${r.id}`, undefined],
      ['POST', `/v1/fraud/rules/${r.id}`, { enabled: false }],
      ['DELETE', `/v1/fraud/rules/${r.id}`, undefined],
      ['GET', `/v1/fraud/lists/${list}`, undefined],
      ['POST', `/v1/fraud/lists/${list}/items`, { value: 'x@example.com' }],
      ['GET', `/v1/reviews/${review.id}`, undefined],
      ['POST', `/v1/reviews/${review.id}/approve`, {}],
      ['POST', `/v1/payments/${payment.id}/report_fraud`, {}],
      ['POST', '/v1/fraud/rules/backtest', { rule: r.id, since: 0 }],
    ] as const) {
      const response = await call(t.app, other.testKey, method, url, body);
      expect(response.statusCode, `${method} ${url}`).toBe(404);
      expect(response.json().error.type).toBe('invalid_request_error');
    }
    expect((await call(t.app, owner.testKey, 'GET', `/v1/fraud/rules/${r.id}`)).statusCode).toBe(200);
  });

  it('needs credentials and the fraud and reviews scopes', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/v1/fraud/rules' })).statusCode).toBe(401);
    const key = async (scopes: string[]) =>
      (await ok(await call(t.app, owner.testKey, 'POST', '/v1/api_keys', { scopes }))).secret as string;
    const payments = await key(['payments:write']);
    const fraudRead = await key(['fraud:read']);
    const fraudWrite = await key(['fraud:write']);
    const reviewsRead = await key(['reviews:read']);
    const body = { name: 'r', expression: 'amount > 1', action: 'review', shadow: true };
    for (const [secret, method, url, payload, status] of [
      [payments, 'GET', '/v1/fraud/rules', undefined, 403],
      [payments, 'GET', '/v1/reviews', undefined, 403],
      [fraudRead, 'GET', '/v1/fraud/lists', undefined, 200],
      [fraudRead, 'POST', '/v1/fraud/rules', body, 403],
      [fraudWrite, 'POST', '/v1/fraud/rules', body, 200],
      [fraudRead, 'GET', '/v1/reviews', undefined, 403],
      [reviewsRead, 'GET', '/v1/reviews', undefined, 200],
      [reviewsRead, 'POST', '/v1/reviews/prv_x/approve', {}, 403],
    ] as const) {
      const response = await call(t.app, secret, method, url, payload);
      expect(response.statusCode, `${method} ${url}`).toBe(status);
      if (status === 403) expect(response.json().error.code).toBe('missing_scope');
    }
  });

  it('bad input answers 400 with the error object, never a 5xx', async () => {
    for (const [url, body, param] of [
      ['/v1/fraud/rules', { name: 'x', expression: 'true', action: 'delete' }, 'action'],
      ['/v1/fraud/rules', { name: 'x', action: 'block' }, 'expression'],
      ['/v1/fraud/lists', { name: 'bad name!', item_type: 'email' }, 'name'],
      ['/v1/fraud/lists', { name: 'ok', item_type: 'phone' }, 'item_type'],
      ['/v1/payments', { amount: 100, currency: 'usd', fraud_details: { ip_address: 'nope' } }, 'fraud_details'],
    ] as const) {
      const response = await call(t.app, owner.testKey, 'POST', url, body);
      expect(response.statusCode, url).toBe(400);
      expect(response.json().error).toMatchObject({ type: 'invalid_request_error' });
      expect(response.json().error.param ?? '').toContain(param);
    }
  });
});

describe('metrics', () => {
  it('counts decisions by action and rule, and reports the review backlog and the fraud rate', async () => {
    const tenant = await createTenant(t.app, 'Fraud metrics');
    const payment = await ok(await pay(tenant, ELEVATED, { fraud_details: { ip_address: US_IP } }));
    await ok(await call(t.app, tenant.testKey, 'POST', `/v1/payments/${payment.id}/report_fraud`, {}));
    await t.platform.fraudService.refreshGauges();
    const text = await t.platform.metrics.registry.metrics();
    expect(text).toMatch(/fraud_decisions_total\{action="review",rule="Review elevated risk"\} [1-9]/);
    expect(Number(/^fraud_review_backlog (\S+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^fraud_rate_basis_points (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    // The gauges read the analytics rollups and their change log (migration 052), not the payments: the same
    // figures as the payments themselves.
    const [gauges] = await t.admin<{ fraud_amount: string; volume: string }[]>`SELECT * FROM worker_fraud_metrics()`;
    const [truth] = await t.admin<{ fraud_amount: string; volume: string }[]>`
      SELECT coalesce(sum(amount_received) FILTER (WHERE id IN (SELECT payment_id FROM fraud_reports)
          OR id IN (SELECT payment_id FROM disputes WHERE reason = 'fraudulent')), 0)::numeric AS fraud_amount,
        coalesce(sum(amount_received), 0)::numeric AS volume
      FROM payments WHERE created_at > now() - interval '30 days' AND amount_received > 0`;
    expect(Number(truth.volume)).toBeGreaterThan(0);
    expect(Number(truth.fraud_amount)).toBeGreaterThan(0);
    expect({ fraud_amount: Number(gauges.fraud_amount), volume: Number(gauges.volume) }).toEqual({
      fraud_amount: Number(truth.fraud_amount),
      volume: Number(truth.volume),
    });
  });
});
