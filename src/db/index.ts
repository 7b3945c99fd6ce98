import postgres from 'postgres';
import type { Config } from '../config.js';
import { CommitOutcomeUnknown, transactionFailure } from './commit-outcome.js';
import { StallWatch } from './stall-watch.js';

export type Sql = postgres.Sql<{ bigint: number }>;
export type Tx = postgres.TransactionSql<{ bigint: number }>;

/** The (tenant, mode) pairs a transaction may see; see app_scope_allows in the migrations. */
export interface Scope {
  tenantId: string;
  livemode: boolean;
}

// Money columns are bigint. Every amount we accept is far below 2^53, so numbers are exact;
// a value that is not would be corrupt data and must fail loudly rather than round.
const bigintAsNumber = {
  to: 20,
  from: [20],
  serialize: (value: number | bigint) => value.toString(),
  parse: (value: string) => {
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed)) throw new Error(`bigint ${value} exceeds the safe integer range`);
    return parsed;
  },
};

export function connect(
  url: string,
  options: {
    max?: number;
    applicationName?: string;
    connectTimeoutSeconds?: number;
    /**
     * Let PostgreSQL keep a generic plan of a prepared statement once it costs no more than the plans made for each
     * call's parameters (plan_cache_mode = auto). The API's pools: its statements are key lookups and index walks
     * whose best plan does not depend on the values, and planning them on every call was half of PostgreSQL's CPU
     * for a list of payments or a balance (see README, Benchmarks).
     */
    cachedPlans?: boolean;
    /**
     * DATABASE_ANSWER_TIMEOUT_MS: a query unanswered this long, on a server that does not answer a ping either, fails
     * with ETIMEDOUT (see StallWatch), in plain text and over TLS alike.
     */
    answerTimeoutMs?: number;
  } = {},
): Sql {
  const watched = options.answerTimeoutMs ? new StallWatch(options.answerTimeoutMs) : undefined;
  return postgres(url, {
    ...(watched && { socket: watched.socketFactory }),
    max: options.max ?? 10,
    idle_timeout: 30,
    connect_timeout: options.connectTimeoutSeconds ?? 10,
    // While the server is away, a query waits for its connection's next attempt: the driver's
    // default backoff grows to 20 s, so requests would hang instead of being answered 503 at once.
    backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 0.5),
    onnotice: () => {},
    types: { bigint: bigintAsNumber },
    // Without cachedPlans every execution is planned for its own parameters: a cached generic plan, made for no
    // particular call, can drift into table scans as tables grow (batch statements did, before they got a generic
    // plan of their own made under index-only settings: see scopedStatement).
    connection: {
      application_name: options.applicationName ?? 'payforward',
      plan_cache_mode: options.cachedPlans ? 'auto' : 'force_custom_plan',
    },
  }) as unknown as Sql;
}

/** The application's connection string: same server and database, the non-privileged role. */
export function appDatabaseUrl(adminUrl: string, config: Pick<Config, 'appDbRole' | 'appDbPassword'>): string {
  return asRole(adminUrl, config.appDbRole, config.appDbPassword);
}

/** The background workers' connection string: the only role that may run the worker_* functions. */
export function workerDatabaseUrl(adminUrl: string, config: Pick<Config, 'workerDbRole' | 'workerDbPassword'>): string {
  return asRole(adminUrl, config.workerDbRole, config.workerDbPassword);
}

function asRole(adminUrl: string, role: string, password: string): string {
  const url = new URL(adminUrl);
  url.username = role;
  url.password = password;
  return url.toString();
}

/**
 * Stands in for the worker role's pool in a process that runs no workers (`api`), which must hold
 * no connection that can scan across tenants: any use is a wiring mistake, and says so.
 */
export function noWorkerConnection(): Sql {
  const refuse = () => {
    throw new Error('this process runs no workers and holds no worker-role connection');
  };
  return Object.assign(refuse, { begin: refuse, reserve: refuse, unsafe: refuse, end: async () => {} }) as never;
}

/**
 * Row-level security is the tenant boundary, and SUPERUSER or BYPASSRLS roles skip it: a process
 * whose connections have either would serve every tenant's rows to any tenant. Checked at start-up
 * because a replica or a misconfigured URL can name a role the migration never saw.
 */
export async function refusePrivilegedRoles(connections: { setting: string; sql: Sql }[]): Promise<void> {
  for (const { setting, sql } of connections) {
    const [role] = await sql<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean }[]>`
      SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`;
    const privileges = [role.rolsuper && 'SUPERUSER', role.rolbypassrls && 'BYPASSRLS'].filter(Boolean);
    if (privileges.length)
      throw new Error(
        `${setting} connects as role ${role.rolname}, which has ${privileges.join(' and ')}: ` +
          'row-level security would not apply, so PayForward refuses to start',
      );
  }
}

// Connection-level failures: the server is down, restarting, failing over or refusing new
// connections. A request that meets one is answered 503 and can be retried; any other error is a bug.
const UNAVAILABLE_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown: the server is stopping (or the backend was terminated)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, shutting down or in recovery
  '53300', // too_many_connections
]);

