/**
 * `npm run bench`: PayForward's write-path benchmark, in one run.
 *
 *   1. a bare fastify process (bench/bare-server.ts) driven with the same load: the baseline;
 *   2. the durable floor (bench/floor-server.ts, scenario floor_create): issue 14's prototype of a payment's durable
 *      write alone (idempotency record, payment, event, three ledger entries, balance; no auth, vault, fraud or
 *      processor), micro-batched as the API batches, in schema `floor` of the bench database; create+confirm is
 *      reported against it at each connection level, as well as against bare fastify;
 *   3. the PayForward API (`node dist/main.js api`, built first) against a fresh database
 *      `payforward_bench` on the local PostgreSQL, driven with create+confirm payments (inline
 *      card, with a unique Idempotency-Key, with a saved pm_ token) and retrieves. Every capture
 *      posts to the ledger; one run spreads the same load over 100 tenants, to compare the hot
 *      pending account of a single tenant with 100 of them;
 *   4. the API process's RSS sampled every 200 ms; CPU of the API, PostgreSQL and the load
 *      generator; commits, WAL syncs, batch sizes and backend wait events per scenario;
 *   5. after the load, the database is checked against what the clients were told, and the
 *      ledger against itself (one balanced charge per payment, balances equal to entries);
 *   6. a table on stdout and bench/results/latest.json; children stopped, database dropped.
 *
 * Environment (all optional):
 *   BENCH_DATABASE_URL         server to use (default postgres://postgres@127.0.0.1:5432/postgres);
 *                              must be a superuser on 127.0.0.1; the run creates and drops payforward_bench
 *   BENCH_CONNECTIONS          connection levels for create+confirm and bare POST (default 50,100,120,200)
 *   BENCH_VARIANT_CONNECTIONS  connections for the idempotency, saved-card and retrieve runs (default 100)
 *   BENCH_DURATION             seconds measured per run (default 15)
 *   BENCH_WARMUP               seconds of unmeasured warm-up before each run (default 3)
 *   BENCH_SCENARIOS            comma list to run a subset: bare_post,bare_get,floor_create,create_confirm,
 *                              create_confirm_fraud_off,create_confirm_100_tenants,create_confirm_idem,
 *                              create_confirm_saved_pm,retrieve,list,list_events,balance,refund
 *                              (list: the newest ten payments, `GET /v1/payments?limit=10`; list_events: the newest ten
 *                              events, `GET /v1/events?limit=10`; balance: `GET /v1/balance`;
 *                              refund: `POST /v1/refunds` of 100 cents over the payments made before it, each with a
 *                              unique Idempotency-Key, checked in the database as the mixed workload's are; each
 *                              alone, as the mixed workload sends them)
 *                              (create_confirm_fraud_off: create_confirm against a second API process on
 *                              the same database with FRAUD_CHECKS=off, in the order off, on, on, off:
 *                              the fraud-on create_confirm is run a second time for it; the report prints
 *                              the mean of the two on runs / the mean of the two off runs per connection
 *                              level, target ≥ 0.9)
 *                              mixed: the seed's headline workload against `node dist/main.js start` (API and workers,
 *                              as `npm start` runs it), once per BENCH_WEB_CONCURRENCY level: 70 % reads (retrieve
 *                              50 %, list 10 %, balance 10 %), 30 % writes (create+confirm 25 %, capture or
 *                              refund 5 %), every write with a unique Idempotency-Key; mean and p99 per class;
 *                              reported as mixed_web<N>
 *   BENCH_MIXED_CONNECTIONS    connections for the mixed workload (default 100)
 *   BENCH_WEB_CONCURRENCY      WEB_CONCURRENCY levels the mixed workload runs at, one server each (default 1,2)
 *   BENCH_PORT                 API port (default 4100; the bare server takes the next free one)
 *   BENCH_CPU_PROF=1           run the API with --cpu-prof; profiles and a summary in bench/results/cpuprof (the mixed
 *                              server's processes: one profile each in bench/results/cpuprof/mixed_web<N>)
 *   BENCH_KEEP_DB=1            keep payforward_bench afterwards (for inspection)
 *   BENCH_DB_NAME              the database to create, use and drop instead of payforward_bench
 *   BENCH_PG_STATEMENTS=1      log every statement of the bench database (log_min_duration_statement = 0 on it alone)
 *                              and rank, per measured run, the statements by PostgreSQL's time (bench/pg-statements.ts:
 *                              pg_stat_statements needs a server restart); the log is read from BENCH_PG_LOG (default
 *                              /var/log/postgresql/postgresql-<major>-main.log). Logging costs the server CPU: profile
 *                              with it, measure without it
 *                              rollups_interleaved: what the analytics rollups cost create+confirm (issue 13's budget:
 *                              5%): one load at the first BENCH_CONNECTIONS level during which the rollup triggers are
 *                              switched on and off every BENCH_ROLLUP_SLICE_SECONDS (default 5), BENCH_ROLLUP_SLICES
 *                              slices (default 24) in adjacent pairs; the share of throughput they take per pair, its
 *                              median and mean with a 95% interval (bench/rollup-interleaved.ts)
 *   BENCH_ANALYTICS_ROLLUPS=off  disable the analytics rollup triggers (analytics_*) on the bench database once
 *                              the API has migrated it: runs with and without compare what the rollups cost
 *                              the payment path (the analytics read them; nothing else does)
 *   BENCH_AMQP_URL             RabbitMQ for the API and the mixed servers (default none): the mixed server's worker
 *                              then relays every event to it, as a deployment with AMQP_URL does
 *   BATCH_MAX_CONCURRENCY, BATCH_MAX_SIZE, DB_POOL_SIZE, PROCESSOR_LATENCY_MS are passed to the API if set.
 */
import autocannon, { type Options, type RequestSpec, type Result } from 'autocannon';
import postgres from 'postgres';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  TICKS_PER_SECOND,
  RssSampler,
  cpuTicks,
  treeCpuTicks,
  freePort,
  machineTicks,
  postgresTicks,
  sleep,
  spawnNode,
  stopChild,
  waitReady,
  type Child,
} from './proc.js';
import { startAnalyticsFolds } from './analytics-fold.js';
import { measureRollupsInterleaved, setRollupTriggers, type InterleavedSummary } from './rollup-interleaved.js';
import { summarizeProfile } from './profile-summary.js';
import { logOffset, readSlice, summarizeStatements, type StatementCost } from './pg-statements.js';
import { reconcilePayments } from './reconcile.js';
import { productionSecrets } from './secrets.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const RESULTS_DIR = join(BENCH_DIR, 'results');
// Its own name per person benchmarking on a shared server: a run drops the database it starts with.
const DB_NAME = process.env.BENCH_DB_NAME || 'payforward_bench';
if (!/^[a-z_][a-z0-9_]{0,62}$/.test(DB_NAME))
  throw new Error(`BENCH_DB_NAME: "${DB_NAME}" is not a plain database name`);
const TARGET = { paymentsPerSecond: 4000, p99Ms: 50, rssMb: 400, fraudOnVsOff: 0.9 };
/** Issue 14: the seed's headline, "10,000+ requests per second, 50 ms average response", with a p99 bound. */
const MIXED_TARGET = { requestsPerSecond: 10_000, meanMs: 50, p99Ms: 150 };
/** Seeded before each mixed run: payments to retrieve and refund, and authorizations to capture. */
const MIXED_SEED = { payments: 2000, authorizations: 1000, refundAmount: 100 };
/**
 * create+confirm at 100 connections as a fraction of bare fastify, in the last full run before
 * captures posted to the ledger (platform core, commit 3da367e: 4,008/s vs 38,500/s). Ledger
 * posting may cost at most 20% of it.
 */
const CORE_RATIO_AT_100 = 0.104;
const LEDGER_BUDGET = 0.2;

// ---------------------------------------------------------------------------------------------
// Configuration

const env = process.env;
const list = (raw: string) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const positive = (name: string, fallback: number) => {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
};
const ALL_SCENARIOS = [
  'bare_post',
  'bare_get',
  'floor_create',
  'floor_retrieve',
  'create_confirm',
  'create_confirm_fraud_off',
  'create_confirm_100_tenants',
  'create_confirm_idem',
  'create_confirm_saved_pm',
  'retrieve',
  'list',
  'list_events',
  'balance',
  'refund',
  'mixed',
  'rollups_interleaved',
] as const;
type ScenarioName = (typeof ALL_SCENARIOS)[number];

const config = {
  serverUrl: env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
  connections: list(env.BENCH_CONNECTIONS ?? '50,100,120,200').map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_CONNECTIONS: "${c}" is not a connection count`);
    return n;
  }),
  variantConnections: positive('BENCH_VARIANT_CONNECTIONS', 100),
  mixedConnections: positive('BENCH_MIXED_CONNECTIONS', 100),
  webConcurrency: list(env.BENCH_WEB_CONCURRENCY ?? '1,2').map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_WEB_CONCURRENCY: "${c}" is not a process count`);
    return n;
  }),
  duration: positive('BENCH_DURATION', 15),
  warmup: env.BENCH_WARMUP === '0' ? 0 : positive('BENCH_WARMUP', 3),
  scenarios: new Set<ScenarioName>(
    env.BENCH_SCENARIOS
      ? list(env.BENCH_SCENARIOS).map((s) => {
          if (!(ALL_SCENARIOS as readonly string[]).includes(s))
            throw new Error(`BENCH_SCENARIOS: unknown scenario "${s}" (known: ${ALL_SCENARIOS.join(', ')})`);
          return s as ScenarioName;
        })
      : ALL_SCENARIOS,
  ),
  apiPort: positive('BENCH_PORT', 4100),
  cpuProf: env.BENCH_CPU_PROF === '1',
  keepDb: env.BENCH_KEEP_DB === '1',
  pgStatements: env.BENCH_PG_STATEMENTS === '1',
  pgLog: env.BENCH_PG_LOG,
  amqpUrl: env.BENCH_AMQP_URL ?? '',
  rollupsOff: env.BENCH_ANALYTICS_ROLLUPS === 'off',
  rollupSlices: positive('BENCH_ROLLUP_SLICES', 24),
  rollupSliceSeconds: positive('BENCH_ROLLUP_SLICE_SECONDS', 5),
  passThrough: Object.fromEntries(
    ['BATCH_MAX_CONCURRENCY', 'BATCH_MAX_SIZE', 'DB_POOL_SIZE', 'PROCESSOR_LATENCY_MS']
      .filter((k) => env[k])
      .map((k) => [k, env[k]!]),
  ),
};

function localOnly(url: URL) {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1', ''].includes(host)) {
    throw new Error(`BENCH_DATABASE_URL must point at this machine (127.0.0.1); got host "${url.hostname}"`);
  }
}

const serverUrl = new URL(config.serverUrl);
localOnly(serverUrl);
const benchDbUrl = new URL(config.serverUrl);
benchDbUrl.pathname = `/${DB_NAME}`;

// ---------------------------------------------------------------------------------------------
// Results

