import type { Tx } from './index.js';

export type ColumnType = 'text' | 'bigint' | 'integer' | 'smallint' | 'boolean' | 'json' | 'jsonb' | 'timestamptz' | 'bytea' | 'text[]';

export type Columns<Row> = ReadonlyArray<readonly [keyof Row & string, ColumnType]>;

// Every column travels as one text[] parameter and is cast back in SQL, so any row shape is one
// statement with one parameter per column, whatever the number of rows.
function toText(value: unknown, type: ColumnType): string | null {
  if (value === null || value === undefined) return null;
  if (type === 'jsonb' || type === 'json') return JSON.stringify(value);
  if (type === 'bytea') return '\\x' + (value as Buffer).toString('hex');
  if (type === 'timestamptz') return value instanceof Date ? value.toISOString() : String(value);
  if (type === 'text[]') return '{' + (value as string[]).map((v) => '"' + v.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
  return String(value);
}

export const columnNames = <Row>(columns: Columns<Row>) => columns.map(([name]) => name).join(', ');

/** Collects the parameters of one statement that reads several row sets through unnest. */
export class UnnestStatement {
  readonly params: Array<Array<string | null> | string> = [];

  /** A single text parameter; returns its placeholder. */
  param(value: string): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  /** `SELECT <typed columns> FROM unnest($a::text[], …) AS u(<columns>)` for these rows. */
  rows<Row>(columns: Columns<Row>, rows: Row[]): string {
    const placeholders = columns.map(([name, type]) => {
      this.params.push(rows.map((row) => toText(row[name], type)));
      return `$${this.params.length}::text[]`;
    });
    const casts = columns.map(([name, type]) => `u.${name}::${type} AS ${name}`).join(', ');
    return `SELECT ${casts} FROM unnest(${placeholders.join(', ')}) AS u(${columnNames(columns)})`;
  }

  run<T extends object[]>(tx: Tx, text: string) {
    return tx.unsafe<T>(text, this.params as never[], { prepare: true });
  }
}

/** INSERT … SELECT FROM unnest(…): one statement for any number of rows. */
export function insertRows<Row>(tx: Tx, table: string, columns: Columns<Row>, rows: Row[], suffix = '') {
  const statement = new UnnestStatement();
  const source = statement.rows(columns, rows);
  return statement.run(tx, `INSERT INTO ${table} (${columnNames(columns)}) ${source} ${suffix}`);
}
