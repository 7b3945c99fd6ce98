import { Type, type Static } from 'typebox';
import { inScope, type Sql } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import type { ApiKey, ApiKeyService } from '../api-keys/service.js';
import { ref } from '../../http/schemas.js';

export const TenantSchema = Type.Object(
  {
    id: Type.String({ examples: ['ten_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('tenant'),
    name: Type.String(),
    processors: Type.Array(Type.String(), { description: 'Processor order: the first is primary, the rest are failovers.' }),
    created: Type.Integer(),
    secret_keys: Type.Optional(
      Type.Object({ test: Type.Unsafe<ApiKey>(ref('ApiKey')), live: Type.Unsafe<ApiKey>(ref('ApiKey')) }, { description: 'Returned once, when the tenant is created.' }),
    ),
  },
  { $id: 'Tenant' },
);
export type Tenant = Static<typeof TenantSchema>;

interface TenantRow {
  id: string;
  name: string;
  processors: string[];
  created_at: Date;
}

const toTenant = (row: TenantRow): Tenant => ({
  id: row.id,
  object: 'tenant',
  name: row.name,
  processors: row.processors,
  created: Math.floor(new Date(row.created_at).getTime() / 1000),
});

const bothModes = (tenantId: string) => [
  { tenantId, livemode: false },
  { tenantId, livemode: true },
];

export class TenantService {
  private readonly processorCache = new Map<string, { processors: string[]; at: number }>();

  constructor(
    private readonly sql: Sql,
    private readonly apiKeys: ApiKeyService,
    private readonly knownProcessors: string[],
  ) {}

  private checkProcessors(order: string[]) {
    const unknown = order.find((p) => !this.knownProcessors.includes(p));
    if (unknown) throw ApiError.invalid('parameter_invalid', `Unknown processor '${unknown.slice(0, 40)}'; available: ${this.knownProcessors.join(', ')}.`, 'processors');
  }

  async create(name: string, processors?: string[]): Promise<Tenant> {
    const order = processors ?? this.knownProcessors;
    this.checkProcessors(order);
    const id = newId('ten');
    return inScope(this.sql, bothModes(id), async (tx) => {
      const [row] = await tx<TenantRow[]>`INSERT INTO tenants (id, name, processors) VALUES (${id}, ${name}, ${order}) RETURNING *`;
      const test = await this.apiKeys.createInTx(tx, { tenantId: id, livemode: false }, 'secret', ['*'], 'Default test key');
      const live = await this.apiKeys.createInTx(tx, { tenantId: id, livemode: true }, 'secret', ['*'], 'Default live key');
      return { ...toTenant(row), secret_keys: { test, live } };
    });
  }

  async retrieve(id: string): Promise<Tenant> {
    const [row] = await inScope(this.sql, bothModes(id), (tx) => tx<TenantRow[]>`SELECT * FROM tenants WHERE id = ${id}`);
    if (!row) throw ApiError.notFound('tenant', id);
    return toTenant(row);
  }

  /** The operator renames a tenant or changes its routing: the processor order, primary first. */
  async update(id: string, changes: { name?: string; processors?: string[] }): Promise<Tenant> {
    if (changes.processors) this.checkProcessors(changes.processors);
    const [row] = await inScope(this.sql, bothModes(id), (tx) => tx<TenantRow[]>`
      UPDATE tenants SET name = coalesce(${changes.name ?? null}, name), processors = coalesce(${changes.processors ?? null}::text[], processors)
      WHERE id = ${id} RETURNING *`);
    if (!row) throw ApiError.notFound('tenant', id);
    this.processorCache.delete(id);
    return toTenant(row);
  }

  /** Processor order for routing; cached briefly because every payment asks. */
  async processorsFor(tenantId: string): Promise<string[]> {
    const hit = this.processorCache.get(tenantId);
    if (hit && Date.now() - hit.at < 30_000) return hit.processors;
    const tenant = await this.retrieve(tenantId);
    this.processorCache.set(tenantId, { processors: tenant.processors, at: Date.now() });
    return tenant.processors;
  }
}
