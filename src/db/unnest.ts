import type { Tx } from './index.js';

export type ColumnType =
  | 'text'
  | 'bigint'
  | 'integer'
  | 'smallint'
  | 'boolean'
  | 'date'
  | 'json'
  // A json column whose values are already JSON text (a serialized response): sent as written, never re-encoded.
  | 'json_text'
  | 'jsonb'
  | 'timestamptz'
  | 'bytea'
  | 'text[]';

export type Columns<Row> = ReadonlyArray<readonly [keyof Row & string, ColumnType]>;

const LITERAL_SPECIAL = /["\\]/;
const LITERAL_SPECIALS = /["\\]/g;

// Every column travels as one text[] parameter and is cast back in SQL, so any row shape is one statement with one
// parameter per column, whatever the number of rows. The literal is written here in one pass: handed an array,
// postgres.js copies it and escapes each element with two regular expressions, which was a tenth of the API's CPU
// under create+confirm. Numbers, booleans and ISO times hold no character the literal gives meaning to and go
// unquoted; every other value is quoted, its quotes and backslashes escaped when it has any.
function element(value: unknown, type: ColumnType): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (type === 'timestamptz' && value instanceof Date) return isoTime(value);
  // bytea's hex form: its one backslash escaped, the hex digits need nothing.
  if (type === 'bytea') return '"\\\\x' + (value as Buffer).toString('hex') + '"';
  if (type === 'jsonb') return quoted(JSON.stringify(value));
  if (type === 'text[]') return quoted(arrayLiteral(value as string[], quoted));
  return quoted(String(value));
}

// toISOString costs about 0.4 µs, and a payment writes some twenty times; the rows of a batch fall within a second or
// two, so the text of the last second is kept and only the milliseconds are appended.
const MILLISECONDS = Array.from({ length: 1000 }, (_, ms) => '.' + String(ms).padStart(3, '0') + 'Z');
let lastSecond = NaN;
let lastSecondText = '';

export function isoTime(date: Date): string {
  const time = date.getTime();
  const second = Math.floor(time / 1000);
  if (second !== lastSecond) {
    const iso = date.toISOString();
    lastSecond = second;
    lastSecondText = iso.slice(0, -MILLISECONDS[0]!.length);
  }
  return lastSecondText + MILLISECONDS[time - second * 1000]!;
}

const quoted = (text: string) =>
  '"' + (LITERAL_SPECIAL.test(text) ? text.replace(LITERAL_SPECIALS, '\\$&') : text) + '"';

function arrayLiteral<T>(values: readonly T[], toElement: (value: T) => string): string {
  const elements = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) elements[i] = toElement(values[i]!);
  return '{' + elements.join(',') + '}';
}

export const columnNames = <Row>(columns: Columns<Row>) => columns.map(([name]) => name).join(', ');

/** Collects the parameters of one statement that reads several row sets through unnest. */
export class UnnestStatement {
  readonly params: unknown[] = [];

  /** A single text parameter; returns its placeholder. */
  param(value: string): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  /**
   * `SELECT <typed columns> FROM unnest($a::text[], …) AS u(<columns>)` for these rows. A json
   * column (large documents such as event payloads) travels instead as one json array, paired
   * with the other columns by position: escaping it element by element into a text[] literal
   * cost more than everything else in the batch. A json_text column's array is joined from the
   * texts as they are (a text parameter cast in SQL: postgres.js would encode a json one again),
   * and its JSON nulls are SQL NULLs.
   */
  rows<Row>(columns: Columns<Row>, rows: Row[]): string {
    const isDocument = (type: ColumnType) => type === 'json' || type === 'json_text';
    const scalar = columns.filter(([, type]) => !isDocument(type));
    const documents = columns.filter(([, type]) => isDocument(type));
    const placeholders = scalar.map(([name, type]) => {
      this.params.push(arrayLiteral(rows, (row) => element(row[name], type)));
      return `$${this.params.length}::text[]`;
    });
    const joins = documents.map(([name, type]) => {
      const texts = type === 'json_text';
      this.params.push(
        texts
          ? `[${rows.map((row) => (row[name] as string | null) ?? 'null').join(',')}]`
          : rows.map((row) => row[name] ?? null),
      );
      return ` JOIN json_array_elements($${this.params.length}::${texts ? 'text::json' : 'json'}) WITH ORDINALITY AS d_${name}(value, ord) ON d_${name}.ord = u.ord`;
    });
    const select = columns
      .map(([name, type]) =>
        type === 'json'
          ? `d_${name}.value AS ${name}`
          : type === 'json_text'
            ? `CASE WHEN json_typeof(d_${name}.value) <> 'null' THEN d_${name}.value END AS ${name}`
            : `u.${name}::${type} AS ${name}`,
      )
      .join(', ');
    const ordinality = documents.length ? ' WITH ORDINALITY' : '';
    const alias = `u(${columnNames(scalar)}${documents.length ? ', ord' : ''})`;
    return `SELECT ${select} FROM unnest(${placeholders.join(', ')})${ordinality} AS ${alias}${joins.join('')}`;
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
