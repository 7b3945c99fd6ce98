import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { loadConfig } from '../config.js';
import { appDatabaseUrl, connect, scopedStatement, type Sql } from './index.js';

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
