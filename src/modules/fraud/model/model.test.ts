import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { generate } from '../../../../scripts/fraud/generator.js';
import { lightgbmAvailable, runTrainer, writeMatrix } from '../../../../scripts/fraud/training.js';
import { fraudTrainerAvailable } from '../../../../test/services.js';
import { decisions } from './dataset.js';
import { FEATURES, FEATURE_NAMES, featureVector } from './features.js';
import {
  ELEVATED_AT,
  HIGHEST_AT,
  loadModelFile,
  loadShippedModel,
  parseModel,
  scoreRisk,
  topContributions,
  SHIPPED_MODEL_VERSION,
} from './index.js';
import type { RiskSignals, VelocitySnapshot } from './signals.js';
import { pathContributions, rawScore } from './trees.js';

const trainable = fraudTrainerAvailable(lightgbmAvailable());
const dir = mkdtempSync(join(tmpdir(), 'fraud-model-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!trainable)('training with LightGBM and scoring in TypeScript', () => {
  it("equals LightGBM's own raw predictions on a held-out sample to 1e-6", async () => {
    const all = [...decisions(generate({ days: 21, seed: 5, people: 800 }))];
    const cut = Math.floor(all.length * 0.7);
    const train = join(dir, 'train.csv');
    const holdout = join(dir, 'holdout.csv');
    await writeMatrix(all.slice(0, cut), train);
    await writeMatrix(all.slice(cut), holdout);
    const out = join(dir, 'model.json');
    const predictions = join(dir, 'predictions.txt');
    runTrainer({ matrix: train, out, version: 'test', rounds: 80, leaves: 31, holdout, predictions });

    const expected = readFileSync(predictions, 'utf8').trim().split('\n').map(Number);
    const held = all.slice(cut);
    expect(expected).toHaveLength(held.length);
    expect(held.filter((d) => d.isFraud).length).toBeGreaterThan(5);
    const model = loadModelFile(out);
    const contributions = new Float64Array(FEATURE_NAMES.length);
    let worst = 0;
    held.forEach((decision, i) => {
      const x = featureVector(decision.signals);
      const raw = rawScore(model.forest, x);
      worst = Math.max(worst, Math.abs(raw - expected[i]!));
      // The reasons' weights add up, with the bias, to the same raw score.
      const viaPaths = pathContributions(model.forest, x, contributions);
      const total = contributions.reduce((sum, c) => sum + c, model.forest.bias);
      expect(Math.abs(viaPaths - raw)).toBe(0);
      expect(Math.abs(total - raw)).toBeLessThan(1e-9);
    });
    expect(worst).toBeLessThan(1e-6);
    // Not a constant model: the held-out scores spread.
    expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(5);
  });
});

