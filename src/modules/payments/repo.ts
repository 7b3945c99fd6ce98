import type { Reads } from '../../db/replica.js';
import { CommitOutcomeUnknown, settleSession } from '../../db/commit-outcome.js';
import { inScope, scopedStatement, type Scope, type Sql, type Tx } from '../../db/index.js';
import type { ReadBatcher, ReadCombiner } from '../../db/read-batch.js';
import { MicroBatcher, type BatcherOptions } from '../../db/batcher.js';
import { findManyOwned, listPage, type ListParams } from '../../db/list.js';
import { columnNames, UnnestStatement, type Columns } from '../../db/unnest.js';
import { ApiError } from '../../http/errors.js';
import {
  keyAnswerCte,
  keyClaimCtes,
  KeyClaimLost,
  keyIdentity,
  type HeldKey,
  type WrittenAnswer,
} from '../../http/idempotency.js';
import { EVENT_COLUMNS, type NewEventRow } from '../events/events.js';
import { postingCtes, type PreparedPosting } from '../ledger/service.js';
import { PAYMENT_METHOD_COLUMNS, type PaymentMethodRow } from '../payment-methods/service.js';
import { alertCaseCte, type AlertCaseRow } from '../cases/alerts.js';
import { REVIEW_COLUMNS, type ReviewRow } from '../fraud/repo.js';
import type { StoredInputs } from '../fraud/engine.js';
import type { FraudDetails, FraudOutcome } from '../fraud/schemas.js';
import type { PaymentStatus } from './schemas.js';

export interface PaymentRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  amount: number;
  currency: string;
  status: PaymentStatus;
  capture_method: 'automatic' | 'manual';
  amount_capturable: number;
  amount_received: number;
  amount_refunded: number;
  payment_method_id: string | null;
  customer: string | null;
  description: string | null;
  statement_descriptor: string | null;
  metadata: Record<string, string>;
  last_payment_error: null | {
    type: string;
    code: string;
    decline_code: string | null;
    message: string;
    processor: string | null;
  };
  next_action: null | { type: 'redirect_to_url'; redirect_to_url: { url: string; return_url: string | null } };
  processor: string | null;
  processor_reference: string | null;
  authorization_expires_at: Date | null;
  cancellation_reason: string | null;
  canceled_at: Date | null;
  idempotency_key: string | null;
  pricing_version: number;
  fee: number | null;
  balance_transaction: string | null;
  /** What the client sent for the fraud decision (email, IP, billing country). */
  fraud_details: FraudDetails | null;
  /** The last fraud decision's outcome, read from payment_fraud_decisions (written with PaymentWrite.fraudDecision). */
  fraud_outcome: FraudOutcome | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface AttemptRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  payment_id: string;
  operation: 'authorize' | 'capture' | 'void';
  processor: string;
  status: 'pending' | 'succeeded' | 'declined' | 'error' | 'requires_action';
  amount: number;
  processor_reference: string | null;
  error_code: string | null;
  decline_code: string | null;
  created_at: Date;
  completed_at: Date | null;
  /** The Idempotency-Key of the request that began this call (a failover continues it under the same key). */
  idempotency_key: string | null;
}

export interface PaymentState {
  row: PaymentRow;
  attempts: AttemptRow[];
}

const PAYMENT_COLUMNS: Columns<Omit<PaymentRow, 'fraud_outcome'>> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['amount', 'bigint'],
  ['currency', 'text'],
  ['status', 'text'],
  ['capture_method', 'text'],
  ['amount_capturable', 'bigint'],
  ['amount_received', 'bigint'],
  ['amount_refunded', 'bigint'],
  ['payment_method_id', 'text'],
  ['customer', 'text'],
  ['description', 'text'],
  ['statement_descriptor', 'text'],
  ['metadata', 'jsonb'],
  ['last_payment_error', 'jsonb'],
  ['next_action', 'jsonb'],
  ['processor', 'text'],
  ['processor_reference', 'text'],
  ['authorization_expires_at', 'timestamptz'],
  ['cancellation_reason', 'text'],
  ['canceled_at', 'timestamptz'],
  ['idempotency_key', 'text'],
  ['pricing_version', 'integer'],
  ['fee', 'bigint'],
  ['balance_transaction', 'text'],
  ['fraud_details', 'jsonb'],
  ['version', 'integer'],
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

