import type { FastifyRequest } from 'fastify';
import type { AuditActor, AuditContext } from '../modules/audit/record.js';

/**
 * The actor and request id an audit entry records for this request: a tenant's key or access token by its key id, the
 * operator by its key, each with the client's address (as trustProxy resolves it) and user agent.
 */
export function auditContext(request: FastifyRequest): AuditContext {
  const auth = request.auth;
  // A signed-in team member or operator is named by their user id, whichever way they are authorised.
  const who: Pick<AuditActor, 'type' | 'id'> = auth?.session
    ? { type: 'user', id: auth.session.userId }
    : auth?.kind === 'tenant'
      ? {
          type: auth.via === 'session' ? 'user' : auth.via === 'publishable_key' ? 'api_key' : auth.via,
          id: auth.keyId,
        }
      : { type: 'operator', id: auth?.kind === 'platform' ? 'platform_api_key' : 'unauthenticated' };
  const agent = request.headers['user-agent'];
  return {
    actor: { ...who, ip: request.ip ?? null, user_agent: typeof agent === 'string' ? agent : null },
    requestId: request.id,
  };
}
