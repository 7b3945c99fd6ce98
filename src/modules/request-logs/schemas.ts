import { Type, type Static } from 'typebox';
import { ListQuery, Nullable, StrictObject } from '../../http/schemas.js';

export const RequestLogSchema = Type.Object(
  {
    id: Type.String({ description: 'The request id (the `request-id` header of its response).' }),
    object: Type.Literal('request_log'),
    livemode: Type.Boolean(),
    method: Type.String({ examples: ['POST'] }),
    path: Type.String({ description: 'The path as called, without its query string.', examples: ['/v1/payments'] }),
    route: Nullable(Type.String({ description: 'The route it matched, or null for an unknown URL.' })),
    status: Type.Integer({ examples: [200] }),
    api_key: Nullable(Type.String({ description: 'The id of the key (or the key behind the access token) used.' })),
    idempotency_key: Nullable(Type.String()),
    idempotent_replayed: Type.Boolean({ description: 'Answered from the stored response of an earlier request.' }),
    error: Nullable(
      Type.Object({ type: Nullable(Type.String()), code: Nullable(Type.String()) }, { additionalProperties: false }),
    ),
    latency_ms: Type.Integer({ description: 'Time spent by the server, in milliseconds.' }),
    source_ip: Nullable(Type.String()),
    created: Type.Integer({ description: 'Unix time in seconds' }),
  },
  { $id: 'RequestLog' },
);
export type RequestLog = Static<typeof RequestLogSchema>;

export const RequestLogListQuery = StrictObject({
  ...ListQuery,
  status: Type.Optional(
    Type.String({
      pattern: '^([1-5][0-9]{2}|[1-5]xx)$',
      description: 'An HTTP status (`402`) or a class of them (`4xx`).',
    }),
  ),
  method: Type.Optional(Type.String({ enum: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'] })),
  path: Type.Optional(
    Type.String({ minLength: 1, maxLength: 500, description: 'Paths starting with this text, e.g. `/v1/refunds`.' }),
  ),
  api_key: Type.Optional(Type.String({ maxLength: 64, description: 'Requests made with this key id.' })),
  error_code: Type.Optional(Type.String({ maxLength: 100 })),
});
export type RequestLogListParams = Static<typeof RequestLogListQuery>;
