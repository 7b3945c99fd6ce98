import type { ServerResponse } from 'node:http';
import { inScope, scopeSetting, type Scope, type Sql } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { NotificationListener } from '../../http/notification-listener.js';
import { convertVersion, LATEST_API_VERSION } from '../versions/versions.js';
import { matchesEventFilter } from './catalog.js';
import { toApiEvent, type EventRow } from './events.js';
import type { StreamSlots } from './stream-slots.js';

/** Notified (see 016_event_sequence_and_stream.sql) by every statement that writes events. */
export const EVENTS_CHANNEL = 'payforward_events';

const CATCH_UP_PAGE = 500;
// A client that does not read its stream is cut off rather than buffered without bound: it
// reconnects with Last-Event-ID and resumes where it stopped.
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/**
 * A PostgreSQL snapshot (`pg_current_snapshot()`, text form `xmin:xmax:xip,…`): the transactions
 * whose writes it sees. Positions in the stream are snapshots because ids and sequence numbers are
 * drawn before commit, so an event with a smaller number can commit after a larger one was sent;
 * "visible in this snapshot" is exact whatever the commit order.
 */
export class Snapshot {
  private constructor(
    readonly text: string,
    private readonly xmin: bigint,
    private readonly xmax: bigint,
    private readonly xip: Set<bigint>,
  ) {}

  /** Undefined for anything pg_snapshot's input would refuse, so a forged position is a 400, never a 500. */
  static parse(text: string): Snapshot | undefined {
    const match = /^(\d{1,19}):(\d{1,19}):(\d{1,19}(?:,\d{1,19})*)?$/.exec(text);
    if (!match) return undefined;
    const xmin = BigInt(match[1]);
    const xmax = BigInt(match[2]);
    if (xmin < 1n || xmax < xmin || xmax >= 2n ** 63n) return undefined;
    const xip = match[3] ? match[3].split(',').map(BigInt) : [];
    let previous = 0n;
    for (const id of xip) {
      if (id < xmin || id >= xmax || id <= previous) return undefined;
      previous = id;
    }
    return new Snapshot(text, xmin, xmax, new Set(xip));
  }

  sees(txid: bigint): boolean {
    return txid < this.xmin || (txid < this.xmax && !this.xip.has(txid));
  }

  /** Whether this snapshot sees everything `other` sees (it was taken at the same time or later). */
  includes(other: Snapshot): boolean {
    if (other.xmax > this.xmax) return false;
    for (const id of this.xip) if (id < other.xmax && !other.xip.has(id)) return false;
    return true;
  }
}

/**
 * What a client of the stream has had, sent as each event's SSE `id` and given back as
 * `Last-Event-ID`: every event `base` sees, and of the events `next` sees besides, those with a
 * sequence up to `sequence` (events are sent in sequence order within each step).
 */
export class StreamPosition {
  constructor(
    readonly base: Snapshot,
    readonly next?: Snapshot,
    readonly sequence = 0,
  ) {}

  static parse(text: string): StreamPosition | undefined {
    const parts = text.split('/');
    if (parts.length === 1) {
      const base = Snapshot.parse(parts[0]);
      return base && new StreamPosition(base);
    }
    if (parts.length !== 3 || !/^\d{1,15}$/.test(parts[2])) return undefined;
    const base = Snapshot.parse(parts[0]);
    const next = Snapshot.parse(parts[1]);
    if (!base || !next || !next.includes(base)) return undefined;
    return new StreamPosition(base, next, Number(parts[2]));
  }

  toString(): string {
    return this.next ? `${this.base.text}/${this.next.text}/${this.sequence}` : this.base.text;
  }
}

type StreamedRow = EventRow & { txid: string };

/**
 * The events of `scopes` that `to` sees and `from` does not, after sequence `after`, in sequence
 * order; with no `to`, those the statement's own snapshot sees, which it returns.
 */
async function eventsBetween(
  sql: Sql,
  scopes: Scope[],
  from: Snapshot,
  to: Snapshot | undefined,
  after: number,
  limit?: number,
): Promise<{ snapshot: Snapshot; rows: StreamedRow[] }> {
  const rows = await inScope(
    sql,
    scopes,
    (tx) => tx<(StreamedRow & { snapshot: string })[]>`
      SELECT s.snapshot, e.* FROM (SELECT pg_current_snapshot()::text AS snapshot) s
      LEFT JOIN LATERAL (
        SELECT id, tenant_id, livemode, type, object_id, data, request_id, api_version, created_at, sequence, txid::text AS txid
        FROM events
        WHERE (tenant_id, livemode) IN (
            SELECT * FROM unnest(${scopes.map((s) => s.tenantId)}::text[], ${scopes.map((s) => String(s.livemode))}::text[]::boolean[]))
          AND txid >= pg_snapshot_xmin(${from.text}::pg_snapshot)
          AND NOT pg_visible_in_snapshot(txid, ${from.text}::pg_snapshot)
          AND (${to?.text ?? null}::pg_snapshot IS NULL OR pg_visible_in_snapshot(txid, ${to?.text ?? null}::pg_snapshot))
          AND sequence > ${after}
        ORDER BY sequence LIMIT ${limit ?? null}
      ) e ON true`,
  );
  return {
    snapshot: to ?? Snapshot.parse(rows[0].snapshot)!,
    rows: rows.filter((row) => row.id !== null),
  };
}

