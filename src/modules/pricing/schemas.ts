import { Type, type Static } from 'typebox';
import { Nullable, StrictObject } from '../../http/schemas.js';

const Bps = (description: string) =>
  Type.Integer({ minimum: 0, maximum: 10_000, description: `${description} In basis points (100 = 1%).` });
const MinorUnits = (description: string) => Type.Integer({ minimum: 0, maximum: 1_000_000_000, description });
// Plan currencies are keys, so only one spelling is accepted: lower case, as the API answers.
const CurrencyKey = Type.String({ pattern: '^[a-z]{3}$' });
const PerCurrency = <T extends Parameters<typeof Type.Record>[1]>(value: T, description: string) =>
  Type.Optional(Type.Record(CurrencyKey, value, { additionalProperties: false, maxProperties: 200, description }));

const SCALED_FIXED =
  "In hundredths of a major unit (US cents), converted to each currency's minor unit by the rounding rule: 30 is 30 in USD, 300 in KWD, 0 in JPY (¥0.3).";

const Rate = (description: string) =>
  StrictObject(
    {
      percent_bps: Bps('Percentage of the amount.'),
      fixed: MinorUnits(`Fixed fee per payment. ${SCALED_FIXED}`),
      currencies: PerCurrency(
        StrictObject({
          percent_bps: Bps('Percentage of the amount.'),
          fixed: MinorUnits("Fixed fee in this currency's own minor unit."),
        }),
        "Overrides for particular currencies; their `fixed` is in that currency's own minor unit.",
      ),
    },
    { description },
  );
export type Rate = Static<ReturnType<typeof Rate>>;

const FixedFee = (description: string) =>
  StrictObject(
    {
      fixed: MinorUnits(SCALED_FIXED),
      currencies: PerCurrency(MinorUnits("In this currency's own minor unit."), 'Overrides for particular currencies.'),
    },
    { description },
  );

export const CARD_FUNDINGS = ['credit', 'debit', 'prepaid'] as const;
export type CardFunding = (typeof CARD_FUNDINGS)[number];

const PlanFields = {
  type: Type.String({
    enum: ['blended', 'interchange_plus'],
    description:
      '`blended`: one rate (`processing`). `interchange_plus`: simulated interchange + scheme fee + markup (`interchange_plus`).',
  }),
  processing: Type.Optional(Rate('The blended rate; required for, and only for, `blended` plans.')),
  interchange_plus: Type.Optional(
    StrictObject(
      {
        interchange_bps: StrictObject(
          {
            credit: Bps('Simulated interchange on credit cards.'),
            debit: Bps('Simulated interchange on debit cards.'),
            prepaid: Bps('Simulated interchange on prepaid cards.'),
          },
          { description: 'A card of unknown funding is priced as credit.' },
        ),
        scheme_fee_bps: Bps('Card scheme (network) fee.'),
        markup: Rate("The platform's margin on top of interchange and scheme fee."),
      },
      { description: 'Required for, and only for, `interchange_plus` plans.' },
    ),
  ),
  international_bps: Bps('Surcharge on cards issued outside the platform country (US).'),
  currency_conversion_bps: Bps('Markup when the presentment currency differs from the charge currency.'),
  instant_settlement_bps: Bps('Fee for instant settlement.'),
  refund_fee: FixedFee('Fixed fee per refund (0 for none).'),
  dispute_fee: FixedFee('Fixed fee per dispute.'),
};

// eslint-disable-next-line @typescript-eslint/no-unused-vars -- only its type is wanted
const PlanObject = StrictObject(PlanFields);
export type Plan = Static<typeof PlanObject>;

export const SetPricingBody = StrictObject({
  livemode: Type.Optional(
    Type.Boolean({ default: false, description: 'Which mode the plan prices: test (default) or live.' }),
  ),
  ...PlanFields,
});
export type SetPricingBody = Static<typeof SetPricingBody>;

export const PricingPlanSchema = Type.Object(
  {
    id: Nullable(
      Type.String({ description: '`null` for the default plan.', examples: ['pp_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    ),
    object: Type.Literal('pricing_plan'),
    version: Type.Integer({
      description:
        'Starts at 1 and grows with every change; 0 is the default plan, in force until the operator sets one.',
    }),
    livemode: Type.Boolean(),
    created: Nullable(Type.Integer()),
    ...PlanFields,
  },
  { $id: 'PricingPlan' },
);
export type PricingPlan = Static<typeof PricingPlanSchema>;

export const PricingQuery = StrictObject({
  version: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'An earlier version; the latest when omitted.' }),
  ),
});

const Currency = Type.String({
  pattern: '^[a-zA-Z]{3}$',
  description: 'ISO 4217 code, e.g. usd, jpy, kwd.',
  examples: ['usd'],
});

export const FeePreviewBody = StrictObject({
  amount: Type.Integer({
    minimum: 1,
    maximum: 1_000_000_000_000,
    description: "Integer in the currency's minor unit.",
    examples: [1000],
  }),
  currency: Currency,
  card_country: Type.Optional(
    Type.String({
      pattern: '^[a-zA-Z]{2}$',
      description: 'ISO 3166-1 alpha-2 country of the card; US when neither this nor `payment_method` is given.',
    }),
  ),
  card_funding: Type.Optional(
    Type.String({ enum: [...CARD_FUNDINGS], description: 'Used by interchange++ plans; credit when not given.' }),
  ),
  payment_method: Type.Optional(
    Type.String({
      pattern: '^pm_[a-z0-9]+$',
      maxLength: 64,
      description:
        'A saved card: its country and funding are used. Not combinable with `card_country` or `card_funding`.',
    }),
  ),
  presentment_currency: Type.Optional(
    Type.String({
      pattern: '^[a-zA-Z]{3}$',
      description:
        'The currency the cardholder pays in; when it differs from `currency`, the conversion markup applies.',
    }),
  ),
  instant_settlement: Type.Optional(Type.Boolean({ default: false })),
});
export type FeePreviewBody = Static<typeof FeePreviewBody>;

export const FeeDetail = Type.Object({
  type: Type.String({
    enum: [
      'processing_percentage',
      'processing_fixed',
      'interchange',
      'scheme_fee',
      'markup',
      'markup_fixed',
      'international',
      'currency_conversion',
      'instant_settlement',
      'refund_fee',
      'dispute_fee',
    ],
  }),
  amount: Type.Integer(),
  currency: Type.String(),
  description: Type.String(),
});
export type FeeDetail = Static<typeof FeeDetail>;

export const FeePreviewSchema = Type.Object(
  {
    object: Type.Literal('fee_preview'),
    amount: Type.Integer(),
    currency: Type.String(),
    fee: Type.Integer({ description: 'The sum of `fee_details`.' }),
    net: Type.Integer({ description: '`amount - fee`; negative when a fixed fee exceeds a tiny amount.' }),
    pricing_version: Type.Integer({ description: 'The plan version that priced it (0: the default plan).' }),
    livemode: Type.Boolean(),
    fee_details: Type.Array(FeeDetail),
  },
  { $id: 'FeePreview' },
);
export type FeePreview = Static<typeof FeePreviewSchema>;
