import type { Reads } from '../../db/replica.js';
import type { Scope, Sql, Tx } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { PLATFORM_TENANT } from '../users/service.js';
import {
  AMOUNT_METRICS,
  type AnalyticsBreakdown,
  type AnalyticsSummary,
  type AnalyticsTimeseries,
  type BreakdownParams,
  type Figures,
  type Interval,
  type Metric,
  type OperatorBacklog,
  type OperatorProcessorParams,
  type OperatorProcessors,
  type OperatorVolume,
  type OperatorVolumeParams,
  type PeriodParams,
  type TimeseriesParams,
} from './schemas.js';

const HOUR = 3600;
const DAY = 86_400;
/** Hourly series longer than this would be too many points to chart. */
const MAX_HOURLY_SECONDS = 31 * DAY;
const MAX_PERIOD_SECONDS = 2 * 366 * DAY;
const RANGE_SECONDS = { '7d': 7 * DAY, '30d': 30 * DAY, '12m': 365 * DAY } as const;

export interface Period {
  from: number;
  until: number;
}

/** The period a query asks for, in whole UTC hours (the rollups' grain), checked. */
export function resolvePeriod(params: PeriodParams, now: number, interval?: Interval): Period {
  const ceilHour = (t: number) => Math.ceil(t / HOUR) * HOUR;
  let period: Period;
  if (params.from !== undefined) {
    period = { from: Math.floor(params.from / HOUR) * HOUR, until: ceilHour(params.until ?? now) };
  } else {
    if (params.until !== undefined)
      throw ApiError.invalid('parameter_missing', '`until` needs `from`: give both for a custom period.', 'from');
    const range = params.range ?? '30d';
    const until = ceilHour(now);
    period =
      range === 'today' ? { from: Math.floor(now / DAY) * DAY, until } : { from: until - RANGE_SECONDS[range], until };
  }
  if (period.from >= period.until)
    throw ApiError.invalid('analytics_period_invalid', '`until` must be after `from` (whole hours).', 'until');
  if (period.until - period.from > MAX_PERIOD_SECONDS)
    throw ApiError.invalid('analytics_period_too_long', 'A period can be at most 732 days long.', 'from');
  if (interval === 'hour' && period.until - period.from > MAX_HOURLY_SECONDS)
    throw ApiError.invalid(
      'analytics_period_too_long',
      'An hourly series can cover at most 31 days: ask for `interval=day`.',
      'interval',
    );
  return period;
}

const previousOf = ({ from, until }: Period): Period => ({ from: from - (until - from), until: from });

const rate = (part: number, whole: number) => (whole > 0 ? Math.round((part * 10_000) / whole) : null);

const at = (seconds: number) => new Date(seconds * 1000);
const epoch = (date: Date) => Math.floor(date.getTime() / 1000);

/** Bucket starts from `from` to `until`: hours, or UTC days (the first one may begin before `from`). */
function buckets(period: Period, interval: Interval): number[] {
  const step = interval === 'hour' ? HOUR : DAY;
  const starts: number[] = [];
  for (let t = Math.floor(period.from / step) * step; t < period.until; t += step) starts.push(t);
  return starts;
}

/**
 * The payment changes not folded into each rollup yet (migration 040), summed as the rollup's hourly rows. The
 * platform's come through a function: they add up every tenant's changes, which the operator's scope cannot select.
 */
const PENDING_PAYMENT_CHANGES = {
  analytics: 'analytics_changes_hourly',
  analytics_breakdown: 'analytics_changes_breakdown',
  analytics_platform: 'auth_analytics_changes_platform()',
} as const;

/**
 * Moves the payment and processor-attempt changes logged since the last fold into the rollups (migrations 040, 043).
 * REPEATABLE READ: the function's statements must share one snapshot. Returns how many changes it folded.
 */
export async function foldAnalytics(workerSql: Sql): Promise<number> {
  const [{ folded }] = await workerSql.begin(
    'isolation level repeatable read',
    (tx) => tx<{ folded: number }[]>`SELECT worker_fold_analytics()::int AS folded`,
  );
  return folded;
}

/**
 * One pass of the worker's fold loop: the fold, then, when it moved anything, a VACUUM of the change logs (the worker
 * owns them, migrate.ts). Every fold deletes the whole log; until a vacuum marks those pages free, the triggers append
 * on new pages and the next fold, and every read, scans the dead ones too. Vacuumed every 30 seconds, the payments'
 * log would reach about 1,000 pages at 1,000 payments/s (three rows each); vacuumed after every fold, it stays at what
 * half a second of payments fills (migration 043 keeps the vacuum from truncating it, which would lock out the
 * triggers' inserts). Returns what the fold moved.
 */
