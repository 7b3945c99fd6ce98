import { primaryReads, type Reads } from '../../db/replica.js';
import type { Readable } from 'node:stream';
import { recordAudit, type AuditContext } from '../audit/record.js';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { inScope, isDatabaseUnavailable, type Scope, type Sql, type Tx } from '../../db/index.js';
import { findOwned, listPage } from '../../db/list.js';
import { insertRows } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { validationError } from '../../http/validation.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds } from '../../lib/time.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import { openStructuringCases } from '../cases/service.js';
import { REPORT_DEFINITIONS, periodBounds, type Row, type SourceContext } from './definitions.js';
import { ChunkWriter, CONTENT_TYPES, EXTENSIONS, formatWriter, readChunks } from './files.js';
import type {
  CreateReportBody,
  CreateScheduleBody,
  Interval,
  Report,
  ReportFormat,
  ReportListQuery,
  ReportSchedule,
  ReportType,
  ScheduleListQuery,
  UpdateScheduleBody,
} from './schemas.js';

/** What a report and a schedule both say: which report, in which format, with which parameters. */
interface ReportSpecRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  type: ReportType;
  parameters: Record<string, unknown>;
  format: ReportFormat;
  created_at: Date;
}

interface ReportRow extends ReportSpecRow {
  status: 'pending' | 'succeeded' | 'failed';
  schedule_id: string | null;
  failure_message: string | null;
  row_count: number | null;
  size: number | null;
  started_at: Date | null;
  completed_at: Date | null;
}

interface ScheduleRow extends ReportSpecRow {
  interval: Interval;
  next_run_at: Date;
  last_run_at: Date | null;
  last_report_id: string | null;
}

export interface ReportOptions {
  /** Rows fetched per cursor round trip. */
  cursorRows: number;
  /** Bytes per stored file chunk. */
  chunkBytes: number;
  /** A run whose worker has not finished in this long is taken over by another. */
  staleAfterMs: number;
}

export const DEFAULT_REPORT_OPTIONS: ReportOptions = {
  cursorRows: 1_000,
  chunkBytes: 256 * 1024,
  staleAfterMs: 30 * 60_000,
};

const filename = (row: Pick<ReportRow, 'id' | 'type' | 'format'>) => `${row.type}-${row.id}.${EXTENSIONS[row.format]}`;

function toApiReport(row: ReportRow): Report {
  return {
    id: row.id,
    object: 'report',
    type: row.type,
    parameters: row.parameters,
    format: row.format,
    status: row.status,
    failure_message: row.failure_message,
    schedule: row.schedule_id,
    row_count: row.row_count,
    size: row.size,
    filename: filename(row),
    content_type: CONTENT_TYPES[row.format],
    created: unixSeconds(row.created_at),
    completed: row.completed_at ? unixSeconds(row.completed_at) : null,
    livemode: row.livemode,
  };
}

function toApiSchedule(row: ScheduleRow): ReportSchedule {
  return {
    id: row.id,
    object: 'report_schedule',
    type: row.type,
    parameters: row.parameters,
    format: row.format,
    interval: row.interval,
    next_run: unixSeconds(row.next_run_at),
    last_run: row.last_run_at ? unixSeconds(row.last_run_at) : null,
    last_report: row.last_report_id,
    created: unixSeconds(row.created_at),
    livemode: row.livemode,
  };
}

/** When a schedule next runs: the start of the next UTC day, Monday or first of the month after `after`. */
export function nextRun(interval: Interval, after: Date): Date {
  const y = after.getUTCFullYear();
  const m = after.getUTCMonth();
  const d = after.getUTCDate();
  if (interval === 'daily') return new Date(Date.UTC(y, m, d + 1));
  if (interval === 'monthly') return new Date(Date.UTC(y, m + 1, 1));
  const daysToMonday = (8 - after.getUTCDay()) % 7 || 7;
  return new Date(Date.UTC(y, m, d + daysToMonday));
}

