import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { compareRuns, scenarioFigures, type ComparedRun } from '../bench/compare-summary.js';
import { reconcilePayments } from '../bench/reconcile.js';
import { compareSlices, type InterleavedSlice } from '../bench/rollup-interleaved.js';
import { productionSecrets } from '../bench/secrets.js';
import { productionSecretProblems } from '../src/bootstrap.js';

/** A 95% interval of the mean of three pairs: mean ± t(2 df) · sd / √3, t(2 df) = 4.303. */
function expectThreePairInterval(ci95: [number, number], mean: number, sd: number) {
  const half = (4.303 * sd) / Math.sqrt(3);
  expect(ci95[0]).toBeCloseTo(mean - half, 10);
  expect(ci95[1]).toBeCloseTo(mean + half, 10);
}

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
    expectThreePairInterval(summary.cost_ci95, 0.04, 0.02);
    expect(summary.payments_per_s).toEqual({ on: (9600 + 9400 + 9800) / 15, off: 2000 });
    expect(summary.cpu_ms_per_payment.on.postgres).toBe(0.31);
  });

  it('refuses slices that are not on/off pairs', () => {
    expect(() => compareSlices([slice('on', 1), slice('on', 1)])).toThrow(/not an on\/off pair/);
  });
});

describe('bench: two versions compared in alternated pairs', () => {
  const figures = (scenario: string, requestsPerS: number, serverCpu: number | null = 0.4) => ({
    scenario,
    requests_per_s: requestsPerS,
    p99_ms: 100,
    ratio_to_bare: null,
    server_cpu_ms_per_request: serverCpu,
    postgres_cpu_ms_per_request: 0.3,
  });
  const run = (side: 'base' | 'head', pair: number, ...results: ReturnType<typeof figures>[]): ComparedRun => ({
    side,
    pair,
    results,
  });

  it('compares throughput within each pair, whichever side ran first, and other figures by median', () => {
    // Ratios 1.1, 0.9, 1.3: mean 1.1, sd 0.2, t(2 df) = 4.303.
    const [mixed] = compareRuns([
      run('base', 0, figures('mixed', 1000, 0.5)),
      run('head', 0, figures('mixed', 1100, 0.4)),
      run('head', 1, figures('mixed', 1800, 0.42)),
      run('base', 1, figures('mixed', 2000, 0.52)),
      run('base', 2, figures('mixed', 1000, 0.54)),
      run('head', 2, figures('mixed', 1300, null)),
    ]);
    expect(mixed.scenario).toBe('mixed');
    expect(mixed.pairs).toBe(3);
    expect(mixed.pair_ratios.map((r) => Math.round(r * 1000) / 1000)).toEqual([1.1, 0.9, 1.3]);
    expect(mixed.ratio_median).toBeCloseTo(1.1, 10);
    expect(mixed.ratio_mean).toBeCloseTo(1.1, 10);
    expectThreePairInterval(mixed.ratio_ci95, 1.1, 0.2);
    expect(mixed.base.requests_per_s).toBe(1000);
    expect(mixed.head.requests_per_s).toBe(1300);
    // A figure a run did not report counts on neither side's median.
    expect(mixed.head.server_cpu_ms_per_request).toBeCloseTo(0.41, 10);
    expect(mixed.base.server_cpu_ms_per_request).toBe(0.52);
    expect(mixed.base.ratio_to_bare).toBeNull();
  });

  it('compares a scenario only in the pairs where both sides measured it', () => {
    const comparisons = compareRuns([
      run('base', 0, figures('retrieve', 5000), figures('bare_get', 20000)),
      run('head', 0, figures('retrieve', 6000)),
      run('head', 1, figures('retrieve', 5500), figures('bare_get', 21000)),
      run('base', 1, figures('retrieve', 5000), figures('bare_get', 20000)),
    ]);
    expect(comparisons.map((c) => [c.scenario, c.pairs, c.pair_ratios])).toEqual([
      ['retrieve', 2, [1.2, 1.1]],
      ['bare_get', 1, [1.05]],
    ]);
    expect(comparisons[1].ratio_ci95).toEqual([1.05, 1.05]);
  });

  it('refuses runs that are not one of each side per pair', () => {
    expect(() => compareRuns([run('base', 0), run('base', 0)])).toThrow(/two base runs/);
    expect(() => compareRuns([run('base', 0), run('head', 0), run('head', 1)])).toThrow(/pair 1 lacks its base run/);
  });

  it("reads each scenario's figures from the bench's latest.json", () => {
    expect(
      scenarioFigures({
        results: [
          {
            scenario: 'retrieve',
            requests_per_s: 7702,
            latency_ms: { mean: 12, p99: 40 },
            ratio_to_bare: 0.271,
            diagnostics: { cpu_ms_per_request: { server: 0.124, postgres_bench_db: 0.05 } },
          },
          {
            scenario: 'bare_get',
            requests_per_s: 28420,
            latency_ms: { p99: 9 },
            ratio_to_bare: null,
            diagnostics: null,
          },
        ],
      }),
    ).toEqual([
      {
        scenario: 'retrieve',
        requests_per_s: 7702,
        p99_ms: 40,
        ratio_to_bare: 0.271,
        server_cpu_ms_per_request: 0.124,
        postgres_cpu_ms_per_request: 0.05,
      },
      {
        scenario: 'bare_get',
        requests_per_s: 28420,
        p99_ms: 9,
        ratio_to_bare: null,
        server_cpu_ms_per_request: null,
        postgres_cpu_ms_per_request: null,
      },
    ]);
  });
});
