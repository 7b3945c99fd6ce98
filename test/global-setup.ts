import type { TestProject } from 'vitest/node';
import { connect } from '../src/db/index.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { loadConfig } from '../src/config.js';

// One database per run, so runs started side by side never disturb each other.
const TEST_DATABASE = `payforward_test_${process.pid}`;
// Migrated once; the run's database and every test's database of its own are copies of it (CREATE DATABASE …
// TEMPLATE), which takes a fraction of migrating each one.
const TEMPLATE_DATABASE = `${TEST_DATABASE}_template`;

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
    /** The migrated database nobody connects to, to copy (see ownDatabase in test/helpers.ts). */
    templateDatabase: string;
  }
}

let embedded: EmbeddedDatabase | undefined;
let serverUrlForTeardown: string | undefined;

/**
 * Every run gets a freshly created database, on the server named by DATABASE_URL or, without it,
 * on an embedded PostgreSQL kept in .data/test-pg, and migrates it once for all test files.
 */
export async function setup(project: TestProject) {
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    embedded = await startEmbeddedPostgres(
      '.data/test',
      Number(process.env.TEST_EMBEDDED_PG_PORT ?? 54330),
      'postgres',
    );
    serverUrl = embedded.url;
  }
  serverUrlForTeardown = serverUrl;
  const server = connect(serverUrl, { max: 1 });
  for (const database of [TEST_DATABASE, TEMPLATE_DATABASE])
    await server.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await server.unsafe(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
  const templateUrl = new URL(serverUrl);
  templateUrl.pathname = `/${TEMPLATE_DATABASE}`;
  const template = connect(templateUrl.toString(), { max: 1 });
  await migrate(template, loadConfig({}));
  // A database is copied only while nobody is connected to it.
  await template.end();
  await server.unsafe(`CREATE DATABASE ${TEST_DATABASE} TEMPLATE ${TEMPLATE_DATABASE}`);
  await server.end();
  const url = new URL(serverUrl);
  url.pathname = `/${TEST_DATABASE}`;
  project.provide('adminDatabaseUrl', url.toString());
  project.provide('templateDatabase', TEMPLATE_DATABASE);
}

export async function teardown() {
  if (serverUrlForTeardown) {
    const server = connect(serverUrlForTeardown, { max: 1 });
    for (const database of [TEST_DATABASE, TEMPLATE_DATABASE])
      await server.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
    await server.end();
  }
  await embedded?.stop();
}
