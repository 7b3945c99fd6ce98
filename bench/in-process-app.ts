import { randomBytes } from 'node:crypto';
import { buildApp } from '../src/app.js';
import type { Config } from '../src/config.js';
import { appDatabaseUrl, workerDatabaseUrl } from '../src/db/index.js';
import { createPlatform } from '../src/platform.js';

/**
 * The platform and its app in the bench's own process, on a migrated database (`adminUrl`, a superuser), with
 * secrets made up for the run: for benches that drive the app with `inject` or run its workers beside it.
 */
export async function inProcessApp(adminUrl: string, config: Config) {
  const platformKey = 'op_platform_bench_' + randomBytes(8).toString('hex');
  const platform = createPlatform(
    config,
    appDatabaseUrl(adminUrl, config),
    {
      platformApiKey: platformKey,
      vaultKeks: [randomBytes(32).toString('base64')],
      vaultFingerprintKey: randomBytes(32).toString('base64'),
      jwtSecret: randomBytes(24).toString('hex'),
      auditSigningKey: randomBytes(32).toString('base64'),
    },
    { processMetrics: false, workerDatabaseUrl: workerDatabaseUrl(adminUrl, config) },
  );
  const app = await buildApp(platform);
  await app.ready();
  return { platform, app, platformKey };
}
