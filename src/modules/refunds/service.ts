import { primaryReads, type Reads } from '../../db/replica.js';
import { inScope, scopedRead, scopedStatement, type Scope, type Sql, type Tx } from '../../db/index.js';
import { findManyOwned, findOwned, listPage, type ListParams } from '../../db/list.js';
import { columnNames, insertRows, UnnestStatement, type Columns } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import type { ConnectorRouter } from '../connectors/router.js';
import { EVENT_COLUMNS, newEvent } from '../events/events.js';
import { refundTransaction } from '../ledger/postings.js';
import { postingCtes, type LedgerService, type PreparedPosting } from '../ledger/service.js';
import type { Plan } from '../pricing/schemas.js';
import { priceFixedFee, type PricingService } from '../pricing/service.js';
import type { CreateRefundBody, Refund } from './schemas.js';
import { recordAudit, type AuditContext } from '../audit/record.js';
import { systemClock, type Clock } from '../../lib/time.js';

interface RefundRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  payment_id: string;
  amount: number;
  currency: string;
  reason: string | null;
  status: 'pending' | 'succeeded' | 'failed';
  failure_reason: string | null;
  processor: string | null;
  processor_reference: string | null;
  balance_transaction: string | null;
  metadata: Record<string, string>;
  idempotency_key: string | null;
  created_at: Date;
  updated_at: Date;
}

const REFUND_COLUMNS: Columns<RefundRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['payment_id', 'text'],
  ['amount', 'bigint'],
  ['currency', 'text'],
  ['reason', 'text'],
  ['status', 'text'],
  ['failure_reason', 'text'],
  ['processor', 'text'],
  ['processor_reference', 'text'],
  ['balance_transaction', 'text'],
  ['metadata', 'jsonb'],
  ['idempotency_key', 'text'],
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

export function toApiRefund(row: RefundRow): Refund {
  return {
    id: row.id,
    object: 'refund',
    amount: row.amount,
    currency: row.currency,
    payment: row.payment_id,
    reason: row.reason,
    status: row.status,
    failure_reason: row.failure_reason,
    balance_transaction: row.balance_transaction,
    metadata: row.metadata ?? {},
    created: Math.floor(new Date(row.created_at).getTime() / 1000),
    livemode: row.livemode,
  };
}

/**
 * Refunds reserve their amount on the payment with one conditional increment before the
 * processor is called, so concurrent refunds can never add up to more than was captured; a
 * refund the processor rejects gives its amount back.
 */
export class RefundService {
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

  /**
   * `idempotencyKey` (qualified by the caller's principal) is stored on the refund: a retry whose
   * first run died finds that refund and finishes it, if still pending, instead of refunding twice.
   */
  async create(
    scope: Scope,
    body: CreateRefundBody,
    context: AuditContext,
    idempotencyKey: string | null = null,
  ): Promise<Refund> {
    const { requestId } = context;
    const refund = await inScope(this.sql, scope, async (tx) => {
      if (idempotencyKey) {
        const [earlier] = await tx<RefundRow[]>`
          SELECT * FROM refunds
          WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND idempotency_key = ${idempotencyKey}`;
        if (earlier) return earlier;
      }
      const [payment] = await tx<
        {
          id: string;
          status: string;
          currency: string;
          amount_received: number;
          amount_refunded: number;
          processor: string | null;
          processor_reference: string | null;
        }[]
      >`
        SELECT id, status, currency, amount_received, amount_refunded, processor, processor_reference FROM payments
        WHERE id = ${body.payment} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}`;
      if (!payment) throw ApiError.notFound('payment', body.payment, 'payment');
      if (payment.status !== 'succeeded') {
        throw ApiError.invalid(
          'payment_not_captured',
          `This payment's status is ${payment.status}; only a captured payment can be refunded.`,
          'payment',
        );
      }
      const amount = body.amount ?? payment.amount_received - payment.amount_refunded;
      if (amount <= 0)
        throw ApiError.invalid('charge_already_refunded', 'This payment has already been refunded in full.', 'payment');
      const reserved = await tx`
        UPDATE payments SET amount_refunded = amount_refunded + ${amount}, updated_at = ${this.now()}
        WHERE id = ${payment.id} AND amount_refunded + ${amount} <= amount_received
        RETURNING id`;
      if (!reserved.length) {
        throw ApiError.invalid(
          'amount_too_large',
          `Refund amount exceeds what remains refundable on this payment.`,
          'amount',
        );
      }
      // After the row lock above: a dispute opening on this payment holds the same lock, so it is
      // either visible here or opens after this refund and disputes only what remains.
      const [disputed] = await tx`SELECT id FROM disputes WHERE payment_id = ${payment.id}`;
      if (disputed) {
        throw ApiError.invalid(
          'charge_disputed',
          'This payment is disputed: its funds are settled through the dispute, not refunded.',
          'payment',
        );
      }
      const now = this.now();
      const row: RefundRow = {
        id: newId('re', this.now()),
        tenant_id: scope.tenantId,
        livemode: scope.livemode,
        payment_id: payment.id,
        amount,
        currency: payment.currency,
        reason: body.reason ?? null,
        status: 'pending',
        failure_reason: null,
        processor: payment.processor,
        processor_reference: payment.processor_reference,
        balance_transaction: null,
        metadata: body.metadata ?? {},
        idempotency_key: idempotencyKey,
        created_at: now,
        updated_at: now,
      };
      await insertRows(tx, 'refunds', REFUND_COLUMNS, [row]);
      await insertRows(tx, 'events', EVENT_COLUMNS, [
        newEvent(scope, 'refund.created', toApiRefund(row), requestId, this.now()),
      ]);
      await recordAudit(tx, {
        scope,
        context,
        action: 'refund.created',
        target: { type: 'refund', id: row.id },
        after: toApiRefund(row),
      });
      return row;
    });
    if (refund.status !== 'pending') return toApiRefund(refund);
    return this.finish(scope, refund, requestId);
  }

