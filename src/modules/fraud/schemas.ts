import { Type, type Static } from 'typebox';
import { ListQuery, Nullable, StrictObject } from '../../http/schemas.js';
import { FRAUD_ACTIONS, LIST_ITEM_TYPES } from './repo.js';
import { MAX_EXPRESSION_LENGTH } from './rules.js';

const Action = Type.String({ enum: FRAUD_ACTIONS });

export const FraudOutcomeSchema = Type.Object(
  {
    action: Type.String({ enum: FRAUD_ACTIONS }),
    risk_score: Type.Integer({ minimum: 0, maximum: 100 }),
    risk_level: Type.String({ enum: ['normal', 'elevated', 'highest'] }),
    rule: Nullable(
      Type.Object(
        { id: Type.String(), name: Type.String() },
        { description: 'The rule (or allow-list) that decided the action; null when none matched.' },
      ),
    ),
    reasons: Type.Array(Type.Object({ feature: Type.String(), weight: Type.Number() }), {
      description: "The model's top contributing factors, with their contribution to the log-odds.",
    }),
    model_version: Type.String(),
  },
  { description: 'The fraud decision taken before the processor was called.' },
);
export type FraudOutcome = Static<typeof FraudOutcomeSchema>;

/** What a client sends for the decision, on create or confirm; all optional. */
export const FraudDetails = StrictObject(
  {
    email: Type.Optional(Type.String({ maxLength: 320, format: 'email' })),
    ip_address: Type.Optional(Type.String({ maxLength: 45, anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }] })),
    billing_country: Type.Optional(Type.String({ pattern: '^[A-Za-z]{2}$' })),
  },
  { description: "The buyer's email, IP address and billing country, read by the fraud decision." },
);
export type FraudDetails = Static<typeof FraudDetails>;

const Expression = Type.String({ minLength: 1, maxLength: MAX_EXPRESSION_LENGTH * 2 });
const RuleName = Type.String({ minLength: 1, maxLength: 200 });
const Priority = Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Lower runs first.' });

export const CreateRuleBody = StrictObject({
  name: RuleName,
  expression: Expression,
  action: Action,
  priority: Type.Optional(Priority),
  enabled: Type.Optional(Type.Boolean()),
  shadow: Type.Optional(Type.Boolean()),
});
export type CreateRuleBody = Static<typeof CreateRuleBody>;

export const UpdateRuleBody = StrictObject({
  name: Type.Optional(RuleName),
  expression: Type.Optional(Expression),
  action: Type.Optional(Action),
  priority: Type.Optional(Priority),
  enabled: Type.Optional(Type.Boolean()),
  shadow: Type.Optional(Type.Boolean()),
});
export type UpdateRuleBody = Static<typeof UpdateRuleBody>;

export const RuleSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('fraud_rule'),
    name: Type.String(),
    expression: Type.String(),
    action: Action,
    priority: Type.Integer(),
    enabled: Type.Boolean(),
    shadow: Type.Boolean({ description: 'Evaluated and logged, never acted on.' }),
    created: Type.Integer(),
    updated: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'FraudRule' },
);
export type Rule = Static<typeof RuleSchema>;

export const CreateListBody = StrictObject({
  name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.-]+$' }),
  item_type: Type.String({ enum: [...LIST_ITEM_TYPES] }),
  kind: Type.Optional(Type.String({ enum: ['block', 'allow'], default: 'block' })),
});
export type CreateListBody = Static<typeof CreateListBody>;

export const ListSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('fraud_list'),
    name: Type.String(),
    item_type: Type.String({ enum: [...LIST_ITEM_TYPES] }),
    kind: Type.String({ enum: ['block', 'allow'] }),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'FraudList' },
);
export type FraudList = Static<typeof ListSchema>;

export const CreateListItemBody = StrictObject({ value: Type.String({ minLength: 1, maxLength: 320 }) });

export const ListItemSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('fraud_list_item'),
    list: Type.String(),
    value: Type.String(),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'FraudListItem' },
);
export type ListItem = Static<typeof ListItemSchema>;

export const ReviewSchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('review'),
    payment: Type.String(),
    status: Type.String({ enum: ['open', 'approved', 'rejected'] }),
    opened_reason: Type.String({ description: 'The rule that sent the payment to review.' }),
    closed_reason: Nullable(Type.String()),
    closed_by: Nullable(Type.String({ description: 'The API key (or user) that closed the review.' })),
    closed_at: Nullable(Type.Integer()),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Review' },
);
export type Review = Static<typeof ReviewSchema>;

export const ReviewListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(Type.String({ enum: ['open', 'approved', 'rejected'] })),
});

export const CloseReviewBody = Type.Union([
  StrictObject({ reason: Type.Optional(Type.String({ maxLength: 500 })) }),
  Type.Null(),
]);

export const ReportFraudBody = Type.Union([
  StrictObject({
    block_card: Type.Optional(
      Type.Boolean({ description: "Also add the payment's card fingerprint to the `blocked_cards` list." }),
    ),
  }),
  Type.Null(),
]);

export const BacktestBody = StrictObject({
  expression: Type.Optional(Expression),
  rule: Type.Optional(Type.String({ maxLength: 64 })),
  since: Type.Integer({ description: 'Unix seconds: replay payments created at or after.' }),
  until: Type.Optional(Type.Integer({ description: 'Unix seconds: … and before (default now).' })),
});
export type BacktestBody = Static<typeof BacktestBody>;

export const BacktestSchema = Type.Object(
  {
    object: Type.Literal('fraud_backtest'),
    expression: Type.String(),
    payments: Type.Integer({ description: 'Decided payments replayed.' }),
    matched: Type.Integer(),
    matched_amount: Type.Integer({ description: 'Sum of matched amounts, minor units, all currencies summed.' }),
    matched_fraud: Type.Integer({ description: 'Matched payments labelled fraud.' }),
    fraud: Type.Integer({ description: 'Replayed payments labelled fraud.' }),
    precision: Nullable(Type.Number({ description: 'matched_fraud / matched; null when nothing matched.' })),
    recall: Nullable(Type.Number({ description: 'matched_fraud / fraud; null when no payment was fraud.' })),
    truncated: Type.Boolean({ description: 'True when the window held more than 100,000 payments.' }),
  },
  { $id: 'FraudBacktest' },
);
export type Backtest = Static<typeof BacktestSchema>;
