import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootApp,
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  ok,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';

// A processor call that throws or times out has an unknown outcome: the processor may have acted.
// `lost` is the API with processors that act and then lose every answer; `reachable` is a second
// API process on the same database whose processors answer (the network is back). The database is
// this file's own, because the recovery passes called here act on every tenant.

let lost: TestApp;
let reachable: TestApp;
let tenant: TestTenant;
const METRICS_TOKEN = 'metrics-token-unknown-outcome-0123456789';

beforeAll(async () => {
  lost = await bootAppOnOwnDatabase('unknown_outcome', {
    PROCESSOR_LOST_RESPONSE_RATE: '1',
    PROCESSOR_TIMEOUT_MS: '300',
    METRICS_TOKEN,
  });
  reachable = await bootApp({}, lost.adminUrl);
  tenant = await createTenant(lost.app);
});
afterAll(async () => {
  await reachable?.close();
  await lost?.close();
});

const key = () => ({ 'idempotency-key': randomUUID() });

interface SimCall {
  processor: string;
  idempotency_key: string;
  operation: string;
  status: string;
  amount: number;
}

/** What the processors themselves recorded for a payment (their own records, not ours). */
async function processorCalls(t: TestApp, paymentId: string): Promise<SimCall[]> {
  return t.admin<SimCall[]>`
    SELECT processor, idempotency_key, operation, status, amount::int AS amount FROM sim_processor_calls
    WHERE order_id = ${paymentId} ORDER BY created_at, idempotency_key`;
}

async function stored(t: TestApp, paymentId: string) {
  const [payment] = await t.admin<{ status: string; amount_refunded: number }[]>`
    SELECT status, amount_refunded::int AS amount_refunded FROM payments WHERE id = ${paymentId}`;
  const attempts = await t.admin<{ id: string; operation: string; processor: string; status: string }[]>`
    SELECT id, operation, processor, status FROM payment_attempts WHERE payment_id = ${paymentId} ORDER BY id`;
  const events = await t.admin<{ type: string }[]>`SELECT type FROM events WHERE object_id = ${paymentId} ORDER BY id`;
  const charges = await t.admin<{ id: string }[]>`
    SELECT id FROM ledger_transactions WHERE type = 'charge' AND source_id = ${paymentId}`;
  return { ...payment, attempts, events: events.map((e) => e.type), charges: charges.length };
}

function expectUnknown(response: Awaited<ReturnType<typeof call>>, status: string) {
  expect(response.statusCode, response.body).toBe(503);
  expect(response.headers['retry-after']).toBe('1');
  const error = response.json().error;
  expect(error).toMatchObject({ type: 'api_error', code: 'processor_unavailable' });
  expect(error.payment.status).toBe(status);
  return error.payment as { id: string };
}

const payBody = (extra: Record<string, unknown> = {}) => ({
  amount: 2500,
  currency: 'usd',
  payment_method: card(TEST_CARDS.visa),
  confirm: true,
  ...extra,
});

