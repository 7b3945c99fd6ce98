import { hash, timingSafeEqual } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import type { Sql } from '../db/index.js';
import { ApiError } from './errors.js';
import { basicCredentials } from './basic-auth.js';
import { LoadingCache } from '../lib/loading-cache.js';
import { NO_SCOPE } from './route-auth.js';
import { NotificationListener } from './notification-listener.js';

/** A team member's or operator's signed-in session (see src/modules/users). */
export interface SessionPrincipal {
  id: string;
  userId: string;
  role: string;
}

export type Auth =
  | {
      kind: 'platform';
      /** Present when an operator staff member acts; operator_support may only read. */
      session?: SessionPrincipal;
      readOnly?: boolean;
    }
  | {
      kind: 'tenant';
      tenantId: string;
      livemode: boolean;
      /** The key's id, or for a session the user's (rate limits and idempotency keys are per user). */
      keyId: string;
      scopes: string[];
      /**
       * `publishable_key`: a pk_… key, which has no scopes and may call only the routes that declare
       * `publishable` (see route-auth.ts).
       */
      via: 'api_key' | 'access_token' | 'session' | 'publishable_key';
      session?: SessionPrincipal;
    };

export type TenantAuth = Extract<Auth, { kind: 'tenant' }>;

/** Whether the caller is a publishable key (pk_…): public, so limited to what routes declare (route-auth.ts). */
export const byPublishableKey = (auth: Auth | undefined): auth is TenantAuth =>
  auth?.kind === 'tenant' && auth.via === 'publishable_key';

interface KeyRecord {
  id: string;
  tenant_id: string;
  livemode: boolean;
  kind: string;
  scopes: string[];
  expires_at: Date | null;
  revoked_at: Date | null;
  /** The tenant's, read with the key so that a suspension needs no query of its own per request. */
  tenant_status: string;
  suspension_reason: string | null;
}

interface TenantStatusRecord {
  status: string;
  suspension_reason: string | null;
}

export function hashApiKey(secret: string): Buffer {
  // The one-shot form: every authenticated request hashes its key, and a Hash object costs more than the digest.
  return hash('sha256', secret, 'buffer');
}

/**
 * The operator key's prefix. It was `pk_platform_…` until publishable keys took `pk_`: now no operator key may look
 * like a key a web page is allowed to show.
 */
export const OPERATOR_KEY_PREFIX = 'op_';

const KEY_FORMAT = /^(sk|rk|pk)_(test|live)_[A-Za-z0-9_-]{16,128}$/;
const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
const CACHE_SIZE = 10_000;
/** Sent (key id as payload) in the transaction that revokes or rolls a key; see Authenticator.listen. */
export const API_KEY_CHANGED_CHANNEL = 'api_key_changed';

/**
 * The credential of an `Authorization` header: `Bearer <credential>`, or HTTP Basic with the credential as the user
 * and no password, as Stripe takes its keys (`curl -u sk_test_…:`). Undefined for anything else.
 */
function credentialOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header.trim())?.[1];
  if (bearer !== undefined) return bearer;
  const basic = basicCredentials(header);
  return typeof basic === 'object' && basic.user !== '' && basic.password === '' ? basic.user : undefined;
}

const unauthenticated = (message: string) =>
  new ApiError('authentication_error', 'invalid_api_key', message, null, 401);

/** The 403 every credential of a suspended tenant gets (403, not 401: the key is valid, its account is not). */
export const accountSuspended = (reason: string | null) =>
  new ApiError(
    'permission_error',
    'account_suspended',
    'This account has been suspended by the platform operator' +
      (reason ? ` (${reason})` : '') +
      ': its API keys and dashboard sessions are refused until it is reactivated. Contact the platform for help.',
    null,
    403,
  );

/** Ids of tenants start so; a notification naming one is a suspension or reactivation (see TenantService). */
const TENANT_ID_PREFIX = 'ten_';