// amount_refunded is owned by refunds (atomic increments), so a state write never overwrites it.
const PAYMENT_UPDATE_COLUMNS = PAYMENT_COLUMNS.filter(
  ([name]) => name !== 'amount_refunded' && name !== 'idempotency_key',
);

const ATTEMPT_COLUMNS: Columns<AttemptRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['payment_id', 'text'],
  ['operation', 'text'],
  ['processor', 'text'],
  ['status', 'text'],
  ['amount', 'bigint'],
  ['processor_reference', 'text'],
  ['error_code', 'text'],
  ['decline_code', 'text'],
  ['created_at', 'timestamptz'],
  ['completed_at', 'timestamptz'],
  ['idempotency_key', 'text'],
];

/** One request's share of a batched write. `update` carries the new state with version + 1. */
export interface PaymentWrite {
  scope: Scope;
  paymentMethod?: PaymentMethodRow;
  insert?: PaymentRow;
  /**
   * The Idempotency-Key the insert's request holds in write (HeldKey.claimedInWrite): claimed in this statement, and
   * the insert made only if the claim holds; if the key is another request's, the write rejects with KeyClaimLost.
   */
  keyClaim?: HeldKey;
  /** The answer of the request whose key it holds in write, stored with this write (and only if it is made). */
  keyAnswer?: WrittenAnswer;
  update?: PaymentRow;
  attempts?: AttemptRow[];
  events?: NewEventRow[];
  /** Ledger postings that must commit with this payment write, and only if it happens. */
  posting?: PreparedPosting;
  /** A capture the processor will dispute: on the dispute watch list with the capture. */
  disputeWatch?: DisputeWatchRow;
  /** The fraud review a payment the decision sent to review opens, with its authorization. */
  review?: ReviewRow;
  /** The compliance case a fraud block or block-list hit opens (or joins), with the payment's outcome. */
  alertCase?: AlertCaseRow;
  /** The fraud decision taken for this write's authorization; replaces the payment's previous one. */
  fraudDecision?: FraudDecisionRow;
}

/** A payment's last fraud decision (migration 034): the outcome the API shows and the inputs backtests replay. */
export interface FraudDecisionRow {
  payment_id: string;
  tenant_id: string;
  livemode: boolean;
  outcome: FraudOutcome;
  inputs: StoredInputs;
  decided_at: Date;
}

