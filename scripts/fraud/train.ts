// npm run fraud:train -- --data FILE.csv --out MODEL.json [--version V] [--rounds N] [--leaves L]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decisions, readCsv } from '../../src/modules/fraud/model/dataset.js';
import { runTrainer, writeMatrix } from './training.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string' },
    version: { type: 'string', default: 'dev' },
    rounds: { type: 'string' },
    leaves: { type: 'string' },
  },
});
if (!values.data || !values.out) throw new Error('usage: fraud:train -- --data FILE.csv --out MODEL.json');
const dir = mkdtempSync(join(tmpdir(), 'fraud-train-'));
try {
  const matrix = join(dir, 'matrix.csv');
  const count = await writeMatrix(decisions(await readCsv(values.data)), matrix);
  runTrainer({
    matrix,
    out: values.out,
    version: values.version,
    rounds: values.rounds === undefined ? undefined : Number(values.rounds),
    leaves: values.leaves === undefined ? undefined : Number(values.leaves),
  });
  console.log(`${values.out}: model ${values.version} trained on ${count} payments`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
