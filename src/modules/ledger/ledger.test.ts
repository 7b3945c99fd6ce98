import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inScope, type Scope, type Tx } from '../../db/index.js';
import { bootWithTenants, call, createTenant, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { LedgerService, type AccountType, type LedgerTransactionInput } from './service.js';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;

beforeAll(async () => {
  [t, a, b] = await bootWithTenants('Ledger tenant A', 'Ledger tenant B');
});
afterAll(() => t.close());

const testScope = (tenant: TestTenant): Scope => ({ tenantId: tenant.id, livemode: false });
const post = (scope: Scope, transactions: LedgerTransactionInput[]) =>
  inScope(t.platform.sql, scope, (tx) => t.platform.ledger.post(tx, scope, transactions));

/** A capture as a later session will post it: gross into pending from the processor, fee to platform revenue. */
const capture = (amount: number, fee: number, currency = 'usd'): LedgerTransactionInput => ({
  type: 'capture',
  sourceId: 'pay_test',
  description: 'Capture',
  entries: [
    { accountType: 'processor_clearing', currency, amount: -amount },
    { accountType: 'pending', currency, amount: amount - fee },
    // Entries are never zero: a fee-free capture has no fee entry.
    ...(fee ? [{ accountType: 'fees' as const, currency, amount: fee }] : []),
  ],
});

async function balance(key: string) {
  const res = await call(t.app, key, 'GET', '/v1/balance');
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

/** verify() spans every tenant; other suites share the database, so look at our tenants only. */
async function differencesFor(...tenantIds: string[]) {
  const { accounts, transactions } = await LedgerService.verify(t.admin);
  return {
    accounts: accounts.filter((d) => tenantIds.includes(d.tenant_id)),
    transactions: transactions.filter((d) => tenantIds.includes(d.tenant_id)),
  };
}

/** A test-mode transaction and its entries written with plain SQL as the application role, past LedgerService. */
async function insertDirectly(
  tx: Tx,
  tenantId: string,
  transactionId: string,
  entries: Array<[id: string, accountId: string, amount: number, currency: string]>,
) {
  await tx`INSERT INTO ledger_transactions (id, tenant_id, livemode, type, description) VALUES (${transactionId}, ${tenantId}, false, 'manual', 'written directly')`;
  const rows = entries.map(([id, account_id, amount, currency]) => ({
    id,
    transaction_id: transactionId,
    tenant_id: tenantId,
    livemode: false,
    account_id,
    amount,
    currency,
  }));
  await tx`INSERT INTO ledger_entries ${tx(rows)}`;
}

async function storedAccount(tenantId: string, livemode: boolean, type: AccountType, currency: string) {
  const [row] = await t.admin<
    { id: string; balance: number }[]
  >`SELECT id, balance FROM ledger_accounts WHERE tenant_id = ${tenantId} AND livemode = ${livemode} AND type = ${type} AND currency = ${currency}`;
  return row;
}

describe('posting and balances', () => {
  it("reads concurrent requests' balances together, each its own tenant's and mode's alone", async () => {
    const [first, second, empty] = [
      await createTenant(t.app, 'Ledger batched balance 1'),
      await createTenant(t.app, 'Ledger batched balance 2'),
      await createTenant(t.app, 'Ledger batched balance 3'),
    ];
    const live = (tenant: TestTenant): Scope => ({ tenantId: tenant.id, livemode: true });
    await post(testScope(first), [capture(10_000, 300)]);
    await post(live(first), [capture(7_000, 200), capture(500, 0, 'eur')]);
    await post(testScope(second), [capture(2_000, 60)]);
    const pending = (amounts: [number, string][]) => amounts.map(([amount, currency]) => ({ amount, currency }));
    // Submitted in one turn of the event loop: one batch, one statement over four scopes.
    const [firstTest, firstLive, secondTest, emptyTest] = await Promise.all([
      t.platform.ledger.balances(testScope(first)),
      t.platform.ledger.balances(live(first)),
      t.platform.ledger.balances(testScope(second)),
      t.platform.ledger.balances(testScope(empty)),
    ]);
    expect([firstTest.pending, firstTest.livemode]).toEqual([pending([[9_700, 'usd']]), false]);
    expect([firstLive.pending, firstLive.livemode]).toEqual([
      pending([
        [500, 'eur'],
        [6_800, 'usd'],
      ]),
      true,
    ]);
    expect([secondTest.pending, secondTest.livemode]).toEqual([pending([[1_940, 'usd']]), false]);
    expect(emptyTest).toEqual({ object: 'balance', available: [], pending: [], reserved: [], livemode: false });
    // Through the API as well: each key sees its own tenant's figures, whatever else its batch read.
    const [viaFirst, viaSecond, viaFirstLive] = await Promise.all([
      balance(first.testKey),
      balance(second.testKey),
      balance(first.liveKey),
    ]);
    expect(viaFirst.pending).toEqual(firstTest.pending);
    expect(viaSecond.pending).toEqual(secondTest.pending);
    expect(viaFirstLive.pending).toEqual(firstLive.pending);
  });

  it('updates running balances and GET /v1/balance shows them, per currency', async () => {
    const tenant = await createTenant(t.app, 'Ledger balance');
    expect(await balance(tenant.testKey)).toEqual({
      object: 'balance',
      available: [],
      pending: [],
      reserved: [],
      livemode: false,
    });

    const ids = await post(testScope(tenant), [
      capture(10_000, 320),
      capture(5_000, 175),
      {
        type: 'settlement',
        sourceId: null,
        description: 'Settle',
        entries: [
          { accountType: 'pending', currency: 'usd', amount: -4_825 },
          { accountType: 'available', currency: 'usd', amount: 4_825 },
        ],
      },
      {
        type: 'reserve',
        sourceId: null,
        description: 'Withhold',
        entries: [
          { accountType: 'available', currency: 'usd', amount: -1_000 },
          { accountType: 'reserve', currency: 'usd', amount: 1_000 },
        ],
      },
      capture(1_000, 0, 'jpy'),
    ]);
    expect(ids).toHaveLength(5);
    expect(ids.every((id) => id.startsWith('txn_'))).toBe(true);

    expect(await balance(tenant.testKey)).toEqual({
      object: 'balance',
      available: [
        { amount: 0, currency: 'jpy' },
        { amount: 3_825, currency: 'usd' },
      ],
      pending: [
        { amount: 1_000, currency: 'jpy' },
        { amount: 9_680, currency: 'usd' },
      ],
      reserved: [
        { amount: 0, currency: 'jpy' },
        { amount: 1_000, currency: 'usd' },
      ],
      livemode: false,
    });
    expect((await storedAccount(tenant.id, false, 'fees', 'usd')).balance).toBe(495);
    expect((await storedAccount(tenant.id, false, 'processor_clearing', 'usd')).balance).toBe(-15_000);
    const [entries] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM ledger_entries WHERE tenant_id = ${tenant.id}`;
    expect(entries.count).toBe(12);
  });

  it('refuses unbalanced, zero, fractional or unknown-currency entries before writing anything', async () => {
    const tenant = await createTenant(t.app, 'Ledger invalid');
    const attempts: LedgerTransactionInput[] = [
      {
        ...capture(100, 0),
        entries: [
          { accountType: 'pending', currency: 'usd', amount: 100 },
          { accountType: 'fees', currency: 'usd', amount: -99 },
        ],
      },
      // Balanced in total but not per currency.
      {
        ...capture(100, 0),
        entries: [
          { accountType: 'pending', currency: 'usd', amount: 100 },
          { accountType: 'fees', currency: 'eur', amount: -100 },
        ],
      },
      { ...capture(100, 0), entries: [{ accountType: 'pending', currency: 'usd', amount: 0 }] },
      {
        ...capture(100, 0),
        entries: [
          { accountType: 'pending', currency: 'usd', amount: 0.5 },
          { accountType: 'fees', currency: 'usd', amount: -0.5 },
        ],
      },
      {
        ...capture(100, 0),
        entries: [
          { accountType: 'pending', currency: 'xxq', amount: 1 },
          { accountType: 'fees', currency: 'xxq', amount: -1 },
        ],
      },
      { ...capture(100, 0), entries: [] },
    ];
    for (const attempt of attempts) {
      // A valid transaction in the same call must not be written either.
      await expect(post(testScope(tenant), [capture(500, 10), attempt])).rejects.toMatchObject({ statusCode: 400 });
    }
    const [rows] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM ledger_transactions WHERE tenant_id = ${tenant.id}`;
    expect(rows.count).toBe(0);
  });

  it('refuses, in the database, a posting that would make available funds negative', async () => {
    const tenant = await createTenant(t.app, 'Ledger overdraw');
    const scope = testScope(tenant);
    await post(scope, [
      {
        type: 'settlement',
        sourceId: null,
        description: 'Settle',
        entries: [
          { accountType: 'pending', currency: 'usd', amount: -500 },
          { accountType: 'available', currency: 'usd', amount: 500 },
        ],
      },
    ]);
    const overdraw: LedgerTransactionInput = {
      type: 'payout',
      sourceId: null,
      description: 'Too much',
      entries: [
        { accountType: 'available', currency: 'usd', amount: -501 },
        { accountType: 'payouts_in_transit', currency: 'usd', amount: 501 },
      ],
    };
    await expect(post(scope, [overdraw])).rejects.toThrow(/ledger_available_not_negative/);
    expect((await storedAccount(tenant.id, false, 'available', 'usd')).balance).toBe(500);
  });

  it('keeps every tenant and mode to its own balances', async () => {
    await post(testScope(a), [capture(7_000, 230)]);
    await post({ tenantId: a.id, livemode: true }, [capture(2_000, 88, 'eur')]);

    expect((await balance(a.testKey)).pending).toEqual([{ amount: 6_770, currency: 'usd' }]);
    const live = await balance(a.liveKey);
    expect(live).toMatchObject({ livemode: true, pending: [{ amount: 1_912, currency: 'eur' }] });
    expect(await balance(b.testKey)).toEqual({
      object: 'balance',
      available: [],
      pending: [],
      reserved: [],
      livemode: false,
    });
    expect((await balance(b.liveKey)).pending).toEqual([]);

    // Row-level security, not only the WHERE clause: tenant B's scope sees none of A's rows.
    const seen = await inScope(t.platform.sql, testScope(b), async (tx) => [
      ...(await tx`SELECT id FROM ledger_accounts WHERE tenant_id = ${a.id}`),
      ...(await tx`SELECT id FROM ledger_transactions WHERE tenant_id = ${a.id}`),
      ...(await tx`SELECT id FROM ledger_entries WHERE tenant_id = ${a.id}`),
    ]);
    expect(seen).toEqual([]);
    // And B cannot post into A's accounts by naming A's tenant.
    await expect(
      inScope(t.platform.sql, testScope(b), (tx) => t.platform.ledger.post(tx, testScope(a), [capture(1, 0)])),
    ).rejects.toThrow(/row-level security/);
  });

  it('shows nothing to a connection with no scope set', async () => {
    const rows = await t.platform.sql.begin((tx) =>
      Promise.all([
        tx`SELECT id FROM ledger_accounts`,
        tx`SELECT id FROM ledger_transactions`,
        tx`SELECT id FROM ledger_entries`,
      ]),
    );
    expect(rows.map((r) => r.length)).toEqual([0, 0, 0]);
    // Rows exist: the superuser sees them.
    const [all] = await t.admin<{ count: number }[]>`SELECT count(*)::int AS count FROM ledger_entries`;
    expect(all.count).toBeGreaterThan(0);
  });

  it('requires the balance:read scope', async () => {
    const create = await call(t.app, a.testKey, 'POST', '/v1/api_keys', {
      name: 'payments only',
      scopes: ['payments:read'],
    });
    expect(create.statusCode, create.body).toBe(200);
    const denied = await call(t.app, create.json().secret, 'GET', '/v1/balance');
    expect(denied.statusCode).toBe(403);
    const allowed = await call(t.app, a.testKey, 'POST', '/v1/api_keys', { name: 'balance', scopes: ['balance:read'] });
    expect((await call(t.app, allowed.json().secret, 'GET', '/v1/balance')).statusCode).toBe(200);
  });
});

describe('the database guards the ledger', () => {
  it('rejects unbalanced entries written directly by the application role, at the statement', async () => {
    const tenant = await createTenant(t.app, 'Ledger direct');
    const scope = testScope(tenant);
    await post(scope, [capture(100, 1)]);
    const pending = await storedAccount(tenant.id, false, 'pending', 'usd');
    const fees = await storedAccount(tenant.id, false, 'fees', 'usd');
    let insertedUnchecked = false;
    const attempt = inScope(t.platform.sql, scope, async (tx) => {
      await insertDirectly(tx, tenant.id, 'ltx_direct', [
        ['1', pending.id, 100, 'usd'],
        ['2', fees.id, -99, 'usd'],
      ]);
      insertedUnchecked = true;
    });
    await expect(attempt).rejects.toThrow(/ltx_direct is unbalanced: 1 usd/);
    // Checked when the statement ends, over every row it inserted: the next line never ran.
    expect(insertedUnchecked).toBe(false);
    const [rows] = await t.admin<
      { count: number }[]
    >`SELECT count(*)::int AS count FROM ledger_entries WHERE transaction_id = 'ltx_direct'`;
    expect(rows.count).toBe(0);
  });

  it("rejects entries on another tenant's account or transaction", async () => {
    const tenant = await createTenant(t.app, 'Ledger foreign');
    const scope = testScope(tenant);
    await post(scope, [capture(100, 1)]);
    await post(testScope(b), [capture(100, 1)]);
    const pending = await storedAccount(tenant.id, false, 'pending', 'usd');
    const othersFees = await storedAccount(b.id, false, 'fees', 'usd');
    const [othersTransaction] = await t.admin<
      { id: string }[]
    >`SELECT id FROM ledger_transactions WHERE tenant_id = ${b.id} LIMIT 1`;
    await expect(
      inScope(t.platform.sql, scope, (tx) =>
        insertDirectly(tx, tenant.id, 'ltx_foreign', [
          ['1', pending.id, 100, 'usd'],
          ['2', othersFees.id, -100, 'usd'],
        ]),
      ),
    ).rejects.toThrow(/has no account of its tenant, mode and currency/);
    await expect(
      inScope(
        t.platform.sql,
        scope,
        (
          tx,
        ) => tx`INSERT INTO ledger_entries (id, transaction_id, tenant_id, livemode, account_id, amount, currency) VALUES
          ('le_t1', ${othersTransaction.id}, ${tenant.id}, false, ${pending.id}, 100, 'usd'), ('le_t2', ${othersTransaction.id}, ${tenant.id}, false, ${pending.id}, -100, 'usd')`,
      ),
    ).rejects.toThrow(/has no transaction of its tenant and mode/);
    await expect(t.admin`DELETE FROM ledger_accounts WHERE id = ${pending.id}`).rejects.toThrow(
      /append-only: DELETE refused/,
    );
  });

  it("rejects an entry in a currency other than its account's, and a transaction without entries", async () => {
    const tenant = await createTenant(t.app, 'Ledger currency');
    const scope = testScope(tenant);
    await post(scope, [capture(100, 1)]);
    const pending = await storedAccount(tenant.id, false, 'pending', 'usd');
    const fees = await storedAccount(tenant.id, false, 'fees', 'usd');
    await expect(
      inScope(t.platform.sql, scope, (tx) =>
        insertDirectly(tx, tenant.id, 'ltx_eur', [
          ['1', pending.id, 100, 'eur'],
          ['2', fees.id, -100, 'eur'],
        ]),
      ),
    ).rejects.toThrow(/has no account of its tenant, mode and currency/);
    await expect(
      inScope(
        t.platform.sql,
        scope,
        (tx) =>
          tx`INSERT INTO ledger_transactions (id, tenant_id, livemode, type, description) VALUES ('ltx_empty', ${tenant.id}, false, 'manual', 'nothing')`,
      ),
    ).rejects.toThrow(/ltx_empty has no entries/);
  });

  it('refuses UPDATE and DELETE of entries and transactions to the application role, and entry changes to anyone', async () => {
    const scope = testScope(a);
    await post(scope, [capture(300, 9)]);
    const attempts = [
      (tx: Tx) => tx`UPDATE ledger_entries SET amount = amount + 1`,
      (tx: Tx) => tx`DELETE FROM ledger_entries`,
      (tx: Tx) => tx`UPDATE ledger_transactions SET description = 'rewritten'`,
      (tx: Tx) => tx`DELETE FROM ledger_transactions`,
    ];
    for (const attempt of attempts)
      await expect(inScope(t.platform.sql, scope, attempt)).rejects.toThrow(/permission denied/);
    // Even the superuser, who has every privilege, is stopped by the trigger.
    await expect(t.admin`UPDATE ledger_entries SET amount = amount + 1 WHERE tenant_id = ${a.id}`).rejects.toThrow(
      /append-only: UPDATE refused/,
    );
    await expect(t.admin`DELETE FROM ledger_entries WHERE tenant_id = ${a.id}`).rejects.toThrow(
      /append-only: DELETE refused/,
    );
    expect(await differencesFor(a.id)).toEqual({ accounts: [], transactions: [] });
  });
});

describe('the hot pending account', () => {
  it('ends with the exact sum after 20 concurrent posts, without deadlocks', async () => {
    const tenant = await createTenant(t.app, 'Ledger concurrency');
    const scope = testScope(tenant);
    const amounts = Array.from({ length: 20 }, (_, i) => 1_000 + i * 37);
    // Entries listed in differing orders: the id-ordered balance updates must still never deadlock.
    await Promise.all(
      amounts.map((amount, i) => {
        const transaction = capture(amount, 30 + i);
        if (i % 2) transaction.entries.reverse();
        return post(scope, [transaction]);
      }),
    );
    const total = amounts.reduce((sum, amount) => sum + amount, 0);
    const fees = amounts.reduce((sum, _, i) => sum + 30 + i, 0);
    expect((await balance(tenant.testKey)).pending).toEqual([{ amount: total - fees, currency: 'usd' }]);
    expect((await storedAccount(tenant.id, false, 'fees', 'usd')).balance).toBe(fees);
    expect(await differencesFor(tenant.id)).toEqual({ accounts: [], transactions: [] });
  });

  it('updates each account once per batch, with the summed delta', async () => {
    const tenant = await createTenant(t.app, 'Ledger batch');
    const scope = testScope(tenant);
    const updates = await inScope(t.platform.sql, scope, async (tx) => {
      // The backend's not-yet-flushed row counts, which include this transaction's updates; they
      // may also hold earlier transactions' counts, hence the difference.
      const counted = async () =>
        (
          await tx<
            { updates: number }[]
          >`SELECT n_tup_upd::int AS updates FROM pg_stat_xact_user_tables WHERE relname = 'ledger_accounts'`
        )[0].updates;
      const before = await counted();
      await t.platform.ledger.post(
        tx,
        scope,
        Array.from({ length: 50 }, () => capture(100, 3)),
      );
      return (await counted()) - before;
    });
    expect(updates).toBe(3);
    expect((await storedAccount(tenant.id, false, 'pending', 'usd')).balance).toBe(50 * 97);
  });
});

describe('verify', () => {
  it('is clean after posting and reports a balance a superuser corrupted', async () => {
    const tenant = await createTenant(t.app, 'Ledger verify');
    await post(testScope(tenant), [capture(1_234, 56), capture(766, 44)]);
    expect(await differencesFor(tenant.id)).toEqual({ accounts: [], transactions: [] });

    const pending = await storedAccount(tenant.id, false, 'pending', 'usd');
    // The tenant is this test's own, so the corruption is left in place: no other check looks at it.
    await t.admin`UPDATE ledger_accounts SET balance = balance + 1 WHERE id = ${pending.id}`;
    expect(await differencesFor(tenant.id)).toEqual({
      accounts: [
        {
          account_id: pending.id,
          tenant_id: tenant.id,
          livemode: false,
          type: 'pending',
          currency: 'usd',
          balance: 1_901,
          computed: 1_900,
        },
      ],
      transactions: [],
    });
  });

  it('holds for random sequences of balanced multi-currency transactions', async () => {
    // Not 'available': the database refuses to let it go negative (tested below), which random moves would.
    const types: AccountType[] = ['pending', 'reserve', 'fees', 'processor_clearing', 'payouts_in_transit', 'disputes'];
    const currencies = ['usd', 'eur', 'jpy', 'kwd'];
    // A transaction: per currency, some non-zero movements, closed by one balancing entry.
    const legs = fc
      .record({
        currency: fc.constantFrom(...currencies),
        moves: fc.array(
          fc.record({
            accountType: fc.constantFrom(...types),
            amount: fc.integer({ min: -1_000_000, max: 1_000_000 }).filter((n) => n !== 0),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        closing: fc.constantFrom(...types),
      })
      .filter(({ moves }) => moves.reduce((sum, move) => sum + move.amount, 0) !== 0)
      .map(({ currency, moves, closing }) => [
        ...moves.map((move) => ({ ...move, currency })),
        { accountType: closing, currency, amount: -moves.reduce((sum, move) => sum + move.amount, 0) },
      ]);
    const transaction = fc
      .array(legs, { minLength: 1, maxLength: 3 })
      .map((groups) => ({ type: 'random', sourceId: null, description: 'property', entries: groups.flat() }));
    const batches = fc.array(fc.array(transaction, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 });

    await fc.assert(
      fc.asyncProperty(batches, fc.boolean(), async (sequence, livemode) => {
        const tenant = await createTenant(t.app, 'Ledger property');
        const scope = { tenantId: tenant.id, livemode };
        for (const batch of sequence) await post(scope, batch);

        const unbalanced = await t.admin`
          SELECT transaction_id FROM ledger_entries WHERE tenant_id = ${tenant.id} GROUP BY transaction_id, currency HAVING sum(amount) <> 0`;
        expect(unbalanced).toEqual([]);
        const [counts] = await t.admin<
          { count: number }[]
        >`SELECT count(*)::int AS count FROM ledger_transactions WHERE tenant_id = ${tenant.id}`;
        expect(counts.count).toBe(sequence.flat().length);

        // Balances equal the model's sum of the generated entries (not only the database's own sum).
        const expected = new Map<string, number>();
        for (const entry of sequence.flat().flatMap((tx) => tx.entries)) {
          const key = `${entry.accountType}:${entry.currency}`;
          expected.set(key, (expected.get(key) ?? 0) + entry.amount);
        }
        const stored = await t.admin<{ type: string; currency: string; balance: number; livemode: boolean }[]>`
          SELECT type, currency, balance, livemode FROM ledger_accounts WHERE tenant_id = ${tenant.id}`;
        expect(stored.every((row) => row.livemode === livemode)).toBe(true);
        // Every account of a currency the tenant touched exists; those the sequence never moved hold 0.
        expect(stored.length).toBeGreaterThan(0);
        for (const row of stored)
          expect(row.balance, `${row.type}:${row.currency}`).toBe(expected.get(`${row.type}:${row.currency}`) ?? 0);
        expect([...expected.keys()].every((key) => stored.some((row) => `${row.type}:${row.currency}` === key))).toBe(
          true,
        );
        expect(await differencesFor(tenant.id)).toEqual({ accounts: [], transactions: [] });
      }),
      { numRuns: 25 },
    );
  });
});