const parameterAjv = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, strict: false });
addFormats.default(parameterAjv);
const validators = new Map<ReportType, ValidateFunction>(
  Object.entries(REPORT_DEFINITIONS).map(([type, definition]) => [
    type as ReportType,
    parameterAjv.compile(definition.parameters),
  ]),
);

/**
 * Checks a report's type, format and parameters, filling defaults; a bad one is a 400 naming the
 * parameter. A schedule's parameters leave out the period, which each run adds.
 */
function checkedParameters(
  type: ReportType,
  format: ReportFormat,
  parameters: Record<string, unknown>,
  forSchedule = false,
): Record<string, unknown> {
  const definition = REPORT_DEFINITIONS[type];
  if (!definition.formats.includes(format))
    throw ApiError.invalid(
      'parameter_invalid',
      `Invalid format: ${type} reports come as ${definition.formats.join(', ')}.`,
      'format',
    );
  const periodKeys = Object.keys(definition.period('daily', new Date()));
  if (forSchedule) {
    const set = periodKeys.find((key) => key in parameters);
    if (set)
      throw ApiError.invalid(
        'parameter_invalid',
        `parameters[${set}] is set by each scheduled run (the period that just ended); leave it out.`,
        `parameters[${set}]`,
      );
  }
  const probe = { ...(forSchedule ? definition.period('daily', new Date()) : {}), ...structuredClone(parameters) };
  const validate = validators.get(type)!;
  if (!validate(probe)) {
    const errors = (validate.errors ?? []).map((e) => ({ ...e, instancePath: `/parameters${e.instancePath}` }));
    throw validationError(errors, 'body');
  }
  if (forSchedule) return Object.fromEntries(Object.entries(probe).filter(([key]) => !periodKeys.includes(key)));
  if ('from' in probe) {
    const { from, to } = periodBounds(probe);
    if (from >= to)
      throw ApiError.invalid(
        'parameter_invalid',
        'parameters[from] must not be after parameters[to].',
        'parameters[from]',
      );
    if (to.getTime() - from.getTime() > 366 * 86_400_000)
      throw ApiError.invalid('parameter_invalid', 'A report covers at most 366 days.', 'parameters[to]');
  }
  return probe;
}

/**
 * Compliance reports: queued by the API, produced by the worker through a server-side cursor and
 * stored in chunks (see files.ts), downloaded as a stream. Schedules queue a report for the period
 * that just ended, daily, weekly or monthly.
 */
export class ReportService {
  constructor(
    private readonly sql: Sql,
    private readonly workerSql: Sql,
    /** The vault's KEKs, active first, and when each was generated where its VAULT_KEK entry says (else null). */
    private readonly vaultKeks: { active: string; all: string[]; created?: (Date | null)[] },
    private readonly options: ReportOptions = DEFAULT_REPORT_OPTIONS,
    /** Stale-tolerant reads (the list of reports): the replica when DATABASE_REPLICA_URL is set. */
    private readonly reads: Reads = primaryReads(sql),
  ) {}

  async create(scope: Scope, body: CreateReportBody): Promise<Report> {
    const type = body.type as ReportType;
    const format = (body.format ?? 'csv') as ReportFormat;
    const parameters = checkedParameters(type, format, body.parameters ?? {});
    return inScope(this.sql, scope, async (tx) =>
      toApiReport(await this.queue(tx, scope, type, format, parameters, null)),
    );
  }

  private async queue(
    tx: Tx,
    scope: Scope,
    type: ReportType,
    format: ReportFormat,
    parameters: Record<string, unknown>,
    scheduleId: string | null,
  ): Promise<ReportRow> {
    const [row] = await tx<ReportRow[]>`
      INSERT INTO reports (id, tenant_id, livemode, type, parameters, format, status, schedule_id)
      VALUES (${newId('rep')}, ${scope.tenantId}, ${scope.livemode}, ${type}, ${tx.json(parameters as never)}, ${format},
        'pending', ${scheduleId})
      RETURNING *`;
    return row;
  }

