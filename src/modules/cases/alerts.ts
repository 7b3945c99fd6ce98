import type { Columns, UnnestStatement } from '../../db/unnest.js';
import type { Case, CaseKind } from './schemas.js';

/** A payment that raised a fraud alert (a block, a block-list hit), as its case records it. */
export interface AlertCaseRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  kind: Extract<CaseKind, 'fraud_block' | 'list_hit'>;
  subject: Case['subject'];
  payment_id: string;
  amount: number;
  currency: string;
  at: Date;
  narrative: string;
  /** The subject and UTC day: a case still being worked gathers all alerts of one key. */
  alert_key: string;
}

const ALERT_CASE_COLUMNS: Columns<AlertCaseRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['kind', 'text'],
  ['subject', 'jsonb'],
  ['payment_id', 'text'],
  ['amount', 'bigint'],
  ['currency', 'text'],
  ['at', 'timestamptz'],
  ['narrative', 'text'],
  ['alert_key', 'text'],
];

/** The case of a payment's fraud alert: one per subject and UTC day, keyed `<customer|card>:<id>:<day>`. */
export function alertCase(input: Omit<AlertCaseRow, 'alert_key'>): AlertCaseRow {
  const day = input.at.toISOString().slice(0, 10);
  const subject = input.subject.customer
    ? `customer:${input.subject.customer}`
    : `card:${input.subject.card_fingerprint ?? ''}`;
  return { ...input, alert_key: `fraud:${subject}:${day}` };
}

/**
 * A data-modifying CTE for a batched payment write: opens the case of each alert whose payment the
 * batch wrote (`written`: a CTE of payment ids), or adds the payment to the case its subject already
 * has open today. Alerts of one key within the batch are grouped first: an INSERT … ON CONFLICT may
 * touch a row once. Amounts are the payments' amounts (a blocked payment received nothing), each
 * payment once: the same payment blocked again (confirmed anew with another card, say) is already in
 * its subject's case. A case whose payments are in several currencies has no total.
 */
export function alertCaseCte(statement: UnnestStatement, rows: AlertCaseRow[], written: string): string {
  return `alert_case AS (
      INSERT INTO cases (id, tenant_id, livemode, kind, status, subject, payment_ids, currency, amount, period_start,
        period_end, narrative, alert_key)
      SELECT min(c.id), c.tenant_id, c.livemode, min(c.kind), 'open', (array_agg(c.subject ORDER BY c.at))[1],
        array_agg(c.payment_id ORDER BY c.at),
        CASE WHEN count(DISTINCT c.currency) = 1 THEN min(c.currency) END,
        CASE WHEN count(DISTINCT c.currency) = 1 THEN sum(c.amount) END,
        min(c.at), max(c.at), (array_agg(c.narrative ORDER BY c.at))[1], c.alert_key
      FROM (${statement.rows(ALERT_CASE_COLUMNS, rows)}) c
      WHERE c.payment_id IN (SELECT id FROM ${written})
      GROUP BY c.tenant_id, c.livemode, c.alert_key
      ON CONFLICT (tenant_id, livemode, alert_key) WHERE alert_key IS NOT NULL AND status IN ('open', 'investigating')
      DO UPDATE SET payment_ids = cases.payment_ids
          || ARRAY(SELECT p FROM unnest(excluded.payment_ids) p WHERE p <> ALL (cases.payment_ids)),
        amount = CASE WHEN cases.currency = excluded.currency
          THEN cases.amount + CASE WHEN excluded.payment_ids <@ cases.payment_ids THEN 0 ELSE excluded.amount END END,
        currency = CASE WHEN cases.currency = excluded.currency THEN cases.currency END,
        period_start = least(cases.period_start, excluded.period_start),
        period_end = greatest(cases.period_end, excluded.period_end),
        updated_at = now()
    )`;
}
