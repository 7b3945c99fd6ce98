import postgres from 'postgres';
import { MicroBatcher, type BatcherOptions } from '../../db/batcher.js';
import { listRead, primaryReads, type Reads } from '../../db/replica.js';
import {
  inScope,
  readThenWrite,
  scopedPageRead,
  scopedRead,
  scopedStatement,
  type Scope,
  type Sql,
  type Tx,
} from '../../db/index.js';
import { findManyOwned, findOwned, listPage, type ListParams } from '../../db/list.js';
import { columnNames, UnnestStatement, type Columns } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import type { ConnectorRouter } from '../connectors/router.js';
import { EVENT_COLUMNS, newEvent, type NewEventRow } from '../events/events.js';
import { refundTransaction } from '../ledger/postings.js';
import { postingCtes, type LedgerService, type PreparedPosting } from '../ledger/service.js';
import type { Plan } from '../pricing/schemas.js';
import { priceFixedFee, type PricingService } from '../pricing/service.js';
import type { CreateRefundBody, Refund } from './schemas.js';
import { AUDIT_ENTRY_COLUMNS, auditEntry, type AuditContext, type AuditEntryRow } from '../audit/record.js';
import { systemClock, type Clock } from '../../lib/time.js';

/** A refund as its first transaction left it, with its payment's plan version for the posting. */
interface PendingRefund {
  refund: RefundRow;
  pricingVersion?: number;
}

/** A refund's outcome as the processor gave it, waiting for its batch (RefundService.writeOutcomes). */
interface RefundOutcome {
  scope: Scope;
  refund: RefundRow;
  event: NewEventRow;
  posting?: PreparedPosting;
}

/** A refund to reserve in a batch (RefundService.writeReservations), with what it writes beside it. */
interface Reservation {
  scope: Scope;
  refund: RefundRow;
  /** For a refund of what remains: the amount refunded when it was read, which must not have changed. */
  refundedBefore: number | null;
  event: NewEventRow;
  audit: AuditEntryRow;
}

const WANTED_COLUMNS: Columns<{
  id: string;
  payment_id: string;
  amount: number;
  refunded_before: number | null;
  updated_at: Date;
  ord: number;
}> = [
  ['id', 'text'],
  ['payment_id', 'text'],
  ['amount', 'bigint'],
  ['refunded_before', 'bigint'],
  ['updated_at', 'timestamptz'],
  ['ord', 'integer'],
];

const UNIQUE_VIOLATION = '23505';

/** What a refund needs of its payment. */
interface RefundablePayment {
  id: string;
  status: string;
  currency: string;
  amount_received: number;
  amount_refunded: number;
  processor: string | null;
  processor_reference: string | null;
  pricing_version: number;
}

/** Its columns, for both reads of it: the batched check and the locked read. */
const REFUNDABLE_PAYMENT_COLUMNS: (keyof RefundablePayment)[] = [
  'id',
  'status',
  'currency',
  'amount_received',
  'amount_refunded',
  'processor',
  'processor_reference',
  'pricing_version',
];

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

const OUTCOME_COLUMNS: Columns<
  Pick<RefundRow, 'id' | 'status' | 'failure_reason' | 'balance_transaction' | 'updated_at'>