export async function foldAnalyticsLogs(workerSql: Sql): Promise<number> {
  const folded = await foldAnalytics(workerSql);
  if (folded > 0) await workerSql.unsafe('VACUUM analytics_payment_changes, analytics_attempt_changes');
  return folded;
}

/**
 * Sums a period of a rollup kept both hourly and daily: its whole UTC days from the daily table, the hours before
 * the first and after the last whole day from the hourly one (all of it from the hourly one for an hourly series, or
 * when the period holds no whole day). A year reads a row per day instead of 24. A daily row holds only what the
 * compaction folded (slot 0, migration 038): the whole days also take the hourly rows of other slots, the few not
 * compacted yet; and every hour of the period takes the payment changes not folded yet (040). `select` may use `$t`
 * (the row's hour or day); `where` may use $5 onwards ($1 to $4 being the bounds), `groupBy` whatever `select` names.
 */
function sumPeriod<Row extends object>(
  tx: Tx,
  table: 'analytics' | 'analytics_breakdown' | 'analytics_platform',
  period: Period,
  query: { hours?: boolean; select: string; where: string; parameters: (string | boolean | null)[]; groupBy: string },
): Promise<Row[]> {
  let firstDay = Math.ceil(period.from / DAY) * DAY;
  let lastDay = Math.floor(period.until / DAY) * DAY;
  if (query.hours || lastDay <= firstDay) firstDay = lastDay = period.until;
  const part = (
    time: 'hour' | 'day',
    range: string,
    slots = '',
    from = `${table}_${time === 'hour' ? 'hourly' : 'daily'}`,
  ) =>
    `SELECT ${query.select.replaceAll('$t', time)} FROM ${from}
      WHERE ${query.where}${slots} AND ${time} >= ${range} GROUP BY ${query.groupBy.replaceAll('$t', time)}`;
  return tx.unsafe<Row[]>(
    `${part('hour', '$1 AND hour < $2')}
    UNION ALL ${part('day', '$2 AND day < $3', ' AND slot = 0')}
    UNION ALL ${part('hour', '$2 AND hour < $3', ' AND slot <> 0')}
    UNION ALL ${part('hour', '$3 AND hour < $4')}
    UNION ALL ${part('hour', '$1 AND hour < $4', '', PENDING_PAYMENT_CHANGES[table])}`,
    [at(period.from), at(firstDay), at(lastDay), at(period.until), ...query.parameters],
  );
}

const HOURLY_COUNTERS = [
  'payments_count',
  'payments_amount',
  'approved_count',
  'declined_count',
  'canceled_count',
  'captured_amount',
  'fees',
  'refunds_count',
  'refunds_amount',
  'disputes_count',
  'disputes_amount',
  'disputes_lost_count',
  'disputes_lost_amount',
  'fraud_disputes_count',
  'fraud_disputes_amount',
] as const;
type Sums = Record<(typeof HOURLY_COUNTERS)[number], number>;
const ZERO: Sums = Object.fromEntries(HOURLY_COUNTERS.map((c) => [c, 0])) as Sums;
const SUM_COUNTERS = HOURLY_COUNTERS.map((c) => `sum(${c})::bigint AS ${c}`).join(', ');

/** Adds rows of sums (the parts of a period) by key. */
function addUp<Row extends object>(rows: Row[], key: (row: Row) => string, counters: readonly (keyof Row)[]) {
  const totals = new Map<string, Row>();
  for (const row of rows) {
    const k = key(row);
    const total = totals.get(k);
    if (!total) totals.set(k, { ...row });
    else for (const c of counters) (total[c] as number) += row[c] as number;
  }
  return [...totals.values()];
}

function figures(currency: string, s: Sums): Figures {
  return {
    currency,
    count: s.payments_count,
    amount: s.payments_amount,
    approved_count: s.approved_count,
    declined_count: s.declined_count,
    canceled_count: s.canceled_count,
    approval_rate_bps: rate(s.approved_count, s.approved_count + s.declined_count),
    volume: s.captured_amount,
    fees: s.fees,
    refunds_count: s.refunds_count,
    refunds_amount: s.refunds_amount,
    disputes_count: s.disputes_count,
    disputes_amount: s.disputes_amount,
    disputes_lost_count: s.disputes_lost_count,
    disputes_lost_amount: s.disputes_lost_amount,
    fraud_disputes_count: s.fraud_disputes_count,
    fraud_disputes_amount: s.fraud_disputes_amount,
    fraud_rate_bps: rate(s.fraud_disputes_amount, s.captured_amount),
    net: s.captured_amount - s.fees - s.refunds_amount - s.disputes_lost_amount,
  };
}

