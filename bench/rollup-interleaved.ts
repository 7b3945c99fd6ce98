import autocannon, { type RequestSpec, type Result } from 'autocannon';
import type postgres from 'postgres';

/**
 * What the analytics rollups cost create+confirm's throughput, measured so that this machine's drift cancels out:
 * one load of create+confirm requests, during which the rollup triggers (`analytics_*`) are switched on and off every
 * few seconds. Separate runs with and without them differed by as much as the effect (±10% from one 10-second run to
 * the next on the same code), because the machine's speed drifts over tens of seconds; slices a few seconds long,
 * taken in adjacent pairs, see nearly the same machine. Each pair's order alternates (on-off, off-on) so that a steady
 * trend favours neither side. The worker's fold loop runs throughout (bench/analytics-fold.ts), so what moving the
 * logs into the rollups costs PostgreSQL falls on the slices that wrote them, give or take the half second between
 * folds.
 */
export interface InterleavedOptions {
  url: string;
  connections: number;
  requests: RequestSpec[];
  /** A superuser connection to the bench database (to switch the triggers). */
  sql: postgres.Sql;
  slices: number;
  sliceSeconds: number;
  /** CPU ticks used so far by the API's processes and by the bench database's backends. */
  cpuTicks: () => Promise<{ api: number; postgres: number }>;
}

export interface InterleavedSlice {
  rollups: 'on' | 'off';
  seconds: number;
  payments: number;
  payments_per_s: number;
  api_cpu_ms_per_payment: number;
  postgres_cpu_ms_per_payment: number;
}

export interface InterleavedSummary {
  connections: number;
  slice_seconds: number;
  pairs: number;
  /** Per pair, 1 − on/off: the share of throughput the rollups took. */
  pair_costs: number[];
  cost_median: number;
  cost_mean: number;
  /** A 95% confidence interval of the mean cost (Student's t over the pairs). */
  cost_ci95: [number, number];
  payments_per_s: { on: number; off: number };
  cpu_ms_per_payment: { on: { api: number; postgres: number }; off: { api: number; postgres: number } };
  slices: InterleavedSlice[];
}

// Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom.
const T95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** Switches every analytics rollup trigger (`analytics_*`) of the database on or off; returns how many there are. */
export async function setRollupTriggers(sql: postgres.Sql, on: boolean): Promise<number> {
  const triggers = await sql<{ name: string; tbl: string }[]>`
    SELECT tgname AS name, tgrelid::regclass::text AS tbl FROM pg_trigger
    WHERE NOT tgisinternal AND tgname LIKE 'analytics\\_%'`;
  if (!triggers.length) throw new Error('no analytics_* trigger on the bench database: nothing to switch');
  // One transaction: the tables are locked together for a moment, not one after the other.
  await sql.begin((tx) =>
    tx.unsafe(triggers.map((t) => `ALTER TABLE ${t.tbl} ${on ? 'ENABLE' : 'DISABLE'} TRIGGER ${t.name}`).join(';\n')),
  );
  return triggers.length;
}

/** The mean of paired measurements and a 95% confidence interval of it (Student's t; a point for one value). */
export function meanWithCi95(values: number[]): { mean: number; ci95: [number, number] } {
  const mean = values.reduce((sum, v) => sum + v, 0) / values.length;
  if (values.length < 2) return { mean, ci95: [mean, mean] };
  const sd = Math.sqrt(values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (values.length - 1));
  const half = (T95[Math.min(values.length - 2, T95.length - 1)] * sd) / Math.sqrt(values.length);
  return { mean, ci95: [mean - half, mean + half] };
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Runs the interleaved load; returns autocannon's result (for the run's tally) and the comparison. */
export async function measureRollupsInterleaved(
  options: InterleavedOptions,
): Promise<{ result: Result; summary: InterleavedSummary }> {
  const pairs = Math.max(1, Math.floor(options.slices / 2));
  const order: boolean[] = [];
  for (let i = 0; i < pairs; i++) order.push(...(i % 2 ? [false, true] : [true, false]));

  let answered = 0;
  let finish!: (error: Error | null, result: Result) => void;
  const done = new Promise<Result>((resolve, reject) => {
    finish = (error, result) => (error ? reject(error) : resolve(result));
  });
  const instance = autocannon(
    {
      url: options.url,
      connections: options.connections,
      requests: options.requests,
      timeout: 10,
      // Stopped by hand after the last slice.
      duration: order.length * options.sliceSeconds + 60,
    },
    (error, result) => finish(error, result),
  );
  instance.on('response', (...args: unknown[]) => {
    if ((args[1] as number) === 200) answered++;
  });

  const slices: InterleavedSlice[] = [];
  for (const on of order) {
    await setRollupTriggers(options.sql, on);
    const cpuBefore = await options.cpuTicks();
    const countBefore = answered;
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, options.sliceSeconds * 1000));
    const seconds = (performance.now() - started) / 1000;
    const payments = answered - countBefore;
    const cpuAfter = await options.cpuTicks();
    // Ticks are hundredths of a second.
    const msPerPayment = (ticks: number) => (payments ? (ticks * 10) / payments : 0);
    slices.push({
      rollups: on ? 'on' : 'off',
      seconds,
      payments,
      payments_per_s: payments / seconds,
      api_cpu_ms_per_payment: msPerPayment(cpuAfter.api - cpuBefore.api),
      postgres_cpu_ms_per_payment: msPerPayment(cpuAfter.postgres - cpuBefore.postgres),
    });
  }
  instance.stop();
  const result = await done;
  await setRollupTriggers(options.sql, true);

  return {
    result,
    summary: { connections: options.connections, slice_seconds: options.sliceSeconds, ...compareSlices(slices) },
  };
}

/** The pairs' costs (1 − on/off throughput), their median and mean with a 95% interval, and each side's figures. */
export function compareSlices(slices: InterleavedSlice[]): Omit<InterleavedSummary, 'connections' | 'slice_seconds'> {
  const pairCosts: number[] = [];
  for (let i = 0; i + 1 < slices.length; i += 2) {
    const [a, b] = [slices[i], slices[i + 1]];
    if (a.rollups === b.rollups) throw new Error(`slices ${i} and ${i + 1} are not an on/off pair`);
    const [on, off] = a.rollups === 'on' ? [a, b] : [b, a];
    pairCosts.push(1 - on.payments_per_s / off.payments_per_s);
  }
  const { mean, ci95 } = meanWithCi95(pairCosts);
  const side = (rollups: 'on' | 'off') => slices.filter((s) => s.rollups === rollups);
  const perSecond = (list: InterleavedSlice[]) =>
    list.reduce((sum, s) => sum + s.payments, 0) / list.reduce((sum, s) => sum + s.seconds, 0);
  const cpu = (list: InterleavedSlice[]) => ({
    api: median(list.map((s) => s.api_cpu_ms_per_payment)),
    postgres: median(list.map((s) => s.postgres_cpu_ms_per_payment)),
  });
  return {
    pairs: pairCosts.length,
    pair_costs: pairCosts,
    cost_median: median(pairCosts),
    cost_mean: mean,
    cost_ci95: ci95,
    payments_per_s: { on: perSecond(side('on')), off: perSecond(side('off')) },
    cpu_ms_per_payment: { on: cpu(side('on')), off: cpu(side('off')) },
    slices,
  };
}