describe('a processor call whose answer is lost', () => {
  it('authorization: 503 with the payment processing, no failover, no failure; a retry with the same key replays the same call', async () => {
    const headers = key();
    const first = await call(lost.app, tenant.testKey, 'POST', '/v1/payments', payBody(), headers);
    const { id } = expectUnknown(first, 'processing');

    const before = await stored(lost, id);
    expect(before.status).toBe('processing');
    expect(before.attempts.map((a) => `${a.operation}:${a.processor}:${a.status}`)).toEqual([
      'authorize:sim_alpha:pending',
    ]);
    expect(before.events).toEqual(['payment.created']);
    // sim_alpha did authorize and capture it; nothing was sent to sim_beta.
    expect(await processorCalls(lost, id)).toEqual([
      {
        processor: 'sim_alpha',
        idempotency_key: before.attempts[0].id,
        operation: 'authorize',
        status: 'succeeded',
        amount: 2500,
      },
    ]);

    // Still unreachable: the retry replays the pending call and is answered 503 again.
    expectUnknown(await call(lost.app, tenant.testKey, 'POST', '/v1/payments', payBody(), headers), 'processing');
    // The processor answers again: the same key resolves it, from the processor's first result.
    const resolved = await ok(await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody(), headers));
    expect(resolved).toMatchObject({ id, status: 'succeeded', amount_received: 2500, processor: 'sim_alpha' });
    const after = await stored(lost, id);
    expect(after.attempts).toEqual([{ ...before.attempts[0], status: 'succeeded' }]);
    expect(after.events).toEqual(['payment.created', 'payment.succeeded']);
    expect(after.charges).toBe(1);
    expect(await processorCalls(lost, id)).toHaveLength(1);
  });

  it('the recovery pass replays a pending authorization with its own key', async () => {
    const { id } = expectUnknown(
      await call(lost.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
      'processing',
    );
    await lost.platform.payments.recoverStuckPayments(0);
    expect((await stored(lost, id)).status).toBe('processing');
    await reachable.platform.payments.recoverStuckPayments(0);
    const after = await stored(lost, id);
    expect(after.status).toBe('requires_capture');
    expect(after.attempts.map((a) => a.status)).toEqual(['succeeded']);
    expect((await processorCalls(lost, id)).map((c) => `${c.processor}:${c.operation}`)).toEqual([
      'sim_alpha:authorize',
    ]);
  });

  it('capture and cancel: 503 with the payment processing; the retry resumes the pending call instead of answering 400', async () => {
    const captured = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
    );
    const captureKey = key();
    expectUnknown(
      await call(lost.app, tenant.testKey, 'POST', `/v1/payments/${captured.id}/capture`, {}, captureKey),
      'processing',
    );
    expect((await stored(lost, captured.id)).attempts.map((a) => `${a.operation}:${a.status}`)).toEqual([
      'authorize:succeeded',
      'capture:pending',
    ]);
    const done = await ok(
      await call(reachable.app, tenant.testKey, 'POST', `/v1/payments/${captured.id}/capture`, {}, captureKey),
    );
    expect(done).toMatchObject({ status: 'succeeded', amount_received: 2500 });
    const afterCapture = await stored(lost, captured.id);
    expect(afterCapture.charges).toBe(1);
    expect(afterCapture.events.filter((e) => e === 'payment.capture_failed')).toEqual([]);
    expect((await processorCalls(lost, captured.id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
      'authorize:succeeded',
      'capture:succeeded',
    ]);

    const voided = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
    );
    const cancelKey = key();
    expectUnknown(
      await call(lost.app, tenant.testKey, 'POST', `/v1/payments/${voided.id}/cancel`, {}, cancelKey),
      'processing',
    );
    expect((await stored(lost, voided.id)).status).toBe('processing');
    const canceled = await ok(
      await call(reachable.app, tenant.testKey, 'POST', `/v1/payments/${voided.id}/cancel`, {}, cancelKey),
    );
    expect(canceled.status).toBe('canceled');
    expect((await processorCalls(lost, voided.id)).map((c) => c.operation)).toEqual(['authorize', 'void']);
  });

  it('confirm: the retry of a confirm answered 503 resumes the pending authorization instead of answering 400', async () => {
    const created = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 1700,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
      }),
    );
    const headers = key();
    expectUnknown(
      await call(lost.app, tenant.testKey, 'POST', `/v1/payments/${created.id}/confirm`, {}, headers),
      'processing',
    );
    const confirmed = await ok(
      await call(reachable.app, tenant.testKey, 'POST', `/v1/payments/${created.id}/confirm`, {}, headers),
    );
    expect(confirmed).toMatchObject({ status: 'succeeded', amount_received: 1700 });
    expect((await processorCalls(lost, created.id)).map((c) => c.operation)).toEqual(['authorize']);
  });

  it('a cancel while an authorization is unresolved first resolves it, then voids what it authorized', async () => {
    const { id } = expectUnknown(
      await call(lost.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
      'processing',
    );
    const canceled = await ok(await call(reachable.app, tenant.testKey, 'POST', `/v1/payments/${id}/cancel`, {}));
    expect(canceled.status).toBe('canceled');
    expect((await processorCalls(lost, id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
      'authorize:succeeded',
      'void:succeeded',
    ]);
  });

  it('refund: stays pending with its amount reserved (no refund.failed, nothing given back) until recovery replays it', async () => {
    const payment = await ok(await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody(), key()));
    const refund = await ok(
      await call(lost.app, tenant.testKey, 'POST', '/v1/refunds', { payment: payment.id, amount: 1000 }, key()),
    );
    expect(refund.status).toBe('pending');
    expect((await stored(lost, payment.id)).amount_refunded).toBe(1000);
    const refundEvents = async () =>
      (await lost.admin<{ type: string }[]>`SELECT type FROM events WHERE object_id = ${refund.id} ORDER BY id`).map(
        (e) => e.type,
      );
    expect(await refundEvents()).toEqual(['refund.created']);

    await lost.platform.refunds.recoverStuckRefunds(0);
    expect((await ok(await call(lost.app, tenant.testKey, 'GET', `/v1/refunds/${refund.id}`))).status).toBe('pending');
    await reachable.platform.refunds.recoverStuckRefunds(0);
    expect((await ok(await call(lost.app, tenant.testKey, 'GET', `/v1/refunds/${refund.id}`))).status).toBe(
      'succeeded',
    );
    expect(await refundEvents()).toEqual(['refund.created', 'refund.succeeded']);
    expect((await stored(lost, payment.id)).amount_refunded).toBe(1000);
    const refunds = (await processorCalls(lost, payment.id)).filter((c) => c.operation === 'refund');
    expect(refunds).toEqual([
      { processor: 'sim_alpha', idempotency_key: refund.id, operation: 'refund', status: 'succeeded', amount: 1000 },
    ]);
    const postings =
      await lost.admin`SELECT id FROM ledger_transactions WHERE type = 'refund' AND source_id = ${refund.id}`;
    expect(postings).toHaveLength(1);
  });
});