/**
 * Resolves a bearer credential to who is calling. Secret keys are looked up by their SHA-256
 * (they are random, so a fast hash is enough) through a narrow SECURITY DEFINER function, cached
 * for `cacheTtlMs`. A revoke or roll drops the cache entry at once on this process and, through a
 * PostgreSQL notification, on every other one (see `listen`).
 */
export class Authenticator {
  private readonly byHash: LoadingCache<KeyRecord | undefined>;
  private readonly byId: LoadingCache<KeyRecord | undefined>;
  /** Tenant id -> its status, for dashboard sessions (which name a tenant, not a key). */
  private readonly tenantStatuses: LoadingCache<TenantStatusRecord | undefined>;
  /** Key id -> the byHash entry it was cached under, so a notification naming an id can drop it. */
  private readonly hashById = new Map<string, string>();
  private readonly platformKeyHash: Buffer | undefined;
  private readonly metricsTokenHash: Buffer | undefined;
  private readonly jwtKey: Uint8Array;
  private readonly now: () => number;
  private readonly keyChanges?: NotificationListener;
  /** False while the key-change listener is down: then nothing is cached, since no revocation would arrive. */
  private caching = true;
  /** Counts announced key changes, to spot one that arrived while a key was being read. */
  private changes = 0;

  constructor(
    private readonly sql: Sql,
    options: {
      platformApiKey?: string;
      jwtSecret: string;
      metricsToken?: string;
      cacheTtlMs: number;
      /** Where to LISTEN for revocations made by other processes; see `listen`. */
      listenUrl?: string;
      /** What key expiry is judged by; tests move it instead of waiting. */
      clock?: () => number;
    },
  ) {
    if (options.platformApiKey !== undefined && !options.platformApiKey.startsWith(OPERATOR_KEY_PREFIX))
      throw new Error(
        `PLATFORM_API_KEY must start with "${OPERATOR_KEY_PREFIX}" (the pk_ prefix belongs to publishable keys): ` +
          `generate one with: echo ${OPERATOR_KEY_PREFIX}$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')`,
      );
    this.platformKeyHash = options.platformApiKey ? hashApiKey(options.platformApiKey) : undefined;
    this.metricsTokenHash = options.metricsToken ? hashApiKey(options.metricsToken) : undefined;
    this.jwtKey = new TextEncoder().encode(options.jwtSecret);
    this.now = options.clock ?? Date.now;
    this.byHash = new LoadingCache(options.cacheTtlMs, CACHE_SIZE);
    this.byId = new LoadingCache(options.cacheTtlMs, CACHE_SIZE);
    this.tenantStatuses = new LoadingCache(options.cacheTtlMs, CACHE_SIZE);
    if (options.listenUrl)
      this.keyChanges = new NotificationListener(options.listenUrl, API_KEY_CHANGED_CHANNEL, {
        // A tenant's suspension or reactivation: its keys are not indexed by tenant here, so every entry goes. An
        // operator's action is rare enough that reloading each key once is cheaper than keeping such an index.
        onNotify: (id) => (id.startsWith(TENANT_ID_PREFIX) ? this.forget() : this.forgetKey(id)),
        onUp: () => {
          this.forget();
          this.caching = true;
        },
        onDown: () => {
          this.caching = false;
          this.forget();
        },
      });
  }

  /**
   * Subscribes to key changes made by any process. NOTIFY is transactional, so the message arrives
   * only once the revoke or roll has committed, and a reload right after it sees the new state.
   * Whatever is sent while the listening connection is down is lost: caching stops until it is back.
   */
  async listen(onRetry?: (error: unknown, retryInMs: number) => void) {
    await this.keyChanges?.start(onRetry);
  }

  async stopListening() {
    await this.keyChanges?.stop();
  }

  /** Whether `header` carries METRICS_TOKEN; never true when no token is configured. */
  isMetricsToken(header: string | undefined): boolean {
    const credential = credentialOf(header);
    if (credential === undefined || !this.metricsTokenHash) return false;
    return timingSafeEqual(hashApiKey(credential), this.metricsTokenHash);
  }

