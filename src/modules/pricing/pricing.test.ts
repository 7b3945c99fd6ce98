import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { appDatabaseUrl, connect, inScope, type Sql } from '../../db/index.js';
import {
  bootWithTenants,
  call,
  card,
  createTenant,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import type { Plan } from './schemas.js';
import { percentOf, priceCharge, roundHalfUp } from './service.js';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;

beforeAll(async () => {
  [t, a, b] = await bootWithTenants('Pricing tenant A', 'Pricing tenant B');
});
afterAll(() => t.close());

const setPlan = (tenantId: string, body: unknown, key = PLATFORM_KEY) =>
  call(t.app, key, 'PUT', `/v1/tenants/${tenantId}/pricing`, body);
const preview = (key: string, body: unknown) => call(t.app, key, 'POST', '/v1/fees/preview', body);

async function quote(key: string, body: unknown) {
  const res = await preview(key, body);
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as {
    fee: number;
    net: number;
    amount: number;
    pricing_version: number;
    fee_details: Array<{ type: string; amount: number; currency: string }>;
  };
}

const lines = (q: { fee_details: Array<{ type: string; amount: number }> }) =>
  Object.fromEntries(q.fee_details.map((d) => [d.type, d.amount]));

const blended = (overrides: Record<string, unknown> = {}) => ({
  type: 'blended',
  processing: { percent_bps: 290, fixed: 30 },
  international_bps: 150,
  currency_conversion_bps: 100,
  instant_settlement_bps: 100,
  refund_fee: { fixed: 0 },
  dispute_fee: { fixed: 1500 },
  ...overrides,
});

const interchangePlus = {
  type: 'interchange_plus',
  interchange_plus: {
    interchange_bps: { credit: 180, debit: 80, prepaid: 120 },
    scheme_fee_bps: 13,
    markup: { percent_bps: 50, fixed: 10 },
  },
  international_bps: 150,
  currency_conversion_bps: 100,
  instant_settlement_bps: 100,
  refund_fee: { fixed: 0 },
  dispute_fee: { fixed: 1500 },
};

async function savedCard(tenant: TestTenant, changes?: { country: string; funding: string }) {
  const res = await call(t.app, tenant.testKey, 'POST', '/v1/payment_methods', card(TEST_CARDS.visa));
  expect(res.statusCode, res.body).toBe(200);
  const id = res.json().id as string;
  // Tokenization records every simulated card as a US credit card; other issuers are set directly.
  if (changes)
    await t.admin`UPDATE payment_methods SET country = ${changes.country}, funding = ${changes.funding} WHERE id = ${id}`;
  return id;
}

describe('the rounding rule', () => {
  it('rounds half up, exactly, however large the amount', () => {
    expect(roundHalfUp(145n, 10n)).toBe(15n);
    expect(roundHalfUp(25n, 10n)).toBe(3n);
    expect(roundHalfUp(144n, 10n)).toBe(14n);
    expect(roundHalfUp(0n, 10_000n)).toBe(0n);
    // 290 bps of 500 is 14.5: half up gives 15 where banker's rounding would give 14.
    expect(percentOf(500, 290)).toBe(15);
    expect(percentOf(2500, 10)).toBe(3);
    expect(percentOf(1, 4999)).toBe(0);
    expect(percentOf(1, 5000)).toBe(1);
    // 999,999,999,999 × 9,999 is past 2^53, where floating point loses the last digits.
    expect(percentOf(999_999_999_999, 9_999)).toBe(999_899_999_999);
  });
});

describe('plans: set by the operator, read by the tenant', () => {
  it('gives a tenant without a plan the documented default, as version 0', async () => {
    const res = await call(t.app, b.testKey, 'GET', '/v1/pricing');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      id: null,
      object: 'pricing_plan',
      version: 0,
      livemode: false,
      created: null,
      ...blended(),
    });
  });

  it('versions every change and keeps earlier versions readable', async () => {
    const first = await setPlan(a.id, blended({ processing: { percent_bps: 250, fixed: 25 } }));
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({
      object: 'pricing_plan',
      version: 1,
      livemode: false,
      processing: { percent_bps: 250, fixed: 25 },
    });
    expect(first.json().id).toMatch(/^pp_/);

    const read = await call(t.app, a.testKey, 'GET', '/v1/pricing');
    expect(read.json()).toEqual(first.json());

    const second = await setPlan(a.id, blended({ processing: { percent_bps: 300, fixed: 0 } }));
    expect(second.json()).toMatchObject({ version: 2, processing: { percent_bps: 300, fixed: 0 } });
    expect((await call(t.app, a.testKey, 'GET', '/v1/pricing')).json()).toMatchObject({
      version: 2,
      processing: { percent_bps: 300, fixed: 0 },
    });
    expect((await call(t.app, a.testKey, 'GET', '/v1/pricing?version=1')).json()).toEqual(first.json());
    expect((await call(t.app, a.testKey, 'GET', '/v1/pricing?version=0')).json()).toMatchObject({
      version: 0,
      processing: { percent_bps: 290, fixed: 30 },
    });

    const missing = await call(t.app, a.testKey, 'GET', '/v1/pricing?version=3');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error).toMatchObject({ code: 'resource_missing', param: 'version' });

    // The preview quotes with the latest version and says which one.
    const q = await quote(a.testKey, { amount: 1000, currency: 'usd' });
    expect(q).toMatchObject({ fee: 30, net: 970, pricing_version: 2 });
  });

  it('keeps test and live plans apart', async () => {
    const tenant = await createTenant(t.app, 'Pricing modes');
    expect(
      (await setPlan(tenant.id, blended({ livemode: true, processing: { percent_bps: 100, fixed: 5 } }))).json(),
    ).toMatchObject({ version: 1, livemode: true });
    expect((await call(t.app, tenant.testKey, 'GET', '/v1/pricing')).json()).toMatchObject({
      version: 0,
      livemode: false,
    });
    expect((await call(t.app, tenant.liveKey, 'GET', '/v1/pricing')).json()).toMatchObject({
      version: 1,
      livemode: true,
      processing: { percent_bps: 100, fixed: 5 },
    });

    expect((await setPlan(tenant.id, blended({ processing: { percent_bps: 400, fixed: 0 } }))).json()).toMatchObject({
      version: 1,
      livemode: false,
    });
    expect(await quote(tenant.testKey, { amount: 1000, currency: 'usd' })).toMatchObject({
      fee: 40,
      pricing_version: 1,
    });
    expect(await quote(tenant.liveKey, { amount: 1000, currency: 'usd' })).toMatchObject({
      fee: 15,
      pricing_version: 1,
    });
  });

  it('lets only the operator set a plan, and only for a tenant that exists', async () => {
    const res = await setPlan(a.id, blended(), a.testKey);
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toMatchObject({ type: 'permission_error', code: 'platform_key_required' });
    const unknown = await setPlan('ten_doesnotexist', blended());
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
    expect((await call(t.app, PLATFORM_KEY, 'GET', '/v1/pricing')).statusCode).toBe(403);
  });

  it("never shows one tenant another's plan or cards", async () => {
    const tenant = await createTenant(t.app, 'Pricing isolated');
    await setPlan(tenant.id, blended({ processing: { percent_bps: 777, fixed: 0 } }));
    expect((await call(t.app, b.testKey, 'GET', '/v1/pricing')).json()).toMatchObject({
      version: 0,
      processing: { percent_bps: 290 },
    });
    expect((await call(t.app, b.testKey, 'GET', '/v1/pricing?version=1')).statusCode).toBe(404);

    const pm = await savedCard(tenant);
    expect((await quote(tenant.testKey, { amount: 1000, currency: 'usd', payment_method: pm })).fee).toBe(78);
    const foreign = await preview(b.testKey, { amount: 1000, currency: 'usd', payment_method: pm });
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().error).toMatchObject({ code: 'resource_missing', param: 'payment_method' });
    // The tenant's own card in the other mode is out of scope too.
    expect((await preview(tenant.liveKey, { amount: 1000, currency: 'usd', payment_method: pm })).statusCode).toBe(404);
  });

  it('stores versions the application role can read in scope but never change', async () => {
    const appSql: Sql = connect(appDatabaseUrl(inject('adminDatabaseUrl'), t.config), { max: 1 });
    try {
      const own = await inScope(
        appSql,
        { tenantId: a.id, livemode: false },
        (tx) => tx<{ tenant_id: string }[]>`SELECT tenant_id FROM pricing_plans`,
      );
      expect(own.length).toBeGreaterThanOrEqual(2);
      for (const row of own) expect(row.tenant_id).toBe(a.id);
      const [{ count }] = await appSql<{ count: number }[]>`SELECT count(*)::int AS count FROM pricing_plans`;
      expect(count).toBe(0);
      await expect(
        inScope(
          appSql,
          { tenantId: a.id, livemode: false },
          (tx) => tx`UPDATE pricing_plans SET version = version + 10`,
        ),
      ).rejects.toMatchObject({ code: '42501' });
      await expect(
        inScope(appSql, { tenantId: a.id, livemode: false }, (tx) => tx`DELETE FROM pricing_plans`),
      ).rejects.toMatchObject({ code: '42501' });
      const forged = inScope(
        appSql,
        { tenantId: b.id, livemode: false },
        (tx) => tx`
        INSERT INTO pricing_plans (id, tenant_id, livemode, version, plan) VALUES ('pp_forged', ${a.id}, false, 99, '{}')`,
      );
      await expect(forged).rejects.toMatchObject({ code: '42501' });
    } finally {
      await appSql.end();
    }
  });
});