describe('a retry with the same key after the recovery worker resolved the call', () => {
  const path = (id: string, action: string) => `/v1/payments/${id}/${action}`;

  /** The first run answers 503; the recovery pass (processors answering again) resolves its call. */
  async function unknownThenRecovered(id: string, action: string, headers: Record<string, string>) {
    expectUnknown(await call(lost.app, tenant.testKey, 'POST', path(id, action), {}, headers), 'processing');
    await reachable.platform.payments.recoverStuckPayments(0);
    expect((await stored(lost, id)).status).not.toBe('processing');
  }

  /** A genuinely different request (another key, or none) is refused as Stripe refuses it. */
  async function othersRefused(id: string, action: string) {
    for (const other of [key(), {}]) {
      const response = await call(lost.app, tenant.testKey, 'POST', path(id, action), {}, other);
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().error.code).toBe('payment_intent_unexpected_state');
    }
  }

  // The retries go to `lost`, whose processors still lose every answer: an answer other than 503
  // proves that the retry made no processor call of its own.
  it('capture: answers 200 with the captured payment, captured once', async () => {
    const payment = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
    );
    const headers = key();
    await unknownThenRecovered(payment.id, 'capture', headers);
    const retried = await ok(await call(lost.app, tenant.testKey, 'POST', path(payment.id, 'capture'), {}, headers));
    expect(retried).toMatchObject({ id: payment.id, status: 'succeeded', amount_received: 2500, amount_capturable: 0 });
    await othersRefused(payment.id, 'capture');
    expect((await processorCalls(lost, payment.id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
      'authorize:succeeded',
      'capture:succeeded',
    ]);
    const after = await stored(lost, payment.id);
    expect(after.charges).toBe(1);
    expect(after.events.filter((e) => e === 'payment.succeeded')).toHaveLength(1);
  });

  it('cancel: answers 200 with the canceled payment, voided once', async () => {
    const payment = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
    );
    const headers = key();
    await unknownThenRecovered(payment.id, 'cancel', headers);
    const retried = await ok(await call(lost.app, tenant.testKey, 'POST', path(payment.id, 'cancel'), {}, headers));
    expect(retried).toMatchObject({ id: payment.id, status: 'canceled', amount_capturable: 0 });
    await othersRefused(payment.id, 'cancel');
    expect((await processorCalls(lost, payment.id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
      'authorize:succeeded',
      'void:succeeded',
    ]);
    expect((await stored(lost, payment.id)).events.filter((e) => e === 'payment.canceled')).toHaveLength(1);
  });

  it('confirm: answers 200 with the succeeded payment, authorized once', async () => {
    const created = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 1900,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
      }),
    );
    const headers = key();
    await unknownThenRecovered(created.id, 'confirm', headers);
    const retried = await ok(await call(lost.app, tenant.testKey, 'POST', path(created.id, 'confirm'), {}, headers));
    expect(retried).toMatchObject({ id: created.id, status: 'succeeded', amount_received: 1900 });
    await othersRefused(created.id, 'confirm');
    expect((await processorCalls(lost, created.id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
      'authorize:succeeded',
    ]);
    expect((await stored(lost, created.id)).charges).toBe(1);
  });

  it('confirm with a declining card: answers 402 with the card error and the payment, as the first run would have', async () => {
    const created = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', {
        amount: 1900,
        currency: 'usd',
        payment_method: card(TEST_CARDS.insufficientFunds),
      }),
    );
    const headers = key();
    await unknownThenRecovered(created.id, 'confirm', headers);
    const retried = await call(lost.app, tenant.testKey, 'POST', path(created.id, 'confirm'), {}, headers);
    expect(retried.statusCode, retried.body).toBe(402);
    const error = retried.json().error;
    expect(error).toMatchObject({
      type: 'card_error',
      code: 'card_declined',
      decline_code: 'insufficient_funds',
      message: 'Your card has insufficient funds.',
    });
    expect(error.payment).toMatchObject({
      id: created.id,
      status: 'requires_payment_method',
      last_payment_error: { code: 'card_declined', decline_code: 'insufficient_funds' },
    });
    // Asked again with the same key, the same answer; the processor was asked once.
    const again = await call(lost.app, tenant.testKey, 'POST', path(created.id, 'confirm'), {}, headers);
    expect(again.statusCode, again.body).toBe(402);
    expect((await processorCalls(lost, created.id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
      'authorize:declined',
    ]);
  });

  it('capture that failed at the processor: answers 402 as the first run would have, and captures no second time', async () => {
    // sim_alpha records the capture as failed (processing_error) and loses that answer.
    const failing = await bootApp(
      { SIM_ALPHA_FAILURE_RATE: '1', PROCESSOR_LOST_RESPONSE_RATE: '1', PROCESSOR_TIMEOUT_MS: '300' },
      lost.adminUrl,
    );
    try {
      const payment = await ok(
        await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
      );
      const headers = key();
      expectUnknown(
        await call(failing.app, tenant.testKey, 'POST', path(payment.id, 'capture'), {}, headers),
        'processing',
      );
      await reachable.platform.payments.recoverStuckPayments(0);
      expect((await stored(lost, payment.id)).status).toBe('requires_capture');
      // The payment could be captured again, but not by this request: its capture was tried.
      const retried = await call(lost.app, tenant.testKey, 'POST', path(payment.id, 'capture'), {}, headers);
      expect(retried.statusCode, retried.body).toBe(402);
      expect(retried.json().error).toMatchObject({
        type: 'card_error',
        code: 'processing_error',
        payment: { id: payment.id, status: 'requires_capture', amount_capturable: 2500 },
      });
      expect((await processorCalls(lost, payment.id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
        'authorize:succeeded',
        'capture:error',
      ]);
    } finally {
      await failing.close();
    }
  });

  it('another key while the call is still pending: the call is resolved, then the request is refused', async () => {
    const payment = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', payBody({ capture_method: 'manual' }), key()),
    );
    expectUnknown(await call(lost.app, tenant.testKey, 'POST', path(payment.id, 'capture'), {}, key()), 'processing');
    const other = await call(reachable.app, tenant.testKey, 'POST', path(payment.id, 'capture'), {}, key());
    expect(other.statusCode, other.body).toBe(400);
    expect(other.json().error.code).toBe('payment_intent_unexpected_state');
    expect((await stored(lost, payment.id)).status).toBe('succeeded');
    expect((await processorCalls(lost, payment.id)).map((c) => `${c.operation}:${c.status}`)).toEqual([
      'authorize:succeeded',
      'capture:succeeded',
    ]);
  });
});

