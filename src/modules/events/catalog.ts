import { Type, type Static } from 'typebox';
import { ref } from '../../http/schemas.js';
import type { BankAccount } from '../bank-accounts/schemas.js';
import type { Dispute } from '../disputes/schemas.js';
import type { Payment } from '../payments/schemas.js';
import type { Payout } from '../payouts/schemas.js';
import type { Refund } from '../refunds/schemas.js';
import type { Settlement } from '../settlements/schemas.js';
import type { Event } from './events.js';
import type { Customer } from '../customers/schemas.js';
import type { PaymentMethod } from '../payment-methods/schemas.js';
import { LATEST_API_VERSION } from '../versions/versions.js';
import type { CheckoutSession } from '../checkout/schemas.js';

/**
 * Every event type the platform emits, with what it means and an example of the object it carries.
 * `newEvent` accepts only these names, so a type emitted without being listed here fails to
 * compile; `GET /v1/event_types` serves this list and webhook endpoints subscribe to it.
 */

const CREATED = 1764400000;

// Examples are typed with each object's API type, so they stay in the shape the API returns.
const payment = (changes: Partial<Payment>): Payment => ({
  id: 'pay_01kbaz0k2m3n4p5q6r7s8t9v0w',
  object: 'payment',
  amount: 2000,
  amount_capturable: 0,
  amount_received: 0,
  amount_refunded: 0,
  currency: 'usd',
  status: 'requires_confirmation',
  capture_method: 'automatic',
  payment_method: 'pm_01kbaz0k2m3n4p5q6r7s8t9v0x',
  customer: 'cus_42',
  description: 'Order #1042',
  statement_descriptor: null,
  metadata: { order_id: '1042' },
  last_payment_error: null,
  next_action: null,
  processor: null,
  authorization_expires_at: null,
  canceled_at: null,
  cancellation_reason: null,
  fee: null,
  net: null,
  balance_transaction: null,
  pricing_version: 0,
  outcome: null,
  attempts: [],
  created: CREATED,
  livemode: false,
  ...changes,
  latest_attempt: changes.attempts?.at(-1)?.id ?? null,
});

const checkoutSession = (changes: Partial<CheckoutSession>): CheckoutSession => ({
  id: 'cs_01kbaz0k2m3n4p5q6r7s8t9v3a',
  object: 'checkout.session',
  status: 'open',
  payment_status: 'unpaid',
  url: null,
  payment: 'pay_01kbaz0k2m3n4p5q6r7s8t9v0w',
  amount: 4900,
  currency: 'eur',
  customer: null,
  success_url: 'https://shop.example.com/thanks',
  cancel_url: 'https://shop.example.com/cart',
  metadata: { order_id: '1042' },
  expires_at: CREATED + 86400,
  completed_at: null,
  created: CREATED,
  livemode: false,
  ...changes,
});

const customer = (changes: Partial<Customer> = {}): Customer => ({
  id: 'cus_01kbaz0k2m3n4p5q6r7s8t9v2a',
  object: 'customer',
  email: 'jenny@example.com',
  name: 'Jenny Rosen',
  phone: null,
  metadata: {},
  default_payment_method: null,
  erased: false,
  created: CREATED,
  livemode: false,
  ...changes,
});

const savedCard = (customerId: string | null): PaymentMethod => ({
  id: 'pm_01kbaz0k2m3n4p5q6r7s8t9v0x',
  object: 'payment_method',
  type: 'card',
  card: {
    brand: 'visa',
    bin: '424242',
    last4: '4242',
    exp_month: 12,
    exp_year: 2030,
    funding: 'credit',
    country: 'US',
    fingerprint: 'fp_3b1c9e0d5a7f2e48',
    checks: { cvc_check: 'pass' },
  },
  customer: customerId,
  metadata: {},
  created: CREATED,
  livemode: false,
});

const authorize = (status: string, changes: Record<string, string | null> = {}) => ({
  id: 'att_01kbaz0k2m3n4p5q6r7s8t9v0y',
  operation: 'authorize',
  processor: 'sim_alpha',
  status,
  amount: 2000,
  error_code: null,
  decline_code: null,
  latency_ms: status === 'pending' ? null : 184,
  created: CREATED,
  ...changes,
});

const captured = payment({
  status: 'succeeded',
  amount_received: 2000,
  processor: 'sim_alpha',
  fee: 88,
  net: 1912,
  balance_transaction: 'txn_01kbaz0k2m3n4p5q6r7s8t9v0z',
  attempts: [
    authorize('succeeded'),
    { ...authorize('succeeded'), id: 'att_01kbaz0k2m3n4p5q6r7s8t9v10', operation: 'capture' },
  ],
});

