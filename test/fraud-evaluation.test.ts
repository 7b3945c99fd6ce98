import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'csv-stringify/sync';
import { timeSplit } from '../scripts/fraud/evaluation.js';
import { lightgbmAvailable } from '../scripts/fraud/training.js';
import { generate } from '../scripts/fraud/generator.js';
import { CSV_COLUMNS, decisions } from '../src/modules/fraud/model/dataset.js';
import { SHIPPED_MODEL_VERSION } from '../src/modules/fraud/model/index.js';
import { fraudTrainerAvailable } from './services.js';

const trainable = fraudTrainerAvailable(lightgbmAvailable());
const dir = mkdtempSync(join(tmpdir(), 'fraud-evaluation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const modelPath = join(import.meta.dirname, `../src/modules/fraud/model/model-${SHIPPED_MODEL_VERSION}.json`);

function evaluateCli(args: string[]): any {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/fraud/evaluate.ts', ...args], {
    cwd: join(import.meta.dirname, '..'),
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

describe('npm run fraud:evaluate', () => {
  it('takes any file in the CSV format: rows out of order, empty optional fields, other ids and tenants', () => {
    // Columns in another order than the generator's, rows out of time order, lower-case currencies, a JPY amount,
    // empty customer, email, BIN, countries; ids and tenants in other shapes.
    const path = join(dir, 'any.csv');
    writeFileSync(
      path,
      [
        'is_fraud,amount,currency,timestamp,id,tenant_id,customer_id,email,card_fingerprint,card_bin,card_country,ip,ip_country,billing_country',
        '1,150,usd,2026-03-01T10:05:00Z,p-3,acme,,,card-a,411111,US,203.0.113.5,DE,',
        '0,2500,gbp,2026-03-01T09:00:00Z,p-1,acme,c1,a@x.test,card-b,555555,GB,198.51.100.1,GB,GB',
        '1,120,USD,2026-03-01T10:04:00Z,p-2,acme,,,card-a,411111,US,203.0.113.5,DE,',
        '0,5000,JPY,2026-03-02T12:00:00Z,p-4,shop,c9,b@x.test,card-c,,,10.0.0.1,,JP',
        '0,4800,jpy,2026-03-02T13:00:00+00:00,p-5,shop,c9,b@x.test,card-c,,,10.0.0.1,,JP',
      ].join('\n'),
    );
    const result = evaluateCli(['--data', path, '--model', modelPath]);
    expect(result).toMatchObject({ test_rows: 5, test_frauds: 2, model_version: SHIPPED_MODEL_VERSION });
    for (const metrics of [result, result.baseline])
      for (const key of [
        'auc',
        'average_precision',
        'card_precision_at_100',
        'fraud_caught_share',
        'false_positive_rate',
        'decline_rate',
      ]) {
        expect(metrics[key], key).toBeGreaterThanOrEqual(0);
        expect(metrics[key], key).toBeLessThanOrEqual(1);
      }
    // Five payments on three cards over two days: at most one fraudulent card a day out of k = 100.
    expect(result.card_precision_at_100).toBeCloseTo(0.005, 12);
  });

  it('splits by time: training weeks, a one-week gap, then the test weeks', () => {
    const all = [...decisions(generate({ days: 35, seed: 8, people: 200 }))];
    const { train, test, summary } = timeSplit(all, 1);
    const trainUntil = Date.parse(summary.train_until);
    const testFrom = Date.parse(summary.test_from);
    expect(testFrom - trainUntil).toBe(7 * 24 * 3_600_000);
    expect(train.every((d) => d.time < trainUntil)).toBe(true);
    expect(test.every((d) => d.time >= testFrom)).toBe(true);
    expect(train.length).toBe(all.filter((d) => d.time < trainUntil).length);
    expect(test.length + train.length).toBe(all.filter((d) => d.time < trainUntil || d.time >= testFrom).length);
    expect(train.length).toBeGreaterThan(test.length);
    expect(() => timeSplit(all.slice(0, 50))).toThrow(/too short/);
  });

  it.skipIf(!trainable)(
    'without --model, trains on the earlier weeks and beats the rules-only baseline',
    () => {
      const path = join(dir, 'generated.csv');
      writeFileSync(
        path,
        stringify(generate({ days: 28, seed: 21, people: 1500 }), { header: true, columns: [...CSV_COLUMNS] }),
      );
      const result = evaluateCli(['--data', path, '--test-weeks', '1']);
      expect(result.split).toMatchObject({ mode: 'time-ordered split' });
      expect(result.split.train_rows).toBeGreaterThan(result.test_rows);
      expect(result.test_frauds).toBeGreaterThan(10);
      expect(result.model_version).toBe('evaluation');
      expect(result.auc).toBeGreaterThan(result.baseline.auc);
      expect(result.average_precision).toBeGreaterThan(result.baseline.average_precision);
    },
    300_000,
  );
});
