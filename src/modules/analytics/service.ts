import { stringify } from 'csv-stringify/sync';
import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
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

interface HourlySums {
  currency: string;
  payments_count: number;
  payments_amount: number;
  approved_count: number;
  declined_count: number;
  canceled_count: number;
  captured_amount: number;
  fees: number;
  refunds_count: number;
  refunds_amount: number;
  disputes_count: number;
  disputes_amount: number;
  disputes_lost_count: number;
  disputes_lost_amount: number;
  fraud_disputes_count: number;
  fraud_disputes_amount: number;
}

function figures(s: HourlySums): Figures {
  return {
    currency: s.currency,
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
  switch (metric) {
    case 'count':
      return f.count;
    case 'amount':
      return f.amount;
    default:
      return f[metric];
  }
}

const SUMS = `sum(payments_count)::bigint AS payments_count, sum(payments_amount)::bigint AS payments_amount,
  sum(approved_count)::bigint AS approved_count, sum(declined_count)::bigint AS declined_count,
  sum(canceled_count)::bigint AS canceled_count, sum(captured_amount)::bigint AS captured_amount,
  sum(fees)::bigint AS fees, sum(refunds_count)::bigint AS refunds_count, sum(refunds_amount)::bigint AS refunds_amount,
  sum(disputes_count)::bigint AS disputes_count, sum(disputes_amount)::bigint AS disputes_amount,
  sum(disputes_lost_count)::bigint AS disputes_lost_count, sum(disputes_lost_amount)::bigint AS disputes_lost_amount,
  sum(fraud_disputes_count)::bigint AS fraud_disputes_count,
  sum(fraud_disputes_amount)::bigint AS fraud_disputes_amount`;

const ZERO_SUMS: Omit<HourlySums, 'currency'> = {
  payments_count: 0,
  payments_amount: 0,
  approved_count: 0,
  declined_count: 0,
  canceled_count: 0,
  captured_amount: 0,
  fees: 0,
  refunds_count: 0,
  refunds_amount: 0,
  disputes_count: 0,
  disputes_amount: 0,
  disputes_lost_count: 0,
  disputes_lost_amount: 0,
  fraud_disputes_count: 0,
  fraud_disputes_amount: 0,
};

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
 * Analytics read from the rollups of migration 035 (kept by triggers as payments, refunds, disputes and processor
 * attempts change), never from the base tables: a year of a busy account is a few tens of thousands of rows.
 */
export class AnalyticsService {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number = Date.now,
  ) {}

  private nowSeconds() {
    return Math.floor(this.now() / 1000);
  }

  private currencyOf(params: { currency?: string }) {
    return params.currency?.toLowerCase();
  }

  async summary(scope: Scope, params: PeriodParams): Promise<AnalyticsSummary> {
    const period = resolvePeriod(params, this.nowSeconds());
    const currency = this.currencyOf(params);
    return inScope(this.sql, scope, async (tx) => {
      const current = await this.summaryOf(tx, scope, period, currency);
      return {
        object: 'analytics.summary',
        ...current,
        currency: currency ?? null,
        livemode: scope.livemode,
        ...(params.compare ? { previous: await this.summaryOf(tx, scope, previousOf(period), currency) } : {}),
      };
    });
  }

  private async summaryOf(tx: Tx, scope: Scope, period: Period, currency: string | undefined) {
    const rows = await tx.unsafe<HourlySums[]>(
      `SELECT currency, ${SUMS} FROM analytics_hourly
      WHERE tenant_id = $1 AND livemode = $2 AND hour >= $3 AND hour < $4 AND ($5::text IS NULL OR currency = $5)
      GROUP BY currency
      HAVING sum(payments_count) <> 0 OR sum(refunds_count) <> 0 OR sum(disputes_count) <> 0
      ORDER BY currency`,
      [scope.tenantId, scope.livemode, at(period.from), at(period.until), currency ?? null],
    );
    const reasons = await tx<{ reason: string; count: number }[]>`
      SELECT value AS reason, sum(declined_count)::bigint AS count FROM analytics_breakdown_hourly
      WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND dimension = 'decline_code'
        AND hour >= ${at(period.from)} AND hour < ${at(period.until)}
        AND (${currency ?? null}::text IS NULL OR currency = ${currency ?? null})
      GROUP BY value HAVING sum(declined_count) <> 0 ORDER BY 2 DESC, 1`;
    return { ...period, data: rows.map(figures), decline_reasons: [...reasons] };
  }

  async timeseries(scope: Scope, params: TimeseriesParams): Promise<AnalyticsTimeseries> {
    const interval = params.interval ?? 'day';
    const period = resolvePeriod(params, this.nowSeconds(), interval);
    const currency = this.currencyOf(params);
    if (!currency && (AMOUNT_METRICS as readonly string[]).includes(params.metric))
      throw ApiError.invalid(
        'parameter_missing',
        `The metric ${params.metric} is an amount: name its \`currency\` (amounts in different currencies do not add up).`,
        'currency',
      );
    return inScope(this.sql, scope, async (tx) => ({
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
    const rows = await tx.unsafe<(HourlySums & { bucket: Date })[]>(
      `SELECT date_trunc($6, hour, 'UTC') AS bucket, '' AS currency, ${SUMS} FROM analytics_hourly
      WHERE tenant_id = $1 AND livemode = $2 AND hour >= $3 AND hour < $4 AND ($5::text IS NULL OR currency = $5)
      GROUP BY 1`,
      [scope.tenantId, scope.livemode, at(period.from), at(period.until), currency ?? null, interval],
    );
    const byStart = new Map(rows.map((row) => [epoch(row.bucket), row]));
    return {
      ...period,
      data: buckets(period, interval).map((start) => ({
        start,
        value: metricOf(metric, figures(byStart.get(start) ?? { currency: '', ...ZERO_SUMS })),
      })),
    };
  }

  async breakdown(scope: Scope, params: BreakdownParams): Promise<AnalyticsBreakdown> {
    const period = resolvePeriod(params, this.nowSeconds());
    const currency = this.currencyOf(params);
    return inScope(this.sql, scope, async (tx) => ({
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

  private async breakdownOf(
    tx: Tx,
    scope: Scope,
    period: Period,
    dimension: BreakdownParams['dimension'],
    currency: string | undefined,
  ) {
    // Amounts add up within one currency only: across currencies (no `currency`, by brand, country or reason)
    // they are null.
    const single = dimension === 'currency' || currency !== undefined;
    const rows =
      dimension === 'currency'
        ? await tx<
            { value: string; count: number; approved: number; declined: number; amount: number; volume: number }[]
          >`
          SELECT currency AS value, sum(payments_count)::bigint AS count, sum(approved_count)::bigint AS approved,
            sum(declined_count)::bigint AS declined, sum(payments_amount)::bigint AS amount,
            sum(captured_amount)::bigint AS volume
          FROM analytics_hourly
          WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
            AND hour >= ${at(period.from)} AND hour < ${at(period.until)}
            AND (${currency ?? null}::text IS NULL OR currency = ${currency ?? null})
          GROUP BY currency HAVING sum(payments_count) <> 0 ORDER BY 2 DESC, 1`
        : await tx<
            { value: string; count: number; approved: number; declined: number; amount: number; volume: number }[]
          >`
          SELECT value, sum(payments_count)::bigint AS count, sum(approved_count)::bigint AS approved,
            sum(declined_count)::bigint AS declined, sum(payments_amount)::bigint AS amount,
            sum(captured_amount)::bigint AS volume
          FROM analytics_breakdown_hourly
          WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND dimension = ${dimension}
            AND hour >= ${at(period.from)} AND hour < ${at(period.until)}
            AND (${currency ?? null}::text IS NULL OR currency = ${currency ?? null})
          GROUP BY value HAVING sum(payments_count) <> 0 ORDER BY 2 DESC, 1`;
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
    const currency = this.currencyOf(params);
    const livemode = params.livemode ?? false;
    const scope = { tenantId: PLATFORM_TENANT, livemode };
    const rows = await inScope(
      this.sql,
      scope,
      (tx) => tx<
        {
          bucket: Date;
          currency: string;
          count: number;
          approved: number;
          declined: number;
          amount: number;
          volume: number;
        }[]
      >`
        SELECT date_trunc(${interval}, hour, 'UTC') AS bucket, currency, sum(payments_count)::bigint AS count,
          sum(approved_count)::bigint AS approved, sum(declined_count)::bigint AS declined,
          sum(payments_amount)::bigint AS amount, sum(captured_amount)::bigint AS volume
        FROM analytics_platform_hourly
        WHERE tenant_id = ${PLATFORM_TENANT} AND livemode = ${livemode}
          AND hour >= ${at(period.from)} AND hour < ${at(period.until)}
          AND (${currency ?? null}::text IS NULL OR currency = ${currency ?? null})
        GROUP BY 1, 2 HAVING sum(payments_count) <> 0 ORDER BY 1, 2`,
    );
    return {
      object: 'analytics.platform_volume',
      interval,
      currency: currency ?? null,
      livemode,
      ...period,
      data: rows.map((r) => ({
        start: epoch(r.bucket),
        currency: r.currency,
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
    const rows = await inScope(
      this.sql,
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
        FROM analytics_processor_hourly
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
    const [row] = await inScope(
      this.sql,
      { tenantId: PLATFORM_TENANT, livemode },
      (tx) => tx<{ open: number }[]>`
        SELECT coalesce(sum(open_reviews), 0)::bigint AS open FROM analytics_platform_reviews
        WHERE tenant_id = ${PLATFORM_TENANT} AND livemode = ${livemode}`,
    );
    return { object: 'analytics.review_backlog', livemode, open_reviews: row.open };
  }
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** The numbers of an analytics answer as CSV, one line per figure row, `period` telling current from previous. */
export const analyticsCsv = {
  summary(s: AnalyticsSummary): string {
    const periods = [{ name: 'current', ...s }, ...(s.previous ? [{ name: 'previous', ...s.previous }] : [])];
    return stringify(
      periods.flatMap((p) => p.data.map((f) => ({ period: p.name, from: iso(p.from), until: iso(p.until), ...f }))),
      { header: true, columns: ['period', 'from', 'until', ...Object.keys(FIGURE_COLUMNS)] },
    );
  },
  timeseries(t: AnalyticsTimeseries): string {
    const periods = [{ name: 'current', ...t }, ...(t.previous ? [{ name: 'previous', ...t.previous }] : [])];
    return stringify(
      periods.flatMap((p) => p.data.map((point) => [p.name, iso(point.start), point.value])),
      { header: true, columns: ['period', 'start', t.metric] },
    );
  },
  breakdown(b: AnalyticsBreakdown): string {
    const periods = [{ name: 'current', ...b }, ...(b.previous ? [{ name: 'previous', ...b.previous }] : [])];
    return stringify(
      periods.flatMap((p) => p.data.map((row) => ({ period: p.name, ...row }))),
      {
        header: true,
        columns: [
          'period',
          'value',
          'count',
          'approved_count',
          'declined_count',
          'approval_rate_bps',
          'amount',
          'volume',
        ],
      },
    );
  },
  platformVolume(v: OperatorVolume): string {
    return stringify(
      v.data.map((row) => ({ ...row, start: iso(row.start) })),
      {
        header: true,
        columns: [
          'start',
          'currency',
          'count',
          'approved_count',
          'declined_count',
          'approval_rate_bps',
          'amount',
          'volume',
        ],
      },
    );
  },
  processorHealth(h: OperatorProcessors): string {
    return stringify(
      h.data.map((row) => ({ ...row, start: iso(row.start) })),
      {
        header: true,
        columns: [
          'start',
          'processor',
          'attempts',
          'succeeded',
          'declined',
          'errors',
          'pending',
          'error_rate_bps',
          'average_latency_ms',
        ],
      },
    );
  },
};

const FIGURE_COLUMNS: Record<keyof Figures, true> = {
  currency: true,
  count: true,
  amount: true,
  approved_count: true,
  declined_count: true,
  canceled_count: true,
  approval_rate_bps: true,
  volume: true,
  fees: true,
  refunds_count: true,
  refunds_amount: true,
  disputes_count: true,
  disputes_amount: true,
  disputes_lost_count: true,
  disputes_lost_amount: true,
  fraud_disputes_count: true,
  fraud_disputes_amount: true,
  fraud_rate_bps: true,
  net: true,
};
