// npm run fraud:evaluate -- --data FILE.csv [--model MODEL.json] [--test-weeks N]
//
// Without --model: a time-ordered split. A model is trained on the earlier weeks, a one-week gap
// follows, and it is tested on the later weeks. With --model: every row of FILE is a test row for that
// model. Velocity features always come from the whole stream in time order. Prints one JSON object.
import { parseArgs } from 'node:util';
import { decisions, readCsv } from '../../src/modules/fraud/model/dataset.js';
import { loadModelFile } from '../../src/modules/fraud/model/index.js';
import { evaluate, timeSplit, trainModel } from './evaluation.js';

const { values } = parseArgs({
  options: { data: { type: 'string' }, model: { type: 'string' }, 'test-weeks': { type: 'string' } },
});
if (!values.data) throw new Error('usage: fraud:evaluate -- --data FILE.csv [--model MODEL.json]');

const all = [...decisions(await readCsv(values.data))];
if (all.length === 0) throw new Error(`${values.data} has no rows`);

if (values.model) {
  const result = evaluate(loadModelFile(values.model), all);
  console.log(JSON.stringify({ ...result, split: { mode: 'given model', model: values.model } }, null, 2));
} else {
  const split = timeSplit(all, values['test-weeks'] === undefined ? undefined : Number(values['test-weeks']));
  const result = evaluate(await trainModel(split.train), split.test);
  const summary = {
    ...split.summary,
    train_rows: split.train.length,
    train_frauds: split.train.filter((d) => d.isFraud).length,
  };
  console.log(JSON.stringify({ ...result, split: summary }, null, 2));
}
