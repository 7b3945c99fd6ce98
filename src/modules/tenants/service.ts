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
}

const toTenant = (row: TenantRow): Tenant => ({
  id: row.id,
  object: 'tenant',
  name: row.name,
  processors: row.processors,
  settlement_schedule: row.settlement_schedule,
  api_version: row.api_version,
  created: Math.floor(new Date(row.created_at).getTime() / 1000),
});

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
