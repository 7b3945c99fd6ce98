import { Type, type Static } from 'typebox';
import {
  Expandable,
  ExpandQuery,
  ListQuery,
  Metadata,
  Nullable,
  NullableExpandable,
  StrictObject,
} from '../../http/schemas.js';

export const CreateRefundBody = StrictObject({
  payment: Type.String({ minLength: 1, maxLength: 64, description: 'The id of the payment to refund.' }),
  amount: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'Defaults to everything not yet refunded.' }),
  ),
  reason: Type.Optional(Type.String({ enum: ['duplicate', 'fraudulent', 'requested_by_customer'] })),
  metadata: Type.Optional(Metadata),
});
export type CreateRefundBody = Static<typeof CreateRefundBody>;

export const RefundSchema = Type.Object(
  {
    id: Type.String({ examples: ['re_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('refund'),
    amount: Type.Integer(),
    currency: Type.String(),
    payment: Expandable('Payment', 'The payment refunded.'),
    reason: Nullable(Type.String()),
    status: Type.String({ enum: ['pending', 'succeeded', 'failed'] }),
    failure_reason: Nullable(Type.String()),
    balance_transaction: NullableExpandable(
      'BalanceTransaction',
      'Set when the refund succeeds: what it took from your balance, with the refund fee if your plan has one.',
    ),
    metadata: Metadata,
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Refund' },
);
export type Refund = Static<typeof RefundSchema>;

export const RefundListQuery = StrictObject({
  ...ListQuery,
  payment: Type.Optional(Type.String({ maxLength: 64 })),
  ...ExpandQuery,
});

export const RefundRetrieveQuery = StrictObject(ExpandQuery);
