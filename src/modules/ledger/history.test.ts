import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inScope, type Scope } from '../../db/index.js';
import {
  bootAppOnOwnDatabase,
  call,
  createTenant,
  expectError,
  ok,
  PLATFORM_KEY,
  payByCard,
  type TestApp,
  type TestTenant,
  verifiedBankAccount,
} from '../../../test/helpers.js';
import { SNAPSHOT_BACKFILL_HOURS } from './history.js';
import { toBalance, type BalanceRow } from './service.js';

const HOUR = 3_600_000;
// The services' clock, moved by the tests: history is written days in the past, hour by hour.
let clock = 0;
let t: TestApp;

// The snapshot pass acts on every tenant of a database: one of its own keeps the other files' tenants out of it.
beforeAll(async () => {
  t = await bootAppOnOwnDatabase('balance_history', {}, { now: () => new Date(clock) });
});
afterAll(() => t.close());

const scopeOf = (tenant: TestTenant): Scope => ({ tenantId: tenant.id, livemode: false });
const seconds = (ms: number) => Math.floor(ms / 1000);

async function newTenant(name: string) {
  const tenant = await createTenant(t.app, name);
  // Settled as soon as the settlement pass runs, so that pending, available and the settlement postings (ledger
  // transactions that are not balance transactions) all move.
  await ok(
    await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, {
      settlement_schedule: { type: 'daily', delay_days: 0 },
    }),
  );
  await verifiedBankAccount(t.app, tenant.testKey);
  return tenant;
}

/** What the ledger itself says the balance was at `at` (Unix seconds): every entry stamped before its next second. */
async function ledgerAggregate(tenant: TestTenant, at: number) {
  const rows = await t.admin<BalanceRow[]>`
    SELECT a.currency, a.type, coalesce(sum(e.amount) FILTER (WHERE lt.created_at < ${new Date((at + 1) * 1000)}), 0)::bigint AS balance
    FROM ledger_accounts a
    LEFT JOIN ledger_entries e ON e.account_id = a.id
    LEFT JOIN ledger_transactions lt ON lt.id = e.transaction_id
    WHERE a.tenant_id = ${tenant.id} AND NOT a.livemode AND a.type IN ('available', 'pending', 'reserve', 'disputes')
    GROUP BY a.currency, a.type ORDER BY a.currency`;
  return toBalance(
    rows.map((row) => ({ ...row, balance: Number(row.balance) })),
    false,
  );
}

const balanceAt = async (tenant: TestTenant, at: number) =>
  ok(await call(t.app, tenant.testKey, 'GET', `/v1/balance?at=${at}`));

type Step =
  | { kind: 'pay'; amount: number; currency: 'usd' | 'eur'; after: number }
  | { kind: 'refund'; share: number; after: number }
  | { kind: 'settle'; after: number }
  | { kind: 'payout'; share: number; after: number }
  | { kind: 'snapshot'; after: number };

const minutes = fc.integer({ min: 1, max: 150 }).map((m) => m * 60_000 + 137);
const share = fc.double({ min: 0.1, max: 1, noNaN: true });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('pay' as const),
      amount: fc.integer({ min: 1_000, max: 90_000 }),
      currency: fc.constantFrom('usd' as const, 'eur' as const),
      after: minutes,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('refund' as const), share, after: minutes }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('settle' as const), after: minutes }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('payout' as const), share, after: minutes }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), after: minutes }) },
);

