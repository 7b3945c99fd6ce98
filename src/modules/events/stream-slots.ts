import { randomUUID } from 'node:crypto';
import type { Redis, Result } from 'ioredis';
import { inScope, type Sql } from '../../db/index.js';

/**
 * Where the leases on a tenant's event-stream slots are kept, shared by every API process. A lease
 * lives `leaseMs` unless renewed: the process holding it renews it while the stream is open, so a
 * crashed process's streams stop counting once their leases run out.
 */
export interface StreamSlotStore {
  /** Takes a lease unless `max` unexpired ones are held for the tenant; whether it did. */
  take(tenantId: string, leaseId: string, max: number, leaseMs: number): Promise<boolean>;
  renew(leases: { id: string; tenantId: string }[], leaseMs: number): Promise<void>;
  give(tenantId: string, leaseId: string): Promise<void>;
}

// One sorted set per tenant, members scored by expiry. Times are the Redis server's own, so the
// API processes' clocks need not agree.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// XX: a lease that already expired (and may have been counted out) is not brought back.
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    streamSlotTake(key: string, leaseId: string, max: number, leaseMs: number): Result<number, Context>;
    streamSlotRenew(key: string, leaseMs: number, ...leaseIds: string[]): Result<number, Context>;
  }
}

const slotKey = (tenantId: string) => `event_stream_slots:{${tenantId}}`;

export class RedisStreamSlotStore implements StreamSlotStore {
  constructor(private readonly redis: Redis) {
    redis.defineCommand('streamSlotTake', { numberOfKeys: 1, lua: TAKE });
    redis.defineCommand('streamSlotRenew', { numberOfKeys: 1, lua: RENEW });
  }

  async take(tenantId: string, leaseId: string, max: number, leaseMs: number) {
    return (await this.redis.streamSlotTake(slotKey(tenantId), leaseId, max, leaseMs)) === 1;
  }

  async renew(leases: { id: string; tenantId: string }[], leaseMs: number) {
    await Promise.all(
      [...groupByTenant(leases)].map(([tenantId, ids]) =>
        this.redis.streamSlotRenew(slotKey(tenantId), leaseMs, ...ids),
      ),
    );
  }

  async give(tenantId: string, leaseId: string) {
    await this.redis.zrem(slotKey(tenantId), leaseId);
  }
}

/** Without Redis: the event_stream_leases table (031_event_stream_leases.sql). */
export class PostgresStreamSlotStore implements StreamSlotStore {
  constructor(private readonly sql: Sql) {}

  async take(tenantId: string, leaseId: string, max: number, leaseMs: number) {
    return inScope(this.sql, { tenantId, livemode: false }, async (tx) => {
      // Serialises the count and the insert of concurrent openings for one tenant, on any process.
      await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`event_stream_leases:${tenantId}`}, 0))`;
      await tx`DELETE FROM event_stream_leases WHERE tenant_id = ${tenantId} AND expires_at <= now()`;
      const taken = await tx`
        INSERT INTO event_stream_leases (id, tenant_id, expires_at)
        SELECT ${leaseId}, ${tenantId}, now() + ${`${leaseMs} milliseconds`}::interval
        WHERE (SELECT count(*) FROM event_stream_leases WHERE tenant_id = ${tenantId}) < ${max}
        RETURNING id`;
      return taken.length === 1;
    });
  }

  async renew(leases: { id: string; tenantId: string }[], leaseMs: number) {
    const scopes = [...groupByTenant(leases).keys()].map((tenantId) => ({ tenantId, livemode: false }));
    await inScope(this.sql, scopes, async (tx) => {
      await tx`UPDATE event_stream_leases SET expires_at = now() + ${`${leaseMs} milliseconds`}::interval
        WHERE id = ANY(${leases.map((l) => l.id)}::text[]) AND expires_at > now()`;
    });
  }

  async give(tenantId: string, leaseId: string) {
    await inScope(this.sql, { tenantId, livemode: false }, async (tx) => {
      await tx`DELETE FROM event_stream_leases WHERE id = ${leaseId}`;
    });
  }
}

function groupByTenant(leases: { id: string; tenantId: string }[]): Map<string, string[]> {
  const byTenant = new Map<string, string[]>();
  for (const lease of leases) byTenant.set(lease.tenantId, [...(byTenant.get(lease.tenantId) ?? []), lease.id]);
  return byTenant;
}

/**
 * The bound on open streams per tenant across every API process: each open stream holds a lease in
 * the shared store, renewed by this process every third of its life. When the store cannot answer
 * (Redis away), `acquire` says so and the caller falls back to its own process's count: a stream is
 * better served over the bound for a while than refused for an outage of a counter.
 */
export class StreamSlots {
  private readonly held = new Map<string, string>();
  private readonly renewal: NodeJS.Timeout;

  constructor(
    private readonly store: StreamSlotStore,
    private readonly options: { maxPerTenant: number; leaseMs: number },
    private readonly onError: (error: unknown) => void,
  ) {
    this.renewal = setInterval(() => void this.renew(), Math.max(1, Math.floor(options.leaseMs / 3)));
    this.renewal.unref();
  }

  /** A lease id, `false` when the tenant's slots are all taken, `undefined` when the store did not answer. */
  async acquire(tenantId: string): Promise<string | false | undefined> {
    const leaseId = randomUUID();
    try {
      if (!(await this.store.take(tenantId, leaseId, this.options.maxPerTenant, this.options.leaseMs))) return false;
    } catch (error) {
      this.onError(error);
      return undefined;
    }
    this.held.set(leaseId, tenantId);
    return leaseId;
  }

  release(leaseId: string) {
    const tenantId = this.held.get(leaseId);
    if (tenantId === undefined) return;
    this.held.delete(leaseId);
    // Not given back, the lease still runs out by itself.
    this.store.give(tenantId, leaseId).catch(this.onError);
  }

  stop() {
    clearInterval(this.renewal);
  }

  private async renew() {
    if (!this.held.size) return;
    const leases = [...this.held].map(([id, tenantId]) => ({ id, tenantId }));
    await this.store.renew(leases, this.options.leaseMs).catch(this.onError);
  }
}
