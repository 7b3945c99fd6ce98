/**
 * The durable floor: the least a payment's durable write can cost on this machine, measured in the same run as the
 * API. Issue 14 cites a prototype of "the same durable write (payment, event, three ledger entries, idempotency record,
 * balance update; no auth, vault or fraud)" that reached 7,500/s; this is that prototype, kept so that the API's
 * create+confirm can be read against it as well as against bare fastify. It does what a keyed create must do to be
 * durable and exact, and nothing else: one fastify route, the same micro-batching as the API (src/db/batcher.ts: one
 * statement and one commit for the requests of a turn), and per payment an idempotency record holding the answer, the
 * payment, its event, a balanced three-entry charge and the tenant's running balance, in one transaction. No
 * authentication, card vault, fraud score, processor call, row-level security, webhooks, analytics or request log.
 * Its GET /v1/payments/:id is the floor of a read the same way: one statement, no transaction, no scope. Run as its own
 * process by bench/run.ts (scenarios floor_create and floor_retrieve) against the bench database, in schema `floor`.
 */
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import postgres from 'postgres';
import { MicroBatcher } from '../src/db/batcher.js';

const port = Number(process.env.PORT ?? 4102);
const sql = postgres(process.env.DATABASE_URL!, {
  max: Number(process.env.DB_POOL_SIZE ?? 12),
  onnotice: () => {},
  connection: { application_name: 'payforward-floor' },
});

await sql.unsafe(`
  CREATE SCHEMA IF NOT EXISTS floor;
  CREATE TABLE IF NOT EXISTS floor.idempotency_keys (
    tenant_id text NOT NULL, key text NOT NULL, response text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key));
  CREATE TABLE IF NOT EXISTS floor.payments (
    id text PRIMARY KEY, tenant_id text NOT NULL, amount bigint NOT NULL, currency text NOT NULL, status text NOT NULL,
    idempotency_key text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
  CREATE INDEX IF NOT EXISTS payments_by_tenant ON floor.payments (tenant_id, created_at);
  CREATE TABLE IF NOT EXISTS floor.events (
    id text PRIMARY KEY, tenant_id text NOT NULL, type text NOT NULL, object_id text NOT NULL, data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
  CREATE INDEX IF NOT EXISTS events_by_tenant ON floor.events (tenant_id, created_at);
  CREATE TABLE IF NOT EXISTS floor.ledger_entries (
    id text PRIMARY KEY, transaction_id text NOT NULL, account text NOT NULL, amount bigint NOT NULL,
    currency text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
  CREATE INDEX IF NOT EXISTS ledger_entries_by_account ON floor.ledger_entries (account, created_at);
  CREATE TABLE IF NOT EXISTS floor.balances (
    tenant_id text NOT NULL, currency text NOT NULL, pending bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, currency));
`);

interface Write {
  tenantId: string;
  key: string;
  id: string;
  amount: number;
  currency: string;
  fee: number;
  response: string;
}

/** One tenant: the floor has no authentication to tell tenants apart. */
const TENANT = 'ten_floor';
const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

