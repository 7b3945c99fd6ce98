import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import type { Sql } from '../../db/index.js';

/**
 * A processor's daily settlement report: one line per capture and refund it settled on a UTC day,
 * across every tenant. `amount` is signed in the currency's minor units, as in our ledger: what
 * the processor pays (a capture) or takes back (a refund, negative). `reference` identifies the
 * line on both sides: for a capture the authorization reference the processor gave the payment,
 * for a refund our refund id, which the processor received as its idempotency key.
 */
export const SETTLEMENT_REPORT_COLUMNS = [
  'processor',
  'report_date',
  'tenant_id',
  'livemode',
  'type',
  'reference',
  'currency',
  'amount',
] as const;

export interface SettlementLine {
  processor: string;
  report_date: string;
  tenant_id: string;
  livemode: boolean;
  type: 'capture' | 'refund';
  reference: string;
  currency: string;
  amount: number;
}

const DAY_MS = 86_400_000;

export const dayStart = (reportDate: string) => new Date(`${reportDate}T00:00:00.000Z`);
export const dayEnd = (reportDate: string) => new Date(dayStart(reportDate).getTime() + DAY_MS);

/**
 * The report the simulated processors send for a day, built from their own records of what they
 * did (`sim_processor_calls`), never from our tables: what it says was captured or refunded is what
 * the processor acted on, whether or not its answer ever reached us. Calls are dated when the
 * processor acted on them.
 */
export class SimulatedSettlementReports {
  constructor(private readonly sql: Sql) {}

  async report(processor: string, reportDate: string): Promise<string> {
    const settled = await this.sql<Omit<SettlementLine, 'processor' | 'report_date'>[]>`
      SELECT merchant_id AS tenant_id, livemode,
        CASE operation WHEN 'refund' THEN 'refund' ELSE 'capture' END AS type,
        CASE operation WHEN 'refund' THEN idempotency_key ELSE authorization_reference END AS reference,
        currency, CASE operation WHEN 'refund' THEN -amount ELSE amount END AS amount
      FROM sim_processor_calls
      WHERE processor = ${processor} AND status = 'succeeded'
        AND created_at >= ${dayStart(reportDate)} AND created_at < ${dayEnd(reportDate)}
        AND (operation IN ('capture', 'refund') OR (operation = 'authorize' AND capture))
      ORDER BY 1, 2, 3, 4`;
    const lines = settled.map((line) => ({
      processor,
      report_date: reportDate,
      ...line,
      livemode: String(line.livemode),
    }));
    return stringify(lines, { header: true, columns: [...SETTLEMENT_REPORT_COLUMNS] });
  }
}

/** Reads a settlement report, refusing (with the line number) anything that is not a well-formed line. */
export function parseSettlementReport(csv: string): SettlementLine[] {
  const records = parse(csv, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  return records.map((record, index) => {
    const fail = (column: string) => {
      throw new Error(
        `settlement report line ${index + 2}: ${column} ${JSON.stringify(record[column] ?? null)} is not valid`,
      );
    };
    for (const column of SETTLEMENT_REPORT_COLUMNS) if (!record[column]) fail(column);
    if (record.livemode !== 'true' && record.livemode !== 'false') fail('livemode');
    if (record.type !== 'capture' && record.type !== 'refund') fail('type');
    if (!/^[a-z]{3}$/.test(record.currency)) fail('currency');
    if (!/^-?\d{1,15}$/.test(record.amount)) fail('amount');
    return {
      processor: record.processor,
      report_date: record.report_date,
      tenant_id: record.tenant_id,
      livemode: record.livemode === 'true',
      type: record.type as SettlementLine['type'],
      reference: record.reference,
      currency: record.currency,
      amount: Number(record.amount),
    };
  });
}
