import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ApiError } from '../../http/errors.js';
import { errors, listOf, ref } from '../../http/route-schemas.js';
import { IdParam, StrictObject } from '../../http/schemas.js';
import { NO_SCOPE } from '../../http/route-auth.js';
import { clearSessionCookie, requestContext } from '../sessions/auth.js';
import { MAX_PASSWORD_LENGTH } from './passwords.js';
import { ROLES } from './roles.js';

const tags = ['Team users'];
const security: Array<Record<string, string[]>> = [{ secretKey: [] }, { platformKey: [] }, { sessionCookie: [] }];

const Email = Type.String({ format: 'email', maxLength: 254, examples: ['ada@example.com'] });
const Role = Type.String({ enum: [...ROLES] });
const Password = Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH });
const UserListQuery = StrictObject({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
  starting_after: Type.Optional(Type.String({ maxLength: 64 })),
});
const EmptyBody = Type.Union([StrictObject({}), Type.Null()]);
const RecoveryCodes = Type.Object({ object: Type.Literal('recovery_codes'), codes: Type.Array(Type.String()) });

/** The signed-in session of a /v1/users/me request: those routes are for people, not keys. */
export function currentSession(request: FastifyRequest) {
  if (!request.userSession)
    throw new ApiError(
      'permission_error',
      'session_required',
      'This endpoint acts on the signed-in user: call it with a session cookie, not an API key.',
      null,
      403,
    );
  return request.userSession;
}

/**
 * A user-management change through an API key must come from a live-mode key: a team member works
 * in both modes, so a test key (often handed to developers and CI) must not make one.
 */
function refuseTestKey(request: FastifyRequest) {
  const auth = request.auth;
  if (auth?.kind === 'tenant' && auth.via !== 'session' && !auth.livemode)
    throw new ApiError(
      'permission_error',
      'livemode_key_required',
      'Team users work in both modes: manage them with a live-mode key or a session.',
      null,
      403,
    );
}

