/**
 * `npm run bench:webhooks`: webhook delivery throughput and lag on this machine.
 *
 *   1. a fresh database `payforward_bench_webhooks` on the local PostgreSQL, migrated; the app and
 *      one delivery worker (src/workers/webhook-delivery.ts, PostgreSQL queue) in this process;
 *      BENCH_TENANTS tenants (default 20) with 2 endpoints each (`*`), all on a receiver in a process of its own
 *      (bench/webhook-receiver.ts) that answers 200 at once. Many endpoints, as a platform has: with a few, the
 *      per-endpoint rate limit (WEBHOOK_ENDPOINT_RATE, 500/s by default) is what a backlog measures;
 *   2. steady load: events committed at BENCH_EVENTS_PER_SECOND (default 1,000, so 2,000
 *      deliveries/s) for BENCH_DURATION seconds; prints deliveries/s and the lag from each event's
 *      commit to its arrival at the receiver, p50 and p99;
 *   3. backlog: BENCH_BACKLOG events (default 10,000, so 20,000 deliveries) committed at once;
 *      prints how fast the worker drains them (deliveries/s).
 * Events are inserted into the outbox table directly, as a state change's transaction writes them:
 * this measures delivery, not the payment API.
 *
 * Transport: `npm run bench:webhooks -- --transport amqp` (or BENCH_WEBHOOK_TRANSPORT=amqp) sends the jobs through
 * RabbitMQ at AMQP_URL (default amqp://guest:guest@127.0.0.1:5672), under queues of the run's own prefix, deleted
 * at the end; `--transport postgres` (the default) uses the PostgreSQL queue.
 *
 * Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres, a superuser).
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { loadConfig } from '../src/config.js';
import { connect } from '../src/db/index.js';
import { migrate } from '../src/db/migrate.js';
import { newId } from '../src/lib/ids.js';
import { WebhookAmqpQueue } from '../src/workers/webhook-amqp.js';
import { WebhookDispatcher } from '../src/workers/webhook-delivery.js';
import { inProcessApp } from './in-process-app.js';
import { freePort, sleep, spawnNode, stopChild, waitReady } from './proc.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DB_NAME = 'payforward_bench_webhooks';
const TARGET = { deliveriesPerSecond: 2000, lagP99Ms: 1000 };
const eventsPerSecond = Number(process.env.BENCH_EVENTS_PER_SECOND ?? 1000);
const duration = Number(process.env.BENCH_DURATION ?? 15);
const backlog = Number(process.env.BENCH_BACKLOG ?? 10_000);
const tenantCount = Number(process.env.BENCH_TENANTS ?? 20);
const ENDPOINTS_PER_TENANT = 2;
const flag = process.argv.indexOf('--transport');
const transport = (flag >= 0 ? process.argv[flag + 1] : process.env.BENCH_WEBHOOK_TRANSPORT) ?? 'postgres';
if (transport !== 'amqp' && transport !== 'postgres') throw new Error(`--transport amqp|postgres, got ${transport}`);
const amqpUrl = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const amqpPrefix = `bench.webhooks.${randomBytes(4).toString('hex')}`;

const serverUrl = new URL(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const server = postgres(serverUrl.toString(), { max: 1, onnotice: () => {} });
await server.unsafe(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
await server.unsafe(`CREATE DATABASE ${DB_NAME}`);
const adminUrl = new URL(serverUrl);
adminUrl.pathname = `/${DB_NAME}`;
const admin = connect(adminUrl.toString(), { max: 4 });

const config = loadConfig({
  ...process.env,
  WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8',
  LOG_LEVEL: 'warn',
  WEBHOOK_TRANSPORT: transport,
  ...(transport === 'amqp' ? { AMQP_URL: amqpUrl, WEBHOOK_AMQP_PREFIX: amqpPrefix } : {}),
});
await migrate(admin, config);
const { platform, app, platformKey } = await inProcessApp(adminUrl.toString(), config);

const port = await freePort(4300);
const receiver = spawnNode('receiver', ['--import', 'tsx', 'bench/webhook-receiver.ts'], {
  cwd: ROOT,
  env: { ...process.env, PORT: String(port) },
});
await waitReady(receiver, `http://127.0.0.1:${port}/stats`, 20_000);
const stats = async () =>
  (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as {
    count: number;
    distinct: number;
    p50: number;
    p99: number;
    max: number;
  };

const tenants: string[] = [];
for (let i = 0; i < tenantCount; i++) {
  const tenant = await app.inject({
    method: 'POST',
    url: '/v1/tenants',
    headers: { authorization: `Bearer ${platformKey}` },
    payload: { name: `Bench tenant ${i}` },
  });
  const { id, secret_keys } = tenant.json();
  tenants.push(id);
  for (let e = 0; e < ENDPOINTS_PER_TENANT; e++) {
    const created = await app.inject({
      method: 'POST',
      url: '/v1/webhook_endpoints',
      headers: { authorization: `Bearer ${secret_keys.test.secret}` },
      payload: { url: `http://127.0.0.1:${port}/t${i}/e${e}`, enabled_events: ['*'] },
    });
    if (created.statusCode !== 200) throw new Error(created.body);
  }
}

/** Commits `count` events in one transaction, spread over the tenants, each stamped with its commit time. */
async function produce(count: number) {
  const ids: string[] = [];
  const owners: string[] = [];
  const data: string[] = [];
  const producedAt = Date.now();
  for (let i = 0; i < count; i++) {
    const id = newId('evt');
    ids.push(id);
    owners.push(tenants[i % tenants.length]);
    data.push(
      JSON.stringify({ object: { id: newId('pay'), object: 'payment', amount: 1000, produced_at: producedAt } }),
    );
  }
  await admin`
    INSERT INTO events (id, tenant_id, livemode, type, object_id, data)
    SELECT id, tenant, false, 'payment.succeeded', (data::json)->'object'->>'id', data::json
    FROM unnest(${ids}::text[], ${owners}::text[], ${data}::text[]) AS e (id, tenant, data)`;
}

