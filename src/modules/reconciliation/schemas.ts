import { Type, type Static } from 'typebox';
import { VersionedDay } from '../versions/versions.js';
import { DateQuery, ListQuery, Nullable, StrictObject } from '../../http/schemas.js';

export const ITEM_STATUSES = ['matched', 'missing_in_ledger', 'missing_in_report', 'amount_mismatch'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

const count = (description: string) => Type.Integer({ minimum: 0, description });
const amount = (description: string) =>
  Type.Integer({ description: `${description} Signed, in minor units: captures add, refunds take away.` });

export const ReconciliationReportSchema = Type.Object(
  {
    id: Type.String({ examples: ['recon_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('reconciliation_report'),
    processor: Type.String({ description: 'The processor whose settlement report was reconciled.' }),
    report_date: VersionedDay('The UTC day the processor’s report covers.'),
    currency: Type.String(),
    status: Type.String({ enum: ['balanced', 'discrepancies'], description: '`balanced` when every line matched.' }),
    processor_count: count('Lines in the processor’s report.'),
    processor_amount: amount('What the processor says it settled.'),
    ledger_count: count('Captures and refunds in our ledger.'),
    ledger_amount: amount('What our ledger recorded.'),
    matched_count: count('Lines found in both, with the same amount.'),
    matched_amount: amount('Their total.'),
    missing_in_ledger_count: count('Lines in the processor’s report that our ledger does not have.'),
    missing_in_ledger_amount: amount('Their total, as the processor reported them.'),
    missing_in_report_count: count('Ledger transactions the processor’s report does not have.'),
    missing_in_report_amount: amount('Their total, as our ledger recorded them.'),
    amount_mismatch_count: count('Lines found in both with different amounts.'),
    amount_mismatch_amount: amount('The processor’s amounts minus ours.'),
    difference: amount('`processor_amount - ledger_amount`: the sum of the missing and mismatched amounts.'),
    created: Type.Integer(),
    updated: Type.Integer({ description: 'When the report was last reconciled; running it again replaces its items.' }),
    livemode: Type.Boolean(),
  },
  { $id: 'ReconciliationReport' },
);
export type ReconciliationReport = Static<typeof ReconciliationReportSchema>;

/** What a reconciled line is (an item and the operator's discrepancy alike). */
const LINE_FIELDS = {
  type: Type.String({ enum: ['capture', 'refund'] }),
  reference: Type.String({
    description: 'For a capture, the payment’s processor reference; for a refund, the refund id.',
  }),
  source: Nullable(Type.String({ description: 'The payment or refund, when our ledger has it.' })),
};

/** The two sides' amounts of a reconciled line and their difference. */
const AMOUNT_FIELDS = {
  processor_amount: Nullable(
    Type.Integer({ description: 'As the processor reported it; null when missing from its report.' }),
  ),
  ledger_amount: Nullable(
    Type.Integer({ description: 'As our ledger recorded it; null when missing from our ledger.' }),
  ),
  difference: Type.Integer({ description: '`processor_amount - ledger_amount`, a missing side counting as 0.' }),
};

export const ReconciliationItemSchema = Type.Object(
  {
    id: Type.String({ examples: ['reci_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('reconciliation_item'),
    report: Type.String({ description: 'The reconciliation report it belongs to.' }),
    status: Type.String({ enum: [...ITEM_STATUSES] }),
    ...LINE_FIELDS,
    balance_transaction: Nullable(Type.String({ description: 'Our ledger’s transaction, when there is one.' })),
    currency: Type.String(),
    ...AMOUNT_FIELDS,
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'ReconciliationItem' },
);
export type ReconciliationItem = Static<typeof ReconciliationItemSchema>;

export const ReconciliationReportListQuery = StrictObject({
  ...ListQuery,
  processor: Type.Optional(Type.String({ maxLength: 64 })),
  report_date: Type.Optional(DateQuery('Only the report of this UTC day.')),
  currency: Type.Optional(Type.String({ pattern: '^[a-z]{3}$' })),
  status: Type.Optional(Type.String({ enum: ['balanced', 'discrepancies'] })),
});
export type ReconciliationReportListQuery = Static<typeof ReconciliationReportListQuery>;

export const ReconciliationItemListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(Type.String({ enum: [...ITEM_STATUSES] })),
});
export type ReconciliationItemListQuery = Static<typeof ReconciliationItemListQuery>;

export const DISCREPANCY_KINDS = ['missing_in_ledger', 'missing_in_report', 'amount_mismatch'] as const;

/** A reconciliation item that did not match, as the operator sees it across tenants. */
export const ReconciliationDiscrepancySchema = Type.Object(
  {
    id: Type.String({ description: 'The reconciliation item’s id.', examples: ['reci_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('reconciliation_discrepancy'),
    tenant: Type.String({ description: 'The tenant whose ledger line or processor line it is.' }),
    tenant_name: Type.String(),
    report: Type.String({ description: 'The tenant’s reconciliation report it belongs to.' }),
    processor: Type.String(),
    report_date: Type.Integer({ description: 'The UTC day the processor’s report covers: Unix seconds at its start.' }),
    kind: Type.String({ enum: [...DISCREPANCY_KINDS] }),
    ...LINE_FIELDS,
    currency: Type.String(),
    ...AMOUNT_FIELDS,
    created: Type.Integer({ description: 'When the reconciliation that found it ran.' }),
    livemode: Type.Boolean(),
  },
  { $id: 'ReconciliationDiscrepancy' },
);
export type ReconciliationDiscrepancy = Static<typeof ReconciliationDiscrepancySchema>;

export const DiscrepancyListQuery = StrictObject({
  limit: ListQuery.limit,
  starting_after: ListQuery.starting_after,
  ending_before: ListQuery.ending_before,
  livemode: Type.Optional(Type.Boolean({ description: 'Live or test mode. Default false (test).' })),
  tenant: Type.Optional(Type.String({ maxLength: 64, description: 'Only this tenant’s.' })),
  kind: Type.Optional(Type.String({ enum: [...DISCREPANCY_KINDS] })),
});
export type DiscrepancyListQuery = Static<typeof DiscrepancyListQuery>;
