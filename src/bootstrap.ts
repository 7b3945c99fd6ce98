import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from './config.js';
import { appDatabaseUrl, connect } from './db/index.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import type { Secrets } from './platform.js';
import { randomToken } from './lib/ids.js';

interface LocalSecrets {
  platformApiKey: string;
  vaultKek: string;
  vaultFingerprintKey?: string;
  jwtSecret: string;
  demo?: { tenantId: string; testSecretKey: string; databaseUrl: string };
}

function secretsFile(config: Config) {
  return join(config.dataDir, 'secrets.json');
}

// For the embedded default the secrets a production deployment passes in the environment are
// generated once and kept in the data folder, readable by its owner only.
function localSecrets(config: Config): LocalSecrets {
  const file = secretsFile(config);
  if (existsSync(file)) {
    const existing = JSON.parse(readFileSync(file, 'utf8')) as LocalSecrets;
    // Data folders made before the fingerprint key existed get one now.
    if (!existing.vaultFingerprintKey) {
      existing.vaultFingerprintKey = randomBytes(32).toString('base64');
      saveLocalSecrets(config, existing);
    }
    return existing;
  }
  mkdirSync(config.dataDir, { recursive: true });
  const secrets: LocalSecrets = {
    platformApiKey: `pk_platform_${randomToken(24)}`,
    vaultKek: randomBytes(32).toString('base64'),
    vaultFingerprintKey: randomBytes(32).toString('base64'),
    jwtSecret: randomToken(32),
  };
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

function saveLocalSecrets(config: Config, secrets: LocalSecrets) {
  writeFileSync(secretsFile(config), JSON.stringify(secrets, null, 2), { mode: 0o600 });
}

export function resolveSecrets(config: Config): Secrets {
  const needLocal = !config.platformApiKey || !config.vaultKek || !config.vaultFingerprintKey || !config.jwtSecret;
  const local = needLocal ? localSecrets(config) : undefined;
  return {
    platformApiKey: config.platformApiKey ?? local!.platformApiKey,
    vaultKeks: (config.vaultKek ?? local!.vaultKek)
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    vaultFingerprintKey: config.vaultFingerprintKey ?? local!.vaultFingerprintKey!,
    jwtSecret: config.jwtSecret ?? local!.jwtSecret,
  };
}

export interface Database {
  adminUrl: string;
  appUrl: string;
  embedded?: EmbeddedDatabase;
}

/** Uses DATABASE_URL when set, otherwise starts the embedded PostgreSQL; then migrates. */
export async function prepareDatabase(config: Config, log: (line: string) => void = () => {}): Promise<Database> {
  let embedded: EmbeddedDatabase | undefined;
  let adminUrl = config.databaseUrl;
  if (!adminUrl) {
    log(
      `No DATABASE_URL: starting embedded PostgreSQL in ${join(config.dataDir, 'pg')} on port ${config.embeddedPgPort}`,
    );
    embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort);
    adminUrl = embedded.url;
  }
  const admin = connect(adminUrl, { max: 1, applicationName: 'payforward-migrate' });
  try {
    const applied = await migrate(admin, config.appDbRole, config.appDbPassword);
    if (applied.length) log(`Applied migrations: ${applied.join(', ')}`);
  } finally {
    await admin.end();
  }
  return { adminUrl, appUrl: appDatabaseUrl(adminUrl, config), embedded };
}

/** On first start, a demo tenant so the quick start works; its test key is kept locally to print. */
export async function ensureDemoTenant(
  config: Config,
  database: Database,
  createTenant: (name: string) => Promise<{ id: string; secret_keys?: { test: { secret?: string } } }>,
): Promise<{ tenantId: string; testSecretKey: string } | undefined> {
  if (!config.seedDemoTenant) return undefined;
  const local = localSecrets(config);
  const admin = connect(database.adminUrl, { max: 1 });
  try {
    if (local.demo && local.demo.databaseUrl === database.adminUrl) {
      const [exists] = await admin`SELECT 1 FROM tenants WHERE id = ${local.demo.tenantId}`;
      if (exists) return local.demo;
    }
  } finally {
    await admin.end();
  }
  const tenant = await createTenant('Demo tenant');
  local.demo = { tenantId: tenant.id, testSecretKey: tenant.secret_keys!.test.secret!, databaseUrl: database.adminUrl };
  saveLocalSecrets(config, local);
  return local.demo;
}
