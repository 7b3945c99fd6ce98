import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplayClock, seedDemoHistory, type SeedSummary } from '../src/modules/demo/seed.js';
import { LedgerService } from '../src/modules/ledger/service.js';
import { bootAppOnOwnDatabase, createTenant, type TestApp } from './helpers.js';

const DAY_MS = 86_400_000;
// Thirty whole days ending just before the last midnight (UTC), so that every day is complete.
const until = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS - 1);
const firstDay = new Date(Math.floor(until.getTime() / DAY_MS) * DAY_MS - 29 * DAY_MS);

// The nightly settlement, payout and dispute passes act on every tenant: a database of its own.
describe('the demo history', () => {
  const clock = new ReplayClock();
  let t: TestApp;
  let tenantId: string;
  let summary: SeedSummary;

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase('demo_seed', {}, { now: clock.now });
    tenantId = (await createTenant(t.app, 'Demo shop')).id;
    summary = await seedDemoHistory(t.platform, clock, { tenantId, days: 30, seed: 1, until });
  }, 600_000);
  afterAll(() => t?.close());

  const count = async (query: Promise<{ count: number }[]>) => (await query)[0]!.count;

  it('covers each of the 30 days, busier in the afternoon than at night and on weekdays than on Sundays', async () => {
    const days = await t.admin<{ day: Date; dow: number; count: number }[]>`
      SELECT (created_at AT TIME ZONE 'UTC')::date AS day, extract(dow FROM created_at AT TIME ZONE 'UTC')::int AS dow,
        count(*)::int AS count
      FROM payments WHERE tenant_id = ${tenantId} GROUP BY 1, 2 ORDER BY 1`;
    expect(days).toHaveLength(30);
    expect(days[0]!.day.toISOString().slice(0, 10)).toBe(firstDay.toISOString().slice(0, 10));
    const average = (rows: { count: number }[]) => rows.reduce((sum, row) => sum + row.count, 0) / rows.length;
    const sundays = average(days.filter((d) => d.dow === 0));
    const weekdays = average(days.filter((d) => d.dow >= 1 && d.dow <= 5));
    expect(sundays).toBeLessThan(weekdays * 0.7);
    expect(days.every((d) => d.count >= 40 && d.count <= 320)).toBe(true);
    const [hours] = await t.admin<{ afternoon: number; night: number }[]>`
      SELECT count(*) FILTER (WHERE extract(hour FROM created_at AT TIME ZONE 'UTC') BETWEEN 14 AND 17)::int AS afternoon,
        count(*) FILTER (WHERE extract(hour FROM created_at AT TIME ZONE 'UTC') BETWEEN 1 AND 4)::int AS night
      FROM payments WHERE tenant_id = ${tenantId}`;
    expect(hours!.afternoon).toBeGreaterThan(hours!.night * 5);
  });

  it('approves most payments and declines some with the test cards’ codes; several brands, countries and currencies', async () => {
    const statuses = Object.fromEntries(
      (
        await t.admin<{ status: string; count: number }[]>`
          SELECT status, count(*)::int AS count FROM payments WHERE tenant_id = ${tenantId} GROUP BY 1`
      ).map((row) => [row.status, row.count]),
    );
    const total = Object.values(statuses).reduce((sum, n) => sum + n, 0);
    expect(total).toBe(summary.payments);
    expect(total).toBeGreaterThan(3_000);
    expect(total).toBeLessThan(7_000);
    expect(statuses.succeeded! / total).toBeGreaterThan(0.85);
    expect(statuses.requires_payment_method! / total).toBeGreaterThan(0.02);
    expect(statuses.requires_payment_method! / total).toBeLessThan(0.1);
    expect(statuses.canceled).toBeGreaterThan(0);
    const declines = await t.admin<{ decline_code: string }[]>`
      SELECT DISTINCT decline_code FROM payment_attempts WHERE tenant_id = ${tenantId} AND decline_code IS NOT NULL`;
    expect(declines.map((d) => d.decline_code).sort()).toEqual([
      'expired_card',
      'fraudulent',
      'generic_decline',
      'incorrect_cvc',
      'insufficient_funds',
    ]);
    // A processor error on the primary, answered by the failover processor.
    expect(
      await count(t.admin`SELECT count(DISTINCT payment_id)::int AS count FROM payment_attempts
        WHERE tenant_id = ${tenantId} AND error_code = 'processing_error'`),
    ).toBeGreaterThan(0);
    const cards = await t.admin<{ brand: string; country: string }[]>`
      SELECT DISTINCT pm.brand, pm.country FROM payments p JOIN payment_methods pm ON pm.id = p.payment_method_id
      WHERE p.tenant_id = ${tenantId}`;
    expect(new Set(cards.map((c) => c.brand))).toEqual(new Set(['visa', 'mastercard', 'amex', 'discover', 'jcb']));
    expect(new Set(cards.map((c) => c.country))).toEqual(new Set(['US', 'GB', 'DE', 'BR']));
    const currencies = await t.admin<{ currency: string }[]>`
      SELECT DISTINCT currency FROM payments WHERE tenant_id = ${tenantId} ORDER BY 1`;
    expect(currencies.map((c) => c.currency)).toEqual(['eur', 'gbp', 'usd']);
  });

  it('has customers with saved cards who come back', async () => {
    const [customers] = await t.admin<{ customers: number; returning: number }[]>`
      SELECT count(*)::int AS customers, count(*) FILTER (WHERE payments >= 2)::int AS returning FROM (
        SELECT c.id, (SELECT count(*) FROM payments p WHERE p.customer = c.id) AS payments
        FROM customers c WHERE c.tenant_id = ${tenantId}) c`;
    expect(customers!.customers).toBe(summary.customers);
    expect(customers!.returning).toBeGreaterThan(100);
    expect(
      await count(t.admin`SELECT count(*)::int AS count FROM payment_methods
        WHERE tenant_id = ${tenantId} AND customer IS NOT NULL`),
    ).toBe(summary.customers);
  });

  it('refunds in full and in part, and has disputes won, lost and open with their evidence due', async () => {
    const [refunds] = await t.admin<{ full: number; partial: number; other: number }[]>`
      SELECT count(*) FILTER (WHERE r.status = 'succeeded' AND r.amount = p.amount_received)::int AS full,
        count(*) FILTER (WHERE r.status = 'succeeded' AND r.amount < p.amount_received)::int AS partial,
        count(*) FILTER (WHERE r.status <> 'succeeded')::int AS other
      FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.tenant_id = ${tenantId}`;
    expect(refunds!.full).toBeGreaterThan(60);
    expect(refunds!.partial).toBeGreaterThan(30);
    expect(refunds!.other).toBe(0);
    const disputes = Object.fromEntries(
      (
        await t.admin<{ status: string; count: number }[]>`
          SELECT status, count(*)::int AS count FROM disputes WHERE tenant_id = ${tenantId} GROUP BY 1`
      ).map((row) => [row.status, row.count]),
    );
    expect(disputes.won).toBeGreaterThan(0);
    expect(disputes.lost).toBeGreaterThan(0);
    expect(disputes.needs_response).toBeGreaterThan(0);
    expect(
      await count(t.admin`SELECT count(*)::int AS count FROM disputes
        WHERE tenant_id = ${tenantId} AND status = 'needs_response' AND due_by <= ${new Date(until.getTime() - DAY_MS)}`),
    ).toBe(0);
  });

  it('takes fraud decisions: blocks, and reviews approved, rejected and still open', async () => {
    const outcomes = Object.fromEntries(
      (
        await t.admin<{ action: string; count: number }[]>`
          SELECT outcome->>'action' AS action, count(*)::int AS count FROM payment_fraud_decisions
          WHERE tenant_id = ${tenantId} GROUP BY 1`
      ).map((row) => [row.action, row.count]),
    );
    expect(outcomes.block).toBeGreaterThan(10);
    expect(outcomes.review).toBeGreaterThan(10);
    const reviews = Object.fromEntries(
      (
        await t.admin<{ status: string; count: number }[]>`
          SELECT status, count(*)::int AS count FROM fraud_reviews WHERE tenant_id = ${tenantId} GROUP BY 1`
      ).map((row) => [row.status, row.count]),
    );
    expect(reviews.approved).toBeGreaterThan(3);
    expect(reviews.rejected).toBeGreaterThan(3);
    expect(reviews.approved! + reviews.rejected!).toBe(summary.reviews);
    // Only reviews opened in the last days may still wait for a decision.
    expect(
      await count(t.admin`SELECT count(*)::int AS count FROM fraud_reviews
        WHERE tenant_id = ${tenantId} AND status = 'open' AND created_at < ${new Date(until.getTime() - 2 * DAY_MS)}`),
    ).toBe(0);
  });

  it('settles and pays out nightly (one payout failed), and the available balance is settlements less payouts', async () => {
    const payouts = Object.fromEntries(
      (
        await t.admin<{ status: string; count: number }[]>`
          SELECT status, count(*)::int AS count FROM payouts WHERE tenant_id = ${tenantId} GROUP BY 1`
      ).map((row) => [row.status, row.count]),
    );
    expect(payouts.paid).toBeGreaterThan(30);
    expect(payouts.failed).toBe(1);
    expect(await count(t.admin`SELECT count(*)::int AS count FROM settlements WHERE tenant_id = ${tenantId}`)).toBe(
      summary.settlements,
    );
    const flows = await t.admin<{ currency: string; settled: string; paid_out: string }[]>`
      SELECT s.currency, s.settled,
        (SELECT coalesce(sum(amount), 0) FROM payouts o
          WHERE o.tenant_id = ${tenantId} AND o.currency = s.currency AND o.status <> 'failed') AS paid_out
      FROM (SELECT currency, sum(net) AS settled FROM settlements WHERE tenant_id = ${tenantId} GROUP BY 1) s
      ORDER BY 1`;
    expect(flows.map((f) => f.currency)).toEqual(['eur', 'gbp', 'usd']);
    const balance = await t.platform.ledger.balances({ tenantId, livemode: false });
    for (const flow of flows)
      expect(balance.available.find((funds) => funds.currency === flow.currency)?.amount ?? 0).toBe(
        Number(flow.settled) - Number(flow.paid_out),
      );
    expect(balance.pending.every((funds) => funds.amount > 0)).toBe(true);
  });

  it('keeps the ledger balanced: every transaction sums to zero and every balance equals its entries', async () => {
    expect(await LedgerService.verify(t.admin)).toEqual({ accounts: [], transactions: [] });
  });

  it('records the events of every payment, refund and dispute, stamped with when they happened', async () => {
    const missing = await t.admin<{ id: string; status: string }[]>`
      SELECT p.id, p.status FROM payments p WHERE p.tenant_id = ${tenantId} AND NOT (
        EXISTS (SELECT 1 FROM events e WHERE e.object_id = p.id AND e.type = 'payment.created'
          AND e.created_at = p.created_at)
        AND EXISTS (SELECT 1 FROM events e WHERE e.object_id = p.id AND e.type = CASE p.status
          WHEN 'succeeded' THEN 'payment.succeeded' WHEN 'requires_payment_method' THEN 'payment.failed'
          WHEN 'canceled' THEN 'payment.canceled' ELSE 'payment.requires_capture' END))`;
    expect(missing).toEqual([]);
    expect(
      await count(t.admin`SELECT count(*)::int AS count FROM refunds r WHERE r.tenant_id = ${tenantId}
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.object_id = r.id AND e.type = 'refund.succeeded')`),
    ).toBe(0);
    expect(
      await count(t.admin`SELECT count(*)::int AS count FROM disputes d WHERE d.tenant_id = ${tenantId}
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.object_id = d.id AND e.type = 'dispute.created')`),
    ).toBe(0);
    const [span] = await t.admin<{ first: Date; last: Date }[]>`
      SELECT min(created_at) AS first, max(created_at) AS last FROM events WHERE tenant_id = ${tenantId} AND livemode = false`;
    expect(span!.first.getTime()).toBeGreaterThanOrEqual(firstDay.getTime());
    expect(span!.last.getTime()).toBeLessThanOrEqual(until.getTime());
  });

  it('gives every object an id of its own moment: lists sorted by id are sorted by time', async () => {
    for (const table of ['payments', 'refunds', 'disputes', 'payouts', 'events', 'ledger_transactions']) {
      const rows = await t.admin<{ created_at: Date }[]>`
        SELECT created_at FROM ${t.admin(table)} WHERE tenant_id = ${tenantId} ORDER BY id`;
      expect(rows.length, table).toBeGreaterThan(0);
      const times = rows.map((row) => row.created_at.getTime());
      expect(
        times.every((time, i) => i === 0 || time >= times[i - 1]!),
        table,
      ).toBe(true);
    }
  });

  it('gives the same activity for the same seed, and another for another seed', async () => {
    const history = async (seed: number) => {
      const id = (await createTenant(t.app, `Seed ${seed}`)).id;
      await seedDemoHistory(t.platform, clock, { tenantId: id, days: 2, seed, until });
      return t.admin<{ created_at: Date; amount: number; currency: string; status: string }[]>`
        SELECT created_at, amount, currency, status FROM payments WHERE tenant_id = ${id} ORDER BY created_at, amount`;
    };
    const first = await history(7);
    expect(first.length).toBeGreaterThan(100);
    expect(await history(7)).toEqual(first);
    expect((await history(8)).map((p) => p.amount)).not.toEqual(first.map((p) => p.amount));
  }, 120_000);
});
