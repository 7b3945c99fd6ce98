import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  bootWithTenants,
  call,
  card,
  createTenant,
  payByCard,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from '../../../test/helpers.js';
import { waitFor } from '../../../test/process.js';
import type { Tx } from '../../db/index.js';
import { verifyAuditTrail } from '../audit/verify.js';
import { LedgerService } from '../ledger/service.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Refunds tenant');
});
afterAll(() => t.close());

const post = (url: string, body?: unknown, headers?: Record<string, string>) =>
  call(t.app, tenant.testKey, 'POST', url, body, headers);
const get = (url: string) => call(t.app, tenant.testKey, 'GET', url);

async function paid(amount = 2000, extra: Record<string, unknown> = {}) {
  const res = await post('/v1/payments', {
    amount,
    currency: 'usd',
    payment_method: card(TEST_CARDS.visa),
    confirm: true,
    ...extra,
  });
  expect(res.statusCode).toBe(200);
  return res.json();
}

async function refundEvents(refundId: string) {
  const res = await get(`/v1/events?object_id=${refundId}`);
  expect(res.statusCode).toBe(200);
  return res.json().data as Array<{ type: string; data: { object: Record<string, unknown> } }>;
}

/**
 * Takes a row lock in an admin transaction and keeps it until the returned function is called (which resolves once
 * the transaction has ended): batches that need the row wait, and what is submitted meanwhile gathers behind them.
 */
async function holdLock(lock: (tx: Tx) => Promise<unknown>): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let holding!: () => void;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const hold = t.admin.begin(async (tx) => {
    await lock(tx);
    holding();
    await released;
  });
  await held;
  return async () => {
    release();
    await hold;
  };
}

/** How many of the rows the busiest transaction wrote (`writer`: the rows' xmin). */
function mostByOneWriter(rows: { writer: string }[]): number {
  const byWriter = new Map<string, number>();
  for (const row of rows) byWriter.set(row.writer, (byWriter.get(row.writer) ?? 0) + 1);
  return Math.max(...byWriter.values());
}

