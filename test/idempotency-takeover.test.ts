import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, type Sql } from '../src/db/index.js';
import { card, PLATFORM_KEY, TEST_CARDS } from './helpers.js';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';

// Real server processes, real SIGKILL. A claimed Idempotency-Key belongs to a live owner: while the
// owning request runs (its process beats a heartbeat on the claim), every retry is refused; once
// the owner is dead, a retry takes the claim over within seconds and resumes what the first run
// left, so the effect happens once.

const secrets = {
  VAULT_KEK: randomBytes(32).toString('base64'),
  VAULT_FINGERPRINT_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(32).toString('base64'),
};
const dataDir = mkdtempSync(join(tmpdir(), 'payforward-takeover-'));
const servers: ServerProcess[] = [];
/** Simulated processors that take ten minutes to answer: a request sent there stays in flight. */
const SLOW = { SIM_ALPHA_LATENCY_MS: '600000', SIM_BETA_LATENCY_MS: '600000' };
/** Long enough for a restarted server to take a dead claim over, far below the former 60 s wait. */
const RETRY_DEADLINE_MS = 25_000;
let admin: Sql;
let tenant: { id: string; key: string };

async function start(extra: Record<string, string> = {}) {
  const server = await startServer('api', {
    DATABASE_URL: inject('adminDatabaseUrl'),
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    PLATFORM_API_KEY: PLATFORM_KEY,
    ...secrets,
    SEED_DEMO_TENANT: 'false',
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    PROCESSOR_LATENCY_MS: '0',
    RATE_LIMIT_PER_KEY: '100000',
    RATE_LIMIT_PER_TENANT: '100000',
    ...extra,
  });
  servers.push(server);
  return server;
}

interface Answer {
  status: number;
  body: Record<string, any>;
  replayed: boolean;
}