  async list(scope: Scope, params: ReportListQuery) {
    return this.reads.page(scope, async (tx) => {
      const page = await listPage<ReportRow>(tx, 'reports', scope, params, [
        params.type ? tx`AND type = ${params.type}` : tx``,
        params.status ? tx`AND status = ${params.status}` : tx``,
      ]);
      return { data: page.rows.map(toApiReport), has_more: page.hasMore };
    });
  }

  async retrieve(scope: Scope, id: string): Promise<Report> {
    return toApiReport(
      await inScope(this.sql, scope, (tx) => findOwned<ReportRow>(tx, 'reports', scope, id, 'report')),
    );
  }

  /**
   * The file of a succeeded report, streamed from its chunks. The download is recorded first, in
   * its own transaction with recordReportDownload: a download that is not recorded does not start.
   */
  async file(scope: Scope, id: string, context: AuditContext): Promise<{ report: Report; body: Readable }> {
    const row = await inScope(this.sql, scope, async (tx) => {
      const found = await findOwned<ReportRow>(tx, 'reports', scope, id, 'report');
      if (found.status !== 'succeeded')
        throw ApiError.invalid(
          'report_not_ready',
          found.status === 'pending'
            ? 'The report is still being produced; wait for its report.ready event or poll GET /v1/reports/{id}.'
            : `The report failed: ${found.failure_message ?? 'unknown reason'}.`,
          'id',
        );
      await recordReportDownload(tx, scope, found, context);
      return found;
    });
    return { report: toApiReport(row), body: readChunks(this.sql, scope, id) };
  }

  /** The worker's pass: produces every queued report (and takes over runs whose worker died). */
  async runPending(now = new Date(), limit = 20, items: ItemRunner = separately('reports')): Promise<number> {
    const due = await this.workerSql<{ id: string; tenant_id: string; livemode: boolean }[]>`
      SELECT * FROM worker_pending_reports(${new Date(now.getTime() - this.options.staleAfterMs)}, ${limit + items.waiting})`;
    return items.each(
      due,
      (report) => report.id,
      (report) => this.produce({ tenantId: report.tenant_id, livemode: report.livemode }, report.id, now),
    );
  }

  /** Claims a queued report (compare-and-set on started_at), writes its file and marks it done. */
  async produce(scope: Scope, id: string, now = new Date()): Promise<boolean> {
    const staleBefore = new Date(now.getTime() - this.options.staleAfterMs);
    const claimed = await inScope(this.sql, scope, async (tx) => {
      const [row] = await tx<ReportRow[]>`
        UPDATE reports SET started_at = ${now}, attempts = attempts + 1
        WHERE id = ${id} AND status = 'pending' AND (started_at IS NULL OR started_at < ${staleBefore})
        RETURNING *`;
      if (row) await tx`DELETE FROM report_chunks WHERE report_id = ${id}`;
      return row;
    });
    if (!claimed) return false;
    const keks = claimed.type === 'pci_access_review' ? await this.observeKeks(now) : [];
    const out = new ChunkWriter(this.sql, scope, id, this.options.chunkBytes);
    let rowCount = 0;
    try {
      const failure = await inScope(this.sql, scope, async (tx) => {
        const definition = REPORT_DEFINITIONS[claimed.type];
        const ctx: SourceContext = {
          tx,
          scope,
          parameters: claimed.parameters,
          now,
          cursorRows: this.options.cursorRows,
          keks,
        };
        const refused = await definition.check?.(ctx);
        if (refused) return refused;
        const writer = formatWriter(
          claimed.format,
          {
            reportId: id,
            title: definition.title,
            tenantId: scope.tenantId,
            livemode: scope.livemode,
            parameters: claimed.parameters,
            columns: definition.columns,
            generated: now,
          },
          out,
        );
        for await (const rows of definition.rows(ctx)) {
          writer.rows(rows);
          rowCount += rows.length;
          await out.flush();
          if (claimed.type === 'structuring_alerts') await this.openCases(scope, claimed, rows);
        }
        await writer.end();
        await out.flush(true);
        return undefined;
      });
      await this.finish(scope, claimed, failure ? { failure } : { rowCount, size: out.size }, now);
      return true;
    } catch (error) {
      // The database going away is the worker's to retry (the claim goes stale); anything else is
      // this report's failure, told to the tenant in general terms.
      if (isDatabaseUnavailable(error)) throw error;
      await this.finish(scope, claimed, { failure: 'The report could not be produced.' }, now);
      throw error;
    }
  }