describe('processor_unknown_outcomes_total', () => {
  /** The counter for one processor and operation, as `/metrics` shows it (0 before its first count). */
  async function unknownOutcomes(processor: string, operation: string): Promise<number> {
    const scraped = await lost.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(scraped.statusCode).toBe(200);
    const line = scraped.body
      .split('\n')
      .find(
        (l) =>
          l.startsWith('processor_unknown_outcomes_total{') &&
          l.includes(`processor="${processor}"`) &&
          l.includes(`operation="${operation}"`),
      );
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  it('counts every processor call whose answer was lost, by processor and operation', async () => {
    const before = {
      authorize: await unknownOutcomes('sim_alpha', 'authorize'),
      capture: await unknownOutcomes('sim_alpha', 'capture'),
      refund: await unknownOutcomes('sim_alpha', 'refund'),
    };
    const headers = key();
    const body = payBody({ capture_method: 'manual' });
    const { id } = expectUnknown(
      await call(lost.app, tenant.testKey, 'POST', '/v1/payments', body, headers),
      'processing',
    );
    expect(await unknownOutcomes('sim_alpha', 'authorize')).toBe(before.authorize + 1);
    // The retry replays the call, whose answer is lost again: a second call of unknown outcome.
    expectUnknown(await call(lost.app, tenant.testKey, 'POST', '/v1/payments', body, headers), 'processing');
    expect(await unknownOutcomes('sim_alpha', 'authorize')).toBe(before.authorize + 2);
    await ok(await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', body, headers));
    expectUnknown(await call(lost.app, tenant.testKey, 'POST', `/v1/payments/${id}/capture`, {}, key()), 'processing');
    expect(await unknownOutcomes('sim_alpha', 'capture')).toBe(before.capture + 1);
    expect(await unknownOutcomes('sim_alpha', 'refund')).toBe(before.refund);
    expect(await unknownOutcomes('sim_beta', 'authorize')).toBe(0);
  });
});

describe('failover', () => {
  let failover: TestApp;
  let failoverTenant: TestTenant;
  beforeAll(async () => {
    // sim_alpha answers every call with a definite error; sim_beta acts and loses its answers.
    failover = await bootApp(
      { SIM_ALPHA_FAILURE_RATE: '1', SIM_BETA_LOST_RESPONSE_RATE: '1', PROCESSOR_TIMEOUT_MS: '300' },
      lost.adminUrl,
    );
    failoverTenant = await createTenant(failover.app);
  });
  afterAll(() => failover?.close());

  it('records the next processor attempt (pending) before calling it, and never fails over on an unknown outcome', async () => {
    const headers = key();
    const { id } = expectUnknown(
      await call(failover.app, failoverTenant.testKey, 'POST', '/v1/payments', payBody(), headers),
      'processing',
    );
    const { attempts } = await stored(failover, id);
    expect(attempts.map((a) => `${a.processor}:${a.status}`)).toEqual(['sim_alpha:error', 'sim_beta:pending']);
    const calls = await processorCalls(failover, id);
    expect(calls.map((c) => `${c.processor}:${c.status}`)).toEqual(['sim_alpha:error', 'sim_beta:succeeded']);
    // The call sim_beta acted on carries the id of the attempt recorded before it was made.
    expect(calls[1].idempotency_key).toBe(attempts[1].id);

    const resolved = await ok(
      await call(reachable.app, failoverTenant.testKey, 'POST', '/v1/payments', payBody(), headers),
    );
    expect(resolved).toMatchObject({ id, status: 'succeeded', processor: 'sim_beta' });
    expect((await processorCalls(failover, id)).map((c) => `${c.processor}:${c.status}`)).toEqual([
      'sim_alpha:error',
      'sim_beta:succeeded',
    ]);
    expect((await stored(failover, id)).charges).toBe(1);
  });

  it('a confirm retried after recovery answers with the outcome of the processor it failed over to', async () => {
    const created = await ok(
      await call(reachable.app, failoverTenant.testKey, 'POST', '/v1/payments', {
        amount: 1300,
        currency: 'usd',
        payment_method: card(TEST_CARDS.visa),
      }),
    );
    const headers = key();
    const url = `/v1/payments/${created.id}/confirm`;
    expectUnknown(await call(failover.app, failoverTenant.testKey, 'POST', url, {}, headers), 'processing');
    await reachable.platform.payments.recoverStuckPayments(0);
    // Not the definite error of sim_alpha, the first attempt of this key: the last one, sim_beta's.
    const retried = await ok(await call(failover.app, failoverTenant.testKey, 'POST', url, {}, headers));
    expect(retried).toMatchObject({ id: created.id, status: 'succeeded', processor: 'sim_beta' });
    expect((await processorCalls(failover, created.id)).map((c) => `${c.processor}:${c.status}`)).toEqual([
      'sim_alpha:error',
      'sim_beta:succeeded',
    ]);
  });
});
