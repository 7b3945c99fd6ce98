import { MicroBatcher, type BatcherOptions } from '../../db/batcher.js';
import type { Sql } from '../../db/index.js';
import { columnNames, UnnestStatement, type Columns } from '../../db/unnest.js';
import type { ConnectorOutcome, MerchantOrder } from './connector.js';

export interface SimulatedCall extends MerchantOrder {
  processor: string;
  idempotencyKey: string;
  operation: 'authorize' | 'capture' | 'void' | 'refund';
  amount: number;
  currency: string;
  capture: boolean;
  cardLast4: string | null;
  /** The authorization this call acts on (capture, void, refund); an authorization's is its own reference. */
  authorizationReference: string | null;
}

interface CallRow {
  processor: string;
  idempotency_key: string;
  operation: string;
  merchant_id: string;
  livemode: boolean;
  order_id: string;
  amount: number;
  currency: string;
  capture: boolean;
  card_last4: string | null;
  status: 'succeeded' | 'declined' | 'requires_action' | 'error';
  reference: string | null;
  authorization_reference: string | null;
  code: string | null;
  decline_code: string | null;
  message: string | null;
}

const CALL_COLUMNS: Columns<CallRow> = [
  ['processor', 'text'],
  ['idempotency_key', 'text'],
  ['operation', 'text'],
  ['merchant_id', 'text'],
  ['livemode', 'boolean'],
  ['order_id', 'text'],
  ['amount', 'bigint'],
  ['currency', 'text'],
  ['capture', 'boolean'],
  ['card_last4', 'text'],
  ['status', 'text'],
  ['reference', 'text'],
  ['authorization_reference', 'text'],
  ['code', 'text'],
  ['decline_code', 'text'],
  ['message', 'text'],
];

const OUTCOME = 'processor, idempotency_key, status, reference, code, decline_code, message';
type OutcomeRow = Pick<
  CallRow,
  'processor' | 'idempotency_key' | 'status' | 'reference' | 'code' | 'decline_code' | 'message'
>;

function toOutcome(row: OutcomeRow): ConnectorOutcome {
  if (row.status === 'succeeded') return { status: 'succeeded', reference: row.reference! };
  if (row.status === 'requires_action') return { status: 'requires_action' };
  if (row.status === 'declined')
    return { status: 'declined', code: row.code!, declineCode: row.decline_code!, message: row.message! };
  return { status: 'error', code: 'processing_error', message: row.message! };
}

function toRow(call: SimulatedCall, outcome: ConnectorOutcome): CallRow {
  const reference = outcome.status === 'succeeded' ? outcome.reference : null;
  const failed = outcome.status === 'declined' || outcome.status === 'error';
  return {
    processor: call.processor,
    idempotency_key: call.idempotencyKey,
    operation: call.operation,
    merchant_id: call.merchant.tenantId,
    livemode: call.merchant.livemode,
    order_id: call.paymentId,
    amount: call.amount,
    currency: call.currency,
    capture: call.capture,
    card_last4: call.cardLast4,
    status: outcome.status,
    reference,
    authorization_reference: call.operation === 'authorize' ? reference : call.authorizationReference,
    code: failed ? outcome.code : null,
    decline_code: outcome.status === 'declined' ? outcome.declineCode : null,
    message: failed ? outcome.message : null,
  };
}

const keyOf = (row: Pick<CallRow, 'processor' | 'idempotency_key'>) => `${row.processor}\u0000${row.idempotency_key}`;

/**
 * The simulated processors' own database (`sim_processor_calls`): every call they acted on, by
 * processor and idempotency key. Recording is the act: the first call with a key decides its
 * outcome and every replay of the key gets that outcome back, whoever sends it and however often.
 * Calls are recorded with group commit, so the simulation costs the payment path one shared
 * commit per batch rather than one per call.
 */
export class SimulatedProcessorRecords {
  private readonly writer: MicroBatcher<CallRow, OutcomeRow>;

  constructor(
    private readonly sql: Sql,
    batching: BatcherOptions = { maxSize: 64, maxConcurrency: 2 },
  ) {
    this.writer = new MicroBatcher((rows) => this.record(rows), batching);
  }

  async actOnce(call: SimulatedCall, outcome: ConnectorOutcome): Promise<ConnectorOutcome> {
    return toOutcome(await this.writer.submit(toRow(call, outcome)));
  }

  private async record(rows: CallRow[]): Promise<OutcomeRow[]> {
    const insert = new UnnestStatement();
    const inserted = await this.sql.unsafe<OutcomeRow[]>(
      `INSERT INTO sim_processor_calls (${columnNames(CALL_COLUMNS)}) ${insert.rows(CALL_COLUMNS, rows)}
       ON CONFLICT (processor, idempotency_key) DO NOTHING RETURNING ${OUTCOME}`,
      insert.params as never[],
      { prepare: true },
    );
    const first = new Map(inserted.map((row) => [keyOf(row), row]));
    const replays = rows.filter((row) => !first.has(keyOf(row)));
    if (replays.length) {
      // Replays read in a statement of their own, which sees the first calls' rows once committed.
      const select = new UnnestStatement();
      const recorded = await this.sql.unsafe<OutcomeRow[]>(
        `SELECT ${OUTCOME} FROM sim_processor_calls
         WHERE (processor, idempotency_key) IN (SELECT processor, idempotency_key FROM (${select.rows(
           CALL_COLUMNS.filter(([name]) => name === 'processor' || name === 'idempotency_key'),
           replays,
         )}) k)`,
        select.params as never[],
        { prepare: true },
      );
      for (const row of recorded) first.set(keyOf(row), row);
    }
    return rows.map((row) => first.get(keyOf(row))!);
  }
}