// A key seen before answers what it answered then; a new one writes everything, in one statement and one commit.
const writes = new MicroBatcher<Write, string>(
  async (batch) => {
    // One key twice in a batch: its first request writes, the others answer what it answers.
    const first = new Map<string, Write>();
    for (const item of batch) if (!first.has(item.key)) first.set(item.key, item);
    const items = [...first.values()];
    const column = <K extends keyof Write>(name: K) => items.map((item) => item[name]);
    const entries = items.flatMap((item) => [
      [newId('le'), item.id, `customer_funds:${item.tenantId}`, -item.amount, item.currency],
      [newId('le'), item.id, `tenant_pending:${item.tenantId}`, item.amount - item.fee, item.currency],
      [newId('le'), item.id, 'platform_fees', item.fee, item.currency],
    ]);
    const answers = await sql.begin(async (tx) => {
      const inserted = await tx<{ key: string }[]>`
      WITH input AS (
        SELECT * FROM unnest(${column('tenantId')}::text[], ${column('key')}::text[], ${column('id')}::text[],
          ${column('amount')}::bigint[], ${column('currency')}::text[], ${column('fee')}::bigint[],
          ${column('response')}::text[]) AS i (tenant_id, key, id, amount, currency, fee, response)
      ), keyed AS (
        INSERT INTO floor.idempotency_keys (tenant_id, key, response) SELECT tenant_id, key, response FROM input
        ON CONFLICT DO NOTHING RETURNING tenant_id, key
      ), fresh AS (
        SELECT i.* FROM input i JOIN keyed k USING (tenant_id, key)
      ), pay AS (
        INSERT INTO floor.payments (id, tenant_id, amount, currency, status, idempotency_key)
        SELECT id, tenant_id, amount, currency, 'succeeded', key FROM fresh
      ), ev AS (
        INSERT INTO floor.events (id, tenant_id, type, object_id, data)
        SELECT 'evt_' || substr(id, 5), tenant_id, 'payment.succeeded', id, response::jsonb FROM fresh
      ), le AS (
        INSERT INTO floor.ledger_entries (id, transaction_id, account, amount, currency)
        SELECT e.id, e.transaction_id, e.account, e.amount, e.currency
        FROM unnest(${entries.map((e) => e[0] as string)}::text[], ${entries.map((e) => e[1] as string)}::text[],
          ${entries.map((e) => e[2] as string)}::text[], ${entries.map((e) => e[3] as number)}::bigint[],
          ${entries.map((e) => e[4] as string)}::text[]) AS e (id, transaction_id, account, amount, currency)
        WHERE e.transaction_id IN (SELECT id FROM fresh)
      ), bal AS (
        INSERT INTO floor.balances AS b (tenant_id, currency, pending)
        SELECT tenant_id, currency, sum(amount - fee) FROM fresh GROUP BY tenant_id, currency
        ON CONFLICT (tenant_id, currency) DO UPDATE SET pending = b.pending + excluded.pending
      )
      SELECT key FROM keyed`;
      // A key already stored, possibly by a batch that committed while this one waited on it: read in a statement of
      // its own, whose snapshot sees that commit (the one above was taken before it).
      const written = new Set(inserted.map((row) => row.key));
      const answers = new Map(items.filter((item) => written.has(item.key)).map((item) => [item.key, item.response]));
      const earlier = items.filter((item) => !written.has(item.key)).map((item) => item.key);
      if (earlier.length)
        for (const row of await tx<{ key: string; response: string }[]>`
          SELECT key, response FROM floor.idempotency_keys WHERE tenant_id = ${TENANT} AND key = ANY(${earlier}::text[])`)
          answers.set(row.key, row.response);
      return answers;
    });
    return batch.map((item) => answers.get(item.key) ?? new Error(`key ${item.key} neither written nor found`));
  },
  { maxSize: Number(process.env.BATCH_MAX_SIZE ?? 64), maxConcurrency: Number(process.env.BATCH_MAX_CONCURRENCY ?? 2) },
);

const app = Fastify({ logger: false });

app.post('/v1/payments', async (request, reply) => {
  const key = request.headers['idempotency-key'];
  const body = request.body as { amount?: unknown; currency?: unknown } | null;
  if (typeof key !== 'string' || !key || !body || !Number.isSafeInteger(body.amount) || (body.amount as number) <= 0)
    return reply.code(400).send({ error: { type: 'invalid_request_error', message: 'amount and Idempotency-Key' } });
  if (typeof body.currency !== 'string' || !/^[a-z]{3}$/.test(body.currency))
    return reply.code(400).send({ error: { type: 'invalid_request_error', message: 'currency' } });
  const amount = body.amount as number;
  const id = newId('pay');
  const fee = Math.floor((amount * 29) / 1000) + 30;
  const response = JSON.stringify({
    id,
    object: 'payment',
    amount,
    amount_received: amount,
    currency: body.currency,
    status: 'succeeded',
    fee,
    created: Math.floor(Date.now() / 1000),
  });
  const answer = await writes.submit({ tenantId: TENANT, key, id, amount, currency: body.currency, fee, response });
  return reply.header('content-type', 'application/json; charset=utf-8').send(answer);
});
// A read as cheap as one can be: one statement, no transaction, no scope, the row as the answer.
app.get('/v1/payments/:id', async (request, reply) => {
  const [payment] = await sql`
    SELECT id, amount, currency, status, extract(epoch FROM created_at)::int AS created
    FROM floor.payments WHERE id = ${(request.params as { id: string }).id}`;
  if (!payment) return reply.code(404).send({ error: { type: 'invalid_request_error', message: 'No such payment' } });
  // bigint arrives as text; the amounts the floor accepts are safe integers.
  return { ...payment, amount: Number(payment.amount), object: 'payment' };
});
app.get('/ready', async () => ({ status: 'ready' }));

await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`durable floor listening on ${port}\n`);

const stop = async () => {
  await app.close();
  await writes.idle();
  await sql.end({ timeout: 5 });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