  private async openCases(scope: Scope, report: ReportRow, rows: Row[]) {
    const { from, to } = periodBounds(report.parameters);
    await inScope(this.sql, scope, (tx) => openStructuringCases(tx, scope, report.id, rows, from, to));
  }

  private async finish(
    scope: Scope,
    report: ReportRow,
    outcome: { failure: string } | { rowCount: number; size: number },
    now: Date,
  ) {
    await inScope(this.sql, scope, async (tx) => {
      const [row] =
        'failure' in outcome
          ? await tx<ReportRow[]>`
            UPDATE reports SET status = 'failed', failure_message = ${outcome.failure}, completed_at = ${now}
            WHERE id = ${report.id} AND status = 'pending' AND started_at = ${report.started_at} RETURNING *`
          : await tx<ReportRow[]>`
            UPDATE reports SET status = 'succeeded', row_count = ${outcome.rowCount}, size = ${outcome.size},
              completed_at = ${now}
            WHERE id = ${report.id} AND status = 'pending' AND started_at = ${report.started_at} RETURNING *`;
      if (row) {
        if ('failure' in outcome) await tx`DELETE FROM report_chunks WHERE report_id = ${report.id}`;
        await insertRows(tx, 'events', EVENT_COLUMNS, [
          newEvent(scope, 'failure' in outcome ? 'report.failed' : 'report.ready', toApiReport(row), null),
        ]);
      }
    });
  }

  private observeKeks(now: Date) {
    const created = this.vaultKeks.all.map((_, i) => this.vaultKeks.created?.[i]?.toISOString() ?? null);
    return this.workerSql<SourceContext['keks']>`
      SELECT * FROM worker_observe_keks(${this.vaultKeks.active}, ${this.vaultKeks.all},
        ${created}::text[]::timestamptz[], ${now})`;
  }

  async createSchedule(scope: Scope, body: CreateScheduleBody, now = new Date()): Promise<ReportSchedule> {
    const type = body.type as ReportType;
    const format = (body.format ?? 'csv') as ReportFormat;
    const interval = body.interval as Interval;
    const parameters = checkedParameters(type, format, body.parameters ?? {}, true);
    return inScope(this.sql, scope, async (tx) => {
      const [row] = await tx<ScheduleRow[]>`
        INSERT INTO report_schedules (id, tenant_id, livemode, type, parameters, format, interval, next_run_at)
        VALUES (${newId('rsch')}, ${scope.tenantId}, ${scope.livemode}, ${type}, ${tx.json(parameters as never)},
          ${format}, ${interval}, ${nextRun(interval, now)})
        RETURNING *`;
      return toApiSchedule(row);
    });
  }

  async listSchedules(scope: Scope, params: ScheduleListQuery) {
    return inScope(this.sql, scope, async (tx) => {
      const page = await listPage<ScheduleRow>(tx, 'report_schedules', scope, params, [tx`AND deleted_at IS NULL`]);
      return { data: page.rows.map(toApiSchedule), has_more: page.hasMore };
    });
  }