/** Whether an error means the database cannot be reached right now (as opposed to a failed query). */
export function isDatabaseUnavailable(error: unknown): boolean {
  // A commit whose answer never came is the database going away too: the caller answers 503 and the
  // client's retry with the same Idempotency-Key resolves what happened.
  if (error instanceof CommitOutcomeUnknown) return true;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return UNAVAILABLE_CODES.has(code) || code.startsWith('08');
}

// Failures of one attempt at a statement that a later attempt as it stands can pass: it lost a deadlock, a serializable
// conflict or a lock wait.
const CONTENTION_CODES = new Set(['40001', '40P01', '55P03']);

/** Whether a statement failed for now only: the database is away, or the statement lost to a concurrent one. */
export function isTransientFailure(error: unknown): boolean {
  return isDatabaseUnavailable(error) || CONTENTION_CODES.has((error as { code?: unknown } | null)?.code as string);
}

export function scopeSetting(scopes: Scope[]): string {
  return [...new Set(scopes.map((s) => `${s.tenantId}:${s.livemode ? 't' : 'f'}`))].join(',');
}

/**
 * Runs fn in a transaction that row-level security limits to the given scopes. BEGIN and the
 * scope are sent with fn's first query in one round trip (postgres.js pipelines the queries of a
 * reserved connection); only COMMIT waits for a second.
 */
export function inScope<T>(sql: Sql, scopes: Scope | Scope[], fn: (tx: Tx) => Promise<T>): Promise<T> {
  return inScopeWith(sql, Array.isArray(scopes) ? scopes : [scopes], fn, 'read');
}

/**
 * inScope for a list's page that needs reads before it (the list's owner, to answer 404 for another tenant's) or after
 * it: the whole transaction runs under a page's planner settings (see scopedPageRead), which leave only walks of an
 * index in the list's order.
 */
export function inPageScope<T>(sql: Sql, scope: Scope, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return inScopeWith(sql, [scope], fn, 'page');
}

async function inScopeWith<T>(sql: Sql, scopes: Scope[], fn: (tx: Tx) => Promise<T>, kind: 'read' | 'page') {
  const setting = scopeSetting(scopes);
  const connection = await sql.reserve();
  const tx = connection as unknown as Tx;
  const opened = Promise.all([tx`BEGIN`, scoped(tx, setting, kind)]);
  opened.catch(() => {});
  try {
    const result = await fn(tx);
    await opened;
    await tx`COMMIT`;
    return result;
  } catch (error) {
    await tx`ROLLBACK`.catch(() => {});
    throw error;
  } finally {
    connection.release();
  }
}

/**
 * One atomic statement in a scoped transaction, with BEGIN, the scope, the statement and COMMIT
 * all sent at once: a single round trip. If the statement fails, PostgreSQL turns the COMMIT
 * into a rollback and the statement's error is thrown. If the connection fails with no answer
 * from the server, CommitOutcomeUnknown is thrown: the caller must find out what happened.
 *
 * Planning a batch statement cost about a fifth of its execution, every time, so here it runs on
 * a generic plan, made once per connection and kept. The planner settings that plan is made
 * under allow only index probes and nested loops: a plan made while the tables were small cannot
 * drift into table scans as they grow (which is why the connection otherwise forces custom
 * plans). All transaction-local.
 */
export function scopedStatement<T>(sql: Sql, scopes: Scope[], statement: (tx: Tx) => Promise<T>): Promise<T> {
  return pipelined(sql, scopes, statement, 'write');
}

/**
 * A read of one statement under a tenant scope in a single round trip: BEGIN, the scope, the query
 * and COMMIT are queued together, and postgres.js sends what is queued in one tick as one socket
 * write. inScope needs two round trips (its COMMIT waits for the function's queries, which may
 * depend on each other); on this machine each small write to a loopback socket costs tens of
 * microseconds, which was most of a retrieve's cost. Row-level security applies as in inScope: the
 * scope is set inside the transaction before the query runs.
 */
export function scopedRead<T>(sql: Sql, scopes: Scope | Scope[], query: (tx: Tx) => Promise<T>): Promise<T> {
  return pipelined(sql, Array.isArray(scopes) ? scopes : [scopes], query, 'read');
}

/**
 * scopedRead for a page in index order (a list: `ORDER BY id DESC LIMIT n` within one tenant). Row-level security's
 * predicate hides how many rows a tenant has from the planner (it estimates a handful), so with statistics fresh or
 * stale it chose to read every payment of the tenant through another index and sort them for the first eleven:
 * 20-880 ms for a tenant of 2,000 payments among 300,000, and growing with the tenant. With sorts, bitmap scans and
 * sequential scans priced out for this transaction, only walks of an index in the list's order remain, which stop
 * at the page's end (0.06-3 ms on the same data; see README, Benchmarks).
 */