const refund = (changes: Partial<Refund>): Refund => ({
  id: 're_01kbaz0k2m3n4p5q6r7s8t9v11',
  object: 'refund',
  amount: 500,
  currency: 'usd',
  payment: captured.id,
  reason: 'requested_by_customer',
  status: 'pending',
  failure_reason: null,
  balance_transaction: null,
  metadata: {},
  created: CREATED,
  livemode: false,
  ...changes,
});

const dispute = (changes: Partial<Dispute>): Dispute => ({
  id: 'dp_01kbaz0k2m3n4p5q6r7s8t9v12',
  object: 'dispute',
  amount: 2000,
  currency: 'usd',
  payment: captured.id,
  reason: 'fraudulent',
  status: 'needs_response',
  evidence: {
    product_description: null,
    customer_name: null,
    customer_email_address: null,
    customer_purchase_ip: null,
    billing_address: null,
    customer_communication: null,
    shipping_address: null,
    shipping_carrier: null,
    shipping_tracking_number: null,
    shipping_date: null,
    service_date: null,
    refund_policy_disclosure: null,
    uncategorized_text: null,
  },
  evidence_details: { due_by: CREATED + 7 * 86400, has_evidence: false, past_due: false, submission_count: 0 },
  balance_transactions: ['txn_01kbaz0k2m3n4p5q6r7s8t9v13'],
  fee: 1500,
  metadata: {},
  created: CREATED,
  livemode: false,
  ...changes,
});

const submitted = dispute({
  status: 'under_review',
  evidence: { ...dispute({}).evidence, uncategorized_text: 'Signed delivery receipt attached.' },
  evidence_details: { due_by: CREATED + 7 * 86400, has_evidence: true, past_due: false, submission_count: 1 },
});

const payout = (changes: Partial<Payout>): Payout => ({
  id: 'po_01kbaz0k2m3n4p5q6r7s8t9v14',
  object: 'payout',
  amount: 150000,
  currency: 'usd',
  method: 'standard',
  status: 'pending',
  destination: 'ba_01kbaz0k2m3n4p5q6r7s8t9v15',
  arrival_date: CREATED + 86400,
  automatic: false,
  balance_transaction: 'txn_01kbaz0k2m3n4p5q6r7s8t9v16',
  failure_balance_transaction: null,
  failure_code: null,
  failure_message: null,
  description: null,
  metadata: {},
  created: CREATED,
  livemode: false,
  ...changes,
});

const bankAccount = (changes: Partial<BankAccount>): BankAccount => ({
  id: 'ba_01kbaz0k2m3n4p5q6r7s8t9v15',
  object: 'bank_account',
  account_holder_name: 'Acme Inc.',
  country: 'US',
  currency: 'usd',
  routing_number: '110000000',
  last4: '6789',
  fingerprint: 'Xt5EWLLDS7FJjR1c',
  status: 'new',
  default_for_currency: true,
  metadata: {},
  created: CREATED,
  livemode: false,
  ...changes,
});

const settlement: Settlement = {
  id: 'st_01kbaz0k2m3n4p5q6r7s8t9v17',
  object: 'settlement',
  currency: 'usd',
  settlement_date: '2026-11-29',
  count: 3,
  gross: 6000,
  fees: 264,
  refunds: -500,
  disputes: 0,
  net: 5236,
  payout: null,
  created: CREATED,
  livemode: false,
};

interface CatalogEntry {
  description: string;
  example: { id: string; [field: string]: unknown };
}

