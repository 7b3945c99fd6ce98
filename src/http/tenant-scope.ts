import type { FastifyRequest } from 'fastify';
import type { Scope } from '../db/index.js';
import type { TenantAuth } from './auth.js';

/** The tenant and mode a request acts in; every /v1 tenant route runs with one. */
export function tenantScope(request: FastifyRequest): Scope {
  const auth = request.auth as TenantAuth;
  return { tenantId: auth.tenantId, livemode: auth.livemode };
}