function metricOf(metric: Metric, f: Figures): number | null {
  return metric === 'count' ? f.count : metric === 'amount' ? f.amount : f[metric];
}

interface BreakdownSums {
  value: string;
  count: number;
  approved: number;
  declined: number;
  amount: number;
  volume: number;
}
const BREAKDOWN_SUMS = `sum(payments_count)::bigint AS count, sum(approved_count)::bigint AS approved,
  sum(declined_count)::bigint AS declined, sum(payments_amount)::bigint AS amount,
  sum(captured_amount)::bigint AS volume`;

const byCountThenValue = (x: BreakdownSums, y: BreakdownSums) =>
  y.count - x.count || y.declined - x.declined || (x.value < y.value ? -1 : 1);

/**
 * Analytics read from the rollups of migration 035 (kept by triggers as payments, refunds, disputes and processor
 * attempts change), never from the base tables: a year of a busy account is a few thousand rows.
 */
/** How many tenants the review backlog names, longest-waiting first. */
const BACKLOG_TENANTS = 100;

export class AnalyticsService {
  constructor(
    private readonly reads: Reads,
    /** The primary, for the operator's cross-tenant function (an auth_* function, outside any tenant scope). */
    private readonly sql: Sql,
    private readonly now: () => number = Date.now,
  ) {}

  private nowSeconds() {
    return Math.floor(this.now() / 1000);
  }

  async summary(scope: Scope, params: PeriodParams): Promise<AnalyticsSummary> {
    const period = resolvePeriod(params, this.nowSeconds());
    const currency = params.currency?.toLowerCase();
    return this.reads.inScope(scope, async (tx) => ({
      object: 'analytics.summary',
      ...(await this.summaryOf(tx, scope, period, currency)),
      currency: currency ?? null,
      livemode: scope.livemode,
      ...(params.compare ? { previous: await this.summaryOf(tx, scope, previousOf(period), currency) } : {}),
    }));
  }

  private tenantSums(tx: Tx, scope: Scope, period: Period, currency: string | undefined, bucket?: Interval) {
    // Grouped by currency, and by the bucket's start when a series is asked for.
    const start = bucket ? `date_trunc('${bucket}', $t, 'UTC')` : `'epoch'::timestamptz`;
    return sumPeriod<Sums & { currency: string; bucket: Date }>(tx, 'analytics', period, {
      hours: bucket === 'hour',
      select: `currency, ${start} AS bucket, ${SUM_COUNTERS}`,
      where: 'tenant_id = $5 AND livemode = $6 AND ($7::text IS NULL OR currency = $7)',
      parameters: [scope.tenantId, scope.livemode, currency ?? null],
      groupBy: `currency, ${start}`,
    });
  }

  private async summaryOf(tx: Tx, scope: Scope, period: Period, currency: string | undefined) {
    const rows = addUp(await this.tenantSums(tx, scope, period, currency), (r) => r.currency, HOURLY_COUNTERS)
      .filter((r) => r.payments_count !== 0 || r.refunds_count !== 0 || r.disputes_count !== 0)
      .sort((x, y) => (x.currency < y.currency ? -1 : 1));
    const reasons = (await this.breakdownSums(tx, scope, period, 'decline_code', currency))
      .filter((r) => r.declined !== 0)
      .map((r) => ({ reason: r.value, count: r.declined }));
    return { ...period, data: rows.map((r) => figures(r.currency, r)), decline_reasons: reasons };
  }

  async timeseries(scope: Scope, params: TimeseriesParams): Promise<AnalyticsTimeseries> {
    const interval = params.interval ?? 'day';
    const period = resolvePeriod(params, this.nowSeconds(), interval);
    const currency = params.currency?.toLowerCase();
    if (!currency && (AMOUNT_METRICS as readonly string[]).includes(params.metric))
      throw ApiError.invalid(
        'parameter_missing',
        `The metric ${params.metric} is an amount: name its \`currency\` (amounts in different currencies do not add up).`,
        'currency',
      );
    return this.reads.inScope(scope, async (tx) => ({
      object: 'analytics.timeseries',
      metric: params.metric,
      interval,
      currency: currency ?? null,
      livemode: scope.livemode,
      ...(await this.seriesOf(tx, scope, period, interval, params.metric, currency)),
      ...(params.compare
        ? { previous: await this.seriesOf(tx, scope, previousOf(period), interval, params.metric, currency) }
        : {}),
    }));
  }

