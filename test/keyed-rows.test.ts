import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  rolledBack,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';

// What an Idempotency-Key costs the database beyond its own row (migration 058). On a database of its own: index sizes
// and table statistics count only this file's rows.
const COPIES = 500;
const CLAIMS = 120;

describe('rows written for idempotency keys', () => {
  let t: TestApp;
  let tenant: TestTenant;
  let paid: string;

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase('keyed_rows');
    tenant = await createTenant(t.app, 'Keyed rows');
    const body = { amount: 2500, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true };
    paid = (await ok(await call(t.app, tenant.testKey, 'POST', '/v1/payments', body, { 'idempotency-key': 'kr-1' })))
      .id;
  });

  afterAll(async () => {
    await t?.close();
  });

  it('payments without a key add no entry to the unique index on keys; payments with one do', async () => {
    const entries = await rolledBack(t.admin, async (tx) => {
      // Heap rows the unique index points to, read off its leaf pages (a deduplicated posting list points to several;
      // a page's first item is its high key unless it is the rightmost).
      await tx`CREATE EXTENSION pageinspect`;
      const count = async () =>
        (
          await tx<{ entries: number }[]>`
            SELECT coalesce(sum(coalesce(cardinality(i.tids), 1)), 0)::int AS entries
            FROM generate_series(1, (pg_relation_size('payments_idempotency_key') / current_setting('block_size')::int)::int - 1) blk
            CROSS JOIN LATERAL bt_page_stats('payments_idempotency_key', blk) s
            CROSS JOIN LATERAL bt_page_items('payments_idempotency_key', blk) i
            WHERE s.type = 'l' AND NOT (s.btpo_next <> 0 AND i.itemoffset = 1)`
        )[0].entries;
      const copies = (keyed: boolean) => tx`
        INSERT INTO payments SELECT (jsonb_populate_record(null::payments, to_jsonb(p) || jsonb_build_object(
          'id', p.id || ${keyed ? 'k' : 'u'} || g, 'idempotency_key', CASE WHEN ${keyed} THEN 'copy' || g END))).*
        FROM generate_series(1, ${COPIES}) g, (SELECT * FROM payments WHERE id = ${paid}) p`;
      const before = await count();
      await copies(false);
      const unkeyed = await count();
      await copies(true);
      return { before, unkeyed, keyed: await count() };
    });
    // The keyed payment made above; the full index this replaced also held every unkeyed copy.
    expect(entries.before).toBe(1);
    expect(entries.unkeyed).toBe(1);
    expect(entries.keyed).toBe(1 + COPIES);
  });

  it("a key's completion with a payment's answer is a HOT update, even after many claims filled the pages", async () => {
    const stats = await rolledBack(t.admin, async (tx) => {
      // The payment's key as its claim inserted it (no answer yet), copied: claims batched ahead of their completions.
      await tx`
        INSERT INTO idempotency_keys SELECT (jsonb_populate_record(null::idempotency_keys, to_jsonb(k) ||
          jsonb_build_object('key', 'copy' || g || ':' || k.key, 'response_status', null, 'response_body', null,
            'completed_at', null))).*
        FROM generate_series(1, ${CLAIMS}) g,
          (SELECT * FROM idempotency_keys WHERE tenant_id = ${tenant.id} AND request_path = '/v1/payments') k`;
      // Each completed as completeBatch completes it: the stored answer of a real payment.
      await tx`
        UPDATE idempotency_keys c SET response_status = k.response_status, response_body = k.response_body,
          completed_at = now()
        FROM (SELECT * FROM idempotency_keys WHERE tenant_id = ${tenant.id} AND request_path = '/v1/payments') k
        WHERE c.tenant_id = k.tenant_id AND c.key LIKE 'copy%' AND k.key NOT LIKE 'copy%'`;
      const [row] = await tx<{ updated: number; hot: number; body: number }[]>`
        SELECT n_tup_upd::int AS updated, n_tup_hot_upd::int AS hot,
          (SELECT octet_length(response_body::text) FROM idempotency_keys
           WHERE tenant_id = ${tenant.id} AND request_path = '/v1/payments' AND key NOT LIKE 'copy%')::int AS body
        FROM pg_stat_xact_user_tables WHERE relname = 'idempotency_keys'`;
      return row;
    });
    expect(stats.body).toBeGreaterThan(1000);
    expect(stats.updated).toBe(CLAIMS);
    // Every claim of a page completed in one transaction is the worst case (the page keeps its old versions until that
    // commits, so the fourth completion of a page finds no room): 96 of 120 at fillfactor 15, 120 at 12, 60 at 20, 16
    // at 50. Completions spread over transactions, as the API's are, are all HOT at 15 (migration 058).
    expect(stats.hot).toBeGreaterThanOrEqual(0.75 * CLAIMS);
  });
});
