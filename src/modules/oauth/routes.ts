import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError, safeEcho } from '../../http/errors.js';
import { basicCredentials } from '../../http/basic-auth.js';
import { SCOPES } from '../api-keys/service.js';
import { errors } from '../../http/route-schemas.js';
import { StrictObject } from '../../http/schemas.js';

const TokenBody = StrictObject({
  grant_type: Type.Literal('client_credentials'),
  client_secret: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'A secret or restricted key (or send it as the password of HTTP Basic auth).',
    }),
  ),
  client_id: Type.Optional(
    Type.String({
      maxLength: 200,
      description: 'Accepted for OAuth client compatibility; the key alone identifies the client.',
    }),
  ),
  scope: Type.Optional(
    Type.String({
      maxLength: 1000,
      description:
        "Space-separated scopes the token gets, each one the key's own (RFC 6749 §3.3); the key's scopes when omitted.",
    }),
  ),
});
const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer(),
  scope: Type.String(),
});

const invalidClient = (message: string) =>
  new ApiError('authentication_error', 'invalid_client', message, 'client_secret', 401);

const malformedBasic = () =>
  ApiError.invalid(
    'invalid_authorization_header',
    'The Authorization header is not valid HTTP Basic credentials: base64 of "client_id:client_secret", ' +
      'each percent-encoded.',
    'Authorization',
  );

// OAuth clients send client credentials as HTTP Basic auth (RFC 6749 §2.3.1); the key is the password,
// form-urlencoded before base64. A header that says Basic but is not is the client's error (400).
function basicPassword(header: string | undefined): string | undefined {
  const basic = basicCredentials(header);
  if (basic === undefined) return undefined;
  if (basic === 'malformed') throw malformedBasic();
  try {
    return decodeURIComponent(basic.password.replace(/\+/g, ' '));
  } catch {
    throw malformedBasic();
  }
}

/** The `scope` parameter: space-separated, per RFC 6749 §3.3; absent or blank means the key's scopes. */
function requestedScopes(scope: string | undefined): string[] | undefined {
  const scopes = scope?.split(' ').filter(Boolean);
  const unknown = scopes?.find((name) => name !== '*' && !(SCOPES as readonly string[]).includes(name));
  if (unknown !== undefined)
    throw new ApiError(
      'invalid_request_error',
      'invalid_scope',
      `Unknown scope "${safeEcho(unknown)}"; scopes are "*" or ${SCOPES.join(', ')}.`,
      'scope',
      400,
    );
  return scopes?.length ? [...new Set(scopes)] : undefined;
}

/** The OAuth 2.0 client-credentials grant; standard OAuth clients send it form-encoded (RFC 6749 §4.4.2). */
export const oauthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { authenticator } = app.platform;

  app.post(
    '/v1/oauth/token',
    {
      // OAuth clients send the key in the form's client_secret, with no Authorization header.
      config: { auth: 'none', formsWithoutAuthorization: true },
      schema: {
        tags: ['Authentication'],
        summary: 'Get an access token',
        description:
          'OAuth 2.0 client-credentials grant: exchange a secret key for a JWT valid 15 minutes, accepted wherever the key is. Send JSON or `application/x-www-form-urlencoded`; the key goes in `client_secret` or as the password of HTTP Basic auth.',
        security: [],
        body: { ...TokenBody, examples: [{ grant_type: 'client_credentials', client_secret: 'sk_test_…' }] },
        response: { 200: TokenResponse, ...errors },
      },
    },
    async (request) => {
      const { client_secret, scope } = request.body;
      const secret = client_secret ?? basicPassword(request.headers.authorization);
      if (!secret) throw invalidClient('Send the key as client_secret or as the password of HTTP Basic auth.');
      if (secret.startsWith('ey')) throw invalidClient('An access token cannot be exchanged for another.');
      const auth = await authenticator.authenticate(`Bearer ${secret}`);
      if (auth.kind !== 'tenant') throw invalidClient('Only tenant keys can be exchanged for access tokens.');
      return authenticator.issueAccessToken(auth, requestedScopes(scope));
    },
  );
};