export const EVENT_CATALOG = {
  'payment.created': {
    description: 'A payment was created (confirmed or not).',
    example: payment({}),
  },
  'payment.requires_action': {
    description: 'The card issuer asks for 3-D Secure: send the customer to `next_action.redirect_to_url.url`.',
    example: payment({
      status: 'requires_action',
      processor: 'sim_alpha',
      next_action: {
        type: 'redirect_to_url',
        redirect_to_url: {
          url: 'https://api.example.com/3ds/eyJhbGciOi…',
          return_url: 'https://shop.example.com/done',
        },
      },
      attempts: [authorize('requires_action')],
    }),
  },
  'payment.requires_capture': {
    description: 'A manual-capture payment was authorized; capture it before `authorization_expires_at`.',
    example: payment({
      status: 'requires_capture',
      capture_method: 'manual',
      amount_capturable: 2000,
      processor: 'sim_alpha',
      authorization_expires_at: CREATED + 7 * 86400,
      attempts: [authorize('succeeded')],
    }),
  },
  'payment.succeeded': {
    description: 'The payment was captured: the funds are on their way to your balance.',
    example: captured,
  },
  'payment.failed': {
    description: 'An authorization was declined or failed; the payment is back in `requires_payment_method`.',
    example: payment({
      status: 'requires_payment_method',
      processor: 'sim_alpha',
      last_payment_error: {
        type: 'card_error',
        code: 'card_declined',
        decline_code: 'insufficient_funds',
        message: 'Your card has insufficient funds.',
        processor: 'sim_alpha',
      },
      attempts: [authorize('declined', { error_code: 'card_declined', decline_code: 'insufficient_funds' })],
    }),
  },
  'payment.capture_failed': {
    description: 'The processor refused to capture an authorized payment.',
    example: payment({
      status: 'requires_capture',
      capture_method: 'manual',
      amount_capturable: 2000,
      processor: 'sim_alpha',
      attempts: [authorize('succeeded')],
    }),
  },
  'payment.canceled': {
    description: 'The payment was canceled (by you, or its authorization expired); an authorization was voided.',
    example: payment({ status: 'canceled', canceled_at: CREATED + 60, cancellation_reason: 'abandoned' }),
  },
  'payment.updated': {
    description:
      'A payment was updated (POST /v1/payments/{id}): its description, metadata, customer, statement descriptor, or amount and currency before confirmation.',
    example: payment({ metadata: { order_id: '1042', gift: 'true' } }),
  },
  'customer.created': { description: 'A customer was created.', example: customer() },
  'customer.updated': {
    description: 'A customer was updated, its default card changed, or its personal data erased.',
    example: customer({ phone: '+15555550100' }),
  },
  'customer.deleted': { description: 'A customer was deleted.', example: customer() },
  'payment_method.attached': {
    description: 'A saved card was attached to a customer.',
    example: savedCard('cus_01kbaz0k2m3n4p5q6r7s8t9v2a'),
  },
  'payment_method.detached': { description: 'A saved card was detached from its customer.', example: savedCard(null) },
  'refund.created': {
    description: 'A refund was created; its amount is reserved until it succeeds or fails.',
    example: refund({}),
  },
  'refund.succeeded': {
    description: 'The processor refunded the money: the amount has left your balance.',
    example: refund({ status: 'succeeded', balance_transaction: 'txn_01kbaz0k2m3n4p5q6r7s8t9v18' }),
  },
  'refund.failed': {
    description: 'The processor refused the refund; its amount is available again.',
    example: refund({ status: 'failed', failure_reason: 'processor_error' }),
  },
  'dispute.created': {
    description: 'The cardholder disputed a payment; respond with evidence before `evidence_details.due_by`.',
    example: dispute({}),
  },
  'dispute.funds_withdrawn': {
    description: 'The disputed amount and the dispute fee were taken from your balance.',
    example: dispute({}),
  },
  'dispute.updated': {
    description: 'Evidence was added to or submitted for a dispute.',
    example: submitted,
  },
  'dispute.funds_reinstated': {
    description: 'You won the dispute: the disputed amount is back in your balance (the fee is kept).',
    example: {
      ...submitted,
      status: 'won',
      balance_transactions: ['txn_01kbaz0k2m3n4p5q6r7s8t9v13', 'txn_01kbaz0k2m3n4p5q6r7s8t9v19'],
    },
  },
  'dispute.closed': {
    description: 'The dispute is decided (`won` or `lost`), or you accepted it.',
    example: { ...submitted, status: 'lost' },
  },
  'payout.created': {
    description: 'A payout to one of your bank accounts was made (by you, or automatically after a settlement).',
    example: payout({}),
  },
  'payout.updated': {
    description: 'The payout left for the bank (`in_transit`).',
    example: payout({ status: 'in_transit' }),
  },
  'payout.paid': {
    description: 'The payout arrived at the bank.',
    example: payout({ status: 'paid' }),
  },
  'payout.failed': {
    description: 'The bank refused the payout; its amount is available again.',
    example: payout({
      status: 'failed',
      failure_code: 'no_account',
      failure_message: 'The bank account does not exist.',
      failure_balance_transaction: 'txn_01kbaz0k2m3n4p5q6r7s8t9v1a',
    }),
  },
  'bank_account.created': {
    description: 'A bank account was registered; it can receive payouts once verified.',
    example: bankAccount({}),
  },
  'bank_account.verified': {
    description: 'The micro-deposits were confirmed: the account can receive payouts.',
    example: bankAccount({ status: 'verified' }),
  },
  'bank_account.verification_failed': {
    description: 'Three wrong micro-deposit pairs: the account can never receive payouts.',
    example: bankAccount({ status: 'verification_failed' }),
  },
  'bank_account.updated': {
    description: 'A bank account became the default for its currency, or its metadata changed.',
    example: bankAccount({ status: 'verified', metadata: { label: 'main' } }),
  },
  'bank_account.deleted': {
    description: 'A bank account was deleted; payouts already on their way still arrive.',
    example: bankAccount({ status: 'verified', default_for_currency: false }),
  },
  'balance.available': {
    description: 'A settlement moved funds from pending to available; the object is the settlement.',
    example: settlement,
  },
  'webhook_endpoint.test': {
    description: 'Sent by POST /v1/webhook_endpoints/{id}/test to that endpoint alone, to see a delivery arrive.',
    example: {
      id: 'we_01kbaz0k2m3n4p5q6r7s8t9v1b',
      object: 'webhook_endpoint',
      url: 'https://shop.example.com/webhooks',
      enabled_events: ['payment.*'],
      description: null,
      metadata: {},
      status: 'enabled',
      disabled_reason: null,
      created: CREATED,
      livemode: false,
    },
  },
  'webhook_endpoint.disabled': {
    description: 'A webhook endpoint was disabled (it answered 410, or failed continuously); the reason is on it.',
    example: {
      id: 'we_01kbaz0k2m3n4p5q6r7s8t9v1b',
      object: 'webhook_endpoint',
      url: 'https://shop.example.com/webhooks',
      enabled_events: ['payment.*'],
      description: null,
      metadata: {},
      status: 'disabled',
      disabled_reason: 'failing_continuously',
      created: CREATED,
      livemode: false,
    },
  },
  'report.ready': {
    description: 'A report you asked for is ready to download.',
    example: {
      id: 'rpt_01kbaz0k2m3n4p5q6r7s8t9v1c',
      object: 'report',
      type: 'transaction_summary',
      format: 'csv',
      status: 'succeeded',
      created: CREATED,
      livemode: false,
    },
  },
  'report.failed': {
    description: 'A report you asked for could not be produced; `failure_message` says why.',
    example: {
      id: 'rpt_01kbaz0k2m3n4p5q6r7s8t9v1d',
      object: 'report',
      type: 'transaction_summary',
      format: 'pdf',
      status: 'failed',
      failure_message: 'The report could not be produced.',
      created: CREATED,
      livemode: false,
    },
  },
  'checkout.session.completed': {
    description:
      "A hosted checkout session's payment succeeded (the buyer is on their way to `success_url`): fulfil the order.",
    example: checkoutSession({ status: 'complete', payment_status: 'paid', completed_at: CREATED + 120 }),
  },
  'checkout.session.expired': {
    description: 'A hosted checkout session expired (or you expired it) unpaid; its payment was canceled.',
    example: checkoutSession({ status: 'expired' }),
  },
} as const satisfies Record<string, CatalogEntry>;

