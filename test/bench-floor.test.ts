import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Sql } from '../src/db/index.js';
import { emptyDatabase } from './migrations.js';
import { freePort, waitFor } from './process.js';

// The bench's durable floor (bench/floor-server.ts) is a yardstick create+confirm is read against: it must do the
// whole durable write it stands for, exactly once per key, or the ratio to it means nothing.

describe('bench: the durable floor', () => {
  let database: Awaited<ReturnType<typeof emptyDatabase>>;
  let sql: Sql;
  let child: ChildProcess;
  let url: string;

  beforeAll(async () => {
    database = await emptyDatabase('bench_floor');
    sql = connect(database.url, { max: 1 });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, ['--import', 'tsx', 'bench/floor-server.ts'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), DATABASE_URL: database.url },
      stdio: 'ignore',
    });
    await waitFor(async () => (await fetch(`${url}/ready`)).ok, 30_000, 'the durable floor to listen');
  });

  afterAll(async () => {
    child?.kill('SIGTERM');
    await sql?.end();
    await database?.drop();
  });

  const pay = (key: string | undefined, body: unknown) =>
    fetch(`${url}/v1/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
      body: JSON.stringify(body),
    });

  it('writes a key once and answers every retry of it, concurrent or later, with the first answer', async () => {
    const key = randomUUID();
    const answers = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const response = await pay(key, { amount: 2000, currency: 'usd' });
        expect(response.status).toBe(200);
        return response.text();
      }),
    );
    const later = await (await pay(key, { amount: 2000, currency: 'usd' })).text();
    expect(new Set([...answers, later]).size).toBe(1);
    const payment = JSON.parse(later) as { id: string; amount: number; fee: number };
    expect(payment.amount).toBe(2000);

    const [row] = await sql<{ payments: number; events: number; entries: number; total: string }[]>`
      SELECT (SELECT count(*)::int FROM floor.payments WHERE idempotency_key = ${key}) AS payments,
        (SELECT count(*)::int FROM floor.events WHERE object_id = ${payment.id}) AS events,
        (SELECT count(*)::int FROM floor.ledger_entries WHERE transaction_id = ${payment.id}) AS entries,
        (SELECT sum(amount)::text FROM floor.ledger_entries WHERE transaction_id = ${payment.id}) AS total`;
    expect(row).toEqual({ payments: 1, events: 1, entries: 3, total: '0' });
  });

  it("keeps the tenant's running balance equal to its ledger entries", async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pay(randomUUID(), { amount: 1000 + i, currency: 'usd' }).then((r) => r.text()),
      ),
    );
    const [row] = await sql<{ pending: string; entries: string }[]>`
      SELECT (SELECT pending::text FROM floor.balances WHERE currency = 'usd') AS pending,
        (SELECT sum(amount)::text FROM floor.ledger_entries WHERE account LIKE 'tenant_pending:%') AS entries`;
    expect(Number(row.pending)).toBeGreaterThan(0);
    expect(row.pending).toBe(row.entries);
  });

  it('reads a payment it wrote, and answers 404 for one it did not', async () => {
    const written = JSON.parse(await (await pay(randomUUID(), { amount: 750, currency: 'eur' })).text()) as {
      id: string;
    };
    const read = await fetch(`${url}/v1/payments/${written.id}`);
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id: written.id, amount: 750, currency: 'eur', status: 'succeeded' });
    expect((await fetch(`${url}/v1/payments/pay_${'0'.repeat(24)}`)).status).toBe(404);
  });

  it('refuses a request without a key or with a malformed amount or currency, writing nothing', async () => {
    const [before] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM floor.payments`;
    expect((await pay(undefined, { amount: 100, currency: 'usd' })).status).toBe(400);
    expect((await pay(randomUUID(), { amount: 1.5, currency: 'usd' })).status).toBe(400);
    expect((await pay(randomUUID(), { amount: 100, currency: 'US Dollar' })).status).toBe(400);
    const [after] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM floor.payments`;
    expect(after.n).toBe(before.n);
  });
});
