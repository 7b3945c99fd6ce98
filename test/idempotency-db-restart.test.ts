import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Sql } from '../src/db/index.js';
import { apiServerEnv, card, PLATFORM_KEY, TEST_CARDS } from './helpers.js';
import { startOwnPostgres, type OwnPostgres } from './own-postgres.js';
import { startServer, stopServer, waitFor, type ServerProcess } from './process.js';

// A claimed Idempotency-Key's owner proves it is alive with a heartbeat on the claim. While the
// database is away no heartbeat lands, so on its return every heartbeat on record is stale, owners
// alive or not: heartbeats count from the database's start at the earliest, so a live owner gets a
// full timeout to beat again and a retry is refused meanwhile. Needs a PostgreSQL of its own, which
// the test stops and starts (never the shared one), and an API process that survives the restart.

let pg: OwnPostgres;
let server: ServerProcess | undefined;
let own: Sql | undefined;

async function post(key: string, path: string, body: unknown, idempotencyKey?: string, signal?: AbortSignal) {
  const response = await fetch(`${server!.baseUrl}${path}`, {
    method: 'POST',
    signal,
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

beforeAll(async () => {
  pg = await startOwnPostgres();
});

afterAll(async () => {
  await stopServer(server);
  await own?.end();
  await pg?.remove();
});

describe('a database restart', () => {
  it("does not hand a live owner's claim to a retry, however long the database was away", async () => {
    server = await startServer('api', {
      ...(await apiServerEnv(pg.url, join(tmpdir(), `payforward-restart-${randomUUID()}`))),
      // The owning request waits ten minutes at the processor: it is alive throughout the test.
      PROCESSOR_LATENCY_MS: '600000',
      // Long enough that the retry after the restart comes well within it.
      IDEMPOTENCY_OWNER_TIMEOUT_SECONDS: '20',
    });
    const created = await post(PLATFORM_KEY, '/v1/tenants', { name: 'Restart tenant' });
    expect(created.status).toBe(200);
    const secret: string = created.body.secret_keys.test.secret;
    const idempotencyKey = randomUUID();
    const body = { amount: 777, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true };
    const first = post(secret, '/v1/payments', body, idempotencyKey).catch(() => undefined);

    own = connect(pg.url, { max: 1 });
    const claim = async () => {
      const [row] = await own!<{ owner: string; heartbeat_at: Date; status: string }[]>`
        SELECT k.owner, k.heartbeat_at, (SELECT status FROM payments) AS status FROM idempotency_keys k
        WHERE k.key LIKE ${'%/' + idempotencyKey}`;
      return row;
    };
    // The request is at the processor: its payment is written and in processing.
    const atProcessor = await waitFor(
      async () => {
        const row = await claim();
        return row?.status === 'processing' && row;
      },
      20_000,
      'the payment at the processor',
    );
    // The owner's process must not win the race to the restarted database by chance: its heartbeats
    // are refused from now on (a real trigger), as if it were slow to reconnect; a takeover, which
    // changes the owner, is not.
    await own.unsafe(`
      CREATE FUNCTION refuse_heartbeat() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'heartbeat refused by the test'; END $$;
      CREATE TRIGGER refuse_heartbeat BEFORE UPDATE ON idempotency_keys FOR EACH ROW
        WHEN (NEW.owner IS NOT DISTINCT FROM OLD.owner) EXECUTE FUNCTION refuse_heartbeat();`);
    const { heartbeat_at: lastBeat } = (await claim())!;
    await own.end();
    own = undefined;

    // Down for longer than the owner timeout: every heartbeat on record is stale when it returns.
    await pg.kill();
    await waitFor(() => Date.now() - lastBeat.getTime() > 22_000, 60_000, 'the heartbeat to go stale');
    await pg.start();

    const retry = await waitFor(
      async () => {
        const answer = await post(secret, '/v1/payments', body, idempotencyKey, AbortSignal.timeout(10_000)).catch(
          // A retry that hangs at the processor ran the handler again: an answer, and a wrong one.
          (error: Error) =>
            error.name === 'TimeoutError'
              ? { status: 0, body: { hung: true } as Record<string, any> }
              : Promise.reject(error),
        );
        return answer.status < 500 && answer;
      },
      15_000,
      'an answer after the restart',
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${server!.output()}`);
    });
    expect(retry.status, JSON.stringify(retry.body)).toBe(409);
    expect(retry.body.error.code).toBe('idempotency_key_in_use');
    own = connect(pg.url, { max: 1 });
    expect((await claim())!.owner).toBe(atProcessor.owner);
    const payments = await own<{ status: string }[]>`SELECT status FROM payments`;
    expect(payments).toEqual([{ status: 'processing' }]);
    await stopServer(server);
    await first;
  }, 150_000);
});
