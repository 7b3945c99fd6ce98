import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { expect, inject } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { buildApp, type BuildOptions } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { appDatabaseUrl, connect, workerDatabaseUrl, type Sql } from '../src/db/index.js';
import { createPlatform, type Platform } from '../src/platform.js';
import type { Clock } from '../src/lib/time.js';
import { freePort } from './process.js';
import { emptyDatabase } from './migrations.js';

export const PLATFORM_KEY = 'op_platform_test_0123456789abcdef';
const TEST_KEK = randomBytes(32).toString('base64');
const TEST_FINGERPRINT_KEY = randomBytes(32).toString('base64');
export const TEST_AUDIT_SIGNING_KEY = randomBytes(32).toString('base64');

/**
 * The settings of an API server process (`startServer('api', …)`) on `databaseUrl`: a free port, PLATFORM_KEY, vault
 * and session secrets of its own, no demo tenant, warnings only.
 */
export async function apiServerEnv(databaseUrl: string, dataDir: string): Promise<Record<string, string>> {
  return {
    DATABASE_URL: databaseUrl,
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    PLATFORM_API_KEY: PLATFORM_KEY,
    VAULT_KEK: randomBytes(32).toString('base64'),
    VAULT_FINGERPRINT_KEY: randomBytes(32).toString('base64'),
    JWT_SECRET: randomBytes(32).toString('base64'),
    SEED_DEMO_TENANT: 'false',
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
  };
}

export interface TestApp {
  app: FastifyInstance;
  platform: Platform;
  config: Config;
  /** Every log line the app wrote, as raw JSON text. */
  logs: string[];
  /** A superuser connection for assertions that must see past row-level security. */
  admin: Sql;
  /** The superuser URL of the app's database, for child processes run against it. */
  adminUrl: string;
  close(): Promise<void>;
}

/**
 * The time key expiry and rate-limit windows are judged by, moved by the test instead of waited
 * for. It follows the real clock (plus whatever the test advanced it by) until frozen.
 */
export class TestClock {
  private offset = 0;
  private frozenAt: number | undefined;
  readonly now = () => this.frozenAt ?? Date.now() + this.offset;
  advance(ms: number) {
    if (this.frozenAt === undefined) this.offset += ms;
    else this.frozenAt += ms;
  }
  freeze(at: number) {
    this.frozenAt = at;
  }
  /** Follows the real clock again, keeping the offset. */
  thaw() {
    this.frozenAt = undefined;
  }
}

/** Boots the real app (real PostgreSQL, and Redis/RabbitMQ when their URLs are set). */
export async function bootApp(
  env: Record<string, string> = {},
  adminUrl = inject('adminDatabaseUrl'),
  {
    clock,
    now,
    ...buildOptions
  }: Pick<BuildOptions, 'beforeRoutes' | 'extraRoutes'> & { clock?: TestClock; now?: Clock } = {},
): Promise<TestApp> {
  const config = loadConfig({
    RATE_LIMIT_PER_KEY: '100000',
    RATE_LIMIT_PER_TENANT: '100000',
    // Every injected request comes from 127.0.0.1: the per-address limits get tested on their own.
    RATE_LIMIT_PER_ADDRESS: '1000000',
    AUTH_FAILURES_PER_ADDRESS: '1000000',
    PAYMENT_METHOD_RATE_LIMIT_PER_KEY: '100000',
    PAYMENT_METHOD_RATE_LIMIT_PER_TENANT: '100000',
    LOG_LEVEL: 'info',
    PUBLIC_URL: 'http://127.0.0.1:4000',
    SEED_DEMO_TENANT: 'false',
    DB_POOL_SIZE: '6',
    ...env,
  });
  const platform = createPlatform(
    config,
    appDatabaseUrl(adminUrl, config),
    {
      platformApiKey: PLATFORM_KEY,
      vaultKeks: (env.VAULT_KEK ?? TEST_KEK).split(','),
      vaultFingerprintKey: TEST_FINGERPRINT_KEY,
      jwtSecret: 'test-jwt-secret-0123456789',
      auditSigningKey: TEST_AUDIT_SIGNING_KEY,
    },
    // Tests drive the worker passes directly, so the platform holds the worker role's pool too.
    { processMetrics: false, clock: clock?.now, workerDatabaseUrl: workerDatabaseUrl(adminUrl, config), now },
  );
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const app = await buildApp(platform, { logStream, ...buildOptions }).catch(async (error: unknown) => {
    await platform.close();
    throw error;
  });
  await app.ready();
  const admin = connect(adminUrl, { max: 2 });
  return {
    app,
    platform,
    config,
    logs,
    admin,
    adminUrl,
    async close() {
      await app.close();
      await platform.close();
      await admin.end();
    },
  };
}

export interface TestTenant {
  id: string;
  testKey: string;
  liveKey: string;
  testKeyId: string;
  liveKeyId: string;
}

export async function createTenant(app: FastifyInstance, name = 'Test tenant'): Promise<TestTenant> {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/tenants',
    headers: { authorization: `Bearer ${PLATFORM_KEY}` },
    payload: { name },
  });
  if (response.statusCode !== 200) throw new Error(`tenant creation failed: ${response.body}`);
  const tenant = response.json();
  return {
    id: tenant.id,
    testKey: tenant.secret_keys.test.secret,
    liveKey: tenant.secret_keys.live.secret,
    testKeyId: tenant.secret_keys.test.id,
    liveKeyId: tenant.secret_keys.live.id,
  };
}

