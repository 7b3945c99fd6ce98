import type { Sql } from '../../db/index.js';
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
  status: 'succeeded' | 'declined' | 'requires_action' | 'error';
  reference: string | null;
  code: string | null;
  decline_code: string | null;
  message: string | null;
}

function toOutcome(row: CallRow): ConnectorOutcome {
  if (row.status === 'succeeded') return { status: 'succeeded', reference: row.reference! };
  if (row.status === 'requires_action') return { status: 'requires_action' };
  if (row.status === 'declined')
    return { status: 'declined', code: row.code!, declineCode: row.decline_code!, message: row.message! };
  return { status: 'error', code: 'processing_error', message: row.message! };
}

/**
 * The simulated processors' own database (`sim_processor_calls`): every call they acted on, by
 * processor and idempotency key. Recording is the act: the first call with a key decides its
 * outcome and every replay of the key gets that outcome back, whoever sends it and however often.
 */
export class SimulatedProcessorRecords {
  constructor(private readonly sql: Sql) {}

  async actOnce(call: SimulatedCall, outcome: ConnectorOutcome): Promise<ConnectorOutcome> {
    const reference = outcome.status === 'succeeded' ? outcome.reference : null;
    const authorization = call.operation === 'authorize' ? reference : call.authorizationReference;
    const [inserted] = await this.sql<CallRow[]>`
      INSERT INTO sim_processor_calls (processor, idempotency_key, operation, merchant_id, livemode, order_id, amount,
        currency, capture, card_last4, status, reference, authorization_reference, code, decline_code, message)
      VALUES (${call.processor}, ${call.idempotencyKey}, ${call.operation}, ${call.merchant.tenantId},
        ${call.merchant.livemode}, ${call.paymentId}, ${call.amount}, ${call.currency}, ${call.capture}, ${call.cardLast4},
        ${outcome.status}, ${reference}, ${authorization},
        ${outcome.status === 'declined' || outcome.status === 'error' ? outcome.code : null},
        ${outcome.status === 'declined' ? outcome.declineCode : null},
        ${outcome.status === 'declined' || outcome.status === 'error' ? outcome.message : null})
      ON CONFLICT (processor, idempotency_key) DO NOTHING
      RETURNING status, reference, code, decline_code, message`;
    if (inserted) return toOutcome(inserted);
    // A replay: read in a statement of its own, which sees the first call's row once it committed.
    const [first] = await this.sql<CallRow[]>`
      SELECT status, reference, code, decline_code, message FROM sim_processor_calls
      WHERE processor = ${call.processor} AND idempotency_key = ${call.idempotencyKey}`;
    return toOutcome(first);
  }
}
