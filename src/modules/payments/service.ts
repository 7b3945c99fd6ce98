import { primaryReads, type Reads } from '../../db/replica.js';
import type { Config } from '../../config.js';
import { inScope, type Scope, type Sql } from '../../db/index.js';
import type { MicroBatcher } from '../../db/batcher.js';
import type { ListParams } from '../../db/list.js';
import { ApiError } from '../../http/errors.js';
import type { Metrics } from '../../http/metrics.js';
import type { HeldKey } from '../../http/idempotency.js';
import { requestedCurrency } from '../../lib/currencies.js';
import { newId } from '../../lib/ids.js';
import { systemClock, type Clock } from '../../lib/time.js';
import { separately, type ItemRunner } from '../../workers/isolation.js';
import type { AuthorizationCall, CardDetails, ConnectorOutcome, MerchantOrder } from '../connectors/connector.js';
import type { ConnectorRouter } from '../connectors/router.js';
import { newEvent, type NewEventRow } from '../events/events.js';
import type { EventType } from '../events/catalog.js';
import type { FraudDecision, FraudEngine } from '../fraud/engine.js';
import type { FraudAction, ReviewRow } from '../fraud/repo.js';
import { alertCase, type AlertCaseRow } from '../cases/alerts.js';
import { mergeMetadata, type CustomerService } from '../customers/service.js';
import type { PaymentMethodInput } from '../payment-methods/schemas.js';
import type { PaymentMethodRow, PaymentMethodService } from '../payment-methods/service.js';
import { invalidLink, type ThreeDSecure } from '../three-d-secure/tokens.js';
import { chargeTransaction } from '../ledger/postings.js';
import type { LedgerService, PreparedPosting } from '../ledger/service.js';
import { priceCharge, type PricingService } from '../pricing/service.js';
import { availableOn, type SettlementSchedule } from '../settlements/schedule.js';
import {
  findPaymentIdByIdempotencyKey,
  listPayments,
  loadPayments,
  type AttemptRow,
  type DisputeWatchRow,
  type FraudDecisionRow,
  type PaymentRow,
  type PaymentState,
  type PaymentReader,
  type PaymentWrite,
} from './repo.js';
import type {
  CancelPaymentBody,
  CapturePaymentBody,
  ConfirmPaymentBody,
  CreatePaymentBody,
  Payment,
  UpdatePaymentBody,
} from './schemas.js';

const seconds = (date: Date | string | null) => (date === null ? null : Math.floor(new Date(date).getTime() / 1000));

/**
 * The key a request holds (unsealed), and how its answer reads: a payment's final write answered 200 stores that answer
 * on the key (HeldKey.answeredInWrite), one transaction fewer than completing the key after the answer.
 */
export interface KeyAnswer {
  held: HeldKey;
  /** The text the route answers a payment with: its API version's shape, serialized by the route's schema. */
  text: (payment: Payment) => string;
}

/** A payment whose authorization was declined: its answer is the 402 card error, not the payment. */
const declined = (
  payment: Payment,
): payment is Payment & { last_payment_error: NonNullable<Payment['last_payment_error']> } =>
  payment.status === 'requires_payment_method' && Boolean(payment.last_payment_error);

export function toApiPayment({ row, attempts }: PaymentState): Payment {
  return {
    id: row.id,
    object: 'payment',
    amount: row.amount,
    amount_capturable: row.amount_capturable,
    amount_received: row.amount_received,
    amount_refunded: row.amount_refunded,
    currency: row.currency,
    status: row.status,
    capture_method: row.capture_method,
    payment_method: row.payment_method_id,
    customer: row.customer,
    description: row.description,
    statement_descriptor: row.statement_descriptor,
    metadata: row.metadata ?? {},
    last_payment_error: row.last_payment_error,
    next_action: row.next_action,
    processor: row.processor,
    authorization_expires_at: seconds(row.authorization_expires_at),
    canceled_at: seconds(row.canceled_at),
    cancellation_reason: row.cancellation_reason,
    fee: row.fee,
    net: row.fee === null ? null : row.amount_received - row.fee,
    balance_transaction: row.balance_transaction,
    pricing_version: row.pricing_version,
    outcome: row.fraud_outcome ?? null,
    attempts: attempts.map((a) => ({
      id: a.id,
      operation: a.operation,
      processor: a.processor,
      status: a.status,
      amount: a.amount,
      error_code: a.error_code,
      decline_code: a.decline_code,
      // Read back through json_agg, the timestamps arrive as strings.
      latency_ms: a.completed_at ? new Date(a.completed_at).getTime() - new Date(a.created_at).getTime() : null,
      created: seconds(a.created_at)!,
    })),
    latest_attempt: attempts.at(-1)?.id ?? null,
    created: seconds(row.created_at)!,
    livemode: row.livemode,
  };
}

const CAPTURE_FAILED = 'The processor could not capture this payment; retry the capture.';

/** A card error (402) that carries the payment as it stands, as Stripe's errors do. */
function cardError(code: string, message: string, declineCode: string | null, payment: Payment): ApiError {
  const error = new ApiError('card_error', code, message, null, 402, declineCode ?? undefined);
  error.payment = payment;
  return error;
}

type PaymentMethodChoice =
  | { saved: PaymentMethodRow; card?: undefined; inline?: undefined }
  | { inline: PaymentMethodRow; card: CardDetails; saved?: undefined };

export interface PaymentServiceDeps {
  /** Stale-tolerant reads (lists): the replica when DATABASE_REPLICA_URL is set. */
  reads?: Reads;
  sql: Sql;
  customers: CustomerService;
  /** The worker role's pool: only the cross-tenant scans of the recovery and expiry passes use it. */
  workerSql: Sql;
  writer: MicroBatcher<PaymentWrite, boolean>;
  /** Batched payment reads on the read pool (createPaymentReader). */
  reader: PaymentReader;
  paymentMethods: PaymentMethodService;
  router: ConnectorRouter;
  processorsFor: (tenantId: string) => Promise<string[]>;
  settlementScheduleFor: (tenantId: string) => Promise<SettlementSchedule>;
  pricing: PricingService;
  ledger: LedgerService;
  threeDSecure: ThreeDSecure;
  metrics: Metrics;
  config: Pick<Config, 'authorizationExpiryDays'>;
  /** The fraud decision taken before each authorization; absent when FRAUD_CHECKS=off (benchmarks). */
  fraud?: FraudEngine;
  /** What the payment's rows, events and ledger lines are stamped with (the demo seeder replays past days). */
  now?: Clock;
}

