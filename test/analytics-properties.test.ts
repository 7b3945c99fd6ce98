import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldAnalytics } from '../src/modules/analytics/service.js';
import { bootApp, bootAppOnOwnDatabase, call, card, createTenant, ok, TEST_CARDS, type TestApp } from './helpers.js';

// Random sequences of every operation that changes a payment's status or amounts (create, confirm, capture, partial
// capture, cancel, refund, 3-D Secure left pending, fraud reviews approved and rejected, disputes opened, won and
// lost, authorizations expired by the worker, payments and refunds whose processor answer was lost and which the
// recovery workers finish, bursts of concurrent payments and refunds) against the real platform. After each sequence
// the rollups of migration 035, summed over their slots, equal an aggregate over the base tables written here (and
// only here), for every tenant of the database and for the platform's own rows (a day being its daily row plus its
// hourly rows not compacted yet, as readers sum it since 038, and the changes not folded yet, since 040 and 043;
// bursts fold the change log twice at once among their writes); the fold, compaction and the backfill statement
// leave every figure unchanged.
//
// A database of its own: disputes, expiry and recovery act on every tenant, and the platform rows cover them all.

let t: TestApp;
/** The same database behind processors that act and then lose every answer (as in lost-responses.test.ts). */
let lossy: TestApp;

beforeAll(async () => {
  t = await bootAppOnOwnDatabase('analytics_properties');
  lossy = await bootApp({ PROCESSOR_LOST_RESPONSE_RATE: '1', PROCESSOR_TIMEOUT_MS: '150' }, t.adminUrl);
});
afterAll(async () => {
  await lossy?.close();
  await t?.close();
});

const CURRENCIES = ['usd', 'eur', 'jpy'] as const;
const ELEVATED = '4000000000009235';
const CARDS = {
  visa: TEST_CARDS.visa,
  declined: TEST_CARDS.declined,
  insufficientFunds: TEST_CARDS.insufficientFunds,
  international: TEST_CARDS.international,
  debit: TEST_CARDS.debit,
  disputed: TEST_CARDS.disputed,
  threeDSecure: TEST_CARDS.threeDSecure,
  review: ELEVATED,
} as const;
type CardName = keyof typeof CARDS;

type Step =
  | {
      kind: 'pay';
      currency: (typeof CURRENCIES)[number];
      amount: number;
      card: CardName;
      manual: boolean;
      confirm: boolean;
    }
  | { kind: 'confirm' | 'cancel' | 'expire' | 'update'; pick: number }
  | { kind: 'capture' | 'refund'; pick: number; percent: number }
  | { kind: 'review'; pick: number; approve: boolean }
  | { kind: 'answer'; pick: number; win: boolean }
  | { kind: 'disputes' | 'recover' }
  | { kind: 'lost'; what: 'pay' | 'refund'; pick: number }
  | { kind: 'burst'; size: number };

const pick = fc.nat();
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('pay' as const),
      currency: fc.constantFrom(...CURRENCIES),
      amount: fc.integer({ min: 600, max: 500_000 }),
      card: fc.constantFrom(...(Object.keys(CARDS) as CardName[])),
      manual: fc.boolean(),
      confirm: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('confirm' as const, 'cancel' as const), pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('expire' as const, 'update' as const), pick }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constantFrom('capture' as const, 'refund' as const),
      pick,
      percent: fc.integer({ min: 1, max: 100 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('review' as const), pick, approve: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('answer' as const), pick, win: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('disputes' as const, 'recover' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('lost' as const),
      what: fc.constantFrom('pay' as const, 'refund' as const),
      pick,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('burst' as const), size: fc.integer({ min: 2, max: 12 }) }) },
);

type Row = Record<string, unknown>;

/** Rows keyed by their key columns, every other column summed as a number; rows of zeros dropped. */
function keyed(rows: Row[], keys: string[]): Map<string, Record<string, number>> {
  const map = new Map<string, Record<string, number>>();
  for (const row of rows) {
    const key = keys.map((k) => {
      const value = row[k];
      return value instanceof Date ? value.toISOString() : String(value);
    });
    const id = key.join('|');
    const sums = map.get(id) ?? {};
    for (const [column, value] of Object.entries(row))
      if (!keys.includes(column) && column !== 'slot') sums[column] = (sums[column] ?? 0) + Number(value);
    map.set(id, sums);
  }
  for (const [id, sums] of map) if (Object.values(sums).every((v) => v === 0)) map.delete(id);
  return map;
}