describe('POST /v1/refunds', () => {
  it('refunds a payment in full when no amount is given', async () => {
    const payment = await paid(2000);
    const res = await post('/v1/refunds', {
      payment: payment.id,
      reason: 'requested_by_customer',
      metadata: { ticket: '42' },
    });
    expect(res.statusCode).toBe(200);
    const refund = res.json();
    expect(refund).toMatchObject({
      object: 'refund',
      amount: 2000,
      currency: 'usd',
      payment: payment.id,
      status: 'succeeded',
      reason: 'requested_by_customer',
      failure_reason: null,
      metadata: { ticket: '42' },
      livemode: false,
    });
    expect(refund.id).toMatch(/^re_/);
    expect((await get(`/v1/payments/${payment.id}`)).json()).toMatchObject({
      amount_refunded: 2000,
      status: 'succeeded',
    });

    const again = await post('/v1/refunds', { payment: payment.id });
    expect(again.statusCode).toBe(400);
    expect(again.json().error).toMatchObject({ type: 'invalid_request_error', code: 'charge_already_refunded' });
  });

  it('refunds part of a payment, several times, then the rest with no amount', async () => {
    const payment = await paid(2000);
    const first = await post('/v1/refunds', { payment: payment.id, amount: 500 });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ amount: 500, status: 'succeeded' });
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(500);

    const second = await post('/v1/refunds', { payment: payment.id, amount: 700 });
    expect(second.json()).toMatchObject({ amount: 700, status: 'succeeded' });
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(1200);

    const rest = await post('/v1/refunds', { payment: payment.id });
    expect(rest.statusCode).toBe(200);
    expect(rest.json().amount).toBe(800);
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(2000);
    expect(new Set([first.json().id, second.json().id, rest.json().id]).size).toBe(3);
  });

  it('refuses to refund more than remains (400 param amount) and changes nothing', async () => {
    const payment = await paid(1000);
    expect((await post('/v1/refunds', { payment: payment.id, amount: 600 })).statusCode).toBe(200);
    const res = await post('/v1/refunds', { payment: payment.id, amount: 401 });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'amount_too_large',
      param: 'amount',
    });
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(600);
    const list = (await get(`/v1/refunds?payment=${payment.id}`)).json();
    expect(list.data).toHaveLength(1);
    // Exactly the remainder is still fine.
    expect((await post('/v1/refunds', { payment: payment.id, amount: 400 })).statusCode).toBe(200);
  });

  it('refunds only what a partial capture received', async () => {
    const payment = await paid(5000, { capture_method: 'manual' });
    const captured = await post(`/v1/payments/${payment.id}/capture`, { amount_to_capture: 3000 });
    expect(captured.json().amount_received).toBe(3000);
    const full = await post('/v1/refunds', { payment: payment.id });
    expect(full.statusCode).toBe(200);
    expect(full.json().amount).toBe(3000);
    expect((await get(`/v1/payments/${payment.id}`)).json()).toMatchObject({
      amount_received: 3000,
      amount_refunded: 3000,
    });
  });

  it('refuses to refund a payment that was not captured', async () => {
    const manual = await paid(2000, { capture_method: 'manual' });
    expect(manual.status).toBe('requires_capture');
    const res = await post('/v1/refunds', { payment: manual.id });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'payment_not_captured',
      param: 'payment',
    });

    const unconfirmed = (await post('/v1/payments', { amount: 2000, currency: 'usd' })).json();
    const res2 = await post('/v1/refunds', { payment: unconfirmed.id, amount: 100 });
    expect(res2.statusCode).toBe(400);
    expect(res2.json().error.code).toBe('payment_not_captured');

    const declined = (
      await post('/v1/payments', {
        amount: 2000,
        currency: 'usd',
        payment_method: card(TEST_CARDS.declined),
        confirm: true,
      })
    ).json().error.payment;
    const res3 = await post('/v1/refunds', { payment: declined.id });
    expect(res3.statusCode).toBe(400);
    expect((await get(`/v1/payments/${manual.id}`)).json().amount_refunded).toBe(0);
  });

  it('answers 404 for an unknown payment', async () => {
    const res = await post('/v1/refunds', { payment: 'pay_doesnotexist' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'resource_missing',
      param: 'payment',
    });
  });

  it('validates the body', async () => {
    const payment = await paid(1000);
    for (const [body, param] of [
      [{}, 'payment'],
      [{ payment: payment.id, amount: 0 }, 'amount'],
      [{ payment: payment.id, amount: '100' }, 'amount'],
      [{ payment: payment.id, reason: 'whim' }, 'reason'],
      [{ payment: payment.id, extra: true }, 'extra'],
    ] as const) {
      const res = await post('/v1/refunds', body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error.param).toBe(param);
    }
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(0);
  });

  it('writes refund.created then refund.succeeded events', async () => {
    const payment = await paid(1500);
    const refund = (await post('/v1/refunds', { payment: payment.id, amount: 900 })).json();
    const events = await refundEvents(refund.id);
    expect(events.map((e) => e.type).sort()).toEqual(['refund.created', 'refund.succeeded']);
    const created = events.find((e) => e.type === 'refund.created')!;
    const succeeded = events.find((e) => e.type === 'refund.succeeded')!;
    expect(created.data.object).toMatchObject({ id: refund.id, status: 'pending', amount: 900, payment: payment.id });
    expect(succeeded.data.object).toEqual(refund);
  });
});

describe('GET /v1/refunds', () => {
  it('lists refunds newest first, filtered by payment', async () => {
    const a = await paid(3000);
    const b = await paid(3000);
    const r1 = (await post('/v1/refunds', { payment: a.id, amount: 100 })).json();
    const r2 = (await post('/v1/refunds', { payment: b.id, amount: 200 })).json();
    const r3 = (await post('/v1/refunds', { payment: a.id, amount: 300 })).json();

    const forA = await get(`/v1/refunds?payment=${a.id}`);
    expect(forA.statusCode).toBe(200);
    expect(forA.json()).toMatchObject({ object: 'list', url: '/v1/refunds', has_more: false });
    expect(forA.json().data.map((r: { id: string }) => r.id)).toEqual([r3.id, r1.id]);
    expect(forA.json().data.every((r: { payment: string }) => r.payment === a.id)).toBe(true);

    const forB = (await get(`/v1/refunds?payment=${b.id}`)).json();
    expect(forB.data).toEqual([r2]);

    const page = (await get('/v1/refunds?limit=2')).json();
    expect(page.data.map((r: { id: string }) => r.id)).toEqual([r3.id, r2.id]);
    expect(page.has_more).toBe(true);
    const next = (await get(`/v1/refunds?limit=2&starting_after=${r2.id}`)).json();
    expect(next.data[0].id).toBe(r1.id);

    const none = (await get('/v1/refunds?payment=pay_none')).json();
    expect(none.data).toEqual([]);
  });

  it('rejects an invalid limit', async () => {
    const res = await get('/v1/refunds?limit=1000');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe('limit');
  });
});