  private async findSchedule(tx: Tx, scope: Scope, id: string) {
    const row = await findOwned<ScheduleRow & { deleted_at: Date | null }>(
      tx,
      'report_schedules',
      scope,
      id,
      'report_schedule',
    );
    if (row.deleted_at) throw ApiError.notFound('report_schedule', id);
    return row;
  }

  async retrieveSchedule(scope: Scope, id: string): Promise<ReportSchedule> {
    return toApiSchedule(await inScope(this.sql, scope, (tx) => this.findSchedule(tx, scope, id)));
  }

  async updateSchedule(scope: Scope, id: string, body: UpdateScheduleBody, now = new Date()) {
    return inScope(this.sql, scope, async (tx) => {
      const current = await this.findSchedule(tx, scope, id);
      const format = (body.format ?? current.format) as ReportFormat;
      const interval = (body.interval ?? current.interval) as Interval;
      const parameters = checkedParameters(current.type, format, body.parameters ?? current.parameters, true);
      const [row] = await tx<ScheduleRow[]>`
        UPDATE report_schedules SET parameters = ${tx.json(parameters as never)}, format = ${format},
          interval = ${interval}, updated_at = ${now},
          next_run_at = ${interval === current.interval ? current.next_run_at : nextRun(interval, now)}
        WHERE id = ${id} AND deleted_at IS NULL RETURNING *`;
      return toApiSchedule(row);
    });
  }

  async deleteSchedule(scope: Scope, id: string, now = new Date()) {
    return inScope(this.sql, scope, async (tx) => {
      await this.findSchedule(tx, scope, id);
      await tx`UPDATE report_schedules SET deleted_at = ${now} WHERE id = ${id}`;
      return { id, object: 'report_schedule' as const, deleted: true as const };
    });
  }

  /** The worker's pass: queues a report for each due schedule and moves it to its next run. */
  async runSchedules(now = new Date(), limit = 100, items: ItemRunner = separately('report schedules')) {
    const due = await this.workerSql<{ id: string; tenant_id: string; livemode: boolean }[]>`
      SELECT * FROM worker_due_report_schedules(${now}, ${limit + items.waiting})`;
    return items.each(
      due,
      (schedule) => schedule.id,
      (schedule) =>
        inScope(this.sql, { tenantId: schedule.tenant_id, livemode: schedule.livemode }, async (tx) => {
          const scope = { tenantId: schedule.tenant_id, livemode: schedule.livemode };
          // The row lock makes a second worker wait, then find the schedule no longer due.
          const [row] = await tx<ScheduleRow[]>`
            SELECT * FROM report_schedules WHERE id = ${schedule.id} AND deleted_at IS NULL AND next_run_at <= ${now}
            FOR UPDATE`;
          if (!row) return false;
          const definition = REPORT_DEFINITIONS[row.type];
          const parameters = { ...row.parameters, ...definition.period(row.interval, row.next_run_at) };
          const report = await this.queue(tx, scope, row.type, row.format, parameters, row.id);
          await tx`
            UPDATE report_schedules SET last_run_at = ${now}, last_report_id = ${report.id},
              next_run_at = ${nextRun(row.interval, now)}
            WHERE id = ${row.id}`;
          return true;
        }),
    );
  }
}

/** Who downloaded a report file: the request's principal, for the record kept of every download. */
/**
 * Records a report download inside the transaction that checked the report: the one place an
 * audit trail entry for "report downloaded" belongs (PCI DSS 10.2: data exports are audited).
 */
export async function recordReportDownload(tx: Tx, scope: Scope, report: ReportRow, context: AuditContext) {
  await tx`
    UPDATE reports SET download_count = download_count + 1, last_downloaded_at = now(),
      last_downloaded_by = ${context.actor.id}
    WHERE id = ${report.id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
  await recordAudit(tx, {
    scope,
    context,
    action: 'report.downloaded',
    target: { type: 'report', id: report.id },
    after: toApiReport(report),
  });
}
