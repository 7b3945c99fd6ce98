import { Type, type TSchema } from 'typebox';
import type postgres from 'postgres';
import { StrictObject } from '../../http/schemas.js';
import type { Scope, Tx } from '../../db/index.js';
import { currencyExponent } from '../../lib/currencies.js';
import { idRangeFrom, idRangeUntil } from '../../lib/ids.js';
import type { Interval, ReportFormat, ReportType } from './schemas.js';

export type Row = Record<string, string | number | null>;

/** What a report's rows are read with: a scoped transaction, and the batch size of its cursor. */
export interface SourceContext {
  tx: Tx;
  scope: Scope;
  parameters: Record<string, unknown>;
  now: Date;
  cursorRows: number;
  /** Key-encryption keys as the worker sees them (the PCI access review reports them). */
  /**
   * The vault's KEKs: generated at `created_at` (from its VAULT_KEK entry; null when the entry has no date, and the
   * age is counted from `first_seen_at` instead), active since `active_since`, records last re-wrapped onto it by
   * `vault:rotate` at `rotated_at`.
   */
  keks: {
    id: string;
    first_seen_at: Date;
    active_since: Date | null;
    created_at: Date | null;
    rotated_at: Date | null;
  }[];
}

export interface ReportDefinition {
  title: string;
  parameters: TSchema;
  formats: ReportFormat[];
  columns: string[];
  /** Fails the report (with this message) before any row is read, e.g. a currency without a rate. */
  check?: (ctx: SourceContext) => Promise<string | undefined>;
  /** The rows, a cursor batch at a time: a report is never held whole in memory. */
  rows: (ctx: SourceContext) => AsyncIterable<Row[]>;
  /** The parameters a schedule's run adds: the period that just ended. */
  period: (interval: Interval, runAt: Date) => Record<string, string>;
}

const DAY_MS = 86_400_000;
const day = (date: Date) => date.toISOString().slice(0, 10);

const DateParam = (description: string) => Type.String({ format: 'date', pattern: '^(?!0000)[0-9]{4}-', description });
const Period = {
  from: DateParam('First UTC day of the period (YYYY-MM-DD).'),
  to: DateParam('Last UTC day of the period, included.'),
};
const Rates = Type.Record(
  Type.String({ pattern: '^[a-z]{3}$' }),
  Type.String({ pattern: '^[0-9]{1,9}(\\.[0-9]{1,9})?$' }),
  {
    description: 'USD per one major unit of each currency, as a decimal string ("1.08" for EUR); usd is always 1.',
  },
);
const Threshold = Type.Integer({
  minimum: 1,
  maximum: 1e15,
  default: 1_000_000,
  description: 'In USD cents (default 1000000: 10,000.00 USD).',
});

/** The period that just ended, for a schedule running at runAt. */
function lastPeriod(interval: Interval, runAt: Date): Record<string, string> {
  const today = new Date(Date.UTC(runAt.getUTCFullYear(), runAt.getUTCMonth(), runAt.getUTCDate()));
  const to = new Date(today.getTime() - DAY_MS);
  if (interval === 'daily') return { from: day(to), to: day(to) };
  if (interval === 'weekly') return { from: day(new Date(today.getTime() - 7 * DAY_MS)), to: day(to) };
  const first = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 1, 1));
  const last = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 0));
  return { from: day(first), to: day(last) };
}

export function periodBounds(parameters: Record<string, unknown>) {
  const from = new Date(`${String(parameters.from)}T00:00:00Z`);
  const to = new Date(new Date(`${String(parameters.to)}T00:00:00Z`).getTime() + DAY_MS);
  return { from, to };
}

/**
 * A server-side cursor over the query, `rows` at a time. postgres.js starts a cursor without
 * waiting for the answers pipelined before it: opened while inScope's BEGIN and scope were still
 * unanswered, it read no rows at all. One answered query first puts it after them.
 */
async function* cursor(tx: Tx, query: postgres.PendingQuery<Row[]>, rows: number): AsyncIterable<Row[]> {
  await tx`SELECT 1`;
  for await (const batch of query.cursor(rows)) yield batch as Row[];
}

function ratesOf(parameters: Record<string, unknown>) {
  const rates: Record<string, string> = {
    ...((parameters.rates as Record<string, string> | undefined) ?? {}),
    usd: '1',
  };
  const currencies = Object.keys(rates);
  return {
    currencies,
    rates: currencies.map((c) => rates[c]),
    // To USD cents: amount / 10^exponent major units × rate × 100.
    exponents: currencies.map((c) => currencyExponent(c) ?? 2),
  };
}

