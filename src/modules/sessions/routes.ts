import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../http/route-schemas.js';
import { StrictObject } from '../../http/schemas.js';
import { NO_SCOPE } from '../../http/route-auth.js';
import { MAX_PASSWORD_LENGTH } from '../users/passwords.js';
import { currentSession } from '../users/routes.js';
import { isTenantRole, scopesOfRole } from '../users/roles.js';
import { clearSessionCookie, requestContext, setSessionCookie } from './auth.js';
import { ABSOLUTE_TIMEOUT_MS, IDLE_TIMEOUT_MS, type SessionRecord } from './store.js';

const tags = ['Sessions'];

const LoginChallenge = Type.Object({
  object: Type.Literal('login'),
  login_token: Type.String({ description: 'Send it to POST /v1/sessions/mfa within 5 minutes.' }),
  methods: Type.Array(Type.String({ enum: ['totp', 'recovery_code', 'webauthn', 'totp_enrolment'] })),
  totp_enrolment: Type.Optional(
    Type.Object(
      { secret: Type.String(), otpauth_url: Type.String() },
      { description: 'Only while TOTP is not yet set up: add it to an authenticator app, then send its code.' },
    ),
  ),
  webauthn: Type.Optional(
    Type.Object({}, { additionalProperties: true, description: 'Options for navigator.credentials.get().' }),
  ),
});

const Session = Type.Object({
  id: Type.String(),
  object: Type.Literal('session'),
  user: Type.String(),
  role: Type.String(),
  scopes: Type.Array(Type.String(), {
    description:
      'What the role may do, as API-key scopes (`refunds:write`, …); empty for operator staff. The dashboard offers ' +
      'only the actions these allow; the API checks every call anyway.',
  }),
  livemode: Type.Boolean(),
  csrf_token: Type.String({ description: 'Send it as X-CSRF-Token on every request that changes state.' }),
  account_suspended: Type.Boolean({
    description:
      'True when the platform operator has suspended the member’s tenant: every other route answers 403 ' +
      '`account_suspended`, while this session can still be read and ended (DELETE /v1/sessions/current, with ' +
      'the CSRF token).',
  }),
  created: Type.Integer(),
  idle_expires_at: Type.Integer(),
  expires_at: Type.Integer(),
  recovery_codes: Type.Optional(
    Type.Array(Type.String(), { description: 'Only when this login finished enrolling TOTP: shown once.' }),
  ),
});

function toSession(record: SessionRecord, accountSuspended: boolean, recoveryCodes?: string[]) {
  const role = record.role!;
  return {
    id: record.id,
    object: 'session' as const,
    user: record.userId,
    role,
    scopes: isTenantRole(role) ? scopesOfRole(role) : [],
    livemode: record.livemode,
    csrf_token: record.csrfToken,
    account_suspended: accountSuspended,
    created: Math.floor(record.createdAt / 1000),
    idle_expires_at: Math.floor((record.lastSeenAt + IDLE_TIMEOUT_MS) / 1000),
    expires_at: Math.floor((record.createdAt + ABSOLUTE_TIMEOUT_MS) / 1000),
    ...(recoveryCodes ? { recovery_codes: recoveryCodes } : {}),
  };
}

export const sessionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { users, authenticator } = app.platform;
  const suspended = (record: SessionRecord) =>
    isTenantRole(record.role!) ? authenticator.isTenantSuspended(record.tenantId) : Promise.resolve(false);

  app.post(
    '/v1/sessions',
    {
      config: { auth: 'none' },
      schema: {
        tags,
        summary: 'Sign in: password',
        description:
          'The first step of a sign-in. The answer is the same for an unknown email, a wrong password and a locked ' +
          'account (10 failures in a row lock it for 30 minutes). Then POST /v1/sessions/mfa.',
        security: [],
        body: StrictObject({
          email: Type.String({ minLength: 1, maxLength: 254 }),
          password: Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH }),
          livemode: Type.Optional(Type.Boolean({ default: false, description: 'The mode the session acts in.' })),
        }),
        response: { 200: LoginChallenge, ...errors },
      },
    },
    async (request) =>
      users.startLogin(
        requestContext(request),
        request.body.email,
        request.body.password,
        request.body.livemode ?? false,
      ),
  );

  app.post(
    '/v1/sessions/mfa',
    {
      config: { auth: 'none' },
      schema: {
        tags,
        summary: 'Sign in: second factor',
        description:
          'Finishes a sign-in (or an invitation’s acceptance) with exactly one of a TOTP `code`, a single-use ' +
          '`recovery_code` or a passkey assertion (`webauthn`). Sets the HttpOnly session cookie `pf_session`.',
        security: [],
        body: Type.Union([
          StrictObject({ login_token: Type.String({ maxLength: 200 }), code: Type.String({ pattern: '^[0-9]{6}$' }) }),
          StrictObject({
            login_token: Type.String({ maxLength: 200 }),
            recovery_code: Type.String({ minLength: 1, maxLength: 40 }),
          }),
          StrictObject({
            login_token: Type.String({ maxLength: 200 }),
            webauthn: Type.Object({}, { additionalProperties: true }),
          }),
        ]),
        response: { 200: Session, ...errors },
      },
    },
    async (request, reply) => {
      const { login_token: loginToken, ...factor } = request.body;
      const { token, record, recoveryCodes } = await users.finishLogin(requestContext(request), loginToken, factor);
      setSessionCookie(reply, token);
      return toSession(record, await suspended(record), recoveryCodes);
    },
  );

  app.post(
    '/v1/invitations/:token/accept',
    {
      config: { auth: 'none' },
      schema: {
        tags,
        summary: 'Accept an invitation',
        description:
          'Sets the password (at least 12 characters, not a common one). The answer starts the TOTP enrolment: ' +
          'finish it with POST /v1/sessions/mfa and the authenticator app’s code.',
        security: [],
        params: StrictObject({ token: Type.String({ minLength: 1, maxLength: 200 }) }),
        body: StrictObject({ password: Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH }) }),
        response: { 200: LoginChallenge, ...errors },
      },
    },
    async (request) => users.acceptInvitation(requestContext(request), request.params.token, request.body.password),
  );

  app.get(
    '/v1/sessions/current',
    {
      config: { auth: 'any', scope: NO_SCOPE },
      schema: {
        tags,
        summary: 'The current session',
        description:
          'With its CSRF token, for a page loaded after sign-in. Answered for a suspended tenant’s member too ' +
          '(`account_suspended: true`), so that the session can be ended.',
        security: [{ sessionCookie: [] }],
        response: { 200: Session, ...errors },
      },
    },
    async (request) => {
      const { record } = currentSession(request);
      return toSession(record, await suspended(record));
    },
  );

  app.delete(
    '/v1/sessions/current',
    {
      config: { auth: 'any', scope: NO_SCOPE },
      schema: {
        tags,
        summary: 'Sign out',
        security: [{ sessionCookie: [] }],
        response: { 200: Type.Object({ object: Type.Literal('session'), deleted: Type.Boolean() }), ...errors },
      },
    },
    async (request, reply) => {
      const { token, record } = currentSession(request);
      await users.logout(token, record);
      clearSessionCookie(reply);
      return { object: 'session' as const, deleted: true };
    },
  );
};
