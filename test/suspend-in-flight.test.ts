import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootWithTenants, call, card, ok, PLATFORM_KEY, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';
import { waitFor } from './process.js';

// A payment request past authentication when its tenant is suspended must end as a whole payment (its row, its
// charge posting and its events, written together) or as nothing at all: never a payment without its ledger lines
// or its event, whatever moment the suspension lands on. The real database decides; the test only holds the
// tenant's ledger accounts locked so that requests are caught mid-write when the operator suspends.

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Suspended mid-payment');
});
afterAll(() => t.close());

interface Written {
  id: string;
  amount: number;
  status: string;
  fee: number | null;
  balance_transaction: string | null;
  posted: number | null;
  entries: number;
  sum: number | null;
  pending_net: number | null;
  succeeded_events: number;
}

/** Every payment of the tenant with what was written along with it, read in one statement (one snapshot). */
const written = () => t.admin<Written[]>`
  SELECT p.id, p.amount::int, p.status, p.fee::int, p.balance_transaction,
    lt.amount::int AS posted,
    (SELECT count(*)::int FROM ledger_entries e WHERE e.transaction_id = lt.id) AS entries,
    (SELECT sum(e.amount)::int FROM ledger_entries e WHERE e.transaction_id = lt.id) AS sum,
    (SELECT sum(e.amount)::int FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
      WHERE e.transaction_id = lt.id AND a.type = 'pending') AS pending_net,
    (SELECT count(*)::int FROM events ev WHERE ev.tenant_id = p.tenant_id AND ev.object_id = p.id
      AND ev.type = 'payment.succeeded') AS succeeded_events
  FROM payments p LEFT JOIN ledger_transactions lt ON lt.id = p.balance_transaction
  WHERE p.tenant_id = ${tenant.id}
  ORDER BY p.amount`;

/** A succeeded payment carries its whole capture; anything short of succeeded carries none of it. */
function expectWholeOrNothing(rows: Written[]) {
  for (const row of rows) {
    if (row.status === 'succeeded')
      expect(row, row.id).toMatchObject({
        posted: row.amount,
        entries: 3,
        sum: 0,
        pending_net: row.amount - row.fee!,
        succeeded_events: 1,
      });
    else expect(row, row.id).toMatchObject({ posted: null, succeeded_events: 0 });
  }
}

const visa = { currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true };
const pay = (amount: number) => call(t.app, tenant.testKey, 'POST', '/v1/payments', { amount, ...visa });

describe('suspending a tenant while its payments are being written', () => {
  it('finishes each request in flight whole, and refuses the later ones with nothing written', async () => {
    // The tenant's ledger accounts exist from its first capture: the capture statement locks them (postingCtes).
    await ok(await pay(1_000));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const holding = new Promise<void>((resolve) => (locked = resolve));
    let holder = 0;
    const lock = t.admin.begin(async (tx) => {
      await tx`SELECT id FROM ledger_accounts WHERE tenant_id = ${tenant.id} ORDER BY id FOR UPDATE`;
      [{ holder }] = await tx<{ holder: number }[]>`SELECT pg_backend_pid() AS holder`;
      locked();
      await released;
    });
    await holding;
    try {
      const inFlight = Array.from({ length: 8 }, (_, i) => pay(2_000 + i));
      // At least one capture statement is waiting on the accounts: those requests are past authentication and
      // mid-write (their statement has begun) when the suspension commits.
      await waitFor(
        async () => {
          const [{ waiting }] = await t.admin<{ waiting: number }[]>`
            SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE ${holder} = ANY(pg_blocking_pids(pid))`;
          return waiting > 0;
        },
        20_000,
        'a capture waiting on the locked ledger accounts',
      );
      await ok(await call(t.app, PLATFORM_KEY, 'POST', `/v1/tenants/${tenant.id}/suspend`, { reason: 'Mid-payment' }));
      const later = await Promise.all(Array.from({ length: 4 }, (_, i) => pay(3_000 + i)));
      for (const response of later) expect(response.json().error).toMatchObject({ code: 'account_suspended' });
      // Meanwhile nothing half-written is visible to anyone.
      expectWholeOrNothing(await written());
      release();
      await lock;
      // A request still short of authentication when the suspension landed is refused like the later ones; the
      // waiting capture's request at least was past it.
      const answers = await Promise.all(inFlight);
      const paid = answers.flatMap((answer, i) => {
        if (answer.statusCode === 200) return [2_000 + i];
        expect(answer.json().error, answer.body).toMatchObject({ code: 'account_suspended' });
        return [];
      });
      expect(paid.length).toBeGreaterThan(0);
      const rows = await written();
      expectWholeOrNothing(rows);
      // Exactly the answered payments exist, each succeeded; nothing of the refused ones.
      expect(rows.map((row) => [row.amount, row.status])).toEqual(
        [1_000, ...paid].map((amount) => [amount, 'succeeded']),
      );
    } finally {
      release();
      await lock.catch(() => {});
    }
  });
});
