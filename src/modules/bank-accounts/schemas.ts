import { Type, type Static } from 'typebox';
import { ListQuery, Metadata, Nullable, StrictObject } from '../../http/schemas.js';

export const BANK_ACCOUNT_STATUSES = ['new', 'verified', 'verification_failed'] as const;

export const CreateBankAccountBody = StrictObject({
  account_number: Type.String({
    pattern: '^[0-9]{4,17}$',
    description: 'Never stored in plaintext: sealed in the vault; only its last 4 digits are shown.',
    examples: ['000123456789'],
  }),
  routing_number: Type.String({
    pattern: '^[0-9]{9}$',
    description: 'ABA routing number (9 digits, checksum verified).',
    examples: ['110000000'],
  }),
  country: Type.String({ pattern: '^[A-Z]{2}$', examples: ['US'] }),
  currency: Type.String({ pattern: '^[a-zA-Z]{3}$', examples: ['usd'] }),
  account_holder_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  default_for_currency: Type.Optional(
    Type.Boolean({ description: 'Receives the automatic payouts of its currency once verified.' }),
  ),
  metadata: Type.Optional(Metadata),
});
export type CreateBankAccountBody = Static<typeof CreateBankAccountBody>;

export const UpdateBankAccountBody = Type.Union([
  StrictObject({
    default_for_currency: Type.Optional(
      Type.Literal(true, { description: 'Make this the default account for its currency.' }),
    ),
    metadata: Type.Optional(Metadata),
  }),
  Type.Null(),
]);
export type UpdateBankAccountBody = Static<typeof UpdateBankAccountBody>;

export const VerifyBankAccountBody = StrictObject({
  amounts: Type.Array(Type.Integer({ minimum: 1, maximum: 99 }), {
    minItems: 2,
    maxItems: 2,
    description: 'The two micro-deposits in cents, in any order (test mode: 32 and 45).',
    examples: [[32, 45]],
  }),
});

export const BankAccountSchema = Type.Object(
  {
    id: Type.String({ examples: ['ba_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('bank_account'),
    account_holder_name: Nullable(Type.String()),
    country: Type.String(),
    currency: Type.String(),
    routing_number: Type.String(),
    last4: Type.String(),
    fingerprint: Type.String({ description: 'Equal for the same account within a tenant; a keyed hash.' }),
    status: Type.String({
      enum: [...BANK_ACCOUNT_STATUSES],
      description: '`new` until the micro-deposits are confirmed; payouts go only to `verified` accounts.',
    }),
    default_for_currency: Type.Boolean(),
    metadata: Metadata,
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'BankAccount' },
);
export type BankAccount = Static<typeof BankAccountSchema>;

export const DeletedBankAccountSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('bank_account'),
  deleted: Type.Literal(true),
});

export const BankAccountListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(Type.String({ enum: [...BANK_ACCOUNT_STATUSES] })),
  currency: Type.Optional(Type.String({ pattern: '^[a-z]{3}$' })),
});
