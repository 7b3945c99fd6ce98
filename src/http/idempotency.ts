import { createHash, createHmac, randomBytes } from 'node:crypto';
import { inScope, scopedStatement, type Scope, type Sql } from '../db/index.js';
import { MicroBatcher, type BatcherOptions } from '../db/batcher.js';
import { columnNames, UnnestStatement, type Columns } from '../db/unnest.js';
import type { CardVault } from '../modules/vault/vault.js';
import type { Auth } from './auth.js';
import { ApiError } from './errors.js';

export interface StoredResponse {
  status: number;
  body: unknown;
}

/** A key this request holds: `key` is the client's key qualified by its principal, as stored. */
export interface HeldKey {
  scope: Scope;
  key: string;
  owner: string;
  sealResponse: boolean;
  /** The request the key was claimed for: its claim row is written from these when the handler's write takes it. */
  method: string;
  path: string;
  hash: string;
  /**
   * Claimed in the handler's own first write (a route with `idempotency: 'claimed_in_write'`), not before the
   * handler: its row is written with that write (keyClaimCtes), in the same transaction and commit.
   */
  claimedInWrite: boolean;
  /** A claim in write: set once the write that claims it has committed (the row is this request's). */
  written?: boolean;
  /**
   * Set when a write of the request stored its answer on the key with what it wrote (keyAnswerCte): the body as
   * stored, which the route sends as it is; the key needs no completion after the answer.
   */
  answeredInWrite?: string;
}

/**
 * The answer of a request holding its key, stored by the write that decides it (keyAnswerCte), and only if that write
 * is made: the body as the route will send it, never sealed (a route whose answers are sealed completes its key after
 * the answer, as any other).
 */
export interface WrittenAnswer {
  held: HeldKey;
  /** The payment whose write decides the answer: the answer is stored only if that payment is written. */
  paymentId: string;
  status: number;
  body: string;
}

/**
 * A key claimed in a write that found the key taken (a retry, or a concurrent request with the same key): nothing of
 * that write happened. The request claims the key as any other would (IdempotencyStore.claim), which answers the
 * replay, the conflict or the takeover.
 */
export class KeyClaimLost extends Error {
  constructor(readonly held: HeldKey) {
    super('The idempotency key this write claimed is held by another request.');
  }
}

export type Claim = { kind: 'claimed'; held: HeldKey } | { kind: 'replay'; response: StoredResponse };

export interface ClaimRequest {
  scope: Scope;
  auth: Auth;
  /** The client's Idempotency-Key. */
  key: string;
  method: string;
  /** The route's pattern (`/v1/payments/:id/capture`) and the URL as requested. */
  route: string;
  url: string;
  body: unknown;
  /** The handler's first write claims the key (keyClaimCtes) instead of a claim of its own before the handler. */
  inWrite?: boolean;
}

/**
 * Routes whose responses carry a secret (new API keys): stored only encrypted, so a database dump
 * or backup holds no usable key, while the same caller's replay still receives the same secret.
 */
const RESPONSES_WITH_SECRETS = new Set([
  '/v1/tenants',
  '/v1/api_keys',
  '/v1/api_keys/:id/roll',
  '/v1/users/me/recovery_codes',
  '/v1/webhook_endpoints',
  '/v1/webhook_endpoints/:id/rotate_secret',
]);

/** Card data never enters a request fingerprint: an inline card counts by its keyed card fingerprint. */
const CARD_DATA = new Set(['number', 'cvc', 'exp_month', 'exp_year']);

const FINGERPRINT_LABEL = 'payforward idempotency request fingerprint';

/**
 * The request body as one canonical JSON text (keys sorted at every level) without card data: card number, CVC and
 * expiry are left out and an object that held a number gets its keyed card fingerprint as `card_fingerprint`. One
 * pass, building no copy of the body; the text is the one the stored fingerprints of keys still live were made from.
 */
