import { listRead, primaryReads, type Reads } from '../../db/replica.js';
import { inScope, scopedRead, type Scope, type Sql, type Tx } from '../../db/index.js';
import { recordAudit, type AuditContext } from '../audit/record.js';
import { findOwned, listPage } from '../../db/list.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { METADATA_LIMITS } from '../../http/schemas.js';
import { newId } from '../../lib/ids.js';
import { unixSeconds, systemClock, type Clock } from '../../lib/time.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import type { ConnectorRouter } from '../connectors/router.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import { disputeLostTransaction, disputeTransaction, disputeWonTransaction } from '../ledger/postings.js';
import type { LedgerService } from '../ledger/service.js';
import { priceFixedFee, type PricingService } from '../pricing/service.js';
import {
  EVIDENCE_FIELD_NAMES,
  type Dispute,
  type DisputeListQuery,
  type DisputeStatus,
  type EvidenceField,
  type UpdateDisputeBody,
} from './schemas.js';

interface DisputeRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  payment_id: string;
  amount: number;
  currency: string;
  reason: string;
  status: DisputeStatus;
  evidence: Partial<Record<EvidenceField, string>>;
  evidence_submitted_at: Date | null;
  due_by: Date;
  fee: number;
  processor: string;
  metadata: Record<string, string>;
  balance_transactions: string[];
  created_at: Date;
  updated_at: Date;
}

const DISPUTE_COLUMNS: Columns<DisputeRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['payment_id', 'text'],
  ['amount', 'bigint'],
  ['currency', 'text'],
  ['reason', 'text'],
  ['status', 'text'],
  ['evidence', 'jsonb'],
  ['evidence_submitted_at', 'timestamptz'],
  ['due_by', 'timestamptz'],
  ['fee', 'bigint'],
  ['processor', 'text'],
  ['metadata', 'jsonb'],
  ['balance_transactions', 'text[]'],
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

/** How long a tenant has to answer a dispute before it is lost unanswered. */
const RESPONSE_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;

/** A worker's unit of work: one dispute or capture, found across tenants. */
interface ScopedItem {
  id: string;
  tenant_id: string;
  livemode: boolean;
}

const scopeOf = (item: ScopedItem): Scope => ({ tenantId: item.tenant_id, livemode: item.livemode });

export function toApiDispute(row: DisputeRow): Dispute {
  const evidence = row.evidence ?? {};
  return {
    id: row.id,
    object: 'dispute',
    amount: row.amount,
    currency: row.currency,
    payment: row.payment_id,
    reason: row.reason,
    status: row.status,
    evidence: Object.fromEntries(
      EVIDENCE_FIELD_NAMES.map((field) => [field, evidence[field] ?? null]),
    ) as Dispute['evidence'],
    evidence_details: {
      due_by: unixSeconds(row.due_by),
      has_evidence: Object.keys(evidence).length > 0,
      past_due: row.status === 'needs_response' && new Date(row.due_by) <= new Date(),
      // Evidence can only be submitted once: submitting ends needs_response.
      submission_count: row.evidence_submitted_at ? 1 : 0,
    },
    balance_transactions: row.balance_transactions,
    fee: row.fee,
    metadata: row.metadata ?? {},
    created: unixSeconds(row.created_at),
    livemode: row.livemode,
  };
}

// Stripe's update semantics: given keys are merged in, an empty string removes one.
const patchOf = (values: Record<string, string | undefined> = {}) =>
  Object.fromEntries(Object.entries(values).map(([key, value]) => [key, value === '' ? null : value]));

/**
 * Disputes are opened and decided by the processor, found by worker passes, and answered by the
 * tenant through the API: needs_response → under_review → won | lost (or lost straight from
 * needs_response, when the tenant accepts it or lets due_by pass). Every transition is a
 * compare-and-set on the status, in the same database transaction as its ledger posting and
 * events, so a retried request or a second worker never posts twice.
 */
export class DisputeService {
  constructor(
    private readonly sql: Sql,
    private readonly router: ConnectorRouter,
    private readonly pricing: PricingService,
    private readonly ledger: LedgerService,
    private readonly workerSql: Sql,
    private readonly now: Clock = systemClock,
    /** Stale-tolerant reads (lists): the replica when DATABASE_REPLICA_URL is set. */
    private readonly reads: Reads = primaryReads(sql),
  ) {}

