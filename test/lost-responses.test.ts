import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootAppOnOwnDatabase,
  call,
  card,
  createTenant,
  TEST_CARDS,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { waitFor } from './process.js';

// Processors that act on every call and then lose half of their answers (a reset connection or a
// hang past the timeout). Clients retry with the same Idempotency-Key while the recovery passes
// replay pending calls at the same time; the processors' own records must then show each payment
// authorized and captured (or voided) once and each refund refunded once, matching our ledger.
// A database of its own: the recovery passes act on every tenant.

let t: TestApp;
let tenant: TestTenant;
let unknownAnswers = 0;

beforeAll(async () => {
  t = await bootAppOnOwnDatabase('lost_responses', {
    PROCESSOR_LOST_RESPONSE_RATE: '0.5',
    PROCESSOR_TIMEOUT_MS: '150',
  });
  tenant = await createTenant(t.app, 'Lost responses');
});
afterAll(() => t?.close());

type Answer = Awaited<ReturnType<typeof call>>;

/** Sends the same request (same Idempotency-Key) until it is answered with anything but a 5xx. */
async function untilAnswered(method: 'POST', url: string, body: unknown): Promise<Answer> {
  const headers = { 'idempotency-key': randomUUID() };
  return waitFor(
    async () => {
      const response = await call(t.app, tenant.testKey, method, url, body, headers);
      if (response.statusCode >= 500) {
        expect(response.json().error).toMatchObject({ type: 'api_error', code: 'processor_unavailable' });
        unknownAnswers++;
        return undefined;
      }
      return response;
    },
    60_000,
    `an answer to ${url}`,
  );
}

/**
 * A capture or cancel retried after a 503 may find that the recovery pass resolved the pending call
 * in between: the payment is then no longer capturable (400), and the client reads it instead.
 */
async function settle(url: string, paymentId: string): Promise<{ status: string }> {
  const response = await untilAnswered('POST', url, {});
  if (response.statusCode === 200) return response.json();
  expect(response.json().error.code, response.body).toBe('payment_intent_unexpected_state');
  return (await call(t.app, tenant.testKey, 'GET', `/v1/payments/${paymentId}`)).json();
}

type Flow = 'automatic' | 'capture' | 'cancel';