/** Captured payments of the period with their subject and USD-cent equivalent (numeric, exact). */
function capturedInUsd(ctx: SourceContext) {
  const { tx, scope } = ctx;
  const { from, to } = periodBounds(ctx.parameters);
  const { currencies, rates, exponents } = ratesOf(ctx.parameters);
  return tx`
    SELECT p.id, p.created_at, p.currency, p.amount_received AS amount, p.customer, pm.fingerprint,
      coalesce('customer:' || p.customer, 'card:' || pm.fingerprint, 'payment:' || p.id) AS subject,
      (p.created_at AT TIME ZONE 'UTC')::date AS day,
      p.amount_received * r.rate * power(10::numeric, 2 - r.exponent) AS usd
    FROM payments p
    LEFT JOIN payment_methods pm ON pm.id = p.payment_method_id
    JOIN unnest(${currencies}::text[], ${rates}::numeric[], ${exponents}::int[]) AS r(currency, rate, exponent)
      ON r.currency = p.currency
    WHERE p.tenant_id = ${scope.tenantId} AND p.livemode = ${scope.livemode} AND p.amount_received > 0
      AND p.id >= ${idRangeFrom('pay', from)}
      AND p.id < ${idRangeUntil('pay', to)}
      AND p.created_at >= ${from} AND p.created_at < ${to}`;
}

/** A report in USD equivalents needs a rate for every currency the period's payments are in. */
async function checkRates(ctx: SourceContext): Promise<string | undefined> {
  const { tx, scope } = ctx;
  const { from, to } = periodBounds(ctx.parameters);
  const { currencies } = ratesOf(ctx.parameters);
  const missing = await tx<{ currency: string }[]>`
    SELECT DISTINCT currency FROM payments
    WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND amount_received > 0
      AND id >= ${idRangeFrom('pay', from)}
      AND id < ${idRangeUntil('pay', to)}
      AND created_at >= ${from} AND created_at < ${to} AND currency <> ALL(${currencies}::text[])
    ORDER BY currency`;
  if (!missing.length) return undefined;
  const list = missing.map((m) => m.currency).join(', ');
  return `No USD rate for ${list}: pass parameters.rates (e.g. {"${missing[0].currency}": "1.08"}).`;
}

const READABLE: ReportFormat[] = ['csv', 'json', 'pdf'];