export function canonicalCardless(value: unknown, cardFingerprint: (pan: string) => string): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((item) => canonicalCardless(item, cardFingerprint)).join(',')}]`;
  const source = value as Record<string, unknown>;
  const names = Object.keys(source).filter((name) => !CARD_DATA.has(name));
  const fingerprint = source.number !== undefined ? cardFingerprint(String(source.number)) : undefined;
  if (fingerprint !== undefined && !Object.hasOwn(source, 'card_fingerprint')) names.push('card_fingerprint');
  names.sort();
  const entries = names.map((name) => {
    const item =
      name === 'card_fingerprint' && fingerprint !== undefined
        ? JSON.stringify(fingerprint)
        : canonicalCardless(source[name], cardFingerprint);
    return `${JSON.stringify(name)}:${item}`;
  });
  return `{${entries.join(',')}}`;
}

/**
 * Who is calling, as far as idempotency is concerned: a stored response is replayed only to the
 * principal that caused it, so a replay never skips the authorization its handler would apply. An
 * API key with its scope set (an access token issued for the key, with the same scopes, is the same
 * principal); the operator is one principal.
 */
export function principalOf(auth: Auth): string {
  if (auth.kind === 'platform') return 'operator';
  return `${auth.keyId}.${scopesLabel(auth.scopes)}`;
}

// A key's scopes are one array for as long as its record is cached: hashed once, not for every keyed request.
const scopeLabels = new WeakMap<readonly string[], string>();

function scopesLabel(scopes: readonly string[]): string {
  let label = scopeLabels.get(scopes);
  if (label === undefined) {
    label = createHash('sha256')
      .update([...scopes].sort().join(' '))
      .digest('base64url')
      .slice(0, 12);
    scopeLabels.set(scopes, label);
  }
  return label;
}

interface ClaimItem {
  scope: Scope;
  key: string;
  owner: string;
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
  response_kek_id: string | null;
  response_wrapped_dek: Buffer | null;
  response_ciphertext: Buffer | null;
}

interface Completion {
  held: HeldKey;
  status: number;
  /** The response body as sent (JSON text), or null when it is stored sealed. */
  body: string | null;
  sealed: { kekId: string; wrappedDek: Buffer; ciphertext: Buffer } | null;
}

const CLAIM_COLUMNS: Columns<{
  tenant_id: string;
  livemode: boolean;
  key: string;
  owner: string;
  request_method: string;
  request_path: string;
  request_hash: string;
}> = [
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['key', 'text'],
  ['owner', 'text'],
  ['request_method', 'text'],
  ['request_path', 'text'],
  ['request_hash', 'text'],
];

interface CompletionRow {
  tenant_id: string;
  livemode: boolean;
  key: string;
  owner: string;
  response_status: number;
  response_body: string | null;
  response_kek_id: string | null;
  response_wrapped_dek: string | null;
  response_ciphertext: string | null;
}

const COMPLETION_COLUMNS: Columns<CompletionRow> = [
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['key', 'text'],
  ['owner', 'text'],
  ['response_status', 'integer'],
  ['response_body', 'json_text'],
  ['response_kek_id', 'text'],
  ['response_wrapped_dek', 'text'],
  ['response_ciphertext', 'text'],
];

const ANSWER_COLUMNS: Columns<CompletionRow & { payment_id: string }> = [...COMPLETION_COLUMNS, ['payment_id', 'text']];

const HEARTBEAT_COLUMNS: Columns<{ tenant_id: string; livemode: boolean; key: string; owner: string }> = [
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['key', 'text'],
  ['owner', 'text'],
];

/** A key's identity: its tenant, mode and key, as one text. */
export const keyIdentity = (scope: Scope, key: string) => `${scope.tenantId}:${scope.livemode}:${key}`;

/**
 * The claims of keys held in write, as CTEs of the handler's write statement: `key_claims` (what was asked) and
 * `keys_claimed` (the claims that hold: rows inserted now, or this owner's own row, written by an earlier try of the
 * same statement whose commit went unanswered). A key that is there under another owner is not claimed, and the
 * statement must then write nothing for it: the request goes back to a claim of its own (KeyClaimLost).
 */
export function keyClaimCtes(statement: UnnestStatement, claims: HeldKey[]): string {
  return `key_claims AS (${claimRows(statement, claims)}), keys_claimed AS (
      INSERT INTO idempotency_keys AS k (${columnNames(CLAIM_COLUMNS)}, heartbeat_at) SELECT *, now() FROM key_claims
      ON CONFLICT (tenant_id, key, livemode) DO UPDATE SET heartbeat_at = now()
        WHERE k.owner = excluded.owner AND k.completed_at IS NULL
      RETURNING tenant_id, livemode, key
    )`;
}

/** The claim rows of these keys, as a statement's row set (CLAIM_COLUMNS). */
const claimRows = (statement: UnnestStatement, claims: ClaimItem[]) =>
  statement.rows(
    CLAIM_COLUMNS,
    claims.map((claim) => ({
      tenant_id: claim.scope.tenantId,
      livemode: claim.scope.livemode,
      key: claim.key,
      owner: claim.owner,
      request_method: claim.method,
      request_path: claim.path,
      request_hash: claim.hash,
    })),
  );

/**
 * The answers of requests holding their keys, stored by the statement that writes their payments, as its CTE
 * `key_answers`: each only if its payment is among `written` (the CTE of the payments the statement wrote) and its
 * key is still its owner's.
 */
export function keyAnswerCte(statement: UnnestStatement, answers: WrittenAnswer[], written: string): string {
  const rows = statement.rows(
    ANSWER_COLUMNS,
    answers.map((answer) => ({
      ...completionRow({ held: answer.held, status: answer.status, body: answer.body, sealed: null }),
      payment_id: answer.paymentId,
    })),
  );
  return `key_answers AS (${completionUpdate(rows)} AND v.payment_id IN (SELECT id FROM ${written}))`;
}

const completionRow = ({ held, status, body, sealed }: Completion): CompletionRow => ({
  tenant_id: held.scope.tenantId,
  livemode: held.scope.livemode,
  key: held.key,
  owner: held.owner,
  response_status: status,
  response_body: body,
  response_kek_id: sealed?.kekId ?? null,
  response_wrapped_dek: sealed?.wrappedDek.toString('hex') ?? null,
  response_ciphertext: sealed?.ciphertext.toString('hex') ?? null,
});

/**
 * Stores the answers of `rows` (COMPLETION_COLUMNS) on their keys. Only the owner completes: a run whose claim was
 * taken over must not overwrite the outcome.
 */
const completionUpdate = (rows: string) => `
      UPDATE idempotency_keys k SET response_status = v.response_status, response_body = v.response_body,
        response_kek_id = v.response_kek_id, response_wrapped_dek = decode(v.response_wrapped_dek, 'hex'),
        response_ciphertext = decode(v.response_ciphertext, 'hex'), completed_at = now()
      FROM (${rows}) v
      WHERE k.tenant_id = v.tenant_id AND k.livemode = v.livemode AND k.key = v.key AND k.owner = v.owner`;

/** What a sealed response is bound to (its AAD): the key's identity, so it opens on no other row. */
export const sealedResponseId = (scope: Scope, key: string) => `idempotency:${keyIdentity(scope, key)}`;

const inProgress = () =>
  new ApiError(
    'idempotency_error',
    'idempotency_key_in_use',
    'A request with this idempotency key is still in progress; retry later.',
    null,
    409,
  );

/**
 * Idempotency keys, per tenant, mode and principal, kept 24 hours. The claim is a row inserted
 * before the request runs; the primary key makes two concurrent requests with one key impossible to
 * both claim. Completing stores the response that every later retry replays. Claims and completions
 * of concurrent requests are batched: one statement, one commit for many requests.
 *
 * A started key is never released for a fresh run. Its claim names its owner, whose process
 * refreshes a heartbeat on it while the request runs (one batched statement a second for all of the
 * process's requests); a retry takes the claim over only once the owner has stopped: its request
 * ended with a 5xx (the claim is then ownerless) or its process has not beaten for
 * `ownerTimeoutSeconds` (it died). The retry runs the handler again, and handlers resume what the
 * first run left (a payment, refund or payout is found by the key stored on it) rather than repeat it.
 */
export class IdempotencyStore {
  private readonly claims: MicroBatcher<ClaimItem, ClaimRow>;
  private readonly completions: MicroBatcher<Completion, void>;
  private readonly fingerprintKey: Buffer;
  /** Distinguishes this process's claims from those of every other process, past or present. */
  private readonly instance = randomBytes(9).toString('base64url');
  private sequence = 0;
  private readonly running = new Map<string, HeldKey>();
  private heartbeat: NodeJS.Timeout | undefined;
  private beating = false;

  constructor(
    private readonly sql: Sql,
    private readonly vault: CardVault,
    private readonly ownerTimeoutSeconds: number,
    batching: BatcherOptions = { maxSize: 64, maxConcurrency: 2 },
  ) {
    this.fingerprintKey = vault.deriveKey(FINGERPRINT_LABEL);
    this.claims = new MicroBatcher((items) => this.claimBatch(items), batching);
    this.completions = new MicroBatcher((items) => this.completeBatch(items), batching);
  }

  /**
   * Keyed (HMAC-SHA256 under a key derived from the vault's fingerprint secret) and free of card
   * data: a stored fingerprint reveals nothing computable from a card number without that key.
   */
  fingerprint(tenantId: string, method: string, url: string, body: unknown): string {
    const canonical = canonicalCardless(body ?? null, (pan) => this.vault.fingerprint(pan, tenantId));
    return createHmac('sha256', this.fingerprintKey).update(`${method} ${url}\n${canonical}`).digest('hex');
  }

  async claim(request: ClaimRequest): Promise<Claim> {
    const { scope } = request;
    const key = `${principalOf(request.auth)}/${request.key}`;
    const hash = this.fingerprint(scope.tenantId, request.method, request.url, request.body);
    const owner = `${this.instance}.${++this.sequence}`;
    const held: HeldKey = {
      scope,
      key,
      owner,
      sealResponse: RESPONSES_WITH_SECRETS.has(request.route),
      method: request.method,
      path: request.route,
      hash,
      claimedInWrite: request.inWrite ?? false,
    };
    // Held from here, so its row (once written) gets heartbeats: a claim in write is taken by the handler's write.
    const row: ClaimRow | undefined = held.claimedInWrite
      ? undefined
      : await this.claims.submit({ scope, key, owner, method: request.method, path: request.route, hash });
    if (!row || row.claimed) {
      this.running.set(owner, held);
      this.heartbeat ??= setInterval(() => void this.beat(), (this.ownerTimeoutSeconds * 1000) / 5).unref();
      return { kind: 'claimed', held };
    }
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
    const sealed = row.response_ciphertext && {
      kekId: row.response_kek_id!,
      wrappedDek: row.response_wrapped_dek!,
      ciphertext: row.response_ciphertext,
    };
    const body = sealed ? JSON.parse(this.vault.openRecord(sealed, sealedResponseId(scope, key))) : row.response_body;
    return { kind: 'replay', response: { status: row.response_status, body } };
  }

  /**
   * A key that needs no completion: a claim in write whose write did not take the key (KeyClaimLost, or none made), or
   * a key whose answer a write stored (HeldKey.answeredInWrite). Nothing more to heartbeat.
   */
  released(held: HeldKey): void {
    this.stopped(held);
  }

  /** Stores the response to replay, unless a retry has taken the claim over meanwhile. */
  async complete(held: HeldKey, status: number, body: string): Promise<void> {
    try {
      const sealed = held.sealResponse ? this.vault.sealRecord(body, sealedResponseId(held.scope, held.key)) : null;
      await this.completions.submit({ held, status, body: sealed ? null : body, sealed });
    } finally {
      this.stopped(held);
    }
  }

  /**
   * The request ended with a server error: what it did is unknown, so the key is not released for a
   * fresh run; the claim loses its owner and the next retry takes it over at once and resumes.
   */
  async abandon(held: HeldKey): Promise<void> {
    try {
      await inScope(
        this.sql,
        held.scope,
        (tx) => tx`
        UPDATE idempotency_keys SET owner = NULL
        WHERE tenant_id = ${held.scope.tenantId} AND livemode = ${held.scope.livemode} AND key = ${held.key}
          AND owner = ${held.owner} AND completed_at IS NULL`,
      );
    } finally {
      this.stopped(held);
    }
  }

  async idle(): Promise<void> {
    await Promise.all([this.claims.idle(), this.completions.idle()]);
  }

  private stopped(held: HeldKey) {
    this.running.delete(held.owner);
    if (!this.running.size && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
  }

  // A beat that fails (database away) is simply missed: the owner's claims only become
  // takeable once beats have been missing for the whole timeout, counted from the database's start.
  private async beat() {
    if (this.beating || !this.running.size) return;
    this.beating = true;
    try {
      const held = [...this.running.values()];
      const statement = new UnnestStatement();
      const input = statement.rows(
        HEARTBEAT_COLUMNS,
        held.map((h) => ({ tenant_id: h.scope.tenantId, livemode: h.scope.livemode, key: h.key, owner: h.owner })),
      );
      // SKIP LOCKED: a row a completion or claim batch holds is skipped (it is finishing, or one
      // missed beat is harmless), so this many-row update never waits on, or deadlocks with, them.
      const text = `
        WITH live AS (
          SELECT k.tenant_id, k.livemode, k.key FROM idempotency_keys k
          JOIN (${input}) v ON k.tenant_id = v.tenant_id AND k.livemode = v.livemode AND k.key = v.key
          WHERE k.owner = v.owner AND k.completed_at IS NULL
          FOR UPDATE OF k SKIP LOCKED
        )
        UPDATE idempotency_keys k SET heartbeat_at = now()
        FROM live l WHERE k.tenant_id = l.tenant_id AND k.livemode = l.livemode AND k.key = l.key`;
      await scopedStatement(
        this.sql,
        held.map((h) => h.scope),
        (tx) => statement.run(tx, text),
      );
    } catch {
      // Missed; the next beat tries again.
    } finally {
      this.beating = false;
    }
  }

  private async claimBatch(items: ClaimItem[]): Promise<ClaimRow[]> {
    // One key twice in a batch: only its first request goes to the database (an upsert may not
    // touch a row twice); the others are concurrent duplicates and share its outcome, or, if it
    // claims the key, find it in progress.
    const first = new Map<string, ClaimItem>();
    for (const item of items)
      if (!first.has(keyIdentity(item.scope, item.key))) first.set(keyIdentity(item.scope, item.key), item);
    const unique = [...first.values()];
    const statement = new UnnestStatement();
    const input = claimRows(statement, unique);
    const ownerTimeout = statement.param(`${this.ownerTimeoutSeconds} seconds`);
    // A takeover needs the same request (same fingerprint) and a stopped owner. Heartbeats count from
    // the database's own start at the earliest: after a database restart every owner gets a full
    // timeout to beat again before its claims are taken to be dead.
    const text = `
      WITH input AS (${input}), claimed AS (
        INSERT INTO idempotency_keys (${columnNames(CLAIM_COLUMNS)}, heartbeat_at) SELECT *, now() FROM input
        ON CONFLICT (tenant_id, key, livemode) DO UPDATE SET owner = excluded.owner, heartbeat_at = now()
          WHERE idempotency_keys.completed_at IS NULL
            AND idempotency_keys.request_hash = excluded.request_hash
            AND (idempotency_keys.owner IS NULL
              OR greatest(idempotency_keys.heartbeat_at, pg_postmaster_start_time()) < now() - ${ownerTimeout}::interval)
        RETURNING tenant_id, livemode, key
      )
      SELECT i.tenant_id, i.livemode, i.key, c.key IS NOT NULL AS claimed, k.request_hash, k.response_status,
        k.response_body, k.response_kek_id, k.response_wrapped_dek, k.response_ciphertext
      FROM input i
      LEFT JOIN claimed c ON c.tenant_id = i.tenant_id AND c.livemode = i.livemode AND c.key = i.key
      LEFT JOIN idempotency_keys k ON k.tenant_id = i.tenant_id AND k.livemode = i.livemode AND k.key = i.key`;
    const rows = await scopedStatement(
      this.sql,
      unique.map((i) => i.scope),
      (tx) => statement.run<ClaimRow[]>(tx, text),
    );
    const byIdentity = new Map(
      rows.map((row) => [keyIdentity({ tenantId: row.tenant_id, livemode: row.livemode }, row.key), row]),
    );
    return items.map((item) => {
      const row = byIdentity.get(keyIdentity(item.scope, item.key))!;
      const duplicate = first.get(keyIdentity(item.scope, item.key)) !== item;
      return duplicate && row.claimed ? { ...row, claimed: false, request_hash: null } : row;
    });
  }

  private async completeBatch(items: Completion[]): Promise<void[]> {
    const statement = new UnnestStatement();
    const text = completionUpdate(statement.rows(COMPLETION_COLUMNS, items.map(completionRow)));
    await scopedStatement(
      this.sql,
      items.map((i) => i.held.scope),
      (tx) => statement.run(tx, text),
    );
    return items.map(() => undefined);
  }
}