describe('the shipped model', () => {
  const model = loadShippedModel();
  const sample = [...decisions(generate({ days: 10, seed: 98, people: 300 }))];

  it('loads once, under its version', () => {
    expect(loadShippedModel()).toBe(model);
    expect(model.version).toBe(SHIPPED_MODEL_VERSION);
    expect(model.forest.roots.length).toBeGreaterThan(10);
  });

  it('scores deterministically: same signals, same score, reasons and order, even from a fresh load', () => {
    const fresh = loadModelFile(join(import.meta.dirname, `model-${SHIPPED_MODEL_VERSION}.json`));
    for (const decision of sample.slice(0, 500)) {
      const first = scoreRisk(model, decision.signals);
      expect(scoreRisk(model, structuredClone(decision.signals))).toEqual(first);
      expect(scoreRisk(fresh, decision.signals)).toEqual(first);
    }
  });

  it('gives an integer score 0–100, its level by the documented thresholds and at most 5 reasons by |weight|', () => {
    const levels = new Set<string>();
    for (const decision of sample) {
      const score = scoreRisk(model, decision.signals);
      expect(Number.isInteger(score.riskScore)).toBe(true);
      expect(score.riskScore).toBeGreaterThanOrEqual(0);
      expect(score.riskScore).toBeLessThanOrEqual(100);
      const level = score.riskScore >= HIGHEST_AT ? 'highest' : score.riskScore >= ELEVATED_AT ? 'elevated' : 'normal';
      expect(score.riskLevel).toBe(level);
      levels.add(score.riskLevel);
      expect(score.reasons.length).toBeLessThanOrEqual(5);
      const weights = score.reasons.map((r) => Math.abs(r.weight));
      expect(weights).toEqual([...weights].sort((a, b) => b - a));
      expect(score.modelVersion).toBe(SHIPPED_MODEL_VERSION);
    }
    expect(levels).toEqual(new Set(['normal', 'elevated', 'highest']));
  });

  it('does not score a legitimate payment as risky for lacking an IP address or a customer', () => {
    // Legitimate payments that have both, scored as they are and with the IP (server-to-server
    // integrations send none) or the customer (guest checkout) taken away: the key's velocity is
    // then zero, as the engine records it, and missing in the features.
    const legitimate = [...decisions(generate({ days: 21, seed: 9, people: 1500 }))].filter(
      (d) => !d.isFraud && d.signals.hasIp && d.signals.ipCountry !== null && d.signals.hasCustomer,
    );
    expect(legitimate.length).toBeGreaterThan(3000);
    const zero = (prefix: string, velocity: VelocitySnapshot) =>
      Object.fromEntries(Object.entries(velocity).map(([k, v]) => [k, k.startsWith(prefix) ? 0 : v]));
    const withoutIp = (s: RiskSignals): RiskSignals => ({
      ...s,
      hasIp: false,
      ipCountry: null,
      velocity: { ...s.velocity, ...zero('ip_', s.velocity) },
    });
    const withoutCustomer = (s: RiskSignals): RiskSignals => ({
      ...s,
      hasCustomer: false,
      velocity: { ...s.velocity, ...zero('customer_', s.velocity) },
    });
    const elevatedShare = (change: (s: RiskSignals) => RiskSignals) =>
      legitimate.filter((d) => scoreRisk(model, change(d.signals)).riskScore >= ELEVATED_AT).length / legitimate.length;
    expect(elevatedShare((s) => s)).toBeLessThan(0.005);
    expect(elevatedShare(withoutIp)).toBeLessThan(0.005);
    expect(elevatedShare(withoutCustomer)).toBeLessThan(0.015);
    expect(elevatedShare((s) => withoutCustomer(withoutIp(s)))).toBeLessThan(0.015);
  });

  it('gives a missing feature as "not given", never with its "differs" label', () => {
    let notGiven = 0;
    for (const decision of sample) {
      const x = featureVector(decision.signals);
      for (const reason of scoreRisk(model, decision.signals).reasons) {
        const i = FEATURES.findIndex((f) => f.label === reason.feature || f.missingLabel === reason.feature);
        expect(i).toBeGreaterThanOrEqual(0);
        expect(reason.feature).toBe(Number.isNaN(x[i]!) ? FEATURES[i]!.missingLabel : FEATURES[i]!.label);
        if (Number.isNaN(x[i]!)) notGiven++;
      }
    }
    expect(notGiven).toBeGreaterThan(0);
    const noBilling = sample.find((d) => d.signals.billingCountry === null && d.signals.ipCountry !== null)!;
    const features = scoreRisk(model, { ...noBilling.signals, cardCountry: 'US', ipCountry: 'US' }).reasons.map(
      (r) => r.feature,
    );
    expect(features).not.toContain('Card country differs from billing country');
    expect(features).not.toContain('Billing country differs from IP country');
  });

  it("scores a guest's small payment at most elevated for a card country differing from the IP's, at any hour", () => {
    // A traveller's first payment: no customer, email, billing country or history. With an address
    // outside the IP table (any real one) or a loopback one (no IP), it is normal.
    const velocity = Object.fromEntries(
      Object.keys(sample[0]!.signals.velocity).map((k) => [k, k === 'seconds_since_card_last_seen' ? -1 : 0]),
    ) as unknown as VelocitySnapshot;
    const guest = (ipCountry: string | null, hasIp: boolean, currency: string, hour: number, day: number) =>
      scoreRisk(model, {
        amount: 4900,
        currency,
        timestamp: new Date(Date.UTC(2026, 10, 23 + day, hour, 17)),
        cardBin: '424242',
        cardCountry: 'US',
        ipCountry,
        billingCountry: null,
        hasEmail: false,
        hasCustomer: false,
        hasIp,
        velocity,
      }).riskScore;
    for (const currency of ['EUR', 'USD'])
      for (let day = 0; day < 7; day++)
        for (let hour = 0; hour < 24; hour++) {
          for (const country of ['DE', 'GB', 'FR', 'MX'])
            expect(guest(country, true, currency, hour, day)).toBeLessThan(HIGHEST_AT);
          expect(guest(null, true, currency, hour, day)).toBeLessThan(ELEVATED_AT);
          expect(guest(null, false, currency, hour, day)).toBeLessThan(ELEVATED_AT);
        }
  });

  it('scores a card-testing burst higher than the same small payment from a quiet card', () => {
    const quiet = sample.find(
      (d) => !d.isFraud && d.signals.hasIp && d.signals.velocity.ip_distinct_cards_1h === 0,
    )!.signals;
    const burst = {
      ...quiet,
      amount: 100,
      cardCountry: 'BR',
      ipCountry: 'RO',
      billingCountry: null,
      hasCustomer: false,
      velocity: { ...quiet.velocity, ip_count_1h: 25, ip_distinct_cards_1h: 25, ip_distinct_cards_24h: 25 },
    };
    const score = scoreRisk(model, burst);
    expect(score.riskScore).toBeGreaterThan(scoreRisk(model, { ...quiet, amount: 100 }).riskScore);
    expect(score.reasons.map((r) => r.feature)).toContain('Card country differs from IP country');
  });
});

it('refuses a model trained on other features', () => {
  const text = readFileSync(join(import.meta.dirname, `model-${SHIPPED_MODEL_VERSION}.json`), 'utf8');
  const artifact = JSON.parse(text);
  artifact.features = [...artifact.features].reverse();
  expect(() => parseModel(JSON.stringify(artifact))).toThrow(/other features/);
});

describe('reasons', () => {
  it('are the five largest non-zero contributions by magnitude, ties by feature order (as a full sort gives)', () => {
    const value = fc.oneof(fc.constant(0), fc.constantFrom(-0.5, 0.5, 1), fc.double({ min: -3, max: 3, noNaN: true }));
    fc.assert(
      fc.property(fc.array(value, { minLength: 0, maxLength: FEATURE_NAMES.length }), (values) => {
        const contributions = Float64Array.from(values);
        const sorted = [...contributions.keys()]
          .filter((i) => contributions[i] !== 0)
          .sort((a, b) => Math.abs(contributions[b]!) - Math.abs(contributions[a]!) || a - b)
          .slice(0, 5);
        expect(topContributions(contributions)).toEqual(sorted);
      }),
      { numRuns: 2000 },
    );
  });
});
