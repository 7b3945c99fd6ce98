import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
  verifiedBankAccount,
} from '../../../test/helpers.js';
import { LedgerService } from '../ledger/service.js';

let t: TestApp;

// The bank rail acts on every tenant of a database: a database of its own keeps other test
// files' tenants out of its passes.
beforeAll(async () => {
  t = await bootAppOnOwnDatabase('payouts');
});
afterAll(() => t.close());

/** A tenant with `amount` of available funds (instant settlement makes captures available at once). */
async function fundedTenant(
  name: string,
  gross: number,
): Promise<TestTenant & { available: number; bankAccount: string }> {
  const tenant = await createTenant(t.app, name);
  const { id: bankAccount } = await verifiedBankAccount(t.app, tenant.testKey);
  await ok(
    await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, {
      settlement_schedule: { type: 'instant', delay_days: 0 },
    }),
  );
  const payment = await ok(
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: gross,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    }),
  );
  return { ...tenant, available: gross - payment.fee, bankAccount };
}

async function available(key: string) {
  const body = await ok(await call(t.app, key, 'GET', '/v1/balance'));
  return { available: body.available.find((f: { currency: string }) => f.currency === 'usd')?.amount ?? 0 };
}

async function eventTypes(key: string, objectId: string) {
  const events = await ok(await call(t.app, key, 'GET', '/v1/events?limit=100'));
  return events.data
    .filter((e: { data: { object: { id: string } } }) => e.data.object.id === objectId)
    .map((e: { type: string }) => e.type)
    .reverse();
}

async function ledgerClean(tenantId: string) {
  const { accounts, transactions } = await LedgerService.verify(t.admin);
  expect(accounts.filter((d) => d.tenant_id === tenantId)).toEqual([]);
  expect(transactions.filter((d) => d.tenant_id === tenantId)).toEqual([]);
}

