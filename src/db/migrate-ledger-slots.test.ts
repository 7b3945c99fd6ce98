import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseAt } from '../../test/migrations.js';
import { loadConfig } from '../config.js';
import { LedgerService } from '../modules/ledger/service.js';
import type { Sql } from './index.js';
import { migrate } from './migrate.js';

// Migration 042 moved each ledger account's running balance into 16 slot rows. This builds a database as it stood at
// migration 041, with balances on the accounts and the entries behind them, and runs the rest on it.

let scratch: Awaited<ReturnType<typeof databaseAt>>;
let db: Sql;

beforeAll(async () => {
  scratch = await databaseAt('slots042', '041_webhook_amqp_confirmed_leases.sql');
  db = scratch.db;
  await db`INSERT INTO tenants (id, name) VALUES ('ten_a', 'Shop A')`;
  await db`INSERT INTO ledger_accounts (id, tenant_id, livemode, type, currency, balance) VALUES
    ('la_clearing', 'ten_a', false, 'processor_clearing', 'usd', -10000),
    ('la_pending', 'ten_a', false, 'pending', 'usd', 6670),
    ('la_available', 'ten_a', false, 'available', 'usd', 3000),
    ('la_fees', 'ten_a', false, 'fees', 'usd', 330)`;
  // One transaction: a ledger transaction must have its entries by commit.
  await db.begin(async (tx) => {
    await tx`INSERT INTO ledger_transactions (id, tenant_id, livemode, type, description) VALUES
      ('txn_1', 'ten_a', false, 'charge', 'Capture'), ('txn_2', 'ten_a', false, 'settlement', 'Settle')`;
    await tx`INSERT INTO ledger_entries (id, transaction_id, tenant_id, livemode, account_id, amount, currency) VALUES
      ('1', 'txn_1', 'ten_a', false, 'la_clearing', -10000, 'usd'), ('2', 'txn_1', 'ten_a', false, 'la_pending', 9670, 'usd'),
      ('3', 'txn_1', 'ten_a', false, 'la_fees', 330, 'usd'),
      ('1', 'txn_2', 'ten_a', false, 'la_pending', -3000, 'usd'), ('2', 'txn_2', 'ten_a', false, 'la_available', 3000, 'usd')`;
  });
  await migrate(db, loadConfig({}));
});

afterAll(async () => {
  await scratch?.drop();
});

describe('migration 042: running balances move to ledger_balance_slots', () => {
  it('keeps every balance, as 16 slots per account summing to it', async () => {
    const slots = await db<{ account_id: string; slots: number; balance: number }[]>`
      SELECT account_id, count(*)::int AS slots, sum(balance)::bigint AS balance FROM ledger_balance_slots
      GROUP BY account_id ORDER BY account_id`;
    expect(slots).toEqual([
      { account_id: 'la_available', slots: 16, balance: 3000 },
      { account_id: 'la_clearing', slots: 16, balance: -10000 },
      { account_id: 'la_fees', slots: 16, balance: 330 },
      { account_id: 'la_pending', slots: 16, balance: 6670 },
    ]);
    expect(await LedgerService.verify(db)).toEqual({ accounts: [], transactions: [] });
  });

  it('drops the balance column, and gives an account created afterwards its slots', async () => {
    const columns =
      await db`SELECT 1 FROM information_schema.columns WHERE table_name = 'ledger_accounts' AND column_name = 'balance'`;
    expect(columns).toHaveLength(0);
    await db`INSERT INTO ledger_accounts (id, tenant_id, livemode, type, currency) VALUES ('la_reserve', 'ten_a', false, 'reserve', 'usd')`;
    const [created] = await db<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM ledger_balance_slots WHERE account_id = 'la_reserve'`;
    expect(created.n).toBe(16);
  });
});