function expectSame(actual: Map<string, Record<string, number>>, expected: Map<string, Record<string, number>>) {
  const sorted = (m: Map<string, Record<string, number>>) =>
    [...m].sort(([a], [b]) => a.localeCompare(b)).map(([id, sums]) => ({ id, ...sums }));
  const columns = new Set([...expected.values()].flatMap((s) => Object.keys(s)));
  const filled = (m: Map<string, Record<string, number>>) =>
    new Map(
      [...m].map(([id, sums]) => [
        id,
        Object.fromEntries([...columns].map((c) => [c, sums[c] ?? 0])) as Record<string, number>,
      ]),
    );
  expect(sorted(filled(actual))).toEqual(sorted(filled(expected)));
}

const HOURLY_KEY = ['tenant_id', 'livemode', 'hour', 'currency'];
const BREAKDOWN_KEY = ['tenant_id', 'livemode', 'dimension', 'hour', 'currency', 'value'];
const DAILY_BREAKDOWN_KEY = ['tenant_id', 'livemode', 'dimension', 'day', 'currency', 'value'];
const DAILY_KEY = ['tenant_id', 'livemode', 'day', 'currency'];

/** Rows by hour as rows by their UTC day. */
const byDay = (rows: Row[]) =>
  rows.map(({ hour, ...row }) => ({
    ...row,
    day: new Date(Math.floor((hour as Date).getTime() / 86_400_000) * 86_400_000),
  }));

const breakdownQuery = (admin: TestApp['admin']) => admin<Row[]>`
    SELECT p.tenant_id, p.livemode, d.dimension, date_trunc('hour', p.created_at, 'UTC') AS hour, p.currency, d.value,
      count(*) AS payments_count, sum(p.amount) AS payments_amount,
      count(*) FILTER (WHERE p.status IN ('requires_capture', 'succeeded')) AS approved_count,
      count(*) FILTER (WHERE p.status = 'requires_payment_method' AND p.last_payment_error IS NOT NULL) AS declined_count,
      sum(p.amount_received) AS captured_amount
    FROM payments p LEFT JOIN payment_methods pm ON pm.id = p.payment_method_id
    CROSS JOIN LATERAL (VALUES ('brand', coalesce(pm.brand, 'unknown')), ('country', coalesce(pm.country, 'unknown')),
      ('decline_code', CASE WHEN p.status = 'requires_payment_method' AND p.last_payment_error IS NOT NULL
        THEN coalesce(p.last_payment_error->>'decline_code', p.last_payment_error->>'code', 'unknown') END))
      d (dimension, value)
    WHERE d.value IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6`;

