/**
 * Where PostgreSQL's time goes, statement by statement, without pg_stat_statements: that extension must be in
 * `shared_preload_libraries`, which needs a server restart, and the bench runs against a shared server it may not
 * restart. Instead `BENCH_PG_STATEMENTS=1` sets `log_min_duration_statement = 0` on the bench database only (a
 * per-database setting, new connections take it), and this reads the part of the server's log written during a
 * measured run: every parse, bind and execute with its duration, grouped by statement text. Durations are wall time
 * inside the server (they include lock waits, not the client's round trip), and logging every statement costs the
 * server some CPU itself: use it to rank statements, not for the run's throughput.
 * Also runnable on its own over a log slice: npx tsx bench/pg-statements.ts <log file> <database> [top]
 */
import { closeSync, openSync, readSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface StatementCost {
  /** parse, bind, execute, or statement (the simple protocol: BEGIN, COMMIT sent as text). */
  phase: string;
  statement: string;
  calls: number;
  total_ms: number;
  mean_ms: number;
  /** Share of all logged time in this database during the run. */
  share_pct: number;
}

const ENTRY = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[\d+\] (\S*)@(\S*) (\w+):\s+(.*)$/;
const DURATION = /^duration: ([\d.]+) ms\s+(parse|bind|execute|statement)(?: [^:]*)?: ([\s\S]*)$/;

/** The log file's current size: where the next run's slice starts. */
export function logOffset(file: string): number {
  return statSync(file).size;
}

export function readSlice(file: string, from: number, to = logOffset(file)): string {
  const length = Math.max(0, to - from);
  const buffer = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, length, from);
  } finally {
    closeSync(fd);
  }
  return buffer.toString('utf8');
}

/** Statement texts differ only in their literal lists (IN (...), VALUES rows) or whitespace: one key each. */
function normalize(text: string): string {
  return text
    .replace(/\s+/g, ' ')
    .replace(/'(?:[^']|'')*'/g, "'?'")
    .replace(/\$\d+(?:\s*,\s*\$\d+)*/g, '$n')
    .replace(/\b\d+\b/g, 'N')
    .trim();
}

export function summarizeStatements(log: string, database: string, top = 30): StatementCost[] {
  const costs = new Map<string, { phase: string; statement: string; calls: number; total: number }>();
  let current: { db: string; message: string } | undefined;
  const flush = () => {
    if (!current || current.db !== database) return;
    const match = DURATION.exec(current.message);
    if (!match) return;
    const [, ms, phase, text] = match;
    const statement = normalize(text);
    const key = `${phase} ${statement}`;
    const cost = costs.get(key) ?? { phase, statement, calls: 0, total: 0 };
    cost.calls++;
    cost.total += Number(ms);
    costs.set(key, cost);
  };
  for (const line of log.split('\n')) {
    const entry = ENTRY.exec(line);
    if (entry) {
      flush();
      // DETAIL lines (a bind's parameters) are entries of their own and carry no duration.
      current = entry[3] === 'LOG' ? { db: entry[2], message: entry[4] } : undefined;
    } else if (current) current.message += `\n${line}`;
  }
  flush();
  const all = [...costs.values()];
  const total = all.reduce((sum, c) => sum + c.total, 0) || 1;
  return all
    .sort((a, b) => b.total - a.total)
    .slice(0, top)
    .map((c) => ({
      phase: c.phase,
      statement: c.statement.length > 400 ? `${c.statement.slice(0, 400)}…` : c.statement,
      calls: c.calls,
      total_ms: Math.round(c.total),
      mean_ms: Math.round((c.total / c.calls) * 1000) / 1000,
      share_pct: Math.round((1000 * c.total) / total) / 10,
    }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, database, top] = process.argv.slice(2);
  if (!file || !database) throw new Error('usage: tsx bench/pg-statements.ts <log file> <database> [top]');
  for (const c of summarizeStatements(readFileSync(file, 'utf8'), database, Number(top ?? 30)))
    console.log(`${c.share_pct}%\t${c.total_ms} ms\t${c.calls}\t${c.mean_ms} ms\t${c.phase}\t${c.statement}`);
}