/** Plays the steps from `start`, each `after` later than the one before; returns every instant something happened. */
async function play(tenant: TestTenant, start: number, steps: Step[]): Promise<number[]> {
  clock = start;
  const times: number[] = [];
  const captured: { id: string; amount: number }[] = [];
  for (const s of steps) {
    clock += s.after;
    times.push(clock);
    if (s.kind === 'pay') {
      const payment = await payByCard(t.app, tenant.testKey, s.amount, { currency: s.currency });
      captured.push({ id: payment.id, amount: s.amount });
    } else if (s.kind === 'refund' && captured.length) {
      const payment = captured.pop()!;
      await ok(
        await call(t.app, tenant.testKey, 'POST', '/v1/refunds', {
          payment: payment.id,
          amount: Math.max(1, Math.floor(payment.amount * s.share)),
        }),
      );
    } else if (s.kind === 'settle') await t.platform.settlements.run(new Date(clock));
    else if (s.kind === 'payout') {
      const balance = await ok(await call(t.app, tenant.testKey, 'GET', '/v1/balance'));
      const usd = balance.available.find((f: { currency: string }) => f.currency === 'usd')?.amount ?? 0;
      const amount = Math.floor(usd * s.share);
      if (amount > 0) await ok(await call(t.app, tenant.testKey, 'POST', '/v1/payouts', { amount, currency: 'usd' }));
    } else if (s.kind === 'snapshot') await t.platform.balanceHistory.snapshot(new Date(clock));
  }
  return times;
}

/** Instants around what happened, around hour boundaries (where snapshots are), and now. */
function instantsAround(times: number[], start: number): number[] {
  const instants = new Set<number>();
  for (const time of times) {
    for (const delta of [-1000, 0, 1000]) instants.add(seconds(time + delta));
    const hour = Math.floor(time / HOUR) * HOUR;
    for (const delta of [-1000, 0, 1000, HOUR / 2]) instants.add(seconds(hour + delta));
  }
  instants.add(seconds(clock));
  return [...instants].filter((at) => at >= seconds(start) && at * 1000 <= clock).sort((x, y) => x - y);
}