  /**
   * Calls the processor with the refund id as its idempotency key and records the answer. With no
   * answer (a timeout, a dropped connection) the processor may have refunded: the refund stays
   * `pending` with its amount still reserved, and is answered as it stands; the recovery worker
   * replays the call with the same refund id until the processor answers, and no second refund is
   * ever sent for it.
   */
  async finish(scope: Scope, refund: RefundRow, requestId: string | null): Promise<Refund> {
    if (refund.status !== 'pending') return toApiRefund(refund);
    const outcome = await this.router.call(refund.processor!, 'refund', (connector) =>
      connector.refund({
        merchant: { tenantId: refund.tenant_id, livemode: refund.livemode },
        paymentId: refund.payment_id,
        refundId: refund.id,
        reference: refund.processor_reference ?? '',
        amount: refund.amount,
        currency: refund.currency,
      }),
    );
    if (outcome.status === 'unknown') return toApiRefund(refund);
    const succeeded = outcome.status === 'succeeded';
    const now = this.now();
    const row: RefundRow = {
      ...refund,
      status: succeeded ? 'succeeded' : 'failed',
      failure_reason: succeeded ? null : 'processor_error',
      balance_transaction: succeeded ? newId('txn', now) : null,
      updated_at: now,
    };
    const api = toApiRefund(row);
    const event = newEvent(scope, succeeded ? 'refund.succeeded' : 'refund.failed', api, requestId, now);
    // Read before the statement so that a plan or accounts not yet cached are not fetched while it holds locks.
    const posting = succeeded ? await this.posting(scope, row) : undefined;
    const statement = new UnnestStatement();
    // One statement, sent with BEGIN and COMMIT in one round trip: the refund's outcome, its posting (which locks
    // the tenant's pending account, the one every payment batch also locks) or the release of its reserved amount,
    // and its event. Run as separate statements the lock was held over several round trips, and every payment
    // batch of the tenant queued behind it (a refund's posting took 330 ms in the mixed bench, see README).
    // Written only if the refund is still pending: a concurrent finish (the recovery worker) did it otherwise.
    const text = `
      WITH done AS (
        UPDATE refunds SET status = ${statement.param(row.status)}, failure_reason = nullif(${statement.param(row.failure_reason ?? '')}, ''),
          balance_transaction = nullif(${statement.param(row.balance_transaction ?? '')}, ''),
          updated_at = ${statement.param(now.toISOString())}::timestamptz
        WHERE id = ${statement.param(refund.id)} AND status = 'pending'
        RETURNING id, payment_id
      ), ev AS (
        INSERT INTO events (${columnNames(EVENT_COLUMNS)})
        SELECT * FROM (${statement.rows(EVENT_COLUMNS, [event])}) e WHERE e.object_id IN (SELECT id FROM done)
      ), ${
        posting
          ? postingCtes(statement, posting, 'done')
          : `released AS (
        UPDATE payments p SET amount_refunded = p.amount_refunded - ${statement.param(String(refund.amount))}::bigint,
          updated_at = ${statement.param(now.toISOString())}::timestamptz
        FROM done WHERE p.id = done.payment_id
      )`
      }
      SELECT id FROM done`;
    const written = await scopedStatement(this.sql, [scope], (tx) => statement.run<{ id: string }[]>(tx, text));
    if (written.length) return api;
    return toApiRefund(await inScope(this.sql, scope, (tx) => this.find(tx, scope, refund.id)));
  }

