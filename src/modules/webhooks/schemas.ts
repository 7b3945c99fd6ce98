import { Type, type Static } from 'typebox';
import { ListQuery, MAX_TIMESTAMP, Metadata, Nullable, StrictObject } from '../../http/schemas.js';

const EventPattern = Type.String({
  minLength: 1,
  maxLength: 100,
  description: 'An event type (`payment.succeeded`), every type of an object (`payment.*`) or everything (`*`).',
});

const Url = Type.String({
  minLength: 1,
  maxLength: 2048,
  description: 'Where events are POSTed: https (http is accepted in test mode). Private addresses are refused.',
  examples: ['https://example.com/webhooks/payforward'],
});

export const CreateWebhookEndpointBody = StrictObject({
  url: Url,
  enabled_events: Type.Array(EventPattern, {
    minItems: 1,
    maxItems: 100,
    examples: [['payment.*', 'refund.succeeded']],
  }),
  description: Type.Optional(Type.String({ maxLength: 500 })),
  metadata: Type.Optional(Metadata),
});
export type CreateWebhookEndpointBody = Static<typeof CreateWebhookEndpointBody>;

export const UpdateWebhookEndpointBody = Type.Union([
  StrictObject({
    url: Type.Optional(Url),
    enabled_events: Type.Optional(Type.Array(EventPattern, { minItems: 1, maxItems: 100 })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    metadata: Type.Optional(Metadata),
    disabled: Type.Optional(
      Type.Boolean({ description: '`true` stops deliveries; `false` enables the endpoint again (any status).' }),
    ),
  }),
  Type.Null(),
]);
export type UpdateWebhookEndpointBody = Static<typeof UpdateWebhookEndpointBody>;

export const RotateSecretBody = Type.Union([
  StrictObject({
    expires_in: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 7 * 86_400,
        description: 'Seconds the old secret keeps signing (default 24 hours, 0 retires it at once).',
      }),
    ),
  }),
  Type.Null(),
]);
export type RotateSecretBody = Static<typeof RotateSecretBody>;

const Timestamp = (description: string) => Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP, description });

export const ReplayBody = StrictObject({
  since: Timestamp('Events created at or after this Unix timestamp.'),
  until: Type.Optional(Timestamp('Events created before this Unix timestamp (default: now).')),
  only_failed: Type.Optional(Type.Boolean({ description: 'Only deliveries that gave up (status `failed`).' })),
});
export type ReplayBody = Static<typeof ReplayBody>;

export const WebhookEndpointListQuery = StrictObject({ ...ListQuery });
export const DeliveryListQuery = StrictObject({ ...ListQuery });

export const WebhookEndpointSchema = Type.Object(
  {
    id: Type.String({ examples: ['we_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('webhook_endpoint'),
    url: Type.String(),
    description: Nullable(Type.String()),
    enabled_events: Type.Array(Type.String()),
    metadata: Type.Record(Type.String(), Type.String()),
    status: Type.String({ enum: ['enabled', 'disabled'] }),
    disabled_reason: Nullable(
      Type.String({ description: '`disabled_by_user`, `gone` (the endpoint answered 410) or `failing`.' }),
    ),
    secret: Type.Optional(
      Type.String({ description: 'The signing secret (`whsec_…`): only in the answers to create and rotate.' }),
    ),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'WebhookEndpoint' },
);
export type WebhookEndpoint = Static<typeof WebhookEndpointSchema>;

export const DeliveryAttemptSchema = Type.Object({
  id: Type.String(),
  created: Type.Integer({ description: 'When the attempt was made (Unix seconds).' }),
  outcome: Type.String({ enum: ['succeeded', 'failed'] }),
  status_code: Nullable(Type.Integer()),
  latency_ms: Type.Integer(),
  response_body: Nullable(Type.String({ description: 'The first 1 KB of the answer.' })),
  error: Nullable(Type.String({ description: 'Why no answer counted: timeout, refused address, connection error…' })),
});

export const WebhookDeliverySchema = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('webhook_delivery'),
    event: Type.String(),
    webhook_endpoint: Type.String(),
    status: Type.String({ enum: ['pending', 'succeeded', 'failed'] }),
    attempt_count: Type.Integer(),
    next_attempt: Nullable(Type.Integer({ description: 'When a pending delivery is tried next (Unix seconds).' })),
    attempts: Type.Array(DeliveryAttemptSchema, { description: 'Every attempt, oldest first.' }),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'WebhookDelivery' },
);
export type WebhookDelivery = Static<typeof WebhookDeliverySchema>;

export const DeletedWebhookEndpointSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('webhook_endpoint'),
  deleted: Type.Literal(true),
});

export const ReplaySchema = Type.Object({
  object: Type.Literal('webhook_replay'),
  webhook_endpoint: Type.String(),
  scheduled: Type.Integer({ description: 'Deliveries scheduled to be sent again.' }),
});
