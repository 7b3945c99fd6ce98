import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerService } from '../src/modules/ledger/service.js';
import type { Plan } from '../src/modules/pricing/schemas.js';
import { priceCharge, priceFixedFee } from '../src/modules/pricing/service.js';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  verifiedBankAccount,
} from './helpers.js';

// Random sequences of payments, partial captures, refunds, disputes, settlements and payouts in
// several currencies, against the real platform. After every step no available balance is
// negative; after every sequence the ledger balances, the running balances equal the entries,
// and the fees collected are exactly what the plan says.

let t: TestApp;

// Settlement, disputes and the bank rail act on every tenant of a database.
beforeAll(async () => {
  t = await bootAppOnOwnDatabase('money_properties');
});
afterAll(() => t.close());

const CURRENCIES = ['usd', 'eur', 'jpy', 'kwd'] as const;
const CARDS = {
  visa: { number: TEST_CARDS.visa, country: 'US', funding: 'credit' },
  international: { number: TEST_CARDS.international, country: 'GB', funding: 'credit' },
  debit: { number: TEST_CARDS.debit, country: 'US', funding: 'debit' },
  disputed: { number: TEST_CARDS.disputed, country: 'US', funding: 'credit' },
} as const;

const PLANS: Array<Plan | null> = [
  null,
  {
    type: 'blended',
    processing: { percent_bps: 250, fixed: 25, currencies: { jpy: { percent_bps: 360, fixed: 40 } } },
    international_bps: 100,
    currency_conversion_bps: 0,
    instant_settlement_bps: 150,
    refund_fee: { fixed: 15 },
    dispute_fee: { fixed: 1500, currencies: { kwd: 5000 } },
  },
  {
    type: 'interchange_plus',
    interchange_plus: {
      interchange_bps: { credit: 180, debit: 55, prepaid: 120 },
      scheme_fee_bps: 13,
      markup: { percent_bps: 35, fixed: 10 },
    },
    international_bps: 120,
    currency_conversion_bps: 0,
    instant_settlement_bps: 100,
    refund_fee: { fixed: 0 },
    dispute_fee: { fixed: 1000 },
  },
];