  async authenticate(header: string | undefined): Promise<Auth> {
    if (!header)
      throw unauthenticated(
        'No API key provided. Send it as "Authorization: Bearer sk_test_…", or as the username of HTTP Basic auth ' +
          '(curl -u sk_test_…:).',
      );
    const credential = credentialOf(header);
    if (credential === undefined)
      throw unauthenticated(
        'The Authorization header must be "Bearer <API key or access token>", or HTTP Basic auth with the key as ' +
          'the username and no password.',
      );
    const keyHash = hashApiKey(credential);
    if (this.platformKeyHash && timingSafeEqual(keyHash, this.platformKeyHash)) return { kind: 'platform' };
    if (credential.startsWith('ey')) return this.fromAccessToken(credential);
    if (!KEY_FORMAT.test(credential)) throw unauthenticated('Invalid API key provided.');
    const hex = keyHash.toString('hex');
    const record = await this.cached(this.byHash, hex, async () => {
      const [row] = await this.sql<KeyRecord[]>`SELECT * FROM auth_find_api_key(${keyHash})`;
      if (row) {
        if (this.hashById.size >= CACHE_SIZE) this.hashById.clear();
        this.hashById.set(row.id, hex);
      }
      return row;
    });
    return this.usable(record, 'api_key');
  }

  private cached<Value>(
    cache: LoadingCache<Value | undefined>,
    key: string,
    load: () => Promise<Value | undefined>,
  ): Promise<Value | undefined> {
    if (!this.caching) return load();
    return cache.get(key, async () => {
      const changesBefore = this.changes;
      const record = await load();
      // A change announced while this read was in flight (before its id was known, so it could not be
      // dropped by id) may be missing from it: the record serves the request that read it, and no other.
      if (this.changes !== changesBefore) cache.delete(key);
      return record;
    });
  }

  private usable(record: KeyRecord | undefined, via: 'api_key' | 'access_token', scopes?: string[]): TenantAuth {
    if (!record) throw unauthenticated('Invalid API key provided.');
    if (record.revoked_at) throw unauthenticated('This API key has been revoked.');
    if (record.expires_at && record.expires_at.getTime() <= this.now())
      throw unauthenticated('This API key has expired.');
    if (record.tenant_status !== 'active') throw accountSuspended(record.suspension_reason);
    if (record.kind === 'publishable') {
      // A publishable key is public: it buys no access token, and its powers come from route declarations alone.
      if (via !== 'api_key') throw unauthenticated('Invalid or expired access token.');
      return {
        kind: 'tenant',
        tenantId: record.tenant_id,
        livemode: record.livemode,
        keyId: record.id,
        scopes: [],
        via: 'publishable_key',
      };
    }
    return {
      kind: 'tenant',
      tenantId: record.tenant_id,
      livemode: record.livemode,
      keyId: record.id,
      // A token carries the scopes it was issued with; they never exceed its key's (see issueAccessToken).
      scopes: scopes ? scopes.filter((scope) => hasScope(record.scopes, scope)) : record.scopes,
      via,
    };
  }

  /**
   * Refuses a dashboard session of a suspended tenant with the same 403 its keys get. Cached like the keys, and
   * dropped by the same notifications, so a request pays a query only when the tenant's entry has expired.
   */
  async checkTenantActive(tenantId: string): Promise<void> {
    const record = await this.tenantStatus(tenantId);
    if (record && record.status !== 'active') throw accountSuspended(record.suspension_reason);
  }

  /** Whether the operator has suspended the tenant (cached as checkTenantActive is). */
  async isTenantSuspended(tenantId: string): Promise<boolean> {
    const record = await this.tenantStatus(tenantId);
    return record !== undefined && record.status !== 'active';
  }

