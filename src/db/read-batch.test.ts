import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootWithTenants, call, ok, type TestApp, type TestTenant } from '../../test/helpers.js';
import { ApiError } from '../http/errors.js';
import { readPayments, type PaymentRead, type PaymentState } from '../modules/payments/repo.js';
import type { Scope } from './index.js';
import { listPage } from './list.js';
import { ReadBatcher, type ReadCombiner } from './read-batch.js';

// The shared read transaction: combined reads and list pages of one turn, under the union of their scopes.

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
let c: TestTenant;
const scopeOf = (tenant: TestTenant): Scope => ({ tenantId: tenant.id, livemode: false });

beforeAll(async () => {
  [t, a, b, c] = await bootWithTenants('Batched reads A', 'Batched reads B', 'Batched reads C');
});
afterAll(() => t?.close());

async function paymentOf(tenant: TestTenant): Promise<string> {
  return (await ok(await call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount: 900, currency: 'usd' }))).id;
}

/** A batcher whose payment reads count their combined queries. */
function countingBatcher() {
  const batcher = new ReadBatcher(t.platform.sql, { maxSize: 16, maxConcurrency: 1 });
  const counter = { queries: 0 };
  const counted: ReadCombiner<PaymentRead, PaymentState> = (tx, reads) => {
    counter.queries++;
    return readPayments(tx, reads);
  };
  const readPayment = (tenant: TestTenant, id: string) =>
    batcher.read(counted, scopeOf(tenant), { scope: scopeOf(tenant), id });
  return { batcher, counter, readPayment };
}

describe('ReadBatcher', () => {
  it("runs a page in the transaction of its turn's reads; row-level security still shows only the batch's scopes", async () => {
    const [ofA, , ofC] = [await paymentOf(a), await paymentOf(b), await paymentOf(c)];
    const { batcher, counter, readPayment } = countingBatcher();
    const [payment, page] = await Promise.all([
      readPayment(a, ofA),
      batcher.page(
        scopeOf(b),
        (tx) => tx<{ scope: string; seen_of_c: number; own: number }[]>`
          SELECT current_setting('app.scope') AS scope,
            (SELECT count(*) FROM payments WHERE tenant_id = ${c.id})::int AS seen_of_c,
            (SELECT count(*) FROM payments WHERE tenant_id = ${b.id} AND livemode = false)::int AS own`,
      ),
    ]);
    expect(counter.queries).toBe(1);
    expect(payment.row.id).toBe(ofA);
    // One transaction: the page ran under the scope the batch set, its own and A's.
    expect(page[0].scope.split(',').sort()).toEqual([`${a.id}:f`, `${b.id}:f`].sort());
    expect(page[0].own).toBeGreaterThan(0);
    // C's payment exists, but C is in no scope of the batch.
    expect(ofC).toBeTruthy();
    expect(page[0].seen_of_c).toBe(0);
  });

  it('gives each list of a shared batch only its own tenant’s payments (through the API, at once)', async () => {
    const own = { [a.id]: await paymentOf(a), [b.id]: await paymentOf(b) };
    const lists = await Promise.all(
      [a, b, a, b].map((tenant) => call(t.app, tenant.testKey, 'GET', '/v1/payments?limit=100')),
    );
    for (const [i, tenant] of [a, b, a, b].entries()) {
      const ids = (await ok(lists[i])).data.map((p: { id: string }) => p.id);
      expect(ids).toContain(own[tenant.id]);
      const [{ foreign }] = await t.admin<{ foreign: number }[]>`
        SELECT count(*)::int AS foreign FROM payments WHERE id = ANY(${ids}) AND tenant_id <> ${tenant.id}`;
      expect(foreign).toBe(0);
    }
  });

  it('gives each list of a shared batch, of any kind, only its own tenant’s objects (through the API, at once)', async () => {
    const customerOf = async (tenant: TestTenant) =>
      (await ok(await call(t.app, tenant.testKey, 'POST', '/v1/customers', { email: `${tenant.id}@example.com` }))).id;
    const own = {
      [a.id]: { payment: await paymentOf(a), customer: await customerOf(a) },
      [b.id]: { payment: await paymentOf(b), customer: await customerOf(b) },
    };
    // Each kind's table, and the column by which a row is the tenant's own object (an event, by what it is about).
    const kinds = [
      { path: '/v1/events?limit=100', table: 'events', column: 'object_id', of: 'payment' },
      { path: '/v1/customers?limit=100', table: 'customers', column: 'id', of: 'customer' },
      { path: '/v1/payments?limit=100', table: 'payments', column: 'id', of: 'payment' },
    ] as const;
    const requests = kinds.flatMap((kind) => [a, b].map((tenant) => ({ kind, tenant })));
    const answers = await Promise.all(
      requests.map(({ kind, tenant }) => call(t.app, tenant.testKey, 'GET', kind.path)),
    );
    for (const [i, { kind, tenant }] of requests.entries()) {
      const ids = (await ok(answers[i])).data.map((item: { id: string }) => item.id);
      const [counts] = await t.admin<{ foreign: number; own: number }[]>`
        SELECT count(*) FILTER (WHERE tenant_id <> ${tenant.id})::int AS foreign,
          count(*) FILTER (WHERE ${t.admin(kind.column)} = ${own[tenant.id][kind.of]})::int AS own
        FROM ${t.admin(kind.table)} WHERE id = ANY(${ids})`;
      expect(counts, kind.path).toEqual({ foreign: 0, own: 1 });
    }
  });

  it('a page whose query fails fails alone: the reads of its batch are read again without it', async () => {
    const ofA = await paymentOf(a);
    const { batcher, counter, readPayment } = countingBatcher();
    const [payment, failing, after] = await Promise.allSettled([
      readPayment(a, ofA),
      batcher.page(scopeOf(b), (tx) => tx`SELECT 1 / (SELECT count(*) FROM payments WHERE false)::int AS boom`),
      batcher.page(scopeOf(b), (tx) => listPage<{ id: string }>(tx, 'payments', scopeOf(b), { limit: 1 })),
    ]);
    expect(payment).toMatchObject({ status: 'fulfilled', value: { row: { id: ofA } } });
    expect(failing.status).toBe('rejected');
    expect((failing as PromiseRejectedResult).reason).toBeInstanceOf(postgres.PostgresError);
    expect((failing as PromiseRejectedResult).reason.code).toBe('22012');
    expect(after).toMatchObject({ status: 'fulfilled', value: { rows: [{ id: expect.any(String) }] } });
    // The batch, then each read alone.
    expect(counter.queries).toBe(2);
  });

  it("a page's refusal is its own answer: the batch is not read again", async () => {
    const [ofA, ofB] = [await paymentOf(a), await paymentOf(b)];
    const { batcher, counter, readPayment } = countingBatcher();
    const [payment, refused, paged] = await Promise.allSettled([
      readPayment(a, ofA),
      // B's own list, paged from A's payment: a cursor B cannot see.
      batcher.page(scopeOf(b), (tx) => listPage(tx, 'payments', scopeOf(b), { starting_after: ofA })),
      batcher.page(scopeOf(b), (tx) => listPage(tx, 'payments', scopeOf(b), { starting_after: ofB })),
    ]);
    expect(payment.status).toBe('fulfilled');
    expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(ApiError);
    expect((refused as PromiseRejectedResult).reason).toMatchObject({
      code: 'resource_missing',
      param: 'starting_after',
    });
    expect(paged.status).toBe('fulfilled');
    expect(counter.queries).toBe(1);
  });
});