interface Diagnostics {
  /** `other` is machine busy time not accounted to the three: other processes sharing the machine. */
  cpu_cores: {
    server: number;
    postgres: number;
    postgres_bench_db: number;
    load_generator: number;
    other: number;
    machine_busy_pct: number;
  };
  /** CPU milliseconds spent per completed request by the server process and by this database's PostgreSQL backends. */
  cpu_ms_per_request: { server: number; postgres_bench_db: number };
  /** WAL figures come from pg_stat_wal, which is cluster-wide: other databases' writes count too. */
  db?: {
    commits_per_s: number;
    commits_per_request: number;
    rollbacks: number;
    wal_syncs_per_s: number | null;
    wal_mb_per_s: number | null;
    wal_kb_per_request: number | null;
  };
  batches?: {
    count: number;
    per_s: number;
    mean_items: number;
    items_per_request: number;
    histogram: Record<string, number>;
  };
  server_mean_latency_ms?: number | null;
  event_loop_lag_p99_ms?: number | null;
  /** Average number of API backends seen in each state/wait event (sampled every 250 ms). */
  pg_backends?: Record<string, number>;
  /** BENCH_PG_STATEMENTS=1: the statements that took the server's time during the run. */
  pg_statements?: StatementCost[];
}

interface ScenarioResult {
  scenario: string;
  target: 'bare fastify' | 'durable floor' | 'payforward';
  request: string;
  connections: number;
  duration_s: number;
  requests_per_s: number;
  completed: number;
  sent: number;
  latency_ms: { mean: number; p50: number; p90: number; p99: number; max: number };
  responses: { '2xx': number; non2xx: number; errors: number; timeouts: number; status_codes: Record<string, number> };
  peak_rss_mb: number;
  baseline: string | null;
  ratio_to_bare: number | null;
  diagnostics: Diagnostics;
  /** Mixed workload: WEB_CONCURRENCY of the server, and latency per class of request (reads, writes, and each kind). */
  web_concurrency?: number;
  classes?: Record<string, ClassLatency>;
}

interface ClassLatency {
  count: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Latency per class of request. autocannon reports a response's time (its 'response' event) right after the
 * request's own onResponse ran, synchronously: onResponse names the class, the event's handler files the time.
 */
class ClassTimes {
  private answered: string | undefined;
  private readonly times = new Map<string, number[]>();

  answer(kind: string) {
    this.answered = kind;
  }

  record(ms: number) {
    if (this.answered === undefined) return;
    let list = this.times.get(this.answered);
    if (!list) this.times.set(this.answered, (list = []));
    list.push(ms);
    this.answered = undefined;
  }

  reset() {
    this.times.clear();
    this.answered = undefined;
  }

  /** Per kind, and per group of kinds (e.g. reads = retrieve + list + balance). */
  summary(groups: Record<string, string[]>): Record<string, ClassLatency> {
    const describe = (values: number[]): ClassLatency => {
      const sorted = [...values].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
      return {
        count: sorted.length,
        mean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
        p50: round(at(0.5)),
        p99: round(at(0.99)),
        max: round(sorted[sorted.length - 1] ?? 0),
      };
    };
    const out: Record<string, ClassLatency> = {};
    for (const [group, kinds] of Object.entries(groups))
      out[group] = describe(kinds.flatMap((kind) => this.times.get(kind) ?? []));
    for (const [kind, values] of this.times) out[kind] = describe(values);
    return out;
  }
}

const results: ScenarioResult[] = [];

/** What the clients of every payment-creating run (warm-ups included) were told. */
const ledger = {
  sent: 0,
  completed: 0,
  ok: 0,
  non2xx: 0,
  errors: 0,
  timeouts: 0,
  ids: [] as string[],
  badSamples: [] as string[],
  idempotent: { sent: 0, completed: 0, ok: 0 },
};
const otherRuns = { non2xx: 0, errors: 0, badSamples: [] as string[] };

// ---------------------------------------------------------------------------------------------
// Load

function fire(options: Options, classes?: ClassTimes): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const instance = autocannon({ timeout: 10, ...options }, (error, result) =>
      error ? reject(error) : resolvePromise(result),
    );
    if (classes) instance.on('response', (...args: unknown[]) => classes.record(args[3] as number));
  });
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

interface Target {
  kind: 'bare' | 'floor' | 'api';
  url: string;
  pid: number;
  rss: RssSampler;
  metricsUrl?: string;
  /** /metrics on the API port needs its bearer token. */
  metricsToken?: string;
}

interface RunSpec {
  scenario: string;
  request: string;
  connections: number;
  requests: RequestSpec[];
  /** Payment-creating runs are reconciled with the database afterwards. */
  createsPayments?: boolean;
  idempotent?: boolean;
  baseline?: string;
  /** Latency per class of request, and how kinds group into classes. */
  classes?: { times: ClassTimes; groups: Record<string, string[]> };
  webConcurrency?: number;
}

function tally(spec: RunSpec, result: Result) {
  const completed = result.requests.total;
  if (spec.createsPayments) {
    ledger.sent += result.requests.sent;
    ledger.completed += completed;
    ledger.ok += result['2xx'];
    ledger.non2xx += result.non2xx;
    ledger.errors += result.errors;
    ledger.timeouts += result.timeouts;
    if (spec.idempotent) {
      ledger.idempotent.sent += result.requests.sent;
      ledger.idempotent.completed += completed;
      ledger.idempotent.ok += result['2xx'];
    }
  } else {
    otherRuns.non2xx += result.non2xx;
    otherRuns.errors += result.errors;
  }
}

async function scrape(url: string | undefined, token?: string): Promise<Map<string, number> | undefined> {
  if (!url) return undefined;
  try {
    const headers = token ? { authorization: `Bearer ${token}` } : undefined;
    const text = await (await fetch(url, { headers, signal: AbortSignal.timeout(5000) })).text();
    const values = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      values.set(line.slice(0, space), Number(line.slice(space + 1)));
    }
    return values;
  } catch {
    return undefined;
  }
}

function metricDelta(before: Map<string, number> | undefined, after: Map<string, number> | undefined, key: string) {
  if (!before || !after || !after.has(key)) return undefined;
  return after.get(key)! - (before.get(key) ?? 0);
}

function labelled(metrics: Map<string, number> | undefined, name: string, labels: Record<string, string>): string[] {
  if (!metrics) return [];
  return [...metrics.keys()].filter((key) => {
    if (!key.startsWith(`${name}{`)) return false;
    return Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`));
  });
}

/** PostgreSQL processes working for this benchmark: backends of its database plus the server's own (WAL writer…). */
async function benchPostgresPids(): Promise<number[]> {
  if (!monitorSql) return [];
  const rows = await monitorSql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = ${DB_NAME} OR backend_type <> 'client backend'`;
  return rows.map((r) => r.pid);
}

function ticksOf(pids: number[]): Map<number, number> {
  return new Map(pids.map((pid) => [pid, cpuTicks(pid)]));
}

function sumDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ticks] of after) total += Math.max(0, ticks - (before.get(pid) ?? 0));
  return total;
}

interface DbSnapshot {
  commits: number;
  rollbacks: number;
  walSyncs: number | null;
  walBytes: number | null;
}

let monitorSql: postgres.Sql | undefined;
/** BENCH_PG_STATEMENTS=1: the server log the statement durations are read from. */
let pgLogFile: string | undefined;

async function dbSnapshot(): Promise<DbSnapshot | undefined> {
  if (!monitorSql) return undefined;
  const [db] = await monitorSql<{ commits: string; rollbacks: string }[]>`
    SELECT xact_commit::text AS commits, xact_rollback::text AS rollbacks FROM pg_stat_database WHERE datname = ${DB_NAME}`;
  let walSyncs: number | null = null;
  let walBytes: number | null = null;
  try {
    const [wal] = await monitorSql<
      { wal_sync: string; wal_bytes: string }[]
    >`SELECT wal_sync::text, wal_bytes::text FROM pg_stat_wal`;
    walSyncs = Number(wal.wal_sync);
    walBytes = Number(wal.wal_bytes);
  } catch {
    // pg_stat_wal needs PostgreSQL 14+
  }
  return { commits: Number(db?.commits ?? 0), rollbacks: Number(db?.rollbacks ?? 0), walSyncs, walBytes };
}

/** Samples what the API's PostgreSQL backends are doing, while a run lasts. */
function sampleBackends() {
  const counts = new Map<string, number>();
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped && monitorSql) {
      try {
        const rows = await monitorSql<{ state: string; n: number }[]>`
          SELECT coalesce(state, '?') || ' / ' || coalesce(wait_event_type || ':' || wait_event, 'on CPU') AS state, count(*)::int AS n
          FROM pg_stat_activity WHERE datname = ${DB_NAME} AND application_name = 'payforward-api' GROUP BY 1`;
        samples++;
        for (const row of rows) counts.set(row.state, (counts.get(row.state) ?? 0) + row.n);
      } catch {
        // a failed sample is skipped
      }
      await sleep(250);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return Object.fromEntries(
      [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round(v / Math.max(1, samples))]),
    );
  };
}

