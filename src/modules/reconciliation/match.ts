import type { ItemStatus } from './schemas.js';

/** One side's record of a capture or refund; `reference` is the key both sides share. */
export interface Line {
  type: 'capture' | 'refund';
  reference: string;
  currency: string;
  /** Signed as in the ledger: captures positive, refunds negative. */
  amount: number;
}

export interface LedgerLine extends Line {
  transaction_id: string;
  source_id: string;
}

export interface MatchedItem {
  status: ItemStatus;
  type: Line['type'];
  reference: string;
  currency: string;
  source_id: string | null;
  balance_transaction: string | null;
  processor_amount: number | null;
  ledger_amount: number | null;
}

const key = (line: Line) => `${line.type}\u0000${line.currency}\u0000${line.reference}`;

function item(status: ItemStatus, processor: Line | null, ledger: LedgerLine | null): MatchedItem {
  const line = (processor ?? ledger)!;
  return {
    status,
    type: line.type,
    reference: line.reference,
    currency: line.currency,
    source_id: ledger?.source_id ?? null,
    balance_transaction: ledger?.transaction_id ?? null,
    processor_amount: processor?.amount ?? null,
    ledger_amount: ledger?.amount ?? null,
  };
}

/**
 * Pairs the processor's lines with our ledger's by type, currency and reference. Lines whose
 * amounts agree are paired first, so that a line the processor reported twice cannot take the
 * partner of the right one; what is left with the same key is a mismatch, and what has no
 * partner is missing on the other side. A currency that differs is a line on each side missing.
 */
export function matchLines(processorLines: Line[], ledgerLines: LedgerLine[]): MatchedItem[] {
  const open = new Map<string, LedgerLine[]>();
  for (const line of ledgerLines) {
    const same = open.get(key(line));
    if (same) same.push(line);
    else open.set(key(line), [line]);
  }
  const items: MatchedItem[] = [];
  const unpaired: Line[] = [];
  for (const line of processorLines) {
    const candidates = open.get(key(line)) ?? [];
    const same = candidates.findIndex((candidate) => candidate.amount === line.amount);
    if (same >= 0) items.push(item('matched', line, candidates.splice(same, 1)[0]));
    else unpaired.push(line);
  }
  for (const line of unpaired) {
    const partner = open.get(key(line))?.shift();
    items.push(partner ? item('amount_mismatch', line, partner) : item('missing_in_ledger', line, null));
  }
  for (const left of open.values()) for (const line of left) items.push(item('missing_in_report', null, line));
  return items;
}

export interface Totals {
  processor_count: number;
  processor_amount: number;
  ledger_count: number;
  ledger_amount: number;
  matched_count: number;
  matched_amount: number;
  missing_in_ledger_count: number;
  missing_in_ledger_amount: number;
  missing_in_report_count: number;
  missing_in_report_amount: number;
  amount_mismatch_count: number;
  amount_mismatch_amount: number;
}

export function totals(items: MatchedItem[]): Totals {
  const of = (status: ItemStatus) => items.filter((i) => i.status === status);
  const sum = (list: MatchedItem[], pick: (i: MatchedItem) => number | null) =>
    list.reduce((total, i) => total + (pick(i) ?? 0), 0);
  const reported = items.filter((i) => i.processor_amount !== null);
  const recorded = items.filter((i) => i.ledger_amount !== null);
  const mismatched = of('amount_mismatch');
  return {
    processor_count: reported.length,
    processor_amount: sum(reported, (i) => i.processor_amount),
    ledger_count: recorded.length,
    ledger_amount: sum(recorded, (i) => i.ledger_amount),
    matched_count: of('matched').length,
    matched_amount: sum(of('matched'), (i) => i.ledger_amount),
    missing_in_ledger_count: of('missing_in_ledger').length,
    missing_in_ledger_amount: sum(of('missing_in_ledger'), (i) => i.processor_amount),
    missing_in_report_count: of('missing_in_report').length,
    missing_in_report_amount: sum(of('missing_in_report'), (i) => i.ledger_amount),
    amount_mismatch_count: mismatched.length,
    amount_mismatch_amount: sum(mismatched, (i) => i.processor_amount! - i.ledger_amount!),
  };
}
