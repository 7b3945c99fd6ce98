import { listRead, primaryReads, type Reads } from '../../db/replica.js';
import { inScope, scopedRead, type Scope, type Sql, type Tx } from '../../db/index.js';
import { ReadBatcher, type ReadCombiner } from '../../db/read-batch.js';
import { findManyOwned, findOwned, listPage } from '../../db/list.js';
import { columnNames, insertRows, UnnestStatement, type Columns } from '../../db/unnest.js';
import type { FeeDetail } from '../pricing/schemas.js';
import { ApiError } from '../../http/errors.js';
import { currencyExponent } from '../../lib/currencies.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds, systemClock, type Clock } from '../../lib/time.js';
import { LoadingCache } from '../../lib/loading-cache.js';
import type { Balance, BalanceTransaction, BalanceTransactionListQuery } from './schemas.js';

export const ACCOUNT_TYPES = [
  'pending',
  'available',
  'reserve',
  'fees',
  'processor_clearing',
  'payouts_in_transit',
  'disputes',
] as const;
export type AccountType = (typeof ACCOUNT_TYPES)[number];

/**
 * The largest amount one ledger entry may carry, in minor units of any currency (10^15). Entries
 * aggregate many payments (a settlement, an automatic payout), so the per-payment maximum
 * (10^12 at most) would refuse ordinary days of a large tenant; this leaves a thousand maximum-size
 * payments per entry and stays nine times below 2^53, so sums of a few limits are still exact as JS
 * numbers and far inside bigint. Whoever aggregates (settlement, payouts) splits at this limit.
 */
export const LEDGER_AMOUNT_LIMIT = 1_000_000_000_000_000;

export interface LedgerEntryInput {
  accountType: AccountType;
  currency: string;
  /** Signed, in minor units, never zero: what the account gains (positive) or loses (negative). */
  amount: number;
}

/** Set on a balance transaction: one that changes the tenant's pending or available funds. */
export interface BalanceEffect {
  balanceType: 'pending' | 'available';
  currency: string;
  /** Gross, signed: what the source added to (or took from) the tenant before fees. */
  amount: number;
  fee: number;
  feeDetails: FeeDetail[];
  availableOn: Date;
}

export interface LedgerTransactionInput {
  type: string;
  /** The object that caused it (a payment, refund, payout…), or null. */
  sourceId: string | null;
  description: string;
  entries: LedgerEntryInput[];
  balance?: BalanceEffect;
  /** Given when the caller must know the id before posting (to store it on the source). */
  id?: string;
}

export interface LedgerTransactionRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  type: string;
  source_id: string | null;
  description: string;
  currency: string | null;
  amount: number | null;
  fee: number;
  fee_details: FeeDetail[];
  balance_type: 'pending' | 'available' | null;
  available_on: Date | null;
  created_at: Date;
}

interface LedgerEntryRow {
  id: string;
  transaction_id: string;
  tenant_id: string;
  livemode: boolean;
  account_id: string;
  amount: number;
  currency: string;
}

const TRANSACTION_COLUMNS: Columns<LedgerTransactionRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['type', 'text'],
  ['source_id', 'text'],
  ['description', 'text'],
  ['currency', 'text'],
  ['amount', 'bigint'],
  ['fee', 'bigint'],
  ['fee_details', 'jsonb'],
  ['balance_type', 'text'],
  ['available_on', 'timestamptz'],
  ['created_at', 'timestamptz'],
];

