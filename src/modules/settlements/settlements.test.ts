import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  payByCard,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
  verifiedBankAccount,
} from '../../../test/helpers.js';
import { maxAmount } from '../../lib/currencies.js';
import { LedgerService } from '../ledger/service.js';
import { availableOn } from './schedule.js';

let t: TestApp;

// The settlement job and the bank rail act on every tenant of a database: a database of its own
// keeps other test files' tenants out of these passes (and these passes out of theirs).
beforeAll(async () => {
  t = await bootAppOnOwnDatabase('settlements');
});
afterAll(() => t.close());

async function tenantWith(name: string, settlement_schedule: Record<string, unknown>): Promise<TestTenant> {
  const tenant = await createTenant(t.app, name);
  await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, { settlement_schedule }));
  return tenant;
}

const pay = (key: string, amount: number, currency = 'usd', number = TEST_CARDS.visa) =>
  payByCard(t.app, key, amount, { currency }, number);

async function balance(key: string, currency = 'usd') {
  const body = await ok(await call(t.app, key, 'GET', '/v1/balance'));
  const of = (list: { amount: number; currency: string }[]) => list.find((f) => f.currency === currency)?.amount ?? 0;
  return { available: of(body.available), pending: of(body.pending), reserved: of(body.reserved) };
}

async function ledgerClean(...tenantIds: string[]) {
  const { accounts, transactions } = await LedgerService.verify(t.admin);
  expect(accounts.filter((d) => tenantIds.includes(d.tenant_id))).toEqual([]);
  expect(transactions.filter((d) => tenantIds.includes(d.tenant_id))).toEqual([]);
}

