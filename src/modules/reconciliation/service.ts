import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import { inPageScope, inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { findOwned, listCursor, listPage } from '../../db/list.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { idFloor, newId } from '../../lib/ids.js';
import { isoDate, unixSeconds } from '../../lib/time.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import {
  dayEnd,
  dayStart,
  parseSettlementReport,
  type SettlementLine,
  type SimulatedSettlementReports,
} from '../connectors/settlement-reports.js';
import { matchLines, totals, type LedgerLine, type MatchedItem, type Totals } from './match.js';
import { ApiError, safeEcho } from '../../http/errors.js';
import type {
  DiscrepancyListQuery,
  ItemStatus,
  ReconciliationDiscrepancy,
  ReconciliationItem,
  ReconciliationItemListQuery,
  ReconciliationReport,
  ReconciliationReportListQuery,
} from './schemas.js';

interface ReportRow extends Totals {
  id: string;
  tenant_id: string;
  livemode: boolean;
  processor: string;
  report_date: string | Date;
  currency: string;
  created_at: Date;
  updated_at: Date;
}

interface ItemRow {
  id: string;
  report_id: string;
  tenant_id: string;
  livemode: boolean;
  status: ItemStatus;
  type: 'capture' | 'refund';
  reference: string;
  source_id: string | null;
  balance_transaction: string | null;
  currency: string;
  processor_amount: number | null;
  ledger_amount: number | null;
  created_at: Date;
}

interface ProcessorReportRow {
  id: string;
  csv: string;
  final: boolean;
  reconciled_at: Date | null;
}

const TOTAL_COLUMNS: Columns<Totals> = [
  ['processor_count', 'integer'],
  ['processor_amount', 'bigint'],
  ['ledger_count', 'integer'],
  ['ledger_amount', 'bigint'],
  ['matched_count', 'integer'],
  ['matched_amount', 'bigint'],
  ['missing_in_ledger_count', 'integer'],
  ['missing_in_ledger_amount', 'bigint'],
  ['missing_in_report_count', 'integer'],
  ['missing_in_report_amount', 'bigint'],
  ['amount_mismatch_count', 'integer'],
  ['amount_mismatch_amount', 'bigint'],
];

const REPORT_COLUMNS: Columns<ReportRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['processor', 'text'],
  ['report_date', 'date'],
  ['currency', 'text'],
  ...TOTAL_COLUMNS,
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

