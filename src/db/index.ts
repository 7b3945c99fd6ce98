import postgres from 'postgres';
import type { Config } from '../config.js';
import { CommitOutcomeUnknown, transactionFailure } from './commit-outcome.js';

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

export function connect(url: string, options: { max?: number; applicationName?: string } = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 10,
    onnotice: () => {},
    types: { bigint: bigintAsNumber },
    // Batch statements are prepared once per connection, but their cost depends on each batch's
    // arrays: a cached generic plan, made for no particular batch, drifted into table scans as
    // tables grew, so every execution is planned for its own parameters.
    connection: { application_name: options.applicationName ?? 'payforward', plan_cache_mode: 'force_custom_plan' },
  }) as unknown as Sql;
}

/** The application's connection string: same server and database, the non-privileged role. */
export function appDatabaseUrl(adminUrl: string, config: Pick<Config, 'appDbRole' | 'appDbPassword'>): string {
  const url = new URL(adminUrl);
  url.username = config.appDbRole;
  url.password = config.appDbPassword;
  return url.toString();
}

export function scopeSetting(scopes: Scope[]): string {
  return [...new Set(scopes.map((s) => `${s.tenantId}:${s.livemode ? 't' : 'f'}`))].join(',');
}

/**
 * Runs fn in a transaction that row-level security limits to the given scopes. BEGIN and the
 * scope are sent with fn's first query in one round trip (postgres.js pipelines the queries of a
 * reserved connection); only COMMIT waits for a second.
 */
export async function inScope<T>(sql: Sql, scopes: Scope | Scope[], fn: (tx: Tx) => Promise<T>): Promise<T> {
  const setting = scopeSetting(Array.isArray(scopes) ? scopes : [scopes]);
  const connection = await sql.reserve();
  const tx = connection as unknown as Tx;
  const opened = Promise.all([tx`BEGIN`, tx`SELECT set_config('app.scope', ${setting}, true)`]);
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
export async function scopedStatement<T>(sql: Sql, scopes: Scope[], statement: (tx: Tx) => Promise<T>): Promise<T> {
  const connection = await sql.reserve();
  const tx = connection as unknown as Tx;
  let lost = false;
  try {
    const commitQuery = tx`COMMIT`;
    const [begin, scope, result, commit] = await Promise.allSettled([
      tx`BEGIN`,
      tx`SELECT set_config('app.scope', ${scopeSetting(scopes)}, true), set_config('plan_cache_mode', 'force_generic_plan', true),
        set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`,
      statement(tx),
      commitQuery,
    ]);
    const failures = [begin, scope, result, commit].flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
    if (failures.length) {
      const failure = transactionFailure(commitQuery, commit.status === 'rejected', failures);
      lost = failure instanceof CommitOutcomeUnknown;
      throw failure;
    }
    return (result as PromiseFulfilledResult<T>).value;
  } finally {
    // A lost connection is in the pool's closed list already, to be reconnected on demand; releasing
    // it would list it as open without a socket (porsager/postgres#1208).
    if (!lost) connection.release();
  }
}