describe('payouts', () => {
  it('concurrent payouts never take more than the available balance', async () => {
    const tenant = await fundedTenant('Concurrent payouts', 10_000);
    const each = Math.floor(tenant.available / 7);
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        call(t.app, tenant.testKey, 'POST', '/v1/payouts', { amount: each, currency: 'usd' }),
      ),
    );
    const paid = responses.filter((r) => r.statusCode === 200);
    const refused = responses.filter((r) => r.statusCode !== 200);
    expect(paid).toHaveLength(7);
    for (const response of refused) {
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toMatchObject({
        type: 'invalid_request_error',
        code: 'balance_insufficient',
        param: 'amount',
      });
    }
    expect(await available(tenant.testKey)).toEqual({ available: tenant.available - 7 * each });
    await ledgerClean(tenant.id);
  });

  it('moves pending → in_transit → paid along the bank rail, with events and balance transactions', async () => {
    const tenant = await fundedTenant('Rail', 20_000);
    const payout = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payouts', {
        amount: 5_000,
        currency: 'USD',
        method: 'standard',
        description: 'Weekly',
      }),
    );
    expect(payout).toMatchObject({
      object: 'payout',
      amount: 5_000,
      currency: 'usd',
      status: 'pending',
      method: 'standard',
      destination: tenant.bankAccount,
      automatic: false,
      failure_code: null,
    });
    expect(payout.arrival_date).toBeGreaterThan(payout.created);
    expect(await available(tenant.testKey)).toEqual({ available: tenant.available - 5_000 });
    const txn = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions/${payout.balance_transaction}`),
    );
    expect(txn).toMatchObject({
      type: 'payout',
      amount: -5_000,
      fee: 0,
      net: -5_000,
      status: 'available',
      source: payout.id,
      payout: payout.id,
    });

    await t.platform.payouts.advanceRail();
    expect((await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payouts/${payout.id}`))).status).toBe('in_transit');
    // Not yet due: it stays in transit.
    await t.platform.payouts.advanceRail();
    expect((await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payouts/${payout.id}`))).status).toBe('in_transit');
    await t.platform.payouts.advanceRail(new Date(payout.arrival_date * 1000));
    expect((await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payouts/${payout.id}`))).status).toBe('paid');
    await t.platform.payouts.advanceRail(new Date(payout.arrival_date * 1000 + 86_400_000));
    expect(await eventTypes(tenant.testKey, payout.id)).toEqual(['payout.created', 'payout.updated', 'payout.paid']);

    const [paid] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM ledger_transactions WHERE source_id = ${payout.id} AND type = 'payout_paid'`;
    expect(paid.count).toBe(1);
    const [inTransit] = await t.admin<
      { balance: number }[]
    >`SELECT balance FROM ledger_accounts WHERE tenant_id = ${tenant.id} AND livemode = false AND type = 'payouts_in_transit' AND currency = 'usd'`;
    expect(inTransit.balance).toBe(0);
    await ledgerClean(tenant.id);
  });

  it('a payout to a failing account fails and its funds return to available', async () => {
    const tenant = await fundedTenant('Failing payout', 20_000);
    const failing = { accountNumber: '000111111116', makeDefault: false };
    const { id: destination } = await verifiedBankAccount(t.app, tenant.testKey, failing);
    const payout = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/payouts', {
        amount: 4_000,
        currency: 'usd',
        method: 'instant',
        destination,
      }),
    );
    expect(payout.destination).toBe(destination);
    expect(await available(tenant.testKey)).toEqual({ available: tenant.available - 4_000 });
    await t.platform.payouts.advanceRail();
    await t.platform.payouts.advanceRail();
    const failed = await ok(await call(t.app, tenant.testKey, 'GET', `/v1/payouts/${payout.id}`));
    expect(failed).toMatchObject({ status: 'failed', failure_code: 'no_account' });
    expect(await available(tenant.testKey)).toEqual({ available: tenant.available });
    const back = await ok(
      await call(t.app, tenant.testKey, 'GET', `/v1/balance_transactions/${failed.failure_balance_transaction}`),
    );
    expect(back).toMatchObject({ type: 'payout_failure', amount: 4_000, net: 4_000, source: payout.id });
    expect(await eventTypes(tenant.testKey, payout.id)).toEqual(['payout.created', 'payout.updated', 'payout.failed']);
    await ledgerClean(tenant.id);
  });

  it('refuses bad input with our error object, and hides payouts from other tenants and modes', async () => {
    const tenant = await fundedTenant('Payout input', 5_000);
    const other = await createTenant(t.app, 'Payout other');
    for (const body of [
      {},
      { amount: 0, currency: 'usd' },
      { amount: -5, currency: 'usd' },
      { amount: 1.5, currency: 'usd' },
      { amount: '100', currency: 'usd' },
      { amount: 100, currency: 'us' },
      { amount: 100, currency: 'usd', method: 'express' },
      { amount: 100, currency: 'usd', destination: 'DE89370400440532013000' },
      { amount: 100, currency: 'usd', surprise: true },
      { amount: 100, currency: 'xyz' },
      { amount: 100, currency: 'eur' },
    ]) {
      const response = await call(t.app, tenant.testKey, 'POST', '/v1/payouts', body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(Object.keys(response.json().error)).toEqual(expect.arrayContaining(['type', 'code', 'message', 'param']));
    }
    const payout = await ok(await call(t.app, tenant.testKey, 'POST', '/v1/payouts', { amount: 100, currency: 'usd' }));
    expect((await call(t.app, other.testKey, 'GET', `/v1/payouts/${payout.id}`)).statusCode).toBe(404);
    expect((await call(t.app, tenant.liveKey, 'GET', `/v1/payouts/${payout.id}`)).statusCode).toBe(404);
    expect((await ok(await call(t.app, other.testKey, 'GET', '/v1/payouts'))).data).toEqual([]);
    const listed = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/payouts?status=pending'));
    expect(listed.data.map((p: { id: string }) => p.id)).toEqual([payout.id]);
    const restricted = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['payouts:read'] }),
    );
    expect(
      (await call(t.app, restricted.secret, 'POST', '/v1/payouts', { amount: 100, currency: 'usd' })).statusCode,
    ).toBe(403);
    expect((await call(t.app, restricted.secret, 'GET', `/v1/payouts/${payout.id}`)).statusCode).toBe(200);
  });
  it('goes only to a verified bank account of the tenant in its mode and currency', async () => {
    const tenant = await fundedTenant('Payout destinations', 20_000);
    const other = await createTenant(t.app, 'Payout destinations other');
    const { id: othersAccount } = await verifiedBankAccount(t.app, other.testKey);
    // Live mode's micro-deposits are not the test ones: the live account stays unverified, and is refused as unknown.
    const { id: liveAccount } = await ok(
      await call(t.app, tenant.liveKey, 'POST', '/v1/bank_accounts', {
        account_number: '000123456789',
        routing_number: '110000000',
        country: 'US',
        currency: 'usd',
      }),
    );
    const { id: euroAccount } = await verifiedBankAccount(t.app, tenant.testKey, { currency: 'eur' });
    const unverified = await ok(
      await call(t.app, tenant.testKey, 'POST', '/v1/bank_accounts', {
        account_number: '000222222227',
        routing_number: '110000000',
        country: 'US',
        currency: 'usd',
      }),
    );
    const refusals: Array<[string, string]> = [
      [unverified.id, 'bank_account_unverified'],
      ['ba_unknown0000000000000000', 'resource_missing'],
      [othersAccount, 'resource_missing'],
      [liveAccount, 'resource_missing'],
      [euroAccount, 'bank_account_currency_mismatch'],
    ];
    for (const [destination, code] of refusals) {
      const response = await call(t.app, tenant.testKey, 'POST', '/v1/payouts', {
        amount: 100,
        currency: 'usd',
        destination,
      });
      expect(response.statusCode, destination).toBe(400);
      expect(response.json().error).toMatchObject({ type: 'invalid_request_error', code, param: 'destination' });
    }
    // A raw account number is no destination at all any more.
    const raw = await call(t.app, tenant.testKey, 'POST', '/v1/payouts', {
      amount: 100,
      currency: 'usd',
      destination: '000123456789',
    });
    expect(raw.statusCode).toBe(400);
    expect(raw.json().error.param).toBe('destination');
    expect(await available(tenant.testKey)).toEqual({ available: tenant.available });
    const { data } = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/payouts'));
    expect(data).toEqual([]);

    const deleted = await verifiedBankAccount(t.app, tenant.testKey, { makeDefault: false });
    await ok(await call(t.app, tenant.testKey, 'DELETE', `/v1/bank_accounts/${deleted.id}`));
    const toDeleted = await call(t.app, tenant.testKey, 'POST', '/v1/payouts', {
      amount: 100,
      currency: 'usd',
      destination: deleted.id,
    });
    expect(toDeleted.json().error).toMatchObject({ code: 'resource_missing', param: 'destination' });
  });

  it('without a verified default account for the currency, a payout names none and is refused', async () => {
    const tenant = await createTenant(t.app, 'No bank account');
    const response = await call(t.app, tenant.testKey, 'POST', '/v1/payouts', { amount: 100, currency: 'usd' });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({ code: 'no_external_account', param: 'destination' });
  });
});
