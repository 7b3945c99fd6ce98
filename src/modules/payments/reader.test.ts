import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../../db/index.js';
import { bootWithTenants, call, ok, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { createPaymentReader } from './repo.js';

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

describe('createPaymentReader', () => {
  it("gives each read of a shared batch its own tenant's payment, and another tenant's id a 404", async () => {
    const [ofA, ofB] = [await paymentOf(a), await paymentOf(b)];
    let batches = 0;
    const reader = createPaymentReader(t.platform.sql, { maxSize: 16, maxConcurrency: 1 });
    // Counts the reader's statements: submissions made in one turn of the event loop share one.
    const flush = (reader as unknown as { flush: (items: unknown[]) => Promise<unknown[]> }).flush;
    Object.defineProperty(reader, 'flush', {
      value: (items: unknown[]) => {
        batches++;
        return flush(items);
      },
    });
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
    expect(batches).toBe(1);
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
