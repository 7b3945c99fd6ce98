import { Type, type Static } from 'typebox';
import { MAX_TIMESTAMP, Nullable, StrictObject } from '../../http/schemas.js';

export const RANGES = ['today', '7d', '30d', '12m'] as const;
export type Range = (typeof RANGES)[number];
export const INTERVALS = ['hour', 'day'] as const;
export type Interval = (typeof INTERVALS)[number];

/** Metrics counted across currencies; the others are money and need `currency`. */
export const COUNT_METRICS = [
  'count',
  'approved_count',
  'declined_count',
  'approval_rate_bps',
  'refunds_count',
  'disputes_count',
  'fraud_rate_bps',
] as const;
export const AMOUNT_METRICS = ['volume', 'amount', 'fees', 'net', 'refunds_amount', 'disputes_amount'] as const;
export const METRICS = [...COUNT_METRICS, ...AMOUNT_METRICS] as const;
export type Metric = (typeof METRICS)[number];

export const DIMENSIONS = ['brand', 'country', 'currency', 'decline_code'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** One of a fixed list of strings, as an OpenAPI enum. */
const oneOf = <T extends readonly string[]>(values: T, description: string) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], description });

const seconds = (description: string) => Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP, description });
const count = (description: string) => Type.Integer({ description });
const money = (description: string) => Type.Integer({ description: `${description} In minor units.` });
const bps = (description: string) =>
  Nullable(
    Type.Integer({
      description: `${description} In basis points (1/100 of a percent); null with nothing to divide by.`,
    }),
  );

/** The period every analytics query covers; figures are kept per UTC hour. */
const PeriodQuery = {
  range: Type.Optional(
    oneOf(
      RANGES,
      'A period ending now: `today` (since 00:00 UTC), `7d`, `30d` or `12m` (365 days). Ignored when `from` is ' +
        'given. Default `30d`.',
    ),
  ),
  from: Type.Optional(seconds('Start of a custom period (Unix seconds), rounded down to the hour.')),
  until: Type.Optional(
    seconds('End of a custom period (Unix seconds, exclusive), rounded up to the hour. Default now.'),
  ),
  currency: Type.Optional(
    Type.String({
      pattern: '^[a-zA-Z]{3}$',
      description: 'Only this currency (ISO 4217). Required for money metrics.',
    }),
  ),
  compare: Type.Optional(
    Type.Literal('previous', { description: '`previous`: also the period of the same length just before.' }),
  ),
};

export const SummaryQuery = StrictObject(PeriodQuery);
export const TimeseriesQuery = StrictObject({
  ...PeriodQuery,
  metric: oneOf(METRICS, 'What to chart.'),
  interval: Type.Optional(oneOf(INTERVALS, 'Bucket size, UTC. Default `day`; `hour` for periods of up to 31 days.')),
});
export const BreakdownQuery = StrictObject({
  ...PeriodQuery,
  dimension: oneOf(DIMENSIONS, 'Card brand, card country, currency, or decline reason (declined payments only).'),
});

const operatorQuery = {
  livemode: Type.Optional(Type.Boolean({ description: 'Live or test payments. Default false (test).' })),
};
export const OperatorVolumeQuery = StrictObject({
  ...PeriodQuery,
  ...operatorQuery,
  interval: TimeseriesQuery.properties.interval,
});
export const OperatorProcessorQuery = StrictObject({
  range: PeriodQuery.range,
  from: PeriodQuery.from,
  until: PeriodQuery.until,
  ...operatorQuery,
  interval: TimeseriesQuery.properties.interval,
});
export const OperatorBacklogQuery = StrictObject(operatorQuery);

export type PeriodParams = Static<typeof SummaryQuery>;
export type TimeseriesParams = Static<typeof TimeseriesQuery>;
export type BreakdownParams = Static<typeof BreakdownQuery>;
export type OperatorVolumeParams = Static<typeof OperatorVolumeQuery>;
export type OperatorProcessorParams = Static<typeof OperatorProcessorQuery>;

const Period = {
  from: Type.Integer({ description: 'Start of the period covered (Unix seconds, on the hour).' }),
  until: Type.Integer({ description: 'End of the period covered (Unix seconds, exclusive, on the hour).' }),
};

export const FiguresSchema = Type.Object({
  currency: Type.String(),
  count: count('Payments created in the period.'),
  amount: money('Their amounts.'),
  approved_count: count('Payments authorized (`requires_capture` or `succeeded`).'),
  declined_count: count(
    'Payments whose last authorization was declined or failed (`requires_payment_method` with `last_payment_error`).',
  ),
  canceled_count: count('Payments canceled.'),
  approval_rate_bps: bps('approved_count / (approved_count + declined_count).'),
  volume: money('Captured (`amount_received`).'),
  fees: money('Our fees on the captures.'),
  refunds_count: count('Refunds that succeeded, created in the period.'),
  refunds_amount: money('Their amounts.'),
  disputes_count: count('Disputes opened in the period.'),
  disputes_amount: money('Their amounts.'),
  disputes_lost_count: count('Of them, lost.'),
  disputes_lost_amount: money('Their amounts.'),
  fraud_disputes_count: count('Disputes opened for reason `fraudulent`.'),
  fraud_disputes_amount: money('Their amounts.'),
  fraud_rate_bps: bps('fraud_disputes_amount / volume: fraud per 10,000 of captured volume.'),
  net: money('volume − fees − refunds_amount − disputes_lost_amount.'),
});
export type Figures = Static<typeof FiguresSchema>;

