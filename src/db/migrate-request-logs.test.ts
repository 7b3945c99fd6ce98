import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseAt } from '../../test/migrations.js';
import { loadConfig } from '../config.js';
import type { Sql } from './index.js';
import { FUNCTION_OWNER_ROLE, migrate } from './migrate.js';

// Migration 048 moved request_logs into one partition per UTC day. This builds a database as it stood at 047, with
// logs of several days in 018's table, runs the rest on it, then works the purge that now drops whole days.

let scratch: Awaited<ReturnType<typeof databaseAt>>;
let db: Sql;
const config = loadConfig({});

const DAY_MS = 86_400_000;
const today = () => new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);
const daysFromToday = (n: number) => new Date(today().getTime() + n * DAY_MS);
const partitionOf = (day: Date) => `request_logs_${day.toISOString().slice(0, 10).replaceAll('-', '')}`;

async function log(id: string, tenant: string, created: Date, status = 200) {
  await db`INSERT INTO request_logs (id, tenant_id, livemode, method, path, route, status, latency_ms, created_at)
    VALUES (${id}, ${tenant}, false, 'GET', '/v1/balance', '/v1/balance', ${status}, 4, ${created})`;
}

async function partitions(): Promise<string[]> {
  const rows = await db<{ name: string }[]>`
    SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = 'request_logs'::regclass ORDER BY 1`;
  return rows.map((r) => r.name);
}

/** The purge as the worker calls it: as the worker's role, through the SECURITY DEFINER function. */
async function purge(olderThan: string): Promise<number> {
  return db.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL ROLE "${config.workerDbRole}"`);
    const [{ purged }] = await tx<{ purged: string }[]>`
      SELECT worker_purge_request_logs(${olderThan}::interval, 1000) AS purged`;
    return Number(purged);
  });
}

beforeAll(async () => {
  scratch = await databaseAt('requestlogs047', '047_webhook_fan_out_queue.sql');
  db = scratch.db;
  await db`INSERT INTO tenants (id, name) VALUES ('ten_a', 'Shop A'), ('ten_b', 'Shop B')`;
  await log('req_old', 'ten_a', new Date(daysFromToday(-40).getTime() + 3_600_000));
  await log('req_week', 'ten_a', new Date(daysFromToday(-7).getTime() + 60_000), 402);
  await log('req_now', 'ten_b', new Date());
  await migrate(db, config);
});

afterAll(async () => {
  await scratch?.drop();
});

describe('migration 048: request logs by day', () => {
  it("keeps every row of 018's table, each in its day's partition, with a partition for today and the next two", async () => {
    const rows = await db<{ id: string; tenant_id: string; status: number; partition: string }[]>`
      SELECT id, tenant_id, status, tableoid::regclass::text AS partition FROM request_logs ORDER BY id`;
    expect(rows).toEqual([
      { id: 'req_now', tenant_id: 'ten_b', status: 200, partition: partitionOf(today()) },
      { id: 'req_old', tenant_id: 'ten_a', status: 200, partition: partitionOf(daysFromToday(-40)) },
      { id: 'req_week', tenant_id: 'ten_a', status: 402, partition: partitionOf(daysFromToday(-7)) },
    ]);
    expect(await partitions()).toEqual(
      [
        partitionOf(daysFromToday(-40)),
        partitionOf(daysFromToday(-7)),
        partitionOf(today()),
        partitionOf(daysFromToday(1)),
        partitionOf(daysFromToday(2)),
        'request_logs_default',
      ].sort(),
    );
    const [{ exists }] = await db<{ exists: boolean }[]>`SELECT to_regclass('request_logs_018') IS NOT NULL AS exists`;
    expect(exists).toBe(false);
  });

  it('gives the parent and every partition to the definer role, with row-level security forced on each', async () => {
    const tables = await db<{ owner: string; secured: boolean; forced: boolean }[]>`
      SELECT relowner::regrole::text AS owner, relrowsecurity AS secured, relforcerowsecurity AS forced FROM pg_class
      WHERE oid = 'request_logs'::regclass
        OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'request_logs'::regclass)`;
    expect(tables).toHaveLength(7);
    for (const table of tables) expect(table).toEqual({ owner: FUNCTION_OWNER_ROLE, secured: true, forced: true });
  });

  it("shows the API's role its own tenant's logs through request_logs and nothing by a partition's name", async () => {
    const seen = await db.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL ROLE "${config.appDbRole}"`);
      await tx`SELECT set_config('app.scope', 'ten_a:f', true)`;
      const parent = await tx<{ id: string }[]>`SELECT id FROM request_logs ORDER BY id`;
      const direct = await tx<{ id: string }[]>`SELECT id FROM ${tx(partitionOf(daysFromToday(-7)))}`;
      return { parent: parent.map((r) => r.id), direct: direct.map((r) => r.id) };
    });
    expect(seen).toEqual({ parent: ['req_old', 'req_week'], direct: [] });
  });

  it('drops the days older than the retention period whole, and deletes old rows of the default partition', async () => {
    // A row whose day has no partition (the worker stopped for weeks) went to the default partition.
    await db`SELECT request_log_partition(${daysFromToday(-39).toISOString().slice(0, 10)}::date)`;
    await db.unsafe(`ALTER TABLE ${partitionOf(daysFromToday(-39))} OWNER TO "${FUNCTION_OWNER_ROLE}"`);
    await log('req_stray', 'ten_b', daysFromToday(-50));
    const [stray] = await db<{ partition: string }[]>`
      SELECT tableoid::regclass::text AS partition FROM request_logs WHERE id = 'req_stray'`;
    expect(stray.partition).toBe('request_logs_default');

    expect(await purge('30 days')).toBeGreaterThanOrEqual(1);
    const left = await db<{ id: string }[]>`SELECT id FROM request_logs ORDER BY id`;
    expect(left.map((r) => r.id)).toEqual(['req_now', 'req_week']);
    const names = await partitions();
    expect(names).not.toContain(partitionOf(daysFromToday(-40)));
    expect(names).not.toContain(partitionOf(daysFromToday(-39)));
    expect(names).toContain(partitionOf(daysFromToday(-7)));
    expect(names).toContain(partitionOf(daysFromToday(2)));
  });

  it('leaves a day in the default partition when the default already holds rows of it, and says so', async () => {
    const later = daysFromToday(5);
    await log('req_future', 'ten_a', new Date(later.getTime() + 1000));
    const [made] = await db<{ made: boolean }[]>`
      SELECT request_log_partition(${later.toISOString().slice(0, 10)}::date) AS made`;
    expect(made.made).toBe(false);
    expect(await partitions()).not.toContain(partitionOf(later));
    const [row] = await db<{ partition: string }[]>`
      SELECT tableoid::regclass::text AS partition FROM request_logs WHERE id = 'req_future'`;
    expect(row.partition).toBe('request_logs_default');
  });
});
