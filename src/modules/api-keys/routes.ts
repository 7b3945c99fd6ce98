import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { tenantScope } from '../../http/tenant-scope.js';
import { auditContext } from '../../http/audit-context.js';
import type { TenantAuth } from '../../http/auth.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam, ListQuery, StrictObject } from '../../http/schemas.js';
import { SCOPES } from './service.js';

const tags = ['API keys'];

const CreateKeyBody = StrictObject({
  name: Type.Optional(Type.String({ maxLength: 200 })),
  scopes: Type.Array(Type.String({ enum: [...SCOPES] }), {
    minItems: 1,
    uniqueItems: true,
    examples: [['payments:read', 'refunds:write']],
  }),
});
const RollKeyBody = Type.Union([
  StrictObject({
    expires_in: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 7 * 86_400,
        description: 'Seconds the old key keeps working (0–7 days, default 0).',
      }),
    ),
  }),
  Type.Null(),
]);
// Revoking takes no parameters. Declaring that keeps an unvalidated body (say, JSON nested ten
// thousand levels deep) from reaching the idempotency fingerprint, whose recursion it overflowed.
const RevokeKeyBody = Type.Union([StrictObject({}), Type.Null()]);

const RollPublishableBody = Type.Union([
  StrictObject({
    expires_in: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 7 * 86_400,
        description: 'Seconds the old key keeps working, to deploy pages with the new one (0–7 days, default 0).',
      }),
    ),
  }),
  Type.Null(),
]);

export const apiKeyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { apiKeys } = app.platform;

  app.get(
    '/v1/publishable_key',
    {
      config: { auth: 'tenant', scope: 'api_keys:read' },
      schema: {
        tags,
        summary: 'Retrieve the publishable key',
        description:
          "The key's mode's publishable key (pk_test_… or pk_live_…), to put in your web pages for payforward.js. " +
          'It is public by design: it can only tokenize cards and confirm or retrieve a payment with its client_secret.',
        response: { 200: ref('PublishableKey'), ...errors },
      },
    },
    async (request) => apiKeys.publishableKey(tenantScope(request)),
  );

  app.post(
    '/v1/publishable_key/roll',
    {
      config: { auth: 'tenant', scope: 'api_keys:write' },
      schema: {
        tags,
        summary: 'Roll the publishable key',
        description:
          'Replaces the publishable key of the calling key’s mode; the old one stops working after `expires_in` seconds.',
        body: RollPublishableBody,
        response: { 200: ref('PublishableKey'), ...errors },
      },
    },
    async (request) =>
      apiKeys.rollPublishable(request.auth as TenantAuth, request.body?.expires_in ?? 0, auditContext(request)),
  );

  app.get(
    '/v1/api_keys',
    {
      config: { auth: 'tenant', scope: 'api_keys:read' },
      schema: {
        tags,
        summary: 'List API keys',
        querystring: StrictObject(ListQuery),
        response: { 200: listOf('ApiKey', '/v1/api_keys'), ...errors },
      },
    },
    async (request) => ({
      object: 'list',
      url: '/v1/api_keys',
      ...(await apiKeys.list(tenantScope(request), request.query)),
    }),
  );

  app.post(
    '/v1/api_keys',
    {
      config: { auth: 'tenant', scope: 'api_keys:write' },
      schema: {
        tags,
        summary: 'Create a restricted key',
        description: 'Returns the key once, in `secret`.',
        body: CreateKeyBody,
        response: { 200: ref('ApiKey'), ...errors },
      },
    },
    async (request) => {
      const body = request.body;
      return apiKeys.createRestricted(
        request.auth as TenantAuth,
        body.scopes,
        body.name ?? null,
        auditContext(request),
      );
    },
  );

  app.post(
    '/v1/api_keys/:id/roll',
    {
      config: { auth: 'any', scope: 'api_keys:write' },
      schema: {
        tags,
        summary: 'Roll a key',
        description:
          "Issues a replacement (returned once, in `secret`). The old key stops working after `expires_in` seconds. The platform operator may roll any tenant's key.",
        security: [{ secretKey: [] }, { platformKey: [] }],
        params: IdParam,
        body: RollKeyBody,
        response: { 200: ref('ApiKey'), ...errors },
      },
    },
    async (request) => {
      const body = request.body;
      return apiKeys.roll(request.auth!, request.params.id, body?.expires_in ?? 0, auditContext(request));
    },
  );

  app.post(
    '/v1/api_keys/:id/revoke',
    {
      config: { auth: 'any', scope: 'api_keys:write' },
      schema: {
        tags,
        summary: 'Revoke a key',
        description: 'The key stops working at once.',
        security: [{ secretKey: [] }, { platformKey: [] }],
        params: IdParam,
        body: RevokeKeyBody,
        response: { 200: ref('ApiKey'), ...errors },
      },
    },
    async (request) => {
      return apiKeys.revoke(request.auth!, request.params.id, auditContext(request));
    },
  );
};
