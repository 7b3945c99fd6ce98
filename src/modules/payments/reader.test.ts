import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inScope, scopedPageRead, type Scope } from '../../db/index.js';
import { bootWithTenants, call, ok, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { ReadBatcher, type ReadCombiner } from '../../db/read-batch.js';
import { readPayments, type PaymentRead, type PaymentState } from './repo.js';

// The batched payment reader: reads of several tenants share one statement, under the union of
// their scopes; each read must still get only its own tenant's and mode's payment.

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
const scopeOf = (tenant: TestTenant, livemode = false): Scope => ({ tenantId: tenant.id, livemode });

beforeAll(async () => {
  [t, a, b] = await bootWithTenants('Reader A', 'Reader B');
});
afterAll(() => t?.close());

async function paymentOf(tenant: TestTenant) {
  const created = await ok(
    await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 1_200, currency: 'usd' }),
  );
  return created.id as string;
}

describe('readPayments', () => {
  it("gives each read of a shared batch its own tenant's payment, and another tenant's id a 404", async () => {
    const [ofA, ofB] = [await paymentOf(a), await paymentOf(b)];
    let queries = 0;
    // Counts the combined queries: reads submitted in one turn of the event loop share one.
    const counted: ReadCombiner<PaymentRead, PaymentState> = (tx, reads) => {
      queries++;
      return readPayments(tx, reads);
    };
    const batcher = new ReadBatcher(t.platform.sql, { maxSize: 16, maxConcurrency: 1 });
    const reader = { submit: (read: PaymentRead) => batcher.read(counted, read.scope, read) };
    const reads = await Promise.allSettled([
      reader.submit({ scope: scopeOf(a), id: ofA }),
      reader.submit({ scope: scopeOf(b), id: ofB }),
      // In the same batch B's scope makes B's row visible to the statement: A must still not get it.
      reader.submit({ scope: scopeOf(a), id: ofB }),
      reader.submit({ scope: scopeOf(b), id: ofA }),
      // The other mode of one's own tenant is another scope.
      reader.submit({ scope: scopeOf(a, true), id: ofA }),
      reader.submit({ scope: scopeOf(a), id: ofA }),
    ]);
    expect(queries).toBe(1);
    const [own, other, crossA, crossB, liveA, again] = reads;
    expect(own.status === 'fulfilled' && own.value.row.tenant_id).toBe(a.id);
    expect(other.status === 'fulfilled' && other.value.row.tenant_id).toBe(b.id);
    for (const cross of [crossA, crossB, liveA]) {
      expect(cross.status).toBe('rejected');
      expect((cross as PromiseRejectedResult).reason).toMatchObject({ statusCode: 404, code: 'resource_missing' });
    }
    // Two reads of one payment get equal states that are not the same objects.
    expect(again.status === 'fulfilled' && own.status === 'fulfilled' && again.value).toEqual(
      own.status === 'fulfilled' && own.value,
    );
    expect(again.status === 'fulfilled' && own.status === 'fulfilled' && again.value.row !== own.value.row).toBe(true);
  });

  it('answers a retrieve through the API, and another tenant gets 404', async () => {
    const id = await paymentOf(a);
    const mine = await call(t.app, a.testKey, 'GET', `/v1/payments/${id}`);
    expect(mine.statusCode).toBe(200);
    expect(mine.json().id).toBe(id);
    const theirs = await call(t.app, b.testKey, 'GET', `/v1/payments/${id}`);
    expect(theirs.statusCode).toBe(404);
  });
});

