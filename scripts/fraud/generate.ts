// npm run fraud:generate -- --days N --seed S --out FILE.csv
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify } from 'csv-stringify/sync';
import { CSV_COLUMNS } from '../../src/modules/fraud/model/dataset.js';
import { generate } from './generator.js';

const { values } = parseArgs({
  options: {
    days: { type: 'string', default: '56' },
    seed: { type: 'string', default: '1' },
    people: { type: 'string', default: '3000' },
    out: { type: 'string' },
  },
});
if (!values.out) throw new Error('--out FILE.csv is required');
const rows = generate({ days: Number(values.days), seed: Number(values.seed), people: Number(values.people) });
writeFileSync(values.out, stringify(rows, { header: true, columns: [...CSV_COLUMNS] }));
const fraud = rows.filter((row) => row.is_fraud === '1').length;
console.log(
  `${values.out}: ${rows.length} payments, ${fraud} fraudulent (${((100 * fraud) / rows.length).toFixed(2)}%)`,
);
