import { Type, type Static } from 'typebox';
import { ListQuery, Nullable, StrictObject } from '../../http/schemas.js';

export const CASE_KINDS = ['structuring', 'fraud_block', 'list_hit', 'large_transaction', 'manual'] as const;
export type CaseKind = (typeof CASE_KINDS)[number];
export const CASE_STATUSES = ['open', 'investigating', 'filed', 'dismissed'] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];

/** open → investigating → filed | dismissed; a false positive may be dismissed straight away. */
export const CASE_TRANSITIONS: Record<CaseStatus, CaseStatus[]> = {
  open: ['investigating', 'dismissed'],
  investigating: ['filed', 'dismissed'],
  filed: [],
  dismissed: [],
};

const Subject = Type.Object(
  {
    customer: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    card_fingerprint: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    name: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    email: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
  },
  { additionalProperties: false, description: 'Who the activity is about: the customer reference and/or card.' },
);

const Note = Type.Object({
  id: Type.String(),
  body: Type.String(),
  author: Nullable(Type.String()),
  created: Type.Integer(),
});

export const CaseSchema = Type.Object(
  {
    id: Type.String({ examples: ['case_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('case'),
    kind: Type.String({ enum: [...CASE_KINDS] }),
    status: Type.String({ enum: [...CASE_STATUSES] }),
    subject: Subject,
    payments: Type.Array(Type.String()),
    amount: Nullable(Type.Integer({ description: 'Total of the activity, in minor units of `currency`.' })),
    currency: Nullable(Type.String()),
    period_start: Nullable(Type.Integer()),
    period_end: Nullable(Type.Integer()),
    narrative: Nullable(Type.String()),
    assignee: Nullable(Type.String()),
    notes: Type.Array(Note),
    created: Type.Integer(),
    updated: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Case' },
);
export type Case = Static<typeof CaseSchema>;

export const CreateCaseBody = StrictObject({
  subject: Subject,
  payments: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 1000 })),
  narrative: Type.Optional(Type.String({ maxLength: 20_000 })),
  assignee: Type.Optional(Type.String({ maxLength: 255 })),
});
export type CreateCaseBody = Static<typeof CreateCaseBody>;

export const UpdateCaseBody = StrictObject({
  status: Type.Optional(Type.String({ enum: [...CASE_STATUSES] })),
  assignee: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
  narrative: Type.Optional(Type.String({ maxLength: 20_000 })),
});
export type UpdateCaseBody = Static<typeof UpdateCaseBody>;

export const CaseNoteBody = StrictObject({
  body: Type.String({ minLength: 1, maxLength: 20_000 }),
  author: Type.Optional(Type.String({ maxLength: 255 })),
});
export type CaseNoteBody = Static<typeof CaseNoteBody>;

export const CaseListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(Type.String({ enum: [...CASE_STATUSES] })),
  kind: Type.Optional(Type.String({ enum: [...CASE_KINDS] })),
});
export type CaseListQuery = Static<typeof CaseListQuery>;
