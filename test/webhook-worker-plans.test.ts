import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { planLoggingConnection } from './plan-log.js';
import { bootAppOnOwnDatabase, call, createTenant, ok, type TestApp } from './helpers.js';

// The delivery workers' statements (migration 033) must keep their index-driven plans when the queue tables'
// statistics are stale, as they are right after a burst: planned from a table analyzed nearly empty, the dispatch
// walked every due delivery once per endpoint and drained a backlog at a third of its speed.
const ENDPOINTS = 20;
const EVENTS = 3_000;
const WORKER_FUNCTIONS = [
  'worker_fan_out_webhook_events',
  'worker_dispatch_webhook_deliveries',
  'worker_dispatched_webhook_deliveries',
  'worker_extend_webhook_leases',
  'worker_claim_webhook_deliveries',
  'worker_record_webhook_attempts',
];

describe('webhook worker statements under stale statistics', () => {
  let t: TestApp;
  let explained: postgres.Sql;
  const plans: string[] = [];

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase('webhook_plans', { WEBHOOK_ALLOW_PRIVATE: '127.0.0.0/8' });
    const tenant = await createTenant(t.app, 'Plans');
    for (let i = 0; i < ENDPOINTS; i++)
      await ok(
        await call(t.app, tenant.testKey, 'POST', '/v1/webhook_endpoints', {
          url: `http://127.0.0.1:9/e${i}`,
          enabled_events: ['*'],
        }),
      );
    // Statistics taken while the queue is empty, and no autovacuum to refresh them during the test.
    for (const table of ['events', 'webhook_fan_out_queue', 'webhook_deliveries', 'webhook_endpoints']) {
      await t.admin.unsafe(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
      await t.admin.unsafe(`ANALYZE ${table}`);
    }
    await t.admin`
      INSERT INTO events (id, tenant_id, livemode, type, object_id, data)
      SELECT 'evt_plan' || lpad(n::text, 6, '0'), ${tenant.id}, false, 'payment.succeeded', 'pay_' || n,
        json_build_object('object', json_build_object('id', 'pay_' || n, 'object', 'payment'))
      FROM generate_series(1, ${EVENTS}) AS n`;
    // Every plan a worker statement runs, nested ones included, reaches `plans`.
    explained = await planLoggingConnection(t.adminUrl, plans);
  });
  afterAll(async () => {
    await explained?.end();
    await t?.close();
  });

  /** The plans of the statements inside `run` that touch the queue tables. */
  async function plansOf(run: () => Promise<unknown>) {
    plans.length = 0;
    await run();
    return plans
      .filter((plan) => /webhook_deliveries|webhook_endpoints|webhook_fan_out_queue|events/.test(plan))
      .join('\n');
  }

  function expectIndexDriven(plan: string) {
    expect(plan).not.toMatch(/Seq Scan on (webhook_deliveries|webhook_endpoints|webhook_fan_out_queue|events)/);
    expect(plan).not.toMatch(/Bitmap Heap Scan|Hash Join|Merge Join/);
  }

  it('each worker function carries the planner settings and keeps its plans between calls', async () => {
    const rows = await t.admin<{ proname: string; proconfig: string[]; language: string }[]>`
      SELECT p.proname, p.proconfig, l.lanname AS language FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
      WHERE p.proname = ANY (${WORKER_FUNCTIONS})`;
    expect(rows.map((r) => r.proname).sort()).toEqual([...WORKER_FUNCTIONS].sort());
    for (const row of rows) {
      expect(row.proconfig, row.proname).toContain('enable_seqscan=off');
      // A LANGUAGE sql function with SET clauses is planned anew at every call (migration 046).
      expect(row.language, row.proname).toBe('plpgsql');
    }
  });

  it('fan-out, dispatch, message lookup, lease extension, claim and record probe indexes from the rows they are handed', async () => {
    const fanOut = await plansOf(() => explained`SELECT * FROM worker_fan_out_webhook_events(${EVENTS})`);
    expectIndexDriven(fanOut);
    const [{ count: deliveries }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM webhook_deliveries WHERE status = 'pending'`;
    expect(deliveries).toBe(EVENTS * ENDPOINTS);

    let dispatched: { id: string; dispatch_seq: number }[] = [];
    const dispatch = await plansOf(
      async () =>
        (dispatched = await explained`
          SELECT * FROM worker_dispatch_webhook_deliveries(now(), 500, 16, '300 seconds', '{}')`),
    );
    expectIndexDriven(dispatch);
    expect(dispatch).toMatch(/Index Scan using webhook_deliveries_due/);
    // 16 per endpoint at most, and the 500 oldest due are spread over every endpoint.
    expect(dispatched.length).toBeGreaterThan(0);
    expect(dispatched.length).toBeLessThanOrEqual(ENDPOINTS * 16);

    let found: readonly unknown[] = [];
    const lookup = await plansOf(
      async () =>
        (found = await explained`
          SELECT * FROM worker_dispatched_webhook_deliveries(${dispatched.map((d) => d.id)},
            ${dispatched.map((d) => d.dispatch_seq)}::integer[])`),
    );
    expectIndexDriven(lookup);
    expect(found).toHaveLength(dispatched.length);

    // Once the broker has confirmed their jobs, the dispatched deliveries get the long lease.
    const extend = await plansOf(
      () => explained`
        SELECT worker_extend_webhook_leases(${dispatched.map((d) => d.id)},
          ${dispatched.map((d) => d.dispatch_seq)}::integer[],
          ${dispatched.map(() => new Date(Date.now() + 600_000).toISOString())}::timestamptz[])`,
    );
    expectIndexDriven(extend);
    const [{ count: extended }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM webhook_deliveries WHERE dispatch_until > now() + interval '500 seconds'`;
    expect(extended).toBe(dispatched.length);

    let claimed: { id: string; dispatch_seq: number }[] = [];
    const claim = await plansOf(
      async () =>
        (claimed = await explained`
          SELECT * FROM worker_claim_webhook_deliveries(now(), 256, 4, '40 seconds', '{}', '{}', '{}')`),
    );
    expectIndexDriven(claim);
    expect(claimed.length).toBeGreaterThan(0);

    const ids = claimed.map((c) => c.id);
    const record = await plansOf(
      () => explained`
        SELECT * FROM worker_record_webhook_attempts(
          ${ids.map((id) => id.replace(/^whd_/, 'wha_'))}, ${ids}, ${ids.map(() => 'succeeded')},
          ${ids.map(() => 200)}::integer[], ${ids.map(() => 3)}::integer[], ${ids.map(() => '')},
          ${ids.map(() => null)}::text[], ${ids.map(() => new Date().toISOString())}::timestamptz[],
          ${ids.map(() => 'succeeded')}, ${ids.map(() => null)}::timestamptz[],
          ${claimed.map((c) => c.dispatch_seq)}::integer[], ${ids.map(() => null)}::timestamptz[])`,
    );
    expectIndexDriven(record);
    const [{ count: succeeded }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM webhook_deliveries WHERE status = 'succeeded'`;
    expect(succeeded).toBe(claimed.length);
  });

  it('the plans a connection keeps after repeated calls (generic ones included) still probe indexes', async () => {
    // PostgreSQL may switch a kept statement to a generic plan, made without the arguments, after its fifth run.
    const calls = await plansOf(async () => {
      for (let run = 0; run < 7; run++) {
        await explained`SELECT * FROM worker_fan_out_webhook_events(1000)`;
        await explained`SELECT * FROM worker_dispatch_webhook_deliveries(now() - interval '1 day', 500, 16, '300 seconds', '{}')`;
        await explained`SELECT * FROM worker_claim_webhook_deliveries(now() - interval '1 day', 256, 4, '40 seconds', '{}',
          '{}', '{}')`;
        await explained`SELECT * FROM worker_dispatched_webhook_deliveries('{whd_none}', '{1}')`;
      }
    });
    expect(calls.match(/Index Scan|Index Only Scan/g)?.length ?? 0).toBeGreaterThanOrEqual(7 * 4);
    expectIndexDriven(calls);
  });

  it('a claim hands an endpoint with requests in flight no more than its free slots', async () => {
    const due = await t.admin<{ endpoint_id: string }[]>`
      SELECT endpoint_id FROM webhook_deliveries WHERE status = 'pending'
      GROUP BY endpoint_id HAVING count(*) >= 8 ORDER BY endpoint_id LIMIT 2`;
    expect(due).toHaveLength(2);
    const [busy, idle] = due.map((d) => d.endpoint_id);
    // An hour ahead every pending delivery is due, the leased ones included; `busy` has one slot of four free.
    const claimed = await t.admin<{ endpoint_id: string }[]>`
      SELECT endpoint_id FROM worker_claim_webhook_deliveries(now() + interval '1 hour', 10000, 4, '40 seconds', '{}',
        ${[busy]}::text[], ${[1]}::integer[])`;
    const of = (endpoint: string) => claimed.filter((c) => c.endpoint_id === endpoint).length;
    expect(of(busy)).toBe(1);
    expect(of(idle)).toBe(4);
  });
});