/** What the rollups must hold, aggregated from the base tables directly (the definitions of the README). */
async function expectedRollups() {
  const { admin } = t;
  const payments = await admin<Row[]>`
    SELECT p.tenant_id, p.livemode, date_trunc('hour', p.created_at, 'UTC') AS hour, p.currency,
      count(*) AS payments_count, sum(p.amount) AS payments_amount,
      count(*) FILTER (WHERE p.status IN ('requires_capture', 'succeeded')) AS approved_count,
      coalesce(sum(p.amount) FILTER (WHERE p.status IN ('requires_capture', 'succeeded')), 0) AS approved_amount,
      count(*) FILTER (WHERE p.status = 'requires_payment_method' AND p.last_payment_error IS NOT NULL) AS declined_count,
      coalesce(sum(p.amount) FILTER (WHERE p.status = 'requires_payment_method' AND p.last_payment_error IS NOT NULL), 0)
        AS declined_amount,
      count(*) FILTER (WHERE p.status = 'succeeded') AS succeeded_count,
      count(*) FILTER (WHERE p.status = 'canceled') AS canceled_count,
      sum(p.amount_received) AS captured_amount, sum(coalesce(p.fee, 0)) AS fees
    FROM payments p GROUP BY 1, 2, 3, 4`;
  const refunds = await admin<Row[]>`
    SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, currency,
      count(*) AS refunds_count, sum(amount) AS refunds_amount
    FROM refunds WHERE status = 'succeeded' GROUP BY 1, 2, 3, 4`;
  const disputes = await admin<Row[]>`
    SELECT tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, currency,
      count(*) AS disputes_count, sum(amount) AS disputes_amount,
      count(*) FILTER (WHERE status = 'won') AS disputes_won_count,
      count(*) FILTER (WHERE status = 'lost') AS disputes_lost_count,
      coalesce(sum(amount) FILTER (WHERE status = 'lost'), 0) AS disputes_lost_amount,
      count(*) FILTER (WHERE reason = 'fraudulent') AS fraud_disputes_count,
      coalesce(sum(amount) FILTER (WHERE reason = 'fraudulent'), 0) AS fraud_disputes_amount
    FROM disputes GROUP BY 1, 2, 3, 4`;
  const breakdown = await breakdownQuery(admin);
  const platform = await admin<Row[]>`
    SELECT '__platform__' AS tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, currency,
      count(*) AS payments_count, sum(amount) AS payments_amount,
      count(*) FILTER (WHERE status IN ('requires_capture', 'succeeded')) AS approved_count,
      count(*) FILTER (WHERE status = 'requires_payment_method' AND last_payment_error IS NOT NULL) AS declined_count,
      sum(amount_received) AS captured_amount
    FROM payments GROUP BY 2, 3, 4`;
  const processors = await admin<Row[]>`
    SELECT '__platform__' AS tenant_id, livemode, date_trunc('hour', created_at, 'UTC') AS hour, processor,
      count(*) AS attempts, count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
      count(*) FILTER (WHERE status = 'declined') AS declined, count(*) FILTER (WHERE status = 'error') AS errors,
      count(*) FILTER (WHERE completed_at IS NULL) AS pending, count(completed_at) AS completed,
      coalesce(sum(round(extract(epoch FROM completed_at - created_at) * 1000)), 0) AS latency_ms_sum
    FROM payment_attempts GROUP BY 2, 3, 4`;
  const reviews = await admin<Row[]>`
    SELECT '__platform__' AS tenant_id, livemode, count(*) AS open_reviews FROM fraud_reviews WHERE status = 'open'
    GROUP BY 2`;
  return {
    hourly: keyed([...payments, ...refunds, ...disputes], HOURLY_KEY),
    daily: keyed(byDay([...payments, ...refunds, ...disputes]), DAILY_KEY),
    breakdown: keyed(breakdown, BREAKDOWN_KEY),
    breakdownDaily: keyed(byDay(breakdown), DAILY_BREAKDOWN_KEY),
    platform: keyed(platform, HOURLY_KEY),
    platformDaily: keyed(byDay(platform), DAILY_KEY),
    processors: keyed(processors, ['tenant_id', 'livemode', 'hour', 'processor']),
    reviews: keyed(reviews, ['tenant_id', 'livemode']),
  };
}

/**
 * A day as readers sum it (migration 038): its daily row, which holds what the compaction folded (slot 0), and its
 * hourly rows of other slots, not compacted yet. A daily row of another slot would be counted twice: none may exist.
 */
async function days(daily: string, hourly: string, changes: string) {
  const { admin } = t;
  const [folded, pending] = await Promise.all([
    admin<Row[]>`SELECT * FROM ${admin(daily)}`,
    admin<Row[]>`SELECT * FROM ${admin(hourly)} WHERE slot <> 0`,
  ]);
  return [...folded, ...byDay(pending), ...byDay(await unfolded(changes))];
}

/** The payment changes not folded into the rollups yet (migration 040), as readers add them: by hour. */
const unfolded = (changes: string) => t.admin<Row[]>`SELECT * FROM ${t.admin(changes)}`;

/** An hourly rollup as readers sum it: its rows and the changes not folded yet. */
async function hourly(table: string, changes: string) {
  return [...(await t.admin<Row[]>`SELECT * FROM ${t.admin(table)}`), ...(await unfolded(changes))];
}

async function rollups() {
  const { admin } = t;
  return {
    hourly: keyed(await hourly('analytics_hourly', 'analytics_changes_hourly'), HOURLY_KEY),
    daily: keyed(await days('analytics_daily', 'analytics_hourly', 'analytics_changes_hourly'), DAILY_KEY),
    breakdown: keyed(await hourly('analytics_breakdown_hourly', 'analytics_changes_breakdown'), BREAKDOWN_KEY),
    breakdownDaily: keyed(
      await days('analytics_breakdown_daily', 'analytics_breakdown_hourly', 'analytics_changes_breakdown'),
      DAILY_BREAKDOWN_KEY,
    ),
    platform: keyed(await hourly('analytics_platform_hourly', 'analytics_changes_platform'), HOURLY_KEY),
    platformDaily: keyed(
      await days('analytics_platform_daily', 'analytics_platform_hourly', 'analytics_changes_platform'),
      DAILY_KEY,
    ),
    processors: keyed(await hourly('analytics_processor_hourly', 'analytics_attempt_changes_hourly'), [
      'tenant_id',
      'livemode',
      'hour',
      'processor',
    ]),
    reviews: keyed(await admin<Row[]>`SELECT * FROM analytics_platform_reviews`, ['tenant_id', 'livemode']),
  };
}

