import { Type, type Static } from 'typebox';
import { ListQuery, Metadata, Nullable, StrictObject } from '../../http/schemas.js';

export const CreatePayoutBody = StrictObject({
  amount: Type.Integer({
    minimum: 1,
    maximum: 1_000_000_000_000,
    description: "Integer in the currency's minor unit; at most your available balance.",
    examples: [5000],
  }),
  currency: Type.String({ pattern: '^[a-zA-Z]{3}$', examples: ['usd'] }),
  method: Type.Optional(
    Type.String({
      enum: ['standard', 'instant'],
      default: 'standard',
      description: '`standard` arrives the next business day; `instant` within minutes.',
    }),
  ),
  destination: Type.Optional(
    Type.String({
      pattern: '^ba_[a-z0-9]+$',
      maxLength: 64,
      description:
        'A verified bank account of yours (`ba_…`) in the payout currency; by default the default account of the currency.',
    }),
  ),
  description: Type.Optional(Type.String({ maxLength: 500 })),
  metadata: Type.Optional(Metadata),
});
export type CreatePayoutBody = Static<typeof CreatePayoutBody>;

export const PayoutSchema = Type.Object(
  {
    id: Type.String({ examples: ['po_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('payout'),
    amount: Type.Integer(),
    currency: Type.String(),
    method: Type.String({ enum: ['standard', 'instant'] }),
    status: Type.String({ enum: ['pending', 'in_transit', 'paid', 'failed'] }),
    destination: Type.String({
      description: 'The bank account (`ba_…`); payouts made before bank accounts show `••••` and the last 4 digits.',
    }),
    arrival_date: Type.Integer({ description: 'When it is expected at the bank (Unix timestamp).' }),
    automatic: Type.Boolean({ description: 'Made by the automatic payout after a settlement.' }),
    balance_transaction: Type.String(),
    failure_balance_transaction: Nullable(
      Type.String({ description: 'The transaction that returned the funds, when the payout failed.' }),
    ),
    failure_code: Nullable(Type.String()),
    failure_message: Nullable(Type.String()),
    description: Nullable(Type.String()),
    metadata: Metadata,
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Payout' },
);
export type Payout = Static<typeof PayoutSchema>;

export const PayoutListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(Type.String({ enum: ['pending', 'in_transit', 'paid', 'failed'] })),
});
