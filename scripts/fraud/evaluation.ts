import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabelledDecision } from '../../src/modules/fraud/model/dataset.js';
import { featureVector } from '../../src/modules/fraud/model/features.js';
import {
  HIGHEST_AT,
  loadModelFile,
  probability,
  scoreRisk,
  type FraudModel,
} from '../../src/modules/fraud/model/index.js';
import { atThreshold, auc, averagePrecision, cardPrecisionAtK } from '../../src/modules/fraud/model/metrics.js';
import { rawScore } from '../../src/modules/fraud/model/trees.js';
import { baselineScore } from './baseline.js';
import { runTrainer, writeMatrix } from './training.js';

const WEEK = 7 * 24 * 3_600_000;

/**
 * The time-ordered split: test on the last testWeeks weeks (default: a quarter of the whole weeks, at least
 * one), leave the week before them out (labels of those payments would not be known yet when the model
 * ships), and train on everything earlier.
 */
export function timeSplit(all: readonly LabelledDecision[], testWeeks?: number) {
  const first = all[0]!.time;
  const last = all.at(-1)!.time;
  const weeks = Math.floor((last - first) / WEEK);
  const testFrom = last - (testWeeks ?? Math.max(1, Math.round(weeks / 4))) * WEEK;
  const trainUntil = testFrom - WEEK;
  if (trainUntil - first < WEEK)
    throw new Error(`the data spans ${weeks} whole weeks: too short for a train / one-week gap / test split`);
  return {
    train: all.filter((d) => d.time < trainUntil),
    test: all.filter((d) => d.time >= testFrom),
    summary: {
      mode: 'time-ordered split',
      train_from: new Date(first).toISOString(),
      train_until: new Date(trainUntil).toISOString(),
      test_from: new Date(testFrom).toISOString(),
    },
  };
}

/** Trains a model on decisions with LightGBM (in a temporary folder) and loads it. */
export async function trainModel(train: Iterable<LabelledDecision>): Promise<FraudModel> {
  const dir = mkdtempSync(join(tmpdir(), 'fraud-evaluate-'));
  try {
    await writeMatrix(train, join(dir, 'train.csv'));
    runTrainer({ matrix: join(dir, 'train.csv'), out: join(dir, 'model.json'), version: 'evaluation' });
    return loadModelFile(join(dir, 'model.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function metrics(test: readonly LabelledDecision[], ranking: number[], decision: number[], declineAt: number) {
  const items = test.map((d, i) => ({
    score: ranking[i]!,
    isFraud: d.isFraud,
    amount: d.amount,
    day: new Date(d.time).toISOString().slice(0, 10),
    card: d.card ?? `no card: ${d.id}`,
  }));
  return {
    auc: auc(items),
    average_precision: averagePrecision(items),
    card_precision_at_100: cardPrecisionAtK(items, 100),
    ...atThreshold(
      items.map((item, i) => ({ ...item, score: decision[i]! })),
      declineAt,
    ),
  };
}

/**
 * The model's metrics on test decisions and the rules-only baseline's. The model ranks by its probability
 * (the integer risk score would tie many payments) and declines at risk_score >= HIGHEST_AT; the baseline
 * ranks by the number of its rules a payment hits and declines on any hit.
 */
export function evaluate(model: FraudModel, test: readonly LabelledDecision[]) {
  const probabilities = test.map((d) => probability(model, rawScore(model.forest, featureVector(d.signals))));
  const riskScores = test.map((d) => scoreRisk(model, d.signals).riskScore);
  const baseline = test.map((d) => baselineScore(d.signals));
  const labels = test.map((d) => (d.isFraud ? 1 : 0));
  return {
    ...metrics(test, probabilities, riskScores, HIGHEST_AT),
    threshold: { risk_score_at_least: HIGHEST_AT, risk_level: 'highest' },
    // What a perfect ranking would get: days have fewer than 100 fraudulent cards.
    card_precision_at_100_ceiling: metrics(test, labels, labels, 1).card_precision_at_100,
    test_rows: test.length,
    test_frauds: test.filter((d) => d.isFraud).length,
    model_version: model.version,
    baseline: {
      ...metrics(test, baseline, baseline, 1),
      rule: 'declines on any rule hit; ranks by the number of rules hit',
    },
  };
}
