/**
 * `npm run bench:rollups`: what the analytics rollup triggers (migrations 035 and later) cost the payment path in
 * PostgreSQL, measurable on a busy machine.
 *
 *   1. a fresh database `payforward_bench_rollups` on the local PostgreSQL, migrated to head, the app in this
 *      process (bench/in-process-app.ts), BENCH_TENANTS tenants (default 1, as `npm run bench`'s create_confirm);
 *   2. rounds of BENCH_PAYMENTS payments (default 3,000) created and confirmed with an inline card through the app
 *      (`POST /v1/payments`, confirm: true: the same statements and micro-batches as under `npm run bench`, with
 *      BENCH_CONCURRENCY requests in flight, default 100, or with BENCH_WAVES=1 in waves of that many), alternately
 *      with the rollup triggers disabled (`ALTER TABLE … DISABLE TRIGGER` on this scratch database only) and
 *      enabled, BENCH_ROUNDS pairs (default 5);
 *   3. per round: the CPU time of this database's backends (from /proc/<pid>/schedstat, nanoseconds) per payment,
 *      the transactions, and with the triggers on the time spent inside each rollup trigger function
 *      (pg_stat_user_functions, track_functions = 'pl' on this database), the worker's fold of the payment change
 *      log included (migration 040: its loop runs throughout, and each round ends with a fold of what is left).
 *      Then the medians, off and on, and the share of PostgreSQL's time per payment the rollups add.
 *
 * The figure to hold against the 5% budget of issue 13 is the ratio on/off of PostgreSQL time per payment: the
 * throughput of `npm run bench` is bound by PostgreSQL's core, so the rollups' share of its CPU is at most their
 * share of the throughput. Node's own time (this process runs the app and the requests) is printed apart.
 *
 * Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres, a superuser);
 * BENCH_KEEP_DB=1 keeps the database.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { loadConfig } from '../src/config.js';
import { connect } from '../src/db/index.js';
import { migrate } from '../src/db/migrate.js';
import { foldAnalytics } from '../src/modules/analytics/service.js';
import { FOLD_APPLICATION, startAnalyticsFolds } from './analytics-fold.js';
import { median, setRollupTriggers } from './rollup-interleaved.js';
import { inProcessApp } from './in-process-app.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(ROOT, 'bench', 'results');
const DB_NAME = 'payforward_bench_rollups';

const payments = Number(process.env.BENCH_PAYMENTS ?? 3_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 100);
// Waves: BENCH_CONCURRENCY requests at once, the next wave when all have answered. Batches then vary less from
// round to round than with a steady BENCH_CONCURRENCY in flight, and so does PostgreSQL's time per payment.
const waves = process.env.BENCH_WAVES === '1';
const tenantCount = Number(process.env.BENCH_TENANTS ?? 1);
const keepDb = process.env.BENCH_KEEP_DB === '1';

const serverUrl = new URL(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const server = postgres(serverUrl.toString(), { max: 1, onnotice: () => {} });
await server.unsafe(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
await server.unsafe(`CREATE DATABASE ${DB_NAME}`);
// Time inside the trigger functions, per function: only this scratch database pays for the tracking.
await server.unsafe(`ALTER DATABASE ${DB_NAME} SET track_functions = 'pl'`);
const adminUrl = new URL(serverUrl);
adminUrl.pathname = `/${DB_NAME}`;
const admin = connect(adminUrl.toString(), { max: 2 });
// As `npm run bench` runs the API: no rate limit in the way, no Redis or RabbitMQ.
const config = loadConfig({
  ...process.env,
  LOG_LEVEL: 'error',
  SEED_DEMO_TENANT: 'false',
  REDIS_URL: '',
  AMQP_URL: '',
  RATE_LIMIT_PER_KEY: '10000000',
  RATE_LIMIT_PER_TENANT: '10000000',
  RATE_LIMIT_PER_ADDRESS: '10000000',
  PAYMENT_METHOD_RATE_LIMIT_PER_KEY: '10000000',
  PAYMENT_METHOD_RATE_LIMIT_PER_TENANT: '10000000',
});
await migrate(admin, config);
const { platform, app, platformKey } = await inProcessApp(adminUrl.toString(), config);

// Every analytics_* trigger on, to count them (and to fail early on a database without any).
const triggerCount = await setRollupTriggers(admin, true);

async function post(key: string, url: string, payload: unknown) {
  const response = await app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${key}` },
    payload: payload as never,
  });
  if (response.statusCode !== 200) throw new Error(`POST ${url}: ${response.statusCode} ${response.body}`);
  return response.json();
}

const keys: string[] = [];
for (let i = 0; i < tenantCount; i++) {
  const tenant = await post(platformKey, '/v1/tenants', { name: `Rollup bench ${i}` });
  keys.push(tenant.secret_keys.test.secret);
}

const CARD = { type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '123' } };

/** CPU time of a process so far, in nanoseconds (the first field of schedstat). */
function cpuNs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return 0;
  }
}