async function post(server: ServerProcess, path: string, key: string, body: unknown, idempotencyKey?: string) {
  const response = await fetch(`${server.baseUrl}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, any>,
    replayed: response.headers.get('idempotent-replayed') === 'true',
  } satisfies Answer;
}

/** Retries like a client would while the key is in use, until an answer or the deadline. */
function retryUntilAnswered(server: ServerProcess, path: string, body: unknown, idempotencyKey: string) {
  return waitFor(
    async () => {
      const answer = await post(server, path, tenant.key, body, idempotencyKey);
      return answer.status === 409 && answer.body.error?.code === 'idempotency_key_in_use' ? undefined : answer;
    },
    RETRY_DEADLINE_MS,
    `an answer for ${idempotencyKey}`,
  );
}

async function claimOf(idempotencyKey: string) {
  const [row] = await admin<{ owner: string | null; heartbeat_at: Date; completed_at: Date | null; aged: boolean }[]>`
    SELECT owner, heartbeat_at, completed_at, now() - created_at > interval '6 seconds' AS aged
    FROM idempotency_keys WHERE tenant_id = ${tenant.id} AND key LIKE ${'%/' + idempotencyKey}`;
  return row;
}

async function killed(server: ServerProcess) {
  server.child.kill('SIGKILL');
  expect(await server.exited).toBe('SIGKILL');
}

beforeAll(async () => {
  admin = connect(inject('adminDatabaseUrl'), { max: 2 });
  const server = await start();
  const created = await post(server, '/v1/tenants', PLATFORM_KEY, { name: 'Takeover tenant' });
  expect(created.status).toBe(200);
  tenant = { id: created.body.id, key: created.body.secret_keys.test.secret };
}, 60_000);

afterAll(async () => {
  for (const server of servers) await stopServer(server);
  await admin?.end();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('a claimed Idempotency-Key belongs to its live owner', () => {
  it('is refused to retries while its owner runs, past several heartbeats; taken over within seconds once the owner is killed', async () => {
    const slow = await start(SLOW);
    const idempotencyKey = randomUUID();
    const description = `takeover-${idempotencyKey}`;
    const body = { amount: 4321, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true, description };
    const first = post(slow, '/v1/payments', tenant.key, body, idempotencyKey).catch(() => undefined);
    await waitFor(() => claimOf(idempotencyKey), 20_000, 'the claim');

    // Older than the owner timeout, and its heartbeat advanced twice since: the owner is alive.
    await waitFor(async () => (await claimOf(idempotencyKey)).aged, 30_000, 'the claim to age');
    let beat = (await claimOf(idempotencyKey)).heartbeat_at;
    for (let beats = 0; beats < 2; beats++) {
      beat = await waitFor(
        async () => {
          const now = (await claimOf(idempotencyKey)).heartbeat_at;
          return now.getTime() > beat.getTime() && now;
        },
        20_000,
        'the heartbeat to advance',
      );
    }
    const other = servers[0];
    const whileAlive = await post(other, '/v1/payments', tenant.key, body, idempotencyKey);
    expect(whileAlive.status, JSON.stringify(whileAlive.body)).toBe(409);
    expect(whileAlive.body.error).toMatchObject({ type: 'idempotency_error', code: 'idempotency_key_in_use' });

    // The kill leaves the payment mid-authorization and the claim uncompleted.
    await killed(slow);
    await first;
    const [atCrash] = await admin<{ id: string; status: string }[]>`
      SELECT id, status FROM payments WHERE tenant_id = ${tenant.id} AND description = ${description}`;
    expect(atCrash.status).toBe('processing');
    expect((await claimOf(idempotencyKey)).completed_at).toBeNull();

    const restarted = await start();
    const answer = await retryUntilAnswered(restarted, '/v1/payments', body, idempotencyKey);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ id: atCrash.id, status: 'succeeded', amount: 4321 });
    const payments = await admin<{ id: string; status: string }[]>`
      SELECT id, status FROM payments WHERE tenant_id = ${tenant.id} AND description = ${description}`;
    expect(payments).toEqual([{ id: atCrash.id, status: 'succeeded' }]);
    const again = await post(restarted, '/v1/payments', tenant.key, body, idempotencyKey);
    expect(again.replayed).toBe(true);
    expect(again.body.id).toBe(atCrash.id);
  }, 150_000);

  it('a refund left pending at a slow processor by a killed server is resumed by the retry: one refund, one posting', async () => {
    const [server] = servers;
    const payment = await post(server, '/v1/payments', tenant.key, {
      amount: 5000,
      currency: 'usd',
      payment_method: card(TEST_CARDS.visa),
      confirm: true,
    });
    expect(payment.body.status).toBe('succeeded');

    const slow = await start(SLOW);
    const idempotencyKey = randomUUID();
    const body = { payment: payment.body.id, amount: 1200 };
    const first = post(slow, '/v1/refunds', tenant.key, body, idempotencyKey).catch(() => undefined);
    const pending = await waitFor(
      async () =>
        (
          await admin<{ id: string; status: string }[]>`
        SELECT id, status FROM refunds WHERE payment_id = ${payment.body.id}`
        )[0],
      20_000,
      'the refund row',
    );
    await killed(slow);
    await first;
    const [atCrash] = await admin<{ status: string }[]>`SELECT status FROM refunds WHERE id = ${pending.id}`;
    expect(atCrash.status).toBe('pending');

    const restarted = await start();
    const answer = await retryUntilAnswered(restarted, '/v1/refunds', body, idempotencyKey);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ id: pending.id, status: 'succeeded', amount: 1200 });
    const refunds = await admin`SELECT id FROM refunds WHERE payment_id = ${payment.body.id}`;
    expect(refunds).toHaveLength(1);
    const postings =
      await admin`SELECT id FROM ledger_transactions WHERE type = 'refund' AND source_id = ${pending.id}`;
    expect(postings).toHaveLength(1);
    const [{ refunded }] = await admin<{ refunded: number }[]>`
      SELECT amount_refunded::int AS refunded FROM payments WHERE id = ${payment.body.id}`;
    expect(refunded).toBe(1200);
    const again = await post(restarted, '/v1/refunds', tenant.key, body, idempotencyKey);
    expect(again.replayed).toBe(true);
    expect(again.body.id).toBe(pending.id);
  }, 150_000);
});
