import { Type, type Static } from 'typebox';
import { ListQuery, Nullable, StrictObject } from '../../http/schemas.js';
import { FeeDetail } from '../pricing/schemas.js';

const Funds = Type.Array(
  Type.Object({
    amount: Type.Integer({
      description: 'In the currency’s minor units; may be negative (e.g. after a refund larger than what is pending).',
    }),
    currency: Type.String({ description: 'Lower-case ISO 4217 code.' }),
  }),
);

export const BalanceSchema = Type.Object({
  object: Type.Literal('balance'),
  available: Funds,
  pending: Funds,
  reserved: Funds,
  livemode: Type.Boolean(),
});
export type Balance = Static<typeof BalanceSchema>;

export const BalanceQuery = StrictObject({
  at: Type.Optional(
    Type.Integer({
      minimum: 0,
      description:
        'A past instant (Unix seconds, not before the account existed): the balance as it stood then, counting every movement `created` at or before it.',
    }),
  ),
});

export const BALANCE_TRANSACTION_TYPES = [
  'charge',
  'refund',
  'dispute',
  'dispute_reversal',
  'payout',
  'payout_failure',
] as const;

export const BalanceTransactionSchema = Type.Object(
  {
    id: Type.String({ examples: ['txn_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('balance_transaction'),
    type: Type.String({ enum: [...BALANCE_TRANSACTION_TYPES] }),
    amount: Type.Integer({
      description:
        'Gross, signed: positive for what came in (a charge), negative for what went out (a refund, a payout).',
    }),
    currency: Type.String(),
    fee: Type.Integer({ description: 'The sum of `fee_details`.' }),
    net: Type.Integer({ description: '`amount - fee`: the change to your pending or available funds.' }),
    fee_details: Type.Array(FeeDetail, { description: 'Each fee and why: the pricing line that produced it.' }),
    status: Type.String({
      enum: ['pending', 'available'],
      description: '`pending` until a settlement makes the net available.',
    }),
    available_on: Type.Integer({ description: 'When the net becomes (or became) available, as a Unix timestamp.' }),
    source: Nullable(Type.String({ description: 'The payment, refund, dispute or payout it records.' })),
    settlement: Nullable(Type.String({ description: 'The settlement that made it available (GET /v1/settlements).' })),
    payout: Nullable(Type.String({ description: 'The automatic payout that carried it to the bank, once paid out.' })),
    description: Type.String(),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'BalanceTransaction' },
);
export type BalanceTransaction = Static<typeof BalanceTransactionSchema>;

export const BalanceTransactionListQuery = StrictObject({
  ...ListQuery,
  type: Type.Optional(Type.String({ enum: [...BALANCE_TRANSACTION_TYPES] })),
  source: Type.Optional(Type.String({ maxLength: 64 })),
  currency: Type.Optional(Type.String({ pattern: '^[a-z]{3}$' })),
  settlement: Type.Optional(Type.String({ maxLength: 64 })),
  payout: Type.Optional(
    Type.String({ maxLength: 64, description: 'Only the transactions an automatic payout carried.' }),
  ),
});
export type BalanceTransactionListQuery = Static<typeof BalanceTransactionListQuery>;
