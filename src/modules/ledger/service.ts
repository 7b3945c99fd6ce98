import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { UnnestStatement, insertRows } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { currencyExponent, maxAmount } from '../../lib/currencies.js';
import { newId } from '../../lib/ids.js';
import type { Balance } from './schemas.js';

export const ACCOUNT_TYPES = ['pending', 'available', 'reserve', 'fees', 'processor_clearing', 'payouts_in_transit', 'disputes'] as const;
export type AccountType = (typeof ACCOUNT_TYPES)[number];

export interface LedgerEntryInput {
  accountType: AccountType;
  currency: string;
  /** Signed, in minor units, never zero: what the account gains (positive) or loses (negative). */
  amount: number;
}

export interface LedgerTransactionInput {
  type: string;
  /** The object that caused it (a payment, refund, payout…), or null. */
  sourceId: string | null;
  description: string;
  entries: LedgerEntryInput[];
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
      if (currencyExponent(currency) === undefined || currency !== currency.toLowerCase()) throw invalid(`'${currency}' is not a supported lower-case currency.`);
      if (!Number.isSafeInteger(amount) || amount === 0 || Math.abs(amount) > maxAmount(currency)) throw invalid(`Ledger entry amount ${amount} must be a non-zero integer within the currency's range.`);
      totals.set(currency, (totals.get(currency) ?? 0) + amount);
    }
    for (const [currency, total] of totals) {
      if (total !== 0) throw invalid(`Ledger transaction '${transaction.type}' is unbalanced: ${total} ${currency} left over.`);
    }
  }
}

const accountKey = (type: string, currency: string) => `${type}:${currency}`;

export class LedgerService {
  constructor(private readonly sql: Sql) {}

  /**
   * Posts transactions inside the caller's database transaction (so they commit or roll back with
   * the business change that caused them) and returns their ids. Rows go in set-based, whatever
   * their number. The running balances get one UPDATE per account with the batch's summed delta,
   * in account-id order: a hot account (every payment lands in a tenant's pending account) is
   * locked once per batch rather than once per entry, and concurrent batches always lock
   * accounts in the same order, so they queue instead of deadlocking.
   */
  async post(tx: Tx, scope: Scope, transactions: LedgerTransactionInput[]): Promise<string[]> {
    validate(transactions);
    if (!transactions.length) return [];

    const wanted = new Map<string, { type: string; currency: string }>();
    for (const { entries } of transactions) for (const { accountType, currency } of entries) wanted.set(accountKey(accountType, currency), { type: accountType, currency });
    const accounts = [...wanted.values()].map((account) => ({ id: newId('la'), tenant_id: scope.tenantId, livemode: scope.livemode, ...account }));
    const accountColumns = [['id', 'text'], ['tenant_id', 'text'], ['livemode', 'boolean'], ['type', 'text'], ['currency', 'text']] as const;
    await insertRows(tx, 'ledger_accounts', accountColumns, accounts, 'ON CONFLICT (tenant_id, livemode, type, currency) DO NOTHING');
    // A separate statement: under READ COMMITTED it sees accounts a concurrent batch created
    // (the conflict above waited for it), which the INSERT's own snapshot would not.
    const lookup = new UnnestStatement();
    const keys = lookup.rows(accountColumns, accounts);
    const found = await lookup.run<{ id: string; type: string; currency: string }[]>(
      tx,
      `SELECT a.id, a.type, a.currency FROM ledger_accounts a
       JOIN (${keys}) k ON k.tenant_id = a.tenant_id AND k.livemode = a.livemode AND k.type = a.type AND k.currency = a.currency`,
    );
    const accountIds = new Map(found.map((row) => [accountKey(row.type, row.currency), row.id]));

    const transactionRows = transactions.map((transaction) => ({
      id: newId('ltx'),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      type: transaction.type,
      source_id: transaction.sourceId,
      description: transaction.description,
    }));
    const entryRows = transactions.flatMap((transaction, index) =>
      transaction.entries.map((entry) => ({
        id: newId('le'),
        transaction_id: transactionRows[index].id,
        tenant_id: scope.tenantId,
        livemode: scope.livemode,
        account_id: accountIds.get(accountKey(entry.accountType, entry.currency))!,
        amount: entry.amount,
        currency: entry.currency,
      })),
    );
    const deltas = new Map<string, number>();
    for (const entry of entryRows) deltas.set(entry.account_id, (deltas.get(entry.account_id) ?? 0) + entry.amount);

    // Sent together: postgres.js pipelines a reserved connection's queries and the server runs
    // them in order, so the id-ordered locking holds at the cost of a single round trip.
    await Promise.all([
      insertRows(tx, 'ledger_transactions', [['id', 'text'], ['tenant_id', 'text'], ['livemode', 'boolean'], ['type', 'text'], ['source_id', 'text'], ['description', 'text']], transactionRows),
      insertRows(tx, 'ledger_entries', [['id', 'text'], ['transaction_id', 'text'], ['tenant_id', 'text'], ['livemode', 'boolean'], ['account_id', 'text'], ['amount', 'bigint'], ['currency', 'text']], entryRows),
      ...[...deltas]
        .filter(([, delta]) => delta !== 0)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([id, delta]) => tx`UPDATE ledger_accounts SET balance = balance + ${delta} WHERE id = ${id}`),
    ]);
    return transactionRows.map((row) => row.id);
  }

  /** The tenant's available, pending and reserved funds, per currency it has ever held. */
  async balances(scope: Scope): Promise<Balance> {
    const rows = await inScope(
      this.sql,
      scope,
      (tx) => tx<{ type: AccountType; currency: string; balance: number }[]>`
        SELECT type, currency, balance FROM ledger_accounts
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND type IN ('available', 'pending', 'reserve')
        ORDER BY currency, type`,
    );
    const currencies = [...new Set(rows.map((row) => row.currency))];
    const funds = (type: AccountType) => currencies.map((currency) => ({ amount: rows.find((row) => row.type === type && row.currency === currency)?.balance ?? 0, currency }));
    return { object: 'balance', available: funds('available'), pending: funds('pending'), reserved: funds('reserve'), livemode: scope.livemode };
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