/**
 * The payment state machine (Stripe's PaymentIntent model). Every transition is a compare-and-set
 * write through the micro-batcher; processor calls happen between two writes, with the payment in
 * `processing` and a `pending` attempt recorded first, so a crash between them can be resumed.
 */
export class PaymentService {
  private readonly now: Clock;
  private readonly succeededListeners: ((scope: Scope, payment: Payment) => void)[] = [];

  constructor(private readonly deps: PaymentServiceDeps) {
    this.now = deps.now ?? systemClock;
  }

  /**
   * `listener` hears of each payment that has just succeeded, once its write is committed, in the process that wrote
   * it. A hint, not a guarantee: a crash before it runs loses it, so a listener's work needs a sweep of its own too.
   */
  onSucceeded(listener: (scope: Scope, payment: Payment) => void): void {
    this.succeededListeners.push(listener);
  }

  async create(
    scope: Scope,
    body: CreatePaymentBody,
    requestId: string | null,
    idempotencyKey: string | null = null,
    /** The request's key when it is claimed in this payment's first write (HeldKey.claimedInWrite). */
    keyClaim?: HeldKey,
    keyAnswer?: KeyAnswer,
  ): Promise<Payment> {
    const currency = requestedCurrency(body);
    const confirm = body.confirm ?? false;
    if (confirm && !body.payment_method)
      throw ApiError.invalid(
        'parameter_missing',
        'A payment_method is required to confirm a payment.',
        'payment_method',
      );
    const [method] = await Promise.all([
      body.payment_method ? this.resolvePaymentMethod(scope, body.payment_method, body.customer ?? null) : undefined,
      body.customer !== undefined ? this.deps.customers.checkActive(scope, body.customer) : undefined,
    ]);
    const plan = await this.deps.pricing.currentPlan(scope);
    const now = this.now();
    const row: PaymentRow = {
      id: newId('pay', now),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      amount: body.amount,
      currency,
      status: !method ? 'requires_payment_method' : confirm ? 'processing' : 'requires_confirmation',
      capture_method: (body.capture_method ?? 'automatic') as PaymentRow['capture_method'],
      amount_capturable: 0,
      amount_received: 0,
      amount_refunded: 0,
      payment_method_id: method ? (method.saved ?? method.inline).id : null,
      customer: body.customer ?? null,
      description: body.description ?? null,
      statement_descriptor: body.statement_descriptor ?? null,
      metadata: body.metadata ?? {},
      last_payment_error: null,
      next_action: null,
      processor: null,
      processor_reference: null,
      authorization_expires_at: null,
      cancellation_reason: null,
      canceled_at: null,
      idempotency_key: idempotencyKey,
      pricing_version: plan.version,
      fee: null,
      balance_transaction: null,
      fraud_details: body.fraud_details ?? null,
      fraud_outcome: null,
      version: 0,
      created_at: now,
      updated_at: now,
    };
    const created = newEvent(scope, 'payment.created', toApiPayment({ row, attempts: [] }), requestId, now);
    if (!confirm || !method) {
      if (
        !(await this.deps.writer.submit({
          scope,
          paymentMethod: method?.inline,
          insert: row,
          keyClaim,
          events: [created],
        }))
      )
        return this.resumeCreated(scope, idempotencyKey!);
      this.deps.metrics.paymentsByStatus.inc({ status: row.status });
      return toApiPayment({ row, attempts: [] });
    }
    const [primary] = await this.deps.processorsFor(scope.tenantId);
    const attempt = this.pendingAttempt(row, 'authorize', primary, row.amount, idempotencyKey);
    if (
      !(await this.deps.writer.submit({
        scope,
        paymentMethod: method.inline,
        insert: row,
        keyClaim,
        attempts: [attempt],
        events: [created],
      }))
    ) {
      return this.resumeCreated(scope, idempotencyKey!);
    }
    return this.afterConflict(scope, row.id, () =>
      this.authorize(
        scope,
        { row, attempts: [attempt] },
        method.saved ?? method.inline,
        method.card,
        requestId,
        false,
        body.return_url,
        undefined,
        keyAnswer,
      ),
    );
  }

  async confirm(
    scope: Scope,
    id: string,
    body: ConfirmPaymentBody,
    requestId: string | null,
    idempotencyKey: string | null = null,
    keyAnswer?: KeyAnswer,
  ): Promise<Payment> {
    const { state, answer } = await this.resolvePending(scope, id, idempotencyKey, 'authorize');
    if (answer) return answer;
    const own = this.ownOutcome(state, idempotencyKey, 'authorize');
    if (own) return own;
    const { row } = state;
    if (row.status !== 'requires_payment_method' && row.status !== 'requires_confirmation') {
      throw ApiError.stateConflict(
        `This payment's status is ${row.status}; only a payment that requires a payment method or confirmation can be confirmed.`,
      );
    }
    const method = body?.payment_method
      ? await this.resolvePaymentMethod(scope, body.payment_method, row.customer)
      : row.payment_method_id
        ? {
            saved: await inScope(this.deps.sql, scope, (tx) =>
              this.deps.paymentMethods.find(tx, scope, row.payment_method_id!),
            ),
          }
        : undefined;
    if (!method)
      throw ApiError.invalid(
        'parameter_missing',
        'A payment_method is required to confirm a payment.',
        'payment_method',
      );
    const [primary] = await this.deps.processorsFor(scope.tenantId);
    const next = this.advance(row, {
      status: 'processing',
      payment_method_id: (method.saved ?? method.inline).id,
      last_payment_error: null,
      next_action: null,
      fraud_details: body?.fraud_details ?? row.fraud_details,
    });
    const attempt = this.pendingAttempt(row, 'authorize', primary, row.amount, idempotencyKey);
    const applied = await this.deps.writer.submit({
      scope,
      paymentMethod: method.inline,
      update: next,
      attempts: [attempt],
    });
    if (!applied)
      throw ApiError.stateConflict('This payment was changed by another request; retrieve it and try again.');
    return this.afterConflict(scope, row.id, () =>
      this.authorize(
        scope,
        { row: next, attempts: [...state.attempts, attempt] },
        method.saved ?? method.inline,
        method.card,
        requestId,
        false,
        body?.return_url,
        undefined,
        keyAnswer,
      ),
    );
  }