  /** The refund's posting: it leaves the tenant's pending funds with the refund fee of its payment's plan version. */
  private async posting(scope: Scope, refund: RefundRow): Promise<PreparedPosting> {
    const [plan, accounts] = await Promise.all([
      this.planOf(scope, refund.payment_id),
      this.ledger.accountsFor(scope, refund.currency),
    ]);
    const price = priceFixedFee(plan, 'refund_fee', refund.currency);
    return this.ledger.prepare(
      scope,
      [
        refundTransaction({
          id: refund.id,
          transactionId: refund.balance_transaction!,
          paymentId: refund.payment_id,
          currency: refund.currency,
          amount: refund.amount,
          fee: price.fee,
          feeDetails: price.fee_details,
          availableOn: refund.updated_at,
        }),
      ],
      () => accounts,
    );
  }

  /** The plan version the refund's payment was priced with: its refund fee is the refund's. */
  private async planOf(scope: Scope, paymentId: string): Promise<Plan> {
    const [payment] = await scopedRead(
      this.sql,
      scope,
      (tx) => tx<{ pricing_version: number }[]>`SELECT pricing_version FROM payments WHERE id = ${paymentId}`,
    );
    return this.pricing.planVersion(scope, payment.pricing_version);
  }

  /**
   * Completes refunds left pending by a crash or an unanswered call; the refund id is the
   * processor's idempotency key, so a replay never refunds twice.
   */
  async recoverStuckRefunds(
    olderThanSeconds = 60,
    limit = 100,
    items: ItemRunner = separately('refunds'),
  ): Promise<number> {
    const stuck = await this.workerSql<{ id: string; tenant_id: string; livemode: boolean }[]>`
      SELECT * FROM worker_stuck_refunds(${`${olderThanSeconds} seconds`}::interval, ${limit + items.waiting})`;
    await items.each(
      stuck,
      (item) => item.id,
      async (item) => {
        const scope = { tenantId: item.tenant_id, livemode: item.livemode };
        const row = await inScope(this.sql, scope, (tx) => this.find(tx, scope, item.id));
        await this.finish(scope, row, null);
        return true;
      },
    );
    return stuck.length;
  }

  private async find(tx: Tx, scope: Scope, id: string): Promise<RefundRow> {
    return findOwned<RefundRow>(tx, 'refunds', scope, id, 'refund');
  }

  async retrieve(scope: Scope, id: string): Promise<Refund> {
    return toApiRefund(await inScope(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  async retrieveMany(scope: Scope, ids: string[]): Promise<Refund[]> {
    const rows = await inScope(this.sql, scope, (tx) => findManyOwned<RefundRow>(tx, 'refunds', scope, ids));
    return rows.map(toApiRefund);
  }

  /**
   * The refunds of each payment, newest first, at most `limit` each (and whether it has more), in one query: a
   * payment's `refunds` list when expanded.
   */
  async listForPayments(scope: Scope, paymentIds: string[], limit: number) {
    const rows = paymentIds.length
      ? await inScope(
          this.sql,
          scope,
          (tx) => tx<(RefundRow & { rank: number })[]>`
            SELECT * FROM (
              SELECT r.*, row_number() OVER (PARTITION BY payment_id ORDER BY id DESC) AS rank FROM refunds r
              WHERE payment_id = ANY(${paymentIds}) AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
            ) ranked
            WHERE rank <= ${limit + 1}
            ORDER BY id DESC`,
        )
      : [];
    const byPayment = new Map<string, { data: Refund[]; has_more: boolean }>();
    for (const id of paymentIds) byPayment.set(id, { data: [], has_more: false });
    for (const { rank, ...row } of rows) {
      const page = byPayment.get(row.payment_id)!;
      if (Number(rank) > limit) page.has_more = true;
      else page.data.push(toApiRefund(row));
    }
    return byPayment;
  }

  async list(scope: Scope, params: ListParams & { payment?: string }) {
    return this.reads.inScope(scope, async (tx) => {
      const page = await listPage<RefundRow>(tx, 'refunds', scope, params, [
        params.payment ? tx`AND payment_id = ${params.payment}` : tx``,
      ]);
      return { data: page.rows.map(toApiRefund), has_more: page.hasMore };
    });
  }
}
