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
import { serviceUrl } from './services.js';
import { waitFor } from './process.js';
import { Redis } from 'ioredis';
import { decisionInputs, type StoredInputs } from '../src/modules/fraud/engine.js';

// A confirm whose processor answer is lost stays `processing`; the client's retry and the recovery
// pass each replay it, and each replay runs the fraud decision again. The velocity those decisions
// read and record must count the payment once. `lost` is an API whose processors act and lose every
// answer, `reachable` a second one on the same database and Redis whose processors answer; the
// database is this file's own, because the recovery pass acts on every tenant.

const redisUrl = serviceUrl('REDIS_URL');

describe.skipIf(!redisUrl)('velocity under crash-recovery replays', () => {
  let lost: TestApp;
  let reachable: TestApp;
  let tenant: TestTenant;

  beforeAll(async () => {
    lost = await bootAppOnOwnDatabase('fraud_replay', {
      REDIS_URL: redisUrl!,
      PROCESSOR_LOST_RESPONSE_RATE: '1',
      PROCESSOR_TIMEOUT_MS: '300',
    });
    reachable = await bootApp({ REDIS_URL: redisUrl! }, lost.adminUrl);
    tenant = await createTenant(lost.app, 'Fraud replay');
  });
  afterAll(async () => {
    await reachable?.close();
    await lost?.close();
  });

  const velocityOf = async (id: string) => {
    const [row] = await lost.admin<{ inputs: StoredInputs }[]>`
      SELECT inputs FROM payment_fraud_decisions WHERE payment_id = ${id}`;
    const { velocity } = decisionInputs(row.inputs);
    return { card: velocity.card_count_1h, ip: velocity.ip_count_1h, customer: velocity.customer_count_1h };
  };

  it('a payment replayed by its retry and by the recovery pass counts once', async () => {
    const body = {
      amount: 2500,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      fraud_details: { ip_address: '192.0.2.44', email: 'replay@example.com' },
      confirm: true,
    };
    const headers = { 'idempotency-key': randomUUID() };
    const first = await call(lost.app, tenant.testKey, 'POST', '/v1/payments', body, headers);
    expect(first.statusCode, first.body).toBe(503);
    const id = first.json().error.payment.id as string;
    // The retry replays the pending authorization, deciding again; the answer is lost again.
    expect((await call(lost.app, tenant.testKey, 'POST', '/v1/payments', body, headers)).statusCode).toBe(503);
    // The recovery pass of the process whose processors answer replays it once more and records it.
    await reachable.platform.payments.recoverStuckPayments(0);
    const [stored] = await lost.admin<{ status: string }[]>`SELECT status FROM payments WHERE id = ${id}`;
    expect(stored.status).toBe('succeeded');
    expect(await velocityOf(id)).toEqual({ card: 0, ip: 0, customer: 0 });

    // The next payment on the same card and IP sees one payment before it, not three.
    const next = await ok(
      await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', body, { 'idempotency-key': randomUUID() }),
    );
    expect(next.status).toBe('succeeded');
    expect(await velocityOf(next.id)).toEqual({ card: 1, ip: 1, customer: 0 });
    // Both decisions are committed, so neither reading is kept for replays any longer.
    const redis = new Redis(redisUrl!);
    try {
      const kept = () => redis.keys(`fraud:v:${tenant.id}:test:decision:*`);
      await waitFor(async () => (await kept()).length === 0, 5_000, 'the settled readings are deleted');
    } finally {
      await redis.quit();
    }
  });

  it('a new confirm of the same payment after a decline is a new decision, and counts', async () => {
    const declined = await call(reachable.app, tenant.testKey, 'POST', '/v1/payments', {
      amount: 3100,
      currency: 'usd',
      payment_method: card(TEST_CARDS.declined),
      fraud_details: { ip_address: '192.0.2.45' },
      confirm: true,
    });
    expect(declined.statusCode, declined.body).toBe(402);
    const id = declined.json().error.payment.id as string;
    const retried = await ok(
      await call(reachable.app, tenant.testKey, 'POST', `/v1/payments/${id}/confirm`, {
        payment_method: card(TEST_CARDS.visa),
      }),
    );
    expect(retried.status).toBe('succeeded');
    // The second round's decision saw the first round's payment from this IP.
    expect((await velocityOf(id)).ip).toBe(1);
  });
});