  async capture(
    scope: Scope,
    id: string,
    body: CapturePaymentBody,
    requestId: string | null,
    idempotencyKey: string | null = null,
    keyAnswer?: KeyAnswer,
  ): Promise<Payment> {
    const { state, answer } = await this.resolvePending(scope, id, idempotencyKey, 'capture', body?.amount_to_capture);
    if (answer) return answer;
    const own = this.ownOutcome(state, idempotencyKey, 'capture');
    if (own) return own;
    const { row } = state;
    if (row.status !== 'requires_capture') {
      throw ApiError.stateConflict(
        `This payment's status is ${row.status}; only a payment that requires capture can be captured.`,
      );
    }
    const amount = body?.amount_to_capture ?? row.amount_capturable;
    if (amount > row.amount_capturable) {
      throw ApiError.invalid(
        'amount_too_large',
        `amount_to_capture cannot exceed the capturable amount (${row.amount_capturable}).`,
        'amount_to_capture',
      );
    }
    const next = this.advance(row, { status: 'processing' });
    const attempt = this.pendingAttempt(row, 'capture', row.processor!, amount, idempotencyKey);
    if (!(await this.deps.writer.submit({ scope, update: next, attempts: [attempt] }))) {
      throw ApiError.stateConflict('This payment is already being captured or canceled.');
    }
    return this.afterConflict(scope, row.id, () =>
      this.finishCapture(scope, { row: next, attempts: [...state.attempts, attempt] }, attempt, requestId, keyAnswer),
    );
  }

  async cancel(
    scope: Scope,
    id: string,
    body: CancelPaymentBody,
    requestId: string | null,
    reason?: string,
    idempotencyKey: string | null = null,
  ): Promise<Payment> {
    const { state, answer } = await this.resolvePending(scope, id, idempotencyKey, 'void');
    if (answer) return answer;
    const own = this.ownOutcome(state, idempotencyKey, 'void');
    if (own) return own;
    const { row } = state;
    const cancellationReason = reason ?? body?.cancellation_reason ?? null;
    if (row.status === 'requires_capture') {
      const next = this.advance(row, { status: 'processing' });
      const attempt = this.pendingAttempt(row, 'void', row.processor!, row.amount_capturable, idempotencyKey);
      if (!(await this.deps.writer.submit({ scope, update: next, attempts: [attempt] }))) {
        throw ApiError.stateConflict('This payment is already being captured or canceled.');
      }
      return this.afterConflict(scope, row.id, () =>
        this.finishVoid(
          scope,
          { row: next, attempts: [...state.attempts, attempt] },
          attempt,
          cancellationReason,
          requestId,
        ),
      );
    }
    if (
      row.status !== 'requires_payment_method' &&
      row.status !== 'requires_confirmation' &&
      row.status !== 'requires_action'
    ) {
      throw ApiError.stateConflict(`This payment's status is ${row.status}; it can no longer be canceled.`);
    }
    const next = this.advance(row, {
      status: 'canceled',
      cancellation_reason: cancellationReason,
      canceled_at: this.now(),
      next_action: null,
    });
    return this.commit(
      scope,
      { row: next, attempts: state.attempts },
      [],
      'payment.canceled',
      requestId,
      'This payment was changed by another request.',
    );
  }

  /**
   * Changes what a payment says about itself (description, metadata, customer, statement
   * descriptor) at any time but while a processor call is in flight, and its amount or currency
   * before confirmation. A compare-and-set write through the batcher like every transition, with a
   * `payment.updated` event; it is retried on a concurrent change, judged against the new state.
   */
  async update(scope: Scope, id: string, body: UpdatePaymentBody, requestId: string | null): Promise<Payment> {
    if (body?.customer) await this.deps.customers.checkActive(scope, body.customer);
    for (let tries = 3; ; tries--) {
      const state = await this.load(scope, id);
      const next = await this.updatedRow(scope, state.row, body ?? {});
      const payment = toApiPayment({ row: next, attempts: state.attempts });
      const event = newEvent(scope, 'payment.updated', payment, requestId, this.now());
      if (await this.deps.writer.submit({ scope, update: next, events: [event] })) return payment;
      if (tries === 1)
        throw ApiError.stateConflict('This payment is being changed by other requests; retrieve it and try again.');
    }
  }

  private async updatedRow(scope: Scope, row: PaymentRow, body: NonNullable<UpdatePaymentBody>): Promise<PaymentRow> {
    if (row.status === 'processing')
      throw ApiError.stateConflict('A processor call for this payment is in flight; update it once it is answered.');
    const changes: Partial<PaymentRow> = {};
    if (body.amount !== undefined || body.currency !== undefined) {
      if (row.status !== 'requires_payment_method' && row.status !== 'requires_confirmation')
        throw new ApiError(
          'invalid_request_error',
          'payment_intent_unexpected_state',
          `The amount and currency can change only before confirmation; this payment's status is ${row.status}.`,
          body.amount !== undefined ? 'amount' : 'currency',
        );
      const amount = body.amount ?? row.amount;
      changes.amount = amount;
      changes.currency = requestedCurrency({ amount, currency: body.currency ?? row.currency });
    }
    if (body.customer !== undefined) {
      const customer = body.customer === '' ? null : body.customer;
      if (row.payment_method_id && customer !== row.customer) {
        const method = await inScope(this.deps.sql, scope, (tx) =>
          this.deps.paymentMethods.find(tx, scope, row.payment_method_id!),
        );
        if (method.customer !== null && method.customer !== customer)
          throw ApiError.invalid(
            'payment_method_customer_mismatch',
            `This payment's card ${method.id} is saved for another customer.`,
            'customer',
          );
      }
      changes.customer = customer;
    }
    if (body.description !== undefined) changes.description = body.description === '' ? null : body.description;
    if (body.statement_descriptor !== undefined)
      changes.statement_descriptor = body.statement_descriptor === '' ? null : body.statement_descriptor;
    if (body.metadata !== undefined) changes.metadata = mergeMetadata(row.metadata, body.metadata);
    return this.advance(row, changes);
  }

