import { meanWithCi95, median } from './rollup-interleaved.js';

/** One scenario's figures from one `npm run bench` run (its bench/results/latest.json). */
export interface ScenarioFigures {
  scenario: string;
  requests_per_s: number;
  p99_ms: number;
  /** Against the bare fastify server of the same run, when the run measured one. */
  ratio_to_bare: number | null;
  server_cpu_ms_per_request: number | null;
  postgres_cpu_ms_per_request: number | null;
}

export type Side = 'base' | 'head';

export interface ComparedRun {
  side: Side;
  /** The pair the run belongs to: pair n ran base then head for even n, head then base for odd n. */
  pair: number;
  results: ScenarioFigures[];
}

export interface SideFigures {
  requests_per_s: number[];
  p99_ms: number[];
  ratio_to_bare: number[];
  server_cpu_ms_per_request: number[];
  postgres_cpu_ms_per_request: number[];
}

export interface ScenarioComparison {
  scenario: string;
  pairs: number;
  /** head / base throughput, one per pair in which both sides measured the scenario. */
  pair_ratios: number[];
  ratio_median: number;
  ratio_mean: number;
  /** A 95% confidence interval of the mean ratio (Student's t over the pairs; a point with one pair). */
  ratio_ci95: [number, number];
  /** The medians of each side's runs. */
  base: Record<keyof SideFigures, number | null>;
  head: Record<keyof SideFigures, number | null>;
  /** Every run's figures, in run order. */
  runs: { base: SideFigures; head: SideFigures };
}

/** The figures `npm run bench` wrote, per scenario: latest.json's `results` as read here. */
export function scenarioFigures(latest: { results: unknown[] }): ScenarioFigures[] {
  return latest.results.map((entry) => {
    const result = entry as {
      scenario: string;
      requests_per_s: number;
      latency_ms: { p99: number };
      ratio_to_bare: number | null;
      diagnostics?: { cpu_ms_per_request?: { server?: number; postgres_bench_db?: number } | null } | null;
    };
    const cpu = result.diagnostics?.cpu_ms_per_request;
    return {
      scenario: result.scenario,
      requests_per_s: result.requests_per_s,
      p99_ms: result.latency_ms.p99,
      ratio_to_bare: result.ratio_to_bare,
      server_cpu_ms_per_request: cpu?.server ?? null,
      postgres_cpu_ms_per_request: cpu?.postgres_bench_db ?? null,
    };
  });
}

const FIGURES: (keyof SideFigures)[] = [
  'requests_per_s',
  'p99_ms',
  'ratio_to_bare',
  'server_cpu_ms_per_request',
  'postgres_cpu_ms_per_request',
];

/**
 * Compares the two sides scenario by scenario. Throughput is compared within each pair (head / base), since the two
 * runs of a pair saw nearly the same machine; the other figures by each side's median. A scenario measured in no
 * complete pair is left out. Runs must come in pairs, one of each side.
 */
export function compareRuns(runs: ComparedRun[]): ScenarioComparison[] {
  const byPair = new Map<number, Partial<Record<Side, ComparedRun>>>();
  for (const run of runs) {
    const pair = byPair.get(run.pair) ?? {};
    if (pair[run.side]) throw new Error(`pair ${run.pair} has two ${run.side} runs`);
    pair[run.side] = run;
    byPair.set(run.pair, pair);
  }
  const complete = [...byPair.entries()]
    .sort(([a], [b]) => a - b)
    .map(([number, pair]) => {
      if (!pair.base || !pair.head) throw new Error(`pair ${number} lacks its ${pair.base ? 'head' : 'base'} run`);
      return { base: pair.base, head: pair.head };
    });
  const scenarios = [...new Set(runs.flatMap((run) => run.results.map((result) => result.scenario)))];
  const comparisons: ScenarioComparison[] = [];
  for (const scenario of scenarios) {
    const measured = complete.flatMap(({ base, head }) => {
      const b = base.results.find((result) => result.scenario === scenario);
      const h = head.results.find((result) => result.scenario === scenario);
      return b && h ? [{ base: b, head: h }] : [];
    });
    if (!measured.length) continue;
    const ratios = measured.map(({ base, head }) => head.requests_per_s / base.requests_per_s);
    const { mean, ci95 } = meanWithCi95(ratios);
    const side = (name: Side): SideFigures => {
      const figures = {} as SideFigures;
      for (const figure of FIGURES)
        figures[figure] = measured.flatMap((pair) => {
          const value = pair[name][figure];
          return value === null ? [] : [value];
        });
      return figures;
    };
    const medians = (figures: SideFigures) =>
      Object.fromEntries(
        FIGURES.map((figure) => [figure, figures[figure].length ? median(figures[figure]) : null]),
      ) as Record<keyof SideFigures, number | null>;
    const base = side('base');
    const head = side('head');
    comparisons.push({
      scenario,
      pairs: measured.length,
      pair_ratios: ratios,
      ratio_median: median(ratios),
      ratio_mean: mean,
      ratio_ci95: ci95,
      base: medians(base),
      head: medians(head),
      runs: { base, head },
    });
  }
  return comparisons;
}
