import { Type, type Static, type TSchema } from 'typebox';
import {
  ExpandQuery,
  type ExpandedObject,
  ListQuery,
  Metadata,
  Nullable,
  NullableExpandable,
  StrictObject,
} from '../../http/schemas.js';
import { PaymentMethodInput } from '../payment-methods/schemas.js';
import { FraudDetails, FraudOutcomeSchema } from '../fraud/schemas.js';

export const PAYMENT_STATUSES = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'processing',
  'requires_capture',
  'succeeded',
  'canceled',
] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

const Currency = Type.String({
  pattern: '^[a-zA-Z]{3}$',
  description: 'ISO 4217 code, e.g. usd, jpy, kwd.',
  examples: ['usd'],
});
const Amount = Type.Integer({
  minimum: 1,
  maximum: 1_000_000_000_000,
  description: "Integer in the currency's minor unit: 1000 = $10.00 USD, ¥1000 JPY, 1.000 KWD.",
  examples: [2000],
});
const PaymentMethodRef = Type.Union([
  Type.String({ pattern: '^pm_[a-z0-9]+$', maxLength: 64, description: 'A saved payment method id' }),
  PaymentMethodInput,
]);

const StatementDescriptor = Type.String({ maxLength: 22, pattern: '^[^<>"\'\\\\]*$' });

export const CreatePaymentBody = StrictObject({
  amount: Amount,
  currency: Currency,
  payment_method: Type.Optional(PaymentMethodRef),
  confirm: Type.Optional(Type.Boolean({ default: false })),
  capture_method: Type.Optional(Type.String({ enum: ['automatic', 'manual'], default: 'automatic' })),
  customer: Type.Optional(Type.String({ maxLength: 255 })),
  description: Type.Optional(Type.String({ maxLength: 1000 })),
  statement_descriptor: Type.Optional(StatementDescriptor),
  metadata: Type.Optional(Metadata),
  return_url: Type.Optional(Type.String({ maxLength: 2048, pattern: '^https?://' })),
  fraud_details: Type.Optional(FraudDetails),
});
export type CreatePaymentBody = Static<typeof CreatePaymentBody>;

/** An empty string clears the field, as on Stripe. */
const orEmpty = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Literal('')]);

export const UpdatePaymentBody = Type.Union([
  StrictObject({
    amount: Type.Optional(Amount),
    currency: Type.Optional(Currency),
    customer: Type.Optional(
      orEmpty(Type.String({ pattern: '^cus_[a-z0-9]+$', maxLength: 64, description: 'A customer of yours.' })),
    ),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    statement_descriptor: Type.Optional(orEmpty(StatementDescriptor)),
    metadata: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        ...Metadata,
        description: 'Merged into the current metadata; a key set to "" is removed.',
      }),
    ),
  }),
  Type.Null(),
]);
export type UpdatePaymentBody = Static<typeof UpdatePaymentBody>;

const ClientSecret = Type.String({
  maxLength: 200,
  description: "The payment's `client_secret`: required (and only accepted) with a publishable key.",
});

export const ConfirmPaymentBody = Type.Union([
  StrictObject({
    client_secret: Type.Optional(ClientSecret),
    payment_method: Type.Optional(PaymentMethodRef),
    return_url: Type.Optional(Type.String({ maxLength: 2048, pattern: '^https?://' })),
    fraud_details: Type.Optional(FraudDetails),
  }),
  Type.Null(),
]);
export type ConfirmPaymentBody = Static<typeof ConfirmPaymentBody>;

export const CapturePaymentBody = Type.Union([StrictObject({ amount_to_capture: Type.Optional(Amount) }), Type.Null()]);
export type CapturePaymentBody = Static<typeof CapturePaymentBody>;

export const CancelPaymentBody = Type.Union([
  StrictObject({
    cancellation_reason: Type.Optional(
      Type.String({ enum: ['duplicate', 'fraudulent', 'requested_by_customer', 'abandoned'] }),
    ),
  }),
  Type.Null(),
]);
export type CancelPaymentBody = Static<typeof CancelPaymentBody>;

export const PaymentListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(Type.String({ enum: [...PAYMENT_STATUSES] })),
  customer: Type.Optional(Type.String({ maxLength: 255 })),
  ...ExpandQuery,
});

export const PaymentRetrieveQuery = StrictObject({ ...ExpandQuery, client_secret: Type.Optional(ClientSecret) });

