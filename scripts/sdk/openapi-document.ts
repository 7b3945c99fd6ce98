import { randomBytes } from 'node:crypto';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createPlatform } from '../../src/platform.js';

/** Where the SDK's committed document says the API is; clients pass their own `baseUrl`. */
export const SDK_DOCUMENT_SERVER = 'https://api.payforward.example';

/**
 * The OpenAPI document `/openapi.json` serves, built from the routes without a database, Redis or a listening
 * server, so `npm run sdk:build` works from a fresh clone: the app is assembled and made ready (the document is
 * complete only then) but never listens, and postgres.js connects only at a first query, which never comes. The
 * three notification listeners the app starts when ready would wait for a database: here they do not start.
 */
export async function offlineOpenApiDocument(): Promise<Record<string, unknown>> {
  const config = loadConfig({ PUBLIC_URL: SDK_DOCUMENT_SERVER, LOG_LEVEL: 'silent', SEED_DEMO_TENANT: 'false' });
  const unused = randomBytes(32).toString('base64');
  const platform = createPlatform(
    config,
    'postgres://offline@127.0.0.1:1/offline',
    {
      platformApiKey: 'op_unused',
      vaultKeks: [unused],
      vaultFingerprintKey: unused,
      jwtSecret: 'unused-unused-unused-unused',
      auditSigningKey: unused,
    },
    { processMetrics: false },
  );
  platform.authenticator.listen = async () => {};
  platform.fraud.listen = async () => {};
  platform.eventFeed.start = async () => {};
  try {
    const app = await buildApp(platform, { logLevel: 'silent' });
    await app.ready();
    // Without the per-operation code samples /openapi.json adds for the docs page: they carry no type.
    const document = structuredClone(app.swagger()) as Record<string, unknown>;
    await app.close();
    return document;
  } finally {
    await platform.close();
  }
}
