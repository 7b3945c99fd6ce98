import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import fc from 'fast-check';
import { connect, type Sql, type Tx } from './index.js';
import { UnnestStatement, type Columns } from './unnest.js';

let sql: Sql;

beforeAll(() => {
  sql = connect(inject('adminDatabaseUrl'), { max: 1 });
});

afterAll(async () => {
  await sql?.end();
});

interface Row {
  n: number;
  label: string | null;
  document: string | null;
}

const COLUMNS: Columns<Row> = [
  ['n', 'integer'],
  ['label', 'text'],
  ['document', 'json_text'],
];

async function roundTrip(rows: Row[]) {
  const statement = new UnnestStatement();
  const text = `SELECT n, label, document::text AS document FROM (${statement.rows(COLUMNS, rows)}) r ORDER BY n`;
  return statement.run<Row[]>(sql as unknown as Tx, text);
}

describe('UnnestStatement json_text columns', () => {
  it('bring each JSON text back as written, beside its row, and a null as SQL NULL', async () => {
    const rows: Row[] = [
      { n: 1, label: 'a', document: '{"error":{"message":"say \\"no\\" \\\\ twice","code":null}}' },
      { n: 2, label: null, document: null },
      { n: 3, label: 'c"d', document: '[1,"\\u00e9t\\u00e9",{"nested":[true,false]}]' },
      { n: 4, label: 'e', document: 'null' },
    ];
    expect(await roundTrip(rows)).toEqual([
      rows[0],
      rows[1],
      rows[2],
      // JSON's null is stored as no document at all, as a missing one is.
      { n: 4, label: 'e', document: null },
    ]);
  });

  it('keep any JSON document and its neighbours intact (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        // PostgreSQL's text holds no NUL character.
        fc.array(
          fc.tuple(
            fc.string().filter((label) => !label.includes('\u0000')),
            fc.jsonValue(),
          ),
          {
            minLength: 1,
            maxLength: 20,
          },
        ),
        async (pairs) => {
          const rows = pairs.map(([label, value], n) => ({ n, label, document: JSON.stringify(value) }));
          const back = await roundTrip(rows);
          expect(back.map((row) => row.label)).toEqual(rows.map((row) => row.label));
          expect(back.map((row) => (row.document === null ? null : JSON.parse(row.document)))).toEqual(
            pairs.map(([, value]) => (value === null ? null : JSON.parse(JSON.stringify(value)))),
          );
        },
      ),
      { numRuns: 40 },
    );
  });
});
