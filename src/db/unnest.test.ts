import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import fc from 'fast-check';
import { connect, type Sql, type Tx } from './index.js';
import { isoTime, UnnestStatement, type Columns } from './unnest.js';

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

interface ScalarRow {
  n: number;
  label: string | null;
  tags: string[] | null;
}

const SCALAR_COLUMNS: Columns<ScalarRow> = [
  ['n', 'integer'],
  ['label', 'text'],
  ['tags', 'text[]'],
];

describe('UnnestStatement scalar columns', () => {
  // Each column goes as one text[] literal: the characters a literal gives meaning to (quotes, backslashes, braces,
  // commas, blanks, the word NULL) must come back as the texts they were.
  const roundTripScalars = (rows: ScalarRow[]) => {
    const statement = new UnnestStatement();
    return statement.run<ScalarRow[]>(
      sql as unknown as Tx,
      `SELECT n, label, tags FROM (${statement.rows(SCALAR_COLUMNS, rows)}) r ORDER BY n`,
    );
  };

  it('bring back texts that look like literal syntax, NULL and the empty text apart', async () => {
    const rows: ScalarRow[] = [
      { n: 1, label: 'NULL', tags: ['NULL', ''] },
      { n: 2, label: null, tags: null },
      { n: 3, label: '', tags: [] },
      { n: 4, label: ' {a,"b"}\\ ', tags: ['x,y', '{z}', 'q"\\'] },
    ];
    expect(await roundTripScalars(rows)).toEqual(rows);
  });

  it('keep any texts intact (property)', async () => {
    const text = fc.string({ unit: 'grapheme' }).filter((value) => !value.includes('\u0000'));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.option(text), fc.option(fc.array(text, { maxLength: 4 }))), {
          minLength: 1,
          maxLength: 20,
        }),
        async (pairs) => {
          const rows = pairs.map(([label, tags], n) => ({ n, label, tags }));
          expect(await roundTripScalars(rows)).toEqual(rows);
        },
      ),
      { numRuns: 60 },
    );
  });
});

interface TypedRow {
  n: number;
  amount: number | null;
  flag: boolean | null;
  at: Date | null;
  raw: Buffer | null;
  meta: Record<string, unknown> | null;
}

const TYPED_COLUMNS: Columns<TypedRow> = [
  ['n', 'integer'],
  ['amount', 'bigint'],
  ['flag', 'boolean'],
  ['at', 'timestamptz'],
  ['raw', 'bytea'],
  ['meta', 'jsonb'],
];

describe('UnnestStatement typed columns', () => {
  it('bring back numbers, booleans, times, bytes and documents as sent (property)', async () => {
    const key = fc.string().filter((value) => !value.includes('\u0000'));
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            amount: fc.option(fc.integer({ min: -(2 ** 53 - 1), max: 2 ** 53 - 1 })),
            flag: fc.option(fc.boolean()),
            at: fc.option(
              fc.date({
                min: new Date('1970-01-01T00:00:00Z'),
                max: new Date('2999-12-31T00:00:00Z'),
                noInvalidDate: true,
              }),
            ),
            raw: fc.option(fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes))),
            meta: fc.option(fc.dictionary(key, key, { maxKeys: 3 })),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        async (records) => {
          const rows = records.map((record, n) => ({ n, ...record }));
          const statement = new UnnestStatement();
          const back = await statement.run<TypedRow[]>(
            sql as unknown as Tx,
            `SELECT n, amount, flag, at, raw, meta FROM (${statement.rows(TYPED_COLUMNS, rows)}) r ORDER BY n`,
          );
          expect(back).toEqual(rows);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('isoTime', () => {
  it('writes what toISOString writes, from one millisecond to the next and across seconds (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.date({
            min: new Date('-000100-01-01T00:00:00Z'),
            max: new Date('+100000-01-01T00:00:00Z'),
            noInvalidDate: true,
          }),
          {
            minLength: 1,
            maxLength: 50,
          },
        ),
        fc.integer({ min: 0, max: 2_500 }),
        (dates, step) => {
          // Runs of nearby times, as a batch's rows are, as well as far ones.
          for (const date of dates.flatMap((d) => [d, new Date(d.getTime() + step), new Date(d.getTime() - step)]))
            expect(isoTime(date)).toBe(date.toISOString());
        },
      ),
    );
  });

  it('refuses an invalid date as toISOString does', () => {
    expect(() => isoTime(new Date(Number.NaN))).toThrow(RangeError);
  });
});
