import { Type, type Static } from 'typebox';
import { ExpandQuery, ListQuery, Metadata, Nullable, NullableExpandable, StrictObject } from '../../http/schemas.js';

export const CardInput = StrictObject(
  {
    number: Type.String({
      minLength: 12,
      maxLength: 23,
      pattern: '^[0-9][0-9 ]*[0-9]$',
      description: 'The card number (spaces allowed). Never stored in plaintext.',
    }),
    exp_month: Type.Integer({ minimum: 1, maximum: 12 }),
    exp_year: Type.Integer({ minimum: 2000, maximum: 2100 }),
    cvc: Type.Optional(Type.String({ pattern: '^[0-9]{3,4}$', description: 'Checked, then discarded: never stored.' })),
  },
  { description: 'Raw card details.' },
);
export type CardInput = Static<typeof CardInput>;

export const PaymentMethodInput = StrictObject({
  type: Type.Literal('card'),
  card: CardInput,
  customer: Type.Optional(Type.String({ maxLength: 255 })),
  metadata: Type.Optional(Metadata),
});
export type PaymentMethodInput = Static<typeof PaymentMethodInput>;

export const VerifyBody = Type.Union([
  StrictObject({
    cvc: Type.Optional(Type.String({ pattern: '^[0-9]{3,4}$' })),
    currency: Type.Optional(Type.String({ pattern: '^[a-z]{3}$' })),
  }),
  Type.Null(),
]);

export const PaymentMethodSchema = Type.Object(
  {
    id: Type.String({ examples: ['pm_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('payment_method'),
    type: Type.Literal('card'),
    card: Type.Object({
      brand: Type.String({ examples: ['visa'] }),
      bin: Nullable(Type.String({ description: 'First six digits; null for card numbers shorter than 15 digits.' })),
      last4: Type.String(),
      exp_month: Type.Integer(),
      exp_year: Type.Integer(),
      funding: Type.String(),
      country: Nullable(Type.String()),
      fingerprint: Type.String({ description: 'Equal for the same card number within a tenant; a keyed hash.' }),
      checks: Type.Object({ cvc_check: Type.String({ enum: ['pass', 'fail', 'unavailable'] }) }),
    }),
    customer: NullableExpandable('Customer', 'The customer this card is saved for.'),
    metadata: Metadata,
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'PaymentMethod' },
);
export type PaymentMethod = Static<typeof PaymentMethodSchema>;

const CheckResult = Type.String({ enum: ['pass', 'fail', 'unavailable'] });
export const VerificationSchema = Type.Object(
  {
    object: Type.Literal('card_verification'),
    payment_method: Type.String(),
    status: Type.String({ enum: ['verified', 'failed'] }),
    checks: Type.Object({ luhn: CheckResult, expiry: CheckResult, cvc_check: CheckResult, brand: Type.String() }),
    authorization: Type.Object({
      amount: Type.Literal(0),
      currency: Type.String(),
      status: Type.String({ enum: ['succeeded', 'declined', 'error'] }),
      processor: Nullable(Type.String()),
      decline_code: Nullable(Type.String()),
    }),
    reasons: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
  },
  { $id: 'CardVerification' },
);
export type Verification = Static<typeof VerificationSchema>;

export const PaymentMethodListQuery = StrictObject({
  ...ListQuery,
  customer: Type.Optional(Type.String({ maxLength: 255 })),
  ...ExpandQuery,
});

export const PaymentMethodRetrieveQuery = StrictObject(ExpandQuery);