/** One open `GET /v1/events/stream` response. */
class EventStream {
  /** Every event this snapshot sees has been sent (or filtered out); see EventFeed for the invariant. */
  covered: Snapshot;
  closed = false;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    readonly scope: Scope,
    private readonly types: string[] | undefined,
    /** The caller's API version: events are shown in it, as webhooks are in the tenant's. */
    private readonly apiVersion: string,
    private readonly response: ServerResponse,
    start: Snapshot,
    heartbeatMs: number,
    private readonly onClose: (stream: EventStream) => void,
  ) {
    this.covered = start;
    this.heartbeat = setInterval(() => this.write(': heartbeat\n\n'), heartbeatMs);
    response.on('close', () => this.close());
  }

  wants(row: StreamedRow): boolean {
    return (
      row.tenant_id === this.scope.tenantId &&
      row.livemode === this.scope.livemode &&
      (!this.types || matchesEventFilter(this.types, row.type))
    );
  }

  /** Sends the events `next` sees besides what this stream has had; afterwards it has had all of `next`. */
  deliver(rows: StreamedRow[], next: Snapshot) {
    for (const row of rows)
      if (!this.covered.sees(BigInt(row.txid))) this.send(row, new StreamPosition(this.covered, next, row.sequence));
    this.covered = next;
  }

  send(row: StreamedRow, position: StreamPosition) {
    if (!this.wants(row)) return;
    const event = convertVersion(toApiEvent(row), LATEST_API_VERSION, this.apiVersion);
    this.write(`id: ${position}\ndata: ${JSON.stringify(event)}\n\n`);
  }

  /** Writes and reports whether the client keeps up (false: wait for 'drain' before writing more). */
  write(text: string): boolean {
    if (this.closed) return false;
    const flowing = this.response.write(text);
    if (this.response.writableLength > MAX_BUFFERED_BYTES) this.close();
    return flowing;
  }

  drained(): Promise<void> {
    if (this.closed || !this.response.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.on('drain', done).on('close', done);
    });
  }

  /** Ends the stream; with an error, first tells the client why (it should reconnect with Last-Event-ID). */
  close(error?: ApiError) {
    if (this.closed) return;
    if (error) this.response.write(`event: stream_error\ndata: ${JSON.stringify({ error: error.toBody() })}\n\n`);
    this.closed = true;
    clearInterval(this.heartbeat);
    this.response.end();
    this.onClose(this);
  }
}

const databaseUnavailable = () =>
  new ApiError(
    'api_error',
    'database_unavailable',
    'The database is unavailable for a moment; reconnect shortly with Last-Event-ID.',
    null,
    503,
  );

/**
 * The live event stream of one API process: one LISTEN connection, and one query per wake-up for
 * all the streams the process serves, never a poll per stream.
 *
 * `position` is the snapshot up to which events were handed to the attached streams. Each wake-up
 * reads the events the current snapshot sees and `position` does not, sends each stream its share,
 * and moves `position` on. Every attached stream's `covered` sees at least what `position` sees, so
 * a step's events are exactly what the stream lacks, minus what it already had (its own catch-up
 * may have reached further than the feed): nothing is lost or sent twice, whatever order the
 * transactions committed in. Steps and attachments run one at a time, in order.
 */
export class EventFeed {
  private readonly streams = new Set<EventStream>();
  private readonly perTenant = new Map<string, number>();
  private position?: Snapshot;
  private work: Promise<void> = Promise.resolve();
  private stepQueued = false;
  private listener?: NotificationListener;
  private up = false;

  constructor(
    private readonly sql: Sql,
    private readonly listenUrl: string,
    private readonly options: { heartbeatMs: number; maxPerTenant: number },
    /** The bound across API processes; `perTenant` is this process's own count, the fallback. */
    private readonly slots: StreamSlots,
  ) {}

  /**
   * Resolves once the first LISTEN is in place, so that a process which answers /ready serves streams; after a loss
   * of the connection, streams are refused (503) until it is back.
   */
  async start() {
    if (this.listener) return;
    this.listener = new NotificationListener(this.listenUrl, EVENTS_CHANNEL, {
      onNotify: (payload) => this.notified(payload),
      onUp: () => (this.up = true),
      // Notifications sent while the connection is away are lost, and with them the guarantee that
      // every commit wakes the streams: they end, and their clients resume with Last-Event-ID.
      onDown: () => {
        this.up = false;
        this.reset();
      },
    });
    await this.listener.start();
  }

