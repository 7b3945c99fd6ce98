import { createHash, timingSafeEqual } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import type { Sql } from '../db/index.js';
import { ApiError } from './errors.js';
import { LoadingCache } from '../lib/loading-cache.js';

export type Auth =
  | { kind: 'platform' }
  | {
      kind: 'tenant';
      tenantId: string;
      livemode: boolean;
      keyId: string;
      scopes: string[];
      via: 'api_key' | 'access_token';
    };

export type TenantAuth = Extract<Auth, { kind: 'tenant' }>;

interface KeyRecord {
  id: string;
  tenant_id: string;
  livemode: boolean;
  kind: string;
  scopes: string[];
  expires_at: Date | null;
  revoked_at: Date | null;
}

export function hashApiKey(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

const KEY_FORMAT = /^(sk|rk)_(test|live)_[A-Za-z0-9_-]{16,128}$/;
const CACHE_TTL_MS = 5_000;
const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;

const unauthenticated = (message: string) =>
  new ApiError('authentication_error', 'invalid_api_key', message, null, 401);

/**
 * Resolves a bearer credential to who is calling. Secret keys are looked up by their SHA-256
 * (they are random, so a fast hash is enough) through a narrow SECURITY DEFINER function, cached
 * briefly; revocation on this process drops the cache entry at once.
 */
export class Authenticator {
  private readonly byHash = new LoadingCache<KeyRecord | undefined>(CACHE_TTL_MS, 10_000);
  private readonly byId = new LoadingCache<KeyRecord | undefined>(CACHE_TTL_MS, 10_000);
  private readonly platformKeyHash: Buffer | undefined;
  private readonly jwtKey: Uint8Array;

  constructor(
    private readonly sql: Sql,
    platformApiKey: string | undefined,
    jwtSecret: string,
    private readonly now: () => number = Date.now,
  ) {
    this.platformKeyHash = platformApiKey ? hashApiKey(platformApiKey) : undefined;
    this.jwtKey = new TextEncoder().encode(jwtSecret);
  }

  async authenticate(header: string | undefined): Promise<Auth> {
    if (!header) throw unauthenticated('No API key provided. Send it as "Authorization: Bearer sk_test_…".');
    const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
    if (!match) throw unauthenticated('The Authorization header must be "Bearer <API key or access token>".');
    const credential = match[1];
    const hash = hashApiKey(credential);
    if (this.platformKeyHash && timingSafeEqual(hash, this.platformKeyHash)) return { kind: 'platform' };
    if (credential.startsWith('ey')) return this.fromAccessToken(credential);
    if (!KEY_FORMAT.test(credential)) throw unauthenticated('Invalid API key provided.');
    const record = await this.byHash.get(hash.toString('hex'), async () => {
      const [row] = await this.sql<KeyRecord[]>`SELECT * FROM auth_find_api_key(${hash})`;
      return row;
    });
    return this.usable(record, 'api_key');
  }

  private usable(record: KeyRecord | undefined, via: 'api_key' | 'access_token'): TenantAuth {
    if (!record) throw unauthenticated('Invalid API key provided.');
    if (record.revoked_at) throw unauthenticated('This API key has been revoked.');
    if (record.expires_at && record.expires_at.getTime() <= this.now())
      throw unauthenticated('This API key has expired.');
    return {
      kind: 'tenant',
      tenantId: record.tenant_id,
      livemode: record.livemode,
      keyId: record.id,
      scopes: record.scopes,
      via,
    };
  }

  forget() {
    this.byHash.clear();
    this.byId.clear();
  }

  /** Client-credentials exchange: a valid secret key buys a short-lived signed access token. */
  async issueAccessToken(
    auth: TenantAuth,
  ): Promise<{ access_token: string; token_type: 'bearer'; expires_in: number; scope: string }> {
    const token = await new SignJWT({ scopes: auth.scopes, tenant: auth.tenantId, livemode: auth.livemode })
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
      scope: auth.scopes.join(' '),
    };
  }

  private async fromAccessToken(token: string): Promise<TenantAuth> {
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(token, this.jwtKey, {
        issuer: 'payforward',
        audience: 'payforward-api',
        algorithms: ['HS256'],
      });
      subject = payload.sub;
    } catch {
      throw unauthenticated('Invalid or expired access token.');
    }
    if (!subject) throw unauthenticated('Invalid or expired access token.');
    // The token is only as good as the key it was issued for: a revoked key's tokens stop working.
    const record = await this.byId.get(subject, async () => {
      const [row] = await this.sql<KeyRecord[]>`SELECT * FROM auth_find_api_key_by_id(${subject})`;
      return row;
    });
    return this.usable(record, 'access_token');
  }
}

export function requireScope(auth: Auth, scope: string) {
  if (auth.kind !== 'tenant') return;
  if (auth.scopes.includes('*') || auth.scopes.includes(scope)) return;
  const [resource] = scope.split(':');
  if (scope.endsWith(':read') && auth.scopes.includes(`${resource}:write`)) return;
  throw new ApiError(
    'permission_error',
    'missing_scope',
    `This API key does not have the "${scope}" permission.`,
    null,
    403,
  );
}