describe('GET /v1/balance?at=', () => {
  it('equals the ledger aggregated up to the instant, at every instant around random activity, with and without snapshots', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 8, maxLength: 24 }), async (steps) => {
        const tenant = await newTenant(`History ${run++}`);
        // Days in the past, so the whole history lies behind the real clock as well.
        const start = Math.floor(Date.now() / HOUR) * HOUR - 4 * 24 * HOUR + 17_000;
        const times = await play(tenant, start, [
          { kind: 'pay', amount: 3_000, currency: 'usd', after: 60_000 },
          ...steps,
          { kind: 'snapshot', after: 20 * 60_000 },
        ]);
        const stored = await t.admin<{ count: number }[]>`
          SELECT count(*)::int AS count FROM balance_snapshots WHERE tenant_id = ${tenant.id}`;
        expect(stored[0].count).toBeGreaterThan(0);
        // From the first payment's second: before it, the account did not exist (the tenant was created today).
        const instants = instantsAround(times, times[0]);
        for (const at of instants)
          expect(await balanceAt(tenant, at), `at ${at}`).toEqual(await ledgerAggregate(tenant, at));
        // Read without snapshots (from the running balances): the same figures, so the snapshots change nothing.
        await t.platform.balanceHistory.forget(scopeOf(tenant));
        for (const at of instants.filter((_, i) => i % 3 === 0))
          expect(await balanceAt(tenant, at), `at ${at}`).toEqual(await ledgerAggregate(tenant, at));
        // Now equals GET /v1/balance.
        expect(await balanceAt(tenant, seconds(clock))).toEqual(
          await ok(await call(t.app, tenant.testKey, 'GET', '/v1/balance')),
        );
      }),
      { numRuns: 4 },
    );
  });

  it('a snapshot pass stores each hour once it is 15 minutes old, back to the previous snapshot, at most two days', async () => {
    const tenant = await newTenant('Hours');
    const start = Math.floor(Date.now() / HOUR) * HOUR - 5 * 24 * HOUR;
    await play(tenant, start, [{ kind: 'pay', amount: 5_000, currency: 'usd', after: 10 * 60_000 }]);
    const hours = async () =>
      (
        await t.admin<{ at: Date }[]>`
          SELECT DISTINCT at FROM balance_snapshots WHERE tenant_id = ${tenant.id} ORDER BY at`
      ).map((row) => row.at.getTime());
    await t.platform.balanceHistory.snapshot(new Date(start + 3 * HOUR + 14 * 60_000));
    let stored = await hours();
    expect(stored.at(-1)).toBe(start + 2 * HOUR);
    expect(stored).toHaveLength(SNAPSHOT_BACKFILL_HOURS + 1);
    await t.platform.balanceHistory.snapshot(new Date(start + 5 * HOUR + 15 * 60_000));
    stored = await hours();
    expect(stored.at(-1)).toBe(start + 5 * HOUR);
    // The hours between the two passes were filled in from the newer one: no gap.
    expect(stored.slice(-4)).toEqual([2, 3, 4, 5].map((h) => start + h * HOUR));
    const [atTwo] = await t.admin<{ balance: number }[]>`
      SELECT balance FROM balance_snapshots WHERE tenant_id = ${tenant.id} AND at = ${new Date(start + 2 * HOUR)}
        AND currency = 'usd' AND type = 'pending'`;
    expect(atTwo.balance).toBeGreaterThan(0);
  });

  it('refuses an instant in the future, before the account existed, or not a number, naming `at`', async () => {
    const tenant = await newTenant('Refusals');
    clock = Date.now();
    expectError(await call(t.app, tenant.testKey, 'GET', `/v1/balance?at=${seconds(clock) + 60}`), 400, {
      type: 'invalid_request_error',
      code: 'parameter_invalid',
      param: 'at',
    });
    expectError(await call(t.app, tenant.testKey, 'GET', `/v1/balance?at=${seconds(clock) - 24 * 3600}`), 400, {
      code: 'parameter_invalid',
      param: 'at',
    });
    for (const bad of ['yesterday', '1.5', '-1', ''])
      expectError(await call(t.app, tenant.testKey, 'GET', `/v1/balance?at=${bad}`), 400, {
        type: 'invalid_request_error',
        param: 'at',
      });
    // The instant the tenant was created is its first: a zero balance.
    await payByCard(t.app, tenant.testKey, 2_000);
    expect(await balanceAt(tenant, seconds(clock))).toEqual(
      await ok(await call(t.app, tenant.testKey, 'GET', '/v1/balance')),
    );
  });

  it('shows a tenant and mode only its own history: other tenants, the live mode and the snapshots under row-level security', async () => {
    const a = await newTenant('Isolated A');
    const b = await newTenant('Isolated B');
    const start = Math.floor(Date.now() / HOUR) * HOUR - 3 * 24 * HOUR;
    await play(a, start, [
      { kind: 'pay', amount: 7_000, currency: 'eur', after: 60_000 },
      { kind: 'snapshot', after: 2 * HOUR },
    ]);
    const at = seconds(start + HOUR);
    expect((await balanceAt(a, at)).pending).toEqual([{ amount: expect.any(Number), currency: 'eur' }]);
    // B has no ledger of its own and exists only from today: A's instant is before it, and nothing of A shows.
    const other = await call(t.app, b.testKey, 'GET', `/v1/balance?at=${at}`);
    expectError(other, 400, { param: 'at' });
    expect(other.body).not.toContain('eur');
    clock = Date.now();
    expect(await ok(await call(t.app, b.testKey, 'GET', `/v1/balance?at=${seconds(clock)}`))).toEqual({
      object: 'balance',
      available: [],
      pending: [],
      reserved: [],
      livemode: false,
    });
    expectError(await call(t.app, a.liveKey, 'GET', `/v1/balance?at=${at}`), 400, { param: 'at' });
    const seen = (scope: Scope) =>
      inScope(
        t.platform.sql,
        scope,
        (tx) => tx`SELECT count(*)::int AS count FROM balance_snapshots WHERE tenant_id = ${a.id}`,
      );
    expect((await seen(scopeOf(a)))[0].count).toBeGreaterThan(0);
    expect((await seen(scopeOf(b)))[0].count).toBe(0);
    expect((await seen({ tenantId: a.id, livemode: true }))[0].count).toBe(0);
    await expect(
      inScope(
        t.platform.sql,
        scopeOf(b),
        (tx) =>
          tx`INSERT INTO balance_snapshots (tenant_id, livemode, at, currency, type, balance) VALUES (${a.id}, false, ${new Date(start)}, 'usd', 'available', 1)`,
      ),
    ).rejects.toThrow(/row-level security/);
  });
});
