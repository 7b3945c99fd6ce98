import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { inScope, type Sql } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';

export const IDLE_TIMEOUT_MS = 15 * 60 * 1000;
export const ABSOLUTE_TIMEOUT_MS = 12 * 60 * 60 * 1000;

/** What a session (or a login awaiting its second factor) remembers. */
export interface SessionRecord {
  id: string;
  tenantId: string;
  userId: string;
  stage: 'mfa' | 'active';
  /** An active session's role, fixed for its life: changing the role ends the session. */
  role?: string;
  livemode: boolean;
  csrfToken: string;
  /** A login in stage 'mfa' must finish by then (ms), long before the idle timeout. */
  mfaDeadline?: number;
  /** The WebAuthn challenge sent for this login or passkey registration. */
  challenge?: string;
  createdAt: number;
  lastSeenAt: number;
}

export const tokenHash = (token: string) => createHash('sha256').update(token).digest();

const unavailable = () =>
  new ApiError(
    'api_error',
    'session_store_unavailable',
    'Sessions are unavailable for a moment; retry shortly.',
    null,
    503,
  );

/**
 * Server-side sessions, looked up by the SHA-256 of the cookie. Ending a session deletes it, so
 * logout, a password change and a role change take effect on the next request, on every process.
 */
export interface SessionStore {
  create(token: string, record: SessionRecord): Promise<void>;
  /** The live session for the cookie, its idle clock restarted; expired ones are deleted. */
  touch(token: string, now: number): Promise<SessionRecord | undefined>;
  update(token: string, record: SessionRecord): Promise<void>;
  delete(token: string, tenantId: string): Promise<void>;
  deleteForUser(tenantId: string, userId: string): Promise<void>;
}

const expired = (record: SessionRecord, now: number) =>
  record.lastSeenAt + IDLE_TIMEOUT_MS <= now || record.createdAt + ABSOLUTE_TIMEOUT_MS <= now;

export class RedisSessionStore implements SessionStore {
  constructor(private readonly redis: Redis) {}

  private key = (token: string) => `session:${tokenHash(token).toString('hex')}`;
  private userKey = (userId: string) => `user_sessions:${userId}`;

  private async run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch {
      throw unavailable();
    }
  }

  async create(token: string, record: SessionRecord) {
    const key = this.key(token);
    // Redis forgets the session by itself at the absolute timeout, measured on the real clock; the
    // times in the record decide (tests move the application's clock).
    const ttl = Math.ceil(ABSOLUTE_TIMEOUT_MS / 1000);
    await this.run(() =>
      this.redis
        .multi()
        .set(key, JSON.stringify(record), 'EX', ttl)
        .sadd(this.userKey(record.userId), key)
        .expire(this.userKey(record.userId), ttl)
        .exec(),
    );
  }

  async touch(token: string, now: number) {
    const key = this.key(token);
    const raw = await this.run(() => this.redis.get(key));
    if (!raw) return undefined;
    const record = JSON.parse(raw) as SessionRecord;
    if (expired(record, now)) {
      await this.run(() => this.redis.del(key));
      return undefined;
    }
    record.lastSeenAt = Math.max(record.lastSeenAt, now);
    // XX: a session ended meanwhile (logout on another process) is not brought back.
    await this.run(() => this.redis.set(key, JSON.stringify(record), 'KEEPTTL', 'XX'));
    return record;
  }

  async update(token: string, record: SessionRecord) {
    await this.run(() => this.redis.set(this.key(token), JSON.stringify(record), 'KEEPTTL', 'XX'));
  }

  async delete(token: string) {
    await this.run(() => this.redis.del(this.key(token)));
  }

  async deleteForUser(_tenantId: string, userId: string) {
    const keys = await this.run(() => this.redis.smembers(this.userKey(userId)));
    await this.run(() => this.redis.del(...keys, this.userKey(userId)));
  }
}

interface SessionRow {
  id: string;
  tenant_id: string;
  user_id: string;
  stage: 'mfa' | 'active';
  record: SessionRecord;
  created_at: Date;
}

export class PostgresSessionStore implements SessionStore {
  constructor(private readonly sql: Sql) {}

  private scope = (tenantId: string) => ({ tenantId, livemode: false });

  async create(token: string, record: SessionRecord) {
    await inScope(this.sql, this.scope(record.tenantId), async (tx) => {
      // Expired sessions are deleted when next presented; those never presented again go with the user's next.
      await tx`DELETE FROM user_sessions WHERE user_id = ${record.userId}
        AND (last_seen_at <= ${new Date(record.createdAt - IDLE_TIMEOUT_MS)}
          OR created_at <= ${new Date(record.createdAt - ABSOLUTE_TIMEOUT_MS)})`;
      await tx`INSERT INTO user_sessions (token_hash, id, tenant_id, user_id, stage, record, created_at, last_seen_at)
        VALUES (${tokenHash(token)}, ${record.id}, ${record.tenantId}, ${record.userId}, ${record.stage},
          ${tx.json(record as never)}, ${new Date(record.createdAt)}, ${new Date(record.lastSeenAt)})`;
    });
  }

  async touch(token: string, now: number) {
    const [row] = await this.sql<SessionRow[]>`
      SELECT * FROM auth_touch_session(${tokenHash(token)}, ${new Date(now)},
        ${`${IDLE_TIMEOUT_MS} milliseconds`}::interval, ${`${ABSOLUTE_TIMEOUT_MS} milliseconds`}::interval)`;
    if (!row) return undefined;
    return { ...row.record, lastSeenAt: Math.max(row.record.lastSeenAt, now) };
  }

  async update(token: string, record: SessionRecord) {
    await inScope(this.sql, this.scope(record.tenantId), async (tx) => {
      await tx`UPDATE user_sessions SET record = ${tx.json(record as never)}, stage = ${record.stage}
        WHERE token_hash = ${tokenHash(token)}`;
    });
  }

  async delete(token: string, tenantId: string) {
    await inScope(this.sql, this.scope(tenantId), async (tx) => {
      await tx`DELETE FROM user_sessions WHERE token_hash = ${tokenHash(token)}`;
    });
  }

  async deleteForUser(tenantId: string, userId: string) {
    await inScope(this.sql, this.scope(tenantId), async (tx) => {
      await tx`DELETE FROM user_sessions WHERE user_id = ${userId}`;
    });
  }
}

/**
 * The worker's purge of PostgreSQL sessions past their idle or absolute expiry that no request will present again
 * (those presented are deleted then): they would otherwise stay until their user next signs in. With Redis, keys
 * expire by themselves and there is nothing to purge.
 */
export class ExpiredSessionPurge {
  constructor(
    private readonly workerSql: Sql,
    private readonly clock: () => number,
    private readonly batchSize = 1_000,
  ) {}

  /** Deletes every expired session, a batch per statement; returns how many. */
  async run(): Promise<number> {
    const now = new Date(this.clock());
    let purged = 0;
    for (;;) {
      const [{ count }] = await this.workerSql<{ count: number }[]>`
        SELECT worker_purge_expired_sessions(${now}, ${`${IDLE_TIMEOUT_MS} milliseconds`}::interval,
          ${`${ABSOLUTE_TIMEOUT_MS} milliseconds`}::interval, ${this.batchSize}) AS count`;
      purged += count;
      if (count < this.batchSize) return purged;
    }
  }
}
