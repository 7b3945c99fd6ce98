import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { reconcilePayments } from '../bench/reconcile.js';
import { compareSlices, type InterleavedSlice } from '../bench/rollup-interleaved.js';
import { productionSecrets } from '../bench/secrets.js';
import { productionSecretProblems } from '../src/bootstrap.js';

// The bench's own correctness check: committed payments against the answers its clients got.

describe('bench: payments committed against answers', () => {
  it('passes when every answer is committed and nothing was cut off', () => {
    expect(reconcilePayments({ answered: 1000, answeredCommitted: 1000, committed: 1000, unanswered: 0 }).ok).toBe(
      true,
    );
  });

  it('passes whether requests cut off at the end of a run reached the server or not', () => {
    // None reached the server (the case the old check failed), some did, all did.
    for (const committed of [1000, 1003, 1007]) {
      const result = reconcilePayments({ answered: 1000, answeredCommitted: 1000, committed, unanswered: 7 });
      expect(result.ok, result.detail).toBe(true);
    }
  });

  it('fails on a payment beyond one per cut-off request (a doubled payment)', () => {
    const result = reconcilePayments({ answered: 1000, answeredCommitted: 1000, committed: 1008, unanswered: 7 });
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('1 more payments than requests could have made');
  });

  it('fails when an answered payment is not committed, even if a cut-off one makes the count add up', () => {
    const result = reconcilePayments({ answered: 1000, answeredCommitted: 999, committed: 1000, unanswered: 7 });
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('1 answered payments missing');
  });
});

describe('bench: the API it starts in production mode', () => {
  it('is given every secret production requires, strong enough', () => {
    expect(productionSecretProblems(productionSecrets({ PLATFORM_API_KEY: undefined }))).toEqual([]);
  });

  it('keeps the values the bench must know', () => {
    const platformKey = randomBytes(32).toString('base64url');
    expect(productionSecrets({ PLATFORM_API_KEY: platformKey }).PLATFORM_API_KEY).toBe(platformKey);
  });
});

describe('bench: the rollups switched on and off within one load', () => {
  const slice = (rollups: 'on' | 'off', payments: number): InterleavedSlice => ({
    rollups,
    seconds: 5,
    payments,
    payments_per_s: payments / 5,
    api_cpu_ms_per_payment: rollups === 'on' ? 0.3 : 0.28,
    postgres_cpu_ms_per_payment: rollups === 'on' ? 0.31 : 0.27,
  });

  it('compares each slice with its pair, in either order, and gives the mean a 95% interval', () => {
    // Costs 4%, 6%, 2%: mean 4%, sd 2%, t(2 df) = 4.303, half-width 4.303 * 0.02 / sqrt(3).
    const summary = compareSlices([
      slice('on', 9600),
      slice('off', 10000),
      slice('off', 10000),
      slice('on', 9400),
      slice('on', 9800),
      slice('off', 10000),
    ]);
    expect(summary.pairs).toBe(3);
    expect(summary.pair_costs.map((c) => Math.round(c * 1000) / 1000)).toEqual([0.04, 0.06, 0.02]);
    expect(summary.cost_median).toBeCloseTo(0.04, 10);
    expect(summary.cost_mean).toBeCloseTo(0.04, 10);
    const half = (4.303 * 0.02) / Math.sqrt(3);
    expect(summary.cost_ci95[0]).toBeCloseTo(0.04 - half, 10);
    expect(summary.cost_ci95[1]).toBeCloseTo(0.04 + half, 10);
    expect(summary.payments_per_s).toEqual({ on: (9600 + 9400 + 9800) / 15, off: 2000 });
    expect(summary.cpu_ms_per_payment.on.postgres).toBe(0.31);
  });

  it('refuses slices that are not on/off pairs', () => {
    expect(() => compareSlices([slice('on', 1), slice('on', 1)])).toThrow(/not an on\/off pair/);
  });
});