describe('POST /v1/fees/preview', () => {
  let tenant: TestTenant;
  beforeAll(async () => {
    tenant = await createTenant(t.app, 'Pricing preview');
  });

  it('prices USD, JPY and KWD under the default plan, the fixed fee scaled to each exponent', async () => {
    // 290 bps of 1000 cents = 29, + 30 cents.
    const usd = await quote(tenant.testKey, { amount: 1000, currency: 'USD' });
    expect(usd).toMatchObject({
      object: 'fee_preview',
      amount: 1000,
      currency: 'usd',
      fee: 59,
      net: 941,
      pricing_version: 0,
      livemode: false,
    });
    expect(usd.fee_details).toEqual([
      { type: 'processing_percentage', amount: 29, currency: 'usd', description: '2.90% processing fee' },
      { type: 'processing_fixed', amount: 30, currency: 'usd', description: 'fixed fee per payment' },
    ]);
    // ¥1234 × 2.9% = 35.786 → 36; the 0.30 fixed fee is ¥0.3, which rounds to nothing.
    const jpy = await quote(tenant.testKey, { amount: 1234, currency: 'jpy' });
    expect(jpy).toMatchObject({ fee: 36, net: 1198 });
    expect(lines(jpy)).toEqual({ processing_percentage: 36 });
    // 12.345 KD × 2.9% = 358.005 fils → 358, + 0.300 KD = 300 fils.
    const kwd = await quote(tenant.testKey, { amount: 12345, currency: 'kwd' });
    expect(kwd).toMatchObject({ fee: 658, net: 11687 });
    expect(lines(kwd)).toEqual({ processing_percentage: 358, processing_fixed: 300 });
    // BHD has three decimals too.
    expect(await quote(tenant.testKey, { amount: 1000, currency: 'bhd' })).toMatchObject({ fee: 329 });
  });

  it('adds the international surcharge for a card from outside the US, given or saved', async () => {
    // 29 + 30 + 150 bps of 1000 = 15.
    const given = await quote(tenant.testKey, { amount: 1000, currency: 'usd', card_country: 'gb' });
    expect(given).toMatchObject({ fee: 74, net: 926 });
    expect(lines(given).international).toBe(15);
    expect(given.fee_details.find((d) => d.type === 'international')).toMatchObject({
      description: expect.stringContaining('(GB)'),
    });
    expect(
      lines(await quote(tenant.testKey, { amount: 1000, currency: 'usd', card_country: 'US' })).international,
    ).toBeUndefined();

    const domestic = await savedCard(tenant);
    expect(await quote(tenant.testKey, { amount: 1000, currency: 'usd', payment_method: domestic })).toMatchObject({
      fee: 59,
    });
    const german = await savedCard(tenant, { country: 'DE', funding: 'credit' });
    expect(await quote(tenant.testKey, { amount: 1000, currency: 'usd', payment_method: german })).toMatchObject({
      fee: 74,
    });
  });

  it('adds the conversion markup only when the presentment currency differs, and the instant fee when asked', async () => {
    const converted = await quote(tenant.testKey, { amount: 1000, currency: 'usd', presentment_currency: 'EUR' });
    expect(converted).toMatchObject({ fee: 69 });
    expect(lines(converted).currency_conversion).toBe(10);
    expect(
      lines(await quote(tenant.testKey, { amount: 1000, currency: 'usd', presentment_currency: 'usd' }))
        .currency_conversion,
    ).toBeUndefined();
    const instant = await quote(tenant.testKey, {
      amount: 1000,
      currency: 'usd',
      instant_settlement: true,
      card_country: 'FR',
      presentment_currency: 'eur',
    });
    expect(lines(instant)).toEqual({
      processing_percentage: 29,
      processing_fixed: 30,
      international: 15,
      currency_conversion: 10,
      instant_settlement: 10,
    });
    expect(instant).toMatchObject({ fee: 94, net: 906 });
  });

  it('uses per-currency overrides in their own minor units', async () => {
    const custom = await createTenant(t.app, 'Pricing overrides');
    const res = await setPlan(
      custom.id,
      blended({
        processing: {
          percent_bps: 290,
          fixed: 30,
          currencies: { jpy: { percent_bps: 360, fixed: 10 }, kwd: { percent_bps: 250, fixed: 100 } },
        },
      }),
    );
    expect(res.statusCode, res.body).toBe(200);
    // ¥1000 × 3.6% = 36, + ¥10.
    expect(await quote(custom.testKey, { amount: 1000, currency: 'jpy' })).toMatchObject({
      fee: 46,
      pricing_version: 1,
    });
    // 2.000 KD × 2.5% = 50 fils, + 100 fils.
    expect(await quote(custom.testKey, { amount: 2000, currency: 'kwd' })).toMatchObject({ fee: 150 });
    expect(await quote(custom.testKey, { amount: 1000, currency: 'usd' })).toMatchObject({ fee: 59 });
  });

  it('rounds each line half up on its own', async () => {
    const custom = await createTenant(t.app, 'Pricing rounding');
    await setPlan(custom.id, blended({ processing: { percent_bps: 290, fixed: 50 }, international_bps: 10 }));
    // 14.5 → 15 and, for the surcharge, 0.5 → 1: 15 + 50 + 1.
    const q = await quote(custom.testKey, { amount: 500, currency: 'usd', card_country: 'CA' });
    expect(lines(q)).toEqual({ processing_percentage: 15, processing_fixed: 50, international: 1 });
    expect(q.fee).toBe(66);
    // 0.50 major units is ¥0.5, which rounds up to ¥1; 290 bps of ¥100 = 2.9 → 3.
    expect(lines(await quote(custom.testKey, { amount: 100, currency: 'jpy' }))).toEqual({
      processing_percentage: 3,
      processing_fixed: 1,
    });
    // A line whose rate applies stays visible even when it rounds to 0; the fee may exceed a tiny amount.
    const tiny = await quote(custom.testKey, { amount: 1, currency: 'usd', card_country: 'CA' });
    expect(lines(tiny)).toEqual({ processing_percentage: 0, processing_fixed: 50, international: 0 });
    expect(tiny).toMatchObject({ fee: 50, net: -49 });
  });

  it('itemises an interchange++ plan by card funding, the lines adding up to the fee', async () => {
    const custom = await createTenant(t.app, 'Pricing interchange');
    expect((await setPlan(custom.id, interchangePlus)).statusCode).toBe(200);
    // 10000 cents: interchange 80 bps = 80, scheme 13 bps = 13, markup 50 bps = 50, + 10 fixed.
    const debit = await quote(custom.testKey, { amount: 10_000, currency: 'usd', card_funding: 'debit' });
    expect(lines(debit)).toEqual({ interchange: 80, scheme_fee: 13, markup: 50, markup_fixed: 10 });
    expect(debit).toMatchObject({ fee: 153, net: 9847 });
    expect(debit.fee_details.reduce((sum, d) => sum + d.amount, 0)).toBe(debit.fee);
    // No funding given: priced as credit, 180 bps.
    expect(await quote(custom.testKey, { amount: 10_000, currency: 'usd' })).toMatchObject({ fee: 253 });
    const prepaid = await savedCard(custom, { country: 'US', funding: 'prepaid' });
    const q = await quote(custom.testKey, { amount: 10_000, currency: 'usd', payment_method: prepaid });
    expect(lines(q)).toEqual({ interchange: 120, scheme_fee: 13, markup: 50, markup_fixed: 10 });
    expect(q.fee).toBe(193);
  });

  it('rejects invalid requests with the error envelope', async () => {
    const cases: Array<[unknown, number, string, string | null]> = [
      [{ amount: 1000, currency: 'xyz' }, 400, 'invalid_currency', 'currency'],
      [{ amount: -5, currency: 'usd' }, 400, 'parameter_invalid', 'amount'],
      [{ amount: 10.5, currency: 'usd' }, 400, 'parameter_invalid', 'amount'],
      [{ amount: '1000', currency: 'usd' }, 400, 'parameter_invalid', 'amount'],
      [{ amount: 1000, currency: 'usd', surprise: true }, 400, 'parameter_unknown', 'surprise'],
      [{ amount: 1000 }, 400, 'parameter_missing', 'currency'],
      [{ amount: 1000, currency: 'usd', presentment_currency: 'abc' }, 400, 'invalid_currency', 'presentment_currency'],
      [{ amount: 1000, currency: 'usd', card_country: 'GBR' }, 400, 'parameter_invalid', 'card_country'],
      [
        { amount: 1000, currency: 'usd', payment_method: 'pm_abc', card_country: 'GB' },
        400,
        'parameter_invalid',
        'payment_method',
      ],
      [{ amount: 1000, currency: 'usd', payment_method: 'pm_nosuchcard' }, 404, 'resource_missing', 'payment_method'],
      [{ amount: 100_000_000_000, currency: 'jpy' }, 400, 'amount_too_large', 'amount'],
    ];
    for (const [body, status, code, param] of cases) {
      const res = await preview(tenant.testKey, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(status);
      const { error } = res.json();
      expect(error, JSON.stringify(body)).toMatchObject({ type: 'invalid_request_error', code, param });
      expect(error.request_id).toBe(res.headers['request-id']);
    }
  });

  it('rejects invalid plans without creating a version', async () => {
    const custom = await createTenant(t.app, 'Pricing invalid plans');
    const cases: Array<[unknown, string, string]> = [
      [blended({ extra: 1 }), 'parameter_unknown', 'extra'],
      [blended({ processing: { percent_bps: 10_001, fixed: 0 } }), 'parameter_invalid', 'processing[percent_bps]'],
      [blended({ processing: { percent_bps: 290, fixed: -1 } }), 'parameter_invalid', 'processing[fixed]'],
      [blended({ processing: { percent_bps: 290.5, fixed: 0 } }), 'parameter_invalid', 'processing[percent_bps]'],
      [
        blended({ processing: { percent_bps: 290, fixed: 30, currencies: { xyz: { percent_bps: 1, fixed: 1 } } } }),
        'invalid_currency',
        'processing[currencies][xyz]',
      ],
      [
        blended({ processing: { percent_bps: 290, fixed: 30, currencies: { USD: { percent_bps: 1, fixed: 1 } } } }),
        'parameter_unknown',
        'processing[currencies][USD]',
      ],
      [blended({ processing: undefined }), 'parameter_missing', 'processing'],
      [blended({ international_bps: undefined }), 'parameter_missing', 'international_bps'],
      [blended({ type: 'flat' }), 'parameter_invalid', 'type'],
      [{ ...interchangePlus, interchange_plus: undefined }, 'parameter_missing', 'interchange_plus'],
      [{ ...interchangePlus, processing: { percent_bps: 1, fixed: 1 } }, 'parameter_invalid', 'processing'],
      [blended({ interchange_plus: interchangePlus.interchange_plus }), 'parameter_invalid', 'interchange_plus'],
      [blended({ livemode: 'yes' }), 'parameter_invalid', 'livemode'],
    ];
    for (const [body, code, param] of cases) {
      const res = await setPlan(custom.id, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error, JSON.stringify(body)).toMatchObject({ type: 'invalid_request_error', code, param });
    }
    expect((await call(t.app, custom.testKey, 'GET', '/v1/pricing')).json().version).toBe(0);
    const [{ count }] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM pricing_plans WHERE tenant_id = ${custom.id}`;
    expect(count).toBe(0);
  });
});

const CURRENCIES = ['usd', 'eur', 'jpy', 'krw', 'kwd', 'bhd', 'clf'];
const bps = fc.integer({ min: 0, max: 10_000 });
const fixed = fc.integer({ min: 0, max: 1_000_000_000 });
const rate = fc.record(
  {
    percent_bps: bps,
    fixed,
    currencies: fc.dictionary(fc.constantFrom(...CURRENCIES), fc.record({ percent_bps: bps, fixed }), { maxKeys: 3 }),
  },
  { requiredKeys: ['percent_bps', 'fixed'] },
);
const fixedFee = fc.record({ fixed });
const common = {
  international_bps: bps,
  currency_conversion_bps: bps,
  instant_settlement_bps: bps,
  refund_fee: fixedFee,
  dispute_fee: fixedFee,
};
const planArb: fc.Arbitrary<Plan> = fc.oneof(
  fc.record({ type: fc.constant('blended'), processing: rate, ...common }),
  fc.record({
    type: fc.constant('interchange_plus'),
    interchange_plus: fc.record({
      interchange_bps: fc.record({ credit: bps, debit: bps, prepaid: bps }),
      scheme_fee_bps: bps,
      markup: rate,
    }),
    ...common,
  }),
);
const chargeArb = fc.record({
  amount: fc.bigInt({ min: 1n, max: 1_000_000_000_000n }).map(Number),
  currency: fc.constantFrom(...CURRENCIES),
  cardCountry: fc.option(fc.constantFrom('US', 'GB', 'JP', 'KW', 'us')),
  cardFunding: fc.constantFrom('credit', 'debit', 'prepaid', 'unknown'),
  presentmentCurrency: fc.option(fc.constantFrom(...CURRENCIES)),
  instantSettlement: fc.boolean(),
});

describe('priceCharge properties', () => {
  it('itemises exactly: integer lines summing to a non-negative fee, fee + net = amount, deterministic', () => {
    fc.assert(
      fc.property(planArb, chargeArb, (plan, input) => {
        const price = priceCharge(plan, input);
        for (const detail of price.fee_details) {
          expect(Number.isSafeInteger(detail.amount)).toBe(true);
          expect(detail.amount).toBeGreaterThanOrEqual(0);
          expect(detail.currency).toBe(input.currency);
        }
        expect(price.fee_details.reduce((sum, d) => sum + d.amount, 0)).toBe(price.fee);
        expect(price.fee).toBeGreaterThanOrEqual(0);
        expect(price.fee + price.net).toBe(input.amount);
        expect(priceCharge(structuredClone(plan), { ...input })).toEqual(price);
        // Each percentage line is the nearest integer to amount × bps / 10000, ties going up.
        const percentage = price.fee_details.find((d) => d.type === 'processing_percentage');
        if (percentage && plan.processing) {
          const bpsUsed = BigInt(
            plan.processing.currencies?.[input.currency]?.percent_bps ?? plan.processing.percent_bps,
          );
          const error = BigInt(percentage.amount) * 10_000n - BigInt(input.amount) * bpsUsed;
          expect(error > -5000n && error <= 5000n).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('quotes through the API exactly what priceCharge gives for the same plan and inputs', async () => {
    const tenant = await createTenant(t.app, 'Pricing property');
    await fc.assert(
      fc.asyncProperty(planArb, chargeArb, async (plan, input) => {
        const set = await setPlan(tenant.id, plan);
        expect(set.statusCode, set.body).toBe(200);
        const amount = Math.min(input.amount, 99_999_999);
        const q = await quote(tenant.testKey, {
          amount,
          currency: input.currency,
          card_funding: input.cardFunding === 'unknown' ? undefined : input.cardFunding,
          ...(input.cardCountry ? { card_country: input.cardCountry } : {}),
          ...(input.presentmentCurrency ? { presentment_currency: input.presentmentCurrency } : {}),
          instant_settlement: input.instantSettlement,
        });
        const expected = priceCharge(plan, {
          ...input,
          amount,
          cardFunding: input.cardFunding === 'unknown' ? 'credit' : input.cardFunding,
        });
        expect(q).toMatchObject({
          amount,
          currency: input.currency,
          fee: expected.fee,
          net: expected.net,
          fee_details: expected.fee_details,
          pricing_version: set.json().version,
        });
      }),
      { numRuns: 25 },
    );
  });
});
