import type { FastifyRequest } from 'fastify';
import { inScope, type Sql } from '../db/index.js';
import { ApiError } from './errors.js';
import type { TenantAuth } from './auth.js';

/** The table holding each retrievable object, by its id's prefix (see newId). */
const TABLES_BY_PREFIX: Record<string, string> = {
  ba: 'bank_accounts',
  cus: 'customers',
  dp: 'disputes',
  evt: 'events',
  key: 'api_keys',
  pay: 'payments',
  pm: 'payment_methods',
  po: 'payouts',
  re: 'refunds',
  recon: 'reconciliation_reports',
  st: 'settlements',
  txn: 'ledger_transactions',
};

const mode = (livemode: boolean) => (livemode ? 'live' : 'test');

/**
 * Stripe's hint for the most common integration mistake: a 404 for an object of the request's
 * path (`/v1/…/{id}`) that exists in the tenant's other mode says so. Every module answers its
 * own 404; this one place, in the error handler, adds the hint to any of them. It looks only at
 * the caller's own tenant (row-level security scoped to its other mode) and never turns a 404
 * into anything else: if the lookup fails, the plain 404 goes out.
 */
export async function explainOtherMode(sql: Sql, request: FastifyRequest, error: ApiError): Promise<ApiError> {
  if (error.statusCode !== 404 || error.code !== 'resource_missing' || request.auth?.kind !== 'tenant') return error;
  const id = (request.params as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string') return error;
  const table = TABLES_BY_PREFIX[id.slice(0, id.indexOf('_'))];
  if (!table) return error;
  const { tenantId, livemode } = request.auth as TenantAuth;
  const other = { tenantId, livemode: !livemode };
  try {
    const [found] = await inScope(
      sql,
      other,
      (tx) => tx`SELECT 1 FROM ${tx(table)} WHERE id = ${id} AND tenant_id = ${tenantId} AND livemode = ${!livemode}`,
    );
    if (!found) return error;
  } catch {
    return error;
  }
  return new ApiError(
    error.type,
    error.code,
    `${error.message}; a similar object exists in ${mode(!livemode)} mode, but a ${mode(livemode)} mode key was used to make this request.`,
    error.param,
    404,
  );
}