  /** Worker pass: asks each processor about the captures on the dispute watch list and opens their disputes. */
  async intake(limit = 100, items: ItemRunner = separately('disputes')): Promise<number> {
    const captures = await this.workerSql<(ScopedItem & { processor: string; processor_reference: string })[]>`
      SELECT * FROM worker_undisputed_captures(${limit + items.waiting})`;
    return items.each(
      captures,
      (capture) => capture.id,
      (capture) => this.open(capture),
    );
  }

  private async open(capture: ScopedItem & { processor: string; processor_reference: string }): Promise<boolean> {
    const scope = scopeOf(capture);
    const [payment] = await inScope(
      this.sql,
      scope,
      (tx) => tx<{ amount_received: number; amount_refunded: number; currency: string; pricing_version: number }[]>`
        SELECT amount_received, amount_refunded, currency, pricing_version FROM payments WHERE id = ${capture.id}`,
    );
    // What was refunded already went back to the cardholder: only the rest can be disputed.
    const disputed = await this.router
      .get(capture.processor)
      .dispute({ reference: capture.processor_reference, amount: payment.amount_received - payment.amount_refunded });
    if (!disputed) {
      await this.unwatch(scope, capture.id);
      return false;
    }
    // The fee of the plan version the payment was priced with, read before the transaction holds a connection.
    const price = priceFixedFee(
      await this.pricing.planVersion(scope, payment.pricing_version),
      'dispute_fee',
      payment.currency,
    );
    return inScope(this.sql, scope, async (tx) => {
      // Locked so that a refund cannot start while the dispute opens (refunds lock the same row and
      // refuse a disputed payment); re-read because one may have completed since the read above.
      const [locked] = await tx<{ remaining: number }[]>`
        SELECT amount_received - amount_refunded AS remaining FROM payments WHERE id = ${capture.id} FOR UPDATE`;
      // Off the watch list whatever happens next: opened now, already open, or nothing left to dispute.
      await tx`DELETE FROM dispute_watch WHERE payment_id = ${capture.id}`;
      const amount = Math.min(disputed.amount, locked.remaining);
      if (amount <= 0) return false;
      const now = this.now();
      const transactionId = newId('txn', this.now());
      const row: DisputeRow = {
        id: newId('dp', this.now()),
        tenant_id: scope.tenantId,
        livemode: scope.livemode,
        payment_id: capture.id,
        amount,
        currency: payment.currency,
        reason: disputed.reason,
        status: 'needs_response',
        evidence: {},
        evidence_submitted_at: null,
        due_by: new Date(now.getTime() + RESPONSE_WINDOW_MS),
        fee: price.fee,
        processor: capture.processor,
        metadata: {},
        balance_transactions: [transactionId],
        created_at: now,
        updated_at: now,
      };
      // Two workers may find the same capture: the unique payment_id lets only one open it.
      const inserted = await insertRows(
        tx,
        'disputes',
        DISPUTE_COLUMNS,
        [row],
        'ON CONFLICT (payment_id) DO NOTHING RETURNING id',
      );
      if (!inserted.length) return false;
      await this.ledger.post(tx, scope, [
        {
          ...disputeTransaction({
            id: row.id,
            currency: row.currency,
            amount: row.amount,
            fee: price.fee,
            feeDetails: price.fee_details,
            availableOn: now,
          }),
          id: transactionId,
        },
      ]);
      const api = toApiDispute(row);
      await insertRows(tx, 'events', EVENT_COLUMNS, [
        newEvent(scope, 'dispute.created', api, null, this.now()),
        newEvent(scope, 'dispute.funds_withdrawn', api, null, this.now()),
      ]);
      return true;
    });
  }

  private async unwatch(scope: Scope, paymentId: string) {
    await inScope(this.sql, scope, (tx) => tx`DELETE FROM dispute_watch WHERE payment_id = ${paymentId}`);
  }