/** How many refunds an expanded `refunds` list holds, as Stripe's charge.refunds. */
export const PAYMENT_REFUNDS_EXPANDED = 10;

const PaymentError = Type.Object({
  type: Type.String(),
  code: Type.String(),
  decline_code: Nullable(Type.String()),
  message: Type.String(),
  processor: Nullable(Type.String()),
});

export const AttemptSchema = Type.Object({
  id: Type.String(),
  operation: Type.String({ enum: ['authorize', 'capture', 'void'] }),
  processor: Type.String(),
  status: Type.String({ enum: ['pending', 'succeeded', 'declined', 'error', 'requires_action'] }),
  amount: Type.Integer(),
  error_code: Nullable(Type.String()),
  decline_code: Nullable(Type.String()),
  latency_ms: Nullable(
    Type.Integer({ description: 'How long the processor took to answer, in milliseconds; null while it has not.' }),
  ),
  created: Type.Integer(),
});

export const PaymentSchema = Type.Object(
  {
    id: Type.String({ examples: ['pay_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('payment'),
    amount: Type.Integer(),
    amount_capturable: Type.Integer(),
    amount_received: Type.Integer(),
    amount_refunded: Type.Integer(),
    currency: Type.String(),
    status: Type.String({ enum: [...PAYMENT_STATUSES] }),
    capture_method: Type.String({ enum: ['automatic', 'manual'] }),
    client_secret: Type.Optional(
      Type.String({
        description:
          "Lets the buyer's browser confirm and read back this payment with your publishable key (payforward.js). " +
          'Hand it to that one buyer only; never log it. Not part of events or webhooks.',
        examples: ['pay_01jd7s0k2m3n4p5q6r7s8t9v0w_secret_Xb3kq9ZP1m7T0vWc2Yd8Rf4Ls6Hn5Ga0'],
      }),
    ),
    payment_method: NullableExpandable('PaymentMethod', 'The card charged.'),
    customer: NullableExpandable('Customer', 'The customer (`cus_…`) this payment is for.'),
    description: Nullable(Type.String()),
    statement_descriptor: Nullable(Type.String()),
    metadata: Metadata,
    last_payment_error: Nullable(PaymentError),
    next_action: Nullable(
      Type.Object({
        type: Type.Literal('redirect_to_url'),
        redirect_to_url: Type.Object({ url: Type.String(), return_url: Nullable(Type.String()) }),
      }),
    ),
    processor: Nullable(Type.String()),
    authorization_expires_at: Nullable(Type.Integer()),
    canceled_at: Nullable(Type.Integer()),
    cancellation_reason: Nullable(Type.String()),
    fee: Nullable(
      Type.Integer({
        description:
          'What the platform charged for this payment, set when it is captured; the breakdown is on its balance transaction.',
      }),
    ),
    net: Nullable(Type.Integer({ description: '`amount_received - fee`: what the capture added to your balance.' })),
    balance_transaction: NullableExpandable(
      'BalanceTransaction',
      'The balance transaction of the capture (GET /v1/balance_transactions/{id}): fee details and when the funds become available.',
    ),
    pricing_version: Type.Integer({
      description: 'The pricing plan version this payment is priced with: the one in force when it was created.',
    }),
    outcome: Nullable(FraudOutcomeSchema),
    attempts: Type.Array(AttemptSchema, {
      description: 'Every processor call, including failed attempts and failovers.',
    }),
    latest_attempt: Type.Unsafe<string | Static<typeof AttemptSchema> | null>({
      anyOf: [{ type: 'string' }, { type: 'null' }, AttemptSchema],
      description:
        'The last processor call (the last of `attempts`). Expandable: its id, or the attempt with `expand[]`.',
    }),
    refunds: Type.Optional(
      Type.Unsafe<{ object: 'list'; url: string; has_more: boolean; data: ExpandedObject[] }>({
        type: 'object',
        properties: {
          object: { type: 'string', const: 'list' },
          url: { type: 'string' },
          has_more: { type: 'boolean' },
          data: { type: 'array', items: { $ref: 'Refund#' } },
        },
        required: ['object', 'url', 'has_more', 'data'],
        description: `Only with \`expand[]=refunds\`: the payment's refunds, newest first, at most ${PAYMENT_REFUNDS_EXPANDED}; \`has_more\` tells when there are more (GET /v1/refunds?payment=…).`,
      }),
    ),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Payment' },
);
export type Payment = Static<typeof PaymentSchema>;
