import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerService } from '../src/modules/ledger/service.js';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  withoutCardTestingRule,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
  verifiedBankAccount,
} from './helpers.js';
import { waitFor } from './process.js';

// Payment batches, settlement and payouts of one instant-settlement tenant, run at once for many
// rounds. Its tiny payments (smaller than their fixed fee) and refunds go to pending, so settlements
// have a negative net and must check available; its other payments credit available. A batch thus
// changes pending and available together, settlement and payouts spend from available: unless all
// of them take the accounts in one order, two of them end up waiting on each other (40P01).

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await bootAppOnOwnDatabase('lock_order', { BATCH_MAX_CONCURRENCY: '4' });
  tenant = await createTenant(t.app, 'Lock order');
  const schedule = { settlement_schedule: { type: 'instant', delay_days: 0 } };
  await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, schedule));
  await verifiedBankAccount(t.app, tenant.testKey);
  // One-cent payments (fees above the amount) on one card, many times an hour: card testing, by the default rule.
  await withoutCardTestingRule(t.app, tenant.testKey);
});
afterAll(() => t?.close());

const pay = (amount: number) =>
  call(t.app, tenant.testKey, 'POST', '/v1/payments', {
    amount,
    currency: 'usd',
    payment_method: card(TEST_CARDS.visa),
    confirm: true,
  });

async function deadlocks(): Promise<number> {
  const [row] = await t.admin<{ deadlocks: number }[]>`
    SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`;
  return row.deadlocks;
}

describe('one lock order for ledger accounts', () => {
  it('payment batches, settlements and payouts run concurrently for many rounds without a deadlock', async () => {
    const before = await deadlocks();
    const failures: string[] = [];
    const refundable: string[] = [];
    for (let round = 0; round < 25; round++) {
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 6; i++) {
        work.push(
          pay(i % 2 ? 1 : 5_000).then((response) => {
            if (response.statusCode !== 200) failures.push(`payment: ${response.body}`);
            else if (i === 2) refundable.push(response.json().id);
          }),
        );
      }
      const refund = refundable.shift();
      if (refund)
        work.push(
          call(t.app, tenant.testKey, 'POST', '/v1/refunds', { payment: refund, amount: 4_000 }).then((response) => {
            if (response.statusCode !== 200) failures.push(`refund: ${response.body}`);
          }),
        );
      work.push(t.platform.settlements.run().catch((error: Error) => failures.push(`settlement: ${error.message}`)));
      work.push(
        call(t.app, tenant.testKey, 'POST', '/v1/payouts', { amount: 500, currency: 'usd' }).then((response) => {
          // Too little available is a possible answer; anything else is a failure.
          if (response.statusCode !== 200 && response.json().error?.code !== 'balance_insufficient')
            failures.push(`payout: ${response.body}`);
        }),
      );
      await Promise.all(work);
    }
    expect(failures).toEqual([]);
    const { accounts, transactions } = await LedgerService.verify(t.admin);
    expect(accounts).toEqual([]);
    expect(transactions).toEqual([]);

    // A deadlock inside a payment batch is retried item by item and so invisible to the caller; the
    // server counts it. A backend reports its counts when it exits: end the app's connections first.
    await t.platform.writer.idle();
    await t.platform.sql.end({ timeout: 5 });
    await t.platform.readPool.end({ timeout: 5 });
    // The LISTEN connections (key cache, event stream, fraud configuration) are the app role's too.
    await t.platform.authenticator.stopListening();
    await t.platform.eventFeed.stop();
    await t.platform.fraud.stopListening();
    await waitFor(
      async () => {
        const open = await t.admin<{ application_name: string; state: string; query: string }[]>`
          SELECT application_name, state, query FROM pg_stat_activity
          WHERE datname = current_database() AND usename = ${t.config.appDbRole}`;
        // Thrown, not returned: the timeout then names the connections still open.
        if (open.length) throw new Error(JSON.stringify(open));
        return true;
      },
      20_000,
      'the app connections to close',
    );
    expect(await deadlocks()).toBe(before);
  });
});
