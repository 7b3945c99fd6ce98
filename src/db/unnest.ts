import type { Tx } from './index.js';

export type ColumnType = 'text' | 'bigint' | 'integer' | 'smallint' | 'boolean' | 'jsonb' | 'timestamptz' | 'bytea' | 'text[]';

export type Columns<Row> = ReadonlyArray<readonly [keyof Row & string, ColumnType]>;

// Every column travels as one text[] parameter and is cast back in SQL, so any row shape is one
// statement with one parameter per column, whatever the number of rows.
function toText(value: unknown, type: ColumnType): string | null {
  if (value === null || value === undefined) return null;
  if (type === 'jsonb') return JSON.stringify(value);
  if (type === 'bytea') return '\\x' + (value as Buffer).toString('hex');
  if (type === 'timestamptz') return value instanceof Date ? value.toISOString() : String(value);
  if (type === 'text[]') return '{' + (value as string[]).map((v) => '"' + v.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
  return String(value);
}

function columnArrays<Row>(columns: Columns<Row>, rows: Row[]) {
  return columns.map(([name, type]) => rows.map((row) => toText(row[name], type)));
}

function selectList<Row>(columns: Columns<Row>) {
  const names = columns.map(([name]) => name);
  const params = columns.map((_, i) => `$${i + 1}::text[]`).join(', ');
  const casts = columns.map(([name, type]) => `u.${name}::${type}`).join(', ');
  return { names, params, casts };
}

/** INSERT … SELECT FROM unnest(…): one statement for any number of rows. */
export function insertRows<Row>(tx: Tx, table: string, columns: Columns<Row>, rows: Row[], suffix = '') {
  const { names, params, casts } = selectList(columns);
  const query = `INSERT INTO ${table} (${names.join(', ')}) SELECT ${casts} FROM unnest(${params}) AS u(${names.join(', ')}) ${suffix}`;
  return tx.unsafe(query, columnArrays(columns, rows) as never[]);
}

/**
 * UPDATE … FROM unnest(…) with a compare-and-set guard: a row is updated only where its current
 * version equals the expected one. Returns the ids that were updated.
 */
export function updateRowsIfVersion<Row extends { id: string; version: number }>(
  tx: Tx,
  table: string,
  columns: Columns<Row>,
  rows: Row[],
) {
  const withVersion: Columns<Row> = [...columns.filter(([n]) => n !== 'version'), ['version', 'integer']];
  const { names, params, casts } = selectList(withVersion);
  const assignments = withVersion
    .filter(([name]) => name !== 'id' && name !== 'tenant_id' && name !== 'livemode' && name !== 'created_at')
    .map(([name]) => `${name} = v.${name}`)
    .join(', ');
  const query = `UPDATE ${table} t SET ${assignments}
    FROM (SELECT ${casts} FROM unnest(${params}) AS u(${names.join(', ')})) AS v
    WHERE t.id = v.id AND t.version = v.version - 1
    RETURNING t.id`;
  return tx.unsafe<{ id: string }[]>(query, columnArrays(withVersion, rows) as never[]);
}