/** A test file's usual start: the app booted with default settings, then a tenant of each name, created in order. */
export async function bootWithTenants(...names: string[]): Promise<[TestApp, ...TestTenant[]]> {
  const t = await bootApp();
  const tenants: TestTenant[] = [];
  for (const name of names) tenants.push(await createTenant(t.app, name));
  return [t, ...tenants];
}

/**
 * A migrated database of its own, for tests whose background workers act on every tenant in the
 * database they run on and so would disturb the other test files sharing the run's database: a copy
 * of the run's template, migrated once in test/global-setup.ts (a copy takes a fraction of migrating).
 */
function ownDatabase(suffix: string): Promise<{ url: string; drop(): Promise<void> }> {
  return emptyDatabase(suffix, inject('templateDatabase'));
}

/** bootApp on a database of its own (see ownDatabase), dropped when the app closes. */
export async function bootAppOnOwnDatabase(
  suffix: string,
  env: Record<string, string> = {},
  options: Parameters<typeof bootApp>[2] = {},
): Promise<TestApp> {
  const database = await ownDatabase(suffix);
  const t = await bootApp(env, database.url, options);
  return {
    ...t,
    async close() {
      await t.close();
      await database.drop();
    },
  };
}

/**
 * Runs `body` in a transaction of `sql`, then rolls it back (a sentinel error thrown after it) and returns what `body`
 * returned: for what is measured inside a transaction (pg_stat_xact_*, index pages) and must leave nothing behind.
 */
export async function rolledBack<T>(sql: Sql, body: (tx: Sql) => Promise<T>): Promise<T> {
  const sentinel = new Error('rolled back');
  let result: T | undefined;
  const inTransaction = sql.begin(async (tx) => {
    result = await body(tx as unknown as Sql);
    throw sentinel;
  });
  await expect(inTransaction).rejects.toBe(sentinel);
  return result as T;
}

/** Asserts a 200 and returns the JSON body. */
export async function ok(response: { statusCode: number; body: string; json(): any }) {
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

/** app.inject with a bearer key and JSON body. */
export function call(
  app: FastifyInstance,
  key: string,
  method: InjectOptions['method'],
  url: string,
  payload?: unknown,
  headers: Record<string, string> = {},
) {
  return app.inject({
    method,
    url,
    headers: {
      authorization: `Bearer ${key}`,
      ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
  });
}

/** Registers a bank account and verifies it with the test micro-deposits: payouts go only to such accounts. */
export async function verifiedBankAccount(
  app: FastifyInstance,
  key: string,
  { currency = 'usd', accountNumber = '000123456789', makeDefault = true } = {},
): Promise<{ id: string }> {
  const account = await ok(
    await call(app, key, 'POST', '/v1/bank_accounts', {
      account_number: accountNumber,
      routing_number: '110000000',
      country: 'US',
      currency,
      default_for_currency: makeDefault,
    }),
  );
  return ok(await call(app, key, 'POST', `/v1/bank_accounts/${account.id}/verify`, { amounts: [32, 45] }));
}

export const card = (number: string, extra: Record<string, unknown> = {}) => ({
  type: 'card',
  card: { number, exp_month: 12, exp_year: new Date().getUTCFullYear() + 3, cvc: '123', ...extra },
});

/** A valid number that is none of the documented test cards: live mode refuses those (test_mode_live_card). */
export const LIVE_CARD = '4917610000000000';

export const TEST_CARDS = {
  visa: '4242424242424242',
  declined: '4000000000000002',
  insufficientFunds: '4000000000009995',
  incorrectCvc: '4000000000000127',
  expired: '4000000000000069',
  processingError: '4000000000000119',
  threeDSecure: '4000000000003220',
  disputed: '4000000000000259',
  fraud: '4100000000000019',
  international: '4000008260000000',
  debit: '4000056655665556',
};

/** Asserts an error answer: its status and the fields of its error envelope. */
export function expectError(
  response: { statusCode: number; body: string; json(): any },
  status: number,
  fields: Record<string, unknown>,
) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.json().error).toMatchObject(fields);
}

/** Creates a customer (POST /v1/customers) and returns its id. */
export async function newCustomer(app: FastifyInstance, key: string, body: Record<string, unknown> = {}) {
  return (await ok(await call(app, key, 'POST', '/v1/customers', body))).id as string;
}

/** A confirmed card payment (USD and the Visa test card unless `extra`/`number` say otherwise) that must answer 200. */
export async function payByCard(
  app: FastifyInstance,
  key: string,
  amount: number,
  extra: Record<string, unknown> = {},
  number: string = TEST_CARDS.visa,
) {
  return ok(
    await call(app, key, 'POST', '/v1/payments', {
      amount,
      currency: 'usd',
      payment_method: card(number),
      confirm: true,
      ...extra,
    }),
  );
}

/**
 * Turns off the tenant mode's default card-testing rule (five payments of at most 5.00 on one card within an hour are
 * blocked), for tests that pay tiny amounts with one test card on purpose and are about something else.
 */
export async function withoutCardTestingRule(app: FastifyInstance, key: string) {
  const rules = await ok(await call(app, key, 'GET', '/v1/fraud/rules'));
  const rule = (rules.data as { id: string; name: string }[]).find((r) => r.name === 'Block card testing');
  if (!rule) throw new Error('the default card-testing rule is missing');
  await ok(await call(app, key, 'POST', `/v1/fraud/rules/${rule.id}`, { enabled: false }));
}
