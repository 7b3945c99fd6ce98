import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerService } from '../src/modules/ledger/service.js';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  PLATFORM_KEY,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
  verifiedBankAccount,
} from './helpers.js';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';

// The real worker binary, SIGKILLed in the middle of a settlement run and of a bank-rail pass,
// then restarted: nothing may be settled or paid twice, and nothing may be left behind.

// Deadlines for failure only: each test spawns and kills worker processes and writes hundreds of
// payments, which on a loaded machine takes minutes, not seconds.
const DEADLINE_MS = 120_000;
const TEST_TIMEOUT_MS = 600_000;

const dataDir = mkdtempSync(join(tmpdir(), 'payforward-money-kill-'));
// The rail opens the bank account number from the vault: the worker holds the app's KEK.
const VAULT_KEK = randomBytes(32).toString('base64');
const workers: ServerProcess[] = [];
let t: TestApp;

beforeAll(async () => {
  // The worker settles and pays out for every tenant it sees: it gets a database of its own.
  t = await bootAppOnOwnDatabase('money_kill', { VAULT_KEK });
});

afterAll(async () => {
  for (const worker of workers) await stopServer(worker);
  await t?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function startWorker() {
  const worker = await startServer('worker', {
    DATABASE_URL: t.adminUrl,
    PORT: String(await freePort()),
    PLATFORM_API_KEY: PLATFORM_KEY,
    VAULT_KEK,
    JWT_SECRET: 'money-kill-jwt-secret-0123456789',
    SEED_DEMO_TENANT: 'false',
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    SETTLEMENT_INTERVAL_MS: '50',
    PAYOUT_RAIL_INTERVAL_MS: '20',
  });
  workers.push(worker);
  return worker;
}

async function tenants(count: number, settlement_schedule: Record<string, unknown>): Promise<TestTenant[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const tenant = await createTenant(t.app, `Kill ${index}`);
      await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}`, { settlement_schedule }));
      return tenant;
    }),
  );
}

async function ledgerClean(tenantIds: string[]) {
  const { accounts, transactions } = await LedgerService.verify(t.admin);
  expect(accounts.filter((d) => tenantIds.includes(d.tenant_id))).toEqual([]);
  expect(transactions.filter((d) => tenantIds.includes(d.tenant_id))).toEqual([]);
}

const CURRENCIES = ['usd', 'eur', 'gbp', 'jpy'];

describe('SIGKILL during a settlement run', () => {
  it(
    'settles every due transaction exactly once after a restart',
    async () => {
      // Many small groups (tenant × currency), each settled in its own transaction, so the run
      // lasts long enough to be killed half-way.
      const owners = await tenants(30, { type: 'daily', delay_days: 0 });
      const ids = owners.map((o) => o.id);
      await Promise.all(
        owners.flatMap((owner) =>
          CURRENCIES.flatMap((currency) =>
            Array.from({ length: 3 }, (_, i) =>
              call(t.app, owner.testKey, 'POST', '/v1/payments', {
                amount: 1_000 + i,
                currency,
                payment_method: card(TEST_CARDS.visa),
                confirm: true,
              }),
            ),
          ),
        ),
      );
      const groups = owners.length * CURRENCIES.length;
      const settledCount = async () =>
        (await t.admin<{ n: number }[]>`SELECT count(*)::int AS n FROM settlements WHERE tenant_id = ANY(${ids})`)[0].n;

      const first = await startWorker();
      const atKill = await waitFor(
        async () => {
          const n = await settledCount();
          return n > 0 && n;
        },
        DEADLINE_MS,
        'the first settlement',
      );
      await stopServer(first);
      const afterKill = await settledCount();
      // Killed half-way: some groups were settled, the rest were not.
      expect(atKill).toBeGreaterThan(0);
      expect(afterKill).toBeLessThan(groups);

      const second = await startWorker();
      await waitFor(async () => (await settledCount()) >= groups, DEADLINE_MS, 'every group to settle');
      // Later passes must not add anything. A charge made now is settled only by a pass that starts
      // after it, so once it is settled, at least one full pass ran over the settled groups too.
      const [probe] = await tenants(1, { type: 'daily', delay_days: 0 });
      await ok(
        await call(t.app, probe.testKey, 'POST', '/v1/payments', {
          amount: 1_000,
          currency: 'usd',
          payment_method: card(TEST_CARDS.visa),
          confirm: true,
        }),
      );
      await waitFor(
        async () => (await t.admin`SELECT 1 FROM settlements WHERE tenant_id = ${probe.id}`).length > 0,
        DEADLINE_MS,
        'a settlement pass after the last group settled',
      );
      await stopServer(second);
      expect(await settledCount()).toBe(groups);

      const unsettled =
        await t.admin`SELECT id FROM ledger_transactions WHERE tenant_id = ANY(${ids}) AND type = 'charge' AND settlement_id IS NULL`;
      expect(unsettled).toEqual([]);
      // Each group's one settlement carries its three charges, and its posting exists exactly once.
      const perGroup = await t.admin<
        {
          tenant_id: string;
          currency: string;
          settlements: number;
          count: number;
          net: number;
          postings: number;
          available: number;
        }[]
      >`
      SELECT s.tenant_id, s.currency, count(*)::int AS settlements, sum(s.count)::int AS count, sum(s.net)::bigint AS net,
        (SELECT count(*)::int FROM ledger_transactions l WHERE l.tenant_id = s.tenant_id AND l.type = 'settlement' AND l.source_id = ANY(array_agg(s.id))) AS postings,
        (SELECT balance FROM ledger_accounts a WHERE a.tenant_id = s.tenant_id AND a.livemode = false AND a.type = 'available' AND a.currency = s.currency) AS available
      FROM settlements s WHERE s.tenant_id = ANY(${ids}) GROUP BY s.tenant_id, s.currency`;
      expect(perGroup).toHaveLength(groups);
      for (const group of perGroup) {
        expect(group).toMatchObject({ settlements: 1, count: 3, postings: 1 });
        expect(group.available).toBe(group.net);
      }
      await ledgerClean(ids);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('SIGKILL during bank-rail passes', () => {
  it(
    'pays every payout exactly once after a restart',
    async () => {
      const owners = await tenants(30, { type: 'instant', delay_days: 0 });
      const ids = owners.map((o) => o.id);
      const payoutIds: string[] = [];
      await Promise.all(owners.map((owner) => verifiedBankAccount(t.app, owner.testKey)));
      for (const owner of owners) {
        await ok(
          await call(t.app, owner.testKey, 'POST', '/v1/payments', {
            amount: 100_000,
            currency: 'usd',
            payment_method: card(TEST_CARDS.visa),
            confirm: true,
          }),
        );
        for (let i = 0; i < 6; i++) {
          // Instant payouts are due at once, so one worker pass moves them in transit and the next pays them.
          payoutIds.push(
            (
              await ok(
                await call(t.app, owner.testKey, 'POST', '/v1/payouts', {
                  amount: 1_000 + i,
                  currency: 'usd',
                  method: 'instant',
                }),
              )
            ).id,
          );
        }
      }
      const paidCount = async () =>
        (
          await t.admin<
            { n: number }[]
          >`SELECT count(*)::int AS n FROM payouts WHERE id = ANY(${payoutIds}) AND status = 'paid'`
        )[0].n;

      const first = await startWorker();
      await waitFor(async () => (await paidCount()) > 0, DEADLINE_MS, 'the first paid payout');
      await stopServer(first);
      expect(await paidCount()).toBeLessThan(payoutIds.length);

      const second = await startWorker();
      await waitFor(async () => (await paidCount()) === payoutIds.length, DEADLINE_MS, 'every payout to be paid');
      // Later passes must not pay anything twice. A payout made now is paid only by passes that start
      // after it, so once it is paid, at least one full pass ran over the paid payouts too.
      const probe = await ok(
        await call(t.app, owners[0].testKey, 'POST', '/v1/payouts', {
          amount: 500,
          currency: 'usd',
          method: 'instant',
        }),
      );
      await waitFor(
        async () => (await t.admin`SELECT 1 FROM payouts WHERE id = ${probe.id} AND status = 'paid'`).length > 0,
        DEADLINE_MS,
        'a rail pass after the last payout was paid',
      );
      await stopServer(second);

      const postings = await t.admin<{ source_id: string; type: string; n: number }[]>`
      SELECT source_id, type, count(*)::int AS n FROM ledger_transactions WHERE source_id = ANY(${payoutIds}) GROUP BY source_id, type`;
      expect(postings).toHaveLength(payoutIds.length * 2);
      expect(postings.every((p) => p.n === 1 && (p.type === 'payout' || p.type === 'payout_paid'))).toBe(true);
      const events = await t.admin<{ type: string; n: number }[]>`
      SELECT type, count(*)::int AS n FROM events WHERE object_id = ANY(${payoutIds}) GROUP BY type ORDER BY type`;
      expect(events).toEqual([
        { type: 'payout.created', n: payoutIds.length },
        { type: 'payout.paid', n: payoutIds.length },
        { type: 'payout.updated', n: payoutIds.length },
      ]);
      const inTransit = await t.admin<{ balance: number }[]>`
      SELECT balance FROM ledger_accounts WHERE tenant_id = ANY(${ids}) AND type = 'payouts_in_transit'`;
      expect(inTransit.every((a) => a.balance === 0)).toBe(true);
      await ledgerClean(ids);
    },
    TEST_TIMEOUT_MS,
  );
});