  async stop() {
    this.reset();
    this.slots.stop();
    await this.listener?.stop();
  }

  /** Ends every stream (at shutdown, or when the database went away). */
  reset(error: ApiError = databaseUnavailable()) {
    for (const stream of [...this.streams]) stream.close(error);
    this.position = undefined;
  }

  /**
   * Opens a stream on `response` from `from` (Last-Event-ID), or from now. Throws an ApiError before
   * anything is written (limit reached, database away), so the caller answers with the envelope.
   * `begin` writes the response's headers once the stream is certain to start.
   */
  async open(
    scope: Scope,
    types: string[] | undefined,
    apiVersion: string,
    from: StreamPosition | undefined,
    response: ServerResponse,
    begin: () => void,
  ): Promise<void> {
    if (!this.up) throw databaseUnavailable();
    const tooMany = () =>
      new ApiError(
        'rate_limit_error',
        'too_many_streams',
        `This tenant already has the most open event streams allowed (${this.options.maxPerTenant}); close one first.`,
        null,
        429,
      );
    const open = this.perTenant.get(scope.tenantId) ?? 0;
    if (open >= this.options.maxPerTenant) throw tooMany();
    // Counted before the first await, so that streams opened at once cannot all pass the check.
    this.perTenant.set(scope.tenantId, open + 1);
    let lease: string | undefined;
    const release = () => {
      const left = (this.perTenant.get(scope.tenantId) ?? 1) - 1;
      if (left) this.perTenant.set(scope.tenantId, left);
      else this.perTenant.delete(scope.tenantId);
      if (lease) this.slots.release(lease);
    };
    let start = from?.base;
    try {
      const acquired = await this.slots.acquire(scope.tenantId);
      if (acquired === false) throw tooMany();
      lease = acquired;
      start ??= Snapshot.parse((await this.sql<{ now: string }[]>`SELECT pg_current_snapshot()::text AS now`)[0].now)!;
    } catch (error) {
      release();
      throw error;
    }
    const stream = new EventStream(scope, types, apiVersion, response, start, this.options.heartbeatMs, (closed) => {
      this.streams.delete(closed);
      release();
    });
    begin();
    try {
      if (from?.next) await this.catchUp(stream, from.base, from.next, from.sequence);
      if (from) await this.catchUp(stream, stream.covered, undefined, 0);
      if (!stream.closed) await this.enqueue(() => this.attach(stream));
    } catch {
      stream.close(databaseUnavailable());
    }
  }

  /**
   * Sends, page by page in sequence order, the events after `after` that `to` (or, without it, the
   * first page's snapshot) sees and `base` does not; then the stream has had all `to` sees.
   */
  private async catchUp(stream: EventStream, base: Snapshot, to: Snapshot | undefined, after: number) {
    let target = to;
    for (let last = after; !stream.closed;) {
      const page = await eventsBetween(this.sql, [stream.scope], base, target, last, CATCH_UP_PAGE);
      target = page.snapshot;
      for (const row of page.rows) stream.send(row, new StreamPosition(base, target, row.sequence));
      if (page.rows.length < CATCH_UP_PAGE) break;
      last = page.rows[page.rows.length - 1].sequence;
      await stream.drained();
    }
    if (target) stream.covered = target;
  }

  private async attach(stream: EventStream) {
    if (stream.closed) return;
    this.streams.add(stream);
    if (!this.position) this.position = stream.covered;
    else if (this.position.includes(stream.covered) && this.position.text !== stream.covered.text) {
      const { rows } = await eventsBetween(this.sql, [stream.scope], stream.covered, this.position, 0);
      stream.deliver(rows, this.position);
    }
    // What committed while the stream caught up may have been notified before it was attached.
    this.requestStep();
  }

  private notified(payload: string) {
    if (!this.streams.size) return;
    if (payload !== '*') {
      const written = new Set(payload.split(','));
      if (![...this.streams].some((stream) => written.has(scopeSetting([stream.scope])))) return;
    }
    this.requestStep();
  }

  private requestStep() {
    if (this.stepQueued) return;
    this.stepQueued = true;
    void this.enqueue(async () => {
      this.stepQueued = false;
      await this.step();
    }).catch(() => this.reset());
  }

  private async step() {
    if (!this.position || !this.streams.size) return;
    const streams = [...this.streams];
    const scopes = [...new Map(streams.map((s) => [scopeSetting([s.scope]), s.scope])).values()];
    const { snapshot, rows } = await eventsBetween(this.sql, scopes, this.position, undefined, 0);
    for (const stream of streams) if (!stream.closed) stream.deliver(rows, snapshot);
    this.position = snapshot;
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.work.then(task);
    this.work = run.catch(() => {});
    return run;
  }
}
