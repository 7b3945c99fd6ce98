import { stringify } from 'csv-stringify/sync';
import type {
  AnalyticsBreakdown,
  AnalyticsSummary,
  AnalyticsTimeseries,
  Figures,
  OperatorProcessors,
  OperatorVolume,
} from './schemas.js';

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
