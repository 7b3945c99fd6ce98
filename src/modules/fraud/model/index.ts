import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FEATURES, FEATURE_NAMES, featureVector } from './features.js';
import type { RiskScore, RiskSignals } from './signals.js';
import { compileForest, pathContributions, type Forest, type LightGbmDump } from './trees.js';

export type { RiskReason, RiskScore, RiskSignals, VelocitySnapshot } from './signals.js';
export { buyerAddress, ipCountry } from './ip-country.js';

/** The model shipped with this release: `model-<version>.json` beside this file (or in dist/fraud-model/). */
export const SHIPPED_MODEL_VERSION = '2026-11-30.2';

/**
 * risk_score thresholds: a score at or above ELEVATED_AT is `elevated`, at or above HIGHEST_AT `highest`.
 * The score is the model's fraud probability in percent, rounded.
 */
export const ELEVATED_AT = 40;
export const HIGHEST_AT = 65;

const MAX_REASONS = 5;

export interface FraudModel {
  version: string;
  forest: Forest;
}

/** The artifact written by python/fraud/train.py. */
interface ModelArtifact {
  format: string;
  version: string;
  features: string[];
  lightgbm: LightGbmDump;
}

/** Builds a scorer from a model artifact's JSON text, refusing one trained on other features. */
export function parseModel(json: string): FraudModel {
  const artifact = JSON.parse(json) as ModelArtifact;
  if (artifact.format !== 'payforward-fraud-model/1')
    throw new Error(`fraud model: unknown format '${String(artifact.format)}'`);
  if (artifact.features.join(',') !== FEATURE_NAMES.join(','))
    throw new Error(`fraud model ${artifact.version}: trained on other features than this code computes`);
  return { version: artifact.version, forest: compileForest(artifact.lightgbm, FEATURE_NAMES.length) };
}

export function loadModelFile(path: string): FraudModel {
  return parseModel(readFileSync(path, 'utf8'));
}

let shipped: FraudModel | undefined;

/** The shipped model, read once. Found beside this module (tsx, vitest) or in dist/fraud-model/ (bundle). */
export function loadShippedModel(): FraudModel {
  if (shipped) return shipped;
  const file = `model-${SHIPPED_MODEL_VERSION}.json`;
  const candidates = [new URL(`./${file}`, import.meta.url), new URL(`./fraud-model/${file}`, import.meta.url)];
  const found = candidates.map((url) => fileURLToPath(url)).find((path) => existsSync(path));
  if (!found) throw new Error(`fraud model ${file} not found next to ${fileURLToPath(import.meta.url)}`);
  shipped = loadModelFile(found);
  return shipped;
}

export function riskLevel(riskScore: number): RiskScore['riskLevel'] {
  return riskScore >= HIGHEST_AT ? 'highest' : riskScore >= ELEVATED_AT ? 'elevated' : 'normal';
}

/** The fraud probability for a raw score (log-odds). */
export function probability(model: FraudModel, raw: number): number {
  return 1 / (1 + Math.exp(-model.forest.sigmoid * raw));
}

/**
 * The indexes of the largest non-zero contributions by magnitude, largest first (ties: lower index
 * first), at most MAX_REASONS: a selection pass instead of sorting every feature, as this runs on
 * every payment.
 */
export function topContributions(contributions: Float64Array): number[] {
  const top: number[] = [];
  for (let i = 0; i < contributions.length; i++) {
    const magnitude = Math.abs(contributions[i]!);
    if (magnitude === 0) continue;
    let at = top.length;
    while (at > 0 && Math.abs(contributions[top[at - 1]!]!) < magnitude) at--;
    if (at >= MAX_REASONS) continue;
    top.splice(at, 0, i);
    if (top.length > MAX_REASONS) top.pop();
  }
  return top;
}

/** Scores one decision in process: pure, deterministic, a walk over the model's trees. */
export function scoreRisk(model: FraudModel, signals: RiskSignals): RiskScore {
  const contributions = new Float64Array(FEATURE_NAMES.length);
  const x = featureVector(signals);
  const raw = pathContributions(model.forest, x, contributions);
  const riskScore = Math.min(100, Math.max(0, Math.round(100 * probability(model, raw))));
  return {
    riskScore,
    riskLevel: riskLevel(riskScore),
    reasons: topContributions(contributions).map((i) => ({
      feature: Number.isNaN(x[i]) ? FEATURES[i]!.missingLabel : FEATURES[i]!.label,
      weight: Math.round(contributions[i]! * 1e4) / 1e4,
    })),
    modelVersion: model.version,
  };
}