// The documents travel as one json array each, not as text[] elements: escaping them element by element was most of
// what fraud checks cost a payment (bench on/off 0.69 to about 0.9).
const FRAUD_DECISION_COLUMNS: Columns<FraudDecisionRow> = [
  ['payment_id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['outcome', 'json'],
  ['inputs', 'json'],
  ['decided_at', 'timestamptz'],
];

export interface DisputeWatchRow {
  payment_id: string;
  tenant_id: string;
  livemode: boolean;
  processor: string;
  processor_reference: string;
}

const DISPUTE_WATCH_COLUMNS: Columns<DisputeWatchRow> = [
  ['payment_id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['processor', 'text'],
  ['processor_reference', 'text'],
];

/**
 * The batched write path: all writes collected in one window go to PostgreSQL in one
 * transaction, one set-based statement per table. An update is compare-and-set on the payment's
 * version, an insert is skipped when a payment with the same idempotency key exists; an item
 * whose write did not happen writes nothing else and resolves to false.
 */
const UPDATE_ASSIGNMENTS = PAYMENT_UPDATE_COLUMNS.filter(
  ([name]) => !['id', 'tenant_id', 'livemode', 'created_at'].includes(name),
)
  .map(([name]) => `${name} = v.${name}`)
  .join(', ');

/**
 * The whole batch is one statement: data-modifying CTEs insert payments, update payments whose
 * tenant, mode, id and version still are the expected ones, and only for the payments actually
 * written insert their inline payment methods, attempts, events and ledger postings (a capture's
 * charge): a write that lost its race leaves no trace, not even its card.
 * PostgreSQL runs it atomically; with BEGIN and COMMIT
 * pipelined around it, a batch costs one round trip and one commit.
 */
function batchStatement(
  paymentMethods: PaymentMethodRow[],
  inserts: PaymentRow[],
  updates: PaymentRow[],
  attempts: AttemptRow[],
  events: NewEventRow[],
  postings: PreparedPosting[],
  watched: DisputeWatchRow[],
  reviews: ReviewRow[],
  alertCases: AlertCaseRow[],
  fraudDecisions: FraudDecisionRow[],
  keyClaims: HeldKey[],
  keyAnswers: WrittenAnswer[],
) {
  const statement = new UnnestStatement();
  const insertRows = statement.rows(PAYMENT_COLUMNS, inserts);
  // A claim not held: its key is in key_claims and not in keys_claimed.
  const lostClaims = `SELECT c.tenant_id, c.livemode, c.key FROM key_claims c WHERE NOT EXISTS (
        SELECT 1 FROM keys_claimed k WHERE k.tenant_id = c.tenant_id AND k.livemode = c.livemode AND k.key = c.key)`;
  const text = `
    WITH ${keyClaims.length ? `${keyClaimCtes(statement, keyClaims)}, lost_claims AS (${lostClaims}), ` : ''}ins AS (
      INSERT INTO payments (${columnNames(PAYMENT_COLUMNS)}) ${
        keyClaims.length
          ? `SELECT * FROM (${insertRows}) p WHERE NOT EXISTS (SELECT 1 FROM lost_claims c
        WHERE c.tenant_id = p.tenant_id AND c.livemode = p.livemode AND c.key = p.idempotency_key)`
          : insertRows
      }
      ON CONFLICT (tenant_id, livemode, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING id, tenant_id, livemode, payment_method_id
    ), upd AS (
      UPDATE payments t SET ${UPDATE_ASSIGNMENTS}
      FROM (${statement.rows(PAYMENT_UPDATE_COLUMNS, updates)}) v
      -- Tenant and mode are compared as one expression no index covers: as separate join keys they let
      -- the planner probe payments by tenant (every payment of it, per update) instead of by id.
      WHERE t.id = v.id AND t.version = v.version - 1
        AND concat(t.tenant_id, ':', t.livemode) = concat(v.tenant_id, ':', v.livemode)
      RETURNING t.id, t.tenant_id, t.livemode, t.payment_method_id
    ), written AS (
      SELECT * FROM ins UNION ALL SELECT * FROM upd
    ), pm AS (
      INSERT INTO payment_methods (${columnNames(PAYMENT_METHOD_COLUMNS)})
      SELECT * FROM (${statement.rows(PAYMENT_METHOD_COLUMNS, paymentMethods)}) m
      WHERE (m.id, m.tenant_id, m.livemode) IN (SELECT payment_method_id, tenant_id, livemode FROM written)
    ), att AS (
      INSERT INTO payment_attempts (${columnNames(ATTEMPT_COLUMNS)})
      SELECT * FROM (${statement.rows(ATTEMPT_COLUMNS, attempts)}) a WHERE a.payment_id IN (SELECT id FROM written)
      ON CONFLICT (id) DO UPDATE SET status = excluded.status, processor_reference = excluded.processor_reference,
        error_code = excluded.error_code, decline_code = excluded.decline_code, completed_at = excluded.completed_at
    ), ev AS (
      INSERT INTO events (${columnNames(EVENT_COLUMNS)})
      SELECT * FROM (${statement.rows(EVENT_COLUMNS, events)}) e WHERE e.object_id IN (SELECT id FROM written)
    )${postings.length ? `, ${postingCtes(statement, { transactions: postings.flatMap((p) => p.transactions), entries: postings.flatMap((p) => p.entries) }, 'written')}` : ''}${
      watched.length
        ? `, watch AS (
      INSERT INTO dispute_watch (${columnNames(DISPUTE_WATCH_COLUMNS)})
      SELECT * FROM (${statement.rows(DISPUTE_WATCH_COLUMNS, watched)}) w WHERE w.payment_id IN (SELECT id FROM written)
      ON CONFLICT (payment_id) DO NOTHING
    )`
        : ''
    }${
      reviews.length
        ? `, review AS (
      INSERT INTO fraud_reviews (${columnNames(REVIEW_COLUMNS)})
      SELECT * FROM (${statement.rows(REVIEW_COLUMNS, reviews)}) r WHERE r.payment_id IN (SELECT id FROM written)
      ON CONFLICT (payment_id) DO NOTHING
    )`
        : ''
    }${alertCases.length ? `, ${alertCaseCte(statement, alertCases, 'written')}` : ''}${
      fraudDecisions.length
        ? `, fraud AS (
      INSERT INTO payment_fraud_decisions (${columnNames(FRAUD_DECISION_COLUMNS)})
      SELECT * FROM (${statement.rows(FRAUD_DECISION_COLUMNS, fraudDecisions)}) f
      WHERE f.payment_id IN (SELECT id FROM written)
      ON CONFLICT (payment_id) DO UPDATE SET outcome = excluded.outcome, inputs = excluded.inputs,
        decided_at = excluded.decided_at
    )`
        : ''
    }${keyAnswers.length ? `, ${keyAnswerCte(statement, keyAnswers, 'written')}` : ''}
    SELECT id, NULL::text AS tenant_id, NULL::boolean AS livemode, NULL::text AS lost_key FROM written${
      keyClaims.length ? ` UNION ALL SELECT NULL, tenant_id, livemode, key FROM lost_claims` : ''
    }`;
  return { statement, text };
}

export function createPaymentWriter(sql: Sql, options: BatcherOptions, onBatch?: (size: number) => void) {
  return new MicroBatcher<PaymentWrite, boolean>(async (items) => {
    onBatch?.(items.length);
    // Of several updates of one payment in a batch at most one can match the stored version, and
    // only the one expecting the newest version can: it alone may try (the first of equals). A
    // stale update queued first must not crowd out the owner of the current version.
    const contender = new Map<string, number>();
    items.forEach((item, k) => {
      if (!item.update) return;
      const best = contender.get(item.update.id);
      if (best === undefined || item.update.version > items[best].update!.version) contender.set(item.update.id, k);
    });
    const trying = new Set(items.filter((item, k) => !item.update || contender.get(item.update.id) === k));
    const { written, lostKeys } = await writeBatch(sql, [...trying]);
    return items.map((item) => {
      if (!trying.has(item)) return false;
      const claim = item.keyClaim;
      const done = written.has((item.update ?? item.insert)!.id);
      // Not written: its payment was there already (its own key, stored on the payment), or its claim did not hold.
      const claimLost = claim && !done && (!lostKeys || lostKeys.has(keyIdentity(claim.scope, claim.key)));
      if (claimLost) return new KeyClaimLost(claim);
      if (claim) claim.written = true;
      if (done && item.keyAnswer) item.keyAnswer.held.answeredInWrite = item.keyAnswer.body;
      return done;
    });
  }, options);
}

/**
 * Writes a batch: the ids of the payments it wrote, and the identities of the keys whose claims did not hold
 * (undefined when the write's outcome was found out after a lost answer: a claim's item not found is then taken as
 * not held, and its request claims the key on its own).
 */
async function writeBatch(
  sql: Sql,
  tried: PaymentWrite[],
  retryUncommitted = true,
): Promise<{ written: Set<string>; lostKeys?: Set<string> }> {
  const { statement, text } = batchStatement(
    tried.flatMap((i) => (i.paymentMethod ? [i.paymentMethod] : [])),
    tried.flatMap((i) => (i.insert ? [i.insert] : [])),
    tried.flatMap((i) => (i.update ? [i.update] : [])),
    tried.flatMap((i) => i.attempts ?? []),
    tried.flatMap((i) => i.events ?? []),
    tried.flatMap((i) => (i.posting ? [i.posting] : [])),
    tried.flatMap((i) => (i.disputeWatch ? [i.disputeWatch] : [])),
    tried.flatMap((i) => (i.review ? [i.review] : [])),
    tried.flatMap((i) => (i.alertCase ? [i.alertCase] : [])),
    tried.flatMap((i) => (i.fraudDecision ? [i.fraudDecision] : [])),
    tried.flatMap((i) => (i.keyClaim ? [i.keyClaim] : [])),
    tried.flatMap((i) => (i.keyAnswer ? [i.keyAnswer] : [])),
  );
  try {
    const rows = await scopedStatement(
      sql,
      tried.map((i) => i.scope),
      (tx) =>
        statement.run<{ id: string | null; tenant_id: string | null; livemode: boolean | null; lost_key: string }[]>(
          tx,
          text,
        ),
    );
    const written = new Set<string>();
    const lostKeys = new Set<string>();
    for (const row of rows) {
      if (row.id !== null) written.add(row.id);
      else lostKeys.add(keyIdentity({ tenantId: row.tenant_id!, livemode: row.livemode! }, row.lost_key));
    }
    return { written, lostKeys };
  } catch (error) {
    if (!(error instanceof CommitOutcomeUnknown)) throw error;
    let found: Set<string>;
    try {
      await settleSession(sql, error.backendPid);
      found = await findWritten(sql, tried);
    } catch {
      // Still unknown: thrown as such, so that nobody retries or reports a failure on a guess.
      throw error;
    }
    if (found.size) return { written: found };
    // Not one write is there, so the batch (one statement: all or nothing) did not commit; or it
    // did and every compare-and-set failed, which writing again repeats harmlessly.
    if (retryUncommitted) return writeBatch(sql, tried, false);
    throw new Error('A batch of payment writes lost its connection twice and was not written.', { cause: error });
  }
}

const WRITTEN_KEY_COLUMNS = PAYMENT_COLUMNS.filter(([name]) =>
  ['id', 'tenant_id', 'livemode', 'version', 'updated_at'].includes(name),
);

/**
 * Which of a batch's writes are in the database, looked up after an ambiguous commit: a payment
 * with the tenant, mode, id, version and update time written, or one of the write's events (the
 * evidence that stays when a later write has since moved the payment on).
 */
async function findWritten(sql: Sql, tried: PaymentWrite[]): Promise<Set<string>> {
  const rows = tried.map((item) => (item.update ?? item.insert)!);
  const eventIds = tried.flatMap((item) => item.events?.map((event) => event.id) ?? []);
  return inScope(
    sql,
    tried.map((item) => item.scope),
    async (tx) => {
      const keys = new UnnestStatement();
      const payments = await keys.run<{ id: string }[]>(
        tx,
        `SELECT p.id FROM payments p JOIN (${keys.rows(WRITTEN_KEY_COLUMNS, rows)}) v
        ON p.id = v.id AND p.tenant_id = v.tenant_id AND p.livemode = v.livemode AND p.version = v.version
          AND p.updated_at = v.updated_at`,
      );
      const events = eventIds.length
        ? await tx<{ id: string }[]>`SELECT object_id AS id FROM events WHERE id = ANY(${eventIds})`
        : [];
      return new Set([...payments, ...events].map((row) => row.id));
    },
  );
}

/** A payment's attempts and fraud outcome, as columns of a query whose payment row is `payment`. */
const withAttempts = (tx: Tx, payment = 'p') => tx`
  coalesce((SELECT json_agg(a ORDER BY a.id) FROM payment_attempts a WHERE a.payment_id = ${tx(payment)}.id), '[]'::json) AS attempts,
  (SELECT f.outcome FROM payment_fraud_decisions f WHERE f.payment_id = ${tx(payment)}.id) AS fraud_outcome`;

// The row keeps its `attempts` column: copying its forty other columns out (a rest spread) to drop it was 5% of the
// API's CPU under a payment-list load. Nothing reads a row by its keys (writes and answers name their columns).
function toState(row: PaymentRow & { attempts: AttemptRow[] }): PaymentState {
  return { row, attempts: row.attempts };
}

export async function findPaymentIdByIdempotencyKey(sql: Sql, scope: Scope, key: string): Promise<string | undefined> {
  const [row] = await inScope(
    sql,
    scope,
    (tx) => tx<{ id: string }[]>`
    SELECT id FROM payments WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND idempotency_key = ${key}`,
  );
  return row?.id;
}

export interface PaymentRead {
  scope: Scope;
  id: string;
}

/**
 * Payment reads (a retrieve, and the read before each change) of concurrent requests share one query, `id = ANY(...)`,
 * in the read batch of their turn (ReadBatcher). Row-level security limits it to the batch's scopes; each request
 * then gets only the row of its own tenant and mode (another's is a 404, as it would be alone).
 */
export const readPayments: ReadCombiner<PaymentRead, PaymentState> = async (tx, reads) => {
  const ids = [...new Set(reads.map((read) => read.id))];
  const rows = await tx<(PaymentRow & { attempts: AttemptRow[] })[]>`
    SELECT p.*, ${withAttempts(tx)} FROM payments p WHERE p.id = ANY(${ids})`;
  const byId = new Map(rows.map((row) => [row.id, row]));
  return reads.map(({ scope, id }) => {
    const row = byId.get(id);
    // Each read its own copy: two reads of one payment in a batch must not share a state.
    return row && row.tenant_id === scope.tenantId && row.livemode === scope.livemode
      ? { row: { ...row }, attempts: [...row.attempts] }
      : ApiError.notFound('payment', id);
  });
};

export function createPaymentReader(reads: ReadBatcher) {
  return { submit: (read: PaymentRead) => reads.read(readPayments, read.scope, read) };
}

export type PaymentReader = ReturnType<typeof createPaymentReader>;

/** The tenant's payments among `ids` (others are absent), with their attempts: for `expand[]`. */
export function loadPayments(sql: Sql, scope: Scope, ids: string[]) {
  return inScope(sql, scope, async (tx) =>
    withAttemptsOf(tx, await findManyOwned<PaymentRow>(tx, 'payments', scope, ids)),
  );
}

/**
 * A page of payments with their attempts and fraud outcomes in one statement (and the cursor's check beside it): one
 * round trip on the read pool, in index order (Reads.page).
 */
export async function listPayments(
  reads: Reads,
  scope: Scope,
  params: ListParams & { status?: string; customer?: string },
) {
  const page = await reads.page(scope, (tx) =>
    listPage<PaymentRow & { attempts: AttemptRow[] }>(
      tx,
      'payments',
      scope,
      params,
      [
        ...(params.status ? [tx`AND status = ${params.status}`] : []),
        ...(params.customer ? [tx`AND customer = ${params.customer}`] : []),
      ],
      tx`item.*, ${withAttempts(tx, 'item')}`,
    ),
  );
  return { states: page.rows.map(toState), hasMore: page.hasMore };
}

/** Payments read as a page (a list or a search) with their attempts and fraud outcomes: two queries sent together. */
export async function withAttemptsOf(tx: Tx, rows: Omit<PaymentRow, 'fraud_outcome'>[]): Promise<PaymentState[]> {
  const ids = rows.map((r) => r.id);
  if (!ids.length) return [];
  const [attempts, decisions] = await Promise.all([
    tx<AttemptRow[]>`SELECT * FROM payment_attempts WHERE payment_id = ANY(${ids}) ORDER BY id`,
    tx<{ payment_id: string; outcome: FraudOutcome }[]>`
      SELECT payment_id, outcome FROM payment_fraud_decisions WHERE payment_id = ANY(${ids})`,
  ]);
  const byPayment = new Map<string, AttemptRow[]>();
  for (const attempt of attempts)
    byPayment.set(attempt.payment_id, [...(byPayment.get(attempt.payment_id) ?? []), attempt]);
  const outcomes = new Map(decisions.map((d) => [d.payment_id, d.outcome]));
  return rows.map((row) => ({
    row: { ...row, fraud_outcome: outcomes.get(row.id) ?? null },
    attempts: byPayment.get(row.id) ?? [],
  }));
}
