/** What every processor integration implements; the payment state machine knows nothing else. */
export interface CardDetails {
  number: string;
  expMonth: number;
  expYear: number;
}

export type ConnectorOutcome =
  | { status: 'succeeded'; reference: string }
  | { status: 'declined'; code: string; declineCode: string; message: string }
  | { status: 'requires_action' }
  | { status: 'error'; code: 'processing_error'; message: string };

export interface AuthorizeRequest {
  /** Our attempt id: processors treat it as an idempotency key, so a retried call is not doubled. */
  attemptId: string;
  amount: number;
  currency: string;
  card: CardDetails;
  capture: boolean;
  threeDSecureAuthenticated: boolean;
}

export interface VerifyResult {
  status: 'succeeded' | 'declined' | 'error';
  code?: string;
  declineCode?: string;
  message?: string;
}

/** A chargeback the cardholder's bank opened on a captured payment. */
export interface ConnectorDispute {
  reason: string;
  amount: number;
}

export type DisputeOutcome = 'won' | 'lost';

export interface Connector {
  readonly name: string;
  authorize(request: AuthorizeRequest): Promise<ConnectorOutcome>;
  capture(request: {
    attemptId: string;
    reference: string;
    amount: number;
    currency: string;
  }): Promise<ConnectorOutcome>;
  void(request: { attemptId: string; reference: string }): Promise<ConnectorOutcome>;
  refund(request: { refundId: string; reference: string; amount: number; currency: string }): Promise<ConnectorOutcome>;
  verify(request: { card: CardDetails }): Promise<VerifyResult>;
  /**
   * Whether the processor will open a dispute on the capture behind `reference`: the simulation's
   * stand-in for a processor's dispute notifications. Such a capture goes on the dispute watch list.
   */
  willDispute(reference: string): boolean;
  /** Whether the payment behind `reference` is disputed; null while it is not. */
  dispute(request: { reference: string; amount: number }): Promise<ConnectorDispute | null>;
  /** The bank's decision on a dispute whose evidence was submitted. */
  disputeOutcome(request: { reference: string; evidence: Record<string, string> }): Promise<DisputeOutcome>;
}
