import { Type, type Static } from 'typebox';
import { ListQuery, Nullable, StrictObject } from '../../http/schemas.js';

const State = Nullable(Type.Object({}, { additionalProperties: true }));

export const AuditLogSchema = Type.Object(
  {
    id: Type.String({ examples: ['aud_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('audit_log'),
    action: Type.String({ examples: ['api_key.created'] }),
    actor: Type.Object({
      type: Type.String({ enum: ['api_key', 'access_token', 'operator', 'user', 'system'] }),
      id: Type.String({ description: 'The key id (for a key or an access token), user id, or operator credential.' }),
      ip: Nullable(Type.String()),
      user_agent: Nullable(Type.String()),
    }),
    target: Type.Object({ type: Type.String(), id: Type.String() }),
    changes: Type.Object(
      { before: State, after: State },
      { description: 'The fields that changed; never secrets or card data (an allow-list per action).' },
    ),
    request_id: Nullable(Type.String()),
    sequence: Type.Integer({ description: "The entry's place in its tenant's hash chain." }),
    hash: Type.String({ description: 'SHA-256 (hex) over the previous hash, the sequence number and the content.' }),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'AuditLog' },
);
export type AuditLog = Static<typeof AuditLogSchema>;

const Filters = {
  actor: Type.Optional(Type.String({ maxLength: 64, description: 'Entries by this actor (a key id, user id…).' })),
  action: Type.Optional(
    Type.String({
      maxLength: 100,
      description: 'An action such as `api_key.created`, or a prefix such as `api_key.*`.',
    }),
  ),
  object: Type.Optional(Type.String({ maxLength: 64, description: 'Entries about this object id.' })),
  tenant: Type.Optional(
    Type.String({
      maxLength: 64,
      description: "The operator only: a tenant's chain (its mode by `livemode`); without it, the platform's own.",
    }),
  ),
  livemode: Type.Optional(Type.Boolean({ description: 'The operator only, with `tenant` (default false).' })),
};

export const AuditLogListQuery = StrictObject({ ...ListQuery, ...Filters });
export type AuditLogListQuery = Static<typeof AuditLogListQuery>;

const { limit: _limit, starting_after: _after, ending_before: _before, ...TimeRange } = ListQuery;
export const AuditLogExportQuery = StrictObject({ ...TimeRange, ...Filters });
export type AuditLogExportQuery = Static<typeof AuditLogExportQuery>;
