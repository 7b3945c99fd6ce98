/** Child processes and /proc sampling for the benchmark (Linux only). */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';

export interface Child {
  name: string;
  process: ChildProcess;
  pid: number;
  /** The last lines the child wrote, for error reports. */
  tail: string[];
  /** Lines that look like warnings or errors (pino level >= 40 or "error" text). */
  problems: string[];
  exited: Promise<number | null>;
  exitCode?: number | null;
}

/** Spawns `node <args>` directly (no npx/tsx wrapper) so the pid is the process we measure. */
export function spawnNode(name: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Child {
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (!child.pid) throw new Error(`could not start ${name}`);
  const record: Child = { name, process: child, pid: child.pid, tail: [], problems: [], exited: undefined as never };
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      record.tail.push(line);
      if (record.tail.length > 60) record.tail.shift();
      if (
        /"log\.level":"(warn|error|fatal)"|"level":(40|50|60)\b|\bError\b|failed/i.test(line) &&
        record.problems.length < 50
      )
        record.problems.push(line.slice(0, 2000));
    }
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  record.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      record.exitCode = code ?? (signal ? 128 : null);
      resolve(record.exitCode);
    });
  });
  return record;
}

export async function waitReady(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== undefined)
      throw new Error(`${child.name} exited (code ${child.exitCode}) before it was ready:\n${child.tail.join('\n')}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`${child.name} was not ready at ${url} within ${timeoutMs} ms:\n${child.tail.join('\n')}`);
}

/** SIGTERM, then SIGKILL if the child has not exited in time. Only ever signals this child's pid. */
export async function stopChild(child: Child | undefined, timeoutMs = 15_000): Promise<number | null | undefined> {
  if (!child) return undefined;
  if (child.exitCode !== undefined) return child.exitCode;
  child.process.kill('SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
  if ((await Promise.race([child.exited, timer])) === 'timeout') {
    child.process.kill('SIGKILL');
    await child.exited;
  }
  return child.exitCode;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The preferred port if it is free on 127.0.0.1, else one the kernel picks. */
export async function freePort(preferred: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        const chosen = typeof address === 'object' && address ? address.port : undefined;
        server.close(() => resolve(chosen));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0))!;
}

export function rssKb(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** utime + stime of one process, in clock ticks (USER_HZ, 100 on Linux). */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** The process and its descendants (an API started with WEB_CONCURRENCY > 1 forks its API processes). */
export function treePids(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      const children = readFileSync(`/proc/${pids[i]}/task/${pids[i]}/children`, 'utf8').trim();
      if (children) pids.push(...children.split(/\s+/).map(Number));
    } catch {
      // ended meanwhile
    }
  }
  return pids;
}

/** CPU ticks of a process and its descendants alive now. */
export function treeCpuTicks(pid: number): number {
  return treePids(pid).reduce((sum, p) => sum + cpuTicks(p), 0);
}

/**
 * CPU ticks of every process named `postgres` on the machine (server, backends, walwriter…), by process id: a run's
 * share is the growth of each process alive at its end (sumDelta in run.ts). A total would drop by a whole lifetime's
 * ticks when a backend exits during the run (the previous server's pool closing), and showed negative cores.
 */
export function postgresTicks(): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
      ticks.set(Number(entry), cpuTicks(Number(entry)));
    } catch {
      // process ended meanwhile
    }
  }
  return ticks;
}

/** Whole-machine CPU: busy and total jiffies from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const numbers = values.map(Number);
  const total = numbers.reduce((a, b) => a + b, 0);
  const idle = numbers[3] + (numbers[4] ?? 0);
  return { busy: total - idle, total };
}

export const TICKS_PER_SECOND = 100;

/** Samples the RSS of a process and its descendants every intervalMs; tracks the peak overall and per window. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  peakKb = 0;
  windowPeakKb = 0;
  samples = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 200,
  ) {}

  start() {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  private sample() {
    const kb = treePids(this.pid).reduce((sum, pid) => sum + (rssKb(pid) ?? 0), 0);
    if (kb === 0) return;
    this.samples++;
    if (kb > this.peakKb) this.peakKb = kb;
    if (kb > this.windowPeakKb) this.windowPeakKb = kb;
  }

  /** Starts a new window (e.g. one scenario) and returns the previous window's peak. */
  resetWindow(): number {
    this.sample();
    const peak = this.windowPeakKb;
    this.windowPeakKb = 0;
    return peak;
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
