import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, inScope, isDatabaseUnavailable, type Sql } from '../src/db/index.js';
import { StallWatch } from '../src/db/stall-watch.js';
import { bootApp, call, card, createTenant, ok, TEST_CARDS, type TestApp, type TestTenant } from './helpers.js';
import { startOwnPostgres, type OwnPostgres } from './own-postgres.js';
import { PartitionProxy } from './partition-proxy.js';
import { waitFor } from './process.js';

// PostgreSQL cut off by a partition: its sockets stay open and nothing comes back. Without a bound a request would
// wait for the kernel to give the connection up, minutes later; with DATABASE_ANSWER_TIMEOUT_MS it is a 503 once
// neither the query nor a ping on a new connection is answered, and the API is back by itself once the network is.
const ANSWER_MS = 500;

describe('PostgreSQL that stops answering with its sockets open', () => {
  let proxy: PartitionProxy;
  let t: TestApp;
  let tenant: TestTenant;
  const direct = connect(inject('adminDatabaseUrl'), { max: 1 });

  beforeAll(async () => {
    const server = new URL(inject('adminDatabaseUrl'));
    proxy = await PartitionProxy.start({ host: server.hostname, port: Number(server.port || 5432) });
    t = await bootApp({ DATABASE_ANSWER_TIMEOUT_MS: String(ANSWER_MS) }, proxy.url(inject('adminDatabaseUrl')));
    tenant = await createTenant(t.app, 'Partitioned');
  });

  afterAll(async () => {
    proxy?.heal();
    await t?.close();
    await proxy?.close();
    await direct.end();
  });

  const pay = (idempotencyKey: string) =>
    call(
      t.app,
      tenant.testKey,
      'POST',
      '/v1/payments',
      { amount: 1500, currency: 'usd', payment_method: card(TEST_CARDS.visa), confirm: true },
      { 'idempotency-key': idempotencyKey },
    );

  it('leaves a long query alone while the server answers', async () => {
    // Silent four times the bound, on a server that answers pings: not cut.
    const [row] = await t.platform.sql<{ done: number }[]>`
      SELECT 1 AS done FROM pg_sleep(${(4 * ANSWER_MS) / 1000})`;
    expect(row.done).toBe(1);
  });

  it('settles every transaction of a pool cut off mid-flight, and the pool serves again once healed', async () => {
    // Six callers in a loop on a pool of three, through the proxy: each transaction ends committed or failed with a
    // connection error, none waits for ever (the driver once lost a ROLLBACK sent between a socket's error and its
    // close, and a reservation a closed connection was reconnected for: patches/postgres+3.4.9.patch).
    const pool = connect(proxy.url(inject('adminDatabaseUrl')), { max: 3, answerTimeoutMs: ANSWER_MS });
    const counts = { committed: 0, failed: 0, other: 0 };
    let running = true;
    let open = 0;
    const loop = async () => {
      while (running) {
        open++;
        try {
          await inScope(pool, { tenantId: tenant.id, livemode: false }, (tx) => tx`SELECT pg_sleep(0.01)`);
          counts.committed++;
        } catch (error) {
          counts[isDatabaseUnavailable(error) ? 'failed' : 'other']++;
        } finally {
          open--;
        }
      }
    };
    const loops = Array.from({ length: 6 }, loop);
    try {
      await waitFor(() => counts.committed >= 20, 30_000, 'transactions before the partition');
      proxy.partition();
      await waitFor(() => counts.failed >= 6, 30_000, 'transactions failing while cut off');
      proxy.heal();
      const healedAt = counts.committed;
      await waitFor(() => counts.committed >= healedAt + 20, 30_000, 'transactions committing once healed');
    } finally {
      proxy.heal();
      running = false;
      await waitFor(() => open === 0, 30_000, 'every transaction settled');
      await Promise.all(loops);
      await pool.end({ timeout: 5 });
    }
    expect(counts.other).toBe(0);
  });

  it('answers 503 while it is cut off, and is back by itself once it answers; a replayed key pays once', async () => {
    const paid = await ok(await pay(`stall-before-${tenant.id}`));
    proxy.partition();
    const retrieve = await call(t.app, tenant.testKey, 'GET', `/v1/payments/${paid.id}`);
    expect(retrieve.statusCode, retrieve.body).toBe(503);
    expect(retrieve.json().error).toMatchObject({ type: 'api_error', code: 'database_unavailable' });
    const key = `stall-during-${tenant.id}`;
    const cutOff = await pay(key);
    expect(cutOff.statusCode, cutOff.body).toBe(503);

    proxy.heal();
    await waitFor(
      async () => (await call(t.app, tenant.testKey, 'GET', `/v1/payments/${paid.id}`)).statusCode === 200,
      30_000,
      'the retrieve answered again',
    );
    // The unknown outcome is resolved by replaying the same key: one payment, whatever reached the server before.
    const replayed: { id: string; status: string } = await waitFor(
      async () => {
        const response = await pay(key);
        return response.statusCode === 200 && response.json();
      },
      30_000,
      'the payment replayed',
    );
    expect(replayed.status).toBe('succeeded');
    // The tenant's payments: the one made before the partition, and the replayed one, once.
    const rows = await direct<{ id: string }[]>`SELECT id FROM payments WHERE tenant_id = ${tenant.id} ORDER BY id`;
    expect(rows.map((r) => r.id)).toEqual([paid.id, replayed.id]);
  });
});

