import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { loadConfig } from '../config.js';
import postgres from 'postgres';
import {
  appDatabaseUrl,
  connect,
  inScope,
  readThenWrite,
  scopedRead,
  scopedStatement,
  type Sql,
  type Tx,
} from './index.js';

const config = loadConfig({});
let sql: Sql;

beforeAll(() => {
  // One connection, so the next query is sure to run on the one the failed statement used.
  sql = connect(appDatabaseUrl(inject('adminDatabaseUrl'), config), { max: 1 });
});

afterAll(async () => {
  await sql?.end();
});

describe('scopedStatement', () => {
  const scope = [{ tenantId: 'ten_scoped_statement', livemode: false }];

  it('ends its transaction when the statement throws before returning a promise', async () => {
    await expect(
      scopedStatement(sql, scope, () => {
        throw new Error('thrown synchronously');
      }),
    ).rejects.toThrow('thrown synchronously');
    const [state] = await sql<{ scope: string | null }[]>`SELECT current_setting('app.scope', true) AS scope`;
    expect(state.scope ?? '').toBe('');
    const [first] = await sql<{ now: Date }[]>`SELECT now()`;
    await waitUntilClockMoves(first.now);
  });

  it('rolls back what a statement sent before throwing', async () => {
    await expect(
      scopedStatement(sql, scope, (tx) => {
        void tx`SELECT set_config('app.leftover', 'sent before the throw', false)`.execute();
        throw new Error('thrown after sending a query');
      }),
    ).rejects.toThrow('thrown after sending a query');
    const [state] = await sql<{ leftover: string | null; scope: string | null }[]>`
      SELECT current_setting('app.leftover', true) AS leftover, current_setting('app.scope', true) AS scope`;
    expect(state.leftover ?? '').toBe('');
    expect(state.scope ?? '').toBe('');
  });

  it('still commits a statement that succeeds', async () => {
    const value = await scopedStatement(
      sql,
      scope,
      (tx) => tx<{ scope: string }[]>`
      SELECT current_setting('app.scope') AS scope`,
    );
    expect(value[0].scope).toBe('ten_scoped_statement:f');
    const [after] = await sql<{ scope: string | null }[]>`SELECT current_setting('app.scope', true) AS scope`;
    expect(after.scope ?? '').toBe('');
  });
});

describe('scopedRead', () => {
  const tenants = ['ten_scoped_read_a', 'ten_scoped_read_b'];
  beforeAll(async () => {
    const admin = connect(inject('adminDatabaseUrl'), { max: 1 });
    await admin`INSERT INTO tenants (id, name) SELECT id, 'Scoped read' FROM unnest(${tenants}::text[]) id
      ON CONFLICT DO NOTHING`;
    await admin.end();
    for (const tenantId of tenants)
      await scopedStatement(
        sql,
        [{ tenantId, livemode: false }],
        (tx) => tx`
        INSERT INTO fraud_lists (id, tenant_id, livemode, name, item_type, kind, created_at)
        VALUES (${`rsl_${tenantId}`}, ${tenantId}, false, 'scoped_read', 'email', 'block', now())
        ON CONFLICT DO NOTHING`,
      );
  });

  it("sees exactly its scope's rows with no WHERE clause (row-level security), and leaves no scope behind", async () => {
    const rows = await scopedRead(
      sql,
      { tenantId: tenants[0], livemode: false },
      (tx) => tx<{ tenant_id: string }[]>`SELECT tenant_id FROM fraud_lists WHERE name = 'scoped_read'`,
    );
    expect(rows.map((r) => r.tenant_id)).toEqual([tenants[0]]);
    const unscoped = await sql<{ id: string }[]>`SELECT id FROM fraud_lists WHERE name = 'scoped_read'`;
    expect(unscoped).toEqual([]);
  });

  it("throws the query's error and leaves the connection outside any transaction", async () => {
    const failed = scopedRead(sql, { tenantId: tenants[0], livemode: false }, (tx) => tx`SELECT 1/0`);
    await expect(failed).rejects.toBeInstanceOf(postgres.PostgresError);
    const [first] = await sql<{ now: Date }[]>`SELECT now()`;
    await waitUntilClockMoves(first.now);
    const [state] = await sql<{ scope: string | null }[]>`SELECT current_setting('app.scope', true) AS scope`;
    expect(state.scope ?? '').toBe('');
  });

  it('throws what the read function throws after its query, and the connection stays usable', async () => {
    const missing = scopedRead(sql, { tenantId: tenants[1], livemode: false }, async (tx) => {
      const rows = await tx`SELECT id FROM fraud_lists WHERE id = 'rsl_none'`;
      if (!rows.length) throw new Error('not found');
      return rows;
    });
    await expect(missing).rejects.toThrow('not found');
    const [{ one }] = await sql<{ one: number }[]>`SELECT 1 AS one`;
    expect(one).toBe(1);
  });
});