  private async seriesOf(
    tx: Tx,
    scope: Scope,
    period: Period,
    interval: Interval,
    metric: Metric,
    currency: string | undefined,
  ) {
    const rows = addUp(
      await this.tenantSums(tx, scope, period, currency, interval),
      (r) => String(epoch(r.bucket)),
      HOURLY_COUNTERS,
    );
    const byStart = new Map(rows.map((row) => [epoch(row.bucket), row]));
    return {
      ...period,
      data: buckets(period, interval).map((start) => ({
        start,
        value: metricOf(metric, figures(currency ?? '', byStart.get(start) ?? ZERO)),
      })),
    };
  }

  async breakdown(scope: Scope, params: BreakdownParams): Promise<AnalyticsBreakdown> {
    const period = resolvePeriod(params, this.nowSeconds());
    const currency = params.currency?.toLowerCase();
    return this.reads.inScope(scope, async (tx) => ({
      object: 'analytics.breakdown',
      dimension: params.dimension,
      currency: currency ?? null,
      livemode: scope.livemode,
      ...(await this.breakdownOf(tx, scope, period, params.dimension, currency)),
      ...(params.compare
        ? { previous: await this.breakdownOf(tx, scope, previousOf(period), params.dimension, currency) }
        : {}),
    }));
  }

  /** Payments of a period by brand, country or decline reason, most frequent first. */
  private async breakdownSums(
    tx: Tx,
    scope: Scope,
    period: Period,
    dimension: 'brand' | 'country' | 'decline_code',
    currency: string | undefined,
  ): Promise<BreakdownSums[]> {
    const parts = await sumPeriod<BreakdownSums>(tx, 'analytics_breakdown', period, {
      select: `value, ${BREAKDOWN_SUMS}`,
      where: 'tenant_id = $5 AND livemode = $6 AND dimension = $7 AND ($8::text IS NULL OR currency = $8)',
      parameters: [scope.tenantId, scope.livemode, dimension, currency ?? null],
      groupBy: 'value',
    });
    return addUp(parts, (r) => r.value, ['count', 'approved', 'declined', 'amount', 'volume'])
      .filter((r) => r.count !== 0)
      .sort(byCountThenValue);
  }

  private async breakdownOf(
    tx: Tx,
    scope: Scope,
    period: Period,
    dimension: BreakdownParams['dimension'],
    currency: string | undefined,
  ) {
    const rows =
      dimension === 'currency'
        ? addUp(await this.tenantSums(tx, scope, period, currency), (r) => r.currency, HOURLY_COUNTERS)
            .map((r) => ({
              value: r.currency,
              count: r.payments_count,
              approved: r.approved_count,
              declined: r.declined_count,
              amount: r.payments_amount,
              volume: r.captured_amount,
            }))
            .filter((r) => r.count !== 0)
            .sort(byCountThenValue)
        : await this.breakdownSums(tx, scope, period, dimension, currency);
    // Amounts add up within one currency only: across currencies (by brand, country or reason without
    // `currency`) they are null.
    const single = dimension === 'currency' || currency !== undefined;
    return {
      ...period,
      data: rows.map((r) => ({
        value: r.value,
        count: r.count,
        approved_count: r.approved,
        declined_count: r.declined,
        approval_rate_bps: rate(r.approved, r.approved + r.declined),
        amount: single ? r.amount : null,
        volume: single ? r.volume : null,
      })),
    };
  }