async function measure(target: Target, spec: RunSpec): Promise<ScenarioResult> {
  const base: Options = { url: target.url, connections: spec.connections, requests: spec.requests };
  const label = `${spec.scenario} @ ${spec.connections} connections`;
  if (config.warmup > 0) {
    process.stdout.write(`  ${label}: warm-up ${config.warmup}s… `);
    tally(spec, await fire({ ...base, duration: config.warmup }, spec.classes?.times));
    await sleep(300);
  } else process.stdout.write(`  ${label}: `);
  process.stdout.write(`measuring ${config.duration}s… `);

  target.rss.resetWindow();
  const metricsBefore = await scrape(target.metricsUrl, target.metricsToken);
  const dbBefore = target.kind !== 'bare' ? await dbSnapshot() : undefined;
  const stopSampling = target.kind === 'api' ? sampleBackends() : undefined;
  const pgPids0 = await benchPostgresPids();
  const logFrom = pgLogFile ? logOffset(pgLogFile) : undefined;
  const cpu0 = {
    server: treeCpuTicks(target.pid),
    pg: postgresTicks(),
    pgOwn: ticksOf(pgPids0),
    machine: machineTicks(),
    self: process.cpuUsage(),
  };
  const started = Date.now();

  spec.classes?.times.reset();
  const result = await fire({ ...base, duration: config.duration }, spec.classes?.times);

  const elapsed = (Date.now() - started) / 1000;
  const cpu1 = {
    server: treeCpuTicks(target.pid),
    pg: postgresTicks(),
    pgOwn: ticksOf(pgPids0),
    machine: machineTicks(),
    self: process.cpuUsage(cpu0.self),
  };
  const pgBackends = await stopSampling?.();
  const pgStatements =
    pgLogFile && logFrom !== undefined ? summarizeStatements(readSlice(pgLogFile, logFrom), DB_NAME) : undefined;
  const dbAfter = target.kind !== 'bare' ? await dbSnapshot() : undefined;
  const metricsAfter = await scrape(target.metricsUrl, target.metricsToken);
  const peakRssKb = target.rss.resetWindow();
  tally(spec, result);

  const completed = result.requests.total;
  const duration = result.duration || elapsed;
  const cores = {
    server: (cpu1.server - cpu0.server) / TICKS_PER_SECOND / elapsed,
    postgres: sumDelta(cpu0.pg, cpu1.pg) / TICKS_PER_SECOND / elapsed,
    postgresBench: pgPids0.length ? sumDelta(cpu0.pgOwn, cpu1.pgOwn) / TICKS_PER_SECOND / elapsed : 0,
    load_generator: (cpu1.self.user + cpu1.self.system) / 1e6 / elapsed,
    busy: (cpu1.machine.busy - cpu0.machine.busy) / TICKS_PER_SECOND / elapsed,
  };
  const diagnostics: Diagnostics = {
    cpu_cores: {
      server: round(cores.server),
      postgres: round(cores.postgres),
      load_generator: round(cores.load_generator),
      postgres_bench_db: round(cores.postgresBench),
      other: round(Math.max(0, cores.busy - cores.server - cores.postgres - cores.load_generator)),
      machine_busy_pct: round(
        (100 * (cpu1.machine.busy - cpu0.machine.busy)) / Math.max(1, cpu1.machine.total - cpu0.machine.total),
        1,
      ),
    },
    cpu_ms_per_request: {
      server: round((1000 * cores.server * elapsed) / Math.max(1, completed), 3),
      postgres_bench_db: round((1000 * cores.postgresBench * elapsed) / Math.max(1, completed), 3),
    },
  };
  if (dbBefore && dbAfter) {
    const commits = dbAfter.commits - dbBefore.commits;
    diagnostics.db = {
      commits_per_s: round(commits / elapsed, 0),
      commits_per_request: round(commits / Math.max(1, completed)),
      rollbacks: dbAfter.rollbacks - dbBefore.rollbacks,
      wal_syncs_per_s:
        dbAfter.walSyncs !== null && dbBefore.walSyncs !== null
          ? round((dbAfter.walSyncs - dbBefore.walSyncs) / elapsed, 0)
          : null,
      wal_mb_per_s:
        dbAfter.walBytes !== null && dbBefore.walBytes !== null
          ? round((dbAfter.walBytes - dbBefore.walBytes) / 1e6 / elapsed)
          : null,
      wal_kb_per_request:
        dbAfter.walBytes !== null && dbBefore.walBytes !== null
          ? round((dbAfter.walBytes - dbBefore.walBytes) / 1024 / Math.max(1, completed), 1)
          : null,
    };
  }
  if (metricsBefore && metricsAfter) {
    const count = metricDelta(metricsBefore, metricsAfter, 'write_batch_size_count') ?? 0;
    const sum = metricDelta(metricsBefore, metricsAfter, 'write_batch_size_sum') ?? 0;
    const histogram: Record<string, number> = {};
    let previous = 0;
    for (const key of labelled(metricsAfter, 'write_batch_size_bucket', {})) {
      const le = /le="([^"]+)"/.exec(key)![1];
      const cumulative = metricDelta(metricsBefore, metricsAfter, key) ?? 0;
      histogram[`<=${le}`] = cumulative - previous;
      previous = cumulative;
    }
    diagnostics.batches = {
      count,
      per_s: round(count / elapsed, 0),
      mean_items: count ? round(sum / count) : 0,
      items_per_request: round(sum / Math.max(1, completed)),
      histogram,
    };
    const method = spec.request.split(' ')[0];
    let durSum = 0;
    let durCount = 0;
    for (const key of labelled(metricsAfter, 'http_request_duration_seconds_sum', { method })) {
      if (!key.includes('route="/v1/payments')) continue;
      durSum += metricDelta(metricsBefore, metricsAfter, key) ?? 0;
      durCount += metricDelta(metricsBefore, metricsAfter, key.replace('_sum{', '_count{')) ?? 0;
    }
    diagnostics.server_mean_latency_ms = durCount ? round((1000 * durSum) / durCount) : null;
    const lag = metricsAfter.get('nodejs_eventloop_lag_p99_seconds');
    diagnostics.event_loop_lag_p99_ms = lag === undefined ? null : round(lag * 1000);
  }
  if (pgBackends) diagnostics.pg_backends = pgBackends;
  if (pgStatements) diagnostics.pg_statements = pgStatements;

  const scenario: ScenarioResult = {
    scenario: spec.scenario,
    target: target.kind === 'bare' ? 'bare fastify' : target.kind === 'floor' ? 'durable floor' : 'payforward',
    request: spec.request,
    connections: spec.connections,
    duration_s: duration,
    requests_per_s: round(completed / duration, 0),
    completed,
    sent: result.requests.sent,
    latency_ms: {
      mean: round(result.latency.mean),
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
    },
    responses: {
      '2xx': result['2xx'],
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      status_codes: Object.fromEntries(
        Object.entries(result.statusCodeStats ?? {}).map(([code, v]) => [code, v.count]),
      ),
    },
    peak_rss_mb: round(peakRssKb / 1024, 1),
    baseline: spec.baseline ?? null,
    ratio_to_bare: null,
    diagnostics,
    ...(spec.webConcurrency ? { web_concurrency: spec.webConcurrency } : {}),
    ...(spec.classes ? { classes: spec.classes.times.summary(spec.classes.groups) } : {}),
  };
  results.push(scenario);
  const busyElsewhere =
    diagnostics.cpu_cores.other >= 0.25
      ? ` [machine shared: ${diagnostics.cpu_cores.other} cores used by other processes]`
      : '';
  console.log(
    `${scenario.requests_per_s} req/s, mean ${scenario.latency_ms.mean} ms, p99 ${scenario.latency_ms.p99} ms${result.non2xx || result.errors ? `, ${result.non2xx} non-2xx, ${result.errors} errors` : ''}${busyElsewhere}`,
  );
  if (scenario.classes) {
    const c = scenario.classes;
    console.log(
      `    reads: mean ${c.reads.mean} ms, p99 ${c.reads.p99} ms (${c.reads.count}); ` +
        `writes: mean ${c.writes.mean} ms, p99 ${c.writes.p99} ms (${c.writes.count})`,
    );
  }
  for (const c of pgStatements?.slice(0, 15) ?? [])
    console.log(
      `    pg ${c.share_pct}% ${c.total_ms} ms ${c.calls}× ${c.mean_ms} ms ${c.phase}: ${c.statement.slice(0, 160)}`,
    );
  await sleep(500);
  return scenario;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const CARD = { type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '123' } };
const createBody = (paymentMethod: unknown) =>
  JSON.stringify({ amount: 2000, currency: 'usd', confirm: true, payment_method: paymentMethod });

function recordPayment(status: number, body: string) {
  if (status === 200) {
    const at = body.indexOf('"id":"');
    const id = at < 0 ? '' : body.slice(at + 6, body.indexOf('"', at + 6));
    if (id.startsWith('pay_')) ledger.ids.push(id);
    else if (ledger.badSamples.length < 5) ledger.badSamples.push(`200 without a payment id: ${body.slice(0, 300)}`);
  } else if (ledger.badSamples.length < 5) ledger.badSamples.push(`${status} ${body.slice(0, 500)}`);
}

function recordOther(status: number, body: string) {
  if (status >= 300 && otherRuns.badSamples.length < 5) otherRuns.badSamples.push(`${status} ${body.slice(0, 500)}`);
}

/**
 * Partial refunds (MIXED_SEED.refundAmount) over `payments` in turn, each with a unique Idempotency-Key; what they
 * were told goes to mixedWrites for the verification.
 */
function refundRequest(headers: Record<string, string>, payments: string[]): RequestSpec {
  let next = 0;
  return {
    method: 'POST',
    path: '/v1/refunds',
    headers,
    setupRequest: (request) => {
      mixedWrites.sent++;
      ledger.idempotent.sent++;
      const payment = payments[next++ % payments.length];
      return {
        ...request,
        path: '/v1/refunds',
        headers: { ...headers, 'idempotency-key': randomUUID() },
        body: JSON.stringify({ payment, amount: MIXED_SEED.refundAmount }),
      };
    },
    onResponse: recordCaptureOrRefund,
  };
}

/** Files a capture's or refund's answer for the verification; the kind of object it answered with. */
function recordCaptureOrRefund(status: number, body: string): 'capture' | 'refund' {
  mixedWrites.answered++;
  ledger.idempotent.completed++;
  let answer: { id?: string; object?: string } = {};
  try {
    answer = JSON.parse(body) as typeof answer;
  } catch {
    // counted below as a failure sample
  }
  if (status === 200 && answer.object === 'refund' && answer.id) mixedWrites.refunds.push(answer.id);
  else if (status === 200 && answer.object === 'payment' && answer.id) mixedWrites.captured.push(answer.id);
  else if (ledger.badSamples.length < 5) ledger.badSamples.push(`${status} ${body.slice(0, 500)}`);
  if (status === 200) ledger.idempotent.ok++;
  return answer.object === 'refund' ? 'refund' : 'capture';
}

function rotatingGet(headers: Record<string, string>, ids: string[]): RequestSpec {
  let next = 0;
  return {
    method: 'GET',
    path: `/v1/payments/${ids[0]}`,
    headers,
    setupRequest: (request) => ({ ...request, path: `/v1/payments/${ids[next++ % ids.length]}` }),
    onResponse: recordOther,
  };
}

const wants = (name: ScenarioName) => config.scenarios.has(name);

/**
 * Runs `body` against a baseline server (bench/<script>) started as a child process, then stops it: the bare fastify
 * server and the durable floor.
 */
async function withBaselineServer(
  name: string,
  script: string,
  kind: 'bare' | 'floor',
  port: number,
  env: Record<string, string>,
  body: (target: Target) => Promise<void>,
) {
  const child = spawnNode(name, ['--import', 'tsx', join(BENCH_DIR, script)], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port) },
  });
  children.add(child);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(child, `${url}/ready`, 30_000);
    const rss = new RssSampler(child.pid).start();
    await body({ kind, url, pid: child.pid, rss });
    rss.stop();
  } finally {
    await stopChild(child);
    children.delete(child);
  }
}

async function benchBare(port: number) {
  await withBaselineServer(
    'bare fastify',
    'bare-server.ts',
    'bare',
    port,
    { NODE_ENV: 'production' },
    async (target) => {
      const headers = { 'content-type': 'application/json', authorization: 'Bearer sk_test_bare_baseline_0000000000' };
      if (wants('bare_post')) {
        for (const connections of config.connections) {
          await measure(target, {
            scenario: 'bare_post',
            request: 'POST /v1/payments (echo)',
            connections,
            requests: [
              { method: 'POST', path: '/v1/payments', headers, body: createBody(CARD), onResponse: recordOther },
            ],
          });
        }
      }
      if (wants('bare_get')) {
        const ids = Array.from({ length: 1000 }, (_, i) => `pay_bare${String(i).padStart(22, '0')}`);
        await measure(target, {
          scenario: 'bare_get',
          request: 'GET /v1/payments/:id (fixed doc)',
          connections: config.variantConnections,
          requests: [rotatingGet(headers, ids)],
        });
      }
    },
  );
}

/** What the durable floor answered, checked against its tables afterwards (floorCheck). */
const floorAnswers = { sent: 0, completed: 0, ok: 0, ids: [] as string[] };
let floorCheck: { ok: boolean; detail: string } | undefined;

