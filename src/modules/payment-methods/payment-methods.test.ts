import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessRateLimiter } from '../../http/rate-limit.js';
import { serviceUrl } from '../../../test/services.js';
import {
  bootApp,
  bootWithTenants,
  call,
  card,
  createTenant,
  LIVE_CARD,
  newCustomer,
  ok,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Payment methods tenant');
});
afterAll(() => t.close());

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const year = new Date().getUTCFullYear();
const customerOf = (key = tenant.testKey) => newCustomer(t.app, key);

async function tokenize(number: string, extra: Record<string, unknown> = {}, key = tenant.testKey) {
  const res = await post('/v1/payment_methods', card(number, extra), key);
  expect(res.statusCode).toBe(200);
  return res.json();
}

describe('POST /v1/payment_methods', () => {
  it('tokenizes a card: brand, bin, last4, expiry, fingerprint and cvc check, never the number', async () => {
    const customer = await customerOf();
    const res = await post('/v1/payment_methods', {
      ...card(TEST_CARDS.visa),
      customer,
      metadata: { note: 'x' },
    });
    expect(res.statusCode).toBe(200);
    const pm = res.json();
    expect(pm.id).toMatch(/^pm_/);
    expect(pm).toMatchObject({
      object: 'payment_method',
      type: 'card',
      customer,
      metadata: { note: 'x' },
      livemode: false,
      card: {
        brand: 'visa',
        bin: '424242',
        last4: '4242',
        exp_month: 12,
        exp_year: year + 3,
        checks: { cvc_check: 'pass' },
      },
    });
    expect(pm.card.fingerprint).toEqual(expect.any(String));
    expect(pm.card.fingerprint.length).toBeGreaterThanOrEqual(16);
    expect(res.body).not.toContain(TEST_CARDS.visa);
    expect(res.body).not.toContain('"cvc"');
  });

  it('accepts a number with spaces and recognizes other brands', async () => {
    const spaced = await tokenize('4242 4242 4242 4242');
    expect(spaced.card).toMatchObject({ brand: 'visa', last4: '4242' });
    const mastercard = await tokenize('5555555555554444');
    expect(mastercard.card).toMatchObject({ brand: 'mastercard', bin: '555555', last4: '4444' });
    const amex = await tokenize('378282246310005', { cvc: '1234' });
    expect(amex.card).toMatchObject({ brand: 'amex', last4: '0005', checks: { cvc_check: 'pass' } });
  });

  it('gives the same card the same fingerprint within a tenant, and another card another', async () => {
    const a = await tokenize(TEST_CARDS.visa);
    const b = await tokenize('4242 4242 4242 4242', { exp_month: 1 });
    const other = await tokenize(TEST_CARDS.declined);
    expect(a.id).not.toBe(b.id);
    expect(b.card.fingerprint).toBe(a.card.fingerprint);
    expect(other.card.fingerprint).not.toBe(a.card.fingerprint);
  });

  it('fingerprints differ between tenants', async () => {
    const otherTenant = await createTenant(t.app, 'Other fingerprint tenant');
    const mine = await tokenize(TEST_CARDS.visa);
    const theirs = await tokenize(TEST_CARDS.visa, {}, otherTenant.testKey);
    expect(theirs.card.fingerprint).not.toBe(mine.card.fingerprint);
  });

  it('marks cvc_check unavailable without a cvc and fail for the incorrect-cvc test card', async () => {
    const noCvc = await post('/v1/payment_methods', {
      type: 'card',
      card: { number: TEST_CARDS.visa, exp_month: 12, exp_year: year + 1 },
    });
    expect(noCvc.statusCode).toBe(200);
    expect(noCvc.json().card.checks.cvc_check).toBe('unavailable');
    const incorrect = await tokenize(TEST_CARDS.incorrectCvc);
    expect(incorrect.card.checks.cvc_check).toBe('fail');
  });

  it('rejects a number failing Luhn with 402 card_error incorrect_number on card[number], without echoing it', async () => {
    const res = await post('/v1/payment_methods', card('4242424242424241'));
    expect(res.statusCode).toBe(402);
    expect(res.json().error).toMatchObject({ type: 'card_error', code: 'incorrect_number', param: 'card[number]' });
    expect(res.body).not.toContain('4242424242424241');
  });

  it('rejects an expired card with 402 card_error', async () => {
    const res = await post('/v1/payment_methods', card(TEST_CARDS.visa, { exp_year: year - 1 }));
    expect(res.statusCode).toBe(402);
    expect(res.json().error).toMatchObject({
      type: 'card_error',
      code: 'invalid_expiry_year',
      param: 'card[exp_year]',
    });
  });

  it('accepts a card that expires at the end of this month', async () => {
    const month = new Date().getUTCMonth() + 1;
    const res = await post('/v1/payment_methods', card(TEST_CARDS.visa, { exp_month: month, exp_year: year }));
    expect(res.statusCode).toBe(200);
  });

  it('rejects a malformed cvc with 402 invalid_cvc', async () => {
    const res = await post('/v1/payment_methods', card(TEST_CARDS.visa, { cvc: '1234' }));
    expect(res.statusCode).toBe(402);
    expect(res.json().error).toMatchObject({ type: 'card_error', code: 'invalid_cvc', param: 'card[cvc]' });
  });

  it('rejects schema violations with 400 naming the parameter, never echoing card data', async () => {
    const cases: Array<[unknown, string]> = [
      [{ type: 'card', card: { number: '4242-4242-4242-4242', exp_month: 12, exp_year: year + 1 } }, 'card[number]'],
      [{ type: 'card', card: { number: TEST_CARDS.visa, exp_month: 13, exp_year: year + 1 } }, 'card[exp_month]'],
      [{ type: 'card', card: { number: TEST_CARDS.visa, exp_month: 12 } }, 'card[exp_year]'],
      [{ type: 'bank', card: { number: TEST_CARDS.visa, exp_month: 12, exp_year: year + 1 } }, 'type'],
      [
        { type: 'card', card: { number: TEST_CARDS.visa, exp_month: 12, exp_year: year + 1, pin: '1234' } },
        'card[pin]',
      ],
    ];
    for (const [body, param] of cases) {
      const res = await post('/v1/payment_methods', body);
      expect(res.statusCode, param).toBe(400);
      expect(res.json().error).toMatchObject({ type: 'invalid_request_error', param });
      expect(res.body).not.toContain(TEST_CARDS.visa);
    }
  });

  it('the card number is stored encrypted, never in plaintext', async () => {
    const pm = await tokenize('5105105105105100');
    const [row] = await t.admin<
      { pan_ciphertext: Buffer; bin: string; last4: string }[]
    >`SELECT pan_ciphertext, bin, last4 FROM payment_methods WHERE id = ${pm.id}`;
    expect(row).toMatchObject({ bin: '510510', last4: '5100' });
    expect(row.pan_ciphertext.toString('latin1')).not.toContain('5105105105105100');
    expect(row.pan_ciphertext.toString('hex')).not.toContain(Buffer.from('5105105105105100').toString('hex'));
  });
});

