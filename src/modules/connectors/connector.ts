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

/**
 * What a connector call can end in for us: the processor's answer, or no answer at all (a timeout,
 * a dropped connection). `unknown` is not a failure: the processor may have acted, so the call
 * stays pending and is replayed with the same idempotency key until it answers.
 */
export type CallOutcome = ConnectorOutcome | { status: 'unknown'; message: string };

/** Who a call is for, as the processor knows it: the merchant account and the merchant's order. */
export interface MerchantOrder {
  merchant: { tenantId: string; livemode: boolean };
  /** Our payment id, which the processor keeps as the merchant's order reference. */
  paymentId: string;
}

export interface AuthorizeRequest extends MerchantOrder {
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

/** A call on an existing authorization: capturing it or voiding it. */
export interface AuthorizationCall extends MerchantOrder {
  attemptId: string;
  /** The authorization captured or voided. */
  reference: string;
  amount: number;
  currency: string;
}

export interface RefundRequest extends MerchantOrder {
  /** Our refund id, the processor's idempotency key for the refund. */
  refundId: string;
  reference: string;
  amount: number;
  currency: string;
}

export interface Connector {
  readonly name: string;
  authorize(request: AuthorizeRequest): Promise<ConnectorOutcome>;
  /** Calls below may throw or never answer: the caller treats that as an unknown outcome, never as a failure. */
  capture(request: AuthorizationCall): Promise<ConnectorOutcome>;
  void(request: AuthorizationCall): Promise<ConnectorOutcome>;
  refund(request: RefundRequest): Promise<ConnectorOutcome>;
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