const log = app.log;
const dispatcher = new WebhookDispatcher({ ...platform, log });
dispatcher.start();

const fanOut = ENDPOINTS_PER_TENANT;
console.log(`transport: ${transport === 'amqp' ? `RabbitMQ (${amqpPrefix}.*)` : 'PostgreSQL queue'}`);
console.log(`steady: ${eventsPerSecond} events/s × ${fanOut} endpoints for ${duration} s`);
const tickMs = 20;
const perTick = Math.max(1, Math.round((eventsPerSecond * tickMs) / 1000));
const started = Date.now();
let produced = 0;
while (Date.now() - started < duration * 1000) {
  const due = Math.floor(((Date.now() - started) / 1000) * eventsPerSecond);
  while (produced < due) {
    const n = Math.min(perTick, due - produced);
    await produce(n);
    produced += n;
  }
  await sleep(tickMs / 2);
}
const expected = produced * fanOut;
const deadline = Date.now() + 60_000;
while ((await stats()).count < expected && Date.now() < deadline) await sleep(100);
const steadyElapsed = (Date.now() - started) / 1000;
const steady = await stats();

await fetch(`http://127.0.0.1:${port}/reset`, { method: 'POST' });
console.log(`backlog: ${backlog} events × ${fanOut} endpoints committed at once`);
for (let done = 0; done < backlog; done += 1000) await produce(Math.min(1000, backlog - done));
const drainStart = Date.now();
const drainDeadline = Date.now() + 180_000;
while ((await stats()).count < backlog * fanOut && Date.now() < drainDeadline) await sleep(50);
const drainSeconds = (Date.now() - drainStart) / 1000;
const drained = await stats();

await dispatcher.stop();
if (transport === 'amqp') await WebhookAmqpQueue.deleteTopology(amqpUrl, amqpPrefix, config.webhooks.retryScheduleMs);
await stopChild(receiver);
await app.close();
await platform.close();
await admin.end();
await server.unsafe(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
await server.end();

const steadyRate = steady.count / steadyElapsed;
const drainRate = drained.count / drainSeconds;
const row = (name: string, value: string, target: string, met: boolean) =>
  console.log(`${name.padEnd(40)} ${value.padStart(12)}   target ${target.padEnd(10)} ${met ? 'met' : 'MISSED'}`);
console.log('');
// The machine is shared: figures taken under another workload's load are not this code's capacity.
console.log(`load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores at the end of the run`);
row(
  'steady events committed',
  `${(produced / duration).toFixed(0)}/s`,
  `${eventsPerSecond}/s`,
  produced / duration >= eventsPerSecond * 0.95,
);
row(
  `steady deliveries (${steady.count}/${expected})`,
  `${steadyRate.toFixed(0)}/s`,
  `${eventsPerSecond * fanOut}/s`,
  steady.count === expected && steadyRate >= eventsPerSecond * fanOut * 0.95,
);
row('steady lag p50 (commit → arrival)', `${steady.p50} ms`, '', true);
row('steady lag p99 (commit → arrival)', `${steady.p99} ms`, `≤ ${TARGET.lagP99Ms} ms`, steady.p99 <= TARGET.lagP99Ms);
row(
  `backlog drain (${drained.count}/${backlog * fanOut})`,
  `${drainRate.toFixed(0)}/s`,
  `≥ ${TARGET.deliveriesPerSecond}/s`,
  drainRate >= TARGET.deliveriesPerSecond,
);
row('lost deliveries', String(expected - steady.distinct + backlog * fanOut - drained.distinct), '0', true);
process.exit(0);