const ITEM_COLUMNS: Columns<ItemRow> = [
  ['id', 'text'],
  ['report_id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['status', 'text'],
  ['type', 'text'],
  ['reference', 'text'],
  ['source_id', 'text'],
  ['balance_transaction', 'text'],
  ['currency', 'text'],
  ['processor_amount', 'bigint'],
  ['ledger_amount', 'bigint'],
  ['created_at', 'timestamptz'],
];

function toApiReport(row: ReportRow): ReconciliationReport {
  const { id, tenant_id: _tenant, livemode, processor, report_date, currency, created_at, updated_at, ...counts } = row;
  const discrepancies = counts.missing_in_ledger_count + counts.missing_in_report_count + counts.amount_mismatch_count;
  return {
    id,
    object: 'reconciliation_report',
    processor,
    report_date: unixSeconds(`${isoDate(report_date)}T00:00:00Z`),
    currency,
    status: discrepancies ? 'discrepancies' : 'balanced',
    ...counts,
    difference: counts.processor_amount - counts.ledger_amount,
    created: unixSeconds(created_at),
    updated: unixSeconds(updated_at),
    livemode,
  };
}

interface DiscrepancyRow {
  id: string;
  tenant_id: string;
  tenant_name: string;
  livemode: boolean;
  report_id: string;
  processor: string;
  report_date: string | Date;
  status: Exclude<ItemStatus, 'matched'>;
  type: 'capture' | 'refund';
  reference: string;
  source_id: string | null;
  currency: string;
  processor_amount: number | null;
  ledger_amount: number | null;
  created_at: Date;
}

const toApiDiscrepancy = (row: DiscrepancyRow): ReconciliationDiscrepancy => ({
  id: row.id,
  object: 'reconciliation_discrepancy',
  tenant: row.tenant_id,
  tenant_name: row.tenant_name,
  report: row.report_id,
  processor: row.processor,
  report_date: unixSeconds(`${isoDate(row.report_date)}T00:00:00Z`),
  kind: row.status,
  type: row.type,
  reference: row.reference,
  source: row.source_id,
  currency: row.currency,
  processor_amount: row.processor_amount,
  ledger_amount: row.ledger_amount,
  difference: (row.processor_amount ?? 0) - (row.ledger_amount ?? 0),
  created: unixSeconds(row.created_at),
  livemode: row.livemode,
});

function toApiItem(row: ItemRow): ReconciliationItem {
  return {
    id: row.id,
    object: 'reconciliation_item',
    report: row.report_id,
    status: row.status,
    type: row.type,
    reference: row.reference,
    source: row.source_id,
    balance_transaction: row.balance_transaction,
    currency: row.currency,
    processor_amount: row.processor_amount,
    ledger_amount: row.ledger_amount,
    difference: (row.processor_amount ?? 0) - (row.ledger_amount ?? 0),
    created: unixSeconds(row.created_at),
    livemode: row.livemode,
  };
}

const CSV_COLUMNS = [
  'id',
  'processor',
  'report_date',
  'currency',
  'status',
  'type',
  'reference',
  'source',
  'balance_transaction',
  'processor_amount',
  'ledger_amount',
  'difference',
] as const;
const CSV_CHUNK = 5_000;

// Discrepancies get the newest ids, so that lists (newest first) show them before what matched.
const LISTING_ORDER: ItemStatus[] = ['matched', 'amount_mismatch', 'missing_in_report', 'missing_in_ledger'];

const DAY_MS = 86_400_000;
// A processor's report is final once its day has been over this long: calls in flight at
// midnight have been recorded by then, on both sides.
const REPORT_GRACE_MS = 60 * 60_000;
// Our ledger transactions are created within moments of their (time-ordered) ids.
const LEDGER_ID_MARGIN_MS = 60 * 60_000;

/**
 * Reconciliation: each processor's daily settlement report, matched line by line with our
 * ledger's captures and refunds through that processor, per tenant, mode and currency. Running
 * it again for the same day replaces each report's totals and items in place (same report ids).
 *
 * Each side is taken by its own day: a capture the processor settled just before midnight that
 * our ledger recorded just after shows as missing on each day's report.
 */
export class ReconciliationService {
  constructor(
    private readonly sql: Sql,
    private readonly settlementReports: SimulatedSettlementReports,
    private readonly processors: string[],
    private readonly workerSql: Sql,
  ) {}

  /**
   * The daily job: fetches each processor's report for `reportDate` (by default the last day
   * whose report is final) and reconciles it, unless that final report already was. Returns how
   * many processors' reports it reconciled.
   */
  async run(
    reportDate?: string,
    now = new Date(),
    items: ItemRunner = separately("processors' reports"),
  ): Promise<number> {
    const day = reportDate ?? isoDate(new Date(now.getTime() - REPORT_GRACE_MS - DAY_MS));
    return items.each(
      this.processors,
      (processor) => `${processor}:${day}`,
      async (processor) => {
        const report = await this.fetchProcessorReport(processor, day, now);
        if (report.final && report.reconciled_at) return false;
        await this.reconcile(processor, day);
        return true;
      },
    );
  }

  /** The stored report if final; otherwise asks the processor again (a provisional one is replaced). */
  private async fetchProcessorReport(processor: string, reportDate: string, now: Date): Promise<ProcessorReportRow> {
    const [stored] = await this.workerSql<
      ProcessorReportRow[]
    >`SELECT * FROM worker_processor_report(${processor}, ${reportDate}::date)`;
    if (stored?.final) return stored;
    const csv = await this.settlementReports.report(processor, reportDate);
    const final = now.getTime() >= dayEnd(reportDate).getTime() + REPORT_GRACE_MS;
    const [kept] = await this.workerSql<ProcessorReportRow[]>`
      SELECT * FROM worker_store_processor_report(${newId('psr')}, ${processor}, ${reportDate}::date, ${csv}, ${final})`;
    return kept;
  }

  /**
   * Reconciles the stored report of a processor and day for every tenant and mode in it or in our
   * ledger (a tenant that fails does not stop the others, but the report is then not marked
   * reconciled, so the daily job retries it). Returns how many reconciliation reports it wrote.
   */
  async reconcile(processor: string, reportDate: string): Promise<number> {
    const [report] = await this.workerSql<
      ProcessorReportRow[]
    >`SELECT * FROM worker_processor_report(${processor}, ${reportDate}::date)`;
    if (!report) throw new Error(`no ${processor} settlement report for ${reportDate}`);
    const scopes = new Map<string, { scope: Scope; lines: SettlementLine[] }>();
    const linesOf = (tenantId: string, livemode: boolean) => {
      const key = `${tenantId}:${livemode}`;
      if (!scopes.has(key)) scopes.set(key, { scope: { tenantId, livemode }, lines: [] });
      return scopes.get(key)!.lines;
    };
    for (const line of parseSettlementReport(report.csv)) {
      if (line.processor !== processor || line.report_date !== reportDate) {
        throw new Error(
          `the ${processor} settlement report for ${reportDate} has a line for ${line.processor} on ${line.report_date}`,
        );
      }
      linesOf(line.tenant_id, line.livemode).push(line);
    }
    const from = dayStart(reportDate);
    const to = dayEnd(reportDate);
    const ledgerScopes = await this.workerSql<{ tenant_id: string; livemode: boolean }[]>`
      SELECT * FROM worker_ledger_processor_scopes(${processor}, ${from}, ${to}, ${ledgerIdsFrom(from)}, ${ledgerIdsTo(to)})`;
    for (const { tenant_id, livemode } of ledgerScopes) linesOf(tenant_id, livemode);

    let written = 0;
    await separately(`tenants of the ${processor} report for ${reportDate}`).each(
      scopes.values(),
      ({ scope }) => `${scope.tenantId}:${scope.livemode}`,
      async ({ scope, lines }) => {
        written += await this.reconcileScope(scope, processor, reportDate, lines);
        return true;
      },
    );
    await this.workerSql`SELECT worker_mark_processor_report_reconciled(${report.id})`;
    return written;
  }

  private async reconcileScope(
    scope: Scope,
    processor: string,
    reportDate: string,
    processorLines: SettlementLine[],
  ): Promise<number> {
    const from = dayStart(reportDate);
    const to = dayEnd(reportDate);
    return inScope(this.sql, scope, async (tx) => {
      const ledgerLines = await tx<LedgerLine[]>`
        SELECT t.id AS transaction_id, t.source_id, t.currency, t.amount,
          CASE t.type WHEN 'charge' THEN 'capture' ELSE 'refund' END AS type,
          CASE t.type WHEN 'charge' THEN p.processor_reference ELSE t.source_id END AS reference
        FROM ledger_transactions t
        LEFT JOIN payments p ON t.type = 'charge' AND p.id = t.source_id
        LEFT JOIN refunds r ON t.type = 'refund' AND r.id = t.source_id
        WHERE t.tenant_id = ${scope.tenantId} AND t.livemode = ${scope.livemode}
          AND t.balance_type IS NOT NULL AND t.type IN ('charge', 'refund')
          AND t.id >= ${ledgerIdsFrom(from)} AND t.id < ${ledgerIdsTo(to)} AND t.created_at >= ${from} AND t.created_at < ${to}
          AND coalesce(p.processor, r.processor) = ${processor}`;
      const items = matchLines(processorLines, ledgerLines);
      return this.write(tx, scope, processor, reportDate, items);
    });
  }

  private async write(
    tx: Tx,
    scope: Scope,
    processor: string,
    reportDate: string,
    items: MatchedItem[],
  ): Promise<number> {
    const now = new Date();
    const currencies = [...new Set(items.map((item) => item.currency))].sort();
    const reports: ReportRow[] = currencies.map((currency) => ({
      id: newId('recon'),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      processor,
      report_date: reportDate,
      currency,
      ...totals(items.filter((item) => item.currency === currency)),
      created_at: now,
      updated_at: now,
    }));
    // The upsert comes first: its row locks make a concurrent run of the same day wait here, so
    // the items it then replaces are all those committed before it.
    const kept = (await insertRows(
      tx,
      'reconciliation_reports',
      REPORT_COLUMNS,
      reports,
      `ON CONFLICT (tenant_id, livemode, processor, report_date, currency) DO UPDATE SET
        ${[...TOTAL_COLUMNS.map(([name]) => name), 'updated_at'].map((name) => `${name} = EXCLUDED.${name}`).join(', ')}
       RETURNING id, currency`,
    )) as unknown as { id: string; currency: string }[];
    const reportIds = new Map(kept.map((row) => [row.currency, row.id]));
    const sameDay = tx`tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND processor = ${processor} AND report_date = ${reportDate}::date`;
    await tx`DELETE FROM reconciliation_items WHERE report_id IN (SELECT id FROM reconciliation_reports WHERE ${sameDay})`;
    await tx`DELETE FROM reconciliation_reports WHERE ${sameDay} AND currency <> ALL(${currencies}::text[])`;
    const ordered = [...items].sort(
      (a, b) =>
        LISTING_ORDER.indexOf(a.status) - LISTING_ORDER.indexOf(b.status) || a.reference.localeCompare(b.reference),
    );
    const rows: ItemRow[] = ordered.map((item) => ({
      id: newId('reci'),
      report_id: reportIds.get(item.currency)!,
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      ...item,
      created_at: now,
    }));
    await insertRows(tx, 'reconciliation_items', ITEM_COLUMNS, rows);
    return reports.length;
  }

  async list(scope: Scope, params: ReconciliationReportListQuery) {
    return inPageScope(this.sql, scope, async (tx) => {
      const page = await listPage<ReportRow>(tx, 'reconciliation_reports', scope, params, [
        params.processor ? tx`AND processor = ${params.processor}` : tx``,
        params.report_date ? tx`AND report_date = ${params.report_date}::date` : tx``,
        params.currency ? tx`AND currency = ${params.currency}` : tx``,
        params.status
          ? tx`AND (missing_in_ledger_count + missing_in_report_count + amount_mismatch_count > 0) = ${params.status === 'discrepancies'}`
          : tx``,
      ]);
      return { data: page.rows.map(toApiReport), has_more: page.hasMore };
    });
  }

  /**
   * The operator's view: every tenant's items that did not match in their latest reconciliation, newest first. Read
   * through auth_operator_reconciliation_discrepancies (037_operator_console.sql), the one way across tenants.
   */
  async discrepancies(params: DiscrepancyListQuery): Promise<{ data: ReconciliationDiscrepancy[]; has_more: boolean }> {
    const livemode = params.livemode ?? false;
    const { param, cursor } = listCursor(params);
    if (cursor !== undefined) {
      const [{ exists }] = await this.sql<{ exists: boolean }[]>`
        SELECT auth_operator_discrepancy_exists(${cursor}, ${livemode}) AS exists`;
      if (!exists)
        throw new ApiError(
          'invalid_request_error',
          'resource_missing',
          `No such object for ${param}: '${safeEcho(cursor)}'.`,
          param,
          400,
        );
    }
    const limit = params.limit ?? 10;
    const rows = await this.sql<DiscrepancyRow[]>`
      SELECT * FROM auth_operator_reconciliation_discrepancies(${livemode}, ${params.tenant ?? null},
        ${params.kind ?? null}, ${params.starting_after ?? null}, ${params.ending_before ?? null}, ${limit + 1})`;
    const hasMore = rows.length > limit;
    // Newest first either way; paging backwards, the extra row is the newest.
    const page = params.ending_before !== undefined && hasMore ? rows.slice(1) : rows.slice(0, limit);
    return { data: page.map(toApiDiscrepancy), has_more: hasMore };
  }

  async retrieve(scope: Scope, id: string): Promise<ReconciliationReport> {
    return toApiReport(await inScope(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  private find(tx: Tx, scope: Scope, id: string): Promise<ReportRow> {
    return findOwned<ReportRow>(tx, 'reconciliation_reports', scope, id, 'reconciliation_report');
  }

  async listItems(scope: Scope, id: string, params: ReconciliationItemListQuery) {
    return inPageScope(this.sql, scope, async (tx) => {
      await this.find(tx, scope, id);
      const page = await listPage<ItemRow>(tx, 'reconciliation_items', scope, params, [
        tx`AND report_id = ${id}`,
        params.status ? tx`AND status = ${params.status}` : tx``,
      ]);
      return { data: page.rows.map(toApiItem), has_more: page.hasMore };
    });
  }

  /**
   * The report's items as CSV, in the order the items list gives them, streamed in chunks of
   * short transactions so that a large report neither sits in memory nor holds a connection
   * while the client downloads. Fails with 404 before anything is sent.
   */
  async itemsCsv(scope: Scope, id: string): Promise<{ filename: string; body: Readable }> {
    const report = await this.retrieve(scope, id);
    // A file for people: its day is YYYY-MM-DD whatever the API version (retrieve gives the latest shape, seconds).
    const day = isoDate(new Date((report.report_date as number) * 1000));
    const sql = this.sql;
    // Spreadsheets run cells that start with = + - @ as formulas; references come from the
    // processor's file, so text cells are escaped (numbers are left as they are).
    const format = (rows: ItemRow[], header: boolean) =>
      stringify(
        rows.map(toApiItem).map((item) => ({
          ...item,
          processor: report.processor,
          report_date: day,
          source: item.source ?? '',
          balance_transaction: item.balance_transaction ?? '',
        })),
        { header, columns: [...CSV_COLUMNS], escape_formulas: true },
      );
    async function* chunks() {
      yield format([], true);
      let before: string | null = null;
      for (;;) {
        const rows: ItemRow[] = await inScope(
          sql,
          scope,
          (tx) => tx<ItemRow[]>`
          SELECT * FROM reconciliation_items
          WHERE report_id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} ${before ? tx`AND id < ${before}` : tx``}
          ORDER BY id DESC LIMIT ${CSV_CHUNK}`,
        );
        if (rows.length) yield format(rows, false);
        if (rows.length < CSV_CHUNK) return;
        before = rows.at(-1)!.id;
      }
    }
    return {
      filename: `reconciliation-${report.processor}-${day}-${report.currency}-${report.id}.csv`,
      body: Readable.from(chunks()),
    };
  }
}

const ledgerIdsFrom = (from: Date) => idFloor('txn', new Date(from.getTime() - LEDGER_ID_MARGIN_MS));
const ledgerIdsTo = (to: Date) => idFloor('txn', new Date(to.getTime() + LEDGER_ID_MARGIN_MS));
