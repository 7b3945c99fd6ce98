import { createHash } from 'node:crypto';
import { inScope, type Scope, type Sql } from '../db/index.js';
import { ApiError } from './errors.js';

export interface StoredResponse {
  status: number;
  body: unknown;
}

export type Claim = { kind: 'claimed' } | { kind: 'replay'; response: StoredResponse };

// A claim that has not completed within this time (IDEMPOTENCY_ABANDONED_AFTER_SECONDS, 60 by
// default) belongs to a request that died (crash, timeout); a retry may take it over rather than
// be refused until the key expires.
const DEFAULT_ABANDONED_AFTER_SECONDS = 60;

export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n${canonicalJson(body ?? null)}`).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value as object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

/**
 * Idempotency keys, per tenant and mode, kept 24 hours. The claim is a row inserted before the
 * request runs; the primary key makes two concurrent requests with one key impossible to both
 * claim. Completing stores the response that every later retry replays.
 */
export class IdempotencyStore {
  constructor(
    private readonly sql: Sql,
    private readonly abandonedAfterSeconds = DEFAULT_ABANDONED_AFTER_SECONDS,
  ) {}

  async claim(scope: Scope, key: string, method: string, path: string, hash: string): Promise<Claim> {
    return inScope(this.sql, scope, async (tx) => {
      const inserted = await tx`
        INSERT INTO idempotency_keys (tenant_id, livemode, key, request_method, request_path, request_hash)
        VALUES (${scope.tenantId}, ${scope.livemode}, ${key}, ${method}, ${path}, ${hash})
        ON CONFLICT (tenant_id, livemode, key) DO UPDATE
          SET request_method = excluded.request_method, request_path = excluded.request_path,
              request_hash = excluded.request_hash, created_at = now()
          WHERE idempotency_keys.completed_at IS NULL
            AND idempotency_keys.created_at < now() - ${`${this.abandonedAfterSeconds} seconds`}::interval
        RETURNING 1`;
      if (inserted.length) return { kind: 'claimed' } as const;
      const [existing] = await tx<{ request_hash: string; response_status: number | null; response_body: unknown }[]>`
        SELECT request_hash, response_status, response_body FROM idempotency_keys
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND key = ${key}`;
      if (!existing) throw new ApiError('idempotency_error', 'idempotency_key_in_use', 'This idempotency key is being used by another request; retry later.', null, 409);
      if (existing.request_hash !== hash) {
        throw new ApiError(
          'idempotency_error',
          'idempotency_key_reused',
          'Keys for idempotent requests can only be used with the same parameters they were first used with.',
          null,
          409,
        );
      }
      if (existing.response_status === null) {
        throw new ApiError('idempotency_error', 'idempotency_key_in_use', 'A request with this idempotency key is still in progress; retry later.', null, 409);
      }
      return { kind: 'replay', response: { status: existing.response_status, body: existing.response_body } } as const;
    });
  }

  async complete(scope: Scope, key: string, response: StoredResponse): Promise<void> {
    await inScope(this.sql, scope, (tx) => tx`
      UPDATE idempotency_keys SET response_status = ${response.status}, response_body = ${tx.json(response.body as never)}, completed_at = now()
      WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND key = ${key}`);
  }

  /** A server error may have stopped before doing anything: free the key so a retry runs. */
  async release(scope: Scope, key: string): Promise<void> {
    await inScope(this.sql, scope, (tx) => tx`
      DELETE FROM idempotency_keys
      WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND key = ${key} AND completed_at IS NULL`);
  }
}
