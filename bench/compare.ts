/**
 * `npm run bench:compare -- <revision> [pairs]`: `npm run bench` on two versions of the code, alternated, to show a
 * change's before and after. This machine's speed drifts by ±10% over tens of minutes and halved from one day to the
 * next (README, Benchmarks), so a figure measured yesterday or an hour ago says little about a change; two runs a
 * minute apart see nearly the same machine. The base is `<revision>` (checked out into a temporary git worktree), the
 * head is this working tree as it is, uncommitted changes included. Each pair runs both, base first in even pairs and
 * head first in odd ones, so a steady drift favours neither side. Every run is a whole `npm run bench` with this
 * process's environment (BENCH_SCENARIOS, BENCH_DURATION, … as for the bench itself); each writes its own log.
 *
 * Prints, per scenario, head / base throughput per pair with its median and mean (95% interval), and each side's
 * medians of throughput, p99, ratio to bare fastify and CPU per request; writes bench/results/compare.json. A run
 * whose correctness check fails stops the comparison.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  compareRuns,
  scenarioFigures,
  type ComparedRun,
  type ScenarioComparison,
  type Side,
} from './compare-summary.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_DIR = join(ROOT, 'bench', 'results');

const git = (args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();

function usage(message: string): never {
  console.error(`${message}\nusage: npm run bench:compare -- <revision> [pairs, default 3]`);
  process.exit(2);
}

/** The base revision in a worktree of its own, with dependencies: linked when its lockfile is this tree's. */
function checkOutBase(revision: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'payforward-bench-base-'));
  git(['worktree', 'add', '--detach', '--quiet', dir, revision]);
  const remove = () => {
    try {
      git(['worktree', 'remove', '--force', dir]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  let sameLockfile = true;
  try {
    execFileSync('git', ['diff', '--quiet', revision, '--', 'package-lock.json'], { cwd: ROOT, stdio: 'ignore' });
  } catch {
    sameLockfile = false;
  }
  try {
    if (sameLockfile) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    else {
      // The base gets its own install, as CI would make it.
      console.log(`the base's package-lock.json differs from this tree's: npm ci in ${dir}`);
      execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' });
    }
  } catch (error) {
    remove();
    throw error;
  }
  return { dir, remove };
}

function runBench(cwd: string, log: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', 'bench'], { cwd, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      writeFileSync(log, Buffer.concat(chunks));
      resolve(code ?? 1);
    });
  });
}

const fixed = (value: number | null, digits: number) => (value === null ? '–' : value.toFixed(digits));

function report(comparisons: ScenarioComparison[]): string {
  const lines = [
    'scenario               pairs  head/base req/s: median  mean [95% interval]   per pair',
    ...comparisons.map(
      (c) =>
        `${c.scenario.padEnd(22)} ${String(c.pairs).padStart(5)}  ${fixed(c.ratio_median, 3).padStart(24)}  ${fixed(c.ratio_mean, 3)} [${fixed(c.ratio_ci95[0], 3)}, ${fixed(c.ratio_ci95[1], 3)}]   ${c.pair_ratios.map((r) => r.toFixed(3)).join(' ')}`,
    ),
    '',
    'medians per side        req/s (base → head)   p99 ms        vs bare           server CPU ms/req   PostgreSQL CPU ms/req',
    ...comparisons.map(
      (c) =>
        `${c.scenario.padEnd(22)} ${`${fixed(c.base.requests_per_s, 0)} → ${fixed(c.head.requests_per_s, 0)}`.padEnd(21)} ${`${fixed(c.base.p99_ms, 0)} → ${fixed(c.head.p99_ms, 0)}`.padEnd(13)} ${`${fixed(c.base.ratio_to_bare, 3)} → ${fixed(c.head.ratio_to_bare, 3)}`.padEnd(17)} ${`${fixed(c.base.server_cpu_ms_per_request, 3)} → ${fixed(c.head.server_cpu_ms_per_request, 3)}`.padEnd(19)} ${fixed(c.base.postgres_cpu_ms_per_request, 3)} → ${fixed(c.head.postgres_cpu_ms_per_request, 3)}`,
    ),
  ];
  return lines.join('\n');
}

async function main() {
  const [revision, pairsArgument] = process.argv.slice(2);
  if (!revision) usage('name the revision to compare this working tree with');
  const pairs = pairsArgument === undefined ? 3 : Number(pairsArgument);
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > 20) usage(`pairs must be a whole number from 1 to 20`);
  let sha: string;
  try {
    sha = git(['rev-parse', '--verify', '--quiet', `${revision}^{commit}`]);
  } catch {
    usage(`no such revision: ${revision}`);
  }
  const head = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
  const headLabel = `${head}${dirty ? ' + uncommitted changes' : ''}`;
  console.log(`bench: ${sha.slice(0, 7)} (base) against ${headLabel} (head), ${pairs} pairs alternated`);
  const logDir = join(RESULTS_DIR, 'compare');
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const base = checkOutBase(sha);
  const runs: ComparedRun[] = [];
  try {
    for (let pair = 0; pair < pairs; pair++) {
      const order: Side[] = pair % 2 === 0 ? ['base', 'head'] : ['head', 'base'];
      for (const side of order) {
        const cwd = side === 'base' ? base.dir : ROOT;
        const log = join(logDir, `${pair + 1}-${side}.log`);
        const started = Date.now();
        const code = await runBench(cwd, log);
        if (code !== 0) throw new Error(`pair ${pair + 1}, ${side}: npm run bench exited with ${code}; see ${log}`);
        const results = scenarioFigures(
          JSON.parse(readFileSync(join(cwd, 'bench', 'results', 'latest.json'), 'utf8')) as { results: unknown[] },
        );
        runs.push({ side, pair, results });
        console.log(
          `pair ${pair + 1} ${side.padEnd(4)} ${((Date.now() - started) / 1000).toFixed(0)}s: ${results.map((r) => `${r.scenario} ${r.requests_per_s}/s`).join(', ')}`,
        );
      }
    }
  } finally {
    base.remove();
  }
  const comparisons = compareRuns(runs);
  console.log(`\n${report(comparisons)}`);
  writeFileSync(
    join(RESULTS_DIR, 'compare.json'),
    `${JSON.stringify({ base: sha, head: headLabel, pairs, environment: benchEnvironment(), comparisons, runs }, null, 2)}\n`,
  );
  console.log(`\nWrote bench/results/compare.json; each run's output in bench/results/compare/`);
}

/** The BENCH_* settings both sides ran with, for the record. */
function benchEnvironment(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('BENCH_'))) as Record<
    string,
    string
  >;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
