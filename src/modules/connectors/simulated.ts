import { createHash } from 'node:crypto';
import type {
  AuthorizeRequest,
  AuthorizationCall,
  CardDetails,
  Connector,
  ConnectorDispute,
  ConnectorOutcome,
  DisputeOutcome,
  RefundRequest,
  VerifyResult,
} from './connector.js';
import type { SimulatedCall, SimulatedProcessorRecords } from './simulated-records.js';

export interface SimulatedProcessorOptions {
  latencyMs: number;
  /** Probability (0–1) that any call fails with processing_error, as a real processor sometimes does. */
  failureRate: number;
  /**
   * Probability (0–1) that the processor acts on a call and its answer never arrives: the call
   * throws (connection reset) or hangs past our timeout, as a dropped connection would.
   */
  lostResponseRate: number;
  /** Card numbers on which this processor fails with processing_error (failover testing). */
  failingCards: string[];
}

const DECLINES: Record<string, { code: string; declineCode: string; message: string }> = {
  '4000000000000002': { code: 'card_declined', declineCode: 'generic_decline', message: 'Your card was declined.' },
  '4000000000009995': {
    code: 'card_declined',
    declineCode: 'insufficient_funds',
    message: 'Your card has insufficient funds.',
  },
  '4000000000000127': {
    code: 'incorrect_cvc',
    declineCode: 'incorrect_cvc',
    message: "Your card's security code is incorrect.",
  },
  '4000000000000069': { code: 'expired_card', declineCode: 'expired_card', message: 'Your card has expired.' },
};
const THREE_D_SECURE_REQUIRED = new Set(['4000000000003220']);
const DISPUTED = new Set(['4000000000000259']);

/**
 * A processor simulated in process, with a database of its own (`SimulatedProcessorRecords`):
 * deterministic by test card, with configurable latency, random failure rate and lost responses.
 * It acts when a call reaches it and remembers the call by its idempotency key, so a replay
 * returns the first result and acts no second time, as an idempotent processor API does; the
 * answer then travels back (the latency) and may be lost on the way.
 */
export class SimulatedProcessor implements Connector {
  constructor(
    readonly name: string,
    private readonly options: SimulatedProcessorOptions,
    private readonly records: SimulatedProcessorRecords,
  ) {}

  // A disputed card's reference carries a marker, so that the processor can tell later, from the
  // reference alone, that it is disputed.
  private reference(key: string, disputed = false) {
    return `${this.name}_${disputed ? 'dsp_' : ''}${createHash('sha256').update(key).digest('hex').slice(0, 20)}`;
  }

  private async pause() {
    if (this.options.latencyMs > 0) await new Promise((r) => setTimeout(r, this.options.latencyMs));
  }

  private failed(card: CardDetails | undefined): boolean {
    return (
      (card !== undefined && this.options.failingCards.includes(card.number)) ||
      Math.random() < this.options.failureRate
    );
  }

  private error(): ConnectorOutcome {
    return { status: 'error', code: 'processing_error', message: `${this.name} could not process the request.` };
  }

  /** Acts once per idempotency key, then answers after the latency, unless the answer is lost. */
  private async act(call: Omit<SimulatedCall, 'processor'>, outcome: ConnectorOutcome): Promise<ConnectorOutcome> {
    const recorded = await this.records.actOnce({ ...call, processor: this.name }, outcome);
    await this.pause();
    if (Math.random() < this.options.lostResponseRate) {
      if (Math.random() < 0.5) throw new Error(`${this.name}: connection reset before the response arrived`);
      return new Promise<never>(() => {});
    }
    return recorded;
  }

  private decide(card: CardDetails, threeDSecureAuthenticated: boolean, key: string): ConnectorOutcome {
    if (this.failed(card)) return this.error();
    const decline = DECLINES[card.number];
    if (decline) return { status: 'declined', ...decline };
    if (THREE_D_SECURE_REQUIRED.has(card.number) && !threeDSecureAuthenticated) return { status: 'requires_action' };
    return { status: 'succeeded', reference: this.reference(key, DISPUTED.has(card.number)) };
  }

  authorize(request: AuthorizeRequest): Promise<ConnectorOutcome> {
    const { merchant, paymentId, attemptId, amount, currency, card } = request;
    return this.act(
      {
        merchant,
        paymentId,
        idempotencyKey: attemptId,
        operation: 'authorize',
        amount,
        currency,
        capture: request.capture,
        cardLast4: card.number.slice(-4),
        authorizationReference: null,
      },
      this.decide(card, request.threeDSecureAuthenticated, attemptId),
    );
  }

  private followUp(
    request: AuthorizationCall | RefundRequest,
    idempotencyKey: string,
    operation: 'capture' | 'void' | 'refund',
  ): Promise<ConnectorOutcome> {
    const { merchant, paymentId, amount, currency, reference } = request;
    return this.act(
      {
        merchant,
        paymentId,
        idempotencyKey,
        operation,
        amount,
        currency,
        capture: false,
        cardLast4: null,
        authorizationReference: reference,
      },
      this.failed(undefined) ? this.error() : { status: 'succeeded', reference: this.reference(idempotencyKey) },
    );
  }

  capture(request: AuthorizationCall): Promise<ConnectorOutcome> {
    return this.followUp(request, request.attemptId, 'capture');
  }

  void(request: AuthorizationCall): Promise<ConnectorOutcome> {
    return this.followUp(request, request.attemptId, 'void');
  }

  refund(request: RefundRequest): Promise<ConnectorOutcome> {
    return this.followUp(request, request.refundId, 'refund');
  }

  willDispute(reference: string): boolean {
    return reference.startsWith(`${this.name}_dsp_`);
  }

  /** The disputed test card's payments are disputed as fraudulent, for the whole captured amount. */
  async dispute(request: { reference: string; amount: number }): Promise<ConnectorDispute | null> {
    await this.answerOrFail();
    return this.willDispute(request.reference) ? { reason: 'fraudulent', amount: request.amount } : null;
  }

  /**
   * Stripe's test convention: `uncategorized_text` containing "winning_evidence" wins and
   * "losing_evidence" loses (winning checked first); otherwise any evidence wins and none loses.
   */
  async disputeOutcome(request: { reference: string; evidence: Record<string, string> }): Promise<DisputeOutcome> {
    await this.answerOrFail();
    const text = request.evidence.uncategorized_text ?? '';
    if (text.includes('winning_evidence')) return 'won';
    if (text.includes('losing_evidence')) return 'lost';
    return Object.values(request.evidence).some((value) => value.length > 0) ? 'won' : 'lost';
  }

  // Dispute calls have no outcome to carry a processing_error, so a simulated failure throws and
  // the worker pass retries the dispute next time.
  private async answerOrFail() {
    await this.pause();
    if (Math.random() < this.options.failureRate) throw new Error(`${this.name} could not process the request.`);
  }

  /** A $0 check of the card: answered on the spot and kept in no record, as it moves no money. */
  async verify(request: { card: CardDetails }): Promise<VerifyResult> {
    await this.pause();
    const outcome = this.decide(request.card, true, `verify_${request.card.number.slice(-4)}`);
    if (outcome.status === 'succeeded' || outcome.status === 'requires_action') return { status: 'succeeded' };
    if (outcome.status === 'declined')
      return { status: 'declined', code: outcome.code, declineCode: outcome.declineCode, message: outcome.message };
    return { status: 'error', code: outcome.code, message: outcome.message };
  }
}
