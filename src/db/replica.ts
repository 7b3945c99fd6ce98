import { inPageScope, inScope, isDatabaseUnavailable, scopedPageRead, type Scope, type Sql, type Tx } from './index.js';
import type { ReadBatcher } from './read-batch.js';

/** Where a read that tolerates staleness is served from, and why (the `db_reads_total` labels). */
export type ReadTarget = 'replica' | 'primary';
export type ReadReason = 'replica' | 'no_replica' | 'recent_write' | 'replica_down' | 'replica_lagging' | 'fallback';

export type ReplicaState = 'up' | 'lagging' | 'down' | 'not_a_standby' | 'unknown';

export interface ReplicaStatus {
  state: ReplicaState;
  /** How long ago the primary had WAL the replica has not replayed yet; null until both have been seen. */
  lag_ms: number | null;
  replay_lsn: string | null;
  primary_lsn: string | null;
  checked_at: string | null;
  error: string | null;
}

/** Runs a stale-tolerant read in the caller's tenant scope, on whichever server may serve it. */
export interface Reads {
  inScope<T>(scope: Scope, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** inScope under a page's planner settings, for a page that needs reads after it (see inPageScope). */
  inPageScope<T>(scope: Scope, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * A list's page: queries queued in one tick (the page, its cursor check) sent with BEGIN, the scope and COMMIT in
   * one round trip (scopedPageRead); on the primary, in the read batch of the same turn (ReadBatcher.page), so its
   * queries must name the scope's tenant and mode themselves.
   */
  page<T>(scope: Scope, query: (tx: Tx) => Promise<T>): Promise<T>;
}

/**
 * With no replica configured every read is the primary's. Pages join the batched reads when given their batcher (on
 * the read pool, so that a list never queues behind the write batches for a connection); alone otherwise.
 */
export function primaryReads(sql: Sql, batchedReads?: ReadBatcher): Reads {
  return {
    inScope: (scope, fn) => inScope(sql, scope, fn),
    inPageScope: (scope, fn) => inPageScope(sql, scope, fn),
    page: (scope, query) => (batchedReads ? batchedReads.page(scope, query) : scopedPageRead(sql, scope, query)),
  };
}

/**
 * A list's page: in one round trip (Reads.page) unless `sortedFilter`, a filter that an index out of the list's order
 * answers (a payment's refunds, a source's balance transactions), whose rows are best found through that index and
 * sorted: the page's planner settings price sorts out, so they would walk the tenant's whole history in id order
 * instead. Then a transaction of its own under the planner's defaults (Reads.inScope).
 */
export function listRead<T>(reads: Reads, scope: Scope, sortedFilter: boolean, query: (tx: Tx) => Promise<T>) {
  return sortedFilter ? reads.inScope(scope, query) : reads.page(scope, query);
}

export interface ReadRouterOptions {
  maxLagMs: number;
  pollMs: number;
  /** The primary's batched reads, which pages the primary serves join (see Reads.page); alone if not given. */
  primaryBatchedReads?: ReadBatcher;
  /** Clients whose writes are remembered one by one; beyond it the oldest fold into a floor every client waits for. */
  maxClients?: number;
  onRead?: (target: ReadTarget, reason: ReadReason) => void;
  onStatus?: (status: ReplicaStatus) => void;
  now?: () => number;
}

/** While the replica is away, how often it is asked again (a poll per read would be a connection attempt per read). */
const DOWN_RETRY_MS = 250;
/** A poll that has not answered within this is a replica that is down, whatever the driver is still waiting for. */
const POLL_TIMEOUT_MS = 2_000;
/** Primary WAL positions kept to turn the replica's replay position into a lag in time. */
const MAX_SAMPLES = 1_024;
/** Global floor key: the operator's writes (tenants, keys) may be read in any scope. */
const EVERY_CLIENT = '*';

/** PostgreSQL's `X/Y` text form of an LSN as a number of bytes (exact up to 8 PiB of WAL). */
export function parseLsn(text: string): number | undefined {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  return match ? parseInt(match[1], 16) * 2 ** 32 + parseInt(match[2], 16) : undefined;
}

export function formatLsn(lsn: number): string {
  return `${Math.floor(lsn / 2 ** 32)
    .toString(16)
    .toUpperCase()}/${(lsn % 2 ** 32).toString(16).toUpperCase()}`;
}

/** A client, for read-your-writes: the tenant and mode its requests act in (see README, Read replicas). */
export function clientOf(scope: Scope): string {
  return `${scope.tenantId}:${scope.livemode ? 't' : 'f'}`;
}

// Errors after which the read is retried on the primary: the replica is unreachable, or it canceled
// the query because replaying WAL needed the rows it was reading (40001, "conflict with recovery").
function replicaFailed(error: unknown): boolean {
  return isDatabaseUnavailable(error) || (error as { code?: unknown } | null)?.code === '40001';
}

/**
 * Sends stale-tolerant reads to the replica unless the client wrote something the replica has
 * not replayed yet, or the replica is down or too far behind; then to the primary.
 *
 * The position a write must be replayed to is the primary's `pg_current_wal_insert_lsn()` read
 * after the write committed: it is past the commit record, which is what makes the write visible
 * on the replica. (The LSN seen inside the write's own transaction is not: the commit record comes
 * after it.) One such read serves every write that committed before it started, so writes in the
 * same few milliseconds — a micro-batch's payments, or concurrent requests — share it.
 */
export class ReadRouter implements Reads {
  private readonly now: () => number;
  private readonly marks = new Map<string, { lsn: number; at: number }>();
  private floor = 0;
  private state: ReplicaState = 'unknown';
  private replay: number | undefined;
  private lagMs: number | null = null;
  private checkedAt = 0;
  private lastError: string | null = null;
  private polling: Promise<void> | undefined;
  private nextPollAt = 0;
  private samples: { at: number; flush: number }[] = [];
  private sampling: Promise<number> | undefined;
  private following: Promise<number> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly primary: Sql,
    private readonly replica: Sql,
    private readonly options: ReadRouterOptions,
  ) {
    this.now = options.now ?? Date.now;
    // Reads ask for fresh positions themselves; this keeps /metrics and recovery current when none come.
    this.timer = setInterval(() => this.poll(), Math.max(options.pollMs, 500));
    this.timer.unref();
    void this.poll();
  }

  inScope<T>(scope: Scope, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.routed(scope, (sql) => inScope(sql, scope, fn));
  }

  inPageScope<T>(scope: Scope, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.routed(scope, (sql) => inPageScope(sql, scope, fn));
  }

  page<T>(scope: Scope, query: (tx: Tx) => Promise<T>): Promise<T> {
    const { primaryBatchedReads } = this.options;
    return this.routed(scope, (sql) =>
      sql === this.primary && primaryBatchedReads
        ? primaryBatchedReads.page(scope, query)
        : scopedPageRead(sql, scope, query),
    );
  }

  private routed<T>(scope: Scope, read: (sql: Sql) => Promise<T>): Promise<T> {
    const reason = this.route(clientOf(scope));
    this.options.onRead?.(reason === 'replica' ? 'replica' : 'primary', reason);
    if (reason !== 'replica') return read(this.primary);
    return read(this.replica).catch((error: unknown) => {
      if (!replicaFailed(error)) throw error;
      if (isDatabaseUnavailable(error)) this.markDown(error);
      this.options.onRead?.('primary', 'fallback');
      return read(this.primary);
    });
  }

  /**
   * Called once a client's write has committed: its next reads wait for the replica to replay it.
   * Returns the position, for the PayForward-Read-After header (undefined if the primary did not say).
   */
  async wrote(scope: Scope | 'operator'): Promise<number | undefined> {
    const client = scope === 'operator' ? EVERY_CLIENT : clientOf(scope);
    try {
      const lsn = await this.primaryPositionAfterNow();
      this.remember(client, lsn);
      return lsn;
    } catch {
      // The write is committed but its position unknown: the client reads the primary until the mark expires.
      this.remember(client, Infinity);
      return undefined;
    }
  }

  /** A PayForward-Read-After position presented by a client (from a write another process answered). */
  readAfter(scope: Scope, lsn: number): void {
    if (this.replay === undefined || lsn > this.replay) this.remember(clientOf(scope), lsn);
  }

  status(): ReplicaStatus {
    const latest = this.samples.at(-1);
    return {
      state: this.state,
      lag_ms: this.lagMs,
      replay_lsn: this.replay === undefined ? null : formatLsn(this.replay),
      primary_lsn: latest ? formatLsn(latest.flush) : null,
      checked_at: this.checkedAt ? new Date(this.checkedAt).toISOString() : null,
      error: this.lastError,
    };
  }

  /** Asks both servers now (tests and /ready wait on it rather than on the cached answer). */
  async refresh(): Promise<ReplicaStatus> {
    await this.polling;
    this.nextPollAt = 0;
    await this.poll();
    return this.status();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Where a read in this scope would go now, and why. */
  routeFor(scope: Scope): ReadReason {
    return this.route(clientOf(scope));
  }

  private route(client: string): ReadReason {
    if (this.now() >= this.nextPollAt) void this.poll();
    if (this.state === 'down' || this.state === 'unknown' || this.state === 'not_a_standby') return 'replica_down';
    if (this.state === 'lagging') return 'replica_lagging';
    const replay = this.replay ?? 0;
    if (this.floor > replay) return 'recent_write';
    const mark = this.marks.get(client);
    if (mark === undefined) return 'replica';
    if (mark.lsn <= replay || this.now() - mark.at > this.markTtlMs()) {
      this.marks.delete(client);
      return 'replica';
    }
    return 'recent_write';
  }

  private markTtlMs() {
    return Math.max(60_000, 2 * this.options.maxLagMs);
  }

  private remember(client: string, lsn: number) {
    if (client === EVERY_CLIENT) {
      if (Number.isFinite(lsn)) this.floor = Math.max(this.floor, lsn);
      return;
    }
    const previous = this.marks.get(client);
    this.marks.delete(client);
    // Re-inserted, so the map stays in order of the last write: the oldest marks are dropped first.
    this.marks.set(client, { lsn: Math.max(lsn, previous?.lsn ?? 0), at: this.now() });
    if (this.marks.size > (this.options.maxClients ?? 100_000)) {
      const [oldest, mark] = this.marks.entries().next().value as [string, { lsn: number }];
      this.marks.delete(oldest);
      // A dropped mark still binds: every client waits for it, so no client ever reads before its write.
      if (Number.isFinite(mark.lsn)) this.floor = Math.max(this.floor, mark.lsn);
    }
  }

  /** The primary's insert position, read by a query that started after this call (so after the caller's commit). */
  private primaryPositionAfterNow(): Promise<number> {
    if (!this.sampling) return this.samplePrimary();
    // The query in flight may have started before the caller's commit: the next one is needed.
    this.following ??= this.sampling
      .then(
        () => {},
        () => {},
      )
      .then(() => {
        this.following = undefined;
        return this.samplePrimary();
      });
    return this.following;
  }

  private samplePrimary(): Promise<number> {
    const sample = (async () => {
      const [row] = await this.primary<{ insert: string; flush: string }[]>`
        SELECT pg_current_wal_insert_lsn()::text AS insert, pg_current_wal_flush_lsn()::text AS flush`;
      const insert = parseLsn(row.insert)!;
      this.recordFlush(parseLsn(row.flush)!);
      return insert;
    })();
    this.sampling = sample;
    void sample
      .finally(() => {
        if (this.sampling === sample) this.sampling = undefined;
      })
      .catch(() => {});
    return sample;
  }

  private recordFlush(flush: number) {
    const last = this.samples.at(-1);
    // Only changes are kept: the lag is the age of the first position the replica lacks.
    if (last && last.flush >= flush) return;
    this.samples.push({ at: this.now(), flush });
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
  }

  private poll(): Promise<void> {
    if (this.polling) return this.polling;
    this.nextPollAt = this.now() + this.options.pollMs;
    this.polling = this.check().finally(() => {
      this.polling = undefined;
      this.options.onStatus?.(this.status());
    });
    return this.polling;
  }

  private async check(): Promise<void> {
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timeout = setTimeout(
        () => reject(Object.assign(new Error('replica did not answer'), { code: 'ETIMEDOUT' })),
        POLL_TIMEOUT_MS,
      );
    });
    try {
      const [primary, replica] = await Promise.allSettled([
        this.samplePrimary(),
        Promise.race([
          this.replica<{ replay: string | null }[]>`SELECT pg_last_wal_replay_lsn()::text AS replay`,
          timedOut,
        ]),
      ]);
      this.checkedAt = this.now();
      if (replica.status === 'rejected') return this.markDown(replica.reason);
      const replay = replica.value[0].replay;
      // Not in recovery: a promoted (or wrongly configured) server, whose data may have forked from the primary's.
      if (replay === null) {
        this.state = 'not_a_standby';
        this.lastError = 'DATABASE_REPLICA_URL names a server that is not replaying WAL';
        return;
      }
      this.replay = parseLsn(replay)!;
      this.lastError = primary.status === 'rejected' ? String(primary.reason) : null;
      this.lagMs = this.lagAt(this.replay);
      this.state = this.lagMs > this.options.maxLagMs ? 'lagging' : 'up';
      while (this.marks.size) {
        const [client, mark] = this.marks.entries().next().value as [string, { lsn: number }];
        if (mark.lsn > this.replay) break;
        this.marks.delete(client);
      }
    } finally {
      clearTimeout(timeout);
    }
  }

  private lagAt(replay: number): number {
    const missing = this.samples.find((s) => s.flush > replay);
    return missing ? Math.max(0, this.now() - missing.at) : 0;
  }

  private markDown(error: unknown) {
    this.state = 'down';
    this.lagMs = null;
    this.lastError = error instanceof Error ? error.message : String(error);
    this.nextPollAt = this.now() + DOWN_RETRY_MS;
  }
}