  /**
   * Merges evidence and metadata; unless `submit` is false, submits the evidence (under_review).
   * Evidence, or an explicit submit, is refused once the dispute no longer needs a response or is
   * past due; metadata may change at any time.
   */
  async update(scope: Scope, id: string, body: UpdateDisputeBody, context: AuditContext): Promise<Dispute> {
    const submit = body.submit !== false;
    const answering = body.evidence !== undefined || body.submit === true;
    return inScope(this.sql, scope, async (tx) => {
      const before = toApiDispute(await this.find(tx, scope, id));
      const [row] = await tx<DisputeRow[]>`
        UPDATE disputes SET
          evidence = jsonb_strip_nulls(evidence || ${tx.json(patchOf(body.evidence) as never)}),
          metadata = jsonb_strip_nulls(metadata || ${tx.json(patchOf(body.metadata) as never)}),
          status = CASE WHEN ${submit} AND status = 'needs_response' AND due_by > ${this.now()} THEN 'under_review' ELSE status END,
          evidence_submitted_at = CASE WHEN ${submit} AND status = 'needs_response' AND due_by > ${this.now()} THEN ${this.now()} ELSE evidence_submitted_at END,
          updated_at = ${this.now()}
        WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
          AND (NOT ${answering} OR (status = 'needs_response' AND due_by > ${this.now()}))
        RETURNING *`;
      if (!row) throw unanswerable(await this.find(tx, scope, id));
      // The schema bounds the keys one request sends; merged into those stored, the total must
      // stay within the limit too. Throwing here rolls the update back.
      const keys = Object.keys(row.metadata ?? {}).length;
      if (keys > METADATA_LIMITS.keys) {
        throw ApiError.invalid(
          'parameter_invalid',
          `Invalid parameter metadata: at most ${METADATA_LIMITS.keys} keys are allowed; with those already set ` +
            `this update would make ${keys}.`,
          'metadata',
        );
      }
      const api = toApiDispute(row);
      await insertRows(tx, 'events', EVENT_COLUMNS, [
        newEvent(scope, 'dispute.updated', api, context.requestId, this.now()),
      ]);
      await recordAudit(tx, {
        scope,
        context,
        action: 'dispute.updated',
        target: { type: 'dispute', id },
        before,
        after: api,
      });
      return api;
    });
  }

  /** Accepts the loss. Closing a dispute that is already lost returns it unchanged. */
  async close(scope: Scope, id: string, context: AuditContext): Promise<Dispute> {
    return inScope(this.sql, scope, async (tx) => {
      const closed = await this.lose(tx, scope, id, { overdueOnly: false, requestId: context.requestId });
      if (closed) {
        await recordAudit(tx, {
          scope,
          context,
          action: 'dispute.closed',
          target: { type: 'dispute', id },
          before: { status: 'needs_response' },
          after: closed,
        });
        return closed;
      }
      const row = await this.find(tx, scope, id);
      if (row.status === 'lost') return toApiDispute(row);
      throw unanswerable(row);
    });
  }

  /**
   * Worker pass: disputes left unanswered past due_by are lost, and disputes under review get the
   * processor's decision.
   */
  async review(limit = 100, items: ItemRunner = separately('disputes')): Promise<number> {
    const page = limit + items.waiting;
    const overdue = await this.workerSql<ScopedItem[]>`SELECT * FROM worker_overdue_disputes(${this.now()}, ${page})`;
    const underReview = await this.workerSql<ScopedItem[]>`SELECT * FROM worker_disputes_under_review(${page})`;
    const tasks = [
      ...overdue.map((item) => ({ id: item.id, run: () => this.expire(item) })),
      ...underReview.map((item) => ({ id: item.id, run: () => this.decide(item) })),
    ];
    return items.each(
      tasks,
      (task) => task.id,
      (task) => task.run(),
    );
  }

  private async expire(item: ScopedItem): Promise<boolean> {
    const scope = scopeOf(item);
    return Boolean(
      await inScope(this.sql, scope, (tx) => this.lose(tx, scope, item.id, { overdueOnly: true, requestId: null })),
    );
  }