  private tenantStatus(tenantId: string): Promise<TenantStatusRecord | undefined> {
    return this.cached(this.tenantStatuses, tenantId, async () => {
      const [row] = await this.sql<TenantStatusRecord[]>`SELECT * FROM auth_tenant_status(${tenantId})`;
      return row;
    });
  }

  forget() {
    this.changes++;
    this.byHash.clear();
    this.byId.clear();
    this.hashById.clear();
    this.tenantStatuses.clear();
  }

  forgetKey(keyId: string) {
    this.changes++;
    this.byId.delete(keyId);
    const hex = this.hashById.get(keyId);
    if (hex) this.byHash.delete(hex);
    this.hashById.delete(keyId);
  }

  /**
   * Client-credentials exchange: a valid secret key buys a short-lived signed access token, limited to
   * `requested` scopes when given (RFC 6749 §3.3), which must all be the key's own.
   */
  async issueAccessToken(
    auth: TenantAuth,
    requested?: string[],
  ): Promise<{ access_token: string; token_type: 'bearer'; expires_in: number; scope: string }> {
    if (auth.via === 'publishable_key')
      throw new ApiError(
        'authentication_error',
        'invalid_client',
        'A publishable key cannot be exchanged for an access token: use a secret or restricted key.',
        'client_secret',
        401,
      );
    const beyond = requested?.find((scope) => !hasScope(auth.scopes, scope));
    if (beyond !== undefined)
      throw new ApiError(
        'invalid_request_error',
        'invalid_scope',
        `The key does not have the scope "${beyond}", so a token for it cannot have it either.`,
        'scope',
        400,
      );
    const scopes = requested ?? auth.scopes;
    const token = await new SignJWT({ scopes, tenant: auth.tenantId, livemode: auth.livemode })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(auth.keyId)
      .setIssuer('payforward')
      .setAudience('payforward-api')
      .setIssuedAt()
      .setExpirationTime(`${ACCESS_TOKEN_TTL_SECONDS}s`)
      .sign(this.jwtKey);
    return {
      access_token: token,
      token_type: 'bearer',
      expires_in: ACCESS_TOKEN_TTL_SECONDS,
      scope: scopes.join(' '),
    };
  }

  private async fromAccessToken(token: string): Promise<TenantAuth> {
    let subject: string | undefined;
    let scopes: string[] = [];
    try {
      const { payload } = await jwtVerify(token, this.jwtKey, {
        issuer: 'payforward',
        audience: 'payforward-api',
        algorithms: ['HS256'],
      });
      subject = payload.sub;
      if (Array.isArray(payload.scopes)) scopes = payload.scopes.filter((scope) => typeof scope === 'string');
    } catch {
      throw unauthenticated('Invalid or expired access token.');
    }
    if (!subject) throw unauthenticated('Invalid or expired access token.');
    // The token is only as good as the key it was issued for: a revoked key's tokens stop working.
    const id = subject;
    const record = await this.cached(this.byId, id, async () => {
      const [row] = await this.sql<KeyRecord[]>`SELECT * FROM auth_find_api_key_by_id(${id})`;
      return row;
    });
    return this.usable(record, 'access_token', scopes);
  }
}

/** Whether a holder of `scopes` has `scope`: `*` has every scope, and `x:write` includes `x:read`. */
export function hasScope(scopes: readonly string[], scope: string): boolean {
  if (scopes.includes('*') || scopes.includes(scope)) return true;
  const [resource] = scope.split(':');
  return scope.endsWith(':read') && scopes.includes(`${resource}:write`);
}

export function requireScope(auth: Auth, scope: string) {
  if (auth.kind !== 'tenant' || scope === NO_SCOPE || hasScope(auth.scopes, scope)) return;
  throw new ApiError(
    'permission_error',
    'missing_scope',
    auth.via === 'session'
      ? `Your role (${auth.session?.role}) does not have the "${scope}" permission.`
      : `This API key does not have the "${scope}" permission.`,
    null,
    403,
  );
}
