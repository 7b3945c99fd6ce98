import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootWithTenants, call, card, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';

// The background passes run here directly against the real database; their inputs are the
// states a crash or the passage of time leaves behind, written with the superuser connection.

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  [t, tenant] = await bootWithTenants('Workers tenant');
});

afterAll(async () => {
  await t?.close();
});

async function createPayment(body: Record<string, unknown>) {
  const response = await call(t.app, tenant.testKey, 'POST', '/v1/payments', {
    amount: 2500,
    currency: 'usd',
    payment_method: card(TEST_CARDS.visa),
    ...body,
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { id: string; status: string; amount: number };
}

async function retrieve(id: string) {
  const response = await call(t.app, tenant.testKey, 'GET', `/v1/payments/${id}`);
  expect(response.statusCode).toBe(200);
  return response.json();
}

async function eventTypes(objectId: string) {
  const rows = await t.admin<{ type: string }[]>`SELECT type FROM events WHERE object_id = ${objectId} ORDER BY id`;
  return rows.map((r) => r.type);
}

/** What the simulated processor answers for an attempt id: the reference is derived from it. */
const simulatedReference = (processor: string, key: string) =>
  `${processor}_${createHash('sha256').update(key).digest('hex').slice(0, 20)}`;

/**
 * Puts a payment into the state a crash leaves between "processor call recorded" and "result
 * recorded": status processing, version bumped, a pending attempt, last touched `ageSeconds` ago.
 */
async function leaveInFlight(
  paymentId: string,
  operation: 'authorize' | 'capture',
  ageSeconds: number,
  amount: number,
) {
  const attemptId = `pat_crash_${paymentId.slice(4)}_${operation}`;
  await t.admin.begin(async (tx) => {
    await tx`UPDATE payments SET status = 'processing', version = version + 1, updated_at = now() - ${`${ageSeconds} seconds`}::interval WHERE id = ${paymentId}`;
    await tx`
      INSERT INTO payment_attempts (id, tenant_id, livemode, payment_id, operation, processor, status, amount, created_at)
      VALUES (${attemptId}, ${tenant.id}, false, ${paymentId}, ${operation}, 'sim_alpha', 'pending', ${amount}, now() - ${`${ageSeconds} seconds`}::interval)`;
  });
  return attemptId;
}

describe('expireAuthorizations', () => {
  it('cancels an authorization past its expiry with reason automatic, voids it and emits payment.canceled', async () => {
    const expired = await createPayment({ capture_method: 'manual', confirm: true });
    const current = await createPayment({ capture_method: 'manual', confirm: true });
    expect(expired.status).toBe('requires_capture');
    expect(current.status).toBe('requires_capture');
    await t.admin`UPDATE payments SET authorization_expires_at = now() - interval '1 minute' WHERE id = ${expired.id}`;

    expect(await t.platform.payments.expireAuthorizations()).toBeGreaterThanOrEqual(1);

    const payment = await retrieve(expired.id);
    expect(payment.status).toBe('canceled');
    expect(payment.cancellation_reason).toBe('automatic');
    expect(payment.amount_capturable).toBe(0);
    expect(payment.authorization_expires_at).toBeNull();
    expect(payment.canceled_at).toEqual(expect.any(Number));
    expect(
      payment.attempts.map((a: { operation: string; status: string }) => `${a.operation}:${a.status}`).sort(),
    ).toEqual(['authorize:succeeded', 'void:succeeded']);
    const types = await eventTypes(expired.id);
    expect(types.filter((type) => type === 'payment.canceled')).toHaveLength(1);
    const [canceledEvent] = await t.admin<{ data: { object: { status: string; cancellation_reason: string } } }[]>`
      SELECT data FROM events WHERE object_id = ${expired.id} AND type = 'payment.canceled'`;
    expect(canceledEvent.data.object).toMatchObject({ status: 'canceled', cancellation_reason: 'automatic' });

    // An authorization still within its window is untouched.
    const untouched = await retrieve(current.id);
    expect(untouched.status).toBe('requires_capture');
    expect(untouched.amount_capturable).toBe(2500);
    expect(await eventTypes(current.id)).not.toContain('payment.canceled');
  });

  it('a second pass finds nothing more to do for the same payment', async () => {
    const payment = await createPayment({ capture_method: 'manual', confirm: true });
    await t.admin`UPDATE payments SET authorization_expires_at = now() - interval '1 second' WHERE id = ${payment.id}`;
    await t.platform.payments.expireAuthorizations();
    await t.platform.payments.expireAuthorizations();
    expect((await retrieve(payment.id)).status).toBe('canceled');
    expect((await eventTypes(payment.id)).filter((type) => type === 'payment.canceled')).toHaveLength(1);
  });
});

describe('recoverStuckPayments', () => {
  it('resumes an authorization a crash left pending, with the same attempt id, to succeeded', async () => {
    const payment = await createPayment({ confirm: false });
    expect(payment.status).toBe('requires_confirmation');
    const attemptId = await leaveInFlight(payment.id, 'authorize', 120, payment.amount);
    expect((await retrieve(payment.id)).status).toBe('processing');

    expect(await t.platform.payments.recoverStuckPayments(60)).toBeGreaterThanOrEqual(1);

    const recovered = await retrieve(payment.id);
    expect(recovered.status).toBe('succeeded');
    expect(recovered.amount_received).toBe(2500);
    // The pending attempt itself was completed (processors key on its id): no second authorization.
    expect(recovered.attempts).toHaveLength(1);
    expect(recovered.attempts[0]).toMatchObject({ id: attemptId, operation: 'authorize', status: 'succeeded' });
    const [row] = await t.admin<
      { processor_reference: string }[]
    >`SELECT processor_reference FROM payments WHERE id = ${payment.id}`;
    expect(row.processor_reference).toBe(simulatedReference('sim_alpha', attemptId));
    const types = await eventTypes(payment.id);
    expect(types.filter((type) => type === 'payment.succeeded')).toHaveLength(1);
    expect(types.filter((type) => type === 'payment.created')).toHaveLength(1);

    // Nothing is left in processing: running the pass again changes nothing.
    await t.platform.payments.recoverStuckPayments(60);
    expect((await eventTypes(payment.id)).filter((type) => type === 'payment.succeeded')).toHaveLength(1);
  });

  it('resumes a capture a crash left pending, to succeeded', async () => {
    const payment = await createPayment({ capture_method: 'manual', confirm: true });
    const attemptId = await leaveInFlight(payment.id, 'capture', 120, 1000);

    await t.platform.payments.recoverStuckPayments(60);

    const recovered = await retrieve(payment.id);
    expect(recovered.status).toBe('succeeded');
    expect(recovered.amount_received).toBe(1000);
    expect(recovered.attempts.find((a: { id: string }) => a.id === attemptId)).toMatchObject({
      operation: 'capture',
      status: 'succeeded',
    });
    expect((await eventTypes(payment.id)).filter((type) => type === 'payment.succeeded')).toHaveLength(1);
  });

  it('leaves a payment alone while its request may still be running', async () => {
    const payment = await createPayment({ confirm: false });
    await leaveInFlight(payment.id, 'authorize', 1, payment.amount);

    await t.platform.payments.recoverStuckPayments(600);

    const untouched = await retrieve(payment.id);
    expect(untouched.status).toBe('processing');
    expect(untouched.attempts.map((a: { status: string }) => a.status)).toEqual(['pending']);
    expect(await eventTypes(payment.id)).not.toContain('payment.succeeded');
  });
});

describe('recoverStuckRefunds', () => {
  it('completes a refund a crash left pending, once, with a refund.succeeded event', async () => {
    const payment = await createPayment({ confirm: true });
    expect(payment.status).toBe('succeeded');
    // The crash happened after the refund was reserved and recorded, before the processor answered.
    const refundId = `re_crash_${payment.id.slice(4)}`;
    await t.admin.begin(async (tx) => {
      await tx`UPDATE payments SET amount_refunded = amount_refunded + 700 WHERE id = ${payment.id}`;
      await tx`
        INSERT INTO refunds (id, tenant_id, livemode, payment_id, amount, currency, status, processor, created_at, updated_at)
        VALUES (${refundId}, ${tenant.id}, false, ${payment.id}, 700, 'usd', 'pending', 'sim_alpha', now() - interval '2 minutes', now() - interval '2 minutes')`;
    });
    const pending = await call(t.app, tenant.testKey, 'GET', `/v1/refunds/${refundId}`);
    expect(pending.json().status).toBe('pending');

    expect(await t.platform.refunds.recoverStuckRefunds(60)).toBeGreaterThanOrEqual(1);
    await t.platform.refunds.recoverStuckRefunds(60);

    const refund = await call(t.app, tenant.testKey, 'GET', `/v1/refunds/${refundId}`);
    expect(refund.json()).toMatchObject({ id: refundId, status: 'succeeded', amount: 700, payment: payment.id });
    expect((await eventTypes(refundId)).filter((type) => type === 'refund.succeeded')).toHaveLength(1);
    const after = await retrieve(payment.id);
    expect(after.amount_refunded).toBe(700);
  });

  it('leaves a recently created pending refund alone', async () => {
    const payment = await createPayment({ confirm: true });
    const refundId = `re_fresh_${payment.id.slice(4)}`;
    await t.admin.begin(async (tx) => {
      await tx`UPDATE payments SET amount_refunded = amount_refunded + 100 WHERE id = ${payment.id}`;
      await tx`
        INSERT INTO refunds (id, tenant_id, livemode, payment_id, amount, currency, status, processor, created_at, updated_at)
        VALUES (${refundId}, ${tenant.id}, false, ${payment.id}, 100, 'usd', 'pending', 'sim_alpha', now(), now() - interval '5 seconds')`;
    });
    await t.platform.refunds.recoverStuckRefunds(600);
    const refund = await call(t.app, tenant.testKey, 'GET', `/v1/refunds/${refundId}`);
    expect(refund.json().status).toBe('pending');
    expect(await eventTypes(refundId)).toEqual([]);
  });
});
