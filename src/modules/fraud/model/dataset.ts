import { createReadStream } from 'node:fs';
import { parse } from 'csv-parse';
import { buyerAddress } from './ip-country.js';
import type { RiskSignals } from './signals.js';
import { VelocityTracker } from './velocity.js';

// The public CSV contract of fraud data (generator output, training and evaluation input).

export const CSV_COLUMNS = [
  'id',
  'timestamp',
  'tenant_id',
  'customer_id',
  'email',
  'card_fingerprint',
  'card_bin',
  'card_country',
  'ip',
  'ip_country',
  'billing_country',
  'amount',
  'currency',
  'is_fraud',
] as const;

export type CsvRow = Record<(typeof CSV_COLUMNS)[number], string>;

/** One labelled payment with the signals the engine would have computed when it was decided. */
export interface LabelledDecision {
  id: string;
  time: number;
  tenant: string;
  card: string | null;
  amount: number;
  isFraud: boolean;
  signals: RiskSignals;
}

const orNull = (value: string | undefined): string | null => (value === undefined || value === '' ? null : value);

/** Reads a fraud CSV file; rows are returned in time order (file order among equal timestamps). */
export async function readCsv(path: string): Promise<CsvRow[]> {
  const rows: CsvRow[] = [];
  const parser = createReadStream(path).pipe(parse({ columns: true, skip_empty_lines: true, trim: true }));
  for await (const record of parser as AsyncIterable<CsvRow>) rows.push(record);
  if (rows.length > 0) {
    const missing = CSV_COLUMNS.filter((column) => !(column in rows[0]!));
    if (missing.length > 0) throw new Error(`${path}: missing column(s) ${missing.join(', ')}`);
  }
  const timed = rows.map((row, index) => ({ row, index, time: parseTime(row.timestamp, row.id) }));
  timed.sort((a, b) => a.time - b.time || a.index - b.index);
  return timed.map((entry) => entry.row);
}

function parseTime(value: string, id: string): number {
  const time = Date.parse(value);
  if (Number.isNaN(time)) throw new Error(`row ${id}: timestamp '${value}' is not ISO 8601`);
  return time;
}

/**
 * The row's buyer address, as the engine takes it (buyerAddress): a loopback, private or reserved
 * address is no IP, unless the file gives it a country.
 */
function rowAddress(row: CsvRow): string | null {
  if (row.ip === '') return null;
  return row.ip_country === '' ? buyerAddress(row.ip) : row.ip;
}

/** Replays time-ordered rows through the velocity store: each row sees only the rows before it. */
export function* decisions(rows: Iterable<CsvRow>): Generator<LabelledDecision> {
  const tracker = new VelocityTracker();
  for (const row of rows) {
    const time = parseTime(row.timestamp, row.id);
    const amount = Number(row.amount);
    if (!Number.isSafeInteger(amount) || amount < 0)
      throw new Error(`row ${row.id}: amount '${row.amount}' is not minor units`);
    const event = {
      time,
      tenant: row.tenant_id,
      customer: orNull(row.customer_id),
      email: orNull(row.email),
      card: orNull(row.card_fingerprint),
      ip: rowAddress(row),
      ipCountry: orNull(row.ip_country),
      amount,
    };
    const signals: RiskSignals = {
      amount,
      currency: row.currency.toUpperCase(),
      timestamp: new Date(time),
      cardBin: orNull(row.card_bin),
      cardCountry: orNull(row.card_country),
      ipCountry: event.ipCountry,
      billingCountry: orNull(row.billing_country),
      hasEmail: event.email !== null,
      hasCustomer: event.customer !== null,
      hasIp: event.ip !== null,
      velocity: tracker.snapshot(event),
    };
    tracker.record(event);
    yield { id: row.id, time, tenant: row.tenant_id, card: event.card, amount, isFraud: row.is_fraud === '1', signals };
  }
}