describe('captures post to the ledger', () => {
  it('a daily-settled payment shows fee and net equal to the preview, and its gross lands in pending until the due date', async () => {
    const tenant = await tenantWith('Daily', { type: 'daily', delay_days: 2 });
    const preview = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fees/preview', {
        amount: 10_000,
        currency: 'usd',
        card_country: 'US',
      }),
    );
    const before = Date.now();
    const payment = await pay(tenant.testKey, 10_000);
    expect(payment).toMatchObject({
      status: 'succeeded',
      fee: preview.fee,
      net: 10_000 - preview.fee,
      pricing_version: 0,
    });
    expect(preview.fee).toBe(320);

    const txn = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions/${payment.balance_transaction}`),
    );
    expect(txn).toMatchObject({
      object: 'balance_transaction',
      type: 'charge',
      amount: 10_000,
      fee: 320,
      net: 9_680,
      status: 'pending',
      source: payment.id,
      settlement: null,
      payout: null,
    });
    expect(txn.fee_details).toEqual(preview.fee_details);
    const due = availableOn(new Date(before), { type: 'daily', delay_days: 2 }).getTime() / 1000;
    expect([due, availableOn(new Date(), { type: 'daily', delay_days: 2 }).getTime() / 1000]).toContain(
      txn.available_on,
    );
    expect(new Date(txn.available_on * 1000).getUTCHours()).toBe(0);
    expect(await balance(tenant.testKey)).toEqual({ available: 0, pending: 9_680, reserved: 0 });

    // Before the due date the settlement job leaves it; at the due date it settles it, once.
    expect(
      (await t.platform.settlements.run(new Date(txn.available_on * 1000 - 1000))).filter(
        (s) => s.id && s.livemode === false,
      ),
    ).not.toContainEqual(expect.objectContaining({ gross: 10_000 }));
    expect(await balance(tenant.testKey)).toEqual({ available: 0, pending: 9_680, reserved: 0 });
    await t.platform.settlements.run(new Date(txn.available_on * 1000));
    expect(await balance(tenant.testKey)).toEqual({ available: 9_680, pending: 0, reserved: 0 });
    await t.platform.settlements.run(new Date(txn.available_on * 1000 + 86_400_000));
    expect(await balance(tenant.testKey)).toEqual({ available: 9_680, pending: 0, reserved: 0 });

    const settlements = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/settlements'));
    expect(settlements.data).toHaveLength(1);
    expect(settlements.data[0]).toMatchObject({
      object: 'settlement',
      currency: 'usd',
      count: 1,
      gross: 10_000,
      fees: 320,
      refunds: 0,
      disputes: 0,
      net: 9_680,
      payout: null,
    });
    const settled = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions/${payment.balance_transaction}`),
    );
    expect(settled).toMatchObject({ status: 'available', settlement: settlements.data[0].id });
    await ledgerClean(tenant.id);
  });

  it('an instant-settled payment is available at once and pays the instant-settlement fee', async () => {
    const tenant = await tenantWith('Instant', { type: 'instant', delay_days: 0 });
    const preview = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fees/preview', {
        amount: 5_000,
        currency: 'usd',
        instant_settlement: true,
      }),
    );
    expect(preview.fee_details.map((d: { type: string }) => d.type)).toContain('instant_settlement');
    const payment = await pay(tenant.testKey, 5_000);
    expect(payment.fee).toBe(preview.fee);
    expect(await balance(tenant.testKey)).toEqual({ available: 5_000 - preview.fee, pending: 0, reserved: 0 });
    const txn = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions/${payment.balance_transaction}`),
    );
    expect(txn).toMatchObject({ status: 'available', fee_details: preview.fee_details });
    await ledgerClean(tenant.id);
  });

  it('a payment smaller than its fixed fee goes through pending even when settlement is instant', async () => {
    const tenant = await tenantWith('Tiny instant', { type: 'instant', delay_days: 0 });
    const others = await Promise.all([pay(tenant.testKey, 1), pay(tenant.testKey, 10_000)]);
    expect(others.map((p) => p.status)).toEqual(['succeeded', 'succeeded']);
    const [tiny, large] = others;
    expect(tiny.net).toBeLessThan(0);
    expect(await balance(tenant.testKey)).toEqual({ available: large.net, pending: tiny.net, reserved: 0 });
    await t.platform.settlements.run();
    expect(await balance(tenant.testKey)).toEqual({ available: large.net + tiny.net, pending: 0, reserved: 0 });
    await ledgerClean(tenant.id);
  });

  it('prices JPY and KWD exactly as previewed, international cards included, and partial captures on what was captured', async () => {
    const tenant = await tenantWith('Currencies', { type: 'daily', delay_days: 0 });
    for (const [amount, currency, number, country] of [
      [12_345, 'jpy', TEST_CARDS.visa, 'US'],
      [1_234_567, 'kwd', TEST_CARDS.visa, 'US'],
      [9_999, 'eur', TEST_CARDS.international, 'GB'],
    ] as const) {
      const preview = await ok(
        await call(t.app, tenant.testKey, 'POST', '/v1/fees/preview', { amount, currency, card_country: country }),
      );
      const payment = await pay(tenant.testKey, amount, currency, number);
      expect(payment.fee, `${amount} ${currency}`).toBe(preview.fee);
    }
    const authorized = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 8_000,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
        capture_method: 'manual',
      }),
    );
    expect(authorized.fee).toBeNull();
    const captured = await ok(
      await call(t.app, tenant.testKey, 'POST', `/v1/payments/${authorized.id}/capture`, { amount_to_capture: 5_000 }),
    );
    const preview = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/fees/preview', { amount: 5_000, currency: 'usd' }),
    );
    expect(captured).toMatchObject({ amount_received: 5_000, fee: preview.fee, net: 5_000 - preview.fee });
    await ledgerClean(tenant.id);
  });

  it('a payment keeps the plan version it was created under when the plan changes before capture', async () => {
    const tenant = await tenantWith('Versioned', { type: 'daily', delay_days: 0 });
    const authorized = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 10_000,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
        confirm: true,
        capture_method: 'manual',
      }),
    );
    const plan = {
      type: 'blended',
      processing: { percent_bps: 100, fixed: 0 },
      international_bps: 0,
      currency_conversion_bps: 0,
      instant_settlement_bps: 0,
      refund_fee: { fixed: 0 },
      dispute_fee: { fixed: 0 },
    };
    await ok(await call(t.app, PLATFORM_KEY, 'PUT', `/v1/tenants/${tenant.id}/pricing`, plan));
    const captured = await ok(await call(t.app, tenant.testKey, 'POST', `/v1/payments/${authorized.id}/capture`, {}));
    expect(captured).toMatchObject({ pricing_version: 0, fee: 320 });
    const later = await pay(tenant.testKey, 10_000);
    expect(later).toMatchObject({ pricing_version: 1, fee: 100 });
  });
});

describe('refunds and settlement', () => {
  it('a refund takes amount and refund fee from pending and settles with the day; settlement records the totals', async () => {
    const tenant = await tenantWith('Refunds', { type: 'daily', delay_days: 0 });
    const plan = {
      type: 'blended',
      processing: { percent_bps: 200, fixed: 0 },
      international_bps: 0,
      currency_conversion_bps: 0,
      instant_settlement_bps: 0,
      refund_fee: { fixed: 25 },
      dispute_fee: { fixed: 1500 },
    };
    await ok(await call(t.app, PLATFORM_KEY, 'PUT', `/v1/tenants/${tenant.id}/pricing`, plan));
    const first = await pay(tenant.testKey, 10_000);
    await pay(tenant.testKey, 5_000);
    const refund = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: first.id, amount: 4_000 }),
    );
    expect(refund.status).toBe('succeeded');
    const txn = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions/${refund.balance_transaction}`),
    );
    expect(txn).toMatchObject({
      type: 'refund',
      amount: -4_000,
      fee: 25,
      net: -4_025,
      source: refund.id,
      status: 'pending',
    });
    expect(txn.fee_details).toEqual([
      { type: 'refund_fee', amount: 25, currency: 'usd', description: 'fixed fee per refund' },
    ]);
    expect(await balance(tenant.testKey)).toEqual({ available: 0, pending: 9_800 + 4_900 - 4_025, reserved: 0 });

    const list = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/balance_transactions?type=refund'));
    expect(list.data.map((b: { id: string }) => b.id)).toEqual([refund.balance_transaction]);

    const [settlement] = (await t.platform.settlements.run()).filter((s) => s.net === 9_800 + 4_900 - 4_025);
    expect(settlement).toMatchObject({
      count: 3,
      gross: 15_000,
      fees: 200 + 100 + 25,
      refunds: -4_000,
      disputes: 0,
      net: 10_675,
    });
    expect(await balance(tenant.testKey)).toEqual({ available: 10_675, pending: 0, reserved: 0 });
    const settledList = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions?settlement=${settlement.id}`),
    );
    expect(settledList.data).toHaveLength(3);
    await ledgerClean(tenant.id);
  });

  it('a day whose refunds exceed its charges and the available balance waits instead of making available negative', async () => {
    const tenant = await tenantWith('Carry over', { type: 'instant', delay_days: 0 });
    await verifiedBankAccount(t.app, tenant.testKey);
    const payment = await pay(tenant.testKey, 10_000);
    const available = (await balance(tenant.testKey)).available;
    await ok(await call(t.app, tenant.testKey, 'POST', '/v1/payouts', { amount: available, currency: 'usd' }));
    await ok(await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payment.id, amount: 3_000 }));
    expect(await balance(tenant.testKey)).toEqual({ available: 0, pending: -3_000, reserved: 0 });

    expect((await t.platform.settlements.run()).filter((s) => s.net === -3_000)).toEqual([]);
    expect(await balance(tenant.testKey)).toEqual({ available: 0, pending: -3_000, reserved: 0 });

    // A later charge covers it: both settle together.
    await ok(
      await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, {
        settlement_schedule: { type: 'daily', delay_days: 0 },
      }),
    );
    const second = await pay(tenant.testKey, 5_000);
    await t.platform.settlements.run();
    expect(await balance(tenant.testKey)).toEqual({ available: 5_000 - second.fee - 3_000, pending: 0, reserved: 0 });
    await ledgerClean(tenant.id);
  });
});

describe('net-zero settlement', () => {
  it('settles transactions that net to zero without a posting', async () => {
    const tenant = await tenantWith('Net zero', { type: 'daily', delay_days: 0 });
    const plan = {
      type: 'blended',
      processing: { percent_bps: 0, fixed: 0 },
      international_bps: 0,
      currency_conversion_bps: 0,
      instant_settlement_bps: 0,
      refund_fee: { fixed: 0 },
      dispute_fee: { fixed: 0 },
    };
    await ok(await call(t.app, PLATFORM_KEY, 'PUT', `/v1/tenants/${tenant.id}/pricing`, plan));
    const payment = await pay(tenant.testKey, 700);
    await ok(await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payment.id }));
    const [settlement] = (await t.platform.settlements.run()).filter((s) => s.count === 2 && s.gross === 700);
    expect(settlement).toMatchObject({ net: 0, refunds: -700, fees: 0 });
    const [row] = await t.admin<
      { ledger_transaction_id: string | null }[]
    >`SELECT ledger_transaction_id FROM settlements WHERE id = ${settlement.id}`;
    expect(row.ledger_transaction_id).toBeNull();
    expect(await balance(tenant.testKey)).toEqual({ available: 0, pending: 0, reserved: 0 });
  });
});

describe('automatic payouts', () => {
  it('pay out the settled balance and link settlements and balance transactions to the payout', async () => {
    const tenant = await tenantWith('Auto payout', { type: 'daily', delay_days: 0, automatic_payouts: true });
    await verifiedBankAccount(t.app, tenant.testKey);
    const a = await pay(tenant.testKey, 2_000);
    const b = await pay(tenant.testKey, 3_000);
    await t.platform.settlements.run();
    expect(await balance(tenant.testKey)).toEqual({ available: 0, pending: 0, reserved: 0 });

    const payouts = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/payouts'));
    expect(payouts.data).toHaveLength(1);
    const payout = payouts.data[0];
    expect(payout).toMatchObject({
      automatic: true,
      amount: 5_000 - a.fee - b.fee,
      status: 'pending',
      method: 'standard',
    });
    const settlements = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/settlements?payout=${payout.id}`));
    expect(settlements.data).toHaveLength(1);
    const carried = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions?payout=${payout.id}`));
    expect(carried.data.map((x: { source: string }) => x.source).sort()).toEqual([a.id, b.id].sort());
    const charge = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions/${a.balance_transaction}`),
    );
    expect(charge.payout).toBe(payout.id);
    await ledgerClean(tenant.id);
  });
});

