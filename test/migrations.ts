import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { connect, type Sql } from '../src/db/index.js';

const MIGRATIONS = join(import.meta.dirname, '..', 'src', 'db', 'migrations');

/**
 * A database of its own on the run's server, named after the run's database and `suffix`: empty, or a copy of
 * `template` (a database nobody is connected to).
 */
export async function emptyDatabase(
  suffix: string,
  template?: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const runUrl = new URL(inject('adminDatabaseUrl'));
  const name = `${runUrl.pathname.slice(1)}_${suffix}`;
  const server = connect(runUrl.toString(), { max: 1 });
  await server.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await server.unsafe(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
  const url = new URL(runUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await server.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await server.end();
    },
  };
}

/**
 * A database of its own built as it stood after migration `last` (a file name), for tests of a migration that
 * converts data: the test writes rows in the old shape, then runs `migrate` for the rest.
 */
export async function databaseAt(suffix: string, last: string): Promise<{ db: Sql; drop(): Promise<void> }> {
  const database = await emptyDatabase(suffix);
  const db = connect(database.url, { max: 1 });
  await db`CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
  const files = readdirSync(MIGRATIONS)
    .filter((file) => file.endsWith('.sql') && file <= last)
    .sort();
  if (files.at(-1) !== last) throw new Error(`no migration ${last}`);
  await db.begin(async (tx) => {
    for (const file of files) {
      await tx.unsafe(readFileSync(join(MIGRATIONS, file), 'utf8'));
      await tx`INSERT INTO schema_migrations (name) VALUES (${file})`;
    }
  });
  return {
    db,
    async drop() {
      await db.end();
      await database.drop();
    },
  };
}
