import postgres from 'postgres';
import type { Config } from '../config.js';

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
    connection: { application_name: options.applicationName ?? 'payforward' },
    types: { bigint: bigintAsNumber },
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

/** Runs fn in a transaction that row-level security limits to the given scopes. */
export function inScope<T>(sql: Sql, scopes: Scope | Scope[], fn: (tx: Tx) => Promise<T>): Promise<T> {
  const setting = scopeSetting(Array.isArray(scopes) ? scopes : [scopes]);
  return sql.begin(async (tx) => {
    await tx`SELECT set_config('app.scope', ${setting}, true)`;
    return fn(tx);
  }) as Promise<T>;
}