export const REPORT_DEFINITIONS: Record<ReportType, ReportDefinition> = {
  large_transactions: {
    title: 'Large transactions',
    parameters: StrictObject({ ...Period, threshold: Type.Optional(Threshold), rates: Type.Optional(Rates) }),
    formats: READABLE,
    columns: [
      'day',
      'subject',
      'customer',
      'card_fingerprint',
      'payment_count',
      'usd_equivalent',
      'amounts',
      'payment_ids',
    ],
    check: checkRates,
    rows: (ctx) => {
      const { tx } = ctx;
      const threshold = Number(ctx.parameters.threshold ?? 1_000_000);
      return cursor(
        tx,
        tx<Row[]>`
        WITH captured AS (${capturedInUsd(ctx)}),
        per_currency AS (
          SELECT day, subject, currency, sum(amount) AS amount, count(*) AS n, sum(usd) AS usd,
            max(customer) AS customer, max(fingerprint) AS fingerprint, min(created_at) AS first,
            string_agg(id, ' ' ORDER BY created_at, id) AS ids
          FROM captured GROUP BY day, subject, currency)
        SELECT to_char(day, 'YYYY-MM-DD') AS day, subject, max(customer) AS customer,
          max(fingerprint) AS card_fingerprint, sum(n)::int AS payment_count, round(sum(usd))::bigint AS usd_equivalent,
          string_agg(currency || ':' || amount, ' ' ORDER BY currency) AS amounts,
          string_agg(ids, ' ' ORDER BY first) AS payment_ids
        FROM per_currency GROUP BY day, subject
        HAVING sum(usd) >= ${threshold}
        ORDER BY day, subject`,
        ctx.cursorRows,
      );
    },
    period: lastPeriod,
  },

  structuring_alerts: {
    title: 'Structuring alerts',
    parameters: StrictObject({
      ...Period,
      threshold: Type.Optional(Threshold),
      rates: Type.Optional(Rates),
      min_payments: Type.Optional(Type.Integer({ minimum: 2, maximum: 100, default: 3 })),
      window_hours: Type.Optional(Type.Integer({ minimum: 1, maximum: 720, default: 24 })),
      lower_percent: Type.Optional(Type.Integer({ minimum: 1, maximum: 99, default: 80 })),
    }),
    formats: READABLE,
    columns: [
      'subject',
      'customer',
      'card_fingerprint',
      'payment_count',
      'max_in_window',
      'first_payment_at',
      'last_payment_at',
      'usd_equivalent',
      'payment_ids',
    ],
    check: checkRates,
    rows: (ctx) => {
      const { tx, parameters } = ctx;
      const threshold = Number(parameters.threshold ?? 1_000_000);
      const lower = (threshold * Number(parameters.lower_percent ?? 80)) / 100;
      const window = `${Number(parameters.window_hours ?? 24)} hours`;
      return cursor(
        tx,
        tx<Row[]>`
        WITH captured AS (${capturedInUsd(ctx)}),
        near AS (SELECT * FROM captured WHERE usd >= ${lower} AND usd < ${threshold}),
        counted AS (
          SELECT near.*, count(*) OVER (PARTITION BY subject ORDER BY created_at
            RANGE BETWEEN ${window}::interval PRECEDING AND CURRENT ROW) AS in_window
          FROM near)
        SELECT subject, max(customer) AS customer, max(fingerprint) AS card_fingerprint,
          count(*)::int AS payment_count, max(in_window)::int AS max_in_window,
          to_char(min(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS first_payment_at,
          to_char(max(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_payment_at,
          round(sum(usd))::bigint AS usd_equivalent, string_agg(id, ' ' ORDER BY created_at, id) AS payment_ids
        FROM counted GROUP BY subject
        HAVING max(in_window) >= ${Number(parameters.min_payments ?? 3)}
        ORDER BY subject`,
        ctx.cursorRows,
      );
    },
    period: lastPeriod,
  },

  transaction_summary: {
    title: 'Transaction summary',
    parameters: StrictObject({
      month: Type.String({ pattern: '^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])$', description: 'The month, YYYY-MM.' }),
    }),
    formats: READABLE,
    columns: ['section', 'dimension', 'currency', 'count', 'amount', 'rate_bp'],
    rows: (ctx) => {
      const { tx, scope } = ctx;
      const from = new Date(`${String(ctx.parameters.month)}-01T00:00:00Z`);
      const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
      const idRange = (prefix: string) =>
        tx`id >= ${idRangeFrom(prefix, from)} AND id < ${idRangeUntil(prefix, to)} AND created_at >= ${from} AND created_at < ${to}`;
      const mine = tx`tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      // Rates are basis points, rounded down; null when there is nothing to divide by.
      return cursor(
        tx,
        tx<Row[]>`
        WITH month_payments AS (SELECT * FROM payments WHERE ${mine} AND ${idRange('pay')}),
        captured AS (
          SELECT p.*, pm.brand, coalesce(pm.country, 'unknown') AS country FROM month_payments p
          LEFT JOIN payment_methods pm ON pm.id = p.payment_method_id WHERE p.amount_received > 0),
        authorizations AS (
          SELECT p.id, bool_or(a.status = 'succeeded') AS approved FROM month_payments p
          JOIN payment_attempts a ON a.payment_id = p.id AND a.operation = 'authorize'
            AND a.status IN ('succeeded', 'declined')
          GROUP BY p.id),
        month_disputes AS (SELECT * FROM disputes WHERE ${mine} AND ${idRange('dp')}),
        captured_count AS (SELECT count(*) AS n FROM captured)
        SELECT 'volume' AS section, 'all' AS dimension, currency, count(*)::int AS count,
          sum(amount_received)::bigint AS amount, NULL::int AS rate_bp, 1 AS o FROM captured GROUP BY currency
        UNION ALL SELECT 'volume_by_card_brand', coalesce(brand, 'unknown'), currency, count(*)::int,
          sum(amount_received)::bigint, NULL, 2 FROM captured GROUP BY brand, currency
        UNION ALL SELECT 'volume_by_card_country', country, currency, count(*)::int, sum(amount_received)::bigint,
          NULL, 3 FROM captured GROUP BY country, currency
        UNION ALL SELECT 'approval_rate', 'all', NULL, count(*)::int, NULL,
          (count(*) FILTER (WHERE approved) * 10000 / nullif(count(*), 0))::int, 4 FROM authorizations
        UNION ALL SELECT 'refunds', 'all', currency, count(*)::int, sum(amount)::bigint, NULL, 5
          FROM refunds WHERE ${mine} AND ${idRange('re')} AND status = 'succeeded' GROUP BY currency
        UNION ALL SELECT 'dispute_ratio', 'all', NULL, count(*)::int, NULL,
          (count(*) * 10000 / nullif((SELECT n FROM captured_count), 0))::int, 6 FROM month_disputes
        UNION ALL SELECT 'fraud_rate', 'all', NULL, count(*)::int, NULL,
          (count(*) * 10000 / nullif((SELECT n FROM captured_count), 0))::int, 7
          FROM month_disputes WHERE reason = 'fraudulent'
        UNION ALL SELECT 'fees', 'all', currency, count(*)::int, sum(fee)::bigint, NULL, 8
          FROM ledger_transactions WHERE ${mine} AND ${idRange('txn')} AND balance_type IS NOT NULL AND fee <> 0
          GROUP BY currency
        ORDER BY o, dimension, currency`,
        ctx.cursorRows,
      );
    },
    period: (_interval, runAt) => {
      const previous = new Date(Date.UTC(runAt.getUTCFullYear(), runAt.getUTCMonth() - 1, 1));
      return { month: previous.toISOString().slice(0, 7) };
    },
  },

  settlement_statement: {
    title: 'Settlement statement',
    parameters: StrictObject({ ...Period, currency: Type.String({ pattern: '^[a-z]{3}$' }) }),
    formats: ['camt.053', 'csv', 'json'],
    columns: ['date', 'kind', 'reference', 'credit_debit', 'amount', 'balance'],
    rows: (ctx) => statementRows(ctx),
    period: lastPeriod,
  },

  pci_access_review: {
    title: 'PCI access review',
    parameters: StrictObject({
      stale_days: Type.Optional(
        Type.Integer({ minimum: 1, maximum: 3650, default: 90, description: 'Age and inactivity limit in days.' }),
      ),
    }),
    formats: READABLE,
    columns: ['principal', 'id', 'name', 'access', 'created', 'age_days', 'last_used', 'mfa', 'records', 'findings'],
    rows: (ctx) => accessReviewRows(ctx),
    period: () => ({}),
  },

  reconciliation_summary: {
    title: 'Reconciliation summary',
    parameters: StrictObject({ ...Period }),
    formats: READABLE,
    columns: [
      'row',
      'report',
      'report_date',
      'processor',
      'currency',
      'status',
      'processor_count',
      'processor_amount',
      'ledger_count',
      'ledger_amount',
      'discrepancy_count',
      'reference',
      'item_type',
      'item_processor_amount',
      'item_ledger_amount',
      'difference',
    ],
    rows: (ctx) => {
      const { tx, scope, parameters } = ctx;
      return cursor(
        tx,
        tx<Row[]>`
        WITH period AS (
          SELECT * FROM reconciliation_reports
          WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
            AND report_date >= ${String(parameters.from)}::date AND report_date <= ${String(parameters.to)}::date)
        SELECT * FROM (
          SELECT 'report' AS row, r.id AS report, to_char(r.report_date, 'YYYY-MM-DD') AS report_date, r.processor,
            r.currency,
            CASE WHEN r.missing_in_ledger_count + r.missing_in_report_count + r.amount_mismatch_count > 0
              THEN 'discrepancies' ELSE 'balanced' END AS status,
            r.processor_count, r.processor_amount, r.ledger_count, r.ledger_amount,
            r.missing_in_ledger_count + r.missing_in_report_count + r.amount_mismatch_count AS discrepancy_count,
            NULL AS reference, NULL AS item_type, NULL::bigint AS item_processor_amount,
            NULL::bigint AS item_ledger_amount, r.processor_amount - r.ledger_amount AS difference, 0 AS o
          FROM period r
          UNION ALL
          SELECT 'discrepancy', r.id, to_char(r.report_date, 'YYYY-MM-DD'), r.processor, r.currency, i.status,
            NULL, NULL, NULL, NULL, NULL, i.reference, i.type, i.processor_amount, i.ledger_amount,
            coalesce(i.processor_amount, 0) - coalesce(i.ledger_amount, 0), 1
          FROM period r JOIN reconciliation_items i ON i.report_id = r.id AND i.status <> 'matched'
        ) rows ORDER BY report_date, processor, currency, report, o, reference`,
        ctx.cursorRows,
      );
    },
    period: lastPeriod,
  },
};

/**
 * The available balance's movements, day by day: an opening row, one row per ledger transaction
 * that moved it (settlements, payouts, returned payouts, and charges under instant settlement)
 * and a closing row. Days without movement still get their opening and closing balance.
 */
async function* statementRows(ctx: SourceContext): AsyncIterable<Row[]> {
  const { tx, scope, parameters } = ctx;
  const currency = String(parameters.currency);
  const { from, to } = periodBounds(parameters);
  const [account] = await tx<{ id: string }[]>`
    SELECT id FROM ledger_accounts WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
      AND type = 'available' AND currency = ${currency}`;
  // No index finds an account's entries (004 keeps one, by transaction): the tenant's transactions are found by their
  // time-ordered ids instead, and their entries by the primary key. The opening balance is the running balance less
  // what moved from `from` on, read in one statement (one snapshot): the entries since then, not all before.
  const since = (start: Date) =>
    tx`SELECT id, type, source_id FROM ledger_transactions WHERE tenant_id = ${scope.tenantId}
      AND livemode = ${scope.livemode} AND id >= ${idRangeFrom('txn', start)}`;
  let balance = 0;
  if (account) {
    const [opening] = await tx<{ total: number }[]>`
      SELECT (a.balance - coalesce((
        SELECT sum(e.amount) FROM (${since(from)}) t JOIN ledger_entries e ON e.transaction_id = t.id
        WHERE e.account_id = a.id AND e.created_at >= ${from}), 0))::bigint AS total
      FROM ledger_accounts a WHERE a.id = ${account.id}`;
    balance = opening.total;
  }
  const entries = account
    ? cursor(
        tx,
        tx<Row[]>`
        SELECT to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS date, t.type AS kind,
          coalesce(t.source_id, t.id) AS reference, e.amount
        FROM (${since(from)} AND id < ${idRangeUntil('txn', to)}) t
        JOIN ledger_entries e ON e.transaction_id = t.id
        WHERE e.account_id = ${account.id} AND e.created_at >= ${from} AND e.created_at < ${to}
        ORDER BY e.created_at, e.id`,
        ctx.cursorRows,
      )
    : (async function* () {})();
  let current = day(from);
  let out: Row[] = [
    { date: current, kind: 'opening_balance', reference: null, credit_debit: null, amount: null, balance },
  ];
  const close = () =>
    out.push({ date: current, kind: 'closing_balance', reference: null, credit_debit: null, amount: null, balance });
  const advanceTo = (date: string) => {
    while (current < date) {
      close();
      current = day(new Date(new Date(`${current}T00:00:00Z`).getTime() + DAY_MS));
      out.push({ date: current, kind: 'opening_balance', reference: null, credit_debit: null, amount: null, balance });
    }
  };
  for await (const batch of entries) {
    for (const entry of batch) {
      advanceTo(String(entry.date));
      const amount = Number(entry.amount);
      balance += amount;
      out.push({
        date: current,
        kind: String(entry.kind),
        reference: String(entry.reference),
        credit_debit: amount >= 0 ? 'credit' : 'debit',
        amount: Math.abs(amount),
        balance,
      });
    }
    yield out;
    out = [];
  }
  advanceTo(day(new Date(to.getTime() - DAY_MS)));
  close();
  yield out;
}

/** Keys, users (when the users table exists) and key-encryption keys, with what a reviewer must look at. */
/** What each kind of key may do; a restricted key lists its scopes instead. */
const KEY_ACCESS: Record<string, string> = {
  secret: 'secret key: all scopes',
  publishable: 'publishable key: tokenize cards, confirm and read a payment with its client_secret',
};

async function* accessReviewRows(ctx: SourceContext): AsyncIterable<Row[]> {
  const { tx, scope, now } = ctx;
  const staleDays = Number(ctx.parameters.stale_days ?? 90);
  const ageDays = (date: Date | string | null) =>
    date === null ? null : Math.floor((now.getTime() - new Date(date).getTime()) / DAY_MS);
  const iso = (date: Date | string | null) => (date === null ? null : new Date(date).toISOString());
  const keys = await tx<
    {
      id: string;
      kind: string;
      name: string | null;
      redacted: string;
      scopes: string[];
      created_at: Date;
      last_used_at: Date | null;
      expires_at: Date | null;
      revoked_at: Date | null;
    }[]
  >`
    SELECT id, kind, name, redacted, scopes, created_at, last_used_at, expires_at, revoked_at FROM api_keys
    WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} ORDER BY created_at, id`;
  yield keys.map((key) => {
    const findings: string[] = [];
    const active = !key.revoked_at && (!key.expires_at || key.expires_at > now);
    if (!active) findings.push(key.revoked_at ? 'revoked' : 'expired');
    // A publishable key is public by design: its age or idleness exposes nothing.
    const secret = key.kind !== 'publishable';
    if (secret && active && ageDays(key.created_at)! > staleDays) findings.push(`older_than_${staleDays}_days`);
    if (secret && active && ageDays(key.last_used_at ?? key.created_at)! > staleDays)
      findings.push(`unused_${staleDays}_days`);
    return {
      principal: 'api_key',
      id: key.id,
      name: key.name ?? key.redacted,
      access: KEY_ACCESS[key.kind] ?? key.scopes.join(' '),
      created: iso(key.created_at),
      age_days: ageDays(key.created_at),
      last_used: iso(key.last_used_at),
      mfa: 'not_applicable',
      records: null,
      findings: findings.join(' '),
    };
  });
  yield await userRows(tx, scope, staleDays, ageDays, iso);
  const counts = await tx<{ kek_id: string; records: number }[]>`
    SELECT kek_id, count(*)::int AS records FROM (
      SELECT kek_id FROM payment_methods WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
        AND kek_id IS NOT NULL
      UNION ALL
      SELECT kek_id FROM bank_accounts WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}) sealed
    GROUP BY kek_id`;
  const records = new Map(counts.map((c) => [c.kek_id, c.records]));
  yield ctx.keks.map((kek) => {
    const created = kek.created_at ?? kek.first_seen_at;
    const rotation = kek.rotated_at ? `; records last re-wrapped onto it ${iso(kek.rotated_at)}` : '';
    return {
      principal: 'kek',
      id: kek.id,
      name: kek.active_since ? 'active key-encryption key' : 'retired key-encryption key (decrypts only)',
      access: kek.active_since ? `active since ${iso(kek.active_since)}${rotation}` : 'decrypt only',
      created: iso(created),
      age_days: ageDays(created),
      last_used: null,
      mfa: 'not_applicable',
      records: records.get(kek.id) ?? 0,
      findings: [
        // A KEK's cryptoperiod: one generated over a year ago should have been replaced.
        kek.active_since && ageDays(created)! > 365 ? 'not_rotated_in_365_days' : '',
        !kek.active_since && (records.get(kek.id) ?? 0) > 0 ? 'records_not_rotated' : '',
        kek.created_at ? '' : 'generation_date_unknown',
      ]
        .filter(Boolean)
        .join(' '),
    };
  });
}

/** The tenant's team users: role, last sign-in, and whether a second factor (TOTP or a passkey) is enrolled. */
async function userRows(
  tx: Tx,
  scope: Scope,
  staleDays: number,
  ageDays: (date: Date | string | null) => number | null,
  iso: (date: Date | string | null) => string | null,
): Promise<Row[]> {
  const users = await tx<
    {
      id: string;
      email: string;
      role: string;
      status: string;
      created_at: Date;
      last_login_at: Date | null;
      mfa: boolean;
    }[]
  >`
    SELECT u.id, u.email, u.role, u.status, u.created_at, u.last_login_at,
      u.totp_enrolled_at IS NOT NULL OR EXISTS (SELECT 1 FROM user_passkeys p WHERE p.user_id = u.id) AS mfa
    FROM users u WHERE u.tenant_id = ${scope.tenantId} AND u.status <> 'deactivated' ORDER BY u.id`;
  return users.map((u) => {
    const findings: string[] = [];
    if (ageDays(u.last_login_at ?? u.created_at)! > staleDays) findings.push(`inactive_over_${staleDays}_days`);
    if (!u.mfa) findings.push('no_mfa');
    return {
      principal: 'user',
      id: u.id,
      name: u.email,
      access: u.role,
      created: iso(u.created_at),
      age_days: ageDays(u.created_at),
      last_used: iso(u.last_login_at),
      mfa: u.mfa ? 'enrolled' : 'none',
      records: null,
      findings: findings.join(' '),
    };
  });
}
