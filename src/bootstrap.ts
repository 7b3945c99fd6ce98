import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import type { Config } from './config.js';
import { appDatabaseUrl, connect, workerDatabaseUrl } from './db/index.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { registerEventRelay } from './workers/outbox-relay.js';
import type { Secrets } from './platform.js';
import { randomToken } from './lib/ids.js';
import { OPERATOR_KEY_PREFIX } from './http/auth.js';

interface DemoTenant {
  tenantId: string;
  testSecretKey: string;
  databaseUrl: string;
  /** When its history was seeded (see seedDemoHistory): once per data folder, not at every start. */
  seededAt?: string;
}

interface LocalSecrets {
  platformApiKey: string;
  vaultKek: string;
  vaultFingerprintKey?: string;
  jwtSecret: string;
  metricsToken?: string;
  auditSigningKey?: string;
  demo?: DemoTenant;
}

function secretsFile(config: Config) {
  return join(config.dataDir, 'secrets.json');
}

// For the embedded default the secrets a production deployment passes in the environment are
// generated once and kept in the data folder, readable by its owner only.
function generatedSecrets(): LocalSecrets {
  return {
    platformApiKey: `${OPERATOR_KEY_PREFIX}platform_${randomToken(24)}`,
    // Dated (see parseKekEntry): the access review reports the KEK's age from it.
    vaultKek: `${randomBytes(32).toString('base64')}@${new Date().toISOString()}`,
    vaultFingerprintKey: randomBytes(32).toString('base64'),
    jwtSecret: randomToken(32),
    metricsToken: randomToken(32),
    auditSigningKey: randomBytes(32).toString('base64'),
  };
}

function localSecrets(config: Config): LocalSecrets {
  const file = secretsFile(config);
  const stored = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Partial<LocalSecrets>) : undefined;
  // An operator key from before the op_ prefix (pk_platform_…) is no longer accepted: it is replaced, and the new
  // one is printed at start like any generated secret.
  if (stored?.platformApiKey && !stored.platformApiKey.startsWith(OPERATOR_KEY_PREFIX)) delete stored.platformApiKey;
  // A stored secret is never replaced; a data folder made before a secret existed gets it now.
  const secrets = { ...generatedSecrets(), ...stored } as LocalSecrets;
  if (!stored || Object.keys(secrets).some((name) => !(name in stored))) {
    mkdirSync(config.dataDir, { recursive: true });
    saveLocalSecrets(config, secrets);
  }
  return secrets;
}

function saveLocalSecrets(config: Config, secrets: LocalSecrets) {
  writeFileSync(secretsFile(config), JSON.stringify(secrets, null, 2), { mode: 0o600 });
}

export function resolveSecrets(config: Config): Secrets {
  const needLocal =
    !config.platformApiKey ||
    !config.vaultKek ||
    !config.vaultFingerprintKey ||
    !config.jwtSecret ||
    !config.auditSigningKey;
  const local = needLocal ? localSecrets(config) : undefined;
  return {
    platformApiKey: config.platformApiKey ?? local!.platformApiKey,
    vaultKeks: (config.vaultKek ?? local!.vaultKek)
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    vaultFingerprintKey: config.vaultFingerprintKey ?? local!.vaultFingerprintKey!,
    jwtSecret: config.jwtSecret ?? local!.jwtSecret,
    auditSigningKey: config.auditSigningKey ?? local!.auditSigningKey!,
    // Optional: production never reads the data folder (every other secret must be in its
    // environment), so there /metrics on the API port opens only with METRICS_TOKEN set.
    metricsToken: config.metricsToken ?? local?.metricsToken,
  };
}

/**
 * Every secret a production deployment must pass in the environment, and what it must look like.
 * `key`: base64 of exactly 32 bytes (a comma-separated list for `keys`, every entry checked);
 * `text`: any string, judged by `strongText`.
 */
export const PRODUCTION_SECRETS: { name: string; kind: 'key' | 'keys' | 'text' }[] = [
  { name: 'PLATFORM_API_KEY', kind: 'text' },
  { name: 'VAULT_KEK', kind: 'keys' },
  { name: 'VAULT_FINGERPRINT_KEY', kind: 'key' },
  { name: 'JWT_SECRET', kind: 'text' },
  { name: 'AUDIT_SIGNING_KEY', kind: 'key' },
  { name: 'APP_DB_PASSWORD', kind: 'text' },
  { name: 'WORKER_DB_PASSWORD', kind: 'text' },
];

const MIN_ENTROPY_BITS = 256;