describe('lost processor responses under retries and recovery', () => {
  it('every payment is authorized and captured or voided once, every refund refunded once, by the processors own records', async () => {
    const PAYMENTS = 30;
    const flows: Flow[] = Array.from(
      { length: PAYMENTS },
      (_, i) => (['automatic', 'capture', 'cancel'] as const)[i % 3],
    );

    let recovering = true;
    const recoveryErrors: unknown[] = [];
    const recovery = (async () => {
      while (recovering) {
        await Promise.all([
          t.platform.payments.recoverStuckPayments(0),
          t.platform.refunds.recoverStuckRefunds(0),
        ]).catch((error) => recoveryErrors.push(error));
      }
    })();

    const outcomes = await Promise.all(
      flows.map(async (flow, i) => {
        const amount = 3000 + i;
        const created = await untilAnswered('POST', '/v1/payments', {
          amount,
          currency: 'usd',
          payment_method: card(TEST_CARDS.visa),
          confirm: true,
          capture_method: flow === 'automatic' ? 'automatic' : 'manual',
        });
        expect(created.statusCode, created.body).toBe(200);
        const payment = created.json();
        expect(payment.status).toBe(flow === 'automatic' ? 'succeeded' : 'requires_capture');
        if (flow === 'capture') {
          expect((await settle(`/v1/payments/${payment.id}/capture`, payment.id)).status).toBe('succeeded');
        } else if (flow === 'cancel') {
          expect((await settle(`/v1/payments/${payment.id}/cancel`, payment.id)).status).toBe('canceled');
        }
        let refundId: string | null = null;
        if (flow !== 'cancel') {
          const refund = await untilAnswered('POST', '/v1/refunds', { payment: payment.id, amount: 1000 });
          expect(refund.statusCode, refund.body).toBe(200);
          expect(['pending', 'succeeded']).toContain(refund.json().status);
          refundId = refund.json().id;
        }
        return { id: payment.id as string, flow, amount, refundId };
      }),
    );

    // Whatever is still pending is the recovery passes' to finish.
    await waitFor(
      async () => {
        const [{ open }] = await t.admin<{ open: number }[]>`
          SELECT (SELECT count(*) FROM payments WHERE tenant_id = ${tenant.id} AND status = 'processing')
            + (SELECT count(*) FROM refunds WHERE tenant_id = ${tenant.id} AND status = 'pending') AS open`;
        return Number(open) === 0;
      },
      60_000,
      'every payment and refund to be resolved',
    );
    recovering = false;
    await recovery;
    expect(recoveryErrors).toEqual([]);

    const ids = outcomes.map((o) => o.id);
    const calls = await t.admin<
      {
        order_id: string;
        idempotency_key: string;
        operation: string;
        capture: boolean;
        status: string;
        amount: string;
      }[]
    >`SELECT order_id, idempotency_key, operation, capture, status, amount::text FROM sim_processor_calls
      WHERE order_id = ANY(${ids})`;
    const payments = await t.admin<{ id: string; status: string; amount_received: string; amount_refunded: string }[]>`
      SELECT id, status, amount_received::text, amount_refunded::text FROM payments WHERE id = ANY(${ids})`;
    const postings = await t.admin<{ type: string; source_id: string }[]>`
      SELECT type, source_id FROM ledger_transactions WHERE tenant_id = ${tenant.id} AND type IN ('charge', 'refund')`;
    const refunds = await t.admin<{ id: string; payment_id: string; status: string }[]>`
      SELECT id, payment_id, status FROM refunds WHERE payment_id = ANY(${ids})`;
    const events = await t.admin<{ object_id: string; type: string }[]>`
      SELECT object_id, type FROM events WHERE tenant_id = ${tenant.id}`;
    const attempts = await t.admin<{ id: string }[]>`SELECT id FROM payment_attempts WHERE payment_id = ANY(${ids})`;

    // The processors were told of nothing we did not record first: every key they acted on is one
    // of our attempts or refunds.
    const known = new Set([...attempts.map((a) => a.id), ...refunds.map((r) => r.id)]);
    expect(calls.filter((c) => !known.has(c.idempotency_key))).toEqual([]);

    const count = (rows: Array<Record<string, unknown>>, where: Record<string, unknown>) =>
      rows.filter((row) => Object.entries(where).every(([k, v]) => row[k] === v)).length;
    for (const { id, flow, amount, refundId } of outcomes) {
      const mine = calls.filter((c) => c.order_id === id && c.status === 'succeeded');
      const payment = payments.find((p) => p.id === id)!;
      const label = `${id} (${flow})`;
      expect(count(mine, { operation: 'authorize' }), label).toBe(1);
      expect(count(mine, { operation: 'authorize', capture: true }), label).toBe(flow === 'automatic' ? 1 : 0);
      expect(count(mine, { operation: 'capture' }), label).toBe(flow === 'capture' ? 1 : 0);
      expect(count(mine, { operation: 'void' }), label).toBe(flow === 'cancel' ? 1 : 0);
      const captured = mine
        .filter((c) => c.operation === 'capture' || (c.operation === 'authorize' && c.capture))
        .reduce((sum, c) => sum + Number(c.amount), 0);
      expect(Number(payment.amount_received), label).toBe(captured);
      expect(captured, label).toBe(flow === 'cancel' ? 0 : amount);
      expect(payment.status, label).toBe(flow === 'cancel' ? 'canceled' : 'succeeded');
      expect(count(postings, { type: 'charge', source_id: id }), label).toBe(flow === 'cancel' ? 0 : 1);

      const paymentRefunds = refunds.filter((r) => r.payment_id === id);
      expect(
        paymentRefunds.map((r) => r.id),
        label,
      ).toEqual(refundId ? [refundId] : []);
      expect(mine.filter((c) => c.operation === 'refund').map((c) => [c.idempotency_key, c.amount])).toEqual(
        refundId ? [[refundId, '1000']] : [],
      );
      if (refundId) {
        expect(paymentRefunds[0].status).toBe('succeeded');
        expect(Number(payment.amount_refunded)).toBe(1000);
        expect(count(postings, { type: 'refund', source_id: refundId }), refundId).toBe(1);
        expect(count(events, { object_id: refundId, type: 'refund.succeeded' }), refundId).toBe(1);
        expect(count(events, { object_id: refundId, type: 'refund.failed' }), refundId).toBe(0);
      }
      expect(count(events, { object_id: id, type: 'payment.failed' }), label).toBe(0);
      expect(count(events, { object_id: id, type: 'payment.capture_failed' }), label).toBe(0);
    }
    // Answers were lost, and clients saw it, or the test proved nothing.
    expect(unknownAnswers).toBeGreaterThan(PAYMENTS / 4);

    // The processors' reports, built from their records, reconcile with our ledger.
    const day = new Date().toISOString().slice(0, 10);
    await t.platform.reconciliation.run(day);
    const reports = (
      await call(t.app, tenant.testKey, 'GET', `/v1/reconciliation_reports?limit=100&report_date=${day}`)
    ).json().data as Array<{ status: string; matched_count: number; difference: number }>;
    expect(reports.length).toBeGreaterThan(0);
    for (const report of reports) expect(report).toMatchObject({ status: 'balanced', difference: 0 });
    // One capture line and one refund line per payment that was not canceled.
    const charged = flows.filter((flow) => flow !== 'cancel').length;
    expect(reports.reduce((sum, r) => sum + r.matched_count, 0)).toBe(charged * 2);
  }, 120_000);
});
