import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { FEATURE_NAMES, featureVector } from '../../src/modules/fraud/model/features.js';
import type { LabelledDecision } from '../../src/modules/fraud/model/dataset.js';

// The TypeScript half of training: features come from the one featureVector, LightGBM runs in Python.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The venv `.ci/run` creates, with the pinned packages of python/fraud/requirements.txt. */
export const FRAUD_PYTHON = `${ROOT}.venv-fraud/bin/python`;
const TRAIN_SCRIPT = `${ROOT}python/fraud/train.py`;

/** Whether LightGBM can run here: the venv exists and imports it. */
export function lightgbmAvailable(): boolean {
  if (!existsSync(FRAUD_PYTHON)) return false;
  try {
    execFileSync(FRAUD_PYTHON, ['-c', 'import lightgbm'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Writes the feature matrix (features in FEATURE_NAMES order, then is_fraud) as CSV. */
export async function writeMatrix(rows: Iterable<LabelledDecision>, path: string): Promise<number> {
  const out = createWriteStream(path);
  out.write(`${[...FEATURE_NAMES, 'is_fraud'].join(',')}\n`);
  let count = 0;
  for (const row of rows) {
    // Number's toString round-trips every double, so Python reads exactly the values the scorer sees.
    if (!out.write(`${featureVector(row.signals).join(',')},${row.isFraud ? 1 : 0}\n`)) await once(out, 'drain');
    count++;
  }
  out.end();
  await once(out, 'finish');
  return count;
}

export interface TrainOptions {
  matrix: string;
  out: string;
  version: string;
  rounds?: number;
  leaves?: number;
  /** A held-out matrix whose raw LightGBM predictions are written to `predictions`. */
  holdout?: string;
  predictions?: string;
}

export function runTrainer(options: TrainOptions): void {
  if (!existsSync(FRAUD_PYTHON))
    throw new Error(
      `${FRAUD_PYTHON} is missing: python3 -m venv .venv-fraud && .venv-fraud/bin/pip install -r python/fraud/requirements.txt`,
    );
  const args = [TRAIN_SCRIPT, '--matrix', options.matrix, '--out', options.out, '--version', options.version];
  if (options.rounds !== undefined) args.push('--rounds', String(options.rounds));
  if (options.leaves !== undefined) args.push('--leaves', String(options.leaves));
  if (options.holdout && options.predictions)
    args.push('--holdout', options.holdout, '--predictions', options.predictions);
  execFileSync(FRAUD_PYTHON, args, { stdio: 'inherit' });
}