async function backends(): Promise<{ pid: number; fold: boolean }[]> {
  const rows = await server<{ pid: number; application_name: string }[]>`
    SELECT pid, application_name FROM pg_stat_activity WHERE datname = ${DB_NAME}`;
  return rows.map((r) => ({ pid: r.pid, fold: r.application_name === FOLD_APPLICATION }));
}

async function functionTimes(): Promise<Map<string, { calls: number; ms: number }>> {
  await admin`SELECT pg_stat_clear_snapshot()`;
  const rows = await admin<{ name: string; calls: string; ms: number }[]>`
    SELECT funcname AS name, calls::text, total_time AS ms FROM pg_stat_user_functions
    WHERE funcname LIKE 'analytics%' OR funcname = 'worker_fold_analytics'`;
  return new Map(rows.map((r) => [r.name, { calls: Number(r.calls), ms: r.ms }]));
}

async function walBytes(): Promise<number> {
  // The WAL position, not pg_stat_wal: backends report their statistics a second or more late.
  const [row] = await admin<{ bytes: string }[]>`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS bytes`;
  return Number(row.bytes);
}

async function transactions(): Promise<{ commits: number; rollbacks: number }> {
  await admin`SELECT pg_stat_clear_snapshot()`;
  const [row] = await admin<{ commits: string; rollbacks: string }[]>`
    SELECT xact_commit::text AS commits, xact_rollback::text AS rollbacks FROM pg_stat_database
    WHERE datname = ${DB_NAME}`;
  return { commits: Number(row.commits), rollbacks: Number(row.rollbacks) };
}

interface Round {
  triggers: 'off' | 'on';
  payments_per_s: number;
  pg_ms_per_payment: number;
  /** Of pg_ms_per_payment, the fold loop's backend: off the requests' path, on PostgreSQL's cores all the same. */
  fold_pg_ms_per_payment: number;
  /** WAL the whole server wrote per payment (nothing else writes during a round). */
  wal_kb_per_payment: number;
  node_ms_per_payment: number;
  payments_per_commit: number;
  rollbacks: number;
  trigger_ms_per_payment?: number;
  functions?: Record<string, { calls: number; ms_per_payment: number }>;
}

