import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { bootAppOnOwnDatabase, createTenant, type TestApp } from './helpers.js';

// The idempotency purge runs every five minutes over the whole platform: it must find the keys to release by an
// index (migration 051), not read every refund and payout to find the few that aged past the cutoff.
const RECENT = 5_000;
const AGED = 20;

describe('the idempotency purge', () => {
  let t: TestApp;
  let explained: postgres.Sql;
  const plans: string[] = [];

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase('purge_plans');
    const tenant = await createTenant(t.app, 'Purge');
    await t.admin`
      INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method)
      VALUES ('pay_purge_plan', ${tenant.id}, false, 100000000, 'usd', 'succeeded', 'automatic')`;
    await t.admin`
      INSERT INTO refunds (id, tenant_id, livemode, payment_id, amount, currency, status, idempotency_key, created_at)
      SELECT 're_purge' || lpad(n::text, 6, '0'), ${tenant.id}, false, 'pay_purge_plan', 1, 'usd', 'succeeded',
        'key-' || n, CASE WHEN n <= ${AGED} THEN now() - interval '3 days' ELSE now() END
      FROM generate_series(1, ${RECENT + AGED}) AS n`;
    await t.admin`ANALYZE refunds`;
    // Every plan the purge runs, nested ones included, reaches this connection as a notice.
    explained = postgres(t.adminUrl, {
      max: 1,
      onnotice: (notice) => plans.push(String(notice.message)),
      connection: { client_min_messages: 'log' },
    });
    await explained`LOAD 'auto_explain'`;
    await explained`SET auto_explain.log_min_duration = 0`;
    await explained`SET auto_explain.log_nested_statements = on`;
  });
  afterAll(async () => {
    await explained?.end();
    await t?.close();
  });

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
});
