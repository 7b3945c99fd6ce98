import type { QueryParams, ResponseBody } from './api.ts';

export type Summary = ResponseBody<'/v1/analytics/summary', 'get'>;
export type SummaryFigures = Summary['data'][number];
export type Timeseries = ResponseBody<'/v1/analytics/timeseries', 'get'>;
export type Breakdown = ResponseBody<'/v1/analytics/breakdown', 'get'>;
export type Metric = QueryParams<'/v1/analytics/timeseries', 'get'>['metric'];
export type Dimension = QueryParams<'/v1/analytics/breakdown', 'get'>['dimension'];
type PeriodQuery = Pick<QueryParams<'/v1/analytics/summary', 'get'>, 'range' | 'from' | 'until'>;

export const RANGES = [
  { value: 'today', label: 'Today' },
  { value: '7d', label: '7 days' },
  { value: '30d', label: '30 days' },
  { value: '12m', label: '12 months' },
  { value: 'custom', label: 'Custom' },
] as const;
export type RangeChoice = (typeof RANGES)[number]['value'];

const DAY = 86_400;

/** A `YYYY-MM-DD` date input as the Unix second of that day's 00:00 UTC (analytics buckets are UTC), or null. */
export function utcDay(text: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return null;
  const ms = Date.parse(`${text}T00:00:00Z`);
  return Number.isNaN(ms) ? null : ms / 1000;
}

export const dayText = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString().slice(0, 10);

/**
 * The period the URL names, as the API's query: a preset range, or a custom one from the first day to the last day
 * inclusive (so `until` is the next day's 00:00 UTC). An incomplete or reversed custom period falls back to 30 days.
 */
export function periodQuery(range: string, from: string, until: string): PeriodQuery {
  if (range === 'custom') {
    const start = utcDay(from);
    const last = utcDay(until);
    if (start !== null && last !== null && last >= start) return { from: start, until: last + DAY };
    return { range: '30d' };
  }
  return { range: (['today', '7d', '30d', '12m'].includes(range) ? range : '30d') as PeriodQuery['range'] };
}

/** Hourly buckets are offered for periods of up to 31 days, as the API allows. */
export function hourlyAllowed(period: PeriodQuery): boolean {
  if (period.range) return period.range !== '12m';
  return period.until! - period.from! <= 31 * DAY;
}

/** Basis points as a percentage with two decimals (approval rate 9,250 bps → "92.50 %"). */
export const bpsPercent = (bps: number | null) => (bps === null ? '—' : `${(bps / 100).toFixed(2)} %`);

/** The metrics a person can chart beside volume, count and approval rate. */
export const MORE_METRICS: { value: Metric; label: string; money: boolean }[] = [
  { value: 'fees', label: 'Fees', money: true },
  { value: 'net', label: 'Net', money: true },
  { value: 'amount', label: 'Amount of payments created', money: true },
  { value: 'refunds_amount', label: 'Refunds (amount)', money: true },
  { value: 'refunds_count', label: 'Refunds (count)', money: false },
  { value: 'disputes_amount', label: 'Disputes (amount)', money: true },
  { value: 'disputes_count', label: 'Disputes (count)', money: false },
  { value: 'declined_count', label: 'Declined payments', money: false },
  { value: 'fraud_rate_bps', label: 'Fraud rate (bps)', money: false },
];

export const DIMENSIONS: { value: Dimension; label: string }[] = [
  { value: 'brand', label: 'Card brand' },
  { value: 'country', label: 'Card country' },
  { value: 'currency', label: 'Currency' },
  { value: 'decline_code', label: 'Decline reason' },
];

/** A bucket's start as shown on an axis and in a CSV: the UTC hour or the UTC day. */
export function bucketLabel(start: number, interval: string): string {
  const iso = new Date(start * 1000).toISOString();
  return interval === 'hour' ? `${iso.slice(0, 13)}:00Z` : iso.slice(0, 10);
}