/**
 * The durable floor (bench/floor-server.ts): issue 14's prototype of the payment's durable write, in the bench database
 * (schema `floor`), at the create+confirm connection levels with a unique Idempotency-Key per request, so that
 * create+confirm reads against the least its write can cost here, in the same run. Then its tables against its answers.
 */
async function benchFloor(port: number) {
  const env = { ...config.passThrough, DATABASE_URL: benchDbUrl.toString() };
  await withBaselineServer('durable floor', 'floor-server.ts', 'floor', port, env, async (target) => {
    const { url } = target;
    const headers = { 'content-type': 'application/json' };
    const keyed: RequestSpec = {
      method: 'POST',
      path: '/v1/payments',
      headers,
      body: createBody(CARD),
      setupRequest: (request) => {
        floorAnswers.sent++;
        return { ...request, headers: { ...headers, 'idempotency-key': randomUUID() } };
      },
      onResponse: recordFloorAnswer,
    };
    if (wants('floor_create'))
      for (const connections of config.connections)
        await measure(target, {
          scenario: 'floor_create',
          request: 'POST /v1/payments (durable floor) + unique Idempotency-Key',
          connections,
          requests: [keyed],
          baseline: 'bare_post',
        });
    if (wants('floor_retrieve')) {
      // Payments to read: those floor_create made, or a thousand made now.
      const ids = floorAnswers.ids.length ? floorAnswers.ids.slice(-2000) : await seedFloorPayments(url, 1000);
      await measure(target, {
        scenario: 'floor_retrieve',
        request: 'GET /v1/payments/:id (durable floor: one statement)',
        connections: config.variantConnections,
        requests: [rotatingGet(headers, ids)],
        baseline: 'bare_get',
      });
    }
  });
  const [tables] = await monitorSql!<
    {
      payments: number;
      found: number;
      keys: number;
      events: number;
      entries: number;
      unbalanced: number;
      drift: number;
    }[]
  >`
    SELECT (SELECT count(*)::int FROM floor.payments) AS payments,
      (SELECT count(*)::int FROM floor.payments WHERE id = ANY(${floorAnswers.ids}::text[])) AS found,
      (SELECT count(*)::int FROM floor.idempotency_keys) AS keys,
      (SELECT count(*)::int FROM floor.events e JOIN floor.payments p ON p.id = e.object_id) AS events,
      (SELECT count(*)::int FROM floor.ledger_entries e JOIN floor.payments p ON p.id = e.transaction_id) AS entries,
      (SELECT count(*)::int FROM (SELECT 1 FROM floor.ledger_entries GROUP BY transaction_id HAVING sum(amount) <> 0) u)
        AS unbalanced,
      (SELECT count(*)::int FROM floor.balances b WHERE b.pending <> (SELECT coalesce(sum(amount), 0)
        FROM floor.ledger_entries WHERE account = 'tenant_pending:' || b.tenant_id)) AS drift`;
  const answers = reconcilePayments({
    answered: floorAnswers.ok,
    answeredCommitted: tables.found,
    committed: tables.payments,
    unanswered: floorAnswers.sent - floorAnswers.completed,
  });
  const distinct = new Set(floorAnswers.ids).size;
  const rows =
    distinct === floorAnswers.ids.length &&
    tables.keys === tables.payments &&
    tables.events === tables.payments &&
    tables.entries === 3 * tables.payments &&
    tables.unbalanced === 0 &&
    tables.drift === 0;
  floorCheck = {
    ok: answers.ok && rows,
    detail:
      `${answers.detail}; ${distinct} distinct payment ids answered; ${tables.keys} keys, ${tables.events} events, ${tables.entries} ledger entries, ` +
      `${tables.unbalanced} unbalanced transactions, ${tables.drift} balances differing from their entries`,
  };
}

/** Files one of the floor's answers for floorCheck; a non-2xx is a failure sample as for any other run. */
function recordFloorAnswer(status: number, body: string) {
  floorAnswers.completed++;
  if (status !== 200) return recordOther(status, body);
  floorAnswers.ok++;
  floorAnswers.ids.push((JSON.parse(body) as { id: string }).id);
}

async function seedFloorPayments(url: string, count: number): Promise<string[]> {
  const first = floorAnswers.ids.length;
  for (let i = 0; i < count; i++) {
    floorAnswers.sent++;
    const response = await fetch(`${url}/v1/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      body: createBody(CARD),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    recordFloorAnswer(response.status, text);
    if (!response.ok) throw new Error(`the durable floor answered ${response.status}: ${text.slice(0, 300)}`);
  }
  return floorAnswers.ids.slice(first);
}

async function api<T>(url: string, path: string, key: string, body?: unknown): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

let apiChild: Child | undefined;
let apiRssPeakMb = 0;
/**
 * The mixed servers' peaks, all their processes together (at N = 2 a primary running the workers and two API
 * processes): apart from apiRssPeakMb, whose target is one API process's.
 */
const mixedRssPeakMb: Record<string, number> = {};
const apiStdoutProblems: string[] = [];
let profileSummary: unknown;

/** The API's environment; the same secrets for every process of a run, which share one database. */
function apiEnv(port: number, platformKey: string, metricsToken: string) {
  return {
    ...process.env,
    ...config.passThrough,
    NODE_ENV: 'production',
    DATABASE_URL: benchDbUrl.toString(),
    DATABASE_REPLICA_URL: '',
    REDIS_URL: '',
    // BENCH_AMQP_URL: RabbitMQ as a deployment has it (the event relay runs in the mixed server's worker).
    AMQP_URL: config.amqpUrl,
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: '',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_KEY: '10000000',
    RATE_LIMIT_PER_TENANT: '10000000',
    RATE_LIMIT_PER_ADDRESS: '10000000',
    PAYMENT_METHOD_RATE_LIMIT_PER_KEY: '10000000',
    PAYMENT_METHOD_RATE_LIMIT_PER_TENANT: '10000000',
    SEED_DEMO_TENANT: 'false',
    ...apiSecrets,
    PLATFORM_API_KEY: platformKey,
    METRICS_TOKEN: metricsToken,
    DATA_DIR: join(RESULTS_DIR, '.data'),
  };
}

// Production refuses weak or defaulted secrets; a database role that exists keeps its own password.
const apiSecrets = productionSecrets({
  APP_DB_PASSWORD: process.env.APP_DB_PASSWORD,
  WORKER_DB_PASSWORD: process.env.WORKER_DB_PASSWORD,
});

/**
 * An API process with FRAUD_CHECKS=off on the run's database, with a tenant of its own: the fraud decision's cost is
 * create_confirm (fraud on) against create_confirm_fraud_off in the same run, measured in the order off, on, on, off.
 * Each side then has one run with a freshly started process and one with a process warmed by a run, and a drift of
 * the machine or the database's growth weighs on both sides alike (off, on, off compared a cold fraud-on process
 * with a warm fraud-off one). The report compares the means. Not profiled: BENCH_CPU_PROF is for the fraud-on API.
 */
async function startFraudOff(port: number, platformKey: string, metricsToken: string) {
  const child = spawnNode('PayForward API (FRAUD_CHECKS=off)', ['--max-semi-space-size=32', 'dist/main.js', 'api'], {
    cwd: ROOT,
    env: { ...apiEnv(port, platformKey, metricsToken), FRAUD_CHECKS: 'off' },
  });
  children.add(child);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(child, `${url}/ready`, 90_000);
  const rss = new RssSampler(child.pid).start();
  const target: Target = { kind: 'api', url, pid: child.pid, rss, metricsUrl: `${url}/metrics`, metricsToken };
  const tenant = await api<{ secret_keys: { test: { secret: string } } }>(url, '/v1/tenants', platformKey, {
    name: 'Benchmark tenant (fraud checks off)',
  });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${tenant.secret_keys.test.secret}` };
  console.log(`  API with FRAUD_CHECKS=off, pid ${child.pid}`);
  return {
    async measure(when: 'before' | 'after') {
      for (const connections of config.connections) {
        await measure(target, {
          scenario: 'create_confirm_fraud_off',
          request: `POST /v1/payments (inline card, confirm), FRAUD_CHECKS=off, ${when} fraud on`,
          connections,
          requests: [
            { method: 'POST', path: '/v1/payments', headers, body: createBody(CARD), onResponse: recordPayment },
          ],
          createsPayments: true,
          baseline: 'bare_post',
        });
      }
    },
    async stop() {
      rss.stop();
      apiRssPeakMb = Math.max(apiRssPeakMb, round(rss.peakKb / 1024, 1));
      apiStdoutProblems.push(...child.problems);
      await stopChild(child);
      children.delete(child);
    },
  };
}

async function disableRollupTriggers() {
  console.log(`  analytics rollups off: ${await setRollupTriggers(monitorSql!, false)} triggers disabled`);
}
// One operator key and metrics token for every API process of the run (they share the database).
const platformKey = `op_platform_${randomBytes(24).toString('base64url')}`;
const metricsToken = randomBytes(32).toString('base64url');

async function benchApi(port: number) {
  const profDir = join(RESULTS_DIR, 'cpuprof');
  const fraudOff = wants('create_confirm_fraud_off')
    ? await startFraudOff(await freePort(port + 2), platformKey, metricsToken)
    : undefined;
  await fraudOff?.measure('before');
  // The same Node flags as `npm start`: a larger young generation halves the time spent in GC.
  const nodeArgs: string[] = ['--max-semi-space-size=32'];
  if (config.cpuProf) {
    rmSync(profDir, { recursive: true, force: true });
    mkdirSync(profDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
  }
  apiChild = spawnNode('PayForward API', [...nodeArgs, 'dist/main.js', 'api'], {
    cwd: ROOT,
    env: apiEnv(port, platformKey, metricsToken),
  });
  children.add(apiChild);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(apiChild, `${url}/ready`, 90_000);
  if (config.rollupsOff) await disableRollupTriggers();
  const folds = startAnalyticsFolds(benchDbUrl.toString());
  const rss = new RssSampler(apiChild.pid).start();
  const target: Target = { kind: 'api', url, pid: apiChild.pid, rss, metricsUrl: `${url}/metrics`, metricsToken };

  const tenant = await api<{ id: string; secret_keys: { test: { secret: string } } }>(url, '/v1/tenants', platformKey, {
    name: 'Benchmark tenant',
  });
  const secret = tenant.secret_keys.test.secret;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${secret}` };
  const inline: RequestSpec = {
    method: 'POST',
    path: '/v1/payments',
    headers,
    body: createBody(CARD),
    onResponse: recordPayment,
  };
  console.log(`  tenant ${tenant.id} created; API pid ${apiChild.pid}`);

  if (wants('create_confirm')) {
    for (const connections of config.connections) {
      await measure(target, {
        scenario: 'create_confirm',
        request: 'POST /v1/payments (inline card, confirm)',
        connections,
        requests: [inline],
        createsPayments: true,
        baseline: 'bare_post',
      });
    }
  }
  if (wants('rollups_interleaved')) await benchRollupsInterleaved(target, inline);
  if (fraudOff) {
    for (const connections of config.connections) {
      await measure(target, {
        scenario: 'create_confirm_fraud_on',
        request: 'POST /v1/payments (inline card, confirm), fraud on, its second run for the on/off comparison',
        connections,
        requests: [inline],
        createsPayments: true,
        baseline: 'bare_post',
      });
    }
  }
  await fraudOff?.measure('after');
  await fraudOff?.stop();
  if (wants('create_confirm_100_tenants')) {
    // autocannon walks each connection through the list in turn, so every connection spreads its
    // payments over all 100 tenants.
    const many = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        api<{ secret_keys: { test: { secret: string } } }>(url, '/v1/tenants', platformKey, {
          name: `Benchmark tenant ${i + 2}`,
        }),
      ),
    );
    const spread: RequestSpec[] = many.map((t) => ({
      ...inline,
      headers: { ...headers, authorization: `Bearer ${t.secret_keys.test.secret}` },
    }));
    await measure(target, {
      scenario: 'create_confirm_100_tenants',
      request: 'POST /v1/payments (inline card, confirm) over 100 tenants',
      connections: config.variantConnections,
      requests: spread,
      createsPayments: true,
      baseline: 'bare_post',
    });
  }
  if (wants('create_confirm_idem')) {
    const withKey: RequestSpec = {
      ...inline,
      setupRequest: (request) => ({ ...request, headers: { ...headers, 'idempotency-key': randomUUID() } }),
    };
    await measure(target, {
      scenario: 'create_confirm_idem',
      request: 'POST /v1/payments + unique Idempotency-Key',
      connections: config.variantConnections,
      requests: [withKey],
      createsPayments: true,
      idempotent: true,
      baseline: 'bare_post',
    });
  }
  if (wants('create_confirm_saved_pm')) {
    const pm = await api<{ id: string }>(url, '/v1/payment_methods', secret, CARD);
    await measure(target, {
      scenario: 'create_confirm_saved_pm',
      request: `POST /v1/payments (saved ${pm.id.slice(0, 3)}… token, confirm)`,
      connections: config.variantConnections,
      requests: [{ ...inline, body: createBody(pm.id) }],
      createsPayments: true,
      baseline: 'bare_post',
    });
  }
  /** One run of one kind of request at the variants' connection count. */
  const measureVariant = (scenario: ScenarioName, request: string, spec: RequestSpec, baseline: string) =>
    measure(target, { scenario, request, connections: config.variantConnections, requests: [spec], baseline });
  /** One GET, the same for every request of the run. */
  const measureGet = (scenario: ScenarioName, path: string) =>
    measureVariant(scenario, `GET ${path}`, { method: 'GET', path, headers, onResponse: recordOther }, 'bare_get');
  /** The payments made by the runs before (at most 5,000), with more made now (counted as answered) up to `count`. */
  const madePayments = async (count: number) => {
    const missing = count - ledger.ids.length;
    if (missing > 0) {
      const seeded = await seedPayments(url, secret, JSON.parse(createBody(CARD)), missing);
      ledger.ok += seeded.length;
      ledger.sent += seeded.length;
      ledger.completed += seeded.length;
      ledger.ids.push(...seeded);
    }
    return ledger.ids.slice(0, 5000);
  };
  if (wants('retrieve'))
    await measureVariant('retrieve', 'GET /v1/payments/:id', rotatingGet(headers, await madePayments(200)), 'bare_get');
  if (wants('list')) {
    // A page of ten to list.
    await madePayments(200);
    await measureGet('list', '/v1/payments?limit=10');
  }
  if (wants('list_events')) {
    // The events of the payments above: ten of another kind of list than payments, with nothing to join.
    await madePayments(200);
    await measureGet('list_events', '/v1/events?limit=10');
  }
  if (wants('balance')) await measureGet('balance', '/v1/balance');
  if (wants('refund')) {
    const payments = await madePayments(MIXED_SEED.payments);
    await measureVariant('refund', 'POST /v1/refunds', refundRequest(headers, payments), 'bare_post');
  }
  rss.stop();
  apiRssPeakMb = Math.max(apiRssPeakMb, round(rss.peakKb / 1024, 1));
  console.log(`  analytics fold loop (the worker's, every 500 ms): ${await folds.stop()} payment changes folded`);
  return { url, tenantId: tenant.id };
}

let rollupsInterleaved: InterleavedSummary | undefined;

async function benchRollupsInterleaved(target: Target, inline: RequestSpec) {
  const connections = config.connections[0];
  if (config.rollupsOff) {
    console.log('  rollups_interleaved: skipped (BENCH_ANALYTICS_ROLLUPS=off)');
    return;
  }
  const spec: RunSpec = {
    scenario: 'rollups_interleaved',
    request: 'POST /v1/payments (inline card, confirm), rollup triggers switched on and off',
    connections,
    requests: [inline],
    createsPayments: true,
  };
  if (config.warmup > 0)
    tally(spec, await fire({ url: target.url, connections, requests: [inline], duration: config.warmup }));
  process.stdout.write(
    `  rollups_interleaved @ ${connections} connections: ${config.rollupSlices} slices of ` +
      `${config.rollupSliceSeconds}s… `,
  );
  const { result, summary } = await measureRollupsInterleaved({
    url: target.url,
    connections,
    requests: [inline],
    sql: monitorSql!,
    slices: config.rollupSlices,
    sliceSeconds: config.rollupSliceSeconds,
    cpuTicks: async () => ({
      api: treeCpuTicks(target.pid),
      postgres: [...ticksOf(await benchPostgresPids()).values()].reduce((sum, t) => sum + t, 0),
    }),
  });
  tally(spec, result);
  rollupsInterleaved = summary;
  console.log(`rollups cost ${percent(summary.cost_median)} (median of ${summary.pairs} pairs)`);
}

const percent = (share: number) => `${(share * 100).toFixed(1)}%`;

/** What the mixed workload's captures and refunds were told, for the verification. */
const mixedWrites = {
  /** Manual-capture payments seeded for the captures (requires_capture until captured). */
  authorizations: [] as string[],
  captured: [] as string[],
  refunds: [] as string[],
  /** Capture-or-refund requests sent and answered (any status): the difference was cut off at a run's end. */
  sent: 0,
  answered: 0,
  /** Creates (and so payment ids) the mixed runs sent, for the report. */
  creates: 0,
};

/** `count` payments made through the API, `concurrency` at a time; their ids. */
async function seedPayments(url: string, key: string, body: unknown, count: number, concurrency = 16) {
  const ids: string[] = [];
  let left = count;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        ids.push((await api<{ id: string }>(url, '/v1/payments', key, body)).id);
      }
    }),
  );
  return ids;
}