export function scopedPageRead<T>(sql: Sql, scopes: Scope | Scope[], query: (tx: Tx) => Promise<T>): Promise<T> {
  return pipelined(sql, Array.isArray(scopes) ? scopes : [scopes], query, 'page');
}

async function pipelined<T>(
  sql: Sql,
  scopes: Scope[],
  statement: (tx: Tx) => Promise<T>,
  kind: 'write' | 'read' | 'page',
): Promise<T> {
  const connection = await sql.reserve();
  const tx = connection as unknown as Tx;
  let lost = false;
  try {
    // Queued now, so they precede anything the statement sends. From here the transaction is open:
    // a statement that throws instead of returning its query must still end it, or the connection
    // would go back to the pool inside it; whatever it sent before throwing is rolled back.
    const begin = tx`BEGIN`.execute();
    const scope = scoped(tx, scopeSetting(scopes), kind).execute();
    return await withCommit(tx, [begin, scope], statement, kind, () => (lost = true));
  } finally {
    // A lost connection is in the pool's closed list already, to be reconnected on demand; releasing
    // it would list it as open without a socket (porsager/postgres#1208).
    if (!lost) connection.release();
  }
}

/** The transaction's scope, and the planner settings of its kind of work (see scopedStatement, scopedPageRead). */
function scoped(tx: Tx, setting: string, kind: 'write' | 'read' | 'page') {
  return kind === 'write'
    ? tx`SELECT set_config('app.scope', ${setting}, true), set_config('plan_cache_mode', 'force_generic_plan', true),
        set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`
    : kind === 'page'
      ? tx`SELECT set_config('app.scope', ${setting}, true), set_config('enable_sort', 'off', true),
        set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`
      : tx`SELECT set_config('app.scope', ${setting}, true)`;
}

/**
 * Sends `statement` and COMMIT behind it in one go on a transaction that `opening` (queued before) opened, and waits
 * for all of them; ROLLBACK instead of COMMIT if the statement throws instead of returning its query (whatever it sent
 * is rolled back). A write's COMMIT that got no answer throws CommitOutcomeUnknown; `onLost` is called when the
 * connection is gone.
 */
async function withCommit<T>(
  tx: Tx,
  opening: Promise<unknown>[],
  statement: (tx: Tx) => Promise<T>,
  kind: 'write' | 'read' | 'page',
  onLost: () => void,
): Promise<T> {
  let result: Promise<T>;
  let threw = false;
  try {
    result = statement(tx);
  } catch (error) {
    threw = true;
    result = Promise.reject(error);
  }
  const end = threw ? tx`ROLLBACK` : tx`COMMIT`;
  const outcomes = await Promise.allSettled([...opening, result, end]);
  const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
  if (failures.length) {
    // A write's COMMIT that went unanswered leaves its outcome unknown; a read's or a rollback's does not matter,
    // but a COMMIT failed by no answer of the server means the connection is gone.
    if (threw) throw failures[0];
    const commit = outcomes[outcomes.length - 1];
    if (kind !== 'write') {
      if (commit.status === 'rejected' && !(commit.reason instanceof postgres.PostgresError)) onLost();
      throw failures[0];
    }
    const failure = transactionFailure(end, commit.status === 'rejected', failures);
    if (failure instanceof CommitOutcomeUnknown) onLost();
    throw failure;
  }
  return (outcomes[outcomes.length - 2] as PromiseFulfilledResult<T>).value;
}

/** What readThenWrite's read decided: a statement to send with COMMIT, or an answer that needs no write. */
export type WriteDecision<T> = { write: (tx: Tx) => Promise<T> } | { answer: T };

/**
 * A scoped transaction of two round trips: `read` runs first, its queries sent with BEGIN and the scope (it may lock
 * the rows its decision rests on, `FOR NO KEY UPDATE`); then the one statement it decided on is sent with COMMIT.
 * For a change that must be checked against rows under a lock, where inScope needs a round trip per query and one
 * more for COMMIT, holding the lock over all of them. `read` throwing (a refused request) rolls back. As in
 * scopedStatement, a COMMIT that got no answer throws CommitOutcomeUnknown.
 */
export async function readThenWrite<T>(
  sql: Sql,
  scope: Scope,
  read: (tx: Tx) => Promise<WriteDecision<T>>,
): Promise<T> {
  const connection = await sql.reserve();
  const tx = connection as unknown as Tx;
  let lost = false;
  try {
    let decision: WriteDecision<T>;
    try {
      const opened = Promise.all([tx`BEGIN`, tx`SELECT set_config('app.scope', ${scopeSetting([scope])}, true)`]);
      opened.catch(() => {});
      decision = await read(tx);
      await opened;
    } catch (error) {
      await tx`ROLLBACK`.catch(() => {});
      throw error;
    }
    if ('answer' in decision) {
      await tx`COMMIT`;
      return decision.answer;
    }
    return await withCommit(tx, [], decision.write, 'write', () => (lost = true));
  } finally {
    if (!lost) connection.release();
  }
}