describe('GET /v1/refunds/{id}', () => {
  it('retrieves a refund', async () => {
    const payment = await paid(1000);
    const refund = (await post('/v1/refunds', { payment: payment.id, amount: 250 })).json();
    const res = await get(`/v1/refunds/${refund.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(refund);
  });

  it('answers 404 for an unknown refund', async () => {
    const res = await get('/v1/refunds/re_doesnotexist');
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('resource_missing');
  });
});

describe('concurrent refunds', () => {
  it('checks concurrent refunds of two tenants and both modes together, each against its own payments', async () => {
    const other = await createTenant(t.app, 'Refunds other tenant');
    const mine = await paid(3000);
    const theirs = await payByCard(t.app, other.testKey, 3000);
    const disputedPayment = await paid(3000, { payment_method: card(TEST_CARDS.disputed) });
    await t.platform.disputes.intake();
    // Sent at once, their reads before the reservation share statements: a read of one must not answer another.
    const answers = await Promise.all([
      post('/v1/refunds', { payment: mine.id, amount: 100 }),
      call(t.app, other.testKey, 'POST', '/v1/refunds', { payment: mine.id, amount: 100 }),
      call(t.app, tenant.liveKey, 'POST', '/v1/refunds', { payment: mine.id, amount: 100 }),
      call(t.app, other.testKey, 'POST', '/v1/refunds', { payment: theirs.id, amount: 100 }),
      post('/v1/refunds', { payment: theirs.id, amount: 100 }),
      post('/v1/refunds', { payment: mine.id, amount: 5000 }),
      post('/v1/refunds', { payment: disputedPayment.id, amount: 100 }),
    ]);
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 404, 404, 200, 404, 400, 400]);
    expect(answers[1].json().error).toMatchObject({ code: 'resource_missing', param: 'payment' });
    expect(answers[6].json().error).toMatchObject({ code: 'charge_disputed', param: 'payment' });
    const refunded = await t.admin<{ id: string; amount_refunded: number }[]>`
      SELECT id, amount_refunded FROM payments WHERE id = ANY(${[mine.id, theirs.id, disputedPayment.id]})`;
    expect(Object.fromEntries(refunded.map((row) => [row.id, row.amount_refunded]))).toEqual({
      [mine.id]: 100,
      [theirs.id]: 100,
      [disputedPayment.id]: 0,
    });
  });

  it('20 concurrent refunds of 300 on a 2000 payment: exactly 6 succeed and nothing is over-refunded', async () => {
    const payment = await paid(2000);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => post('/v1/refunds', { payment: payment.id, amount: 300 })),
    );
    const ok = results.filter((r) => r.statusCode === 200);
    expect(ok).toHaveLength(6);
    for (const r of results.filter((r) => r.statusCode !== 200)) {
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'amount_too_large', param: 'amount' });
    }
    const succeeded = ok.map((r) => r.json()).filter((r) => r.status === 'succeeded');
    const total = succeeded.reduce((sum, r) => sum + r.amount, 0);
    expect(total).toBe(1800);
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(total);

    const listed = (await get(`/v1/refunds?payment=${payment.id}&limit=100`)).json().data;
    expect(listed).toHaveLength(6);
    // At the database level too: the refunds recorded never add up to more than was captured.
    const [row] = await t.admin<{ sum: number; refunded: number }[]>`
      SELECT (SELECT coalesce(sum(amount), 0)::bigint FROM refunds WHERE payment_id = ${payment.id} AND status <> 'failed') AS sum,
             (SELECT amount_refunded FROM payments WHERE id = ${payment.id}) AS refunded`;
    expect(row).toEqual({ sum: 1800, refunded: 1800 });
  });

  it('concurrent full refunds refund the payment exactly once', async () => {
    const payment = await paid(1200);
    const results = await Promise.all(Array.from({ length: 10 }, () => post('/v1/refunds', { payment: payment.id })));
    const ok = results.filter((r) => r.statusCode === 200);
    expect(ok).toHaveLength(1);
    expect(ok[0].json().amount).toBe(1200);
    expect(results.every((r) => r.statusCode === 200 || r.statusCode === 400)).toBe(true);
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(1200);
  });
});

describe('a refund the processor fails', () => {
  let failing: TestApp;
  beforeAll(async () => {
    // The same database through an app whose processors fail every call: the payment is captured by `t`.
    failing = await bootApp({ PROCESSOR_FAILURE_RATE: '1' });
  });
  afterAll(() => failing?.close());

  it('gives its reserved amount back, writes refund.failed and posts nothing', async () => {
    const payment = await paid(1500);
    const balance = async () => (await get('/v1/balance')).json().pending;
    const before = await balance();
    const res = await call(failing.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payment.id, amount: 500 });
    expect(res.statusCode, res.body).toBe(200);
    const refund = res.json();
    expect(refund).toMatchObject({ status: 'failed', failure_reason: 'processor_error', amount: 500 });
    expect(refund.balance_transaction).toBeNull();
    expect((await get(`/v1/payments/${payment.id}`)).json().amount_refunded).toBe(0);
    expect((await refundEvents(refund.id)).map((e) => e.type).sort()).toEqual(['refund.created', 'refund.failed']);
    expect(await balance()).toEqual(before);
    const [posted] = await t.admin`SELECT count(*)::int AS n FROM ledger_transactions WHERE source_id = ${refund.id}`;
    expect(posted.n).toBe(0);
    // The amount is refundable again, in full.
    const whole = await post('/v1/refunds', { payment: payment.id });
    expect(whole.json()).toMatchObject({ status: 'succeeded', amount: 1500 });
  });
});

describe('refund reservations written in batches', () => {
  it('reserves concurrent refunds together: each with its audit entry, the chain unbroken, no payment over-refunded', async () => {
    const payments = [await paid(1000), await paid(1000), await paid(1000)];
    // The tenant's audit chain head, held: the first batch of reservations waits for it and the others gather.
    await post('/v1/refunds', { payment: payments[0].id, amount: 100 });
    const keys = Array.from({ length: 15 }, (_, i) => `batch-${payments[0].id}-${i}`);
    const release = await holdLock((tx) => tx`SELECT seq FROM audit_chains WHERE tenant_id = ${tenant.id} FOR UPDATE`);
    // Five refunds of 250 per payment: 900 remains on the first, 1000 on the others, so some cannot be given.
    const requests = keys.map((key, i) =>
      post('/v1/refunds', { payment: payments[i % 3].id, amount: 250 }, { 'idempotency-key': key }),
    );
    await waitFor(
      async () => {
        const [row] = await t.admin<{ waiting: number; started: number }[]>`
          SELECT (SELECT count(*)::int FROM pg_stat_activity
                  WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%WITH wanted AS%')
                   AS waiting,
                 (SELECT count(*)::int FROM idempotency_keys WHERE key LIKE ${`%batch-${payments[0].id}-%`}) AS started`;
        return row.waiting >= 1 && row.started === keys.length;
      },
      30_000,
      'the first batch waiting for the chain head and every request started',
    );
    await release();
    const answers = await Promise.all(requests);
    const refused = answers.filter((a) => a.statusCode !== 200);
    for (const answer of refused) expect(answer.json().error).toMatchObject({ code: 'amount_too_large' });
    // 900 remaining gives three refunds of 250 and 1,000 gives four, whatever the order.
    expect(answers.filter((a) => a.statusCode === 200)).toHaveLength(11);
    expect(refused).toHaveLength(4);

    const ids = answers.filter((a) => a.statusCode === 200).map((a) => a.json().id as string);
    const entries = await t.admin<{ target_id: string; writer: string }[]>`
      SELECT e.target_id, e.xmin::text AS writer FROM audit_entries e
      WHERE e.action = 'refund.created' AND e.target_id = ANY(${ids})`;
    expect(entries.map((e) => e.target_id).sort()).toEqual([...ids].sort());
    expect(mostByOneWriter(entries)).toBeGreaterThan(1);
    const verification = await verifyAuditTrail(t.admin, { publicKeys: [], maxUnsignedMs: 86_400_000 });
    expect(verification.problems.filter((p) => p.chain === tenant.id)).toEqual([]);
    for (const payment of payments) {
      const [row] = await t.admin<{ refunded: number; kept: number; received: number }[]>`
        SELECT p.amount_refunded AS refunded, p.amount_received AS received,
          (SELECT coalesce(sum(amount), 0)::bigint FROM refunds WHERE payment_id = p.id AND status <> 'failed') AS kept
        FROM payments p WHERE p.id = ${payment.id}`;
      expect(row.refunded).toBe(row.kept);
      expect(row.refunded).toBeLessThanOrEqual(row.received);
    }
  });
});

describe('refund outcomes written in batches', () => {
  let batched: TestApp;
  beforeAll(async () => {
    // One batch at a time, and half the processor's answers failures: a batch held up gathers succeeded and failed
    // outcomes, several of them on one payment.
    batched = await bootApp({ PROCESSOR_FAILURE_RATE: '0.5', BATCH_MAX_CONCURRENCY: '1' });
  });
  afterAll(() => batched?.close());

  it('writes each outcome once, with its posting or its release, when many share one statement', async () => {
    const payments = [await paid(3000), await paid(3000), await paid(3000)];
    const [pending] = await t.admin<{ id: string }[]>`
      SELECT id FROM ledger_accounts WHERE tenant_id = ${tenant.id} AND livemode = false AND type = 'pending'
        AND currency = 'usd'`;
    const refundsMade = async () => {
      const [row] = await t.admin<{ n: number }[]>`
        SELECT count(*)::int AS n FROM sim_processor_calls
        WHERE operation = 'refund' AND order_id = ANY(${payments.map((p) => p.id)})`;
      return row.n;
    };
    // The tenant's pending account is held, so the first batch with a posting waits for it and the rest gather.
    const release = await holdLock(
      (tx) => tx`SELECT id FROM ledger_accounts WHERE id = ${pending.id} FOR NO KEY UPDATE`,
    );
    const requests = payments.flatMap((payment) =>
      Array.from({ length: 4 }, () =>
        call(batched.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payment.id, amount: 250 }),
      ),
    );
    await waitFor(
      async () => (await refundsMade()) === requests.length,
      30_000,
      'the processor to answer every refund',
    );
    await release();
    const answers = await Promise.all(requests);
    for (const answer of answers) expect(answer.statusCode, answer.body).toBe(200);
    const refunds = answers.map((answer) => answer.json() as { id: string; status: string; amount: number });
    expect(new Set(refunds.map((r) => r.status))).toEqual(new Set(['succeeded', 'failed']));

    const ids = refunds.map((r) => r.id);
    const stored = await t.admin<{ id: string; status: string; writer: string; postings: number; events: string[] }[]>`
      SELECT r.id, r.status, r.xmin::text AS writer,
        (SELECT count(*)::int FROM ledger_transactions l
          WHERE l.source_id = r.id AND l.type = 'refund' AND l.amount = -r.amount) AS postings,
        (SELECT array_agg(e.type ORDER BY e.type) FROM events e WHERE e.object_id = r.id) AS events
      FROM refunds r WHERE r.id = ANY(${ids})`;
    expect(stored).toHaveLength(ids.length);
    for (const refund of refunds) {
      const row = stored.find((s) => s.id === refund.id)!;
      expect(row.status).toBe(refund.status);
      expect(row.postings).toBe(refund.status === 'succeeded' ? 1 : 0);
      expect(row.events).toEqual(['refund.created', `refund.${refund.status}`]);
    }
    // Held up behind the account, the outcomes that gathered were written by one transaction.
    expect(mostByOneWriter(stored)).toBeGreaterThan(1);

    // Every payment keeps exactly its refunds that did not fail reserved, failed ones released together included.
    for (const payment of payments) {
      const [row] = await t.admin<{ refunded: number; kept: number }[]>`
        SELECT p.amount_refunded AS refunded,
          (SELECT coalesce(sum(amount), 0)::bigint FROM refunds WHERE payment_id = p.id AND status <> 'failed') AS kept
        FROM payments p WHERE p.id = ${payment.id}`;
      expect(row.refunded).toBe(row.kept);
    }
    const differences = await LedgerService.verify(t.admin);
    expect(differences.accounts.filter((a) => a.tenant_id === tenant.id)).toEqual([]);
    expect(differences.transactions.filter((d) => d.tenant_id === tenant.id)).toEqual([]);
  });
});