> = [
  ['id', 'text'],
  ['status', 'text'],
  ['failure_reason', 'text'],
  ['balance_transaction', 'text'],
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

/** The refusal of a refund larger than what its payment has left to give. */
const amountTooLarge = () =>
  ApiError.invalid('amount_too_large', 'Refund amount exceeds what remains refundable on this payment.', 'amount');

/** Why a payment cannot give this refund, if it cannot: the answer of a refused refund. */
function refusal(body: CreateRefundBody, payment: RefundablePayment, disputed: boolean): ApiError | undefined {
  if (payment.status !== 'succeeded') {
    return ApiError.invalid(
      'payment_not_captured',
      `This payment's status is ${payment.status}; only a captured payment can be refunded.`,
      'payment',
    );
  }
  const remaining = payment.amount_received - payment.amount_refunded;
  const amount = body.amount ?? remaining;
  if (amount <= 0)
    return ApiError.invalid('charge_already_refunded', 'This payment has already been refunded in full.', 'payment');
  if (amount > remaining) return amountTooLarge();
  if (disputed) {
    return ApiError.invalid(
      'charge_disputed',
      'This payment is disputed: its funds are settled through the dispute, not refunded.',
      'payment',
    );
  }
  return undefined;
}

/** A new refund's refund.created event and audit entry. */
function reservationRecords(scope: Scope, row: RefundRow, context: AuditContext) {
  const api = toApiRefund(row);
  return {
    event: newEvent(scope, 'refund.created', api, context.requestId, row.created_at),
    audit: auditEntry({ scope, context, action: 'refund.created', target: { type: 'refund', id: row.id }, after: api }),
  };
}

/**
 * The statement that reserves refunds, run on a transaction that holds their payments' locks: it accepts each refund
 * whose payment is captured, not disputed and can still give its amount (counting the earlier refunds of the same
 * payment in the list; a refund of what remains only if nothing was refunded since it was read), reserves the
 * accepted amounts (the payments' CHECK stays the last line) and writes their refunds, events and audit entries.
 * Resolves to the ids of the refunds it reserved.
 */
function reservationStatement(reservations: Reservation[]): (tx: Tx) => Promise<Set<string>> {
  const statement = new UnnestStatement();
  const wanted = reservations.map(({ refund, refundedBefore }, ord) => ({
    id: refund.id,
    payment_id: refund.payment_id,
    amount: refund.amount,
    refunded_before: refundedBefore,
    updated_at: refund.updated_at,
    ord,
  }));
  const accepted = <Row>(table: string, columns: Columns<Row>, rows: Row[], key: string) => `
      INSERT INTO ${table} (${columnNames(columns)})
      SELECT * FROM (${statement.rows(columns, rows)}) r WHERE r.${key} IN (SELECT id FROM kept)`;
  const text = `
    WITH wanted AS (
      SELECT w.*, sum(w.amount) OVER (PARTITION BY w.payment_id ORDER BY w.ord) AS upto
      FROM (${statement.rows(WANTED_COLUMNS, wanted)}) w
    ), fits AS (
      SELECT w.id, w.payment_id, w.amount, w.updated_at FROM wanted w JOIN payments p ON p.id = w.payment_id
      WHERE p.status = 'succeeded' AND p.amount_refunded + w.upto <= p.amount_received
        AND (w.refunded_before IS NULL OR p.amount_refunded + w.upto - w.amount = w.refunded_before)
        AND NOT EXISTS (SELECT FROM disputes d WHERE d.payment_id = w.payment_id)
    ), reserved AS (
      UPDATE payments p SET amount_refunded = p.amount_refunded + f.amount, updated_at = f.updated_at
      FROM (SELECT payment_id, sum(amount) AS amount, max(updated_at) AS updated_at FROM fits GROUP BY payment_id) f
      WHERE p.id = f.payment_id AND p.amount_refunded + f.amount <= p.amount_received
      RETURNING p.id
    ), kept AS (
      SELECT id FROM fits WHERE payment_id IN (SELECT id FROM reserved)
    ), refund AS (${accepted(
      'refunds',
      REFUND_COLUMNS,
      reservations.map((r) => r.refund),
      'id',
    )}
    ), event AS (${accepted(
      'events',
      EVENT_COLUMNS,
      reservations.map((r) => r.event),
      'object_id',
    )}
    ), audit AS (${accepted(
      'audit_entries',
      AUDIT_ENTRY_COLUMNS,
      reservations.map((r) => r.audit),
      'target_id',
    )}
    )
    SELECT id FROM kept`;
  return async (tx) => new Set((await statement.run<{ id: string }[]>(tx, text)).map((row) => row.id));
}

export interface RefundCheck {
  scope: Scope;
  payment: string;
  idempotencyKey: string | null;
}

interface RefundCheckResult {
  payment: RefundablePayment | undefined;
  /** A refund already made under the key: decided under the payment's lock (reserveAlone), not here. */
  earlier: boolean;
  disputed: boolean;
}

/**
 * The keys of the batch's keyed refunds, by tenant and mode: each mode's earlier refunds are looked up by a query of
 * its own, `tenant_id = $1 AND livemode = $2 AND idempotency_key = ANY($3)`, all sent in the read's one round trip, so
 * that the three columns of `refunds_idempotency_key` are its condition. One query for all, `= ANY` on each column,
 * was a bitmap scan of the tenant's refunds filtered row by row (6.5 ms a call at 11,600 refunds under the refund
 * benchmark).
 */
function keysByScope(keyed: RefundCheck[]): { scope: Scope; keys: string[] }[] {
  const byScope = new Map<string, { scope: Scope; keys: string[] }>();
  for (const check of keyed) {
    const id = `${check.scope.tenantId}:${check.scope.livemode}`;
    let entry = byScope.get(id);
    if (!entry) byScope.set(id, (entry = { scope: check.scope, keys: [] }));
    entry.keys.push(check.idempotencyKey!);
  }
  return [...byScope.values()];
}

/**
 * The unlocked reads before a refund's reservation (refundReads without the lock), for the refunds of concurrent
 * requests in one round trip: each refund read alone was a transaction of its own (BEGIN, the scope, three queries,
 * COMMIT). Each query looks its rows up by `= ANY` on an index (a join of the batch's rows to payments, measured,
 * cost PostgreSQL more a refund than the batch saved); the earlier refunds by key, a query per mode (keysByScope).
 * Each planned for its own parameters, under the page's planner settings (no sequential or bitmap scans): planned
 * once for any parameters, as the API's pools plan a statement after five runs, the lookup by key took its keys as a
 * filter, not an index condition, and read every refund of the tenant (auto_explain under the refund benchmark: 20 ms
 * a call, 16,861 rows read for none found; 38% of PostgreSQL's time).
 * Row-level security limits them to the batch's scopes, and each check keeps only the rows of its own tenant and
 * mode, so a payment of another tenant is not found, as alone.
 */
export async function readRefundChecks(sql: Sql, checks: RefundCheck[]): Promise<RefundCheckResult[]> {
  const paymentIds = [...new Set(checks.map((check) => check.payment))];
  const keyed = checks.filter((check) => check.idempotencyKey !== null);
  const [, payments, earlier, disputes] = await scopedPageRead(
    sql,
    checks.map((check) => check.scope),
    (tx) =>
      Promise.all([
        // Sent now: the lookups by key below are sent as they are made, before the array's later members.
        tx`SELECT set_config('plan_cache_mode', 'force_custom_plan', true)`.execute(),
        tx<(RefundablePayment & { tenant_id: string; livemode: boolean })[]>`
          SELECT ${tx([...REFUNDABLE_PAYMENT_COLUMNS, 'tenant_id', 'livemode'])} FROM payments WHERE id = ANY(${paymentIds})`,
        Promise.all(
          keysByScope(keyed).map(
            ({ scope, keys }) => tx<{ tenant_id: string; livemode: boolean; idempotency_key: string }[]>`
              SELECT tenant_id, livemode, idempotency_key FROM refunds
              WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND idempotency_key = ANY(${keys})`,
          ),
        ).then((found) => found.flat()),
        tx<{ payment_id: string }[]>`SELECT payment_id FROM disputes WHERE payment_id = ANY(${paymentIds})`,
      ]),
  );
  const byId = new Map(payments.map((payment) => [payment.id, payment]));
  const usedKeys = new Set(earlier.map((r) => `${r.tenant_id}:${r.livemode}:${r.idempotency_key}`));
  const disputed = new Set(disputes.map((d) => d.payment_id));
  return checks.map(({ scope, payment: id, idempotencyKey }) => {
    const payment = byId.get(id);
    const own = payment && payment.tenant_id === scope.tenantId && payment.livemode === scope.livemode;
    return {
      payment: own ? payment : undefined,
      earlier: idempotencyKey !== null && usedKeys.has(`${scope.tenantId}:${scope.livemode}:${idempotencyKey}`),
      disputed: disputed.has(id),
    };
  });
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
    batching: BatcherOptions = { maxSize: 64, maxConcurrency: 2 },
  ) {
    this.checks = new MicroBatcher((checks) => readRefundChecks(this.sql, checks), batching);
    this.reservations = new MicroBatcher((reservations) => this.writeReservations(reservations), batching);
    this.outcomes = new MicroBatcher((outcomes) => this.writeOutcomes(outcomes), batching);
  }

  private readonly checks: MicroBatcher<RefundCheck, RefundCheckResult>;
  private readonly reservations: MicroBatcher<Reservation, boolean>;
  private readonly outcomes: MicroBatcher<RefundOutcome, boolean>;

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
    const { refund, pricingVersion } =
      (await this.reserveInBatch(scope, body, context, idempotencyKey)) ??
      (await this.reserveAlone(scope, body, context, idempotencyKey));
    if (refund.status !== 'pending') return toApiRefund(refund);
    return this.finish(scope, refund, context.requestId, pricingVersion);
  }

  /**
   * The payment, a refund already made under the key and a dispute of the payment. Locked, the payment is read first
   * and the statements after it see what committed before they ran: a dispute opening on it (which holds the same
   * lock) is either visible or opens after this refund and disputes only what remains, and a refund under the same
   * key on it is found.
   */
  private async refundReads(
    tx: Tx,
    scope: Scope,
    body: CreateRefundBody,
    idempotencyKey: string | null,
  ): Promise<[RefundablePayment | undefined, RefundRow | undefined, boolean]> {
    const [[payment], [earlier], [disputed]] = await Promise.all([
      tx<RefundablePayment[]>`
        SELECT ${tx(REFUNDABLE_PAYMENT_COLUMNS)} FROM payments
        WHERE id = ${body.payment} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode}
        FOR NO KEY UPDATE`,
      idempotencyKey
        ? tx<RefundRow[]>`
            SELECT * FROM refunds
            WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND idempotency_key = ${idempotencyKey}`
        : Promise.resolve([]),
      tx<{ id: string }[]>`SELECT id FROM disputes WHERE payment_id = ${body.payment}`,
    ]);
    return [payment, earlier, disputed !== undefined];
  }

  /**
   * The common case, without holding the payment over round trips: the payment read unlocked, with concurrent
   * refunds' reads (readRefundChecks), and if nothing refuses the refund, its reservation joins the batch of
   * concurrent refunds' (writeReservations), which checks the payment again under its lock. One refund at a time,
   * every reservation held the tenant's audit chain head (its audit entry is linked to the one before) for a commit
   * of its own. Anything else (a refusal, a refund already made under the key, a payment changed since it was read,
   * a key used by a concurrent request) is left to reserveAlone, which decides under the payment's lock and answers
   * as before: undefined.
   */
  private async reserveInBatch(
    scope: Scope,
    body: CreateRefundBody,
    context: AuditContext,
    idempotencyKey: string | null,
  ): Promise<PendingRefund | undefined> {
    const { payment, earlier, disputed } = await this.checks.submit({
      scope,
      payment: body.payment,
      idempotencyKey,
    });
    if (earlier || !payment || refusal(body, payment, disputed)) return undefined;
    const row = this.newRefund(scope, body, payment, idempotencyKey);
    const reservation: Reservation = {
      scope,
      refund: row,
      // A refund of what remains is made only if nothing was refunded meanwhile; a given amount only if it still fits.
      refundedBefore: body.amount === undefined ? payment.amount_refunded : null,
      ...reservationRecords(scope, row, context),
    };
    const reserved = await this.reservations.submit(reservation).catch((error: unknown) => {
      if (error instanceof postgres.PostgresError && error.code === UNIQUE_VIOLATION) return false;
      throw error;
    });
    return reserved ? { refund: row, pricingVersion: payment.pricing_version } : undefined;
  }

  /** The refund decided under its payment's lock, in two round trips (readThenWrite). */
  private reserveAlone(
    scope: Scope,
    body: CreateRefundBody,
    context: AuditContext,
    idempotencyKey: string | null,
  ): Promise<PendingRefund> {
    return readThenWrite<PendingRefund>(this.sql, scope, async (tx) => {
      // One round trip with BEGIN and the scope; the lock is held until the write below, sent with COMMIT.
      const [payment, earlier, disputed] = await this.refundReads(tx, scope, body, idempotencyKey);
      if (earlier) {
        // The plan version is known only if the key was used for this payment; otherwise the posting reads it.
        const known = earlier.payment_id === payment?.id ? payment.pricing_version : undefined;
        return { answer: { refund: earlier, pricingVersion: known } };
      }
      if (!payment) throw ApiError.notFound('payment', body.payment, 'payment');
      const refused = refusal(body, payment, disputed);
      if (refused) throw refused;
      const row = this.newRefund(scope, body, payment, idempotencyKey);
      return {
        write: async (tx: Tx) => {
          // Checked under the payment's lock already; the statement's own checks stay as the last line.
          const reservation = { scope, refund: row, refundedBefore: null, ...reservationRecords(scope, row, context) };
          const kept = await reservationStatement([reservation])(tx);
          if (!kept.has(row.id)) throw amountTooLarge();
          return { refund: row, pricingVersion: payment.pricing_version };
        },
      };
    });
  }

  /**
   * The reservations of concurrent refunds in one transaction, in one round trip: their payments locked in id order
   * by a first statement, then reservationStatement, which under read committed sees what committed before those
   * locks were granted (a dispute opened meanwhile, a refund made meanwhile): the tenant's audit chain head is locked
   * once for the batch. The refunds not accepted are answered false and go to reserveAlone.
   */
  private async writeReservations(reservations: Reservation[]): Promise<boolean[]> {
    const reserve = reservationStatement(reservations);
    const payments = [...new Set(reservations.map((r) => r.refund.payment_id))];
    const kept = await scopedStatement(
      this.sql,
      reservations.map((r) => r.scope),
      async (tx) => {
        const locked = tx`SELECT id FROM payments WHERE id = ANY(${payments}) ORDER BY id FOR NO KEY UPDATE`.execute();
        const [, ids] = await Promise.all([locked, reserve(tx)]);
        return ids;
      },
    );
    return reservations.map((r) => kept.has(r.refund.id));
  }

  /** The pending refund of a payment that can give it. */
  private newRefund(
    scope: Scope,
    body: CreateRefundBody,
    payment: RefundablePayment,
    idempotencyKey: string | null,
  ): RefundRow {
    const amount = body.amount ?? payment.amount_received - payment.amount_refunded;
    const now = this.now();
    return {
      id: newId('re', now),
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
  }

  /**
   * Calls the processor with the refund id as its idempotency key and records the answer. With no
   * answer (a timeout, a dropped connection) the processor may have refunded: the refund stays
   * `pending` with its amount still reserved, and is answered as it stands; the recovery worker
   * replays the call with the same refund id until the processor answers, and no second refund is
   * ever sent for it.
   */
  async finish(scope: Scope, refund: RefundRow, requestId: string | null, pricingVersion?: number): Promise<Refund> {
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
    const event = newEvent(scope, succeeded ? 'refund.succeeded' : 'refund.failed', toApiRefund(row), requestId, now);
    // Read before the batch so that a plan or accounts not yet cached are not fetched while it holds locks.
    const posting = succeeded ? await this.posting(scope, row, pricingVersion) : undefined;
    if (await this.outcomes.submit({ scope, refund: row, event, posting })) return toApiRefund(row);
    return toApiRefund(await inScope(this.sql, scope, (tx) => this.find(tx, scope, refund.id)));
  }

  /**
   * The outcomes of concurrent refunds in one statement, sent with BEGIN and COMMIT in one round trip: each refund's
   * new status, its event, and its posting (which locks the tenant's pending account, the one every payment batch
   * also locks) or the release of its reserved amount. One at a time, every refund took that account's lock for a
   * commit of its own and the refunds queued behind each other: 224-247 refunds/s alone at 4.6 ms of PostgreSQL CPU
   * each (bench scenario `refund`, see README, Benchmarks). Batched, the lock is taken once per batch. Each outcome is
   * written only if its refund is still pending (a concurrent finish, the recovery worker's, did it otherwise), so a
   * batch retried one by one after a failure writes nothing twice.
   */
  private async writeOutcomes(outcomes: RefundOutcome[]): Promise<boolean[]> {
    const statement = new UnnestStatement();
    const posting: PreparedPosting = {
      transactions: outcomes.flatMap((outcome) => outcome.posting?.transactions ?? []),
      entries: outcomes.flatMap((outcome) => outcome.posting?.entries ?? []),
    };
    const text = `
      WITH outcome AS (${statement.rows(
        OUTCOME_COLUMNS,
        outcomes.map((outcome) => outcome.refund),
      )}
      ), done AS (
        UPDATE refunds r SET status = o.status, failure_reason = o.failure_reason,
          balance_transaction = o.balance_transaction, updated_at = o.updated_at
        FROM outcome o WHERE r.id = o.id AND r.status = 'pending'
        RETURNING r.id, r.payment_id, r.amount, r.status, r.updated_at
      ), ev AS (
        INSERT INTO events (${columnNames(EVENT_COLUMNS)})
        SELECT * FROM (${statement.rows(
          EVENT_COLUMNS,
          outcomes.map((outcome) => outcome.event),
        )}) e WHERE e.object_id IN (SELECT id FROM done)
      ), ${posting.transactions.length ? `${postingCtes(statement, posting, 'done')},` : ''} released AS (
        UPDATE payments p SET amount_refunded = p.amount_refunded - f.amount, updated_at = f.updated_at
        FROM (
          SELECT payment_id, sum(amount) AS amount, max(updated_at) AS updated_at FROM done
          WHERE status = 'failed' GROUP BY payment_id
        ) f
        WHERE p.id = f.payment_id
      )
      SELECT id FROM done`;
    const rows = await scopedStatement(
      this.sql,
      outcomes.map((outcome) => outcome.scope),
      (tx) => statement.run<{ id: string }[]>(tx, text),
    );
    const written = new Set(rows.map((row) => row.id));
    return outcomes.map((outcome) => written.has(outcome.refund.id));
  }

  /** The refund's posting: it leaves the tenant's pending funds with the refund fee of its payment's plan version. */
  private async posting(scope: Scope, refund: RefundRow, pricingVersion?: number): Promise<PreparedPosting> {
    const [plan, accounts] = await Promise.all([
      this.planOf(scope, refund.payment_id, pricingVersion),
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

  /** The plan version the refund's payment was priced with (read unless known): its refund fee is the refund's. */
  private async planOf(scope: Scope, paymentId: string, known?: number): Promise<Plan> {
    if (known !== undefined) return this.pricing.planVersion(scope, known);
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
    return toApiRefund(await scopedRead(this.sql, scope, (tx) => this.find(tx, scope, id)));
  }

  async retrieveMany(scope: Scope, ids: string[]): Promise<Refund[]> {
    const rows = await scopedRead(this.sql, scope, (tx) => findManyOwned<RefundRow>(tx, 'refunds', scope, ids));
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
    return listRead(this.reads, scope, params.payment !== undefined, async (tx) => {
      const page = await listPage<RefundRow>(tx, 'refunds', scope, params, [
        params.payment ? tx`AND payment_id = ${params.payment}` : tx``,
      ]);
      return { data: page.rows.map(toApiRefund), has_more: page.hasMore };
    });
  }
}
