import postgres from 'postgres';

/**
 * A connection (one, superuser) on which every plan a statement runs, nested ones included, is pushed to `plans` as
 * auto_explain logs it: for tests that assert a statement's plan, functions' inner statements too.
 */
export async function planLoggingConnection(url: string, plans: string[]): Promise<postgres.Sql> {
  const sql = postgres(url, {
    max: 1,
    onnotice: (notice) => plans.push(String(notice.message)),
    connection: { client_min_messages: 'log' },
  });
  await sql`LOAD 'auto_explain'`;
  await sql`SET auto_explain.log_min_duration = 0`;
  await sql`SET auto_explain.log_nested_statements = on`;
  return sql;
}