  private load(scope: Scope, id: string): Promise<PaymentState> {
    return this.deps.reader.submit({ scope, id });
  }

  retrieve(scope: Scope, id: string): Promise<Payment> {
    return this.load(scope, id).then(toApiPayment);
  }

  async retrieveMany(scope: Scope, ids: string[]): Promise<Payment[]> {
    return ids.length ? (await loadPayments(this.deps.sql, scope, ids)).map(toApiPayment) : [];
  }

  async list(scope: Scope, params: ListParams & { status?: string; customer?: string }) {
    const { states, hasMore } = await listPayments(this.deps.reads ?? primaryReads(this.deps.sql), scope, params);
    return { data: states.map(toApiPayment), has_more: hasMore };
  }

  /**
   * The payment a 3-D Secure link is for, while the link is still good: the payment waits for
   * authentication and the attempt the link was issued for is its latest.
   */
  async threeDSecureChallenge(token: string): Promise<{ scope: Scope; state: PaymentState }> {
    const { scope, paymentId, attemptId } = await this.deps.threeDSecure.verify(token);
    const state = await this.load(scope, paymentId);
    const latest = state.attempts.filter((a) => a.operation === 'authorize').at(-1);
    if (state.row.status !== 'requires_action' || latest?.id !== attemptId) throw invalidLink();
    return { scope, state };
  }

  /**
   * The customer finished (or failed) the 3-D Secure challenge we served. The transition out of
   * `requires_action` is a compare-and-set, so of two completions at once only one acts.
   */
  async completeThreeDSecure(
    token: string,
    succeeded: boolean,
  ): Promise<{ payment: Payment; returnUrl: string | null }> {
    const { scope, state } = await this.threeDSecureChallenge(token);
    const { row } = state;
    const returnUrl = row.next_action?.redirect_to_url.return_url ?? null;
    if (!succeeded) {
      const next = this.advance(row, {
        status: 'requires_payment_method',
        next_action: null,
        last_payment_error: {
          type: 'card_error',
          code: 'payment_intent_authentication_failure',
          decline_code: null,
          message: 'The customer failed 3-D Secure authentication.',
          processor: row.processor,
        },
      });
      const payment = await this.commit(
        scope,
        { row: next, attempts: state.attempts },
        [],
        'payment.failed',
        null,
        'This payment was changed by another request.',
      );
      return { payment, returnUrl };
    }
    const pm = await inScope(this.deps.sql, scope, (tx) =>
      this.deps.paymentMethods.find(tx, scope, row.payment_method_id!),
    );
    const [primary] = await this.deps.processorsFor(scope.tenantId);
    const next = this.advance(row, { status: 'processing', next_action: null });
    const attempt = this.pendingAttempt(row, 'authorize', primary, row.amount, null);
    if (!(await this.deps.writer.submit({ scope, update: next, attempts: [attempt] }))) {
      throw ApiError.stateConflict('This payment was changed by another request.');
    }
    try {
      const payment = await this.afterConflict(scope, next.id, () =>
        this.authorize(
          scope,
          { row: next, attempts: [...state.attempts, attempt] },
          pm,
          undefined,
          null,
          true,
          returnUrl ?? undefined,
        ),
      );
      return { payment, returnUrl };
    } catch (error) {
      if (error instanceof ApiError && error.payment) return { payment: error.payment as Payment, returnUrl };
      throw error;
    }
  }

  /** Authorizations not captured in time are released (Stripe: 7 days), with a payment.canceled event. */
  async expireAuthorizations(limit = 100, items: ItemRunner = separately('authorizations')): Promise<number> {
    const due = await this.deps.workerSql<
      { id: string; tenant_id: string; livemode: boolean }[]
    >`SELECT * FROM worker_expired_authorizations(${limit + items.waiting})`;
    return items.each(
      due,
      (payment) => payment.id,
      async (payment) => {
        try {
          await this.cancel(
            { tenantId: payment.tenant_id, livemode: payment.livemode },
            payment.id,
            null,
            null,
            'automatic',
          );
          return true;
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          return false;
        }
      },
    );
  }

  /**
   * Resumes payments left in `processing` by a crash between recording a processor call and
   * recording its result: the pending attempt is replayed with its own id, which processors treat
   * as an idempotency key, so nothing is authorized or captured twice.
   */
  async recoverStuckPayments(
    olderThanSeconds = 60,
    limit = 100,
    items: ItemRunner = separately('payments'),
  ): Promise<number> {
    const stuck = await this.deps.workerSql<{ id: string; tenant_id: string; livemode: boolean }[]>`
      SELECT * FROM worker_stuck_payments(${`${olderThanSeconds} seconds`}::interval, ${limit + items.waiting})`;
    await items.each(
      stuck,
      (payment) => payment.id,
      async (payment) => {
        const scope = { tenantId: payment.tenant_id, livemode: payment.livemode };
        try {
          await this.resume(scope, await this.load(scope, payment.id));
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
        }
        return true;
      },
    );
    return stuck.length;
  }

