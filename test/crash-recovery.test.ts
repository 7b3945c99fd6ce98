import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, type Sql } from '../src/db/index.js';
import { bootApp, card, PLATFORM_KEY, TEST_CARDS } from './helpers.js';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';

// The real server binary, killed with SIGKILL while payments are in flight, then restarted:
// clients retry with their idempotency keys, and every key must end as exactly one payment.

const VAULT_KEK = randomBytes(32).toString('base64');
const dataDir = mkdtempSync(join(tmpdir(), 'payforward-crash-'));
const servers: ServerProcess[] = [];
let admin: Sql;

async function serverEnv(extra: Record<string, string> = {}) {
  return {
    DATABASE_URL: inject('adminDatabaseUrl'),
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    PLATFORM_API_KEY: PLATFORM_KEY,
    VAULT_KEK,
    JWT_SECRET: 'crash-test-jwt-secret-0123456789',
    SEED_DEMO_TENANT: 'false',
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    PROCESSOR_LATENCY_MS: '20',
    RATE_LIMIT_PER_KEY: '100000',
    RATE_LIMIT_PER_TENANT: '100000',
    PAYMENT_METHOD_RATE_LIMIT_PER_KEY: '100000',
    PAYMENT_METHOD_RATE_LIMIT_PER_TENANT: '100000',
    // A claim left by the killed process may be taken over by a retry after 2 s instead of 60 s.
    IDEMPOTENCY_ABANDONED_AFTER_SECONDS: '2',
    ...extra,
  };
}

async function start(extra: Record<string, string> = {}) {
  const server = await startServer('api', await serverEnv(extra));
  servers.push(server);
  return server;
}

beforeAll(() => {
  admin = connect(inject('adminDatabaseUrl'), { max: 2 });
});

afterAll(async () => {
  for (const server of servers) await stopServer(server);
  await admin?.end();
  rmSync(dataDir, { recursive: true, force: true });
});

