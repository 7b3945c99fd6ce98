import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from '../../../test/helpers.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Payment methods tenant');
});
afterAll(() => t.close());

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);
const year = new Date().getUTCFullYear();

async function tokenize(number: string, extra: Record<string, unknown> = {}, key = tenant.testKey) {
  const res = await post('/v1/payment_methods', card(number, extra), key);
  expect(res.statusCode).toBe(200);
  return res.json();
}

describe('POST /v1/payment_methods', () => {
  it('tokenizes a card: brand, bin, last4, expiry, fingerprint and cvc check, never the number', async () => {
    const res = await post('/v1/payment_methods', {
      ...card(TEST_CARDS.visa),
      customer: 'cus_7',
      metadata: { note: 'x' },
    });
    expect(res.statusCode).toBe(200);
    const pm = res.json();
    expect(pm.id).toMatch(/^pm_/);
    expect(pm).toMatchObject({
      object: 'payment_method',
      type: 'card',
      customer: 'cus_7',
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
    const ids: string[] = [];
    for (const [i, number] of [TEST_CARDS.visa, '5555555555554444', TEST_CARDS.declined].entries()) {
      const res = await post(
        '/v1/payment_methods',
        { ...card(number), customer: i === 1 ? 'cus_b' : 'cus_a' },
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

    const a = (await get('/v1/payment_methods?customer=cus_a', listTenant.testKey)).json();
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