  /**
   * Replays the pending processor call of a payment left in `processing`, then records its result.
   * The worker and a client's retry may replay the same attempt at once: the processor answers
   * both alike, one records it, and the other answers with what was recorded.
   */
  private async resume(scope: Scope, state: PaymentState, conflictsLeft = 3): Promise<Payment> {
    try {
      return await this.replayPending(scope, state);
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== 'payment_intent_unexpected_state' || conflictsLeft === 0)
        throw error;
      return this.resume(scope, await this.load(scope, state.row.id), conflictsLeft - 1);
    }
  }

  private async replayPending(scope: Scope, state: PaymentState): Promise<Payment> {
    const pending = state.attempts.filter((a) => a.status === 'pending').at(-1);
    if (state.row.status !== 'processing' || !pending) return this.answerFor(toApiPayment(state));
    if (pending.operation === 'capture') return this.finishCapture(scope, state, pending, null);
    if (pending.operation === 'void') return this.finishVoid(scope, state, pending, 'automatic', null);
    const pm = await inScope(this.deps.sql, scope, (tx) =>
      this.deps.paymentMethods.find(tx, scope, state.row.payment_method_id!),
    );
    // An authorization asked for again after a 3-D Secure challenge is an authenticated one.
    const authenticated = state.attempts.some((a) => a.status === 'requires_action');
    return this.authorize(scope, state, pm, undefined, null, authenticated, undefined, pending);
  }

  /**
   * Runs a processor call begun by this request. If its result cannot be recorded because another
   * request or the recovery worker recorded the same call first (or failed it over), the answer is
   * the payment as that left it, resumed if it is still pending.
   */
  private async afterConflict(scope: Scope, id: string, run: () => Promise<Payment>): Promise<Payment> {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== 'payment_intent_unexpected_state') throw error;
      return this.resume(scope, await this.load(scope, id));
    }
  }

  /** A payment whose last authorization failed answers as the card error it was, as on the first call. */
  private answerFor(payment: Payment): Payment {
    if (declined(payment)) {
      throw cardError(
        payment.last_payment_error.code,
        payment.last_payment_error.message,
        payment.last_payment_error.decline_code,
        payment,
      );
    }
    return payment;
  }

  /**
   * A confirm, capture or cancel of a payment still `processing` with a pending processor call
   * (typically the retry of a request answered 503) first resumes that call with its own key:
   * nothing new is sent to the processor while an earlier call is unresolved. If the pending call
   * is this request's own (begun under its Idempotency-Key, or under no key by a request from
   * before keys were recorded) and the requested operation (for a capture, of the same amount), its
   * outcome is the answer; otherwise the request goes on against the state the resumed call left,
   * as it would had the call been resolved before it arrived.
   */
  private async resolvePending(
    scope: Scope,
    id: string,
    idempotencyKey: string | null,
    operation: AttemptRow['operation'],
    amount?: number,
  ): Promise<{ state: PaymentState; answer?: Payment }> {
    const state = await this.load(scope, id);
    const pending = state.attempts.filter((a) => a.status === 'pending').at(-1);
    if (state.row.status !== 'processing' || !pending) return { state };
    const own = pending.idempotency_key === null || pending.idempotency_key === idempotencyKey;
    if (own && pending.operation === operation && (amount === undefined || amount === pending.amount))
      return { state, answer: await this.resume(scope, state) };
    try {
      await this.resume(scope, state);
    } catch (error) {
      // The other operation's card error is not this request's answer; a 5xx (still unknown) is.
      if (!(error instanceof ApiError) || error.statusCode >= 500) throw error;
    }
    return { state: await this.load(scope, id) };
  }

  /**
   * The retry of a confirm, capture or cancel whose earlier run, under the same Idempotency-Key,
   * began a processor call that has since been resolved (by the recovery worker, or by another
   * request that resumed it): the answer is that call's outcome, as the first run would have given
   * it, with the payment as it now stands. Neither a refusal of the state the call left nor a
   * second call: retries with one key get one result. Undefined when this key began no such call.
   */
  private ownOutcome(
    state: PaymentState,
    idempotencyKey: string | null,
    operation: AttemptRow['operation'],
  ): Payment | undefined {
    if (idempotencyKey === null) return undefined;
    const own = state.attempts.filter((a) => a.idempotency_key === idempotencyKey && a.operation === operation).at(-1);
    if (!own || own.status === 'pending') return undefined;
    const payment = toApiPayment(state);
    // A void's outcome does not matter to its answer: the payment is canceled either way.
    if (operation === 'void' || (own.status !== 'declined' && own.status !== 'error')) return payment;
    if (operation === 'capture')
      throw cardError(own.status === 'declined' ? own.error_code! : 'processing_error', CAPTURE_FAILED, null, payment);
    // The payment's last error is this decline's own unless a later request has moved the payment on.
    const recorded = state.row.last_payment_error;
    const message =
      recorded?.code === own.error_code && recorded.decline_code === own.decline_code
        ? recorded.message
        : own.status === 'declined'
          ? 'Your card was declined.'
          : 'The processor could not process this payment.';
    throw cardError(own.error_code!, message, own.decline_code, payment);
  }

  /**
   * A create retried with an idempotency key whose first run died (or answered 503) after writing
   * the payment: answer with that payment, finishing it first if it was left mid-authorization.
   */
  private async resumeCreated(scope: Scope, idempotencyKey: string): Promise<Payment> {
    const id = await findPaymentIdByIdempotencyKey(this.deps.sql, scope, idempotencyKey);
    if (!id)
      throw new ApiError(
        'idempotency_error',
        'idempotency_key_in_use',
        'A request with this idempotency key is still in progress; retry later.',
        null,
        409,
      );
    return this.resume(scope, await this.load(scope, id));
  }

  private async resolvePaymentMethod(
    scope: Scope,
    ref: string | PaymentMethodInput,
    customer: string | null,
  ): Promise<PaymentMethodChoice> {
    if (typeof ref === 'string') {
      const saved = await inScope(this.deps.sql, scope, (tx) =>
        this.deps.paymentMethods.find(tx, scope, ref).catch(() => {
          throw ApiError.notFound('payment_method', ref, 'payment_method');
        }),
      );
      // A card saved for a customer is charged only for that customer (Stripe's attached payment methods).
      if (saved.customer !== null && saved.customer !== customer)
        throw ApiError.invalid(
          'payment_method_customer_mismatch',
          `The payment method ${ref} was saved for another customer: pass that customer to charge it.`,
          'customer',
        );
      return { saved };
    }
    if (ref.customer !== undefined && ref.customer !== customer)
      throw ApiError.invalid(
        'payment_method_customer_mismatch',
        "A card saved with the payment is saved for the payment's own customer: pass the same customer.",
        'payment_method[customer]',
      );
    const { row, card } = this.deps.paymentMethods.tokenize(scope, ref, 'payment_method');
    return { inline: row, card };
  }

  private pendingAttempt(
    row: PaymentRow,
    operation: AttemptRow['operation'],
    processor: string,
    amount: number,
    idempotencyKey: string | null,
  ): AttemptRow {
    return {
      id: newId('pat', this.now()),
      tenant_id: row.tenant_id,
      livemode: row.livemode,
      payment_id: row.id,
      operation,
      processor,
      status: 'pending',
      amount,
      processor_reference: null,
      error_code: null,
      decline_code: null,
      created_at: this.now(),
      completed_at: null,
      idempotency_key: idempotencyKey,
    };
  }

  private completeAttempt(attempt: AttemptRow, processor: string, outcome: ConnectorOutcome): AttemptRow {
    return {
      ...attempt,
      processor,
      status: outcome.status,
      processor_reference: outcome.status === 'succeeded' ? outcome.reference : null,
      error_code: outcome.status === 'declined' || outcome.status === 'error' ? outcome.code : null,
      decline_code: outcome.status === 'declined' ? outcome.declineCode : null,
      completed_at: this.now(),
    };
  }

  private advance(row: PaymentRow, changes: Partial<PaymentRow>): PaymentRow {
    return { ...row, ...changes, version: row.version + 1, updated_at: this.now() };
  }

  /**
   * Prices a capture with the plan version the payment was created under and prepares its charge
   * posting; the payment row records the fee and the balance transaction.
   */
  private async charge(
    scope: Scope,
    row: PaymentRow,
    amount: number,
    card: Pick<PaymentMethodRow, 'country' | 'funding'>,
    processed: { processor: string; reference: string },
  ): Promise<{ changes: Partial<PaymentRow>; posting: PreparedPosting; disputeWatch?: DisputeWatchRow }> {
    const [plan, schedule, accounts] = await Promise.all([
      this.deps.pricing.planVersion(scope, row.pricing_version),
      this.deps.settlementScheduleFor(scope.tenantId),
      this.deps.ledger.accountsFor(scope, row.currency),
    ]);
    const instant = schedule.type === 'instant';
    const price = priceCharge(plan, {
      amount,
      currency: row.currency,
      cardCountry: card.country,
      cardFunding: card.funding,
      presentmentCurrency: null,
      instantSettlement: instant,
    });
    const transactionId = newId('txn', this.now());
    const posting = this.deps.ledger.prepare(
      scope,
      [
        chargeTransaction({
          paymentId: row.id,
          transactionId,
          currency: row.currency,
          amount,
          fee: price.fee,
          feeDetails: price.fee_details,
          instant,
          availableOn: availableOn(this.now(), schedule),
        }),
      ],
      () => accounts,
    );
    const disputeWatch = this.deps.router.get(processed.processor).willDispute(processed.reference)
      ? {
          payment_id: row.id,
          tenant_id: row.tenant_id,
          livemode: row.livemode,
          processor: processed.processor,
          processor_reference: processed.reference,
        }
      : undefined;
    return { changes: { fee: price.fee, balance_transaction: transactionId }, posting, disputeWatch };
  }

  /** Writes a transition with its event(s); throws a state conflict if another writer got there first. */
  private async commit(
    scope: Scope,
    state: PaymentState,
    attempts: AttemptRow[],
    eventType: EventType | EventType[],
    requestId: string | null,
    conflict: string,
    charge?: {
      posting?: PreparedPosting;
      disputeWatch?: DisputeWatchRow;
      review?: ReviewRow;
      alertCase?: AlertCaseRow;
      fraudDecision?: FraudDecisionRow;
      keyAnswer?: KeyAnswer;
    },
  ): Promise<Payment> {
    const payment = toApiPayment(state);
    // Only an answer of 200 is stored in the write: a decline's 402 is made by the route's error handler.
    const keyAnswer = charge?.keyAnswer;
    const answer =
      keyAnswer && !declined(payment)
        ? { held: keyAnswer.held, paymentId: payment.id, status: 200, body: keyAnswer.text(payment) }
        : undefined;
    const events: NewEventRow[] = (Array.isArray(eventType) ? eventType : [eventType]).map((type) =>
      newEvent(scope, type, payment, requestId, this.now()),
    );
    if (
      !(await this.deps.writer.submit({
        scope,
        update: state.row,
        attempts,
        events,
        posting: charge?.posting,
        disputeWatch: charge?.disputeWatch,
        review: charge?.review,
        alertCase: charge?.alertCase,
        fraudDecision: charge?.fraudDecision,
        keyAnswer: answer,
      }))
    ) {
      throw ApiError.stateConflict(conflict);
    }
    this.deps.metrics.paymentsByStatus.inc({ status: state.row.status });
    if (state.row.status === 'succeeded') for (const listener of this.succeededListeners) listener(scope, payment);
    return payment;
  }

  private replaceAttempts(existing: AttemptRow[], updated: AttemptRow[]): AttemptRow[] {
    const ids = new Set(updated.map((a) => a.id));
    return [...existing.filter((a) => !ids.has(a.id)), ...updated];
  }

  /** Who a processor call is for, as the processor records it. */
  private merchantOrder(row: PaymentRow): MerchantOrder {
    return { merchant: { tenantId: row.tenant_id, livemode: row.livemode }, paymentId: row.id };
  }

  private authorizationCall(row: PaymentRow, attempt: AttemptRow): AuthorizationCall {
    const reference = row.processor_reference ?? '';
    return {
      ...this.merchantOrder(row),
      attemptId: attempt.id,
      reference,
      amount: attempt.amount,
      currency: row.currency,
    };
  }

  /**
   * The answer while a processor call's outcome is unknown: its attempt stays pending and the
   * payment `processing`. A 5xx, not a decline: the key stays open (a 5xx is never stored as the
   * key's answer), so a retry with the same Idempotency-Key re-runs the request, which replays the
   * pending call with the same processor idempotency key and answers with its outcome.
   */
  private outcomeUnknown(state: PaymentState): ApiError {
    const error = new ApiError(
      'api_error',
      'processor_unavailable',
      'The processor did not answer, so the outcome of this payment is not known yet. Retry the request with the ' +
        'same Idempotency-Key (or retrieve the payment later): the pending call is replayed, never repeated.',
      null,
      503,
    );
    error.payment = toApiPayment(state);
    return error;
  }

  private async authorize(
    scope: Scope,
    state: PaymentState,
    method: PaymentMethodRow,
    /** The card as entered, for a card not saved; a saved card is read from the vault. */
    enteredCard: CardDetails | undefined,
    requestId: string | null,
    threeDSecureAuthenticated: boolean,
    returnUrl?: string,
    resume?: AttemptRow,
    keyAnswer?: KeyAnswer,
  ): Promise<Payment> {
    const card = enteredCard ?? this.deps.paymentMethods.cardDetails(method);
    const first = resume ?? state.attempts.at(-1)!;
    const order = await this.deps.processorsFor(scope.tenantId);
    const after = order.indexOf(first.processor);
    const route = [first.processor, ...(after >= 0 ? order.slice(after + 1) : [])];
    let current = state;
    // A payment coming back from 3-D Secure was decided before its challenge; any other
    // authorization (a recovery's replay included) is decided again, before the processor is called.
    const fraud = threeDSecureAuthenticated
      ? undefined
      : await this.decideFraud(scope, state.row, state.attempts, method, card);
    const last = fraud?.stop
      ? { attemptId: first.id, processor: first.processor, outcome: fraud.stop }
      : await this.deps.router.withFailover(
          route,
          first.id,
          (connector, attemptId) =>
            connector.authorize({
              ...this.merchantOrder(current.row),
              attemptId,
              amount: current.row.amount,
              currency: current.row.currency,
              card,
              capture: current.row.capture_method === 'automatic',
              threeDSecureAuthenticated,
            }),
          async (failed, nextProcessor) => {
            // The next processor's attempt is committed before it is called, with the failed one, in a
            // compare-and-set write: of two resumers of the same attempt only one fails over.
            const failedAttempt = this.attemptOf(current, failed.attemptId);
            const done = this.completeAttempt(failedAttempt, failed.processor, failed.outcome);
            const next = this.pendingAttempt(
              current.row,
              'authorize',
              nextProcessor,
              current.row.amount,
              failedAttempt.idempotency_key,
            );
            const row = this.advance(current.row, {});
            if (!(await this.deps.writer.submit({ scope, update: row, attempts: [done, next] })))
              throw ApiError.stateConflict('This payment was changed by another request.');
            current = { row, attempts: this.replaceAttempts(current.attempts, [done, next]) };
            return next.id;
          },
        );
    const outcome = last.outcome;
    if (outcome.status === 'unknown') throw this.outcomeUnknown(current);
    const row = fraud ? { ...current.row, fraud_outcome: fraud.decision.outcome } : current.row;
    const attempts = [this.completeAttempt(this.attemptOf(current, last.attemptId), last.processor, outcome)];
    let next: PaymentRow;
    let eventType: EventType;
    let charge: Awaited<ReturnType<PaymentService['charge']>> | undefined;
    if (outcome.status === 'succeeded' && row.capture_method === 'automatic') {
      charge = await this.charge(scope, row, row.amount, method, {
        processor: last.processor,
        reference: outcome.reference,
      });
      next = this.advance(row, {
        status: 'succeeded',
        amount_received: row.amount,
        processor: last.processor,
        processor_reference: outcome.reference,
        ...charge.changes,
      });
      eventType = 'payment.succeeded';
    } else if (outcome.status === 'succeeded') {
      const expiresAt = new Date(this.now().getTime() + this.deps.config.authorizationExpiryDays * 86_400_000);
      next = this.advance(row, {
        status: 'requires_capture',
        amount_capturable: row.amount,
        processor: last.processor,
        processor_reference: outcome.reference,
        authorization_expires_at: expiresAt,
      });
      eventType = 'payment.requires_capture';
    } else if (outcome.status === 'requires_action') {
      const url = await this.deps.threeDSecure.challengeUrl(scope, row.id, last.attemptId);
      next = this.advance(row, {
        status: 'requires_action',
        processor: last.processor,
        next_action: { type: 'redirect_to_url', redirect_to_url: { url, return_url: returnUrl ?? null } },
      });
      eventType = 'payment.requires_action';
    } else {
      next = this.advance(row, {
        status: 'requires_payment_method',
        processor: last.processor,
        last_payment_error: {
          type: 'card_error',
          code: outcome.code,
          decline_code: outcome.status === 'declined' ? outcome.declineCode : null,
          message: outcome.message,
          processor: last.processor,
        },
      });
      eventType = 'payment.failed';
    }
    const review =
      fraud?.decision.outcome.action === 'review' && outcome.status === 'succeeded'
        ? this.openReview(next, fraud.decision)
        : undefined;
    const alert = fraud && this.fraudAlertCase(next, method, fraud.decision);
    const payment = await this.commit(
      scope,
      { row: next, attempts: this.replaceAttempts(current.attempts, attempts) },
      attempts,
      eventType,
      requestId,
      'This payment was changed by another request.',
      {
        posting: charge?.posting,
        disputeWatch: charge?.disputeWatch,
        review,
        alertCase: alert,
        fraudDecision: fraud && {
          payment_id: next.id,
          tenant_id: next.tenant_id,
          livemode: next.livemode,
          outcome: fraud.decision.outcome,
          inputs: fraud.decision.inputs,
          decided_at: fraud.decidedAt,
        },
        keyAnswer,
      },
    );
    if (fraud) this.deps.fraud?.settled(scope, fraud.key);
    return this.answerFor(payment);
  }

  private async finishCapture(
    scope: Scope,
    state: PaymentState,
    attempt: AttemptRow,
    requestId: string | null,
    keyAnswer?: KeyAnswer,
  ): Promise<Payment> {
    const { row } = state;
    const outcome = await this.deps.router.call(attempt.processor, 'capture', (connector) =>
      connector.capture(this.authorizationCall(row, attempt)),
    );
    // Unknown: the capture may have happened. It stays pending, and no other capture is tried.
    if (outcome.status === 'unknown') throw this.outcomeUnknown(state);
    const done = this.completeAttempt(attempt, attempt.processor, outcome);
    const attempts = this.replaceAttempts(state.attempts, [done]);
    if (outcome.status !== 'succeeded') {
      // The authorization still stands: the payment goes back to waiting for a capture.
      const next = this.advance(row, { status: 'requires_capture' });
      const payment = await this.commit(
        scope,
        { row: next, attempts },
        [done],
        'payment.capture_failed',
        requestId,
        'This payment was changed by another request.',
      );
      throw cardError(outcome.status === 'declined' ? outcome.code : 'processing_error', CAPTURE_FAILED, null, payment);
    }
    const method = await inScope(this.deps.sql, scope, (tx) =>
      this.deps.paymentMethods.find(tx, scope, row.payment_method_id!),
    );
    const charge = await this.charge(scope, row, attempt.amount, method, {
      processor: attempt.processor,
      reference: row.processor_reference ?? '',
    });
    // Capturing less than authorized releases the rest, as card networks do.
    const next = this.advance(row, {
      status: 'succeeded',
      amount_received: attempt.amount,
      amount_capturable: 0,
      authorization_expires_at: null,
      ...charge.changes,
    });
    return this.commit(
      scope,
      { row: next, attempts },
      [done],
      'payment.succeeded',
      requestId,
      'This payment was changed by another request.',
      { ...charge, keyAnswer },
    );
  }

  private async finishVoid(
    scope: Scope,
    state: PaymentState,
    attempt: AttemptRow,
    reason: string | null,
    requestId: string | null,
  ): Promise<Payment> {
    const { row } = state;
    const outcome = await this.deps.router.call(attempt.processor, 'void', (connector) =>
      connector.void(this.authorizationCall(row, attempt)),
    );
    if (outcome.status === 'unknown') throw this.outcomeUnknown(state);
    const done = this.completeAttempt(attempt, attempt.processor, outcome);
    // A failed void still cancels on our side: the processor releases unused authorizations itself.
    const next = this.advance(row, {
      status: 'canceled',
      amount_capturable: 0,
      cancellation_reason: reason,
      canceled_at: this.now(),
      authorization_expires_at: null,
    });
    return this.commit(
      scope,
      { row: next, attempts: this.replaceAttempts(state.attempts, [done]) },
      [done],
      'payment.canceled',
      requestId,
      'This payment was changed by another request.',
    );
  }

  /**
   * The fraud decision for an authorization, and the processor's stand-in answer when the decision
   * stops it: a block is a `fraudulent` decline, a 3-D Secure request the processor's own
   * `requires_action` (the challenge then runs as for a card that asks for it).
   */
  private async decideFraud(
    scope: Scope,
    row: PaymentRow,
    attempts: AttemptRow[],
    method: PaymentMethodRow,
    card: CardDetails,
  ): Promise<{ decision: FraudDecision; decidedAt: Date; key: string; stop?: ConnectorOutcome } | undefined> {
    if (!this.deps.fraud) return undefined;
    const decidedAt = this.now();
    // A payment's authorizations that ended (authorized, declined, sent to 3-D Secure) number its
    // rounds: a replay of this round's pending call, or of its failover, is the same decision and
    // must not count in velocity twice, while a new confirm (another card, say) is a new one.
    const ended = attempts.filter(
      (a) => a.operation === 'authorize' && a.status !== 'pending' && a.status !== 'error',
    ).length;
    const key = `${row.id}:${ended}:${method.fingerprint}`;
    const decision = await this.deps.fraud.decide(scope, {
      paymentId: row.id,
      decisionKey: key,
      amount: row.amount,
      currency: row.currency,
      customer: row.customer,
      card: { ...method, number: card.number },
      details: row.fraud_details,
      at: decidedAt,
    });
    const { action } = decision.outcome;
    if (action === 'block')
      return {
        decision,
        decidedAt,
        key,
        stop: {
          status: 'declined',
          code: 'card_declined',
          declineCode: 'fraudulent',
          message: 'Your card was declined.',
        },
      };
    if (action === 'request_3ds') return { decision, decidedAt, key, stop: { status: 'requires_action' } };
    return { decision, decidedAt, key };
  }

  /**
   * A block by the decision, or a value on a block list (even if an allow-list let the payment
   * through), is an alert for compliance: it opens a case, or joins the one its subject (the
   * customer, else the card) has open today. Reviews are not: the review queue is where they are
   * worked, and a rejected one can still be reported as fraud.
   */
  private fraudAlertCase(row: PaymentRow, method: PaymentMethodRow, decision: FraudDecision) {
    const { outcome, listHits } = decision;
    if (outcome.action !== 'block' && listHits.length === 0) return undefined;
    const acted: Record<FraudAction, string> = {
      block: `blocked by rule '${outcome.rule?.name ?? ''}'`,
      allow: outcome.rule ? `allowed by '${outcome.rule.name}'` : 'allowed',
      review: `sent to review by rule '${outcome.rule?.name ?? ''}'`,
      request_3ds: `sent to 3-D Secure by rule '${outcome.rule?.name ?? ''}'`,
    };
    const why = [
      acted[outcome.action as FraudAction],
      `risk score ${outcome.risk_score}`,
      ...(listHits.length ? [`on block lists ${listHits.join(', ')}`] : []),
    ].join(', ');
    return alertCase({
      id: newId('case', this.now()),
      tenant_id: row.tenant_id,
      livemode: row.livemode,
      kind: listHits.length ? 'list_hit' : 'fraud_block',
      subject: { customer: row.customer, card_fingerprint: method.fingerprint },
      payment_id: row.id,
      amount: row.amount,
      currency: row.currency,
      at: this.now(),
      narrative:
        `Opened by payment ${row.id} (${why}). The same subject's later fraud blocks and list hits of the ` +
        `day (UTC) join this case while it is open; each payment's outcome and decision inputs are on the payment.`,
    });
  }

  private openReview(row: PaymentRow, decision: FraudDecision): ReviewRow {
    return {
      id: newId('prv', this.now()),
      tenant_id: row.tenant_id,
      livemode: row.livemode,
      payment_id: row.id,
      status: 'open',
      opened_reason: decision.outcome.rule?.name ?? 'review',
      closed_reason: null,
      closed_by: null,
      closed_at: null,
      created_at: this.now(),
    };
  }

  private attemptOf(state: PaymentState, id: string): AttemptRow {
    return state.attempts.find((a) => a.id === id)!;
  }
}