describe('PostgreSQL over TLS that stops answering with its sockets open', () => {
  let server: OwnPostgres;
  let proxy: PartitionProxy;
  let url: string;

  beforeAll(async () => {
    server = await startOwnPostgres({ tls: true });
    proxy = await PartitionProxy.start({ host: '127.0.0.1', port: server.port });
    url = `${proxy.url(server.url)}?sslmode=require`;
  }, 60_000);

  afterAll(async () => {
    proxy?.heal();
    await proxy?.close();
    await server?.remove();
  });

  const encrypted = async (sql: Sql) =>
    (await sql<{ ssl: boolean }[]>`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`)[0].ssl;

  it('watches the TLS socket: a long query is left alone, a cut-off one fails, and the pool serves again once healed', async () => {
    const pool = connect(url, { max: 2, answerTimeoutMs: ANSWER_MS });
    try {
      expect(await encrypted(pool)).toBe(true);
      const [row] = await pool<{ done: number }[]>`SELECT 1 AS done FROM pg_sleep(${(4 * ANSWER_MS) / 1000})`;
      expect(row.done).toBe(1);

      proxy.partition();
      // Without the watch on the TLS socket this query would wait for the kernel, minutes: the test's timeout.
      const cutOff = await pool`SELECT 1`.then(
        () => 'answered',
        (error: unknown) => error,
      );
      expect(isDatabaseUnavailable(cutOff), String(cutOff)).toBe(true);
      expect(cutOff).toMatchObject({ code: 'ETIMEDOUT' });

      proxy.heal();
      await waitFor(
        () =>
          pool`SELECT 1`.then(
            () => true,
            () => false,
          ),
        30_000,
        'a query answered once healed',
      );
      expect(await encrypted(pool)).toBe(true);
    } finally {
      proxy.heal();
      await pool.end({ timeout: 5 });
    }
  });

  it('lets go of every socket the driver closes, the TLS ones included', async () => {
    const watch = new StallWatch(ANSWER_MS);
    // The driver's option, as connect() passes it (its type declarations leave `socket` out).
    const options = { max: 2, socket: watch.socketFactory, onnotice: () => {} };
    const pool = postgres(url, options);
    await Promise.all([pool`SELECT pg_sleep(0.05)`, pool`SELECT pg_sleep(0.05)`]);
    expect(watch.size).toBe(2);
    await pool.end({ timeout: 5 });
    await waitFor(() => watch.size === 0, 10_000, 'the closed sockets let go');
  });
});
