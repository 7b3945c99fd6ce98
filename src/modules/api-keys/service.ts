import { Type, type Static } from 'typebox';
import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { listPage, type ListParams } from '../../db/list.js';
import { API_KEY_CHANGED_CHANNEL, hashApiKey, hasScope, type Auth, type TenantAuth } from '../../http/auth.js';
import { ApiError } from '../../http/errors.js';
import { Nullable } from '../../http/schemas.js';
import { newId, randomToken } from '../../lib/ids.js';
import { recordAudit, type AuditContext } from '../audit/record.js';

export const SCOPES = [
  'payments:read',
  'payments:write',
  'payment_methods:read',
  'payment_methods:write',
  'refunds:read',
  'refunds:write',
  'events:read',
  'pricing:read',
  'balance:read',
  'payouts:read',
  'payouts:write',
  'bank_accounts:read',
  'bank_accounts:write',
  'disputes:read',
  'disputes:write',
  'reconciliation:read',
  'customers:read',
  'customers:write',
  'api_keys:read',
  'api_keys:write',
  'request_logs:read',
  'reports:read',
  'reports:write',
  'cases:read',
  'cases:write',
  'users:read',
  'users:write',
  'webhook_endpoints:read',
  'webhook_endpoints:write',
  'fraud:read',
  'fraud:write',
  'reviews:read',
  'reviews:write',
  'audit_logs:read',
  'analytics:read',
] as const;

interface ApiKeyRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  kind: 'secret' | 'restricted';
  name: string | null;
  redacted: string;
  scopes: string[];
  expires_at: Date | null;
  revoked_at: Date | null;
  rolled_to: string | null;
  created_at: Date;
}

