// npm run fraud:evaluate -- --data FILE.csv [--model MODEL.json] [--test-weeks N]
//
// Without --model: a time-ordered split. The model is trained on the earlier weeks, a one-week gap
// follows (its labels would not be known yet when the model ships), and it is tested on the later weeks.
// With --model: every row of FILE is a test row for that model. Prints one JSON object.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decisions, readCsv, type LabelledDecision } from '../../src/modules/fraud/model/dataset.js';
import { featureVector } from '../../src/modules/fraud/model/features.js';
import {
  HIGHEST_AT,
  loadModelFile,
  probability,
  scoreRisk,
  type FraudModel,
} from '../../src/modules/fraud/model/index.js';
import { rawScore } from '../../src/modules/fraud/model/trees.js';
import { atThreshold, auc, averagePrecision, cardPrecisionAtK } from '../../src/modules/fraud/model/metrics.js';
import { baselineScore } from './baseline.js';
import { runTrainer, writeMatrix } from './training.js';

const WEEK = 7 * 24 * 3_600_000;

const { values } = parseArgs({
  options: { data: { type: 'string' }, model: { type: 'string' }, 'test-weeks': { type: 'string' } },
});
if (!values.data) throw new Error('usage: fraud:evaluate -- --data FILE.csv [--model MODEL.json]');

const all = [...decisions(await readCsv(values.data))];
if (all.length === 0) throw new Error(`${values.data} has no rows`);

let model: FraudModel;
let test: LabelledDecision[];
let split: Record<string, unknown>;
if (values.model) {
  model = loadModelFile(values.model);
  test = all;
  split = { mode: 'given model', model: values.model };
} else {
  const first = all[0]!.time;
  const weeks = Math.floor((all.at(-1)!.time - first) / WEEK);
  const testWeeks = values['test-weeks'] ? Number(values['test-weeks']) : Math.max(1, Math.round(weeks / 4));
  const trainUntil = first + (weeks - testWeeks - 1) * WEEK;
  const testFrom = trainUntil + WEEK;
  if (trainUntil - first < WEEK)
    throw new Error(`${values.data} spans ${weeks} whole weeks: too short for a train / one-week gap / test split`);
  const train = all.filter((d) => d.time < trainUntil);
  test = all.filter((d) => d.time >= testFrom);
  const dir = mkdtempSync(join(tmpdir(), 'fraud-evaluate-'));
  try {
    await writeMatrix(train, join(dir, 'train.csv'));
    runTrainer({ matrix: join(dir, 'train.csv'), out: join(dir, 'model.json'), version: 'evaluation' });
    model = loadModelFile(join(dir, 'model.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  split = {
    mode: 'time-ordered split',
    train_from: new Date(first).toISOString(),
    train_until: new Date(trainUntil).toISOString(),
    test_from: new Date(testFrom).toISOString(),
    train_rows: train.length,
    train_frauds: train.filter((d) => d.isFraud).length,
  };
}

function metrics(scores: number[], declineAt: number, declineScores: number[]) {
  const items = test.map((d, i) => ({
    score: scores[i]!,
    isFraud: d.isFraud,
    amount: d.amount,
    day: new Date(d.time).toISOString().slice(0, 10),
    card: d.card ?? `no card ${d.id}`,
  }));
  return {
    auc: auc(items),
    average_precision: averagePrecision(items),
    card_precision_at_100: cardPrecisionAtK(items, 100),
    ...atThreshold(
      items.map((item, i) => ({ ...item, score: declineScores[i]! })),
      declineAt,
    ),
  };
}

// The probability ranks payments (the integer risk score would tie many); declines are risk_score >= HIGHEST_AT.
const scored = test.map((d) => ({ d, risk: scoreRisk(model, d.signals) }));
const probabilities = test.map((d) => rawProbability(model, d));
const baseline = test.map((d) => baselineScore(d.signals));
console.log(
  JSON.stringify(
    {
      ...metrics(
        probabilities,
        HIGHEST_AT,
        scored.map((s) => s.risk.riskScore),
      ),
      threshold: { risk_score_at_least: HIGHEST_AT, risk_level: 'highest' },
      test_rows: test.length,
      test_frauds: test.filter((d) => d.isFraud).length,
      model_version: model.version,
      split,
      baseline: { ...metrics(baseline, 1, baseline), rule: 'declines on any hit; ranks by the number of rules hit' },
    },
    null,
    2,
  ),
);

function rawProbability(m: FraudModel, d: LabelledDecision): number {
  return probability(m, rawScore(m.forest, featureVector(d.signals)));
}