describe('readThenWrite', () => {
  const scope = { tenantId: 'ten_read_then_write', livemode: false };
  beforeAll(async () => {
    const admin = connect(inject('adminDatabaseUrl'), { max: 1 });
    await admin`INSERT INTO tenants (id, name) VALUES (${scope.tenantId}, 'Read then write') ON CONFLICT DO NOTHING`;
    await admin.end();
  });
  const listNamed = (name: string) =>
    scopedRead(sql, scope, (tx) => tx<{ id: string }[]>`SELECT id FROM fraud_lists WHERE name = ${name}`);
  const insertList = (tx: Tx, id: string, name: string) => tx`
    INSERT INTO fraud_lists (id, tenant_id, livemode, name, item_type, kind, created_at)
    VALUES (${id}, ${scope.tenantId}, false, ${name}, 'email', 'block', now())`;

  it('commits the write decided on what the read saw, under the scope', async () => {
    const written = await readThenWrite(sql, scope, async (tx) => {
      const [{ count }] = await tx<{ count: number }[]>`SELECT count(*)::int AS count FROM fraud_lists`;
      return {
        write: async (tx) => {
          await insertList(tx, `rtw_${count}`, 'read_then_write');
          return count;
        },
      };
    });
    expect(written).toBe(0);
    expect(await listNamed('read_then_write')).toEqual([{ id: 'rtw_0' }]);
    const [state] = await sql<{ scope: string | null }[]>`SELECT current_setting('app.scope', true) AS scope`;
    expect(state.scope ?? '').toBe('');
  });

  it("rolls back the read's changes when the read refuses or the write fails, and answers without a write", async () => {
    await expect(
      readThenWrite(sql, scope, async (tx) => {
        await insertList(tx, 'rtw_refused', 'refused');
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    await expect(
      readThenWrite(sql, scope, async (tx) => {
        await insertList(tx, 'rtw_failed', 'failed');
        return { write: (tx) => tx`SELECT 1/0` };
      }),
    ).rejects.toBeInstanceOf(postgres.PostgresError);
    expect(await listNamed('refused')).toEqual([]);
    expect(await listNamed('failed')).toEqual([]);
    expect(await readThenWrite(sql, scope, async () => ({ answer: 'no write' }))).toBe('no write');
    const [first] = await sql<{ now: Date }[]>`SELECT now()`;
    await waitUntilClockMoves(first.now);
  });
});

// now() is the transaction's start: inside a transaction left open it never changes.
async function waitUntilClockMoves(before: Date) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [{ now }] = await sql<{ now: Date }[]>`SELECT now()`;
    if (now.getTime() !== before.getTime()) return;
    if (Date.now() > deadline) throw new Error('now() never changed: the connection is stuck in a transaction');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('a pool that has ended', () => {
  it('refuses a scoped transaction at once instead of waiting forever for a connection', async () => {
    const ended = connect(appDatabaseUrl(inject('adminDatabaseUrl'), config), { max: 1 });
    await ended`SELECT 1`;
    await ended.end();
    // A shutdown that still flushes (the request log) used to hang here: reserve() ignored end().
    await expect(
      inScope(ended, { tenantId: 'ten_ended_pool', livemode: false }, (tx) => tx`SELECT 1`),
    ).rejects.toMatchObject({ code: 'CONNECTION_ENDED' });
    await expect(
      scopedRead(ended, { tenantId: 'ten_ended_pool', livemode: false }, (tx) => tx`SELECT 1`),
    ).rejects.toMatchObject({ code: 'CONNECTION_ENDED' });
  });
});