  private async decide(item: ScopedItem): Promise<boolean> {
    const scope = scopeOf(item);
    const { dispute, reference } = await inScope(this.sql, scope, async (tx) => {
      const dispute = await this.find(tx, scope, item.id);
      const [payment] = await tx<
        { processor_reference: string }[]
      >`SELECT processor_reference FROM payments WHERE id = ${dispute.payment_id}`;
      return { dispute, reference: payment.processor_reference };
    });
    if (dispute.status !== 'under_review') return false;
    const outcome = await this.router
      .get(dispute.processor)
      .disputeOutcome({ reference, evidence: dispute.evidence as Record<string, string> });
    return inScope(this.sql, scope, async (tx) => {
      const reversalId = outcome === 'won' ? newId('txn', this.now()) : null;
      const [row] = await tx<DisputeRow[]>`
        UPDATE disputes SET status = ${outcome}, updated_at = ${this.now()},
          balance_transactions = ${reversalId ? tx`array_append(balance_transactions, ${reversalId})` : tx`balance_transactions`}
        WHERE id = ${item.id} AND status = 'under_review'
        RETURNING *`;
      if (!row) return false;
      if (reversalId) {
        await this.ledger.post(tx, scope, [
          {
            ...disputeWonTransaction({
              id: row.id,
              currency: row.currency,
              amount: row.amount,
              availableOn: this.now(),
            }),
            id: reversalId,
          },
        ]);
        const api = toApiDispute(row);
        await insertRows(tx, 'events', EVENT_COLUMNS, [
          newEvent(scope, 'dispute.funds_reinstated', api, null, this.now()),
          newEvent(scope, 'dispute.closed', api, null, this.now()),
        ]);
      } else {
        await this.ledger.post(tx, scope, [
          disputeLostTransaction({ id: row.id, currency: row.currency, amount: row.amount }),
        ]);
        await insertRows(tx, 'events', EVENT_COLUMNS, [
          newEvent(scope, 'dispute.closed', toApiDispute(row), null, this.now()),
        ]);
      }
      return true;
    });
  }

  /**
   * needs_response → lost, with the withheld amount going back to the cardholder; null if the status was not
   * needs_response.
   */
  private async lose(
    tx: Tx,
    scope: Scope,
    id: string,
    options: { overdueOnly: boolean; requestId: string | null },
  ): Promise<Dispute | null> {
    const [row] = await tx<DisputeRow[]>`
      UPDATE disputes SET status = 'lost', updated_at = ${this.now()}
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND status = 'needs_response'
        ${options.overdueOnly ? tx`AND due_by <= ${this.now()}` : tx``}
      RETURNING *`;
    if (!row) return null;
    await this.ledger.post(tx, scope, [
      disputeLostTransaction({ id: row.id, currency: row.currency, amount: row.amount }),
    ]);
    const api = toApiDispute(row);
    await insertRows(tx, 'events', EVENT_COLUMNS, [
      newEvent(scope, 'dispute.closed', api, options.requestId, this.now()),
    ]);
    return api;
  }

  private async find(tx: Tx, scope: Scope, id: string): Promise<DisputeRow> {
    return findOwned<DisputeRow>(tx, 'disputes', scope, id, 'dispute');
  }

  async retrieve(scope: Scope, id: string): Promise<Dispute> {
    return toApiDispute(await scopedRead(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  /** `from`: the demo seeder reads what the worker's intake has just written, which the replica may not have yet. */
  async list(scope: Scope, params: DisputeListQuery, from: Reads = this.reads) {
    return listRead(from, scope, params.payment !== undefined, async (tx) => {
      const page = await listPage<DisputeRow>(tx, 'disputes', scope, params, [
        params.payment ? tx`AND payment_id = ${params.payment}` : tx``,
      ]);
      return { data: page.rows.map(toApiDispute), has_more: page.hasMore };
    });
  }
}

function unanswerable(row: DisputeRow): ApiError {
  const message =
    row.status === 'needs_response'
      ? 'This dispute is past its due_by date: evidence can no longer be submitted.'
      : `This dispute's status is ${row.status}; evidence can only be given, and a dispute closed, while its status is needs_response.`;
  return ApiError.invalid('dispute_unexpected_state', message);
}
