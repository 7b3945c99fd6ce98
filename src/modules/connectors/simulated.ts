import { createHash } from 'node:crypto';
import type {
  AuthorizeRequest,
  CardDetails,
  Connector,
  ConnectorDispute,
  ConnectorOutcome,
  DisputeOutcome,
  VerifyResult,
} from './connector.js';

export interface SimulatedProcessorOptions {
  latencyMs: number;
  /** Probability (0–1) that any call fails with processing_error, as a real processor sometimes does. */
  failureRate: number;
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
  '4100000000000019': { code: 'card_declined', declineCode: 'fraudulent', message: 'Your card was declined.' },
};
const THREE_D_SECURE_REQUIRED = new Set(['4000000000003220']);
const DISPUTED = new Set(['4000000000000259']);

/**
 * A processor simulated in process: deterministic by test card, with configurable latency and
 * random failure rate. References are derived from our attempt id, so repeating a call with the
 * same attempt id returns the same reference, like an idempotent processor API.
 */
export class SimulatedProcessor implements Connector {
  constructor(
    readonly name: string,
    private readonly options: SimulatedProcessorOptions,
  ) {}

  // A disputed card's reference carries a marker, so that the processor can tell later, from the
  // reference alone, that it is disputed.
  private reference(key: string, disputed = false) {
    return `${this.name}_${disputed ? 'dsp_' : ''}${createHash('sha256').update(key).digest('hex').slice(0, 20)}`;
  }

  private async pause() {
    if (this.options.latencyMs > 0) await new Promise((r) => setTimeout(r, this.options.latencyMs));
  }

  private async respond(card: CardDetails | undefined, outcome: () => ConnectorOutcome): Promise<ConnectorOutcome> {
    await this.pause();
    if ((card && this.options.failingCards.includes(card.number)) || Math.random() < this.options.failureRate) {
      return { status: 'error', code: 'processing_error', message: `${this.name} could not process the request.` };
    }
    return outcome();
  }

  async authorize(request: AuthorizeRequest): Promise<ConnectorOutcome> {
    return this.respond(request.card, (): ConnectorOutcome => {
      const decline = DECLINES[request.card.number];
      if (decline) return { status: 'declined', ...decline };
      if (THREE_D_SECURE_REQUIRED.has(request.card.number) && !request.threeDSecureAuthenticated)
        return { status: 'requires_action' };
      return { status: 'succeeded', reference: this.reference(request.attemptId, DISPUTED.has(request.card.number)) };
    });
  }

  private succeed(key: string): Promise<ConnectorOutcome> {
    return this.respond(undefined, () => ({ status: 'succeeded', reference: this.reference(key) }));
  }

  capture(request: { attemptId: string }): Promise<ConnectorOutcome> {
    return this.succeed(request.attemptId);
  }

  void(request: { attemptId: string }): Promise<ConnectorOutcome> {
    return this.succeed(request.attemptId);
  }

  refund(request: { refundId: string }): Promise<ConnectorOutcome> {
    return this.succeed(request.refundId);
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

  async verify(request: { card: CardDetails }): Promise<VerifyResult> {
    const outcome = await this.authorize({
      attemptId: `verify_${request.card.number.slice(-4)}`,
      amount: 0,
      currency: 'usd',
      card: request.card,
      capture: false,
      threeDSecureAuthenticated: true,
    });
    if (outcome.status === 'succeeded' || outcome.status === 'requires_action') return { status: 'succeeded' };
    if (outcome.status === 'declined')
      return { status: 'declined', code: outcome.code, declineCode: outcome.declineCode, message: outcome.message };
    return { status: 'error', code: outcome.code, message: outcome.message };
  }
}
