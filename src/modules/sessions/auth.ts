import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Auth } from '../../http/auth.js';
import { ApiError } from '../../http/errors.js';
import { UserService } from '../users/service.js';
import { isOperatorRole, isTenantRole, scopesOfRole } from '../users/roles.js';
import type { RequestContext } from '../users/security-events.js';
import { ABSOLUTE_TIMEOUT_MS, type SessionRecord } from './store.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The session cookie's token and record, when the request was authenticated by one. */
    userSession?: { token: string; record: SessionRecord };
  }
}

export const SESSION_COOKIE = 'pf_session';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** What read-only operator staff may still do to themselves: sign out, change a password, add a passkey. */
const SELF_SERVICE_ROUTES = new Set([
  '/v1/sessions/current',
  '/v1/users/me/password',
  '/v1/users/me/recovery_codes',
  '/v1/users/me/passkeys',
  '/v1/users/me/passkeys/options',
]);

export function sessionCookie(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === SESSION_COOKIE) return value.join('=') || undefined;
  }
  return undefined;
}

export function setSessionCookie(reply: FastifyReply, token: string) {
  reply.header(
    'set-cookie',
    `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${ABSOLUTE_TIMEOUT_MS / 1000}`,
  );
}

export function clearSessionCookie(reply: FastifyReply) {
  reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`);
}

export function requestContext(request: FastifyRequest): RequestContext {
  const auth = request.auth;
  const actor: RequestContext['actor'] = !auth
    ? { type: 'anonymous', id: null }
    : auth.session
      ? { type: auth.kind === 'platform' ? 'operator' : 'user', id: auth.session.userId }
      : auth.kind === 'platform'
        ? { type: 'operator', id: null }
        : { type: 'api_key', id: auth.keyId };
  const agent = request.headers['user-agent'];
  return {
    actor,
    ip: request.ip,
    userAgent: agent ? agent.slice(0, 500) : null,
    requestId: request.id,
    log: request.log,
  };
}

const refuse = (code: string, message: string) => new ApiError('permission_error', code, message, null, 403);

/**
 * A session cookie as a principal, exactly like a key: a tenant member gets their role's scopes and
 * the route's scope is checked as for a key; operator staff act as the platform operator. Every
 * state-changing request made with the cookie must echo the session's CSRF token in X-CSRF-Token:
 * another site can make the browser send the cookie, never read the token.
 */
export async function authenticateSession(users: UserService, request: FastifyRequest, token: string): Promise<Auth> {
  const record = await users.sessionFor(token);
  if (!record?.role)
    throw new ApiError(
      'authentication_error',
      'session_expired',
      'Your session has ended (signed out, expired or replaced): sign in again.',
      null,
      401,
    );
  if (!SAFE_METHODS.has(request.method) && !UserService.csrfMatches(record, header(request, 'x-csrf-token')))
    throw refuse('csrf_token_invalid', 'Send the session’s CSRF token in the X-CSRF-Token header.');
  request.userSession = { token, record };
  const session = { id: record.id, userId: record.userId, role: record.role };
  if (isOperatorRole(record.role)) {
    const readOnly = record.role === 'operator_support';
    const route = request.routeOptions.url;
    if (readOnly && !SAFE_METHODS.has(request.method) && !(route && SELF_SERVICE_ROUTES.has(route)))
      throw refuse('read_only_role', 'The operator_support role may only read.');
    return { kind: 'platform', session, readOnly };
  }
  if (!isTenantRole(record.role)) throw refuse('unknown_role', 'This session’s role grants nothing.');
  return {
    kind: 'tenant',
    tenantId: record.tenantId,
    livemode: record.livemode,
    keyId: record.userId,
    scopes: scopesOfRole(record.role),
    via: 'session',
    session,
  };
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