describe('large sums', () => {
  it('maximum-size JPY payments, one refunded and one disputed, settle and are paid out within the day', async () => {
    const tenant = await tenantWith('Large JPY', { type: 'daily', delay_days: 0, automatic_payouts: true });
    await verifiedBankAccount(t.app, tenant.testKey, { currency: 'jpy' });
    const max = maxAmount('jpy');
    const payments = [];
    for (const number of [TEST_CARDS.visa, TEST_CARDS.visa, TEST_CARDS.visa, TEST_CARDS.disputed])
      payments.push(await pay(tenant.testKey, max, 'jpy', number));
    await ok(await call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payments[2].id }));
    await t.platform.disputes.intake();
    const disputes = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/disputes?payment=${payments[3].id}`));
    expect(disputes.data).toHaveLength(1);

    await t.platform.settlements.run();
    const [settlement] = (await ok(await call(t.app, tenant.testKey, 'GET', '/v1/settlements'))).data;
    expect(settlement).toMatchObject({ currency: 'jpy', count: 6, gross: 4 * max, refunds: -max, disputes: -max });
    expect(settlement.net).toBeGreaterThan(max);
    expect(await balance(tenant.testKey, 'jpy')).toEqual({ available: 0, pending: 0, reserved: max });
    const [payout] = (await ok(await call(t.app, tenant.testKey, 'GET', '/v1/payouts'))).data;
    expect(payout).toMatchObject({ automatic: true, amount: settlement.net, currency: 'jpy', status: 'pending' });

    await t.platform.payouts.advanceRail();
    await t.platform.payouts.advanceRail(new Date(payout.arrival_date * 1000));
    expect(await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payouts/${payout.id}`))).toMatchObject({
      status: 'paid',
    });
    await ledgerClean(tenant.id);
  });
});