async function expectRollupsExact() {
  const [actual, expected] = [await rollups(), await expectedRollups()];
  for (const table of Object.keys(expected) as (keyof typeof expected)[]) expectSame(actual[table], expected[table]);
  return expected;
}

describe('analytics rollups, property-based', () => {
  it('equal the base tables’ aggregate after random sequences of every payment operation', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 4, maxLength: 16 }), async (steps) => {
        const tenant = await createTenant(t.app, 'Analytics property');
        const key = tenant.testKey;
        const request = (method: 'GET' | 'POST', url: string, body?: unknown) => call(t.app, key, method, url, body);
        const paymentsWhere = async (condition: string) =>
          (
            await t.admin.unsafe<{ id: string; amount: number; amount_received: number; amount_refunded: number }[]>(
              `SELECT id, amount, amount_received, amount_refunded FROM payments WHERE tenant_id = $1 AND ${condition}
              ORDER BY id`,
              [tenant.id],
            )
          ).map((row) => row);
        const chosen = <T>(rows: T[], n: number) => (rows.length ? rows[n % rows.length] : undefined);
        const pay = (s: Extract<Step, { kind: 'pay' }>, app = t.app) =>
          call(app, key, 'POST', '/v1/payments', {
            amount: s.currency === 'jpy' ? Math.max(100, Math.floor(s.amount / 100)) : s.amount,
            currency: s.currency,
            payment_method: card(CARDS[s.card]),
            confirm: s.confirm,
            capture_method: s.manual ? 'manual' : 'automatic',
            ...(s.card === 'review' ? { fraud_details: { ip_address: '192.0.2.10' } } : {}),
          });

        for (const s of steps) {
          if (s.kind === 'pay') {
            const response = await pay(s);
            expect(response.statusCode, response.body).toBeLessThan(500);
          } else if (s.kind === 'confirm') {
            const payment = chosen(await paymentsWhere(`status = 'requires_confirmation'`), s.pick);
            if (payment)
              expect((await request('POST', `/v1/payments/${payment.id}/confirm`, {})).statusCode).toBeLessThan(500);
          } else if (s.kind === 'cancel') {
            const payment = chosen(
              await paymentsWhere(`status IN ('requires_capture', 'requires_confirmation')`),
              s.pick,
            );
            if (payment) await ok(await request('POST', `/v1/payments/${payment.id}/cancel`, {}));
          } else if (s.kind === 'capture') {
            const payment = chosen(await paymentsWhere(`status = 'requires_capture'`), s.pick);
            if (payment) {
              const amount = Math.max(1, Math.floor((payment.amount * s.percent) / 100));
              await ok(await request('POST', `/v1/payments/${payment.id}/capture`, { amount_to_capture: amount }));
            }
          } else if (s.kind === 'refund') {
            const payment = chosen(await paymentsWhere(`amount_refunded < amount_received`), s.pick);
            if (payment) {
              const left = payment.amount_received - payment.amount_refunded;
              const amount = Math.max(1, Math.floor((left * s.percent) / 100));
              expect((await request('POST', '/v1/refunds', { payment: payment.id, amount })).statusCode).toBeLessThan(
                500,
              );
            }
          } else if (s.kind === 'update') {
            const payment = chosen(await paymentsWhere('true'), s.pick);
            if (payment)
              expect(
                (await request('POST', `/v1/payments/${payment.id}`, { metadata: { step: 'update' } })).statusCode,
              ).toBeLessThan(500);
          } else if (s.kind === 'expire') {
            const payment = chosen(await paymentsWhere(`status = 'requires_capture'`), s.pick);
            if (payment) {
              await t.admin`UPDATE payments SET authorization_expires_at = now() - interval '1 second' WHERE id = ${payment.id}`;
              await t.platform.payments.expireAuthorizations();
            }
          } else if (s.kind === 'review') {
            const open = (await ok(await request('GET', '/v1/reviews?status=open&limit=100'))).data as { id: string }[];
            const review = chosen(open, s.pick);
            if (review)
              await ok(await request('POST', `/v1/reviews/${review.id}/${s.approve ? 'approve' : 'reject'}`, {}));
          } else if (s.kind === 'disputes') {
            await t.platform.disputes.intake();
          } else if (s.kind === 'answer') {
            const open = ((await ok(await request('GET', '/v1/disputes?limit=100'))).data as any[]).filter(
              (d) => d.status === 'needs_response',
            );
            const dispute = chosen(open, s.pick);
            if (dispute) {
              await ok(
                await request('POST', `/v1/disputes/${dispute.id}`, {
                  evidence: { uncategorized_text: s.win ? 'winning_evidence' : 'losing_evidence' },
                }),
              );
              await t.platform.disputes.review();
            }
          } else if (s.kind === 'lost') {
            if (s.what === 'pay') {
              const response = await pay(
                { kind: 'pay', currency: 'usd', amount: 4_200, card: 'visa', manual: false, confirm: true },
                lossy.app,
              );
              expect(response.statusCode, response.body).toBe(503);
            } else {
              const payment = chosen(
                await paymentsWhere(
                  `amount_refunded < amount_received AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.payment_id = payments.id)`,
                ),
                s.pick,
              );
              // A refund whose answer was lost is answered as it stands: pending, its amount reserved.
              if (payment)
                expect(
                  (await ok(await call(lossy.app, key, 'POST', '/v1/refunds', { payment: payment.id, amount: 1 })))
                    .status,
                ).toBe('pending');
            }
          } else if (s.kind === 'recover') {
            await t.platform.payments.recoverStuckPayments(0);
            await t.platform.refunds.recoverStuckRefunds(0);
          } else if (s.kind === 'burst') {
            const refundable = await paymentsWhere(`amount_refunded < amount_received`);
            const answers = await Promise.all([
              ...Array.from({ length: s.size }, (_, i) =>
                pay({
                  kind: 'pay',
                  currency: CURRENCIES[i % CURRENCIES.length],
                  amount: 1_000 + i,
                  card: i % 4 === 3 ? 'declined' : 'visa',
                  manual: i % 5 === 4,
                  confirm: true,
                }),
              ),
              ...refundable.slice(0, s.size).map((p) => request('POST', '/v1/refunds', { payment: p.id, amount: 1 })),
              // Two folds of the change log among the writes, as two workers would: each change moves once.
              foldAnalytics(t.platform.workerSql),
              foldAnalytics(lossy.platform.workerSql),
            ]);
            for (const answer of answers)
              if (typeof answer !== 'number') expect(answer.statusCode, answer.body).toBeLessThan(500);
          }
        }
        await expectRollupsExact();
      }),
      {
        numRuns: 25,
        // One sequence through every path, whatever the random ones draw.
        examples: [
          // Found by a CI run (seed -1953703008): a lost refund must not pick a payment a dispute has opened on, which
          // refuses refunds (charge_disputed), as the other steps' picks do not either.
          [
            [
              { kind: 'pay', currency: 'usd', amount: 600, card: 'disputed', manual: false, confirm: true },
              { kind: 'disputes' },
              { kind: 'lost', what: 'refund', pick: 0 },
              { kind: 'capture', pick: 0, percent: 1 },
              { kind: 'answer', pick: 0, win: false },
              { kind: 'burst', size: 2 },
              { kind: 'pay', currency: 'usd', amount: 600, card: 'visa', manual: false, confirm: false },
            ],
          ],
          [
            [
              { kind: 'pay', currency: 'usd', amount: 120_000, card: 'visa', manual: false, confirm: true },
              { kind: 'pay', currency: 'eur', amount: 30_000, card: 'disputed', manual: false, confirm: true },
              { kind: 'pay', currency: 'usd', amount: 31_000, card: 'disputed', manual: true, confirm: true },
              { kind: 'pay', currency: 'jpy', amount: 1_234_500, card: 'international', manual: true, confirm: true },
              { kind: 'pay', currency: 'usd', amount: 5_000, card: 'declined', manual: false, confirm: true },
              { kind: 'pay', currency: 'usd', amount: 5_100, card: 'visa', manual: false, confirm: false },
              { kind: 'pay', currency: 'usd', amount: 5_200, card: 'threeDSecure', manual: false, confirm: true },
              { kind: 'pay', currency: 'usd', amount: 5_300, card: 'review', manual: true, confirm: true },
              { kind: 'pay', currency: 'usd', amount: 5_400, card: 'review', manual: false, confirm: true },
              { kind: 'pay', currency: 'usd', amount: 5_500, card: 'visa', manual: true, confirm: true },
              { kind: 'confirm', pick: 0 },
              { kind: 'capture', pick: 1, percent: 40 },
              { kind: 'capture', pick: 0, percent: 100 },
              { kind: 'refund', pick: 0, percent: 25 },
              { kind: 'review', pick: 0, approve: true },
              { kind: 'review', pick: 0, approve: false },
              { kind: 'expire', pick: 0 },
              { kind: 'disputes' },
              { kind: 'answer', pick: 0, win: true },
              { kind: 'answer', pick: 0, win: false },
              { kind: 'lost', what: 'pay', pick: 0 },
              { kind: 'lost', what: 'refund', pick: 0 },
              { kind: 'recover' },
              { kind: 'update', pick: 0 },
              { kind: 'burst', size: 10 },
            ],
          ],
        ],
      },
    );
    // 25 sequences against the real platform: 23.5 s at load average 12, over the 30 s default at 15.
  }, 120_000);

  it('keep every figure through the fold, compaction, and the backfill statement rebuilds them exactly', async () => {
    await expectRollupsExact();
    expect(await foldAnalytics(t.platform.workerSql)).toBeGreaterThan(0);
    expect(await t.admin`SELECT 1 FROM analytics_payment_changes`).toEqual([]);
    expect(await t.admin`SELECT 1 FROM analytics_attempt_changes`).toEqual([]);
    const before = await expectRollupsExact();
    const slots = await t.admin`SELECT DISTINCT slot FROM analytics_hourly WHERE slot <> 0`;
    expect(slots.length).toBeGreaterThan(0);
    const [{ folded }] = await t.platform.workerSql<{ folded: number }[]>`
      SELECT worker_compact_analytics(now() + interval '1 hour') AS folded`;
    expect(folded).toBeGreaterThan(0);
    expect(await t.admin`SELECT slot FROM analytics_hourly WHERE slot <> 0`).toEqual([]);
    expect(before.hourly.size).toBeGreaterThan(0);
    const compacted = await expectRollupsExact();
    // Nothing left to add from the hourly tables: the daily ones alone now hold every day.
    expectSame(keyed(await t.admin<Row[]>`SELECT * FROM analytics_daily`, DAILY_KEY), compacted.daily);
    expectSame(
      keyed(await t.admin<Row[]>`SELECT * FROM analytics_breakdown_daily`, DAILY_BREAKDOWN_KEY),
      compacted.breakdownDaily,
    );
    expectSame(keyed(await t.admin<Row[]>`SELECT * FROM analytics_platform_daily`, DAILY_KEY), compacted.platformDaily);
    await t.admin`SELECT analytics_backfill()`;
    await expectRollupsExact();
    expect(await t.admin`SELECT slot FROM analytics_breakdown_hourly WHERE slot <> 0`).toEqual([]);
  });

  it('are written by the triggers only: the application role may not insert into them', async () => {
    const tenant = await createTenant(t.app, 'Analytics writer');
    await expect(
      t.platform.sql.begin(async (tx) => {
        await tx`SELECT set_config('app.scope', ${`${tenant.id}:f`}, true)`;
        await tx`INSERT INTO analytics_hourly (tenant_id, livemode, hour, currency, slot, payments_count)
          VALUES (${tenant.id}, false, now(), 'usd', 0, 1000)`;
      }),
    ).rejects.toThrow(/permission denied/);
    await expect(
      t.platform.sql.begin(async (tx) => {
        await tx`SELECT set_config('app.scope', ${`${tenant.id}:f`}, true)`;
        await tx`INSERT INTO analytics_payment_changes (tenant_id, livemode, s, hour, currency, amount,
            amount_received, status) VALUES (${tenant.id}, false, 1, now(), 'usd', 1000, 1000, 'succeeded')`;
      }),
    ).rejects.toThrow(/permission denied/);
    await expect(
      t.platform.sql.begin(async (tx) => {
        await tx`SELECT set_config('app.scope', '__platform__:f', true)`;
        await tx`INSERT INTO analytics_attempt_changes (tenant_id, livemode, s, hour, processor, status)
            VALUES ('__platform__', false, 1, now(), 'simulator', 'succeeded')`;
      }),
    ).rejects.toThrow(/permission denied/);
  });
});
