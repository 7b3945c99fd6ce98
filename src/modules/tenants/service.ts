import { Type, type Static } from 'typebox';
import { inScope, type Sql } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import { LoadingCache } from '../../lib/loading-cache.js';
import type { ApiKey, ApiKeyService, PublishableKey } from '../api-keys/service.js';
import { ref } from '../../http/schemas.js';
import { SettlementScheduleSchema, type SettlementSchedule } from '../settlements/schedule.js';
import { API_VERSION_NAMES, LATEST_API_VERSION } from '../versions/versions.js';

export const ApiVersionSchema = Type.String({
  enum: API_VERSION_NAMES,
  description: 'An API version (see GET /v1/api_versions).',
  examples: [LATEST_API_VERSION],
});
import { recordAudit, type AuditAction, type AuditContext } from '../audit/record.js';
import { API_KEY_CHANGED_CHANNEL } from '../../http/auth.js';
import { listCursor, type Page } from '../../db/list.js';

export const TenantSchema = Type.Object(
  {
    id: Type.String({ examples: ['ten_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('tenant'),
    name: Type.String(),
    processors: Type.Array(Type.String(), {
      description: 'Processor order: the first is primary, the rest are failovers.',
    }),
    settlement_schedule: SettlementScheduleSchema,
    api_version: Type.String({
      description:
        'The API version its requests and events use unless a request sends `PayForward-Version`: the latest at ' +
        'creation.',
    }),
    created: Type.Integer(),
    status: Type.String({
      enum: ['active', 'suspended'],
      description:
        '`suspended`: its keys, access tokens and dashboard sessions are refused (403 `account_suspended`); what it ' +
        'already has keeps moving (settlements, payouts, webhook deliveries).',
    }),
    suspended_at: Type.Union([Type.Integer(), Type.Null()], { description: 'When it was suspended; null if active.' }),
    suspension_reason: Type.Union([Type.String(), Type.Null()], {
      description: 'The operator’s reason, shown in the 403 its keys get; null if active.',
    }),
    secret_keys: Type.Optional(
      Type.Object(
        { test: Type.Unsafe<ApiKey>(ref('ApiKey')), live: Type.Unsafe<ApiKey>(ref('ApiKey')) },
        { description: 'Returned once, when the tenant is created.' },
      ),
    ),
    publishable_keys: Type.Optional(
      Type.Object(
        {
          test: Type.Unsafe<PublishableKey>(ref('PublishableKey')),
          live: Type.Unsafe<PublishableKey>(ref('PublishableKey')),
        },
        { description: 'Returned when the tenant is created; GET /v1/publishable_key reads them again.' },
      ),
    ),
  },
  { $id: 'Tenant' },
);
export type Tenant = Static<typeof TenantSchema>;

interface TenantRow {
  id: string;
  name: string;
  processors: string[];
  settlement_schedule: SettlementSchedule;
  api_version: string;
  created_at: Date;
  status: TenantStatus;
  suspended_at: Date | null;
  suspension_reason: string | null;
}

export type TenantStatus = 'active' | 'suspended';

const toTenant = (row: TenantRow): Tenant => ({
  id: row.id,
  object: 'tenant',
  name: row.name,
  processors: row.processors,
  settlement_schedule: row.settlement_schedule,
  api_version: row.api_version,
  created: unixSeconds(row.created_at),
  status: row.status,
  suspended_at: row.suspended_at ? unixSeconds(row.suspended_at) : null,
  suspension_reason: row.suspension_reason,
});

const unixSeconds = (at: Date) => Math.floor(new Date(at).getTime() / 1000);

/** Stripe's default for US accounts: funds available two business days after capture. */
const DEFAULT_SETTLEMENT_SCHEDULE: SettlementSchedule = { type: 'daily', delay_days: 2 };

/**
 * A tenant's settings span both modes; their audit entries are recorded in live mode, where the settings take
 * real effect (a live key, or the operator, reads them).
 */
const tenantWide = (tenantId: string) => ({ tenantId, livemode: true });

/** Which action a change of each tenant setting is audited as. */
const SETTING_ACTIONS: [keyof Tenant, AuditAction][] = [
  ['name', 'tenant.renamed'],
  ['processors', 'tenant.routing_updated'],
  ['settlement_schedule', 'tenant.settlement_schedule_updated'],
  ['api_version', 'tenant.api_version_updated'],
];

const bothModes = (tenantId: string) => [
  { tenantId, livemode: false },
  { tenantId, livemode: true },
];

export class TenantService {
  /**
   * The tenant's settings every payment needs. Another process sees the operator's change within 30 seconds; this
   * one at once.
   */
  private readonly cache = new LoadingCache<TenantRow>(30_000);

  constructor(
    private readonly sql: Sql,
    private readonly apiKeys: ApiKeyService,
    private readonly knownProcessors: string[],
    /** Drops what this process's authenticator cached about keys and tenants' statuses. */
    private readonly onStatusChange: () => void = () => {},
  ) {}

  private checkProcessors(order: string[]) {
    const unknown = order.find((p) => !this.knownProcessors.includes(p));
    if (unknown)
      throw ApiError.invalid(
        'parameter_invalid',
        `Unknown processor '${unknown.slice(0, 40)}'; available: ${this.knownProcessors.join(', ')}.`,
        'processors',
      );
  }

  async create(
    name: string,
    context: AuditContext,
    processors?: string[],
    schedule?: SettlementSchedule,
    apiVersion = LATEST_API_VERSION,
  ): Promise<Tenant> {
    const order = processors ?? this.knownProcessors;
    this.checkProcessors(order);
    const id = newId('ten');
    const target = { type: 'tenant', id };
    return inScope(this.sql, bothModes(id), async (tx) => {
      const [row] = await tx<TenantRow[]>`
        INSERT INTO tenants (id, name, processors, settlement_schedule, api_version)
        VALUES (${id}, ${name}, ${order}, ${tx.json(schedule ?? DEFAULT_SETTLEMENT_SCHEDULE)}, ${apiVersion})
        RETURNING *`;
      const test = await this.apiKeys.createInTx(
        tx,
        { tenantId: id, livemode: false },
        'secret',
        ['*'],
        'Default test key',
        context,
      );
      const live = await this.apiKeys.createInTx(
        tx,
        { tenantId: id, livemode: true },
        'secret',
        ['*'],
        'Default live key',
        context,
      );
      const publishable = {
        test: await this.apiKeys.createPublishableInTx(tx, { tenantId: id, livemode: false }),
        live: await this.apiKeys.createPublishableInTx(tx, { tenantId: id, livemode: true }),
      };
      const tenant = toTenant(row);
      await recordAudit(tx, { scope: tenantWide(id), context, action: 'tenant.created', target, after: tenant });
      return { ...tenant, secret_keys: { test, live }, publishable_keys: publishable };
    });
  }

  async retrieve(id: string): Promise<Tenant> {
    const [row] = await inScope(
      this.sql,
      bothModes(id),
      (tx) => tx<TenantRow[]>`SELECT * FROM tenants WHERE id = ${id}`,
    );
    if (!row) throw ApiError.notFound('tenant', id);
    return toTenant(row);
  }

  /**
   * The operator renames a tenant, changes its routing (the processor order, primary first) or its settlement
   * schedule.
   */
  async update(
    id: string,
    changes: { name?: string; processors?: string[]; settlement_schedule?: SettlementSchedule; api_version?: string },
    context: AuditContext,
  ): Promise<Tenant> {
    if (changes.processors) this.checkProcessors(changes.processors);
    const tenant = await inScope(this.sql, bothModes(id), async (tx) => {
      const [old] = await tx<TenantRow[]>`SELECT * FROM tenants WHERE id = ${id} FOR UPDATE`;
      if (!old) throw ApiError.notFound('tenant', id);
      const [row] = await tx<TenantRow[]>`
      UPDATE tenants SET name = coalesce(${changes.name ?? null}, name), processors = coalesce(${changes.processors ?? null}::text[], processors),
        settlement_schedule = coalesce(${changes.settlement_schedule ? tx.json(changes.settlement_schedule) : null}::jsonb, settlement_schedule),
        api_version = coalesce(${changes.api_version ?? null}, api_version)
      WHERE id = ${id} RETURNING *`;
      const [before, after] = [toTenant(old), toTenant(row)];
      for (const [field, action] of SETTING_ACTIONS)
        if (JSON.stringify(before[field]) !== JSON.stringify(after[field]))
          await recordAudit(tx, {
            scope: tenantWide(id),
            context,
            action,
            target: { type: 'tenant', id },
            before,
            after,
          });
      return after;
    });
    this.cache.delete(id);
    return tenant;
  }

  /** The operator's list, newest first; see auth_operator_tenants (037_operator_console.sql). */
  async list(params: {
    limit?: number;
    starting_after?: string;
    ending_before?: string;
    status?: string;
    name_prefix?: string;
  }): Promise<Page<Tenant>> {
    const { param, cursor } = listCursor(params);
    // A cursor naming no tenant would silently answer the first page, and a client paging through would start over.
    if (cursor !== undefined)
      await this.retrieve(cursor).catch((error: unknown) => {
        if (error instanceof ApiError && error.statusCode === 404)
          throw new ApiError('invalid_request_error', 'resource_missing', error.message, param, 400);
        throw error;
      });
    const limit = params.limit ?? 10;
    const rows = await this.sql<TenantRow[]>`
      SELECT * FROM auth_operator_tenants(${params.status ?? null}, ${params.name_prefix ?? null},
        ${params.starting_after ?? null}, ${params.ending_before ?? null}, ${limit + 1})`;
    const hasMore = rows.length > limit;
    // The function answers newest first either way; paging backwards, the extra row is the oldest.
    const page = params.ending_before !== undefined && hasMore ? rows.slice(1) : rows.slice(0, limit);
    return { rows: page.map(toTenant), hasMore };
  }

  /**
   * Refuses the tenant's keys, access tokens and sessions from now on (see Authenticator): at once on this process, on
   * the others when the notification sent at commit reaches them. A request already authenticated finishes as it
   * would have, so no payment is left half-written; the workers keep moving what exists.
   */
  suspend(id: string, reason: string, context: AuditContext): Promise<Tenant> {
    return this.changeStatus(id, 'suspended', reason, context);
  }

  reactivate(id: string, context: AuditContext): Promise<Tenant> {
    return this.changeStatus(id, 'active', null, context);
  }

  private async changeStatus(
    id: string,
    status: TenantStatus,
    reason: string | null,
    context: AuditContext,
  ): Promise<Tenant> {
    const tenant = await inScope(this.sql, bothModes(id), async (tx) => {
      const [old] = await tx<TenantRow[]>`SELECT * FROM tenants WHERE id = ${id} FOR UPDATE`;
      if (!old) throw ApiError.notFound('tenant', id);
      // Asking again for the state it is in changes nothing (a suspension keeps its first reason and time).
      if (old.status === status) return toTenant(old);
      const [row] = await tx<TenantRow[]>`
        UPDATE tenants SET status = ${status}, suspension_reason = ${reason},
          suspended_at = ${status === 'suspended' ? tx`now()` : null}
        WHERE id = ${id} RETURNING *`;
      const [before, after] = [toTenant(old), toTenant(row)];
      await recordAudit(tx, {
        scope: tenantWide(id),
        context,
        action: status === 'suspended' ? 'tenant.suspended' : 'tenant.reactivated',
        target: { type: 'tenant', id },
        before,
        after,
      });
      // Transactional: other processes hear of it only once it has committed (see Authenticator.listen).
      await tx`SELECT pg_notify(${API_KEY_CHANGED_CHANNEL}, ${id})`;
      return after;
    });
    this.onStatusChange();
    return tenant;
  }

  private settings(tenantId: string): Promise<TenantRow> {
    return this.cache.get(tenantId, async () => {
      const [row] = await inScope(
        this.sql,
        bothModes(tenantId),
        (tx) => tx<TenantRow[]>`SELECT * FROM tenants WHERE id = ${tenantId}`,
      );
      if (!row) throw ApiError.notFound('tenant', tenantId);
      return row;
    });
  }

  /** Processor order for routing. */
  async processorsFor(tenantId: string): Promise<string[]> {
    return (await this.settings(tenantId)).processors;
  }

  async settlementScheduleFor(tenantId: string): Promise<SettlementSchedule> {
    return (await this.settings(tenantId)).settlement_schedule;
  }

  /** The version the tenant's requests without a PayForward-Version header, and its webhooks, are answered in. */
  async apiVersionFor(tenantId: string): Promise<string> {
    return (await this.settings(tenantId)).api_version;
  }
}
