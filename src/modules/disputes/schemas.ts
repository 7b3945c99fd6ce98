import { Type, type Static, type TSchema } from 'typebox';
import { ListQuery, Metadata, Nullable, StrictObject } from '../../http/schemas.js';

// A subset of Stripe's dispute evidence, all text: [maxLength, description]. Stripe caps each
// text field at 20,000 characters; the short ones are names, addresses, dates and ids.
const EVIDENCE_FIELDS = {
  product_description: [20_000, 'What was sold, and how it was delivered or used.'],
  customer_name: [500, "The cardholder's name."],
  customer_email_address: [500, "The cardholder's email address."],
  customer_purchase_ip: [64, 'The IP address the purchase was made from.'],
  billing_address: [1_000, 'The billing address given at purchase.'],
  customer_communication: [
    20_000,
    'Correspondence with the cardholder that shows they received or recognised the purchase.',
  ],
  shipping_address: [1_000, 'Where the goods were sent.'],
  shipping_carrier: [500, 'Who delivered them.'],
  shipping_tracking_number: [500, "The carrier's tracking number."],
  shipping_date: [100, 'When they were shipped.'],
  service_date: [100, 'When the service was provided.'],
  refund_policy_disclosure: [20_000, 'How the refund policy was shown to the cardholder.'],
  uncategorized_text: [
    20_000,
    'Anything else. In test mode, "winning_evidence" or "losing_evidence" here decides the outcome.',
  ],
} as const satisfies Record<string, readonly [number, string]>;
export type EvidenceField = keyof typeof EVIDENCE_FIELDS;
export const EVIDENCE_FIELD_NAMES = Object.keys(EVIDENCE_FIELDS) as EvidenceField[];

const evidenceProperties = <T extends TSchema>(schema: (maxLength: number, description: string) => T) =>
  Object.fromEntries(
    Object.entries(EVIDENCE_FIELDS).map(([field, [maxLength, description]]) => [field, schema(maxLength, description)]),
  ) as { [K in EvidenceField]: T };

export const DisputeEvidenceBody = StrictObject(
  evidenceProperties((maxLength, description) => Type.Optional(Type.String({ maxLength, description }))),
  { description: 'Merged into the evidence already given; an empty string removes a field.' },
);
export type DisputeEvidenceBody = Static<typeof DisputeEvidenceBody>;

// Null: the body may be left out (POST with no fields submits the evidence given so far).
export const UpdateDisputeBody = Type.Union([
  StrictObject({
    evidence: Type.Optional(DisputeEvidenceBody),
    submit: Type.Optional(
      Type.Boolean({
        description:
          'Default true: submit the evidence to the bank now (the dispute goes to `under_review`). With `false` it is only saved.',
      }),
    ),
    metadata: Type.Optional(Metadata),
  }),
  Type.Null(),
]);
export type UpdateDisputeBody = Exclude<Static<typeof UpdateDisputeBody>, null>;

export const CloseDisputeBody = Type.Union([StrictObject({}), Type.Null()]);

export const DISPUTE_STATUSES = ['needs_response', 'under_review', 'won', 'lost'] as const;
export type DisputeStatus = (typeof DISPUTE_STATUSES)[number];

export const DisputeSchema = Type.Object(
  {
    id: Type.String({ examples: ['dp_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('dispute'),
    amount: Type.Integer({
      description: 'The disputed amount, withheld from your balance until the dispute is decided.',
    }),
    currency: Type.String(),
    payment: Type.String(),
    reason: Type.String({
      examples: ['fraudulent'],
      description: "The cardholder's bank's reason, in Stripe's terms.",
    }),
    status: Type.String({ enum: [...DISPUTE_STATUSES] }),
    evidence: Type.Object(evidenceProperties(() => Nullable(Type.String()))),
    evidence_details: Type.Object({
      due_by: Type.Integer({
        description: 'Unix time by which evidence must be submitted; an unanswered dispute is then lost.',
      }),
      has_evidence: Type.Boolean(),
      past_due: Type.Boolean(),
      submission_count: Type.Integer(),
    }),
    balance_transactions: Type.Array(Type.String(), {
      description: 'The balance transactions that withheld and (if won) reinstated the funds.',
    }),
    fee: Type.Integer({
      description: 'The dispute fee of your plan, charged when the dispute opens and kept whatever the outcome.',
    }),
    metadata: Metadata,
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'Dispute' },
);
export type Dispute = Static<typeof DisputeSchema>;

export const DisputeListQuery = StrictObject({ ...ListQuery, payment: Type.Optional(Type.String({ maxLength: 64 })) });
export type DisputeListQuery = Static<typeof DisputeListQuery>;