export const userRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { users, passkeys, mailer } = app.platform;

  app.post(
    '/v1/users',
    {
      config: { auth: 'any', scope: 'users:write' },
      schema: {
        tags,
        summary: 'Invite a user',
        description:
          'Emails an invitation link (valid 72 hours, single use). A tenant invites its team; the operator invites ' +
          'operator staff. A caller grants no role beyond its own scopes; only an owner (or a full-access key) ' +
          'grants `owner`.',
        security,
        body: StrictObject({ email: Email, role: Role }),
        response: { 200: ref('User'), ...errors },
      },
    },
    async (request) => {
      refuseTestKey(request);
      return users.invite(request.auth!, requestContext(request), request.body.email, request.body.role);
    },
  );

  app.get(
    '/v1/users',
    {
      config: { auth: 'any', scope: 'users:read' },
      schema: {
        tags,
        summary: 'List users',
        security,
        querystring: UserListQuery,
        response: { 200: listOf('User', '/v1/users'), ...errors },
      },
    },
    async (request) => ({ object: 'list', url: '/v1/users', ...(await users.list(request.auth!, request.query)) }),
  );

  app.get(
    '/v1/users/me',
    {
      config: { auth: 'any', scope: NO_SCOPE },
      schema: { tags, summary: 'The signed-in user', security, response: { 200: ref('User'), ...errors } },
    },
    async (request) => users.me(currentSession(request).record),
  );

  app.get(
    '/v1/users/:id',
    {
      config: { auth: 'any', scope: 'users:read' },
      schema: {
        tags,
        summary: 'Retrieve a user',
        security,
        params: IdParam,
        response: { 200: ref('User'), ...errors },
      },
    },
    async (request) => users.get(request.auth!, request.params.id),
  );

  app.patch(
    '/v1/users/:id',
    {
      config: { auth: 'any', scope: 'users:write' },
      schema: {
        tags,
        summary: 'Change a user’s role',
        description: 'Ends every session of the user at once.',
        security,
        params: IdParam,
        body: StrictObject({ role: Role }),
        response: { 200: ref('User'), ...errors },
      },
    },
    async (request) => {
      refuseTestKey(request);
      return users.changeRole(request.auth!, requestContext(request), request.params.id, request.body.role);
    },
  );

  app.delete(
    '/v1/users/:id',
    {
      config: { auth: 'any', scope: 'users:write' },
      schema: {
        tags,
        summary: 'Deactivate a user',
        description: 'The user can no longer sign in; every session ends at once. The record stays for access reviews.',
        security,
        params: IdParam,
        response: { 200: ref('User'), ...errors },
      },
    },
    async (request) => {
      refuseTestKey(request);
      return users.deactivate(request.auth!, requestContext(request), request.params.id);
    },
  );

  app.post(
    '/v1/users/:id/resend_invitation',
    {
      config: { auth: 'any', scope: 'users:write' },
      schema: {
        tags,
        summary: 'Resend an invitation',
        description:
          'Emails a new invitation link (valid 72 hours) to a user who has not accepted yet: after a failed send ' +
          '(`invitation_not_sent`), an expired link, or a lost email. The previous link stops working.',
        security,
        params: IdParam,
        body: Type.Union([StrictObject({}), Type.Null()]),
        response: { 200: ref('User'), ...errors },
      },
    },
    async (request) => {
      refuseTestKey(request);
      return users.resendInvitation(request.auth!, requestContext(request), request.params.id);
    },
  );

  app.post(
    '/v1/users/me/password',
    {
      config: { auth: 'any', scope: NO_SCOPE },
      schema: {
        tags,
        summary: 'Change your password',
        description: 'Ends every session of the user, this one included: sign in again with the new password.',
        security,
        body: StrictObject({ current_password: Password, new_password: Password }),
        response: { 200: ref('User'), ...errors },
      },
    },
    async (request, reply) => {
      const { record } = currentSession(request);
      const user = await users.changePassword(
        requestContext(request),
        record,
        request.body.current_password,
        request.body.new_password,
      );
      clearSessionCookie(reply);
      return user;
    },
  );

  app.post(
    '/v1/users/me/recovery_codes',
    {
      config: { auth: 'any', scope: NO_SCOPE },
      schema: {
        tags,
        summary: 'Replace your recovery codes',
        description: 'Needs a current TOTP code. Returns ten new single-use codes once; the old ones stop working.',
        security,
        body: StrictObject({ code: Type.String({ minLength: 6, maxLength: 6, pattern: '^[0-9]{6}$' }) }),
        response: { 200: RecoveryCodes, ...errors },
      },
    },
    async (request) => ({
      object: 'recovery_codes' as const,
      codes: await users.regenerateRecoveryCodes(currentSession(request).record, request.body.code),
    }),
  );

  app.post(
    '/v1/users/me/passkeys/options',
    {
      config: { auth: 'any', scope: NO_SCOPE },
      schema: {
        tags,
        summary: 'Start registering a passkey',
        description: 'Options for `navigator.credentials.create()` (WebAuthn), with a challenge kept in the session.',
        security,
        body: EmptyBody,
        response: { 200: Type.Object({}, { additionalProperties: true }), ...errors },
      },
    },
    async (request) => {
      const { token, record } = currentSession(request);
      const user = await users.me(record);
      return passkeys.registrationOptions(token, record, user.email);
    },
  );

  app.post(
    '/v1/users/me/passkeys',
    {
      config: { auth: 'any', scope: NO_SCOPE },
      schema: {
        tags,
        summary: 'Register a passkey',
        description: 'The attestation `navigator.credentials.create()` returned, as JSON (SimpleWebAuthn’s format).',
        security,
        body: StrictObject({ response: Type.Object({}, { additionalProperties: true }) }),
        response: {
          200: Type.Object({ id: Type.String(), object: Type.Literal('passkey'), created: Type.Integer() }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { token, record } = currentSession(request);
      return passkeys.register(requestContext(request), token, record, request.body.response);
    },
  );

  // Without SMTP, outside production: the messages that would have been sent, invitation links included.
  if (mailer.keepsOutbox)
    app.get(
      '/v1/dev/outbox',
      {
        config: { auth: 'platform' },
        schema: {
          tags,
          summary: 'Development outbox',
          description: 'Only without SMTP_URL and outside production: the last 100 messages, newest first.',
          security: [{ platformKey: [] }],
          response: {
            200: Type.Object({
              object: Type.Literal('list'),
              data: Type.Array(
                Type.Object({
                  from: Type.String(),
                  to: Type.String(),
                  subject: Type.String(),
                  text: Type.String(),
                  sent: Type.Integer(),
                }),
              ),
            }),
            ...errors,
          },
        },
      },
      async () => ({ object: 'list' as const, data: mailer.messages() }),
    );
};