const ENTRY_COLUMNS: Columns<LedgerEntryRow> = [
  ['id', 'text'],
  ['transaction_id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['account_id', 'text'],
  ['amount', 'bigint'],
  ['currency', 'text'],
];

const SCOPE_COLUMNS: Columns<{ tenant_id: string; livemode: boolean }> = [
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
];

/** Ledger rows ready to be written, with their accounts resolved. */
export interface PreparedPosting {
  transactions: LedgerTransactionRow[];
  entries: LedgerEntryRow[];
}

/**
 * Data-modifying CTEs (to follow `WITH` or a comma) that write prepared postings. With
 * `onlySourcesIn`, a transaction is written only if its source id is in that CTE (the payment
 * batch passes the payments whose compare-and-set succeeded). The running balances get one UPDATE
 * per account with the summed delta of the entries actually written, after locking those
 * accounts in id order: a hot account (every payment lands in a tenant's pending account) is
 * locked once per batch rather than once per entry, and concurrent batches always lock accounts
 * in the same order, so they queue instead of deadlocking. Exposes `ltx(id)`.
 */
export function postingCtes(statement: UnnestStatement, posting: PreparedPosting, onlySourcesIn?: string): string {
  const filter = onlySourcesIn ? `WHERE t.source_id IN (SELECT id FROM ${onlySourcesIn})` : '';
  return `
    ltx AS (
      INSERT INTO ledger_transactions (${columnNames(TRANSACTION_COLUMNS)})
      SELECT * FROM (${statement.rows(TRANSACTION_COLUMNS, posting.transactions)}) t ${filter}
      RETURNING id
    ), lentry AS (
      INSERT INTO ledger_entries (${columnNames(ENTRY_COLUMNS)})
      SELECT * FROM (${statement.rows(ENTRY_COLUMNS, posting.entries)}) e WHERE e.transaction_id IN (SELECT id FROM ltx)
      RETURNING account_id, amount
    ), ldelta AS (
      SELECT account_id, sum(amount) AS delta FROM lentry GROUP BY account_id HAVING sum(amount) <> 0
    ), llock AS (
      SELECT a.id FROM ledger_accounts a WHERE a.id IN (SELECT account_id FROM ldelta) ORDER BY a.id FOR NO KEY UPDATE
    ), lbalance AS (
      UPDATE ledger_accounts a SET balance = a.balance + d.delta FROM ldelta d JOIN llock l ON l.id = d.account_id WHERE a.id = d.account_id
    )`;
}

export interface AccountDifference {
  account_id: string;
  tenant_id: string;
  livemode: boolean;
  type: AccountType;
  currency: string;
  /** The running balance stored on the account. */
  balance: number;
  /** The balance recomputed from the account's entries. */
  computed: number;
}

export interface UnbalancedTransaction {
  transaction_id: string;
  tenant_id: string;
  currency: string;
  total: number;
}

export interface LedgerDifferences {
  accounts: AccountDifference[];
  transactions: UnbalancedTransaction[];
}

const invalid = (message: string) => ApiError.invalid('ledger_unbalanced', message);

// The database refuses the same things at commit (003_ledger.sql); checking first turns a
// programming error into a clear message before anything is written.
function validate(transactions: LedgerTransactionInput[]) {
  for (const transaction of transactions) {
    if (!transaction.entries.length) throw invalid(`Ledger transaction '${transaction.type}' has no entries.`);
    const totals = new Map<string, number>();
    for (const { accountType, currency, amount } of transaction.entries) {
      if (!ACCOUNT_TYPES.includes(accountType)) throw invalid(`Unknown ledger account type '${accountType}'.`);
      if (currencyExponent(currency) === undefined || currency !== currency.toLowerCase())
        throw invalid(`'${currency}' is not a supported lower-case currency.`);
      if (!Number.isSafeInteger(amount) || amount === 0 || Math.abs(amount) > LEDGER_AMOUNT_LIMIT)
        throw invalid(`Ledger entry amount ${amount} must be a non-zero integer within ±${LEDGER_AMOUNT_LIMIT}.`);
      totals.set(currency, (totals.get(currency) ?? 0) + amount);
    }
    for (const [currency, total] of totals) {
      if (total !== 0)
        throw invalid(`Ledger transaction '${transaction.type}' is unbalanced: ${total} ${currency} left over.`);
    }
  }
}

const accountKey = (type: string, currency: string) => `${type}:${currency}`;
const scopeKey = (scope: Scope, currency: string) => `${scope.tenantId}:${scope.livemode}:${currency}`;

type AccountIds = Map<string, string>;

/** Creates (if new) every account of a tenant, mode and currency, and returns their ids by type. */
async function ensureAccounts(tx: Tx, scope: Scope, currency: string): Promise<AccountIds> {
  const accounts = ACCOUNT_TYPES.map((type) => ({
    id: newId('la'),
    tenant_id: scope.tenantId,
    livemode: scope.livemode,
    type,
    currency,
  }));
  const columns = [
    ['id', 'text'],
    ['tenant_id', 'text'],
    ['livemode', 'boolean'],
    ['type', 'text'],
    ['currency', 'text'],
  ] as const;
  await insertRows(
    tx,
    'ledger_accounts',
    columns,
    accounts,
    'ON CONFLICT (tenant_id, livemode, type, currency) DO NOTHING',
  );
  // A separate statement: under READ COMMITTED it sees accounts a concurrent transaction created
  // (the conflict above waited for it), which the INSERT's own snapshot would not.
  const found = await tx<{ id: string; type: string }[]>`
    SELECT id, type FROM ledger_accounts WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND currency = ${currency}`;
  return new Map(found.map((row) => [accountKey(row.type, currency), row.id]));
}

/** The accounts GET /v1/balance shows: disputed amounts are withheld as much as an operator's reserve is. */
export const BALANCE_ACCOUNT_TYPES = ['available', 'pending', 'reserve', 'disputes'] as const;

export interface BalanceRow {
  type: (typeof BALANCE_ACCOUNT_TYPES)[number];
  currency: string;
  balance: number;
}

/** Balance-bearing accounts (every currency's, sorted by currency) as the API shows them. */
export function toBalance(rows: BalanceRow[], livemode: boolean): Balance {
  const currencies = [...new Set(rows.map((row) => row.currency))];
  const sum = (types: BalanceRow['type'][]) =>
    currencies.map((currency) => ({
      amount: rows
        .filter((row) => types.includes(row.type) && row.currency === currency)
        .reduce((total, row) => total + row.balance, 0),
      currency,
    }));
  return {
    object: 'balance',
    available: sum(['available']),
    pending: sum(['pending']),
    reserved: sum(['reserve', 'disputes']),
    livemode,
  };
}

type BalanceTransactionRow = LedgerTransactionRow & { settlement_id: string | null; payout_id: string | null };

function toBalanceTransaction(row: BalanceTransactionRow): BalanceTransaction {
  return {
    id: row.id,
    object: 'balance_transaction',
    type: row.type,
    amount: row.amount!,
    currency: row.currency!,
    fee: row.fee,
    net: row.amount! - row.fee,
    fee_details: row.fee_details,
    status: row.balance_type === 'pending' && !row.settlement_id ? 'pending' : 'available',
    available_on: unixSeconds(row.available_on!),
    source: row.source_id,
    settlement: row.settlement_id,
    payout: row.type === 'payout' || row.type === 'payout_failure' ? row.source_id : row.payout_id,
    description: row.description,
    created: unixSeconds(row.created_at),
    livemode: row.livemode,
  };
}

export class LedgerService {
  /** Accounts are never removed, so a committed id stays right forever. */
  private readonly committedAccounts = new LoadingCache<AccountIds>();

  constructor(
    private readonly sql: Sql,
    private readonly now: Clock = systemClock,
    /** Stale-tolerant reads (lists): the replica when DATABASE_REPLICA_URL is set. */
    private readonly reads: Reads = primaryReads(sql),
    /** The primary's batched reads (the balance joins them): not on the pool the write batches queue on. */
    private readonly batchedReads = new ReadBatcher(sql, { maxSize: 64, maxConcurrency: 2 }),
  ) {}

  /**
   * The accounts of a tenant, mode and currency, created in their own transaction when new, so
   * the payment path can prepare its postings before its batch runs.
   */
  accountsFor(scope: Scope, currency: string): Promise<AccountIds> {
    return this.committedAccounts.get(scopeKey(scope, currency), () =>
      inScope(this.sql, scope, (tx) => ensureAccounts(tx, scope, currency)),
    );
  }

  /** Checks transactions and turns them into rows for postingCtes. */
  prepare(
    scope: Scope,
    transactions: LedgerTransactionInput[],
    accounts: (currency: string) => AccountIds,
  ): PreparedPosting {
    validate(transactions);
    return this.rows(scope, transactions, accounts);
  }

  private rows(
    scope: Scope,
    transactions: LedgerTransactionInput[],
    accounts: (currency: string) => AccountIds,
  ): PreparedPosting {
    const now = this.now();
    const rows = transactions.map((transaction): LedgerTransactionRow => ({
      id: transaction.id ?? newId('txn', this.now()),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      type: transaction.type,
      source_id: transaction.sourceId,
      description: transaction.description,
      currency: transaction.balance?.currency ?? null,
      amount: transaction.balance?.amount ?? null,
      fee: transaction.balance?.fee ?? 0,
      fee_details: transaction.balance?.feeDetails ?? [],
      balance_type: transaction.balance?.balanceType ?? null,
      available_on: transaction.balance?.availableOn ?? null,
      created_at: now,
    }));
    const entries = transactions.flatMap((transaction, index) =>
      transaction.entries.map((entry, position) => ({
        // Unique within its transaction, which is all the primary key (transaction_id, id) asks.
        id: String(position + 1),
        transaction_id: rows[index].id,
        tenant_id: scope.tenantId,
        livemode: scope.livemode,
        account_id: accounts(entry.currency).get(accountKey(entry.accountType, entry.currency))!,
        amount: entry.amount,
        currency: entry.currency,
      })),
    );
    return { transactions: rows, entries };
  }

  /**
   * Posts transactions inside the caller's database transaction (so they commit or roll back with
   * the business change that caused them), in one statement whatever their number, and returns
   * their ids.
   */
  async post(tx: Tx, scope: Scope, transactions: LedgerTransactionInput[]): Promise<string[]> {
    validate(transactions);
    if (!transactions.length) return [];
    const accounts = new Map<string, AccountIds>();
    for (const { entries } of transactions) {
      for (const { currency } of entries) {
        if (accounts.has(currency)) continue;
        // A miss is looked up in the caller's transaction and not cached: accounts created there
        // vanish if it rolls back.
        accounts.set(
          currency,
          await (this.committedAccounts.peek(scopeKey(scope, currency)) ?? ensureAccounts(tx, scope, currency)),
        );
      }
    }
    const posting = this.rows(scope, transactions, (currency) => accounts.get(currency)!);
    const statement = new UnnestStatement();
    await statement.run(tx, `WITH ${postingCtes(statement, posting)} SELECT 1`);
    return posting.transactions.map((row) => row.id);
  }

  async listBalanceTransactions(
    scope: Scope,
    query: BalanceTransactionListQuery,
  ): Promise<{ data: BalanceTransaction[]; has_more: boolean }> {
    // A payout's transactions are those of its settlements (a few index ranges), found and then sorted.
    const sortedFilter = query.source !== undefined || query.payout !== undefined;
    return listRead(this.reads, scope, sortedFilter, async (tx) => {
      const page = await listPage<BalanceTransactionRow>(tx, 'balance_transactions', scope, query, [
        query.type ? tx`AND type = ${query.type}` : tx``,
        query.source ? tx`AND source_id = ${query.source}` : tx``,
        query.currency ? tx`AND currency = ${query.currency}` : tx``,
        query.settlement ? tx`AND settlement_id = ${query.settlement}` : tx``,
        query.payout ? tx`AND payout_id = ${query.payout}` : tx``,
      ]);
      return { data: page.rows.map(toBalanceTransaction), has_more: page.hasMore };
    });
  }

  async retrieveBalanceTransactions(scope: Scope, ids: string[]): Promise<BalanceTransaction[]> {
    const rows = await scopedRead(this.sql, scope, (tx) =>
      findManyOwned<BalanceTransactionRow>(tx, 'balance_transactions', scope, ids),
    );
    return rows.map(toBalanceTransaction);
  }

  async retrieveBalanceTransaction(scope: Scope, id: string): Promise<BalanceTransaction> {
    const row = await scopedRead(this.sql, scope, (tx) =>
      findOwned<BalanceTransactionRow>(tx, 'balance_transactions', scope, id, 'balance_transaction'),
    );
    return toBalanceTransaction(row);
  }

  /**
   * Locks every ledger account of the tenant, mode and currency, in id order and in one statement,
   * until the caller's transaction ends, and returns the available balance. Whoever spends from
   * available (a payout, a negative settlement) decides on a balance no concurrent spender can
   * change in between.
   *
   * The global lock order: every transaction takes its ledger account locks in ascending id order
   * and never takes a lower id after a higher one. A payment batch locks the accounts it changes
   * in one ordered statement (postingCtes); settlement and payouts call this first, so the posting
   * they make afterwards only touches accounts they already hold. Locking only `available` first
   * and the posting's other accounts later would take them out of order against a batch that
   * touches the same accounts (an instant-settlement tenant's available and pending), and the two
   * would deadlock.
   */
  async lockAvailable(tx: Tx, scope: Scope, currency: string): Promise<number> {
    const accounts = await tx<{ type: AccountType; balance: number }[]>`
      SELECT type, balance FROM ledger_accounts
      WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND currency = ${currency}
      ORDER BY id FOR NO KEY UPDATE`;
    return accounts.find((account) => account.type === 'available')?.balance ?? 0;
  }

  /** The tenant's available, pending and reserved funds, per currency it has ever held. */
  async balances(scope: Scope): Promise<Balance> {
    return toBalance(await this.batchedReads.read(readBalances, scope, scope), scope.livemode);
  }

  /**
   * Recomputes every account's balance from its entries, and every transaction's sum, across all
   * tenants (admin is a connection that row-level security does not limit). Each check is one
   * statement, so it reads one snapshot and concurrent posting cannot cause false differences.
   */
  static async verify(admin: Sql): Promise<LedgerDifferences> {
    const accounts = await admin<AccountDifference[]>`
      SELECT a.id AS account_id, a.tenant_id, a.livemode, a.type, a.currency, a.balance, coalesce(e.total, 0)::bigint AS computed
      FROM ledger_accounts a
      LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
      WHERE a.balance <> coalesce(e.total, 0)
      ORDER BY a.id`;
    // The commit-time trigger makes these impossible, unless it was bypassed (disabled triggers or
    // session_replication_role = replica).
    const transactions = await admin<UnbalancedTransaction[]>`
      SELECT transaction_id, tenant_id, currency, sum(amount)::bigint AS total
      FROM ledger_entries GROUP BY transaction_id, tenant_id, currency HAVING sum(amount) <> 0
      ORDER BY transaction_id`;
    return { accounts: [...accounts], transactions: [...transactions] };
  }
}

/**
 * The balance reads of concurrent requests in one query, in the read batch of their turn (ReadBatcher): row-level
 * security limits it to the batch's scopes, and each read takes its own scope's accounts.
 */
const readBalances: ReadCombiner<Scope, BalanceRow[]> = async (tx, scopes) => {
  const unique = new Map(
    scopes.map((scope) => [
      `${scope.tenantId}:${scope.livemode}`,
      { tenant_id: scope.tenantId, livemode: scope.livemode },
    ]),
  );
  const statement = new UnnestStatement();
  const text = `
    SELECT a.tenant_id, a.livemode, a.type, a.currency, a.balance FROM ledger_accounts a
    JOIN (${statement.rows(SCOPE_COLUMNS, [...unique.values()])}) s ON a.tenant_id = s.tenant_id AND a.livemode = s.livemode
    WHERE a.type IN ('available', 'pending', 'reserve', 'disputes')
    ORDER BY a.currency, a.type`;
  const rows = await statement.run<(BalanceRow & { tenant_id: string; livemode: boolean })[]>(tx, text);
  return scopes.map((scope) =>
    rows.filter((row) => row.tenant_id === scope.tenantId && row.livemode === scope.livemode),
  );
};
