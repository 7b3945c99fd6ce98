import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { inPageScope, inScope, type Sql, type Tx } from '../src/db/index.js';
import { listPage } from '../src/db/list.js';
import { primaryReads, type Reads } from '../src/db/replica.js';
import { EventService } from '../src/modules/events/service.js';
import { decidedPayments, loadConfiguration } from '../src/modules/fraud/repo.js';
import { readRefundChecks } from '../src/modules/refunds/service.js';
import { RequestLogService } from '../src/modules/request-logs/service.js';
import { SearchService } from '../src/modules/search/service.js';
import { AuditService } from '../src/modules/audit/service.js';
import { LedgerService } from '../src/modules/ledger/service.js';
import { idFloor, newId } from '../src/lib/ids.js';
import { planLoggingConnection } from './plan-log.js';
import { bootAppOnOwnDatabase, createTenant, payByCard, type TestApp } from './helpers.js';

// Statements whose cost must not grow with the data of the whole platform: each finds its rows by an index.
const RECENT = 5_000;
const AGED = 20;
const OTHER_LISTS = 200;
const OTHER_TENANTS_ITEMS = 20_000;

describe('statements that read by index what once grew with the platform', () => {
  let t: TestApp;
  let explained: postgres.Sql;
  let tenantId: string;
  let rows: { id: string; at: Date }[] = [];
  const plans: string[] = [];

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase('purge_plans');
    const tenant = await createTenant(t.app, 'Purge');
    const other = await createTenant(t.app, 'Other');
    tenantId = tenant.id;
    // Another tenant's many block lists, and a short one of the tenant's own.
    await t.admin`
      INSERT INTO fraud_lists (id, tenant_id, livemode, name, item_type, kind)
      SELECT 'rsl_plan_other' || n, ${other.id}, false, 'other' || n, 'email', 'block'
      FROM generate_series(1, ${OTHER_LISTS}) AS n
      UNION ALL SELECT 'rsl_plan_own', ${tenant.id}, false, 'own', 'email', 'block'`;
    await t.admin`
      INSERT INTO fraud_list_items (id, tenant_id, livemode, list_id, value)
      SELECT 'rsli_plan' || n, ${other.id}, false, 'rsl_plan_other' || (1 + n % ${OTHER_LISTS}),
        'x' || n || '@example.com'
      FROM generate_series(1, ${OTHER_TENANTS_ITEMS}) AS n
      UNION ALL SELECT 'rsli_own' || n, ${tenant.id}, false, 'rsl_plan_own', 'own' || n || '@example.com'
      FROM generate_series(1, 3) AS n`;
    await t.admin`ANALYZE fraud_lists, fraud_list_items`;
    // Three thousand payments two months old and ten from the last hour, each with its fraud decision.
    const old = Date.now() - 60 * 86_400_000;
    rows = Array.from({ length: 3_000 + 10 }, (_, n) => {
      const at = new Date(n < 3_000 ? old + n * 1_000 : Date.now() - 3_600_000 + n);
      return { id: newId('pay', at), at };
    });
    await t.admin`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method, created_at, updated_at)
      SELECT id, ${tenantId}, false, 1000, 'usd', 'succeeded', 'automatic', at, at
      FROM unnest(${rows.map((r) => r.id)}::text[], ${rows.map((r) => r.at.toISOString())}::timestamptz[]) AS r(id, at)`;
    await t.admin`
      INSERT INTO payment_fraud_decisions (payment_id, tenant_id, livemode, outcome, inputs)
      SELECT id, ${tenantId}, false, '{}', '{}' FROM payments WHERE tenant_id = ${tenantId}`;
    await t.admin`ANALYZE payments, payment_fraud_decisions`;
    await t.admin`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method)
      VALUES ('pay_purge_plan', ${tenant.id}, false, 100000000, 'usd', 'succeeded', 'automatic')`;
    await t.admin`
      INSERT INTO refunds (id, tenant_id, livemode, payment_id, amount, currency, status, idempotency_key, created_at)
      SELECT 're_purge' || lpad(n::text, 6, '0'), ${tenant.id}, false, 'pay_purge_plan', 1, 'usd', 'succeeded',
        'key-' || n, CASE WHEN n <= ${AGED} THEN now() - interval '3 days' ELSE now() END
      FROM generate_series(1, ${RECENT + AGED}) AS n`;
    await t.admin`ANALYZE refunds`;
    // Every plan a statement on this connection runs, nested ones included, reaches `plans`.
    explained = await planLoggingConnection(t.adminUrl, plans);
  });
  afterAll(async () => {
    await explained?.end();
    await t?.close();
  });

  /** `run` on the plan-logging connection as the application role, scoped to the tenant's test mode. */
  function asApp<T>(tenant: string, run: (tx: Tx) => Promise<T>): Promise<T> {
    return explained.begin(async (tx) => {
      await tx`SET LOCAL ROLE ${tx(t.config.appDbRole)}`;
      await tx`SELECT set_config('app.scope', ${`${tenant}:f`}, true)`;
      return run(tx as unknown as Tx);
    }) as Promise<T>;
  }

  /** `run` with a plan-logging connection of its own logged in as the application role, as the API's pools are. */
  async function onAppRoleConnection<T>(run: (sql: Sql) => Promise<T>): Promise<T> {
    const connection = await planLoggingConnection(t.adminUrl, plans);
    try {
      await connection`SET ROLE ${connection(t.config.appDbRole)}`;
      plans.length = 0;
      return await run(connection as unknown as Sql);
    } finally {
      await connection.end();
    }
  }

  /** `count` ids made a second apart up to now, oldest first: rows the table's statistics have not seen. */
  const recentIds = (prefix: string, count: number) =>
    Array.from({ length: count }, (_, n) => newId(prefix, new Date(Date.now() - (count - n) * 1_000)));

  /** The planner settings a page is read under (scopedPageRead, inPageScope). */
  const underPagePlanner = (tx: Tx) =>
    tx`SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true),
      set_config('enable_seqscan', 'off', true)`;

  /** The services' reads (Reads) on the plan-logging connection; a page under the page's planner settings. */
  const appReads: Reads = {
    inScope: (scope, fn) => asApp(scope.tenantId, fn),
    inPageScope: (scope, fn) => asApp(scope.tenantId, (tx) => underPagePlanner(tx).then(() => fn(tx))),
    page: (scope, fn) => asApp(scope.tenantId, (tx) => underPagePlanner(tx).then(() => fn(tx))),
  };

  it('releases only the aged refund keys, found through refunds_keyed instead of a scan of every refund', async () => {
    await explained`SELECT worker_purge_idempotency_keys('24 hours'::interval)`;
    const plan = plans.join('\n');
    expect(plan).toMatch(/Update on refunds/);
    expect(plan).toMatch(/Scan using refunds_keyed on refunds|Bitmap Index Scan on refunds_keyed/);
    expect(plan).not.toMatch(/Seq Scan on refunds/);
    const [counts] = await t.admin<{ released: number; kept: number }[]>`
      SELECT count(*) FILTER (WHERE idempotency_key IS NULL)::int AS released,
        count(idempotency_key)::int AS kept
      FROM refunds WHERE payment_id = 'pay_purge_plan'`;
    expect(counts).toEqual({ released: AGED, kept: RECENT });
  });

  it("checks a batch's refunds by index: keys through refunds_idempotency_key, payments and disputes by theirs", async () => {
    const scope = { tenantId, livemode: false };
    const checks = ['key-100', 'key-4000', 'key-none'].map((key) => ({
      scope,
      payment: 'pay_purge_plan',
      idempotencyKey: key,
    }));
    const results = await onAppRoleConnection(async (sql) => {
      // As the API's pools run a statement after five calls: one plan for any parameters. Under the refund benchmark
      // that plan read every refund of the tenant and filtered the keys; the check plans each call for its own keys.
      await sql`SET plan_cache_mode = force_generic_plan`;
      plans.length = 0;
      return readRefundChecks(sql, [
        ...checks,
        { scope: { ...scope, livemode: true }, payment: 'pay_purge_plan', idempotencyKey: 'key-100' },
      ]);
    });
    expect(plans.join('\n')).not.toMatch(/Seq Scan on (disputes|payments)|Bitmap Heap Scan on (disputes|payments)/);
    const plan = plans.filter((p) => /on refunds/.test(p)).join('\n');
    expect(plan).toMatch(/Index (Only )?Scan using refunds_idempotency_key on refunds/);
    // Planned for these keys (a plan for any keys would show `ANY ($3)`), and with them as the index's condition.
    expect(plan).toMatch(/Index Cond: .*idempotency_key = ANY \('\{key-100,key-4000,key-none\}'/);
    expect(plan).not.toMatch(/Bitmap Heap Scan on refunds|Seq Scan on refunds|refunds_tenant/);
    // The live mode has no refund under key-100: the test mode's is not taken for it.
    expect(results.map((r) => r.earlier)).toEqual([true, true, false, false]);
  });

  it("loads a tenant's fraud list items through its lists, not through every tenant's items", async () => {
    const scope = { tenantId, livemode: false };
    const loaded = await inScope(t.platform.sql, scope, (tx) => loadConfiguration(tx, scope));
    expect(loaded.items.map((item) => item.value).sort()).toEqual([
      'own1@example.com',
      'own2@example.com',
      'own3@example.com',
    ]);
    plans.length = 0;
    await asApp(tenantId, (tx) => loadConfiguration(tx, scope));
    const plan = plans.filter((p) => p.includes('fraud_list_items')).join('\n');
    expect(plan).toMatch(/(Index Scan using|Bitmap Index Scan on) fraud_list_items_list/);
    expect(plan).not.toMatch(/Seq Scan on fraud_list_items/);
  });

  it("reads a backtest's window from the tenant's payments by id range, not from the tenant's first payment", async () => {
    const scope = { tenantId, livemode: false };
    const since = new Date(Date.now() - 86_400_000);
    plans.length = 0;
    const decided = await asApp(tenantId, (tx) => decidedPayments(tx, scope, since, new Date()));
    expect(decided.map((p) => p.id).sort()).toEqual(
      rows
        .slice(3_000)
        .map((r) => r.id)
        .sort(),
    );
    const plan = plans.filter((p) => p.includes('payment_fraud_decisions')).join('\n');
    expect(plan).toMatch(/Index Cond: .*\(id >= 'pay_/);
  });

  it('lists by a created range through an id range of the tenant, with exactly the payments created in it', async () => {
    const scope = { tenantId, livemode: false };
    const seeded = (from: number, until: number) =>
      rows
        .filter((r) => r.at.getTime() >= from * 1000 && r.at.getTime() < until * 1000)
        .map((r) => r.id)
        .sort()
        .reverse();
    const lastDay = Math.floor(Date.now() / 1000) - 86_400;
    const oldest = Math.floor(rows[0].at.getTime() / 1000);
    for (const [params, expected] of [
      [{ 'created[gte]': lastDay, limit: 100 }, seeded(lastDay, Infinity)],
      [{ 'created[lt]': oldest + 10, limit: 100 }, seeded(0, oldest + 10)],
      [{ 'created[gt]': oldest + 4, 'created[lte]': oldest + 20, limit: 100 }, seeded(oldest + 5, oldest + 21)],
    ] as const) {
      plans.length = 0;
      const page = await asApp(tenantId, async (tx) => {
        // As the payments list reads its page (scopedPageRead): only walks of an index in list order.
        await underPagePlanner(tx);
        return listPage<{ id: string }>(tx, 'payments', scope, params);
      });
      expect(
        page.rows.map((row) => row.id).filter((id) => id !== 'pay_purge_plan'),
        JSON.stringify(params),
      ).toEqual(expected);
      const plan = plans.filter((p) => p.includes('FROM "payments" AS item')).join('\n');
      expect(plan, JSON.stringify(params)).toMatch(/Index Cond: .*\(id (>=|<) 'pay_/);
    }
  });

  it('lists balance transactions by a created range through an id range, with exactly those created in it', async () => {
    const tenant = await createTenant(t.app, 'Ledger plans');
    const before = Math.floor(Date.now() / 1000) - 1;
    const paid = [await payByCard(t.app, tenant.testKey, 2_000), await payByCard(t.app, tenant.testKey, 3_000)];
    const scope = { tenantId: tenant.id, livemode: false };
    const listed = async (params: Record<string, number>) => {
      plans.length = 0;
      const page = await asApp(tenant.id, (tx) =>
        listPage<{ id: string; source_id: string }>(tx, 'balance_transactions', scope, params),
      );
      const plan = plans.filter((p) => p.includes('FROM "balance_transactions" AS item')).join('\n');
      expect(plan, JSON.stringify(params)).toMatch(/Index Cond: .*\(id (>=|<) 'txn_/);
      return page.rows.map((row) => row.source_id).sort();
    };
    expect(await listed({ 'created[gte]': before, limit: 100 })).toEqual(paid.map((p) => p.id).sort());
    expect(await listed({ 'created[lt]': before, limit: 100 })).toEqual([]);
  });

  it("lists an object's events from the object's creation on, not from the tenant's first event", async () => {
    const scope = { tenantId, livemode: false };
    const old = rows[0];
    const recent = rows[3_005];
    const eventsOf = (object: { id: string; at: Date }, count: number) =>
      Array.from({ length: count }, (_, n) => ({
        id: newId('evt', new Date(object.at.getTime() + n)),
        object: object.id,
        at: new Date(object.at.getTime() + n),
      }));
    // Three thousand events of two months ago about other payments, and a few about an old and a recent one.
    const history = rows.slice(1, 3_000).map((r) => ({ id: newId('evt', r.at), object: r.id, at: r.at }));
    const [ofOld, ofRecent] = [eventsOf(old, 2), eventsOf(recent, 3)];
    const all = [...history, ...ofOld, ...ofRecent];
    await t.admin`
      INSERT INTO events (id, tenant_id, livemode, type, object_id, data, created_at)
      SELECT id, ${tenantId}, false, 'payment.created', object_id, '{}', at
      FROM unnest(${all.map((e) => e.id)}::text[], ${all.map((e) => e.object)}::text[],
        ${all.map((e) => e.at.toISOString())}::timestamptz[]) AS e(id, object_id, at)`;
    await t.admin`ANALYZE events`;
    const events = new EventService(t.platform.sql, appReads);
    for (const [object, expected] of [
      [recent, ofRecent],
      [old, ofOld],
    ] as const) {
      plans.length = 0;
      const page = await events.list(scope, { object_id: object.id, limit: 100 });
      expect(page.data.map((e) => e.id)).toEqual(expected.map((e) => e.id).reverse());
      expect(plans.filter((p) => p.includes('FROM "events" AS item')).join('\n')).toMatch(
        /Index Cond: .*\(id >= 'evt_/,
      );
    }
  });

  it('finds a request log by id in the partitions of its day on, not in every day of the retention period', async () => {
    const scope = { tenantId, livemode: false };
    await t.admin`SELECT request_log_partition((current_date - n)::date) FROM generate_series(0, 9) AS n`;
    const days = [0, 9].map((daysAgo) => new Date(Date.now() - daysAgo * 86_400_000));
    const logs = days.map((at) => ({ id: newId('req', at), at }));
    await t.admin`
      INSERT INTO request_logs (id, tenant_id, livemode, method, path, status, latency_ms, created_at)
      SELECT id, ${tenantId}, false, 'GET', '/v1/balance', 200, 3, at
      FROM unnest(${logs.map((l) => l.id)}::text[], ${logs.map((l) => l.at.toISOString())}::timestamptz[]) AS l(id, at)`;
    const partitionOf = (at: Date) => `request_logs_${at.toISOString().slice(0, 10).replaceAll('-', '')}`;
    const requestLogs = new RequestLogService(appReads);
    plans.length = 0;
    expect((await requestLogs.retrieve(scope, logs[0].id)).id).toBe(logs[0].id);
    const plan = plans.filter((p) => p.includes('request_logs')).join('\n');
    expect(plan).toMatch(new RegExp(partitionOf(days[0])));
    expect(plan).not.toMatch(new RegExp(partitionOf(days[1])));
    // Nine days old, it is found in its own day's partition.
    expect((await requestLogs.retrieve(scope, logs[1].id)).id).toBe(logs[1].id);
    await expect(requestLogs.retrieve(scope, 'req_not-an-id')).rejects.toMatchObject({ statusCode: 404 });
  });

  it("reads a page that needs reads around it (inPageScope) by a walk of the tenant's index, even on stale statistics", async () => {
    const scope = { tenantId, livemode: false };
    // Statistics from before the tenant had cases: the planner expects a handful of rows, which a bitmap scan of the
    // tenant's index and a sort would read (as they read every row of the tenant's once there are thousands).
    await t.admin`ANALYZE cases`;
    const made = recentIds('case', 3_000);
    await t.admin`
      INSERT INTO cases (id, tenant_id, livemode, kind, status, subject)
      SELECT id, ${tenantId}, false, 'manual', 'open', '{}' FROM unnest(${made}::text[]) AS m(id)`;
    const page = await onAppRoleConnection((sql) =>
      inPageScope(sql, scope, (tx) => listPage<{ id: string }>(tx, 'cases', scope, { limit: 10 })),
    );
    expect(page.rows.map((row) => row.id)).toEqual(made.slice(-10).reverse());
    const plan = plans.filter((p) => p.includes('FROM "cases" AS item')).join('\n');
    expect(plan).toMatch(/Index Scan using cases_tenant/);
    expect(plan).not.toMatch(/Sort|Bitmap/);
  });

  it("searches payments by their own fields through a walk of the tenant's index, even on stale statistics", async () => {
    const searcher = await createTenant(t.app, 'Search plans');
    const scope = { tenantId: searcher.id, livemode: false };
    // Statistics from before this tenant had payments.
    await t.admin`ANALYZE payments`;
    const made = recentIds('pay', 3_000);
    await t.admin`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method)
      SELECT id, ${searcher.id}, false, 1000, 'usd', 'succeeded', 'automatic' FROM unnest(${made}::text[]) AS m(id)`;
    const found = await onAppRoleConnection((sql) =>
      new SearchService(primaryReads(sql)).payments(scope, { query: "status:'succeeded' AND amount>500", limit: 10 }),
    );
    expect(found.data.map((p) => p.id)).toEqual(made.slice(-10).reverse());
    const plan = plans.filter((p) => p.includes('FROM payments p')).join('\n');
    expect(plan).toMatch(/Index Scan( Backward)? using payments_(tenant|pkey)/);
    expect(plan).not.toMatch(/Sort|Bitmap/);
  });

  it("finds a card's payments by the card: search by last4 and card-data retention", async () => {
    const carded = await createTenant(t.app, 'Card plans');
    const scope = { tenantId: carded.id, livemode: false };
    // Three thousand cards, each with its payment, made four months ago; three of them end in 0005.
    const months = Date.now() - 120 * 86_400_000;
    const cards = Array.from({ length: 3_000 }, (_, n) => ({
      pm: newId('pm', new Date(months + n * 1_000)),
      pay: newId('pay', new Date(months + n * 1_000 + 500)),
      last4: n % 1_000 === 7 ? '0005' : String(1_000 + (n % 8_000)).padStart(4, '0'),
    }));
    await t.admin`
      INSERT INTO payment_methods (id, tenant_id, livemode, type, brand, bin, last4, exp_month, exp_year, funding,
        fingerprint, cvc_check, kek_id, wrapped_dek, pan_ciphertext, created_at)
      SELECT c.pm, ${carded.id}, false, 'card', 'visa', '424242', c.last4, 12, 2030, 'credit', 'fp_' || c.pm, 'pass',
        'kek_plan', '\\x00', '\\x00', ${new Date(months)}::timestamptz
      FROM unnest(${cards.map((c) => c.pm)}::text[], ${cards.map((c) => c.last4)}::text[]) AS c(pm, last4)`;
    await t.admin`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method, payment_method_id,
        created_at)
      SELECT c.pay, ${carded.id}, false, 1000, 'usd', 'succeeded', 'automatic', c.pm, ${new Date(months)}::timestamptz
      FROM unnest(${cards.map((c) => c.pay)}::text[], ${cards.map((c) => c.pm)}::text[]) AS c(pay, pm)`;
    await t.admin`ANALYZE payments, payment_methods`;

    const found = await onAppRoleConnection((sql) =>
      new SearchService(primaryReads(sql)).payments(scope, { query: "last4:'0005'", limit: 10 }),
    );
    const paid = cards.filter((c) => c.last4 === '0005').map((c) => c.pay);
    expect(found.data.map((p) => p.id)).toEqual(paid.reverse());
    let plan = plans.filter((p) => p.includes('FROM payments p')).join('\n');
    expect(plan).toMatch(/Index (Only )?Scan using payment_methods_last4/);
    expect(plan).toMatch(/Index Scan using payments_payment_method/);
    expect(plan).not.toMatch(/Seq Scan|using payments_tenant|using payment_methods_tenant/);

    // Retention: no card was used in the last 90 days; each is checked by its own payments, not the tenant's.
    plans.length = 0;
    const before = new Date(Date.now() - 90 * 86_400_000);
    const due = await explained<{ id: string }[]>`
      SELECT id FROM worker_unused_card_data(${before}, ${idFloor('pay', before)}, 10) WHERE tenant_id = ${carded.id}`;
    expect(due.length).toBeGreaterThan(0);
    plan = plans.join('\n');
    expect(plan).toMatch(/Index Scan using payments_payment_method/);
    expect(plan).not.toMatch(/using payments_tenant/);
  });

  it("lists an actor's and an object's audit entries by a walk of their own index in list order", async () => {
    const audited = await createTenant(t.app, 'Audit plans');
    const scope = { tenantId: audited.id, livemode: false };
    await t.admin`ANALYZE audit_entries`;
    // A busy key's three thousand newer entries above a rare key's twelve: the tenant's index reaches the rare ones
    // only after all of the busy ones, an index of actor or object alone only through a sort.
    const made = recentIds('aud', 3_012);
    const rare = made.slice(0, 12);
    const entry = (id: string, n: number) => {
      const who = n < 12 ? 'rare' : 'busy';
      return JSON.stringify({
        action: 'api_key.updated',
        actor: { type: 'api_key', id: `key_plan_${who}` },
        target: { type: 'api_key', id: `obj_plan_${who}` },
        before: null,
        after: { n },
        request_id: null,
        id,
      });
    };
    await t.admin`
      INSERT INTO audit_entries (id, tenant_id, livemode, seq, action, actor_type, actor_id, target_type, target_id,
        content, prev_hash, hash, created_at)
      SELECT id, ${audited.id}, false, 0, 'api_key.updated', 'api_key', content::json->'actor'->>'id', 'api_key',
        content::json->'target'->>'id', content, '\\x00', '\\x00', now()
      FROM unnest(${made}::text[], ${made.map(entry)}::text[]) AS m(id, content)`;
    const audit = (query: { actor?: string; object?: string }) =>
      onAppRoleConnection((sql) => new AuditService(sql).list(scope, { limit: 10, ...query }));
    // Before the statistics have seen the entries, and after.
    for (const [query, index, analyze] of [
      [{ actor: 'key_plan_rare' }, 'audit_entries_actor_listed', false],
      [{ object: 'obj_plan_rare' }, 'audit_entries_target_listed', false],
      [{ actor: 'key_plan_rare' }, 'audit_entries_actor_listed', true],
      [{ object: 'obj_plan_rare' }, 'audit_entries_target_listed', true],
    ] as const) {
      if (analyze) await t.admin`ANALYZE audit_entries`;
      const page = await audit(query);
      expect(page.data.map((e) => e.id)).toEqual(rare.slice(-10).reverse());
      expect(page.has_more).toBe(true);
      const plan = plans.filter((p) => p.includes('FROM "audit_entries" AS item')).join('\n');
      expect(plan).toMatch(new RegExp(`Index Scan using ${index}`));
      expect(plan).not.toMatch(/Sort|Bitmap/);
    }
  });

  it('lists checkout sessions by status through a walk of the status index, not past every other session', async () => {
    const scope = { tenantId, livemode: false };
    await t.admin`ANALYZE checkout_sessions`;
    // Twelve open sessions below three thousand newer completed ones.
    const made = recentIds('cs', 3_012);
    await t.admin`
      INSERT INTO checkout_sessions (id, tenant_id, livemode, status, payment_id, amount, currency, success_url,
        cancel_url, expires_at)
      SELECT id, ${tenantId}, false, CASE WHEN n <= 12 THEN 'open' ELSE 'complete' END, 'pay_' || id, 1000, 'usd',
        'https://shop.example/ok', 'https://shop.example/cancel', now() + interval '1 day'
      FROM unnest(${made}::text[]) WITH ORDINALITY AS m(id, n)`;
    const page = await onAppRoleConnection((sql) =>
      inPageScope(sql, scope, (tx) =>
        listPage<{ id: string }>(tx, 'checkout_sessions', scope, { limit: 10 }, [tx`AND status = ${'open'}`]),
      ),
    );
    expect(page.rows.map((row) => row.id)).toEqual(made.slice(2, 12).reverse());
    const plan = plans.filter((p) => p.includes('FROM "checkout_sessions" AS item')).join('\n');
    expect(plan).toMatch(/Index Scan using checkout_sessions_status/);
    expect(plan).not.toMatch(/Sort|Bitmap/);
  });

  it("lists a settlement's and a payout's balance transactions through the settled index, not the tenant's history", async () => {
    const tenant = await createTenant(t.app, 'Settled plans');
    await payByCard(t.app, tenant.testKey, 1_000);
    const scope = { tenantId: tenant.id, livemode: false };
    // Twelve old transactions of one settlement (and payout) below three thousand newer ones of another.
    const made = recentIds('txn', 3_012);
    const rare = made.slice(0, 12);
    await t.admin.begin(async (tx) => {
      await tx`
        INSERT INTO ledger_transactions (id, tenant_id, livemode, type, source_id, description, currency, amount,
          balance_type, available_on)
        SELECT id, ${tenant.id}, false, 'charge', 'pay_' || id, 'plan test', 'usd', 100, 'pending', now()
        FROM unnest(${made}::text[]) AS m(id)`;
      await tx`
        INSERT INTO ledger_entries (id, transaction_id, tenant_id, livemode, account_id, amount, currency)
        SELECT 'le_' || m.id || side.name, m.id, ${tenant.id}, false, a.id, side.amount, 'usd'
        FROM unnest(${made}::text[]) AS m(id)
        CROSS JOIN (VALUES ('p', 100::bigint, 'pending'), ('c', -100::bigint, 'processor_clearing'))
          AS side(name, amount, account)
        JOIN ledger_accounts a ON a.tenant_id = ${tenant.id} AND NOT a.livemode AND a.currency = 'usd'
          AND a.type = side.account`;
      await tx`
        INSERT INTO settlements (id, tenant_id, livemode, currency, settlement_date, count, gross, fees, refunds,
          disputes, net, payout_id)
        VALUES ('stl_plan_rare', ${tenant.id}, false, 'usd', current_date, 12, 1200, 0, 0, 0, 1200, 'po_plan_rare'),
          ('stl_plan_busy', ${tenant.id}, false, 'usd', current_date, 3000, 300000, 0, 0, 0, 300000, 'po_plan_busy')`;
      await tx`
        UPDATE ledger_transactions SET settlement_id = CASE WHEN id = ANY(${rare}) THEN 'stl_plan_rare'
          ELSE 'stl_plan_busy' END
        WHERE id = ANY(${made})`;
    });
    const listed = (query: { settlement?: string; payout?: string }) =>
      onAppRoleConnection((sql) =>
        new LedgerService(sql, undefined, primaryReads(sql)).listBalanceTransactions(scope, { limit: 10, ...query }),
      );
    for (const query of [{ settlement: 'stl_plan_rare' }, { payout: 'po_plan_rare' }]) {
      const page = await listed(query);
      expect(page.data.map((b) => b.id)).toEqual(rare.slice(-10).reverse());
      expect(page.has_more).toBe(true);
      const plan = plans.filter((p) => p.includes('FROM "balance_transactions" AS item')).join('\n');
      expect(plan, JSON.stringify(query)).toMatch(/Index Scan using ledger_transactions_settled/);
      expect(plan, JSON.stringify(query)).not.toMatch(/ledger_transactions_balance/);
    }
  });
});
