import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, createTenant, payByCard, rolledBack, type TestApp } from './helpers.js';

// A payment's row is written twice within milliseconds: inserted before the processor is called, updated with the
// outcome. The update must stay HOT (no entry in any index of payments): no index may name a column a state change
// writes, and each page must keep room for its rows' new versions (fillfactor, migration 057).
const COPIES = 300;

describe("a payment's update after its insert", () => {
  let t: TestApp;
  let paid: string;

  beforeAll(async () => {
    t = await bootApp();
    const tenant = await createTenant(t.app, 'Hot updates');
    paid = (await payByCard(t.app, tenant.testKey, 2500)).id;
  });

  afterAll(async () => {
    await t?.close();
  });

  it('is a HOT update for nearly every payment inserted and completed together', async () => {
    const stats = await rolledBack(t.admin, async (tx) => {
      // Copies of a succeeded payment, inserted as the batch inserts them (processing, no outcome yet), then
      // completed as the batch completes them: every column the outcome sets, the version advanced.
      await tx`
        INSERT INTO payments SELECT (jsonb_populate_record(null::payments, to_jsonb(p) || jsonb_build_object(
          'id', p.id || 'h' || g, 'idempotency_key', 'hot' || g, 'status', 'processing', 'amount_received', 0,
          'fee', null, 'balance_transaction', null, 'processor', null, 'version', 1))).*
        FROM generate_series(1, ${COPIES}) g, (SELECT * FROM payments WHERE id = ${paid}) p`;
      await tx`
        UPDATE payments t SET status = p.status, amount_received = p.amount_received, fee = p.fee,
          balance_transaction = p.balance_transaction, processor = p.processor, version = t.version + 1,
          updated_at = now()
        FROM (SELECT * FROM payments WHERE id = ${paid}) p
        WHERE t.id LIKE ${paid + 'h%'}`;
      const [counts] = await tx<{ updated: number; hot: number }[]>`
        SELECT n_tup_upd::int AS updated, n_tup_hot_upd::int AS hot FROM pg_stat_xact_user_tables
        WHERE relname = 'payments'`;
      return counts;
    });
    expect(stats.updated).toBe(COPIES);
    // 87% at fillfactor 50 (100% at 40, 40% at 70, none at 100).
    expect(stats.hot).toBeGreaterThanOrEqual(0.8 * COPIES);
  });
});