const DeclineReason = Type.Object({ reason: Type.String(), count: Type.Integer() });

const SummaryPeriod = Type.Object({
  ...Period,
  data: Type.Array(FiguresSchema, { description: 'One entry per currency (only `currency` when given), sorted.' }),
  decline_reasons: Type.Array(DeclineReason, { description: 'Declined payments by reason, most frequent first.' }),
});

export const AnalyticsSummarySchema = Type.Object(
  {
    object: Type.Literal('analytics.summary'),
    ...SummaryPeriod.properties,
    currency: Nullable(Type.String()),
    livemode: Type.Boolean(),
    previous: Type.Optional(SummaryPeriod),
  },
  { $id: 'AnalyticsSummary' },
);
export type AnalyticsSummary = Static<typeof AnalyticsSummarySchema>;

const Point = Type.Object({
  start: Type.Integer({ description: 'Start of the bucket (Unix seconds, UTC).' }),
  value: Nullable(
    Type.Integer({ description: 'The metric in the bucket; null for a rate with nothing to divide by.' }),
  ),
});
const Series = Type.Object({ ...Period, data: Type.Array(Point) });

export const AnalyticsTimeseriesSchema = Type.Object(
  {
    object: Type.Literal('analytics.timeseries'),
    metric: Type.String(),
    interval: Type.String(),
    currency: Nullable(Type.String()),
    livemode: Type.Boolean(),
    ...Series.properties,
    previous: Type.Optional(Series),
  },
  { $id: 'AnalyticsTimeseries' },
);
export type AnalyticsTimeseries = Static<typeof AnalyticsTimeseriesSchema>;

export const BreakdownRowSchema = Type.Object({
  value: Type.String({ description: 'The brand, country, currency or decline reason; `unknown` when not known.' }),
  count: count('Payments created in the period.'),
  approved_count: count('Of them, authorized.'),
  declined_count: count('Of them, declined.'),
  approval_rate_bps: bps('approved_count / (approved_count + declined_count).'),
  amount: Nullable(money('Their amounts; null across currencies.')),
  volume: Nullable(money('Captured; null across currencies.')),
});
const Breakdown = Type.Object({ ...Period, data: Type.Array(BreakdownRowSchema) });

export const AnalyticsBreakdownSchema = Type.Object(
  {
    object: Type.Literal('analytics.breakdown'),
    dimension: Type.String(),
    currency: Nullable(Type.String()),
    livemode: Type.Boolean(),
    ...Breakdown.properties,
    previous: Type.Optional(Breakdown),
  },
  { $id: 'AnalyticsBreakdown' },
);
export type AnalyticsBreakdown = Static<typeof AnalyticsBreakdownSchema>;

const VolumePoint = Type.Object({
  start: Type.Integer(),
  currency: Type.String(),
  count: Type.Integer(),
  approved_count: Type.Integer(),
  declined_count: Type.Integer(),
  approval_rate_bps: bps('approved_count / (approved_count + declined_count).'),
  amount: money('Amounts of the payments created.'),
  volume: money('Captured.'),
});
export const OperatorVolumeSchema = Type.Object(
  {
    object: Type.Literal('analytics.platform_volume'),
    interval: Type.String(),
    currency: Nullable(Type.String()),
    livemode: Type.Boolean(),
    ...Period,
    data: Type.Array(VolumePoint, {
      description: 'Every tenant together, per bucket and currency (buckets with payments only).',
    }),
  },
  { $id: 'AnalyticsPlatformVolume' },
);
export type OperatorVolume = Static<typeof OperatorVolumeSchema>;

const ProcessorPoint = Type.Object({
  start: Type.Integer(),
  processor: Type.String(),
  attempts: Type.Integer({ description: 'Calls begun in the bucket.' }),
  succeeded: Type.Integer(),
  declined: Type.Integer(),
  errors: Type.Integer({ description: 'Processor errors (timeouts, failures; what failover moves on from).' }),
  pending: Type.Integer({ description: 'Calls with no answer yet.' }),
  error_rate_bps: bps('errors / attempts.'),
  average_latency_ms: Nullable(Type.Integer({ description: 'Mean time to an answer of the calls that completed.' })),
});
export const OperatorProcessorsSchema = Type.Object(
  {
    object: Type.Literal('analytics.processor_health'),
    interval: Type.String(),
    livemode: Type.Boolean(),
    ...Period,
    data: Type.Array(ProcessorPoint, { description: 'Per bucket and processor (buckets with calls only).' }),
  },
  { $id: 'AnalyticsProcessorHealth' },
);
export type OperatorProcessors = Static<typeof OperatorProcessorsSchema>;

export const OperatorBacklogSchema = Type.Object(
  {
    object: Type.Literal('analytics.review_backlog'),
    livemode: Type.Boolean(),
    open_reviews: Type.Integer({ description: 'Fraud reviews open across every tenant.' }),
    tenants: Type.Array(
      Type.Object({
        tenant: Type.String(),
        tenant_name: Type.String(),
        open_reviews: Type.Integer({ description: 'Its fraud reviews open now.' }),
        oldest_opened: Type.Integer({ description: 'When its longest-waiting review opened (Unix seconds).' }),
      }),
      {
        description:
          'Tenants with open reviews, longest-waiting first (the first 100): counts and ages, not the payments.',
      },
    ),
  },
  { $id: 'AnalyticsReviewBacklog' },
);
export type OperatorBacklog = Static<typeof OperatorBacklogSchema>;