describe('a list of payments: one statement in one round trip (Reads.page)', () => {
  it('reads the page with its attempts in index order, under the scope: no sort of the tenant, no other tenant', async () => {
    // Many payments of another tenant and a few of A, as in a shared production table, with fresh statistics.
    const own = [await paymentOf(a), await paymentOf(a), await paymentOf(a)];
    await t.admin`
      INSERT INTO payments SELECT (jsonb_populate_record(null::payments, to_jsonb(p) || jsonb_build_object(
        'id', p.id || 'x' || g, 'idempotency_key', null))).*
      FROM generate_series(1, 2000) g, (SELECT * FROM payments WHERE tenant_id = ${b.id} LIMIT 1) p`;
    await t.admin`ANALYZE payments`;
    const plan = await scopedPageRead(
      t.platform.sql,
      scopeOf(a),
      (tx) => tx<{ 'QUERY PLAN': unknown }[]>`EXPLAIN (FORMAT JSON)
        SELECT * FROM payments AS item WHERE tenant_id = ${a.id} AND livemode = false ORDER BY id DESC LIMIT 11`,
    );
    const nodes = JSON.stringify(plan[0]['QUERY PLAN']);
    // Walked in the list's order and stopped at the page's end, whatever the statistics say of A's share.
    expect(nodes).toMatch(/"Node Type":"Index Scan"/);
    expect(nodes).not.toMatch(/"Node Type":"(Sort|Bitmap Heap Scan|Seq Scan)"/);

    // Row-level security applies to a page read as to any other: A's scope shows none of B's rows.
    const leaked = await scopedPageRead(
      t.platform.sql,
      scopeOf(a),
      (tx) => tx`SELECT id FROM payments WHERE tenant_id = ${b.id} LIMIT 1`,
    );
    expect(leaked).toHaveLength(0);

    const page = await ok(await call(t.app, a.testKey, 'GET', '/v1/payments?limit=2'));
    expect(page.data.map((p: { id: string }) => p.id)).toEqual([own[2], own[1]]);
    expect(page.has_more).toBe(true);
    expect(page.data[0].attempts).toEqual([]);
    const next = await ok(
      await call(t.app, a.testKey, 'GET', `/v1/payments?limit=2&starting_after=${page.data[1].id}`),
    );
    expect(next.data[0].id).toBe(own[0]);
    // The cursor's check travels with the page: another tenant's id as a cursor is still a 400.
    const [ofB] = await t.admin<{ id: string }[]>`SELECT id FROM payments WHERE tenant_id = ${b.id} LIMIT 1`;
    const foreign = await call(t.app, a.testKey, 'GET', `/v1/payments?limit=2&starting_after=${ofB.id}`);
    expect(foreign.statusCode).toBe(400);
    expect(foreign.json().error).toMatchObject({ code: 'resource_missing', param: 'starting_after' });
  });

  it("caches plans in the API's pools, and a page's plan stays an index walk in list order for any tenant", async () => {
    // The API's pools let PostgreSQL keep a generic plan once it costs no more than per-call ones (plan_cache_mode =
    // auto). A key lookup is planned once; a page, run six times for B (2,000 payments, from the test above) and then
    // for A (a few), is still walked in the list's order whichever plan the cache settled on.
    const probe = await inScope(t.platform.sql, scopeOf(b), async (tx) => {
      const [mode] = await tx<{ plan_cache_mode: string }[]>`SHOW plan_cache_mode`;
      await tx`SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true),
        set_config('enable_seqscan', 'off', true), set_config('app.scope', ${`${a.id}:f,${b.id}:f`}, true)`;
      const [{ id }] = await tx<{ id: string }[]>`SELECT id FROM payments WHERE tenant_id = ${b.id} LIMIT 1`;
      await tx.unsafe(`PREPARE lookup_probe(text) AS SELECT * FROM payments WHERE id = $1`);
      await tx.unsafe(`PREPARE page_probe(text, boolean) AS
        SELECT * FROM payments AS item WHERE tenant_id = $1 AND livemode = $2 ORDER BY id DESC LIMIT 11`);
      for (let run = 0; run < 6; run++) {
        await tx.unsafe(`EXECUTE lookup_probe('${id}')`);
        await tx.unsafe(`EXECUTE page_probe('${b.id}', false)`);
      }
      const explain = async (execute: string) =>
        (await tx.unsafe<{ 'QUERY PLAN': string }[]>(`EXPLAIN ${execute}`)).map((row) => row['QUERY PLAN']).join('\n');
      const plans = {
        lookup: await explain(`EXECUTE lookup_probe('${id}')`),
        pages: [
          await explain(`EXECUTE page_probe('${b.id}', false)`),
          await explain(`EXECUTE page_probe('${a.id}', false)`),
        ],
      };
      // Only these two: the driver's own prepared statements live on this connection too.
      await tx`DEALLOCATE lookup_probe`;
      await tx`DEALLOCATE page_probe`;
      return { mode: mode.plan_cache_mode, ...plans };
    });
    expect(probe.mode).toBe('auto');
    expect(probe.lookup, probe.lookup).toMatch(/Index Cond: \(id = \$1\)/);
    for (const plan of probe.pages) {
      expect(plan, plan).toMatch(/Index Scan( Backward)? using payments_tenant/);
      expect(plan).not.toMatch(/Sort|Bitmap|Seq Scan/);
    }
  });

  it('lists a payment with its attempts and fraud outcome as a retrieve shows them', async () => {
    const paid = await ok(
      await call(t.app, b.testKey, 'POST', '/v1/payments', {
        amount: 2_500,
        currency: 'usd',
        payment_method: {
          type: 'card',
          card: { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '123' },
        },
        confirm: true,
      }),
    );
    const listed = await ok(await call(t.app, b.testKey, 'GET', '/v1/payments?limit=1'));
    const retrieved = await ok(await call(t.app, b.testKey, 'GET', `/v1/payments/${paid.id}`));
    expect(listed.data[0]).toEqual(retrieved);
    expect(retrieved.attempts.length).toBeGreaterThanOrEqual(1);
  });
});
