import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, card, createTenant, TEST_CARDS, type TestApp, type TestTenant } from '../../../test/helpers.js';
import { waitFor } from '../../../test/process.js';
import { SimulatedProcessor } from '../connectors/simulated.js';
import { SimulatedProcessorRecords } from '../connectors/simulated-records.js';
import { LedgerService } from '../ledger/service.js';
import { EVIDENCE_FIELD_NAMES } from './schemas.js';

// The worker passes (intake, review) are called directly rather than waited for.

let t: TestApp;
let tenant: TestTenant;
let other: TestTenant;
/** Every tenant this file creates, for the ledger check at the end. */
const ours = new Set<string>();

beforeAll(async () => {
  t = await bootApp();
  tenant = await createTenant(t.app, 'Disputes tenant');
  other = await createTenant(t.app, 'Disputes other tenant');
  ours.add(tenant.id).add(other.id);
});
afterAll(() => t.close());

const post = (url: string, body?: unknown, key = tenant.testKey) => call(t.app, key, 'POST', url, body);
const get = (url: string, key = tenant.testKey) => call(t.app, key, 'GET', url);

async function ok(response: Awaited<ReturnType<typeof call>>) {
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

async function pay(
  amount: number,
  number = TEST_CARDS.disputed,
  key = tenant.testKey,
  extra: Record<string, unknown> = {},
) {
  return ok(
    await post('/v1/payments', { amount, currency: 'usd', payment_method: card(number), confirm: true, ...extra }, key),
  );
}

async function disputeOf(paymentId: string, key = tenant.testKey) {
  const list = await ok(await get(`/v1/disputes?payment=${paymentId}`, key));
  expect(list.data.length).toBeLessThanOrEqual(1);
  return list.data[0];
}

/** A captured payment with the disputed test card, the balance before intake, and the dispute intake opened. */
async function disputed(amount = 5000, key = tenant.testKey) {
  const payment = await pay(amount, TEST_CARDS.disputed, key);
  const before = await balance(key);
  await t.platform.disputes.intake();
  const dispute = await disputeOf(payment.id, key);
  expect(dispute, 'intake opened no dispute').toBeDefined();
  return { payment, dispute, before };
}

async function balance(key = tenant.testKey) {
  const body = await ok(await get('/v1/balance', key));
  const usd = (funds: Array<{ amount: number; currency: string }>) =>
    funds.find((f) => f.currency === 'usd')?.amount ?? 0;
  return { pending: usd(body.pending), available: usd(body.available), reserved: usd(body.reserved) };
}

async function eventTypes(objectId: string, key = tenant.testKey) {
  const events = await ok(await get(`/v1/events?object_id=${objectId}&limit=100`, key));
  return (events.data as Array<{ type: string }>).map((e) => e.type).sort();
}

const DISPUTE_FEE = 1500;

describe('simulated processor', () => {
  let sim: SimulatedProcessor;
  beforeAll(() => {
    const options = { latencyMs: 0, failureRate: 0, lostResponseRate: 0, failingCards: [] };
    sim = new SimulatedProcessor('sim_test', options, new SimulatedProcessorRecords(t.admin));
  });
  const authorize = (number: string, attemptId: string) =>
    sim.authorize({
      merchant: { tenantId: tenant.id, livemode: false },
      paymentId: `pay_${attemptId}`,
      attemptId,
      amount: 100,
      currency: 'usd',
      card: { number, expMonth: 12, expYear: 2099 },
      capture: true,
      threeDSecureAuthenticated: false,
    });

  it("marks the disputed card's reference, deterministically from the attempt id", async () => {
    const first = await authorize(TEST_CARDS.disputed, 'pat_1');
    expect(first).toMatchObject({
      status: 'succeeded',
      reference: expect.stringMatching(/^sim_test_dsp_[0-9a-f]{20}$/),
    });
    expect(await authorize(TEST_CARDS.disputed, 'pat_1')).toEqual(first);
    const plain = await authorize(TEST_CARDS.visa, 'pat_1_plain');
    expect(plain).toMatchObject({ reference: expect.stringMatching(/^sim_test_[0-9a-f]{20}$/) });
  });

  it('disputes only the references it marked, as fraudulent, for the whole amount', async () => {
    const marked = (await authorize(TEST_CARDS.disputed, 'pat_2')) as { reference: string };
    const plain = (await authorize(TEST_CARDS.visa, 'pat_2_plain')) as { reference: string };
    expect(await sim.dispute({ reference: marked.reference, amount: 1234 })).toEqual({
      reason: 'fraudulent',
      amount: 1234,
    });
    expect(await sim.dispute({ reference: plain.reference, amount: 1234 })).toBeNull();
    expect(
      await sim.dispute({ reference: marked.reference.replace('sim_test', 'sim_other'), amount: 1234 }),
    ).toBeNull();
  });

  it('decides by the evidence: winning_evidence / losing_evidence, else any evidence wins and none loses', async () => {
    const decide = (evidence: Record<string, string>) => sim.disputeOutcome({ reference: 'sim_test_dsp_x', evidence });
    expect(await decide({ uncategorized_text: 'see attached: winning_evidence' })).toBe('won');
    expect(await decide({ uncategorized_text: 'losing_evidence', product_description: 'a hat' })).toBe('lost');
    expect(await decide({ product_description: 'a hat' })).toBe('won');
    expect(await decide({})).toBe('lost');
  });
});

describe('dispute intake', () => {
  it('opens one dispute on a captured disputed-card payment, with its balance effects and events', async () => {
    const payment = await pay(5000);
    const before = await balance();
    await t.platform.disputes.intake();
    const dispute = await disputeOf(payment.id);
    expect(dispute).toMatchObject({
      object: 'dispute',
      amount: 5000,
      currency: 'usd',
      payment: payment.id,
      reason: 'fraudulent',
      status: 'needs_response',
      fee: DISPUTE_FEE,
      metadata: {},
      livemode: false,
      evidence_details: { has_evidence: false, past_due: false, submission_count: 0 },
    });
    expect(dispute.id).toMatch(/^dp_/);
    expect(Object.values(dispute.evidence).every((value) => value === null)).toBe(true);
    expect(dispute.evidence_details.due_by - dispute.created).toBe(7 * 24 * 3600);
    expect(dispute.balance_transactions).toHaveLength(1);

    expect(await balance()).toEqual({
      pending: before.pending - 5000 - DISPUTE_FEE,
      available: before.available,
      reserved: before.reserved + 5000,
    });

    const transactions = await ok(await get(`/v1/balance_transactions?type=dispute&source=${dispute.id}`));
    expect(transactions.data).toHaveLength(1);
    expect(transactions.data[0]).toMatchObject({
      id: dispute.balance_transactions[0],
      type: 'dispute',
      amount: -5000,
      fee: DISPUTE_FEE,
      net: -5000 - DISPUTE_FEE,
      currency: 'usd',
      status: 'pending',
      source: dispute.id,
      fee_details: [{ type: 'dispute_fee', amount: DISPUTE_FEE, currency: 'usd' }],
    });

    expect(await eventTypes(dispute.id)).toEqual(['dispute.created', 'dispute.funds_withdrawn']);
    expect(await ok(await get(`/v1/disputes/${dispute.id}`))).toEqual(dispute);
  });

  it('opens exactly one dispute and one posting when intake runs twice and concurrently', async () => {
    const payment = await pay(2500);
    const before = await balance();
    await Promise.all([t.platform.disputes.intake(), t.platform.disputes.intake(), t.platform.disputes.intake()]);
    await t.platform.disputes.intake();
    const rows = await t.admin<{ id: string }[]>`SELECT id FROM disputes WHERE payment_id = ${payment.id}`;
    expect(rows).toHaveLength(1);
    const postings = await t.admin`SELECT id FROM ledger_transactions WHERE source_id = ${rows[0].id}`;
    expect(postings).toHaveLength(1);
    expect(await eventTypes(rows[0].id)).toEqual(['dispute.created', 'dispute.funds_withdrawn']);
    expect(await balance()).toMatchObject({
      pending: before.pending - 2500 - DISPUTE_FEE,
      reserved: before.reserved + 2500,
    });
  });

  it('disputes a payment only once it is captured, for what was captured; other cards are never disputed', async () => {
    const manual = await pay(5000, TEST_CARDS.disputed, tenant.testKey, { capture_method: 'manual' });
    const visa = await pay(5000, TEST_CARDS.visa);
    await t.platform.disputes.intake();
    expect(await disputeOf(manual.id)).toBeUndefined();
    expect(await disputeOf(visa.id)).toBeUndefined();

    await ok(await post(`/v1/payments/${manual.id}/capture`, { amount_to_capture: 3000 }));
    await t.platform.disputes.intake();
    expect(await disputeOf(manual.id)).toMatchObject({ amount: 3000, status: 'needs_response' });
  });
});

describe('disputes and refunds of the same payment', () => {
  it('a disputed payment cannot be refunded: the money would leave twice', async () => {
    const { payment } = await disputed(4_000);
    const response = await post('/v1/refunds', { payment: payment.id, amount: 100 });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error).toMatchObject({ code: 'charge_disputed', param: 'payment' });
    expect((await ok(await get(`/v1/payments/${payment.id}`))).amount_refunded).toBe(0);
  });

  it('a dispute that opens while a refund waits for the payment is seen by the refund, which refunds nothing', async () => {
    const payment = await pay(4_000, TEST_CARDS.visa);
    // Opens a dispute as the dispute intake does: the payment locked first, the dispute written, then COMMIT.
    const opener = await t.admin.reserve();
    try {
      await opener`BEGIN`;
      await opener`SELECT id FROM payments WHERE id = ${payment.id} FOR UPDATE`;
      const refund = post('/v1/refunds', { payment: payment.id, amount: 100 });
      await waitFor(
        async () =>
          (
            await t.admin`
              SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`
          ).length === 1,
        10_000,
        'the refund waiting for the payment lock',
      );
      await opener`
        INSERT INTO disputes (id, tenant_id, livemode, payment_id, amount, currency, reason, status, due_by, fee, processor)
        SELECT ${`dp_race_${payment.id}`}, tenant_id, livemode, id, 4000, currency, 'fraudulent', 'needs_response',
          now() + interval '7 days', 1500, processor
        FROM payments WHERE id = ${payment.id}`;
      await opener`COMMIT`;
      const response = await refund;
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().error).toMatchObject({ code: 'charge_disputed', param: 'payment' });
    } finally {
      opener.release();
    }
    expect((await ok(await get(`/v1/payments/${payment.id}`))).amount_refunded).toBe(0);
    const [{ refunds }] = await t.admin<{ refunds: number }[]>`
      SELECT count(*)::int AS refunds FROM refunds WHERE payment_id = ${payment.id}`;
    expect(refunds).toBe(0);
  });

  it('a payment refunded in part is disputed only for what remains; one refunded in full is not disputed', async () => {
    const partly = await pay(5_000);
    await ok(await post('/v1/refunds', { payment: partly.id, amount: 1_500 }));
    const fully = await pay(2_000);
    await ok(await post('/v1/refunds', { payment: fully.id }));
    await t.platform.disputes.intake();
    expect((await disputeOf(partly.id)).amount).toBe(3_500);
    expect(await disputeOf(fully.id)).toBeUndefined();
  });
});