export const ApiKeySchema = Type.Object(
  {
    id: Type.String({ examples: ['key_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('api_key'),
    type: Type.String({ enum: ['secret', 'restricted'] }),
    name: Nullable(Type.String()),
    redacted: Type.String({ description: 'The key with all but its last characters hidden.' }),
    secret: Type.Optional(Type.String({ description: 'The full key: returned only when it is created or rolled.' })),
    scopes: Type.Array(Type.String()),
    expires_at: Nullable(Type.Integer()),
    revoked: Type.Boolean(),
    rolled_to: Nullable(Type.String()),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'ApiKey' },
);
export type ApiKey = Static<typeof ApiKeySchema>;

export const PublishableKeySchema = Type.Object(
  {
    id: Type.String({ examples: ['key_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('publishable_key'),
    key: Type.String({
      description:
        'The key itself (`pk_test_…` or `pk_live_…`). It is meant to be public: it can only tokenize cards and act ' +
        'on a payment whose `client_secret` it presents.',
      examples: ['pk_test_3f9c2a7d81b64e0c9a5d7e21f04b8c6d'],
    }),
    expires_at: Nullable(Type.Integer({ description: 'Set on a rolled key: when it stops working.' })),
    created: Type.Integer(),
    livemode: Type.Boolean(),
  },
  { $id: 'PublishableKey' },
);
export type PublishableKey = Static<typeof PublishableKeySchema>;

interface PublishableKeyRow {
  id: string;
  publishable_key: string;
  livemode: boolean;
  expires_at: Date | null;
  created_at: Date;
}

const PUBLISHABLE_COLUMNS = ['id', 'publishable_key', 'livemode', 'expires_at', 'created_at'];

const seconds = (date: Date | null) => (date ? Math.floor(new Date(date).getTime() / 1000) : null);

function toApiKey(row: ApiKeyRow, secret?: string): ApiKey {
  return {
    id: row.id,
    object: 'api_key',
    type: row.kind,
    name: row.name,
    redacted: row.redacted,
    ...(secret ? { secret } : {}),
    scopes: row.scopes,
    expires_at: seconds(row.expires_at),
    revoked: row.revoked_at !== null,
    rolled_to: row.rolled_to,
    created: seconds(row.created_at)!,
    livemode: row.livemode,
  };
}

function toPublishableKey(row: PublishableKeyRow): PublishableKey {
  return {
    id: row.id,
    object: 'publishable_key',
    key: row.publishable_key,
    expires_at: seconds(row.expires_at),
    created: seconds(row.created_at)!,
    livemode: row.livemode,
  };
}

const redact = (secret: string) => `${secret.slice(0, 8)}…${secret.slice(-4)}`;

export class ApiKeyService {
  constructor(
    private readonly sql: Sql,
    private readonly onChange: () => void,
  ) {}

  /**
   * Creates a key inside the caller's transaction, audited as `api_key.created`. The secret exists only in the return
   * value (the audit entry keeps the redacted form).
   */
  async createInTx(
    tx: Tx,
    scope: Scope,
    kind: 'secret' | 'restricted',
    scopes: string[],
    name: string | null,
    context: AuditContext,
  ): Promise<ApiKey> {
    const secret = `${kind === 'secret' ? 'sk' : 'rk'}_${scope.livemode ? 'live' : 'test'}_${randomToken(24)}`;
    const [row] = await tx<ApiKeyRow[]>`
      INSERT INTO api_keys (id, tenant_id, livemode, kind, name, key_hash, redacted, scopes)
      VALUES (${newId('key')}, ${scope.tenantId}, ${scope.livemode}, ${kind}, ${name}, ${hashApiKey(secret)},
              ${redact(secret)}, ${scopes})
      RETURNING id, tenant_id, livemode, kind, name, redacted, scopes, expires_at, revoked_at, rolled_to, created_at`;
    await this.audit(tx, scope, context, 'api_key.created', null, toApiKey(row));
    return toApiKey(row, secret);
  }

  private async audit(
    tx: Tx,
    scope: Scope,
    context: AuditContext,
    action: 'api_key.created' | 'api_key.rolled' | 'api_key.revoked',
    before: ApiKey | null,
    after: ApiKey,
  ) {
    await recordAudit(tx, { scope, context, action, target: { type: 'api_key', id: after.id }, before, after });
  }

  /**
   * Creates the scope's publishable key inside the caller's transaction (a new tenant's, or a roll's replacement).
   * Its creation is not audited on its own: a tenant's creation or the roll that makes it is.
   */
  async createPublishableInTx(tx: Tx, scope: Scope): Promise<PublishableKey> {
    const key = `pk_${scope.livemode ? 'live' : 'test'}_${randomToken(24)}`;
    const [row] = await tx<PublishableKeyRow[]>`
      INSERT INTO api_keys (id, tenant_id, livemode, kind, name, key_hash, redacted, scopes, publishable_key)
      VALUES (${newId('key')}, ${scope.tenantId}, ${scope.livemode}, 'publishable', 'Publishable key',
              ${hashApiKey(key)}, ${redact(key)}, ${[]}, ${key})
      RETURNING ${tx(PUBLISHABLE_COLUMNS)}`;
    return toPublishableKey(row);
  }

  /** The mode's current publishable key (a rolled one still within its grace period is not it). */
  async publishableKey(scope: Scope): Promise<PublishableKey> {
    const [row] = await inScope(
      this.sql,
      scope,
      (tx) => tx<PublishableKeyRow[]>`
        SELECT ${tx(PUBLISHABLE_COLUMNS)} FROM api_keys
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND kind = 'publishable'
          AND rolled_to IS NULL AND revoked_at IS NULL`,
    );
    if (!row) throw ApiError.notFound('publishable_key', 'current');
    return toPublishableKey(row);
  }

  /**
   * Replaces the mode's publishable key, audited as `publishable_key.rolled`. The old key keeps working for
   * `expires_in` seconds (default 0), long enough to deploy shop pages that carry the new one.
   */
  async rollPublishable(auth: TenantAuth, expiresInSeconds: number, context: AuditContext): Promise<PublishableKey> {
    const scope = { tenantId: auth.tenantId, livemode: auth.livemode };
    const rolled = await inScope(this.sql, scope, async (tx) => {
      const [old] = await tx<(PublishableKeyRow & { rolled_to: string | null })[]>`
        SELECT ${tx(PUBLISHABLE_COLUMNS)}, rolled_to FROM api_keys
        WHERE tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND kind = 'publishable'
          AND rolled_to IS NULL AND revoked_at IS NULL FOR UPDATE`;
      if (!old) throw ApiError.notFound('publishable_key', 'current');
      const expiresAt = new Date(Date.now() + expiresInSeconds * 1000);
      const replacementId = newId('key');
      // The old key gives up its place first: one unrolled publishable key per mode is a unique index.
      const [updated] = await tx<PublishableKeyRow[]>`
        UPDATE api_keys SET rolled_to = ${replacementId}, expires_at = ${expiresAt} WHERE id = ${old.id}
        RETURNING ${tx(PUBLISHABLE_COLUMNS)}`;
      const key = `pk_${scope.livemode ? 'live' : 'test'}_${randomToken(24)}`;
      const [row] = await tx<PublishableKeyRow[]>`
        INSERT INTO api_keys (id, tenant_id, livemode, kind, name, key_hash, redacted, scopes, publishable_key)
        VALUES (${replacementId}, ${scope.tenantId}, ${scope.livemode}, 'publishable', 'Publishable key',
                ${hashApiKey(key)}, ${redact(key)}, ${[]}, ${key})
        RETURNING ${tx(PUBLISHABLE_COLUMNS)}`;
      await this.announceChange(tx, old.id);
      const replacement = toPublishableKey(row);
      // The entry names the rolled key, when it stops working, and its replacement; both are public, so both are kept.
      await recordAudit(tx, {
        scope,
        context,
        action: 'publishable_key.rolled',
        target: { type: 'api_key', id: old.id },
        before: toPublishableKey(old),
        after: { key: replacement.key, rolled_to: replacement.id, expires_at: toPublishableKey(updated).expires_at },
      });
      return replacement;
    });
    this.onChange();
    return rolled;
  }

  async createRestricted(
    auth: TenantAuth,
    scopes: string[],
    name: string | null,
    context: AuditContext,
  ): Promise<ApiKey> {
    const extra = scopes.find((scope) => !hasScope(auth.scopes, scope));
    if (extra !== undefined)
      throw new ApiError(
        'permission_error',
        'missing_scope',
        `A key cannot grant "${extra}", which it does not have.`,
        'scopes',
        403,
      );
    const scope = { tenantId: auth.tenantId, livemode: auth.livemode };
    return inScope(this.sql, scope, (tx) => this.createInTx(tx, scope, 'restricted', scopes, name, context));
  }

  async list(scope: Scope, params: ListParams) {
    return inScope(this.sql, scope, async (tx) => {
      // Publishable keys have their own endpoint (GET /v1/publishable_key): they are not secrets to manage.
      const page = await listPage<ApiKeyRow>(tx, 'api_keys', scope, params, [tx`AND kind <> 'publishable'`]);
      return { data: page.rows.map((row) => toApiKey(row)), has_more: page.hasMore };
    });
  }

  /** The operator may act on any tenant's key; a tenant only on its own, in its own mode. */
  private async scopeFor(auth: Auth, id: string): Promise<Scope> {
    if (auth.kind === 'tenant') return { tenantId: auth.tenantId, livemode: auth.livemode };
    const [found] = await this.sql<
      { tenant_id: string; livemode: boolean }[]
    >`SELECT tenant_id, livemode FROM auth_find_api_key_by_id(${id})`;
    if (!found) throw ApiError.notFound('api_key', id);
    return { tenantId: found.tenant_id, livemode: found.livemode };
  }

  /**
   * A caller manages only keys it could have created itself: no scope beyond its own, and a secret
   * key (whose roll hands out a new full-access secret) only with full access or as the operator.
   * Otherwise a restricted key with api_keys:write could roll the secret key and keep the result.
   */
  private mayManage(auth: Auth, key: ApiKeyRow) {
    if (auth.kind === 'platform') return;
    if (key.kind === 'secret' && !auth.scopes.includes('*'))
      throw new ApiError(
        'permission_error',
        'secret_key_required',
        'Only a secret key (or the platform operator) may roll or revoke a secret key.',
        'id',
        403,
      );
    const beyond = key.scopes.find((scope) => !hasScope(auth.scopes, scope));
    if (beyond !== undefined)
      throw new ApiError(
        'permission_error',
        'missing_scope',
        `This key has "${beyond}", which the calling key does not: it may not roll or revoke it.`,
        'id',
        403,
      );
  }

  // NOTIFY is sent at COMMIT, and only if the transaction commits: every API process drops the key
  // from its cache once the change is visible, never before (see Authenticator.listen).
  private async announceChange(tx: Tx, id: string) {
    await tx`SELECT pg_notify(${API_KEY_CHANGED_CHANNEL}, ${id})`;
  }

  private async find(tx: Tx, scope: Scope, id: string): Promise<ApiKeyRow> {
    const [row] = await tx<ApiKeyRow[]>`
      SELECT id, tenant_id, livemode, kind, name, redacted, scopes, expires_at, revoked_at, rolled_to, created_at FROM api_keys
      WHERE id = ${id} AND tenant_id = ${scope.tenantId} AND livemode = ${scope.livemode} AND kind <> 'publishable'
      FOR UPDATE`;
    if (!row) throw ApiError.notFound('api_key', id);
    return row;
  }

  /**
   * Issues a replacement with the same type and scopes. The old key keeps working until
   * `expires_in` seconds from now (0, the default, ends it at once, as Stripe does).
   */
  async roll(auth: Auth, id: string, expiresInSeconds: number, context: AuditContext): Promise<ApiKey> {
    const scope = await this.scopeFor(auth, id);
    const rolled = await inScope(this.sql, scope, async (tx) => {
      const old = await this.find(tx, scope, id);
      this.mayManage(auth, old);
      if (old.revoked_at || old.rolled_to)
        throw ApiError.invalid('api_key_inactive', 'This API key was already revoked or rolled.', 'id');
      const replacement = await this.createInTx(tx, scope, old.kind, old.scopes, old.name, context);
      const expiresAt = new Date(Date.now() + expiresInSeconds * 1000);
      const [updated] = await tx<ApiKeyRow[]>`UPDATE api_keys SET rolled_to = ${replacement.id},
        expires_at = LEAST(coalesce(expires_at, ${expiresAt}), ${expiresAt}) WHERE id = ${id}
        RETURNING id, tenant_id, livemode, kind, name, redacted, scopes, expires_at, revoked_at, rolled_to, created_at`;
      await this.announceChange(tx, id);
      await this.audit(tx, scope, context, 'api_key.rolled', toApiKey(old), toApiKey(updated));
      return replacement;
    });
    this.onChange();
    return rolled;
  }

  async revoke(auth: Auth, id: string, context: AuditContext): Promise<ApiKey> {
    const scope = await this.scopeFor(auth, id);
    const revoked = await inScope(this.sql, scope, async (tx) => {
      const old = await this.find(tx, scope, id);
      this.mayManage(auth, old);
      const [row] = await tx<ApiKeyRow[]>`
        UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = ${id}
        RETURNING id, tenant_id, livemode, kind, name, redacted, scopes, expires_at, revoked_at, rolled_to, created_at`;
      await this.announceChange(tx, id);
      await this.audit(tx, scope, context, 'api_key.revoked', toApiKey(old), toApiKey(row));
      return toApiKey(row);
    });
    this.onChange();
    return revoked;
  }
}
