import { createHash } from 'node:crypto';
import { inScope, scopedStatement, type Scope, type Sql } from '../db/index.js';
import { MicroBatcher, type BatcherOptions } from '../db/batcher.js';
import { columnNames, UnnestStatement, type Columns } from '../db/unnest.js';
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
  return createHash('sha256')
    .update(`${method} ${path}\n${canonicalJson(body ?? null)}`)
    .digest('hex');
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value as object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(',')}}`;
}

interface ClaimRequest {
  scope: Scope;
  key: string;
  method: string;
  path: string;
  hash: string;
}

interface ClaimRow {
  tenant_id: string;
  livemode: boolean;
  key: string;
  claimed: boolean;
  request_hash: string | null;
  response_status: number | null;
  response_body: unknown;
}

interface Completion {
  scope: Scope;
  key: string;
  status: number;
  /** The response body as sent: JSON text. */
  body: string;
}

const CLAIM_COLUMNS: Columns<{
  tenant_id: string;
  livemode: boolean;
  key: string;
  request_method: string;
  request_path: string;
  request_hash: string;
}> = [
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['key', 'text'],
  ['request_method', 'text'],
  ['request_path', 'text'],
  ['request_hash', 'text'],
];

const COMPLETION_COLUMNS: Columns<{
  tenant_id: string;
  livemode: boolean;
  key: string;
  response_status: number;
  response_body: string;
}> = [
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['key', 'text'],
  ['response_status', 'integer'],
  ['response_body', 'text'],
];

const identity = (scope: Scope, key: string) => `${scope.tenantId}:${scope.livemode}:${key}`;

const inProgress = () =>
  new ApiError(
    'idempotency_error',
    'idempotency_key_in_use',
    'A request with this idempotency key is still in progress; retry later.',
    null,
    409,
  );

/**
 * Idempotency keys, per tenant and mode, kept 24 hours. The claim is a row inserted before the
 * request runs; the primary key makes two concurrent requests with one key impossible to both
 * claim. Completing stores the response that every later retry replays. Claims and completions
 * of concurrent requests are batched: one statement, one commit for many requests.
 */
export class IdempotencyStore {
  private readonly claims: MicroBatcher<ClaimRequest, ClaimRow>;
  private readonly completions: MicroBatcher<Completion, void>;

  constructor(
    private readonly sql: Sql,
    abandonedAfterSeconds = DEFAULT_ABANDONED_AFTER_SECONDS,
    batching: BatcherOptions = { maxSize: 64, maxConcurrency: 2 },
  ) {
    this.claims = new MicroBatcher((items) => this.claimBatch(items, abandonedAfterSeconds), batching);
    this.completions = new MicroBatcher((items) => this.completeBatch(items), batching);
  }

  async claim(scope: Scope, key: string, method: string, path: string, hash: string): Promise<Claim> {
    const row = await this.claims.submit({ scope, key, method, path, hash });
    if (row.claimed) return { kind: 'claimed' };
    if (row.request_hash === null) throw inProgress();
    if (row.request_hash !== hash) {
      throw new ApiError(
        'idempotency_error',
        'idempotency_key_reused',
        'Keys for idempotent requests can only be used with the same parameters they were first used with.',
        null,
        409,
      );
    }
    if (row.response_status === null) throw inProgress();
    return { kind: 'replay', response: { status: row.response_status, body: row.response_body } };
  }

  complete(scope: Scope, key: string, status: number, body: string): Promise<void> {
    return this.completions.submit({ scope, key, status, body });
  }

  /** A server error may have stopped before doing anything: free the key so a retry runs. */
  async release(scope: Scope, key: string): Promise<void> {
    await inScope(
      this.sql,
      scope,
      (tx) => tx`
      DELETE FROM idempotency_keys
      WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND key = ${key} AND completed_at IS NULL`,
    );
  }

  async idle(): Promise<void> {
    await Promise.all([this.claims.idle(), this.completions.idle()]);
  }

  private async claimBatch(items: ClaimRequest[], abandonedAfterSeconds: number): Promise<ClaimRow[]> {
    // One key twice in a batch: only its first request goes to the database (an upsert may not
    // touch a row twice); the others are concurrent duplicates and share its outcome, or, if it
    // claims the key, find it in progress.
    const first = new Map<string, ClaimRequest>();
    for (const item of items)
      if (!first.has(identity(item.scope, item.key))) first.set(identity(item.scope, item.key), item);
    const unique = [...first.values()];
    const statement = new UnnestStatement();
    const input = statement.rows(
      CLAIM_COLUMNS,
      unique.map((i) => ({
        tenant_id: i.scope.tenantId,
        livemode: i.scope.livemode,
        key: i.key,
        request_method: i.method,
        request_path: i.path,
        request_hash: i.hash,
      })),
    );
    const abandonedAfter = statement.param(`${abandonedAfterSeconds} seconds`);
    const text = `
      WITH input AS (${input}), claimed AS (
        INSERT INTO idempotency_keys (${columnNames(CLAIM_COLUMNS)}) SELECT * FROM input
        ON CONFLICT (tenant_id, key, livemode) DO UPDATE
          SET request_method = excluded.request_method, request_path = excluded.request_path,
              request_hash = excluded.request_hash, created_at = now()
          WHERE idempotency_keys.completed_at IS NULL
            AND idempotency_keys.created_at < now() - ${abandonedAfter}::interval
        RETURNING tenant_id, livemode, key
      )
      SELECT i.tenant_id, i.livemode, i.key, c.key IS NOT NULL AS claimed, k.request_hash, k.response_status, k.response_body
      FROM input i
      LEFT JOIN claimed c ON c.tenant_id = i.tenant_id AND c.livemode = i.livemode AND c.key = i.key
      LEFT JOIN idempotency_keys k ON k.tenant_id = i.tenant_id AND k.livemode = i.livemode AND k.key = i.key`;
    const rows = await scopedStatement(
      this.sql,
      unique.map((i) => i.scope),
      (tx) => statement.run<ClaimRow[]>(tx, text),
    );
    const byIdentity = new Map(
      rows.map((row) => [identity({ tenantId: row.tenant_id, livemode: row.livemode }, row.key), row]),
    );
    return items.map((item) => {
      const row = byIdentity.get(identity(item.scope, item.key))!;
      const duplicate = first.get(identity(item.scope, item.key)) !== item;
      return duplicate && row.claimed ? { ...row, claimed: false, request_hash: null } : row;
    });
  }

  private async completeBatch(items: Completion[]): Promise<void[]> {
    const statement = new UnnestStatement();
    const input = statement.rows(
      COMPLETION_COLUMNS,
      items.map((i) => ({
        tenant_id: i.scope.tenantId,
        livemode: i.scope.livemode,
        key: i.key,
        response_status: i.status,
        response_body: i.body,
      })),
    );
    const text = `
      UPDATE idempotency_keys k SET response_status = v.response_status, response_body = v.response_body::json, completed_at = now()
      FROM (${input}) v
      WHERE k.tenant_id = v.tenant_id AND k.livemode = v.livemode AND k.key = v.key`;
    await scopedStatement(
      this.sql,
      items.map((i) => i.scope),
      (tx) => statement.run(tx, text),
    );
    return items.map(() => undefined);
  }
}