type Step =
  | {
      kind: 'pay';
      currency: (typeof CURRENCIES)[number];
      amount: number;
      card: keyof typeof CARDS;
      manual: boolean;
      capturePercent: number;
    }
  | { kind: 'refund'; pick: number; percent: number }
  | { kind: 'settle' }
  | { kind: 'payout'; currency: (typeof CURRENCIES)[number]; percent: number; failing: boolean }
  | { kind: 'rail' }
  | { kind: 'disputes' }
  | { kind: 'answer'; pick: number; win: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('pay' as const),
      currency: fc.constantFrom(...CURRENCIES),
      amount: fc.integer({ min: 1, max: 500_000 }),
      card: fc.constantFrom(...(Object.keys(CARDS) as (keyof typeof CARDS)[])),
      manual: fc.boolean(),
      capturePercent: fc.integer({ min: 1, max: 100 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('refund' as const),
      pick: fc.nat(),
      percent: fc.integer({ min: 1, max: 100 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'settle' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('payout' as const),
      currency: fc.constantFrom(...CURRENCIES),
      percent: fc.integer({ min: 1, max: 100 }),
      failing: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'rail' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'disputes' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('answer' as const), pick: fc.nat(), win: fc.boolean() }) },
);

interface Captured {
  id: string;
  currency: string;
  received: number;
  refunded: number;
  disputable: boolean;
}

describe('money movement, property-based', () => {
  it('keeps the ledger balanced, available never negative and fees exactly as priced, for random sequences', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 3, maxLength: 14 }),
        fc.nat({ max: PLANS.length - 1 }),
        fc.boolean(),
        async (steps, planIndex, instant) => {
          const tenant = await createTenant(t.app, 'Money property');
          const key = tenant.testKey;
          await ok(
            await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, {
              settlement_schedule: { type: instant ? 'instant' : 'daily', delay_days: 0 },
            }),
          );
          const failingAccounts = new Map<string, string>();
          for (const currency of CURRENCIES) {
            await verifiedBankAccount(t.app, key, { currency });
            const failing = { currency, accountNumber: '000111111116', makeDefault: false };
            failingAccounts.set(currency, (await verifiedBankAccount(t.app, key, failing)).id);
          }
          const plan = PLANS[planIndex] ?? (await ok(await call(t.app, key, 'GET', '/v1/pricing')));
          if (PLANS[planIndex])
            await ok(await call(t.app, PLATFORM_KEY, 'PUT', `/v1/tenants/${tenant.id}/pricing`, plan));

          const expectedFees = new Map<string, number>();
          const addFee = (currency: string, fee: number) =>
            expectedFees.set(currency, (expectedFees.get(currency) ?? 0) + fee);
          const captured: Captured[] = [];

          for (const s of steps) {
            if (s.kind === 'pay') {
              const amount = s.currency === 'jpy' ? Math.max(50, Math.floor(s.amount / 100)) : s.amount;
              const chosen = CARDS[s.card];
              const payment = await ok(
                await call(t.app, key, 'POST', '/v1/payments', {
                  amount,
                  currency: s.currency,
                  payment_method: card(chosen.number),
                  confirm: true,
                  capture_method: s.manual ? 'manual' : 'automatic',
                }),
              );
              let received = payment.amount_received;
              let fee = payment.fee;
              if (s.manual) {
                const toCapture = Math.max(1, Math.floor((amount * s.capturePercent) / 100));
                const capture = await ok(
                  await call(t.app, key, 'POST', `/v1/payments/${payment.id}/capture`, {
                    amount_to_capture: toCapture,
                  }),
                );
                received = capture.amount_received;
                fee = capture.fee;
                expect(received).toBe(toCapture);
              }
              const price = priceCharge(plan, {
                amount: received,
                currency: s.currency,
                cardCountry: chosen.country,
                cardFunding: chosen.funding,
                presentmentCurrency: null,
                instantSettlement: instant,
              });
              expect(fee).toBe(price.fee);
              addFee(s.currency, price.fee);
              captured.push({
                id: payment.id,
                currency: s.currency,
                received,
                refunded: 0,
                disputable: s.card === 'disputed',
              });
            } else if (s.kind === 'refund') {
              const refundable = captured.filter((p) => !p.disputable && p.refunded < p.received);
              if (!refundable.length) continue;
              const payment = refundable[s.pick % refundable.length];
              const amount = Math.max(1, Math.floor(((payment.received - payment.refunded) * s.percent) / 100));
              const refund = await ok(await call(t.app, key, 'POST', '/v1/refunds', { payment: payment.id, amount }));
              expect(refund.status).toBe('succeeded');
              payment.refunded += amount;
              addFee(payment.currency, priceFixedFee(plan, 'refund_fee', payment.currency).fee);
            } else if (s.kind === 'settle') {
              await t.platform.settlements.run();
            } else if (s.kind === 'payout') {
              const balance = await ok(await call(t.app, key, 'GET', '/v1/balance'));
              const available =
                balance.available.find((f: { currency: string }) => f.currency === s.currency)?.amount ?? 0;
              // A share that rounds to nothing still asks for the smallest unit, which is paid out when one is there.
              const amount = Math.max(1, Math.floor((available * s.percent) / 100));
              const response = await call(t.app, key, 'POST', '/v1/payouts', {
                amount,
                currency: s.currency,
                ...(s.failing ? { destination: failingAccounts.get(s.currency) } : {}),
              });
              expect(response.statusCode, response.body).toBe(amount <= available ? 200 : 400);
            } else if (s.kind === 'rail') {
              const later = new Date(Date.now() + 7 * 86_400_000);
              await t.platform.payouts.advanceRail(later);
              await t.platform.payouts.advanceRail(later);
            } else if (s.kind === 'disputes') {
              const before = (await ok(await call(t.app, key, 'GET', '/v1/disputes?limit=100'))).data.length;
              await t.platform.disputes.intake();
              const opened = (await ok(await call(t.app, key, 'GET', '/v1/disputes?limit=100'))).data;
              for (const dispute of opened.slice(0, opened.length - before))
                addFee(dispute.currency, priceFixedFee(plan, 'dispute_fee', dispute.currency).fee);
            } else {
              const open = (await ok(await call(t.app, key, 'GET', '/v1/disputes?limit=100'))).data.filter(
                (d: { status: string }) => d.status === 'needs_response',
              );
              if (!open.length) continue;
              const dispute = open[s.pick % open.length];
              await ok(
                await call(t.app, key, 'POST', `/v1/disputes/${dispute.id}`, {
                  evidence: { uncategorized_text: s.win ? 'winning_evidence' : 'losing_evidence' },
                }),
              );
              await t.platform.disputes.review();
              expect((await ok(await call(t.app, key, 'GET', `/v1/disputes/${dispute.id}`))).status).toBe(
                s.win ? 'won' : 'lost',
              );
            }
            const negative =
              await t.admin`SELECT id FROM ledger_accounts WHERE tenant_id = ${tenant.id} AND type = 'available' AND balance < 0`;
            expect(negative).toEqual([]);
          }

          const { accounts, transactions } = await LedgerService.verify(t.admin);
          expect(accounts.filter((d) => d.tenant_id === tenant.id)).toEqual([]);
          expect(transactions.filter((d) => d.tenant_id === tenant.id)).toEqual([]);
          const fees = await t.admin<{ currency: string; balance: number }[]>`
          SELECT currency, balance FROM ledger_accounts WHERE tenant_id = ${tenant.id} AND type = 'fees' AND balance <> 0`;
          expect(Object.fromEntries(fees.map((f) => [f.currency, f.balance]))).toEqual(
            Object.fromEntries([...expectedFees].filter(([, fee]) => fee !== 0)),
          );
          // The tenant's accounts of a currency always sum to zero: money is only ever moved.
          const sums =
            await t.admin`SELECT currency FROM ledger_accounts WHERE tenant_id = ${tenant.id} GROUP BY currency HAVING sum(balance) <> 0`;
          expect(sums).toEqual([]);
        },
      ),
      {
        numRuns: 20,
        // Always also run one sequence that goes through every flow: both dispute outcomes, a
        // failing and a paid payout, refunds, partial capture, settlement before and after.
        examples: [
          [
            [
              { kind: 'pay', currency: 'usd', amount: 120_000, card: 'visa', manual: false, capturePercent: 100 },
              { kind: 'pay', currency: 'usd', amount: 30_000, card: 'disputed', manual: false, capturePercent: 100 },
              { kind: 'pay', currency: 'kwd', amount: 45_678, card: 'disputed', manual: true, capturePercent: 60 },
              {
                kind: 'pay',
                currency: 'jpy',
                amount: 1_234_500,
                card: 'international',
                manual: true,
                capturePercent: 37,
              },
              { kind: 'refund', pick: 0, percent: 25 },
              { kind: 'disputes' },
              { kind: 'answer', pick: 0, win: true },
              { kind: 'answer', pick: 0, win: false },
              { kind: 'settle' },
              { kind: 'payout', currency: 'usd', percent: 40, failing: true },
              { kind: 'payout', currency: 'usd', percent: 100, failing: false },
              { kind: 'rail' },
              { kind: 'refund', pick: 0, percent: 100 },
              { kind: 'settle' },
            ],
            1,
            false,
          ],
          // A payout whose share of a one-cent balance rounds to nothing asks for that cent.
          [
            [
              { kind: 'pay', currency: 'eur', amount: 11, card: 'visa', manual: false, capturePercent: 1 },
              { kind: 'rail' },
              { kind: 'payout', currency: 'eur', percent: 1, failing: false },
              { kind: 'refund', pick: 0, percent: 1 },
            ],
            2,
            true,
          ],
        ],
      },
    );
    // The sequences did move money through every kind of posting.
    const kinds = await t.admin<{ type: string }[]>`SELECT DISTINCT type FROM ledger_transactions ORDER BY type`;
    expect(kinds.map((k) => k.type)).toEqual([
      'charge',
      'dispute',
      'dispute_loss',
      'dispute_reversal',
      'payout',
      'payout_failure',
      'payout_paid',
      'refund',
      'settlement',
    ]);
  });
});