async function createTenant(server: ServerProcess, name: string) {
  const response = await fetch(`${server.baseUrl}/v1/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PLATFORM_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { id: string; secret_keys: { test: { secret: string } } };
  return { id: body.id, key: body.secret_keys.test.secret };
}

interface Answer {
  status: number;
  body: Record<string, any>;
}

async function createPayment(baseUrl: string, key: string, idempotencyKey: string, body: unknown): Promise<Answer> {
  const response = await fetch(`${baseUrl}/v1/payments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

const paymentBody = (index: number, requestKey: string) => ({
  amount: 1000 + index,
  currency: 'usd',
  payment_method: card(TEST_CARDS.visa),
  confirm: true,
  metadata: { request: requestKey },
});

describe('SIGKILL in the middle of ~300 payments, then restart and client retries', () => {
  const TOTAL = 300;
  const CONCURRENCY = 30;
  const KILL_AFTER = 120;

  it('every idempotency key ends as exactly one payment, answered consistently, and recovery leaves none in processing', async () => {
    let server = await start();
    const tenant = await createTenant(server, 'Crash tenant');
    const requests = Array.from({ length: TOTAL }, (_, i) => {
      const key = `crash-${i}-${randomUUID()}`;
      return { key, body: paymentBody(i, key) };
    });
    const answers = new Map<string, Answer>();
    const unanswered = new Set(requests.map((r) => r.key));

    // 30 clients at a time; the process is killed once KILL_AFTER payments have been answered.
    let next = 0;
    let killed = false;
    const worker = async () => {
      while (next < requests.length) {
        const request = requests[next++];
        try {
          const answer = await createPayment(server.baseUrl, tenant.key, request.key, request.body);
          answers.set(request.key, answer);
          unanswered.delete(request.key);
          if (!killed && answers.size >= KILL_AFTER) {
            killed = true;
            server.child.kill('SIGKILL');
          }
        } catch {
          // No answer (connection reset or refused): the client does not know what happened.
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(killed).toBe(true);
    expect(await server.exited).toBe('SIGKILL');
    const answeredBeforeCrash = new Map(answers);
    expect(answeredBeforeCrash.size).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(unanswered.size).toBeGreaterThan(0);
    for (const answer of answeredBeforeCrash.values()) {
      expect(answer.status).toBe(200);
      expect(answer.body.status).toBe('succeeded');
    }

    // The kill left work mid-way: payments in processing with a pending authorize attempt.
    const [{ in_flight: inFlightAtCrash }] = await admin<{ in_flight: number }[]>`
      SELECT count(*)::int AS in_flight FROM payments WHERE tenant_id = ${tenant.id} AND status = 'processing'`;

    server = await start();
    // Every client that got no answer retries with the same key and body until it gets one.
    await Promise.all(
      [...unanswered].map(async (key) => {
        const request = requests.find((r) => r.key === key)!;
        const answer = await waitFor(
          async () => {
            const reply = await createPayment(server.baseUrl, tenant.key, key, request.body);
            if (reply.status === 409 && reply.body.error?.code === 'idempotency_key_in_use') return undefined;
            if (reply.status >= 500) return undefined;
            return reply;
          },
          30_000,
          `an answer for ${key}`,
        );
        answers.set(key, answer);
      }),
    );
    expect(answers.size).toBe(TOTAL);

    const payments = await admin<
      { id: string; status: string; amount: string; request: string; amount_received: string }[]
    >`
      SELECT id, status, amount::text, amount_received::text, metadata->>'request' AS request FROM payments WHERE tenant_id = ${tenant.id}`;
    const byKey = new Map<string, Array<(typeof payments)[number]>>();
    for (const payment of payments) byKey.set(payment.request, [...(byKey.get(payment.request) ?? []), payment]);

    // No key made two payments (a retry that took over an abandoned claim must find the first one).
    const doubled = [...byKey.entries()]
      .filter(([, rows]) => rows.length > 1)
      .map(([key, rows]) => ({ key, payments: rows.map((r) => `${r.id}:${r.status}`) }));
    expect(doubled, `keys with more than one payment (in processing at the crash: ${inFlightAtCrash})`).toEqual([]);
    // No request that was answered, or retried to an answer, lost its payment.
    expect(requests.filter((r) => !byKey.has(r.key)).map((r) => r.key)).toEqual([]);
    expect(payments.length).toBe(TOTAL);

    // Every answer is a 200 naming the one payment its key made, in the state the database holds.
    for (const request of requests) {
      const answer = answers.get(request.key)!;
      expect(answer.status, `${request.key}: ${JSON.stringify(answer.body)}`).toBe(200);
      const [row] = byKey.get(request.key)!;
      expect(answer.body.id).toBe(row.id);
      expect(answer.body.amount).toBe(request.body.amount);
      if (answeredBeforeCrash.has(request.key)) expect(row.status).toBe(answer.body.status);
    }

    // The outbox agrees: one payment.created per payment, nothing for a payment that does not exist.
    const events = await admin<{ object_id: string; type: string; count: number }[]>`
      SELECT object_id, type, count(*)::int AS count FROM events WHERE tenant_id = ${tenant.id} GROUP BY object_id, type`;
    const ids = new Set(payments.map((p) => p.id));
    expect(events.filter((e) => !ids.has(e.object_id))).toEqual([]);
    for (const payment of payments) {
      const created = events.find((e) => e.object_id === payment.id && e.type === 'payment.created');
      expect(created?.count, payment.id).toBe(1);
      const succeeded = events.find((e) => e.object_id === payment.id && e.type === 'payment.succeeded')?.count ?? 0;
      expect(succeeded, payment.id).toBe(payment.status === 'succeeded' ? 1 : 0);
    }

    // What the crash left in processing is resumed by the recovery pass (the worker's job).
    const recovery = await bootApp({ VAULT_KEK });
    try {
      await waitFor(
        async () => {
          await recovery.platform.payments.recoverStuckPayments(3);
          const [{ count }] = await admin<
            { count: number }[]
          >`SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${tenant.id} AND status = 'processing'`;
          return count === 0;
        },
        30_000,
        'the stuck payments to be recovered',
      );
    } finally {
      await recovery.close();
    }
    const finals = await admin<
      {
        id: string;
        status: string;
        amount: string;
        amount_received: string;
        authorized: number;
        pending: number;
        succeeded_events: number;
      }[]
    >`
      SELECT p.id, p.status, p.amount::text, p.amount_received::text,
        (SELECT count(*)::int FROM payment_attempts a WHERE a.payment_id = p.id AND a.operation = 'authorize' AND a.status = 'succeeded') AS authorized,
        (SELECT count(*)::int FROM payment_attempts a WHERE a.payment_id = p.id AND a.status = 'pending') AS pending,
        (SELECT count(*)::int FROM events e WHERE e.object_id = p.id AND e.type = 'payment.succeeded') AS succeeded_events
      FROM payments p WHERE p.tenant_id = ${tenant.id}`;
    expect(finals).toHaveLength(TOTAL);
    for (const payment of finals) {
      expect(payment, payment.id).toMatchObject({
        status: 'succeeded',
        authorized: 1,
        pending: 0,
        succeeded_events: 1,
        amount_received: payment.amount,
      });
    }
    // The answers given before the crash still hold after recovery.
    for (const [key, answer] of answeredBeforeCrash)
      expect(finals.find((p) => p.id === answer.body.id)?.status, key).toBe('succeeded');
  }, 90_000);
});

describe('graceful shutdown', () => {
  it('SIGTERM lets every in-flight request finish with 200 before the process exits', async () => {
    const server = await start({ PROCESSOR_LATENCY_MS: '400' });
    const tenant = await createTenant(server, 'Shutdown tenant');
    const IN_FLIGHT = 25;
    const pending = Array.from({ length: IN_FLIGHT }, (_, i) => {
      const key = `term-${i}-${randomUUID()}`;
      return createPayment(server.baseUrl, tenant.key, key, paymentBody(i, key)).catch((error: Error) => ({
        status: 0,
        body: { error: error.message },
      }));
    });
    // Wait until every request is inside the server, waiting on the processor.
    await waitFor(
      async () => {
        const [{ count }] = await admin<
          { count: number }[]
        >`SELECT count(*)::int AS count FROM payments WHERE tenant_id = ${tenant.id} AND status = 'processing'`;
        return count === IN_FLIGHT;
      },
      20_000,
      'the requests to be in flight',
    );

    server.child.kill('SIGTERM');
    const answers = await Promise.all(pending);
    expect(await server.exited, server.output()).toBe(0);

    expect(answers.map((a) => a.status)).toEqual(Array(IN_FLIGHT).fill(200));
    expect(answers.map((a) => (a.body as { status?: string }).status)).toEqual(Array(IN_FLIGHT).fill('succeeded'));
    const rows = await admin<{ status: string; keys_completed: number }[]>`
      SELECT status, (SELECT count(*)::int FROM idempotency_keys k WHERE k.tenant_id = ${tenant.id} AND k.completed_at IS NOT NULL) AS keys_completed
      FROM payments WHERE tenant_id = ${tenant.id}`;
    expect(rows).toHaveLength(IN_FLIGHT);
    expect(rows.every((r) => r.status === 'succeeded')).toBe(true);
    // Every idempotency key was completed before exit, so a retry replays instead of running again.
    expect(rows[0].keys_completed).toBe(IN_FLIGHT);
    // Once shut down the port no longer answers.
    await expect(fetch(`${server.baseUrl}/health`)).rejects.toThrow();
  }, 45_000);
});