/**
 * The mixed workload against one server started as `npm start` starts it (`dist/main.js start`: API and workers), with
 * WEB_CONCURRENCY=n. Each connection walks the same 20-request cycle: 10 retrieves, 2 lists, 2 balances, 5
 * create+confirm, 1 capture-or-refund (captures of seeded authorizations, alternating with partial refunds of seeded
 * payments, refunds only once the authorizations run out). The cycle starts with a read: autocannon builds a
 * connection's first request before it sends it, and the writes count what they send as they are built.
 */
async function benchMixed(port: number, n: number) {
  const profile: string[] = [];
  if (config.cpuProf) {
    // Every process of the server writes its own profile: cluster children inherit the primary's flags.
    const profDir = join(RESULTS_DIR, 'cpuprof', `mixed_web${n}`);
    rmSync(profDir, { recursive: true, force: true });
    mkdirSync(profDir, { recursive: true });
    profile.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
  }
  const child = spawnNode(
    `PayForward (npm start, WEB_CONCURRENCY=${n})`,
    ['--enable-source-maps', '--max-semi-space-size=32', ...profile, 'dist/main.js', 'start'],
    { cwd: ROOT, env: { ...apiEnv(port, platformKey, metricsToken), WEB_CONCURRENCY: String(n) } },
  );
  children.add(child);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(child, `${url}/ready`, 120_000);
    // /ready answers as soon as one API process listens; the banner comes once they all do.
    const deadline = Date.now() + 120_000;
    while (!child.tail.some((line) => line.includes('PayForward API listening'))) {
      if (Date.now() > deadline || child.exitCode !== undefined)
        throw new Error(`${child.name} did not print its banner:\n${child.tail.join('\n')}`);
      await sleep(200);
    }
    const rss = new RssSampler(child.pid).start();
    const target: Target = { kind: 'api', url, pid: child.pid, rss, metricsUrl: `${url}/metrics`, metricsToken };
    const tenant = await api<{ id: string; secret_keys: { test: { secret: string } } }>(
      url,
      '/v1/tenants',
      platformKey,
      { name: `Benchmark tenant (mixed, WEB_CONCURRENCY=${n})` },
    );
    const key = tenant.secret_keys.test.secret;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
    const seedStarted = Date.now();
    const payments = await seedPayments(url, key, JSON.parse(createBody(CARD)), MIXED_SEED.payments);
    const authorizations = await seedPayments(
      url,
      key,
      { ...(JSON.parse(createBody(CARD)) as object), capture_method: 'manual' },
      MIXED_SEED.authorizations,
    );
    ledger.ok += payments.length;
    ledger.sent += payments.length;
    ledger.completed += payments.length;
    ledger.ids.push(...payments);
    mixedWrites.authorizations.push(...authorizations);
    console.log(
      `  WEB_CONCURRENCY=${n}: pid ${child.pid} and its API processes; tenant ${tenant.id}; seeded ${payments.length} ` +
        `payments and ${authorizations.length} authorizations in ${round((Date.now() - seedStarted) / 1000, 1)}s`,
    );

    const times = new ClassTimes();
    let nextRead = 0;
    let captureTurn = true;
    const toCapture = [...authorizations];
    const read = (kind: string, path: string, rotate = false): RequestSpec => ({
      method: 'GET',
      path,
      headers,
      // autocannon calls setupRequest whenever the key exists, even if undefined.
      ...(rotate
        ? {
            setupRequest: (request: RequestSpec) => ({
              ...request,
              path: `/v1/payments/${payments[nextRead++ % payments.length]}`,
            }),
          }
        : {}),
      onResponse: (status, body) => {
        times.answer(kind);
        recordOther(status, body);
      },
    });
    const create: RequestSpec = {
      method: 'POST',
      path: '/v1/payments',
      headers,
      body: createBody(CARD),
      setupRequest: (request) => {
        ledger.sent++;
        ledger.idempotent.sent++;
        mixedWrites.creates++;
        return { ...request, headers: { ...headers, 'idempotency-key': randomUUID() } };
      },
      onResponse: (status, body) => {
        times.answer('create_confirm');
        ledger.completed++;
        ledger.idempotent.completed++;
        if (status === 200) {
          ledger.ok++;
          ledger.idempotent.ok++;
        }
        recordPayment(status, body);
      },
    };
    const refund = refundRequest(headers, payments);
    const captureOrRefund: RequestSpec = {
      ...refund,
      setupRequest: (request, context) => {
        const capture = captureTurn ? toCapture.pop() : undefined;
        captureTurn = !captureTurn;
        if (!capture) return refund.setupRequest!(request, context);
        mixedWrites.sent++;
        ledger.idempotent.sent++;
        const withKey = { ...headers, 'idempotency-key': randomUUID() };
        return { ...request, path: `/v1/payments/${capture}/capture`, headers: withKey, body: '{}' };
      },
      onResponse: (status, body) => times.answer(recordCaptureOrRefund(status, body)),
    };
    const kinds: Record<string, RequestSpec> = {
      R: read('retrieve', `/v1/payments/${payments[0]}`, true),
      L: read('list', '/v1/payments?limit=10'),
      B: read('balance', '/v1/balance'),
      C: create,
      X: captureOrRefund,
    };
    const cycle = 'RCRLRCRBRCRXRCLRCBRR';
    await measure(target, {
      scenario: `mixed_web${n}`,
      request: `mixed: ${cycle} (R retrieve, L list, B balance, C create+confirm, X capture or refund), WEB_CONCURRENCY=${n}`,
      connections: config.mixedConnections,
      requests: [...cycle].map((k) => kinds[k]),
      classes: {
        times,
        groups: { reads: ['retrieve', 'list', 'balance'], writes: ['create_confirm', 'capture', 'refund'] },
      },
      webConcurrency: n,
    });
    rss.stop();
    mixedRssPeakMb[`web${n}`] = round(rss.peakKb / 1024, 1);
  } finally {
    // Requests cut off at the end of the run finish server-side before the server stops.
    await sleep(1500);
    apiStdoutProblems.push(...child.problems);
    const code = await stopChild(child, 40_000);
    children.delete(child);
    if (code !== 0) console.log(`  note: the WEB_CONCURRENCY=${n} server exited with code ${code}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Verification

interface Verification {
  payment_requests: {
    sent: number;
    answered: number;
    '2xx': number;
    non2xx: number;
    errors: number;
    timeouts: number;
    unanswered: number;
  };
  database: {
    payments_by_status: Record<string, number>;
    succeeded: number;
    attempts: number;
    events_by_type: Record<string, number>;
    idempotency_keys: { total: number; completed: number };
  };
  checks: Record<string, { ok: boolean; detail: string }>;
  ok: boolean;
  samples_of_failures: string[];
}

/**
 * The mixed workload's captures and refunds against the database: every capture answered 2xx made its authorization
 * succeed with its charge posted; beyond those, at most the cut-off requests' worth; every refund answered 2xx
 * exists once, succeeded, with its refund posting; no refund beyond the cut-off ones; each payment's refunded amount
 * is the sum of its refunds.
 */
async function verifyMixedWrites(sql: postgres.Sql) {
  if (!mixedWrites.sent) return undefined;
  const auths = mixedWrites.authorizations;
  const cutOff = mixedWrites.sent - mixedWrites.answered;
  const [a] = await sql<{ succeeded: number; waiting: number; other: number; charged: number; answered_ok: number }[]>`
    SELECT count(*) FILTER (WHERE p.status = 'succeeded')::int AS succeeded,
      count(*) FILTER (WHERE p.status = 'requires_capture')::int AS waiting,
      count(*) FILTER (WHERE p.status NOT IN ('succeeded', 'requires_capture'))::int AS other,
      count(*) FILTER (WHERE p.status = 'succeeded' AND l.type = 'charge' AND l.amount = p.amount_received
        AND l.fee = p.fee)::int AS charged,
      count(*) FILTER (WHERE p.status = 'succeeded' AND p.id = ANY(${mixedWrites.captured}::text[]))::int AS answered_ok
    FROM payments p LEFT JOIN ledger_transactions l ON l.id = p.balance_transaction
    WHERE p.id = ANY(${auths}::text[])`;
  const refundIds = mixedWrites.refunds;
  const [r] = await sql<{ total: number; answered_found: number; succeeded: number; posted: number }[]>`
    SELECT (SELECT count(*)::int FROM refunds) AS total,
      count(*) FILTER (WHERE f.id = ANY(${refundIds}::text[]))::int AS answered_found,
      count(*) FILTER (WHERE f.status = 'succeeded')::int AS succeeded,
      count(*) FILTER (WHERE f.status = 'succeeded' AND l.type = 'refund' AND l.amount = -f.amount)::int AS posted
    FROM refunds f LEFT JOIN ledger_transactions l ON l.id = f.balance_transaction`;
  const [drift] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM payments p
    LEFT JOIN (SELECT payment_id, sum(amount) AS total FROM refunds WHERE status <> 'failed' GROUP BY payment_id) f
      ON f.payment_id = p.id
    WHERE p.amount_refunded <> coalesce(f.total, 0)`;
  const [events] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events WHERE type = 'refund.succeeded'`;
  const capturedBeyond = a.succeeded - a.answered_ok;
  const refundsBeyond = r.total - r.answered_found;
  return {
    authorizationsSucceeded: a.succeeded,
    authorizationsWaiting: a.waiting,
    checks: {
      mixed_captures_succeeded_with_their_charge: {
        ok:
          a.answered_ok === mixedWrites.captured.length &&
          new Set(mixedWrites.captured).size === mixedWrites.captured.length &&
          a.other === 0 &&
          a.charged === a.succeeded &&
          capturedBeyond >= 0 &&
          capturedBeyond <= cutOff,
        detail:
          `${mixedWrites.captured.length} captures answered 2xx, ${a.answered_ok} of them succeeded in the database; ` +
          `${a.succeeded} of ${auths.length} seeded authorizations captured (${capturedBeyond} beyond the answers, ` +
          `${cutOff} capture-or-refund requests cut off), ${a.charged} with their charge posted, ${a.waiting} waiting, ` +
          `${a.other} in another status`,
      },
      mixed_refunds_recorded_once_with_their_posting: {
        ok:
          r.answered_found === refundIds.length &&
          new Set(refundIds).size === refundIds.length &&
          r.succeeded === r.total &&
          r.posted === r.total &&
          refundsBeyond >= 0 &&
          refundsBeyond <= cutOff &&
          events.n === r.succeeded &&
          drift.n === 0,
        detail:
          `${refundIds.length} refunds answered 2xx, ${r.answered_found} of them in the database; ${r.total} refunds in ` +
          `all (${refundsBeyond} beyond the answers), ${r.succeeded} succeeded, ${r.posted} with their refund posting, ` +
          `${events.n} refund.succeeded events; ${drift.n} payments whose amount_refunded differs from their refunds`,
      },
    },
  };
}

async function verify(): Promise<Verification> {
  const sql = postgres(benchDbUrl.toString(), { max: 1, onnotice: () => {} });
  try {
    const byStatus = Object.fromEntries(
      (
        await sql<
          { status: string; n: number }[]
        >`SELECT status, count(*)::int AS n FROM payments GROUP BY status ORDER BY status`
      ).map((r) => [r.status, r.n]),
    );
    const [{ attempts }] = await sql<{ attempts: number }[]>`SELECT count(*)::int AS attempts FROM payment_attempts`;
    const events = Object.fromEntries(
      (
        await sql<
          { type: string; n: number }[]
        >`SELECT type, count(*)::int AS n FROM events GROUP BY type ORDER BY type`
      ).map((r) => [r.type, r.n]),
    );
    const [keys] = await sql<{ total: number; completed: number }[]>`
      SELECT count(*)::int AS total, count(*) FILTER (WHERE completed_at IS NOT NULL)::int AS completed FROM idempotency_keys`;
    let found = 0;
    for (let i = 0; i < ledger.ids.length; i += 20_000) {
      const chunk = ledger.ids.slice(i, i + 20_000);
      const [row] = await sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM payments WHERE id = ANY(${chunk}::text[]) AND status = 'succeeded'`;
      found += row.n;
    }
    const [charges] = await sql<{ charges: number; priced: number; unbalanced: number }[]>`
      SELECT (SELECT count(*)::int FROM ledger_transactions WHERE type = 'charge') AS charges,
        (SELECT count(*)::int FROM payments p JOIN ledger_transactions l ON l.id = p.balance_transaction AND l.fee = p.fee AND l.amount = p.amount_received) AS priced,
        (SELECT count(*)::int FROM (SELECT 1 FROM ledger_entries GROUP BY transaction_id, currency HAVING sum(amount) <> 0) u) AS unbalanced`;
    const [drift] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM ledger_accounts a
      LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
      WHERE a.balance <> coalesce(e.total, 0)`;
    const succeeded = byStatus.succeeded ?? 0;
    const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
    const mixed = await verifyMixedWrites(sql);
    // Seeded authorizations that a capture made succeeded are not answers to payment-creating requests.
    const capturedSucceeded = mixed?.authorizationsSucceeded ?? 0;
    const [attemptsByOperation] = await sql<{ authorize: number; capture: number; other: number }[]>`
      SELECT count(*) FILTER (WHERE operation = 'authorize')::int AS authorize,
        count(*) FILTER (WHERE operation = 'capture')::int AS capture,
        count(*) FILTER (WHERE operation NOT IN ('authorize', 'capture'))::int AS other
      FROM payment_attempts`;
    const unanswered = ledger.sent - ledger.completed;
    const unique = new Set(ledger.ids).size;
    const idemUnanswered = ledger.idempotent.sent - ledger.idempotent.completed;
    const checks: Verification['checks'] = {
      no_error_responses: {
        ok: ledger.non2xx === 0 && ledger.errors === 0 && otherRuns.non2xx === 0 && otherRuns.errors === 0,
        detail: `payment runs: ${ledger.non2xx} non-2xx, ${ledger.errors} errors (${ledger.timeouts} timeouts); other runs: ${otherRuns.non2xx} non-2xx, ${otherRuns.errors} errors`,
      },
      every_2xx_is_a_succeeded_payment: {
        ok: found === ledger.ids.length && unique === ledger.ids.length && ledger.ids.length === ledger.ok,
        detail: `${ledger.ok} 2xx answers, ${ledger.ids.length} payment ids read from them (${unique} distinct), ${found} of them succeeded in the database`,
      },
      succeeded_count_matches: reconcilePayments({
        answered: ledger.ok,
        answeredCommitted: found,
        committed: succeeded - capturedSucceeded,
        unanswered,
      }),
      no_payment_left_unfinished: {
        // Only the mixed workload's seeded authorizations may still await their capture.
        ok:
          total === succeeded + (mixed?.authorizationsWaiting ?? 0) &&
          (byStatus.requires_capture ?? 0) === (mixed?.authorizationsWaiting ?? 0),
        detail: `payments by status: ${JSON.stringify(byStatus)}; seeded authorizations not captured: ${mixed?.authorizationsWaiting ?? 0}`,
      },
      one_attempt_and_two_events_per_payment: {
        // A manual capture adds its capture attempt and its payment.requires_capture event.
        ok:
          attempts === total + capturedSucceeded &&
          attemptsByOperation.authorize === total &&
          attemptsByOperation.capture === capturedSucceeded &&
          (events['payment.created'] ?? 0) === total &&
          (events['payment.succeeded'] ?? 0) === succeeded &&
          (events['payment.requires_capture'] ?? 0) === mixedWrites.authorizations.length,
        detail: `${attempts} attempts (${JSON.stringify(attemptsByOperation)}), events ${JSON.stringify(events)} for ${total} payments, ${mixedWrites.authorizations.length} of them authorizations to capture`,
      },
      ...mixed?.checks,
      one_balanced_charge_per_payment: {
        ok: charges.charges === succeeded && charges.priced === succeeded && charges.unbalanced === 0,
        detail: `${charges.charges} charge postings and ${charges.priced} payments whose fee and amount match theirs, for ${succeeded} succeeded payments; ${charges.unbalanced} unbalanced transactions`,
      },
      running_balances_equal_entries: {
        ok: drift.n === 0,
        detail: `${drift.n} ledger accounts whose running balance differs from the sum of their entries`,
      },
      idempotency_keys_completed: {
        ok:
          keys.completed === keys.total &&
          keys.total >= ledger.idempotent.ok &&
          keys.total <= ledger.idempotent.ok + idemUnanswered,
        detail: `${keys.completed}/${keys.total} keys completed; idempotent run: ${ledger.idempotent.ok} 2xx, ${idemUnanswered} cut off`,
      },
    };
    return {
      payment_requests: {
        sent: ledger.sent,
        answered: ledger.completed,
        '2xx': ledger.ok,
        non2xx: ledger.non2xx,
        errors: ledger.errors,
        timeouts: ledger.timeouts,
        unanswered,
      },
      database: { payments_by_status: byStatus, succeeded, attempts, events_by_type: events, idempotency_keys: keys },
      checks,
      ok: Object.values(checks).every((c) => c.ok),
      samples_of_failures: [...ledger.badSamples, ...otherRuns.badSamples],
    };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A run of the durable floor alone: the API's tables were never made; its only check is the floor's, added after. */
function noApiVerification(): Verification {
  return {
    payment_requests: { sent: 0, answered: 0, '2xx': 0, non2xx: 0, errors: 0, timeouts: 0, unanswered: 0 },
    database: {
      payments_by_status: {},
      succeeded: 0,
      attempts: 0,
      events_by_type: {},
      idempotency_keys: { total: 0, completed: 0 },
    },
    checks: {},
    ok: true,
    samples_of_failures: otherRuns.badSamples,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const pct = (fraction: number) => `${round(fraction * 100, 1)}%`;

function pad(cells: string[], widths: number[]) {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
}

function printTable() {
  const bareBy = (scenario: string, connections: number) =>
    results.find((r) => r.scenario === scenario && r.connections === connections) ??
    results
      .filter((r) => r.scenario === scenario)
      .sort((a, b) => Math.abs(a.connections - connections) - Math.abs(b.connections - connections))[0];
  for (const r of results) {
    if (r.target === 'bare fastify') {
      r.ratio_to_bare = 1;
      continue;
    }
    const base = r.baseline ? bareBy(r.baseline, r.connections) : undefined;
    r.ratio_to_bare = base ? round(r.requests_per_s / base.requests_per_s, 3) : null;
    if (base && base.connections !== r.connections) r.baseline = `${r.baseline}@${base.connections}`;
  }
  const header = ['scenario', 'conns', 'req/s', 'mean ms', 'p99 ms', 'peak RSS MB', 'vs bare'];
  const rows = results.map((r) => [
    r.scenario,
    String(r.connections),
    String(r.requests_per_s),
    r.latency_ms.mean.toFixed(2),
    String(r.latency_ms.p99),
    r.peak_rss_mb.toFixed(1),
    r.ratio_to_bare === null ? '—' : r.ratio_to_bare === 1 ? '1 (base)' : `${(r.ratio_to_bare * 100).toFixed(1)}%`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  console.log('\n' + pad(header, widths));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(pad(row, widths));

  const apiRows = results;
  if (apiRows.length) {
    const dheader = [
      'scenario',
      'conns',
      'server cores',
      'PG(db) cores',
      'PG(all)',
      'loadgen',
      'other',
      'busy %',
      'srv CPU ms/req',
      'PG CPU ms/req',
      'commits/s',
      'commits/req',
      'WAL syncs/s',
      'batch items',
      'srv mean ms',
    ];
    const drows = apiRows.map((r) => {
      const d = r.diagnostics;
      return [
        r.scenario,
        String(r.connections),
        d.cpu_cores.server.toFixed(2),
        d.cpu_cores.postgres_bench_db.toFixed(2),
        d.cpu_cores.postgres.toFixed(2),
        d.cpu_cores.load_generator.toFixed(2),
        d.cpu_cores.other.toFixed(2),
        d.cpu_cores.machine_busy_pct.toFixed(0),
        d.cpu_ms_per_request.server.toFixed(3),
        r.target !== 'bare fastify' ? d.cpu_ms_per_request.postgres_bench_db.toFixed(3) : '—',
        String(d.db?.commits_per_s ?? '—'),
        String(d.db?.commits_per_request ?? '—'),
        String(d.db?.wal_syncs_per_s ?? '—'),
        String(d.batches?.mean_items ?? '—'),
        String(d.server_mean_latency_ms ?? '—'),
      ];
    });
    const dwidths = dheader.map((h, i) => Math.max(h.length, ...drows.map((row) => row[i].length)));
    console.log(
      `\nWhere the time goes: CPU in cores of ${cpus().length} ("other" = processes outside the benchmark sharing the machine; ` +
        'PG = every postgres process); commits and WAL syncs from pg_stat_database / pg_stat_wal; batch items from write_batch_size:',
    );
    const shared = results.filter((r) => r.diagnostics.cpu_cores.other >= 0.25);
    if (shared.length)
      console.log(
        `WARNING: other processes used ≥ 0.25 cores during ${shared.length} of ${results.length} runs: absolute figures are understated; compare ratios.`,
      );
    console.log(pad(dheader, dwidths));
    console.log(dwidths.map((w) => '-'.repeat(w)).join('  '));
    for (const row of drows) console.log(pad(row, dwidths));
  }
}

function assessTargets() {
  const creates = results.filter((r) => r.scenario === 'create_confirm');
  const meeting = creates.filter(
    (r) => r.requests_per_s >= TARGET.paymentsPerSecond && r.latency_ms.p99 <= TARGET.p99Ms && r.responses.non2xx === 0,
  );
  const best = [...creates].sort((a, b) => b.requests_per_s - a.requests_per_s)[0];
  const atVariant = creates.find((r) => r.connections === config.variantConnections);
  const spread = results.find((r) => r.scenario === 'create_confirm_100_tenants');
  const ledger = atVariant?.ratio_to_bare
    ? {
        connections: atVariant.connections,
        ratio_to_bare: atVariant.ratio_to_bare,
        cost: round(1 - atVariant.ratio_to_bare / CORE_RATIO_AT_100, 3),
        within_budget: atVariant.ratio_to_bare >= CORE_RATIO_AT_100 * (1 - LEDGER_BUDGET),
        one_tenant_per_s: atVariant.requests_per_s,
        hundred_tenants_per_s: spread?.requests_per_s ?? null,
        hundred_vs_one: spread ? round(spread.requests_per_s / atVariant.requests_per_s, 3) : null,
      }
    : null;
  // The fraud decision's cost: create+confirm with fraud checks on against off, per connection level.
  const fraud = creates.flatMap((first) => {
    const at = (scenario: string) =>
      results.filter((r) => r.scenario === scenario && r.connections === first.connections);
    const offs = at('create_confirm_fraud_off');
    if (!offs.length) return [];
    const ons = [first, ...at('create_confirm_fraud_on')];
    const mean = (runs: ScenarioResult[]) => runs.reduce((sum, r) => sum + r.requests_per_s, 0) / runs.length;
    const ratio = round(mean(ons) / mean(offs), 3);
    // CPU per payment (API + this database's PostgreSQL backends) is much less disturbed than throughput by other
    // processes sharing the machine: printed beside the ratio, as what the decision costs in work.
    const cpuPerPayment = (runs: ScenarioResult[]) =>
      runs.reduce(
        (sum, r) => sum + r.diagnostics.cpu_ms_per_request.server + r.diagnostics.cpu_ms_per_request.postgres_bench_db,
        0,
      ) / runs.length;
    return [
      {
        connections: first.connections,
        on_per_s: round(mean(ons), 0),
        on_runs_per_s: ons.map((r) => r.requests_per_s),
        off_per_s: round(mean(offs), 0),
        off_runs_per_s: offs.map((r) => r.requests_per_s),
        on_p99_ms: Math.max(...ons.map((r) => r.latency_ms.p99)),
        off_p99_ms: Math.max(...offs.map((r) => r.latency_ms.p99)),
        on_vs_off: ratio,
        cpu_ms_per_payment: { on: round(cpuPerPayment(ons), 3), off: round(cpuPerPayment(offs), 3) },
        met: ratio >= TARGET.fraudOnVsOff,
      },
    ];
  });
  const mixed = results
    .filter((r) => r.classes)
    .map((r) => ({
      web_concurrency: r.web_concurrency ?? 1,
      connections: r.connections,
      requests_per_s: r.requests_per_s,
      mean_ms: r.latency_ms.mean,
      p99_ms: r.latency_ms.p99,
      reads: { mean_ms: r.classes!.reads.mean, p99_ms: r.classes!.reads.p99, count: r.classes!.reads.count },
      writes: { mean_ms: r.classes!.writes.mean, p99_ms: r.classes!.writes.p99, count: r.classes!.writes.count },
      errors: r.responses.non2xx + r.responses.errors,
      met:
        r.requests_per_s >= MIXED_TARGET.requestsPerSecond &&
        r.latency_ms.mean <= MIXED_TARGET.meanMs &&
        r.latency_ms.p99 <= MIXED_TARGET.p99Ms &&
        r.responses.non2xx + r.responses.errors === 0,
    }));
  return {
    target: TARGET,
    mixed_target: MIXED_TARGET,
    mixed,
    ledger,
    fraud_on_vs_off: fraud,
    create_confirm_best: best
      ? { connections: best.connections, payments_per_s: best.requests_per_s, p99_ms: best.latency_ms.p99 }
      : null,
    throughput_and_p99_met: meeting.length > 0,
    met_at_connections: meeting.map((r) => r.connections),
    api_peak_rss_mb: apiRssPeakMb,
    rss_met: apiRssPeakMb > 0 && apiRssPeakMb <= TARGET.rssMb,
    mixed_peak_rss_mb: mixedRssPeakMb,
  };
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

const children = new Set<Child>();
let adminSql: postgres.Sql | undefined;
let dbCreated = false;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of [...children]) {
      await stopChild(child).catch(() => {});
      children.delete(child);
    }
    await monitorSql?.end({ timeout: 5 }).catch(() => {});
    monitorSql = undefined;
    if (adminSql && dbCreated && !config.keepDb) {
      await adminSql
        .unsafe(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`)
        .catch((error) => console.error(`could not drop ${DB_NAME}: ${error.message}`));
    }
    await adminSql?.end({ timeout: 5 }).catch(() => {});
    adminSql = undefined;
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping children and dropping ${DB_NAME}…`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main() {
  const startedAt = new Date();
  const t0 = Date.now();
  mkdirSync(RESULTS_DIR, { recursive: true });
  const needApi = [...config.scenarios].some((s) => !s.startsWith('bare_') && !s.startsWith('floor_') && s !== 'mixed');
  const needDb = needApi || wants('mixed') || wants('floor_create') || wants('floor_retrieve');
  console.log(
    `PayForward benchmark: ${cpus().length} cores, node ${process.version}; ${config.duration}s per run after ${config.warmup}s warm-up; ` +
      `connections ${config.connections.join('/')} (variants at ${config.variantConnections})`,
  );

  adminSql = postgres(serverUrl.toString(), { max: 1, onnotice: () => {} });
  const [{ version }] = await adminSql<{ version: string }[]>`SELECT version()`;
  const [{ sync }] = await adminSql<{ sync: string }[]>`SELECT current_setting('synchronous_commit') AS sync`;
  const apiPort = await freePort(config.apiPort);
  const barePort = await freePort(apiPort + 1);

  console.log('\n[1/3] bare fastify baseline');
  await benchBare(barePort);

  let verification: Verification | undefined;
  if (needDb) {
    console.log(`\n[2/3] PayForward API on a fresh database ${DB_NAME}`);
    await adminSql.unsafe(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await adminSql.unsafe(`CREATE DATABASE ${DB_NAME}`);
    dbCreated = true;
    if (config.pgStatements) {
      const [{ major }] = await adminSql<
        { major: string }[]
      >`SELECT current_setting('server_version_num')::int / 10000 AS major`;
      pgLogFile = config.pgLog ?? `/var/log/postgresql/postgresql-${major}-main.log`;
      logOffset(pgLogFile); // fails now, not after the load, if the log cannot be read
      // Only this database's connections log every statement; the server and its other databases are untouched.
      await adminSql.unsafe(`ALTER DATABASE ${DB_NAME} SET log_min_duration_statement = 0`);
    }
    monitorSql = postgres(benchDbUrl.toString(), {
      max: 2,
      onnotice: () => {},
      connection: { application_name: 'payforward-bench-monitor' },
    });
    // The API runs as it does in production: the bundle `npm run build` makes, without tsx's loader.
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
    if (wants('floor_create') || wants('floor_retrieve')) await benchFloor(await freePort(apiPort + 2));
    if (needApi) await benchApi(apiPort);
    if (wants('mixed')) {
      const mixedPort = await freePort(apiPort + 5);
      for (const n of config.webConcurrency) await benchMixed(mixedPort, n);
    }
    await sleep(1500); // requests cut off at the end of the last run finish server-side
    console.log('\n[3/3] verifying the database against the answers');
    verification = needApi || wants('mixed') ? await verify() : noApiVerification();
    if (floorCheck) {
      verification.checks.durable_floor_wrote_each_answer_once = floorCheck;
      verification.ok &&= floorCheck.ok;
    }
    apiStdoutProblems.push(...(apiChild?.problems ?? []));
    if (apiChild) {
      const code = await stopChild(apiChild);
      children.delete(apiChild);
      if (code !== 0) console.log(`  note: the API exited with code ${code}`);
    }
    if (config.cpuProf) {
      // One profile per thread (tsx's loader hooks run in their own); the main thread's is the largest.
      const files = readdirSync(join(RESULTS_DIR, 'cpuprof'))
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(RESULTS_DIR, 'cpuprof', f))
        .sort((a, b) => statSync(b).size - statSync(a).size);
      if (files.length) {
        profileSummary = summarizeProfile(files[0], 40);
        console.log(
          `  CPU profile of the API's main thread: ${files[0]} (summary in bench/results/cpuprof/summary.json)`,
        );
        writeFileSync(join(RESULTS_DIR, 'cpuprof', 'summary.json'), JSON.stringify(profileSummary, null, 2));
      }
    }
  }
  await cleanup();

  printTable();
  const targets = assessTargets();
  if (verification) {
    console.log(`\nCorrectness (${verification.ok ? 'PASS' : 'FAIL'}):`);
    for (const [name, check] of Object.entries(verification.checks))
      console.log(`  ${check.ok ? 'ok  ' : 'FAIL'} ${name}: ${check.detail}`);
    for (const sample of verification.samples_of_failures) console.log(`  sample: ${sample}`);
  }
  if (apiStdoutProblems.length) {
    console.log(`\nAPI warnings/errors logged (${apiStdoutProblems.length}, first 5):`);
    for (const line of apiStdoutProblems.slice(0, 5)) console.log(`  ${line.slice(0, 400)}`);
  }
  if (targets.create_confirm_best) {
    console.log(
      `\nTarget ≥ ${TARGET.paymentsPerSecond} payments/s with p99 ≤ ${TARGET.p99Ms} ms: ${targets.throughput_and_p99_met ? `MET at ${targets.met_at_connections.join(', ')} connections` : 'NOT MET'}` +
        ` (best create+confirm: ${targets.create_confirm_best.payments_per_s}/s, p99 ${targets.create_confirm_best.p99_ms} ms at ${targets.create_confirm_best.connections} connections)`,
    );
    console.log(
      `Target RSS ≤ ${TARGET.rssMb} MB: ${targets.rss_met ? 'MET' : 'NOT MET'} (API peak ${targets.api_peak_rss_mb} MB, ` +
        'one `dist/main.js api` process)',
    );
  }
  const mixedPeaks = Object.entries(targets.mixed_peak_rss_mb);
  if (mixedPeaks.length)
    console.log(
      `Mixed servers' peak RSS, all their processes: ${mixedPeaks.map(([n, mb]) => `${n} ${mb} MB`).join(', ')}`,
    );
  if (targets.ledger) {
    const l = targets.ledger;
    console.log(
      `Ledger posting: create+confirm at ${l.connections} connections is ${pct(l.ratio_to_bare)} of bare fastify, against ${pct(CORE_RATIO_AT_100)} before posting: ` +
        `a cost of ${pct(l.cost)} (budget ${pct(LEDGER_BUDGET)}: ${l.within_budget ? 'MET' : 'NOT MET'})` +
        (l.hundred_tenants_per_s
          ? `; 1 tenant ${l.one_tenant_per_s}/s vs 100 tenants ${l.hundred_tenants_per_s}/s (ratio ${l.hundred_vs_one})`
          : ''),
    );
  }
  for (const f of targets.fraud_on_vs_off)
    console.log(
      `Fraud checks at ${f.connections} connections, run off, on, on, off: on ${f.on_per_s}/s ` +
        `(mean of ${f.on_runs_per_s.join(' and ')}; p99 ≤ ${f.on_p99_ms} ms) vs off ${f.off_per_s}/s ` +
        `(mean of ${f.off_runs_per_s.join(' and ')}; p99 ≤ ${f.off_p99_ms} ms): on/off ${f.on_vs_off} ` +
        `(target ≥ ${TARGET.fraudOnVsOff}: ${f.met ? 'MET' : 'NOT MET'}); CPU per payment, API + PostgreSQL: ` +
        `on ${f.cpu_ms_per_payment.on} ms, off ${f.cpu_ms_per_payment.off} ms`,
    );
  // Each request kind against its durable floor measured in the same run, at the same connections.
  const floorRatios = (
    [
      ['create_confirm', 'floor_create'],
      ['retrieve', 'floor_retrieve'],
    ] as const
  ).flatMap(([scenario, floorScenario]) =>
    results
      .filter((r) => r.scenario === scenario)
      .flatMap((r) => {
        const floor = results.find((f) => f.scenario === floorScenario && f.connections === r.connections);
        return floor
          ? [
              {
                scenario,
                connections: r.connections,
                per_s: r.requests_per_s,
                floor_per_s: floor.requests_per_s,
                ratio: round(r.requests_per_s / floor.requests_per_s, 3),
                cpu_ms_per_request: {
                  api: r.diagnostics.cpu_ms_per_request.server,
                  api_floor: floor.diagnostics.cpu_ms_per_request.server,
                  postgres: r.diagnostics.cpu_ms_per_request.postgres_bench_db,
                  postgres_floor: floor.diagnostics.cpu_ms_per_request.postgres_bench_db,
                },
              },
            ]
          : [];
      }),
  );
  for (const f of floorRatios)
    console.log(
      `${f.scenario} against the durable floor at ${f.connections} connections: ${f.per_s}/s vs ${f.floor_per_s}/s ` +
        `(${pct(f.ratio)}); CPU per request API ${f.cpu_ms_per_request.api} vs ${f.cpu_ms_per_request.api_floor} ms, ` +
        `PostgreSQL ${f.cpu_ms_per_request.postgres} vs ${f.cpu_ms_per_request.postgres_floor} ms`,
    );
  for (const m of targets.mixed)
    console.log(
      `Mixed workload, WEB_CONCURRENCY=${m.web_concurrency}, ${m.connections} connections: ${m.requests_per_s} req/s, ` +
        `mean ${m.mean_ms} ms, p99 ${m.p99_ms} ms, ${m.errors} errors; reads mean ${m.reads.mean_ms} ms p99 ` +
        `${m.reads.p99_ms} ms, writes mean ${m.writes.mean_ms} ms p99 ${m.writes.p99_ms} ms ` +
        `(target ≥ ${MIXED_TARGET.requestsPerSecond} req/s, mean ≤ ${MIXED_TARGET.meanMs} ms, p99 ≤ ` +
        `${MIXED_TARGET.p99Ms} ms, 0 errors: ${m.met ? 'MET' : 'NOT MET'})`,
    );
  if (rollupsInterleaved) {
    const r = rollupsInterleaved;
    console.log(
      `Analytics rollups' cost to create+confirm, ${r.pairs} interleaved pairs of ${r.slice_seconds}s at ` +
        `${r.connections} connections: median ${percent(r.cost_median)}, mean ${percent(r.cost_mean)} (95% interval ` +
        `${percent(r.cost_ci95[0])} to ${percent(r.cost_ci95[1])}); ${Math.round(r.payments_per_s.on)}/s on, ` +
        `${Math.round(r.payments_per_s.off)}/s off; CPU ms per payment on/off: API ${r.cpu_ms_per_payment.on.api.toFixed(3)}/` +
        `${r.cpu_ms_per_payment.off.api.toFixed(3)}, PostgreSQL ${r.cpu_ms_per_payment.on.postgres.toFixed(3)}/` +
        `${r.cpu_ms_per_payment.off.postgres.toFixed(3)} (budget 5%: ${r.cost_ci95[1] <= 0.05 ? 'MET' : r.cost_median <= 0.05 ? 'median within, interval not' : 'NOT MET'})`,
    );
  }
  const report = {
    started_at: startedAt.toISOString(),
    wall_seconds: round((Date.now() - t0) / 1000, 1),
    machine: {
      cores: cpus().length,
      cpu: cpus()[0]?.model,
      memory_gb: round(totalmem() / 2 ** 30, 1),
      node: process.version,
      postgres: version,
      synchronous_commit: sync,
    },
    config: { ...config, scenarios: [...config.scenarios], serverUrl: undefined, database: DB_NAME },
    results,
    targets,
    floor_ratios: floorRatios,
    verification,
    rollups_interleaved: rollupsInterleaved,
    api_log_problems: apiStdoutProblems.slice(0, 20),
    cpu_profile: profileSummary,
  };
  writeFileSync(join(RESULTS_DIR, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(`\nWrote ${join('bench', 'results', 'latest.json')} (${report.wall_seconds}s)`);
  if (verification && !verification.ok) process.exitCode = 1;
}

main().catch(async (error) => {
  console.error(`\nbenchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  await cleanup();
  process.exit(1);
});
