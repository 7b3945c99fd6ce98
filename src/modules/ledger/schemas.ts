import { Type, type Static } from 'typebox';

const Funds = Type.Array(
  Type.Object({
    amount: Type.Integer({ description: 'In the currency’s minor units; may be negative (e.g. after a refund larger than what is pending).' }),
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