async function round(enabled: boolean): Promise<Round> {
  await setRollupTriggers(admin, enabled);
  // The backends the app has open stay open (a pool): their CPU before and after the round is theirs alone.
  const cpuBefore = new Map((await backends()).map(({ pid }) => [pid, cpuNs(pid)]));
  const functionsBefore = await functionTimes();
  const transactionsBefore = await transactions();
  const walBefore = await walBytes();
  const nodeBefore = process.cpuUsage();
  const started = performance.now();
  let next = 0;
  const pay = async () => {
    const key = keys[next++ % keys.length];
    const payment = await post(key, '/v1/payments', {
      amount: 2000,
      currency: 'usd',
      confirm: true,
      payment_method: CARD,
    });
    if (payment.status !== 'succeeded') throw new Error(`payment ${payment.id} is ${payment.status}`);
  };
  if (waves) {
    while (next < payments) await Promise.all(Array.from({ length: Math.min(concurrency, payments - next) }, pay));
  } else {
    const worker = async () => {
      while (next < payments) await pay();
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }
  const seconds = (performance.now() - started) / 1000;
  // What the fold loop has not moved yet belongs to this round's cost.
  await foldAnalytics(admin);
  const node = process.cpuUsage(nodeBefore);
  let pgNs = 0;
  let foldNs = 0;
  for (const { pid, fold } of await backends()) {
    const ns = cpuNs(pid) - (cpuBefore.get(pid) ?? 0);
    pgNs += ns;
    if (fold) foldNs += ns;
  }
  const transactionsAfter = await transactions();
  const walAfter = await walBytes();
  // An idle backend reports its function statistics within 10 seconds (PGSTAT_IDLE_INTERVAL).
  if (enabled) await admin`SELECT pg_sleep(10.5)`;
  const functionsAfter = await functionTimes();
  const commits = transactionsAfter.commits - transactionsBefore.commits;
  const result: Round = {
    triggers: enabled ? 'on' : 'off',
    payments_per_s: Math.round(payments / seconds),
    pg_ms_per_payment: pgNs / 1e6 / payments,
    fold_pg_ms_per_payment: foldNs / 1e6 / payments,
    wal_kb_per_payment: (walAfter - walBefore) / 1024 / payments,
    node_ms_per_payment: (node.user + node.system) / 1000 / payments,
    payments_per_commit: payments / commits,
    rollbacks: transactionsAfter.rollbacks - transactionsBefore.rollbacks,
  };
  if (enabled) {
    result.functions = {};
    let total = 0;
    for (const [name, after] of functionsAfter) {
      const before = functionsBefore.get(name) ?? { calls: 0, ms: 0 };
      if (after.calls === before.calls) continue;
      result.functions[name] = { calls: after.calls - before.calls, ms_per_payment: (after.ms - before.ms) / payments };
      total += after.ms - before.ms;
    }
    result.trigger_ms_per_payment = total / payments;
  }
  return result;
}

const fixed = (value: number, digits = 3) => value.toFixed(digits);

console.log(
  `${triggerCount} rollup triggers; ${rounds} pairs of rounds of ${payments} create+confirm payments, ` +
    `${concurrency} in flight${waves ? ' in waves' : ''}, ${tenantCount} tenant(s); ` +
    `load average ${loadavg()[0].toFixed(2)}`,
);
// The worker's fold loop (migration 040) runs throughout, as in production; its backend counts with the others.
const folds = startAnalyticsFolds(adminUrl.toString());
// One unmeasured round each way: plans cached, pool connections open, JIT of Node warm.
await round(false);
await round(true);
const results: Round[] = [];
for (let i = 0; i < rounds; i++) {
  for (const enabled of [false, true]) {
    const r = await round(enabled);
    results.push(r);
    console.log(
      `triggers ${r.triggers.padEnd(3)}  ${String(r.payments_per_s).padStart(5)} payments/s  ` +
        `PostgreSQL ${fixed(r.pg_ms_per_payment)} ms/payment (fold ${fixed(r.fold_pg_ms_per_payment)}), WAL ${fixed(r.wal_kb_per_payment, 2)} kB/payment  Node ${fixed(r.node_ms_per_payment)} ms/payment  ` +
        `${fixed(r.payments_per_commit, 1)} payments/commit  ${r.rollbacks} rollbacks` +
        (r.trigger_ms_per_payment !== undefined ? `  in triggers ${fixed(r.trigger_ms_per_payment)} ms/payment` : ''),
    );
  }
}

const off = results.filter((r) => r.triggers === 'off');
const on = results.filter((r) => r.triggers === 'on');
const pgOff = median(off.map((r) => r.pg_ms_per_payment));
const pgOn = median(on.map((r) => r.pg_ms_per_payment));
// Paired: each on-round against the off-round just before it, so a drift of the machine's load cancels out.
const pairedShares = on.map((r, i) => r.pg_ms_per_payment / off[i].pg_ms_per_payment - 1);
const functionNames = [...new Set(on.flatMap((r) => Object.keys(r.functions ?? {})))].sort();
const functions = Object.fromEntries(
  functionNames.map((name) => [
    name,
    {
      calls_per_round: median(on.map((r) => r.functions?.[name]?.calls ?? 0)),
      ms_per_payment: median(on.map((r) => r.functions?.[name]?.ms_per_payment ?? 0)),
    },
  ]),
);
const summary = {
  at: new Date().toISOString(),
  load_average: loadavg()[0],
  payments_per_round: payments,
  rounds,
  concurrency,
  waves,
  tenants: tenantCount,
  pg_ms_per_payment: { off: pgOff, on: pgOn },
  rollup_pg_ms_per_payment: pgOn - pgOff,
  fold_pg_ms_per_payment: median(on.map((r) => r.fold_pg_ms_per_payment)),
  rollup_share_of_pg: pgOn / pgOff - 1,
  rollup_share_paired_median: median(pairedShares),
  payments_per_s: {
    off: median(off.map((r) => r.payments_per_s)),
    on: median(on.map((r) => r.payments_per_s)),
  },
  in_trigger_functions_ms_per_payment: median(on.map((r) => r.trigger_ms_per_payment ?? 0)),
  functions,
  rounds_detail: results,
};
console.log('\nin the trigger functions (median of the rounds with triggers on):');
for (const [name, f] of Object.entries(functions))
  console.log(
    `  ${name.padEnd(34)} ${String(f.calls_per_round).padStart(6)} calls  ${fixed(f.ms_per_payment, 4)} ms/payment`,
  );
console.log(
  `\nPostgreSQL per payment: off ${fixed(pgOff)} ms, on ${fixed(pgOn)} ms: the rollups add ` +
    `${fixed(pgOn - pgOff)} ms, ${(summary.rollup_share_of_pg * 100).toFixed(1)}% ` +
    `(paired median ${(summary.rollup_share_paired_median * 100).toFixed(1)}%); ` +
    `${fixed(summary.in_trigger_functions_ms_per_payment)} ms inside the trigger functions; the fold's backend ` +
    `${fixed(summary.fold_pg_ms_per_payment)} ms`,
);
mkdirSync(RESULTS, { recursive: true });
writeFileSync(join(RESULTS, 'rollup-cost.json'), JSON.stringify(summary, null, 2) + '\n');

console.log(`the fold loop moved ${await folds.stop()} payment changes into the rollups`);
await app.close();
await platform.close();
await admin.end();
if (!keepDb) await server.unsafe(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
await server.end();