describe('GET /v1/payment_methods/{id}', () => {
  it('retrieves a payment method as it was created', async () => {
    const pm = await tokenize(TEST_CARDS.visa, { exp_month: 7 });
    const res = await get(`/v1/payment_methods/${pm.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(pm);
    expect(res.body).not.toContain(TEST_CARDS.visa);
  });

  it('answers 404 for an unknown id', async () => {
    const res = await get('/v1/payment_methods/pm_doesnotexist');
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
  });
});

describe('GET /v1/payment_methods', () => {
  it('lists newest first, pages, and filters by customer', async () => {
    const listTenant = await createTenant(t.app, 'PM list tenant');
    const [cusA, cusB] = [await customerOf(listTenant.testKey), await customerOf(listTenant.testKey)];
    const ids: string[] = [];
    for (const [i, number] of [TEST_CARDS.visa, '5555555555554444', TEST_CARDS.declined].entries()) {
      const res = await post(
        '/v1/payment_methods',
        { ...card(number), customer: i === 1 ? cusB : cusA },
        listTenant.testKey,
      );
      expect(res.statusCode).toBe(200);
      ids.push(res.json().id);
    }
    const all = await get('/v1/payment_methods', listTenant.testKey);
    expect(all.statusCode).toBe(200);
    expect(all.json()).toMatchObject({ object: 'list', url: '/v1/payment_methods', has_more: false });
    expect(all.json().data.map((p: { id: string }) => p.id)).toEqual([ids[2], ids[1], ids[0]]);
    for (const number of [TEST_CARDS.visa, '5555555555554444', TEST_CARDS.declined])
      expect(all.body).not.toContain(number);

    const page = (await get('/v1/payment_methods?limit=1', listTenant.testKey)).json();
    expect(page.data.map((p: { id: string }) => p.id)).toEqual([ids[2]]);
    expect(page.has_more).toBe(true);
    const next = (await get(`/v1/payment_methods?limit=2&starting_after=${ids[2]}`, listTenant.testKey)).json();
    expect(next.data.map((p: { id: string }) => p.id)).toEqual([ids[1], ids[0]]);
    expect(next.has_more).toBe(false);

    const a = (await get(`/v1/payment_methods?customer=${cusA}`, listTenant.testKey)).json();
    expect(a.data.map((p: { id: string }) => p.id)).toEqual([ids[2], ids[0]]);
  });
});

describe('POST /v1/payment_methods/{id}/verify', () => {
  const verify = (id: string, body?: unknown) => post(`/v1/payment_methods/${id}/verify`, body);

  it('verifies a good card', async () => {
    const pm = await tokenize(TEST_CARDS.visa);
    const res = await verify(pm.id);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      object: 'card_verification',
      payment_method: pm.id,
      status: 'verified',
      checks: { luhn: 'pass', expiry: 'pass', cvc_check: 'pass', brand: 'visa' },
      authorization: { amount: 0, currency: 'usd', status: 'succeeded', processor: 'sim_alpha', decline_code: null },
      reasons: [],
    });
  });

  it('fails a declined card with the reason', async () => {
    const pm = await tokenize(TEST_CARDS.declined);
    const res = await verify(pm.id, {});
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      status: 'failed',
      authorization: { status: 'declined', decline_code: 'generic_decline' },
    });
    expect(body.reasons).toContainEqual(
      expect.objectContaining({ code: 'card_declined', message: expect.any(String) }),
    );
  });

  it('fails the incorrect-cvc card on its cvc check', async () => {
    const pm = await tokenize(TEST_CARDS.incorrectCvc);
    const body = (await verify(pm.id, { cvc: '123' })).json();
    expect(body.status).toBe('failed');
    expect(body.checks.cvc_check).toBe('fail');
    expect(body.reasons.map((r: { code: string }) => r.code)).toContain('incorrect_cvc');
  });

  it('checks a cvc supplied at verification time', async () => {
    const pm = await post('/v1/payment_methods', {
      type: 'card',
      card: { number: TEST_CARDS.visa, exp_month: 12, exp_year: year + 1 },
    });
    const without = (await verify(pm.json().id)).json();
    expect(without.checks.cvc_check).toBe('unavailable');
    expect(without.reasons.map((r: { code: string }) => r.code)).toContain('cvc_unavailable');
    const withCvc = (await verify(pm.json().id, { cvc: '321', currency: 'eur' })).json();
    expect(withCvc).toMatchObject({
      status: 'verified',
      checks: { cvc_check: 'pass' },
      authorization: { currency: 'eur' },
    });
  });

  it('fails over to the next processor for the $0 authorization', async () => {
    const pm = await tokenize(TEST_CARDS.processingError);
    const body = (await verify(pm.id)).json();
    expect(body).toMatchObject({ status: 'verified', authorization: { status: 'succeeded', processor: 'sim_beta' } });
  });

  it('answers 404 for an unknown payment method and 400 for a bad body', async () => {
    const missing = await verify('pm_doesnotexist');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('resource_missing');
    const pm = await tokenize(TEST_CARDS.visa);
    const bad = await verify(pm.id, { cvc: 'abc' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.param).toBe('cvc');
  });
});

describe('card numbers shorter than 15 digits', () => {
  it('show only last4: no BIN returned or stored, since BIN and last4 would leave too few digits unknown', async () => {
    for (const number of ['501800000009', '5018000000000009', '36227206271667']) {
      const pm = await tokenize(number);
      const [row] = await t.admin<{ bin: string | null; sealed_digits: number }[]>`
        SELECT bin, octet_length(pan_ciphertext) - 28 AS sealed_digits FROM payment_methods WHERE id = ${pm.id}`;
      // Migration 009 finds the short numbers stored before it by this length (AES-GCM keeps it).
      expect(row.sealed_digits).toBe(number.length);
      const bin = number.length >= 15 ? number.slice(0, 6) : null;
      expect(row.bin).toBe(bin);
      expect(pm.card).toMatchObject({ bin, last4: number.slice(-4) });
      expect((await get(`/v1/payment_methods/${pm.id}`)).json().card.bin).toBe(bin);
    }
    const amex = await tokenize('378282246310005', { cvc: '1234' });
    expect(amex.card.bin).toBe('378282');
  });
});

describe('live mode', () => {
  // Every card number the README documents for test mode, behaviour, country and funding cards alike.
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(
    readme.indexOf('### Test cards'),
    readme.indexOf('###', readme.indexOf('### Test cards') + 3),
  );
  const documented = [...new Set(section.match(/\b\d{15,16}\b/g) ?? [])];

  it('refuses every documented test card: 402 card_declined / test_mode_live_card, and stores nothing', async () => {
    const owner = await createTenant(t.app, 'Live test cards');
    expect(documented.length).toBeGreaterThanOrEqual(15);
    for (const number of documented) {
      for (const [url, body, param] of [
        ['/v1/payment_methods', card(number), 'card[number]'],
        [
          '/v1/payments',
          { amount: 1000, currency: 'usd', payment_method: card(number), confirm: true },
          'payment_method[card][number]',
        ],
        [
          '/v1/payments',
          { amount: 1000, currency: 'usd', payment_method: card(number) },
          'payment_method[card][number]',
        ],
      ] as const) {
        const response = await post(url, body, owner.liveKey);
        expect(response.statusCode, `${number} ${url}`).toBe(402);
        expect(response.json().error).toMatchObject({
          type: 'card_error',
          code: 'card_declined',
          decline_code: 'test_mode_live_card',
          param,
        });
        expect(response.body).not.toContain(number);
      }
    }
    const [stored] = await t.admin<{ methods: number; payments: number }[]>`
      SELECT (SELECT count(*)::int FROM payment_methods WHERE tenant_id = ${owner.id}) AS methods,
             (SELECT count(*)::int FROM payments WHERE tenant_id = ${owner.id}) AS payments`;
    expect(stored).toEqual({ methods: 0, payments: 0 });

    // An unconfirmed live payment cannot be confirmed with one either.
    const pending = await ok(await post('/v1/payments', { amount: 1000, currency: 'usd' }, owner.liveKey));
    const confirm = await post(
      `/v1/payments/${pending.id}/confirm`,
      { payment_method: card(TEST_CARDS.visa) },
      owner.liveKey,
    );
    expect(confirm.json().error).toMatchObject({ code: 'card_declined', decline_code: 'test_mode_live_card' });

    // Test mode takes them, and live mode takes any other valid number.
    expect((await post('/v1/payment_methods', card(documented[0]), owner.testKey)).statusCode).toBe(200);
    const live = await ok(await post('/v1/payment_methods', card(LIVE_CARD), owner.liveKey));
    expect(live.livemode).toBe(true);
  });
});

describe('a saved card belongs to its customer', () => {
  it('charging a pm_ saved for one customer with another customer, or none, is 400 on customer', async () => {
    const owner = await createTenant(t.app, 'Card owners');
    const [cusX, cusY, cusZ] = [
      await customerOf(owner.testKey),
      await customerOf(owner.testKey),
      await customerOf(owner.testKey),
    ];
    const saved = await ok(
      await post('/v1/payment_methods', { ...card(TEST_CARDS.visa), customer: cusX }, owner.testKey),
    );
    const charge = (extra: Record<string, unknown>) =>
      post(
        '/v1/payments',
        { amount: 700, currency: 'usd', payment_method: saved.id, confirm: true, ...extra },
        owner.testKey,
      );
    for (const extra of [{ customer: cusY }, {}, { confirm: false, customer: cusY }]) {
      const refused = await charge(extra);
      expect(refused.statusCode, JSON.stringify(extra)).toBe(400);
      expect(refused.json().error).toMatchObject({
        type: 'invalid_request_error',
        code: 'payment_method_customer_mismatch',
        param: 'customer',
      });
    }
    expect((await ok(await get('/v1/payments', owner.testKey))).data).toEqual([]);
    expect((await ok(await charge({ customer: cusX }))).status).toBe('succeeded');

    // At confirmation: the payment's customer must be the card's.
    for (const customer of [cusY, undefined]) {
      const payment = await ok(await post('/v1/payments', { amount: 700, currency: 'usd', customer }, owner.testKey));
      const refused = await post(`/v1/payments/${payment.id}/confirm`, { payment_method: saved.id }, owner.testKey);
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error).toMatchObject({ code: 'payment_method_customer_mismatch', param: 'customer' });
      expect((await ok(await get(`/v1/payments/${payment.id}`, owner.testKey))).status).toBe('requires_payment_method');
    }
    const mine = await ok(await post('/v1/payments', { amount: 700, currency: 'usd', customer: cusX }, owner.testKey));
    const confirmed = await ok(
      await post(`/v1/payments/${mine.id}/confirm`, { payment_method: saved.id }, owner.testKey),
    );
    expect(confirmed.status).toBe('succeeded');

    // A card saved without a customer stays usable by anyone.
    const loose = await ok(await post('/v1/payment_methods', card(TEST_CARDS.visa), owner.testKey));
    const anyone = await post(
      '/v1/payments',
      { amount: 700, currency: 'usd', payment_method: loose.id, confirm: true, customer: cusZ },
      owner.testKey,
    );
    expect(anyone.statusCode).toBe(200);
  });
});

const redisUrl = serviceUrl('REDIS_URL');

describe('rate limit on tokenizing cards (a fingerprint oracle)', () => {
  // A window of ~31 years: the counts cannot turn over while the test runs.
  const limits = {
    PAYMENT_METHOD_RATE_LIMIT_PER_KEY: '3',
    PAYMENT_METHOD_RATE_LIMIT_PER_TENANT: '8',
    PAYMENT_METHOD_RATE_LIMIT_WINDOW_MS: '1000000000000',
  };

  async function exercise(limited: TestApp) {
    const owner = await createTenant(limited.app, 'Tokenizing tenant');
    const send = (key: string, url: string, body: unknown, headers: Record<string, string> = {}) =>
      call(limited.app, key, 'POST', url, body, headers);
    const expectLimited = (response: Awaited<ReturnType<typeof call>>) => {
      expect(response.statusCode, response.body).toBe(429);
      expect(response.json().error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit' });
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
    };
    const saved = await ok(await send(owner.testKey, '/v1/payment_methods', card(TEST_CARDS.visa)));
    await ok(await send(owner.testKey, '/v1/payment_methods', card(TEST_CARDS.debit)));
    // An inline card in a payment is tokenized too, and counts.
    const inline = { amount: 500, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true };
    await ok(await send(owner.testKey, '/v1/payments', inline));
    expectLimited(await send(owner.testKey, '/v1/payment_methods', card(TEST_CARDS.visa)));
    // The refusal is not stored as the answer to its Idempotency-Key.
    const keyed = await send(owner.testKey, '/v1/payments', inline, { 'idempotency-key': 'limited-1' });
    expectLimited(keyed);
    const [{ stored }] = await limited.admin<{ stored: number }[]>`
      SELECT count(*)::int AS stored FROM idempotency_keys WHERE tenant_id = ${owner.id} AND key = 'limited-1'`;
    expect(stored).toBe(0);
    const pending = await ok(await send(owner.testKey, '/v1/payments', { amount: 500, currency: 'usd' }));
    expectLimited(
      await send(owner.testKey, `/v1/payments/${pending.id}/confirm`, { payment_method: card(TEST_CARDS.visa) }),
    );
    // A saved card is no new tokenization.
    const reuse = { amount: 500, currency: 'usd', payment_method: saved.id, confirm: true };
    expect((await ok(await send(owner.testKey, '/v1/payments', reuse))).status).toBe('succeeded');

    // Refused attempts count too: the tenant is at 6 of 8. Another key has its own allowance, up to the tenant's.
    const scopes = ['payment_methods:write', 'payments:write'];
    const restricted = await ok(await send(owner.testKey, '/v1/api_keys', { scopes }));
    await ok(await send(restricted.secret, '/v1/payment_methods', card(TEST_CARDS.visa)));
    await ok(await send(restricted.secret, '/v1/payment_methods', card(TEST_CARDS.visa)));
    expectLimited(await send(restricted.secret, '/v1/payment_methods', card(TEST_CARDS.visa)));
    // Fingerprints are per tenant, whatever the mode: the live key shares the tenant's allowance. Other tenants do not.
    expectLimited(await send(owner.liveKey, '/v1/payment_methods', card(LIVE_CARD)));
    const other = await createTenant(limited.app, 'Other tokenizing tenant');
    await ok(await send(other.testKey, '/v1/payment_methods', card(TEST_CARDS.visa)));

    const metric = await limited.platform.metrics.registry.getSingleMetricAsString('payment_method_rate_limited_total');
    expect(metric).toMatch(/^payment_method_rate_limited_total 5$/m);
  }

  it.skipIf(!redisUrl)(
    'limits per key and per tenant, counting inline cards, with 429 rate_limit_error, Retry-After and a metric (Redis)',
    async () => {
      const limited = await bootApp({ ...limits, REDIS_URL: redisUrl! });
      try {
        // The start waited for Redis: the first tokenizations are counted there, not in process.
        expect(limited.platform.redis?.status).toBe('ready');
        await exercise(limited);
      } finally {
        await limited.close();
      }
    },
  );

  it('the same without Redis, in process', async () => {
    const limited = await bootApp(limits);
    try {
      expect(limited.platform.redis).toBeUndefined();
      await exercise(limited);
    } finally {
      await limited.close();
    }
  });

  it("the in-process limiter keeps a long window's counts while a short window turns over", async () => {
    const limiter = new InProcessRateLimiter();
    expect((await limiter.hit([{ key: 'pm', limit: 1 }], 1_000_000_000_000)).allowed).toBe(true);
    // Another window length starts a window of its own, which must not reset the long window's counts.
    await limiter.hit([{ key: 'general', limit: 1 }], 1);
    expect((await limiter.hit([{ key: 'pm', limit: 1 }], 1_000_000_000_000)).allowed).toBe(false);
  });
});
