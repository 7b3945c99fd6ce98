import { Type, type Static } from 'typebox';
import { ListQuery, Nullable, StrictObject } from '../../http/schemas.js';
import { VersionedDay } from '../versions/versions.js';

export const SettlementSchema = Type.Object(
  {
    id: Type.String({ examples: ['st_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('settlement'),
    currency: Type.String(),
    settlement_date: VersionedDay('The UTC day of the settlement run.'),
    count: Type.Integer({
      description: 'How many balance transactions it settled (GET /v1/balance_transactions?settlement=…).',
    }),
    gross: Type.Integer({ description: 'Sum of the settled charges.' }),
    fees: Type.Integer({ description: 'Sum of every fee on the settled transactions.' }),
    refunds: Type.Integer({ description: 'Sum of the settled refunds (negative).' }),
    disputes: Type.Integer({ description: 'Disputed amounts withheld (negative) and returned (positive).' }),
    net: Type.Integer({ description: '`gross + refunds + disputes - fees`: what became available.' }),
    payout: Nullable(Type.String({ description: 'The automatic payout that carried these funds to the bank.' })),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Settlement' },
);
export type Settlement = Static<typeof SettlementSchema>;

export const SettlementListQuery = StrictObject({
  ...ListQuery,
  currency: Type.Optional(Type.String({ pattern: '^[a-z]{3}$' })),
  payout: Type.Optional(Type.String({ maxLength: 64 })),
});