export type EventType = keyof typeof EVENT_CATALOG;

export const EVENT_TYPES = Object.keys(EVENT_CATALOG) as EventType[];

const KNOWN = new Set<string>(EVENT_TYPES);

export function isKnownEventType(name: string): name is EventType {
  return KNOWN.has(name);
}

/**
 * Whether an event of `type` passes a subscription's filters: `*` (every type), a prefix
 * wildcard such as `payment.*` (every type starting with `payment.`), or an exact type.
 */
export function matchesEventFilter(filters: readonly string[], type: string): boolean {
  return filters.some((filter) =>
    filter === '*' ? true : filter.endsWith('.*') ? type.startsWith(filter.slice(0, -1)) : filter === type,
  );
}

/** Whether a filter names something that exists: `*`, a catalogued type, or `<prefix>.*` matching one. */
export function isValidEventFilter(filter: string): boolean {
  return (
    filter === '*' ||
    isKnownEventType(filter) ||
    (filter.endsWith('.*') && EVENT_TYPES.some((type) => matchesEventFilter([filter], type)))
  );
}

/** The catalog as `GET /v1/event_types` lists it: each type with an example of the whole event. */
export function eventTypeList(): EventTypeInfo[] {
  return EVENT_TYPES.map((type, i) => ({
    object: 'event_type',
    type,
    description: EVENT_CATALOG[type].description,
    example: {
      id: `evt_01kbaz0k2m3n4p5q6r7s8t9${String(i).padStart(3, '0')}`,
      object: 'event',
      type,
      created: CREATED,
      livemode: false,
      sequence: 1,
      data: { object: EVENT_CATALOG[type].example },
      request: { id: null },
      api_version: LATEST_API_VERSION,
    },
  }));
}

export const EventTypeSchema = Type.Object({
  object: Type.Literal('event_type'),
  type: Type.String({ examples: ['payment.succeeded'] }),
  description: Type.String(),
  example: Type.Unsafe<Event>(ref('Event')),
});
export type EventTypeInfo = Static<typeof EventTypeSchema>;
