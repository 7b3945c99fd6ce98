import type { TestProject } from 'vitest/node';
import { connect } from '../src/db/index.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { loadConfig } from '../src/config.js';

// One database per run, so runs started side by side never disturb each other.
const TEST_DATABASE = `payforward_test_${process.pid}`;

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
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
  await server.unsafe(`DROP DATABASE IF EXISTS ${TEST_DATABASE} WITH (FORCE)`);
  await server.unsafe(`CREATE DATABASE ${TEST_DATABASE}`);
  await server.end();
  const url = new URL(serverUrl);
  url.pathname = `/${TEST_DATABASE}`;
  const admin = connect(url.toString(), { max: 1 });
  const config = loadConfig({});
  await migrate(admin, config);
  await admin.end();
  project.provide('adminDatabaseUrl', url.toString());
}

export async function teardown() {
  if (serverUrlForTeardown) {
    const server = connect(serverUrlForTeardown, { max: 1 });
    await server.unsafe(`DROP DATABASE IF EXISTS ${TEST_DATABASE} WITH (FORCE)`).catch(() => {});
    await server.end();
  }
  await embedded?.stop();
}
