import type { FastifyReply, FastifyRequest } from 'fastify';
import { inScope, isTransientFailure, type Sql } from '../../db/index.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { maskCardNumbers } from '../../http/logging.js';

export interface RequestLogRow {
  id: string;
  tenant_id: string;
  livemode: boolean;
  method: string;
  path: string;
  route: string | null;
  status: number;
  api_key_id: string | null;
  idempotency_key: string | null;
  idempotent_replayed: boolean;
  error_type: string | null;
  error_code: string | null;
  latency_ms: number;
  source_ip: string | null;
  created_at: Date;
}

const COLUMNS: Columns<RequestLogRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['method', 'text'],
  ['path', 'text'],
  ['route', 'text'],
  ['status', 'integer'],
  ['api_key_id', 'text'],
  ['idempotency_key', 'text'],
  ['idempotent_replayed', 'boolean'],
  ['error_type', 'text'],
  ['error_code', 'text'],
  ['latency_ms', 'integer'],
  ['source_ip', 'text'],
  ['created_at', 'timestamptz'],
];

export interface RequestLogOptions {
  flushIntervalMs: number;
  /** Most rows held while the database is away; beyond it the newest are dropped and counted. */
  maxBuffered: number;
  batchSize: number;
  onDropped: (count: number) => void;
}

/**
 * Keeps a tenant's request log off the request path: rows gather in memory and go to PostgreSQL in
 * one multi-tenant insert per interval. A log is a debugging aid, not a record of money: a crash
 * loses at most the last interval's rows, and a database outage (or an insert that lost a deadlock
 * or a lock wait) keeps up to `maxBuffered` of them for the next try.
 */
export class RequestLogRecorder {
  private buffer: RequestLogRow[] = [];
  private flushing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly sql: Sql,
    private readonly options: RequestLogOptions,
  ) {
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Records a tenant request as it is answered (`payload` is the serialized body); anything else (the operator, a
   * refused credential) has no tenant to show it to.
   */
  record(request: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const auth = request.auth;
    if (auth?.kind !== 'tenant') return;
    if (this.buffer.length >= this.options.maxBuffered) {
      this.options.onDropped(1);
      return;
    }
    const idempotencyKey = request.headers['idempotency-key'];
    const error = reply.statusCode >= 400 ? errorOf(payload) : undefined;
    this.buffer.push({
      id: request.id,
      tenant_id: auth.tenantId,
      livemode: auth.livemode,
      method: request.method,
      // The path as called (ids included) but never the query string, and masked: a careless client may put a
      // card number anywhere in a URL.
      path: maskCardNumbers(request.url.split('?')[0]).slice(0, 500),
      route: request.routeOptions.url ?? null,
      status: reply.statusCode,
      api_key_id: auth.keyId,
      idempotency_key: typeof idempotencyKey === 'string' ? maskCardNumbers(idempotencyKey).slice(0, 255) : null,
      idempotent_replayed: reply.getHeader('idempotent-replayed') === 'true',
      error_type: error?.type ?? null,
      error_code: error?.code ?? null,
      latency_ms: Math.round(reply.elapsedTime),
      source_ip: request.ip ?? null,
      created_at: new Date(),
    });
    if (this.buffer.length >= this.options.batchSize) void this.flush();
  }

  /** Writes what is buffered; resolves when it is written (or kept for the next try). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (!this.buffer.length) return;
    this.flushing = this.write().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private async write() {
    const rows = this.buffer.splice(0, this.options.batchSize);
    const scopes = rows.map((row) => ({ tenantId: row.tenant_id, livemode: row.livemode }));
    try {
      await inScope(this.sql, scopes, (tx) => insertRows(tx, 'request_logs', COLUMNS, rows, 'ON CONFLICT DO NOTHING'));
    } catch (error) {
      if (!isTransientFailure(error)) return this.options.onDropped(rows.length);
      // Back in front for the next interval; whatever no longer fits is dropped, newest last.
      const room = Math.max(0, this.options.maxBuffered - this.buffer.length);
      this.buffer.unshift(...rows.slice(0, room));
      if (rows.length > room) this.options.onDropped(rows.length - room);
    }
  }

  async close() {
    clearInterval(this.timer);
    await this.flush().catch(() => {});
  }
}

function errorOf(payload: unknown): { type: string | null; code: string | null } | undefined {
  if (typeof payload !== 'string') return undefined;
  try {
    const error = (JSON.parse(payload) as { error?: { type?: unknown; code?: unknown } }).error;
    const text = (value: unknown) => (typeof value === 'string' ? value.slice(0, 100) : null);
    return error ? { type: text(error.type), code: text(error.code) } : undefined;
  } catch {
    return undefined;
  }
}
