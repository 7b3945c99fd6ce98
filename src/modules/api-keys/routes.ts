import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { tenantScope } from '../../app.js';
import type { TenantAuth } from '../../http/auth.js';
import { ApiError } from '../../http/errors.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam, ListQuery, StrictObject } from '../../http/schemas.js';
import { SCOPES } from './service.js';

const tags = ['API keys'];

const CreateKeyBody = StrictObject({
  name: Type.Optional(Type.String({ maxLength: 200 })),
  scopes: Type.Array(Type.String({ enum: [...SCOPES] }), { minItems: 1, uniqueItems: true, examples: [['payments:read', 'refunds:write']] }),
});
const RollKeyBody = Type.Union([
  StrictObject({ expires_in: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 86_400, description: 'Seconds the old key keeps working (0–7 days, default 0).' })) }),
  Type.Null(),
]);
// Revoking takes no parameters. Declaring that keeps an unvalidated body (say, JSON nested ten
// thousand levels deep) from reaching the idempotency fingerprint, whose recursion it overflowed.
const RevokeKeyBody = Type.Union([StrictObject({}), Type.Null()]);
const TokenBody = StrictObject({
  grant_type: Type.Literal('client_credentials'),
  client_secret: Type.String({ minLength: 1, maxLength: 200, description: 'A secret or restricted key.' }),
});
const TokenResponse = Type.Object({ access_token: Type.String(), token_type: Type.Literal('bearer'), expires_in: Type.Integer(), scope: Type.String() });

// Managing keys needs a full secret key or a restricted key with api_keys:write: a restricted key
// must not mint itself broader powers.
function requireKeyManager(auth: TenantAuth | undefined) {
  if (auth && auth.scopes.includes('*')) return;
  if (auth?.scopes.includes('api_keys:write')) return;
  throw new ApiError('permission_error', 'missing_scope', 'Managing API keys needs a secret key.', null, 403);
}

export async function apiKeyRoutes(app: FastifyInstance) {
  const { apiKeys, authenticator } = app.platform;

  app.get(
    '/v1/api_keys',
    { config: { scope: 'api_keys:read' }, schema: { tags, summary: 'List API keys', querystring: StrictObject(ListQuery), response: { 200: listOf('ApiKey', '/v1/api_keys'), ...errors } } },
    async (request) => ({ object: 'list', url: '/v1/api_keys', ...(await apiKeys.list(tenantScope(request), request.query as never)) }),
  );

  app.post(
    '/v1/api_keys',
    {
      config: { scope: 'api_keys:write' },
      schema: { tags, summary: 'Create a restricted key', description: 'Returns the key once, in `secret`.', body: CreateKeyBody, response: { 200: ref('ApiKey'), ...errors } },
    },
    async (request) => {
      const auth = request.auth as TenantAuth;
      requireKeyManager(auth);
      const body = request.body as { name?: string; scopes: string[] };
      const extra = body.scopes.find((scope) => !auth.scopes.includes('*') && !auth.scopes.includes(scope));
      if (extra) throw new ApiError('permission_error', 'missing_scope', `A key cannot grant "${extra}", which it does not have.`, 'scopes', 403);
      return apiKeys.createRestricted(tenantScope(request), body.scopes, body.name ?? null);
    },
  );

  app.post(
    '/v1/api_keys/:id/roll',
    {
      config: { auth: 'any' },
      schema: {
        tags,
        summary: 'Roll a key',
        description: 'Issues a replacement (returned once, in `secret`). The old key stops working after `expires_in` seconds. The platform operator may roll any tenant\'s key.',
        security: [{ secretKey: [] }, { platformKey: [] }],
        params: IdParam,
        body: RollKeyBody,
        response: { 200: ref('ApiKey'), ...errors },
      },
    },
    async (request) => {
      if (request.auth?.kind === 'tenant') requireKeyManager(request.auth);
      const body = request.body as { expires_in?: number } | null;
      return apiKeys.roll(request.auth!, (request.params as { id: string }).id, body?.expires_in ?? 0);
    },
  );

  app.post(
    '/v1/api_keys/:id/revoke',
    {
      config: { auth: 'any' },
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
      if (request.auth?.kind === 'tenant') requireKeyManager(request.auth);
      return apiKeys.revoke(request.auth!, (request.params as { id: string }).id);
    },
  );

  app.post(
    '/v1/oauth/token',
    {
      config: { auth: 'none' },
      schema: {
        tags: ['Authentication'],
        summary: 'Get an access token',
        description: 'OAuth 2.0 client-credentials grant: exchange a secret key for a JWT valid 15 minutes, accepted wherever the key is.',
        security: [],
        body: { ...TokenBody, examples: [{ grant_type: 'client_credentials', client_secret: 'sk_test_…' }] },
        response: { 200: TokenResponse, ...errors },
      },
    },
    async (request) => {
      const { client_secret } = request.body as { client_secret: string };
      if (client_secret.startsWith('ey')) throw new ApiError('authentication_error', 'invalid_client', 'An access token cannot be exchanged for another.', 'client_secret', 401);
      const auth = await authenticator.authenticate(`Bearer ${client_secret}`);
      if (auth.kind !== 'tenant') throw new ApiError('authentication_error', 'invalid_client', 'Only tenant keys can be exchanged for access tokens.', 'client_secret', 401);
      return authenticator.issueAccessToken(auth);
    },
  );
}