/** base64 or base64url text with letters of both cases: written in a 64-symbol alphabet, whatever classes it shows. */
const BASE64_TEXT = /^(?=.*[a-z])(?=.*[A-Z])(?:[A-Za-z0-9+/]+=*|[A-Za-z0-9_-]+)$/;

/**
 * Whether a free-form secret plausibly holds 32 bytes of entropy. Three tests, all required:
 * its length times log2 of the alphabet its character classes span (lower, upper, digits, other
 * printable; for base64 text, at least the encoding's 64 symbols) is at least 256 bits; it has at least 10 distinct
 * characters; and it does not compress (raw deflate keeps at least 3/4 of its length), which catches repeated words
 * and patterns. 32 random bytes in base64url (43 characters) or hex (64) pass; a password does not. By classes alone,
 * one base64url encoding of random bytes in about 7,600 has neither a digit nor a `-` or `_` (52 symbols: 245 bits)
 * and was refused.
 */
export function strongText(secret: string): boolean {
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/];
  const shown = [26, 26, 10, 33].reduce((sum, size, i) => sum + (classes[i].test(secret) ? size : 0), 0);
  const alphabet = BASE64_TEXT.test(secret) ? Math.max(shown, 64) : shown;
  const bits = secret.length * Math.log2(Math.max(alphabet, 1));
  return bits >= MIN_ENTROPY_BITS && new Set(secret).size >= 10 && incompressible(Buffer.from(secret));
}

/** A key: base64 decoding to exactly 32 bytes that look random (varied and incompressible). */
export function strongKey(encoded: string): boolean {
  const key = Buffer.from(encoded, 'base64');
  return key.length === 32 && new Set(key).size >= 16 && incompressible(key);
}

function incompressible(bytes: Buffer): boolean {
  return deflateRawSync(bytes).length * 4 >= bytes.length * 3;
}

/**
 * With NODE_ENV=production nothing may come from the data folder or a default: every secret is
 * read from the environment and must be strong. Returns what is wrong, naming each variable.
 */
export function productionSecretProblems(env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  for (const { name, kind } of PRODUCTION_SECRETS) {
    const value = env[name];
    if (!value) {
      problems.push(`${name} is not set`);
      continue;
    }
    const weak =
      kind === 'text'
        ? !strongText(value)
        : !(kind === 'keys' ? value.split(',').map((k) => k.split('@')[0]) : [value])
            .map((k) => k.trim())
            .every(strongKey);
    if (weak)
      problems.push(
        kind === 'text'
          ? `${name} is too weak: use at least 32 random bytes, e.g. \`openssl rand -base64 32\``
          : `${name} must be 32 random bytes, base64-encoded (\`openssl rand -base64 32\`)`,
      );
  }
  return problems;
}

export interface Database {
  adminUrl: string;
  appUrl: string;
  workerUrl: string;
  embedded?: EmbeddedDatabase;
}

/** Uses DATABASE_URL when set, otherwise starts the embedded PostgreSQL; then migrates. */
export async function prepareDatabase(config: Config, log: (line: string) => void = () => {}): Promise<Database> {
  let embedded: EmbeddedDatabase | undefined;
  let adminUrl = config.databaseUrl;
  if (!adminUrl) {
    log(`No DATABASE_URL: the embedded PostgreSQL in ${join(config.dataDir, 'pg')} on port ${config.embeddedPgPort}`);
    embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort);
    adminUrl = embedded.url;
  }
  const admin = connect(adminUrl, { max: 1, applicationName: 'payforward-migrate' });
  try {
    const applied = await migrate(admin, config);
    if (applied.length) log(`Applied migrations: ${applied.join(', ')}`);
    // Before any API process takes a request: its events are queued for the relay even if the worker starts later.
    if (config.amqpUrl) await registerEventRelay(admin);
  } finally {
    await admin.end();
  }
  return {
    adminUrl,
    appUrl: appDatabaseUrl(adminUrl, config),
    workerUrl: workerDatabaseUrl(adminUrl, config),
    embedded,
  };
}

/** On first start, a demo tenant so the quick start works; its test key is kept locally to print. */
export async function ensureDemoTenant(
  config: Config,
  database: Database,
  createTenant: (name: string) => Promise<{ id: string; secret_keys?: { test: { secret?: string } } }>,
): Promise<DemoTenant | undefined> {
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

/** Records in the data folder that the demo tenant's history is in, so that the next start does not seed it again. */
export function markDemoSeeded(config: Config, tenantId: string) {
  const local = localSecrets(config);
  if (local.demo?.tenantId !== tenantId) return;
  local.demo.seededAt = new Date().toISOString();
  saveLocalSecrets(config, local);
}