describe('the API around it', () => {
  it("another tenant's key gets 404 for settlements and balance transactions; filters and ids are validated", async () => {
    const owner = await tenantWith('Owner', { type: 'daily', delay_days: 0 });
    const other = await createTenant(t.app, 'Other');
    const payment = await pay(owner.testKey, 1_000);
    const [settlement] = (await t.platform.settlements.run()).filter((s) => s.gross === 1_000 && s.count === 1);
    expect(settlement).toBeDefined();
    for (const url of [`/v1/settlements/${settlement.id}`, `/v1/balance_transactions/${payment.balance_transaction}`]) {
      expect((await call(t.app, owner.testKey, 'GET', url)).statusCode).toBe(200);
      const denied = await call(t.app, other.testKey, 'GET', url);
      expect(denied.statusCode, url).toBe(404);
      expect(denied.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
      expect((await call(t.app, owner.liveKey, 'GET', url)).statusCode, `${url} in live mode`).toBe(404);
    }
    expect((await ok(await call(t.app, other.testKey, 'GET', '/v1/balance_transactions'))).data).toEqual([]);
    expect((await ok(await call(t.app, other.testKey, 'GET', '/v1/settlements'))).data).toEqual([]);
    for (const url of [
      '/v1/balance_transactions?type=bogus',
      '/v1/balance_transactions?limit=0',
      '/v1/settlements?currency=US',
      '/v1/settlements?foo=1',
    ]) {
      const response = await call(t.app, owner.testKey, 'GET', url);
      expect(response.statusCode, url).toBe(400);
      expect(response.json().error).toHaveProperty('param');
    }
    expect((await call(t.app, owner.testKey, 'GET', `/v1/balance_transactions/${'x'.repeat(65)}`)).statusCode).toBe(
      404,
    );
  });

  it('the operator can set a settlement schedule; a bad one is refused', async () => {
    const tenant = await createTenant(t.app, 'Schedule');
    const tenantNow = await ok(await call(t.app, PLATFORM_KEY, 'GET', `/v1/tenants/${tenant.id}`));
    expect(tenantNow.settlement_schedule).toEqual({ type: 'daily', delay_days: 2 });
    for (const settlement_schedule of [
      { type: 'weekly', delay_days: 1 },
      { type: 'daily', delay_days: -1 },
      { type: 'daily', delay_days: 31 },
      { type: 'daily' },
      { type: 'daily', delay_days: 1, extra: true },
    ]) {
      const response = await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, { settlement_schedule });
      expect(response.statusCode, JSON.stringify(settlement_schedule)).toBe(400);
    }
    const updated = await ok(
      await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, {
        settlement_schedule: { type: 'daily', delay_days: 5 },
      }),
    );
    expect(updated.settlement_schedule).toEqual({ type: 'daily', delay_days: 5 });
  });

  it('counts business days: Friday + 1 is Monday, Saturday + 2 is Tuesday', () => {
    const friday = new Date('2026-11-27T15:00:00Z');
    expect(availableOn(friday, { type: 'daily', delay_days: 1 }).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(availableOn(new Date('2026-11-28T10:00:00Z'), { type: 'daily', delay_days: 2 }).toISOString()).toBe(
      '2026-12-01T00:00:00.000Z',
    );
    expect(availableOn(friday, { type: 'instant', delay_days: 3 })).toEqual(friday);
  });
});
