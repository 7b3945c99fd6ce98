import { inPageScope, inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { findOwned, listPage } from '../../db/list.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds } from '../../lib/time.js';
import { recordAudit, type AuditContext } from '../audit/record.js';
import type { Row } from '../reports/definitions.js';
import {
  CASE_TRANSITIONS,
  type Case,
  type CaseKind,
  type CaseListQuery,
  type CaseNoteBody,
  type CaseStatus,
  type CreateCaseBody,
  type UpdateCaseBody,
} from './schemas.js';

interface CaseRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  kind: CaseKind;
  status: CaseStatus;
  subject: Case['subject'];
  payment_ids: string[];
  currency: string | null;
  amount: number | null;
  period_start: Date | null;
  period_end: Date | null;
  narrative: string | null;
  assignee: string | null;
  filed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

interface NoteRow {
  id: string;
  body: string;
  author: string | null;
  created_at: Date;
}

const seconds = (date: Date | null) => (date ? unixSeconds(date) : null);

function toApiCase(row: CaseRow, notes: NoteRow[]): Case {
  return {
    id: row.id,
    object: 'case',
    kind: row.kind,
    status: row.status,
    subject: row.subject,
    payments: row.payment_ids,
    amount: row.amount,
    currency: row.currency,
    period_start: seconds(row.period_start),
    period_end: seconds(row.period_end),
    narrative: row.narrative,
    assignee: row.assignee,
    notes: notes.map((n) => ({ id: n.id, body: n.body, author: n.author, created: unixSeconds(n.created_at) })),
    created: unixSeconds(row.created_at),
    updated: unixSeconds(row.updated_at),
    livemode: row.livemode,
  };
}

export interface OpenCaseInput {
  kind: CaseKind;
  subject: Case['subject'];
  paymentIds?: string[];
  amount?: number | null;
  currency?: string | null;
  periodStart?: Date | null;
  periodEnd?: Date | null;
  narrative?: string | null;
  /** The alert's own identity (a structuring window, a blocked payment): the same one opens one case. */
  sourceKey?: string | null;
}

/**
 * Opens a case inside the caller's transaction (the fraud engine calls it in the transaction that
 * blocks a payment or records a list hit), so that the alert and its case commit together. With a
 * `sourceKey` it is idempotent: the case already opened for that alert is returned.
 */
export async function openCase(tx: Tx, scope: Scope, input: OpenCaseInput): Promise<{ id: string; opened: boolean }> {
  const id = newId('case');
  const [inserted] = await tx<{ id: string }[]>`
    INSERT INTO cases (id, tenant_id, livemode, kind, status, subject, payment_ids, amount, currency, period_start,
      period_end, narrative, source_key)
    VALUES (${id}, ${scope.tenantId}, ${scope.livemode}, ${input.kind}, 'open', ${tx.json(input.subject as never)},
      ${input.paymentIds ?? []}::text[], ${input.amount ?? null}, ${input.currency ?? null}, ${input.periodStart ?? null},
      ${input.periodEnd ?? null}, ${input.narrative ?? null}, ${input.sourceKey ?? null})
    ON CONFLICT (tenant_id, livemode, source_key) DO NOTHING
    RETURNING id`;
  if (inserted) return { id: inserted.id, opened: true };
  const [existing] = await tx<{ id: string }[]>`
    SELECT id FROM cases WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
      AND source_key = ${input.sourceKey ?? null}`;
  return { id: existing.id, opened: false };
}

/** One case per structuring alert of a report (its subject and first payment identify it). */
export async function openStructuringCases(tx: Tx, scope: Scope, reportId: string, rows: Row[], from: Date, to: Date) {
  for (const row of rows) {
    const paymentIds = String(row.payment_ids).split(' ');
    await openCase(tx, scope, {
      kind: 'structuring',
      subject: { customer: row.customer as string | null, card_fingerprint: row.card_fingerprint as string | null },
      paymentIds,
      amount: Number(row.usd_equivalent),
      currency: 'usd',
      periodStart: new Date(String(row.first_payment_at)),
      periodEnd: new Date(String(row.last_payment_at)),
      narrative:
        `${row.payment_count} payments just under the reporting threshold, up to ${row.max_in_window} within ` +
        `the alert window, between ${String(row.first_payment_at)} and ${String(row.last_payment_at)} ` +
        `(found by report ${reportId} over ${from.toISOString().slice(0, 10)} to ` +
        `${new Date(to.getTime() - 1).toISOString().slice(0, 10)}).`,
      sourceKey: `structuring:${String(row.subject)}:${paymentIds[0]}`,
    });
  }
}

/** Suspicious-activity cases: opened by alerts or by hand, worked with notes, filed or dismissed. */
export class CaseService {
  constructor(private readonly sql: Sql) {}

  private async load(tx: Tx, scope: Scope, id: string): Promise<Case> {
    const row = await findOwned<CaseRow>(tx, 'cases', scope, id, 'case');
    const notes = await tx<NoteRow[]>`
      SELECT id, body, author, created_at FROM case_notes
      WHERE case_id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} ORDER BY id`;
    return toApiCase(row, notes);
  }

  async create(scope: Scope, body: CreateCaseBody): Promise<Case> {
    return inScope(this.sql, scope, async (tx) => {
      const paymentIds = [...new Set(body.payments ?? [])];
      const found = await tx<{ id: string; amount_received: number; currency: string; created_at: Date }[]>`
        SELECT id, amount_received, currency, created_at FROM payments
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND id = ANY(${paymentIds}::text[])`;
      const missing = paymentIds.find((id) => !found.some((p) => p.id === id));
      if (missing) throw ApiError.invalid('resource_missing', `No such payment: '${missing}'.`, 'payments');
      const currencies = [...new Set(found.map((p) => p.currency))];
      const times = found.map((p) => p.created_at.getTime());
      const { id } = await openCase(tx, scope, {
        kind: 'manual',
        subject: body.subject,
        paymentIds,
        // A total only makes sense in one currency; the filing lists each payment either way.
        amount: currencies.length === 1 ? found.reduce((sum, p) => sum + p.amount_received, 0) : null,
        currency: currencies.length === 1 ? currencies[0] : null,
        periodStart: times.length ? new Date(Math.min(...times)) : null,
        periodEnd: times.length ? new Date(Math.max(...times)) : null,
        narrative: body.narrative ?? null,
      });
      if (body.assignee !== undefined) await tx`UPDATE cases SET assignee = ${body.assignee} WHERE id = ${id}`;
      return this.load(tx, scope, id);
    });
  }

  async list(scope: Scope, params: CaseListQuery) {
    return inPageScope(this.sql, scope, async (tx) => {
      const page = await listPage<CaseRow>(tx, 'cases', scope, params, [
        params.status ? tx`AND status = ${params.status}` : tx``,
        params.kind ? tx`AND kind = ${params.kind}` : tx``,
      ]);
      const ids = page.rows.map((r) => r.id);
      const notes = await tx<(NoteRow & { case_id: string })[]>`
        SELECT id, case_id, body, author, created_at FROM case_notes
        WHERE case_id = ANY(${ids}::text[]) AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
        ORDER BY id`;
      return {
        data: page.rows.map((row) =>
          toApiCase(
            row,
            notes.filter((n) => n.case_id === row.id),
          ),
        ),
        has_more: page.hasMore,
      };
    });
  }

  async retrieve(scope: Scope, id: string): Promise<Case> {
    return inScope(this.sql, scope, (tx) => this.load(tx, scope, id));
  }

  /** Status changes follow CASE_TRANSITIONS, compare-and-set on the status read. */
  async update(scope: Scope, id: string, body: UpdateCaseBody): Promise<Case> {
    return inScope(this.sql, scope, async (tx) => {
      const current = await findOwned<CaseRow>(tx, 'cases', scope, id, 'case');
      const status = (body.status ?? current.status) as CaseStatus;
      if (status !== current.status && !CASE_TRANSITIONS[current.status].includes(status))
        throw ApiError.invalid(
          'case_unexpected_state',
          `A case in status ${current.status} cannot become ${status}` +
            (CASE_TRANSITIONS[current.status].length
              ? ` (it can become ${CASE_TRANSITIONS[current.status].join(' or ')}).`
              : ': it is closed.'),
          'status',
        );
      const [updated] = await tx`
        UPDATE cases SET status = ${status},
          assignee = ${body.assignee !== undefined ? body.assignee : current.assignee},
          narrative = ${body.narrative ?? current.narrative},
          filed_at = ${status === 'filed' && current.status !== 'filed' ? new Date() : current.filed_at},
          dismissed_at = CASE WHEN ${status === 'dismissed'} AND status <> 'dismissed' THEN now() ELSE dismissed_at END,
          updated_at = now()
        WHERE id = ${id} AND status = ${current.status} RETURNING id`;
      if (!updated) throw ApiError.invalid('case_unexpected_state', 'The case changed meanwhile; retry.', 'status');
      return this.load(tx, scope, id);
    });
  }

  async addNote(scope: Scope, id: string, body: CaseNoteBody): Promise<Case> {
    return inScope(this.sql, scope, async (tx) => {
      await findOwned<CaseRow>(tx, 'cases', scope, id, 'case');
      await tx`
        INSERT INTO case_notes (id, case_id, tenant_id, livemode, body, author)
        VALUES (${newId('cnote')}, ${id}, ${scope.tenantId}, ${scope.livemode}, ${body.body}, ${body.author ?? null})`;
      await tx`UPDATE cases SET updated_at = now() WHERE id = ${id}`;
      return this.load(tx, scope, id);
    });
  }

  /**
   * The filing export: the fields of a suspicious activity report (subject, the activity's
   * amounts and date range, each transaction, narrative), as the README documents. A case not yet
   * filed exports as a draft.
   */
  /** The filing is an export of suspicious-activity data: each one is audited in its transaction (PCI DSS 10.2). */
  async filing(scope: Scope, id: string, context: AuditContext): Promise<CaseFiling> {
    return inScope(this.sql, scope, async (tx) => {
      const found = await this.load(tx, scope, id);
      const payments = await tx<
        {
          id: string;
          amount: number;
          amount_received: number;
          amount_refunded: number;
          currency: string;
          status: string;
          customer: string | null;
          created_at: Date;
          brand: string | null;
          last4: string | null;
          country: string | null;
          fingerprint: string | null;
        }[]
      >`
        SELECT p.id, p.amount, p.amount_received, p.amount_refunded, p.currency, p.status, p.customer, p.created_at,
          pm.brand, pm.last4, pm.country, pm.fingerprint
        FROM payments p LEFT JOIN payment_methods pm ON pm.id = p.payment_method_id
        WHERE p.tenant_id = ${scope.tenantId} AND p.livemode = ${scope.livemode}
          AND p.id = ANY(${found.payments}::text[])
        ORDER BY p.created_at, p.id`;
      const totals = new Map<string, number>();
      for (const p of payments) totals.set(p.currency, (totals.get(p.currency) ?? 0) + p.amount_received);
      const iso = (s: number | null) => (s === null ? null : new Date(s * 1000).toISOString());
      await recordAudit(tx, {
        scope,
        context,
        action: 'case.filing_exported',
        target: { type: 'case', id: found.id },
        after: { status: found.status, kind: found.kind, transactions: payments.length },
      });
      return {
        object: 'suspicious_activity_filing',
        format_version: '1',
        case: found.id,
        filing_status: found.status === 'filed' ? 'filed' : 'draft',
        case_status: found.status,
        filer: { tenant: scope.tenantId, livemode: scope.livemode },
        subject: found.subject,
        activity: {
          kind: found.kind,
          date_range: { from: iso(found.period_start), to: iso(found.period_end) },
          total: found.amount !== null ? { amount: found.amount, currency: found.currency } : null,
          amounts_by_currency: [...totals].map(([currency, amount]) => ({ currency, amount })),
          transactions: payments.map((p) => ({
            payment: p.id,
            date: p.created_at.toISOString(),
            amount: p.amount_received,
            amount_refunded: p.amount_refunded,
            currency: p.currency,
            status: p.status,
            customer: p.customer,
            card: p.last4 ? { brand: p.brand, last4: p.last4, country: p.country, fingerprint: p.fingerprint } : null,
          })),
        },
        narrative: found.narrative,
        notes: found.notes,
        assignee: found.assignee,
        prepared: Math.floor(Date.now() / 1000),
      };
    });
  }
}

export interface CaseFiling {
  object: 'suspicious_activity_filing';
  format_version: '1';
  case: string;
  filing_status: 'filed' | 'draft';
  case_status: string;
  filer: { tenant: string; livemode: boolean };
  subject: Case['subject'];
  activity: {
    kind: string;
    date_range: { from: string | null; to: string | null };
    total: { amount: number; currency: string | null } | null;
    amounts_by_currency: { currency: string; amount: number }[];
    transactions: {
      payment: string;
      date: string;
      amount: number;
      amount_refunded: number;
      currency: string;
      status: string;
      customer: string | null;
      card: { brand: string | null; last4: string; country: string | null; fingerprint: string | null } | null;
    }[];
  };
  narrative: string | null;
  notes: Case['notes'];
  assignee: string | null;
  prepared: number;
}