describe('answering a dispute', () => {
  it('evidence submitted → under_review → won: the amount comes back, the fee is kept', async () => {
    const { dispute, before } = await disputed(4000);
    const res = await post(`/v1/disputes/${dispute.id}`, {
      evidence: { product_description: 'A blue hat', uncategorized_text: 'winning_evidence' },
      metadata: { case: '17' },
    });
    const submitted = await ok(res);
    expect(submitted).toMatchObject({
      status: 'under_review',
      metadata: { case: '17' },
      evidence: { product_description: 'A blue hat', uncategorized_text: 'winning_evidence', customer_name: null },
      evidence_details: { has_evidence: true, submission_count: 1, past_due: false },
    });

    await t.platform.disputes.review();
    const won = await ok(await get(`/v1/disputes/${dispute.id}`));
    expect(won.status).toBe('won');
    expect(won.balance_transactions).toHaveLength(2);
    expect(await balance()).toEqual({
      pending: before.pending - DISPUTE_FEE,
      available: before.available,
      reserved: before.reserved,
    });

    const reversal = await ok(await get(`/v1/balance_transactions/${won.balance_transactions[1]}`));
    expect(reversal).toMatchObject({ type: 'dispute_reversal', amount: 4000, fee: 0, net: 4000, source: dispute.id });
    expect(await eventTypes(dispute.id)).toEqual([
      'dispute.closed',
      'dispute.created',
      'dispute.funds_reinstated',
      'dispute.funds_withdrawn',
      'dispute.updated',
    ]);

    // Decided once: another pass changes nothing.
    await t.platform.disputes.review();
    expect(await ok(await get(`/v1/disputes/${dispute.id}`))).toEqual(won);
  });

  it('evidence submitted → under_review → lost: nothing comes back and the withheld amount leaves', async () => {
    const { dispute, before } = await disputed(3000);
    await ok(await post(`/v1/disputes/${dispute.id}`, { evidence: { uncategorized_text: 'losing_evidence' } }));
    await t.platform.disputes.review();
    const lost = await ok(await get(`/v1/disputes/${dispute.id}`));
    expect(lost).toMatchObject({ status: 'lost', balance_transactions: dispute.balance_transactions });
    expect(await balance()).toEqual({
      pending: before.pending - 3000 - DISPUTE_FEE,
      available: before.available,
      reserved: before.reserved,
    });
    const loss = await t.admin`SELECT type FROM ledger_transactions WHERE source_id = ${dispute.id} ORDER BY id`;
    expect(loss.map((row) => row.type)).toEqual(['dispute', 'dispute_loss']);
    expect(await eventTypes(dispute.id)).toEqual([
      'dispute.closed',
      'dispute.created',
      'dispute.funds_withdrawn',
      'dispute.updated',
    ]);
  });

  it('submitted without any evidence → lost', async () => {
    const { dispute } = await disputed(1000);
    expect(await ok(await post(`/v1/disputes/${dispute.id}`, {}))).toMatchObject({
      status: 'under_review',
      evidence_details: { has_evidence: false, submission_count: 1 },
    });
    await t.platform.disputes.review();
    expect((await ok(await get(`/v1/disputes/${dispute.id}`))).status).toBe('lost');
  });

  it('submit: false only saves the evidence; an empty string removes a field', async () => {
    const { dispute } = await disputed(1200);
    const staged = await ok(
      await post(`/v1/disputes/${dispute.id}`, {
        evidence: { customer_name: 'Ada', shipping_carrier: 'UPS' },
        submit: false,
      }),
    );
    expect(staged).toMatchObject({
      status: 'needs_response',
      evidence: { customer_name: 'Ada', shipping_carrier: 'UPS' },
      evidence_details: { has_evidence: true, submission_count: 0 },
    });
    const edited = await ok(
      await post(`/v1/disputes/${dispute.id}`, {
        evidence: { shipping_carrier: '', shipping_tracking_number: '1Z999' },
        submit: false,
      }),
    );
    expect(edited.evidence).toMatchObject({
      customer_name: 'Ada',
      shipping_carrier: null,
      shipping_tracking_number: '1Z999',
    });
    expect(await ok(await post(`/v1/disputes/${dispute.id}`, { submit: true }))).toMatchObject({
      status: 'under_review',
      evidence_details: { submission_count: 1 },
    });
    await t.platform.disputes.review();
    expect((await ok(await get(`/v1/disputes/${dispute.id}`))).status).toBe('won');
  });

  it('close accepts the loss; closing again returns it; evidence afterwards is refused', async () => {
    const { dispute, before } = await disputed(2000);
    const closed = await ok(await post(`/v1/disputes/${dispute.id}/close`));
    expect(closed).toMatchObject({ id: dispute.id, status: 'lost' });
    expect(await balance()).toEqual({
      pending: before.pending - 2000 - DISPUTE_FEE,
      available: before.available,
      reserved: before.reserved,
    });
    expect(await ok(await post(`/v1/disputes/${dispute.id}/close`))).toEqual(closed);
    const postings = await t.admin`SELECT type FROM ledger_transactions WHERE source_id = ${dispute.id} ORDER BY id`;
    expect(postings.map((row) => row.type)).toEqual(['dispute', 'dispute_loss']);
    expect(await eventTypes(dispute.id)).toEqual(['dispute.closed', 'dispute.created', 'dispute.funds_withdrawn']);

    for (const body of [
      { evidence: { uncategorized_text: 'winning_evidence' } },
      { submit: true },
      { evidence: {}, submit: false },
    ]) {
      const res = await post(`/v1/disputes/${dispute.id}`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'dispute_unexpected_state' });
    }
    // Metadata may still change.
    expect(await ok(await post(`/v1/disputes/${dispute.id}`, { metadata: { note: 'accepted' } }))).toMatchObject({
      status: 'lost',
      metadata: { note: 'accepted' },
    });
  });

  it('metadata merged over several updates stays within 50 keys; an update past it changes nothing', async () => {
    const { dispute } = await disputed(1200);
    const keys = (from: number, count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${from + i}`, 'v']));
    const first = { metadata: keys(0, 30), submit: false };
    expect(Object.keys((await ok(await post(`/v1/disputes/${dispute.id}`, first))).metadata)).toHaveLength(30);
    const over = await post(`/v1/disputes/${dispute.id}`, { metadata: keys(30, 21), submit: false });
    expect(over.statusCode, over.body).toBe(400);
    expect(over.json().error).toMatchObject({ code: 'parameter_invalid', param: 'metadata' });
    expect(Object.keys((await ok(await get(`/v1/disputes/${dispute.id}`))).metadata)).toHaveLength(30);
    // Unsetting keys (an empty string) makes room, and exactly 50 is allowed.
    const swap = { metadata: { ...keys(30, 20), k0: '' }, submit: false };
    expect(Object.keys((await ok(await post(`/v1/disputes/${dispute.id}`, swap))).metadata)).toHaveLength(49);
    const fill = { metadata: { k0: 'back' }, submit: false };
    expect(Object.keys((await ok(await post(`/v1/disputes/${dispute.id}`, fill))).metadata)).toHaveLength(50);
  });

  it('refuses to close or re-answer a dispute under review or won, never with a 5xx', async () => {
    const { dispute } = await disputed(1500);
    await ok(await post(`/v1/disputes/${dispute.id}`, { evidence: { uncategorized_text: 'winning_evidence' } }));
    for (const [url, body] of [
      [`/v1/disputes/${dispute.id}/close`, undefined],
      [`/v1/disputes/${dispute.id}`, { evidence: { customer_name: 'x' } }],
    ] as const) {
      const res = await post(url, body);
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('dispute_unexpected_state');
    }
    await t.platform.disputes.review();
    const res = await post(`/v1/disputes/${dispute.id}/close`);
    expect(res.statusCode).toBe(400);
    expect((await ok(await get(`/v1/disputes/${dispute.id}`))).status).toBe('won');
  });

  it('a dispute left unanswered past due_by is lost at the next review pass', async () => {
    const { dispute, before } = await disputed(1800);
    await t.admin`UPDATE disputes SET due_by = now() - interval '1 minute' WHERE id = ${dispute.id}`;
    expect((await ok(await get(`/v1/disputes/${dispute.id}`))).evidence_details.past_due).toBe(true);
    const late = await post(`/v1/disputes/${dispute.id}`, { evidence: { uncategorized_text: 'winning_evidence' } });
    expect(late.statusCode).toBe(400);
    expect(late.json().error.code).toBe('dispute_unexpected_state');

    await t.platform.disputes.review();
    expect(await ok(await get(`/v1/disputes/${dispute.id}`))).toMatchObject({
      status: 'lost',
      evidence_details: { past_due: false },
    });
    expect(await balance()).toEqual({
      pending: before.pending - 1800 - DISPUTE_FEE,
      available: before.available,
      reserved: before.reserved,
    });
    expect(await eventTypes(dispute.id)).toEqual(['dispute.closed', 'dispute.created', 'dispute.funds_withdrawn']);
  });
});

describe('validation', () => {
  it('answers 400 with our error object for bad input, and changes nothing', async () => {
    const { dispute } = await disputed(900);
    for (const [body, param] of [
      [{ extra: true }, 'extra'],
      [{ evidence: { bogus: 'x' } }, 'evidence[bogus]'],
      [{ evidence: { uncategorized_text: 'x'.repeat(20_001) } }, 'evidence[uncategorized_text]'],
      [{ evidence: { customer_purchase_ip: '1'.repeat(65) } }, 'evidence[customer_purchase_ip]'],
      [{ evidence: { product_description: 42 } }, 'evidence[product_description]'],
      [{ evidence: 'a hat' }, 'evidence'],
      [{ submit: 'yes' }, 'submit'],
      [{ metadata: { k: 1 } }, 'metadata[k]'],
    ] as const) {
      const res = await post(`/v1/disputes/${dispute.id}`, body);
      expect(res.statusCode, JSON.stringify(body).slice(0, 100)).toBe(400);
      expect(res.json().error).toMatchObject({ type: 'invalid_request_error', param });
      expect(typeof res.json().error.message).toBe('string');
    }
    const close = await post(`/v1/disputes/${dispute.id}/close`, { reason: 'tired' });
    expect(close.statusCode).toBe(400);
    expect(close.json().error).toMatchObject({ code: 'parameter_unknown', param: 'reason' });
    expect(await ok(await get(`/v1/disputes/${dispute.id}`))).toEqual(dispute);

    const limit = await get('/v1/disputes?limit=1000');
    expect(limit.statusCode).toBe(400);
    expect(limit.json().error.param).toBe('limit');
  });

  it('never answers 5xx to random bodies, whatever state the dispute is in', async () => {
    const { dispute } = await disputed(700);
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 50 }),
      fc.constantFrom('', '\u0000', '\ud800', 'winning_evidence', 'x'.repeat(20_001)),
    );
    const value = fc.oneof(
      text,
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(text, { maxLength: 2 }),
      fc.dictionary(text, text, { maxKeys: 2 }),
    );
    const evidence = fc.dictionary(fc.constantFrom(...EVIDENCE_FIELD_NAMES, 'bogus', '__proto__'), value, {
      maxKeys: 4,
    });
    const body = fc.dictionary(fc.constantFrom('evidence', 'submit', 'metadata', 'extra'), fc.oneof(value, evidence), {
      maxKeys: 3,
    });
    await fc.assert(
      fc.asyncProperty(body, fc.boolean(), async (payload, close) => {
        const res = await post(close ? `/v1/disputes/${dispute.id}/close` : `/v1/disputes/${dispute.id}`, payload);
        expect(res.statusCode, res.body).toBeLessThan(500);
        if (res.statusCode !== 200)
          expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: expect.any(String) });
      }),
      { numRuns: 150 },
    );
  });

  it('answers 404 for an unknown dispute', async () => {
    for (const res of [
      await get('/v1/disputes/dp_doesnotexist'),
      await post('/v1/disputes/dp_doesnotexist', {}),
      await post('/v1/disputes/dp_doesnotexist/close'),
    ]) {
      expect(res.statusCode).toBe(404);
      expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
    }
  });
});

describe('GET /v1/disputes', () => {
  it('lists newest first with cursor pagination', async () => {
    const lister = await createTenant(t.app, 'Disputes list tenant');
    ours.add(lister.id);
    const ids: string[] = [];
    for (const amount of [1000, 1100, 1200]) ids.push((await disputed(amount, lister.testKey)).dispute.id);
    const page = await ok(await get('/v1/disputes?limit=2', lister.testKey));
    expect(page).toMatchObject({ object: 'list', url: '/v1/disputes', has_more: true });
    expect(page.data.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
    const next = await ok(await get(`/v1/disputes?limit=2&starting_after=${ids[1]}`, lister.testKey));
    expect(next).toMatchObject({ has_more: false });
    expect(next.data.map((d: { id: string }) => d.id)).toEqual([ids[0]]);
    const previous = await ok(await get(`/v1/disputes?limit=2&ending_before=${ids[0]}`, lister.testKey));
    expect(previous.data.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
  });
});

describe('security', () => {
  it("another tenant's key, or this tenant's live key, gets 404 and changes nothing", async () => {
    const { dispute } = await disputed(1300);
    for (const key of [other.testKey, other.liveKey, tenant.liveKey]) {
      for (const res of [
        await get(`/v1/disputes/${dispute.id}`, key),
        await post(`/v1/disputes/${dispute.id}`, { evidence: { uncategorized_text: 'losing_evidence' } }, key),
        await post(`/v1/disputes/${dispute.id}`, { metadata: { x: 'y' } }, key),
        await post(`/v1/disputes/${dispute.id}/close`, undefined, key),
      ]) {
        expect(res.statusCode, res.body).toBe(404);
        expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing' });
      }
      const list = await ok(await get('/v1/disputes?limit=100', key));
      expect(list.data.some((d: { id: string }) => d.id === dispute.id)).toBe(false);
    }
    expect(await ok(await get(`/v1/disputes/${dispute.id}`))).toEqual(dispute);
  });

  it('a restricted key needs disputes:read to read and disputes:write to answer', async () => {
    const { dispute } = await disputed(1400);
    const reader = await ok(await post('/v1/api_keys', { scopes: ['disputes:read'] }));
    expect((await get(`/v1/disputes/${dispute.id}`, reader.secret)).statusCode).toBe(200);
    const denied = await post(`/v1/disputes/${dispute.id}/close`, undefined, reader.secret);
    expect(denied.statusCode).toBe(403);
    const paymentsOnly = await ok(await post('/v1/api_keys', { scopes: ['payments:read'] }));
    expect((await get('/v1/disputes', paymentsOnly.secret)).statusCode).toBe(403);
    expect((await ok(await get(`/v1/disputes/${dispute.id}`))).status).toBe('needs_response');
  });
});

describe('ledger', () => {
  it('shows no differences for these tenants after every flow above', async () => {
    const differences = await LedgerService.verify(t.admin);
    expect(differences.accounts.filter((a) => ours.has(a.tenant_id))).toEqual([]);
    expect(differences.transactions.filter((x) => ours.has(x.tenant_id))).toEqual([]);
  });
});