  /** The operator's view: every tenant together, from the platform's own rollup rows. */
  async platformVolume(params: OperatorVolumeParams): Promise<OperatorVolume> {
    const interval = params.interval ?? 'day';
    const period = resolvePeriod(params, this.nowSeconds(), interval);
    const currency = params.currency?.toLowerCase();
    const livemode = params.livemode ?? false;
    const start = `date_trunc('${interval}', $t, 'UTC')`;
    const parts = await this.reads.inScope({ tenantId: PLATFORM_TENANT, livemode }, (tx) =>
      sumPeriod<BreakdownSums & { bucket: Date }>(tx, 'analytics_platform', period, {
        hours: interval === 'hour',
        select: `${start} AS bucket, currency AS value, ${BREAKDOWN_SUMS}`,
        where: 'tenant_id = $5 AND livemode = $6 AND ($7::text IS NULL OR currency = $7)',
        parameters: [PLATFORM_TENANT, livemode, currency ?? null],
        groupBy: `${start}, currency`,
      }),
    );
    const rows = addUp(parts, (r) => `${epoch(r.bucket)} ${r.value}`, [
      'count',
      'approved',
      'declined',
      'amount',
      'volume',
    ])
      .filter((r) => r.count !== 0)
      .sort((x, y) => x.bucket.getTime() - y.bucket.getTime() || (x.value < y.value ? -1 : 1));
    return {
      object: 'analytics.platform_volume',
      interval,
      currency: currency ?? null,
      livemode,
      ...period,
      data: rows.map((r) => ({
        start: epoch(r.bucket),
        currency: r.value,
        count: r.count,
        approved_count: r.approved,
        declined_count: r.declined,
        approval_rate_bps: rate(r.approved, r.approved + r.declined),
        amount: r.amount,
        volume: r.volume,
      })),
    };
  }

  async processorHealth(params: OperatorProcessorParams): Promise<OperatorProcessors> {
    const interval = params.interval ?? 'day';
    const period = resolvePeriod(params, this.nowSeconds(), interval);
    const livemode = params.livemode ?? false;
    const rows = await this.reads.inScope(
      { tenantId: PLATFORM_TENANT, livemode },
      (tx) => tx<
        {
          bucket: Date;
          processor: string;
          attempts: number;
          succeeded: number;
          declined: number;
          errors: number;
          pending: number;
          completed: number;
          latency: number;
        }[]
      >`
        SELECT date_trunc(${interval}, hour, 'UTC') AS bucket, processor, sum(attempts)::bigint AS attempts,
          sum(succeeded)::bigint AS succeeded, sum(declined)::bigint AS declined, sum(errors)::bigint AS errors,
          sum(pending)::bigint AS pending, sum(completed)::bigint AS completed, sum(latency_ms_sum)::bigint AS latency
        FROM (
          SELECT * FROM analytics_processor_hourly
          UNION ALL
          -- The attempts' changes not folded yet (migration 043).
          SELECT tenant_id, livemode, hour, processor, 0, attempts, succeeded, declined, errors, pending, completed,
            latency_ms_sum FROM analytics_attempt_changes_hourly
        ) r
        WHERE tenant_id = ${PLATFORM_TENANT} AND livemode = ${livemode}
          AND hour >= ${at(period.from)} AND hour < ${at(period.until)}
        GROUP BY 1, 2 HAVING sum(attempts) <> 0 ORDER BY 1, 2`,
    );
    return {
      object: 'analytics.processor_health',
      interval,
      livemode,
      ...period,
      data: rows.map((r) => ({
        start: epoch(r.bucket),
        processor: r.processor,
        attempts: r.attempts,
        succeeded: r.succeeded,
        declined: r.declined,
        errors: r.errors,
        pending: r.pending,
        error_rate_bps: rate(r.errors, r.attempts),
        average_latency_ms: r.completed > 0 ? Math.round(r.latency / r.completed) : null,
      })),
    };
  }

  async reviewBacklog(params: { livemode?: boolean }): Promise<OperatorBacklog> {
    const livemode = params.livemode ?? false;
    const [row] = await this.reads.inScope(
      { tenantId: PLATFORM_TENANT, livemode },
      (tx) => tx<{ open: number }[]>`
        SELECT coalesce(sum(open_reviews), 0)::bigint AS open FROM analytics_platform_reviews
        WHERE tenant_id = ${PLATFORM_TENANT} AND livemode = ${livemode}`,
    );
    // Per tenant from the open reviews themselves (a partial index holds only those), through the operator's function.
    const tenants = await this.sql<
      { tenant_id: string; tenant_name: string; open_reviews: number; oldest_opened_at: Date }[]
    >`
      SELECT * FROM auth_operator_review_backlog(${livemode}, ${BACKLOG_TENANTS})`;
    return {
      object: 'analytics.review_backlog',
      livemode,
      open_reviews: row.open,
      tenants: tenants.map((t) => ({
        tenant: t.tenant_id,
        tenant_name: t.tenant_name,
        open_reviews: t.open_reviews,
        oldest_opened: Math.floor(t.oldest_opened_at.getTime() / 1000),
      })),
    };
  }
}
