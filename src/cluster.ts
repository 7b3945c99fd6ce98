import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Database } from './bootstrap.js';
import type { Metrics } from './http/metrics.js';

/**
 * WEB_CONCURRENCY=N: N API processes behind one port (node:cluster; the primary accepts connections and hands them
 * round-robin to its children). The primary runs no HTTP server: it migrates, seeds the demo tenant, runs the
 * background workers (with `start`) so that they run once however many API processes there are, replaces a child
 * that dies, and sums every process's metrics for whichever child a scrape reaches.
 *
 * Messages between them (IPC, JSON; a message that arrives before its listener exists is lost, so children ask):
 *   child → primary  database-request where is the database? (answered with database)
 *   primary → child  database         where the database is (the primary may have started the embedded one)
 *   child → primary  metrics          the whole cluster's /metrics text, please (answered with metrics-text)
 *   primary → child  metrics-json     this process's registry as JSON, please (answered with metrics-json-answer)
 */
type Message =
  | { type: 'payforward:database-request' }
  | { type: 'payforward:database'; database: Omit<Database, 'embedded'> }
  | { type: 'payforward:metrics'; id: number }
  | { type: 'payforward:metrics-text'; id: number; text?: string; error?: string }
  | { type: 'payforward:metrics-json'; id: number }
  | { type: 'payforward:metrics-json-answer'; id: number; metrics: MetricJson[] };

type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

/** A child may die between being chosen and being written to: its channel is then closed and the message dropped. */
function tell(worker: Worker, message: Message) {
  if (worker.isConnected()) worker.send(message);
}

const isMessage = (value: unknown): value is Message =>
  typeof value === 'object' && value !== null && String((value as { type?: unknown }).type).startsWith('payforward:');

/** A child waits for the primary to say where the database is: it neither migrates nor starts one itself. */
export function databaseFromPrimary(timeoutMs = 60_000): Promise<Database> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the cluster primary did not send the database')), timeoutMs);
    const onMessage = (message: unknown) => {
      if (!isMessage(message) || message.type !== 'payforward:database') return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(message.database);
    };
    process.on('message', onMessage);
    process.send?.({ type: 'payforward:database-request' } satisfies Message);
  });
}

/** In a child: /metrics asks the primary for the cluster's sum, and this process answers the primary's gathering. */
export function serveClusterMetrics(metrics: Metrics, timeoutMs = 5_000) {
  const waiting = new Map<number, (answer: { text?: string; error?: string }) => void>();
  let nextId = 0;
  process.on('message', (message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === 'payforward:metrics-json') {
      void metrics.registry
        .getMetricsAsJSON()
        .then((json) =>
          process.send?.({ type: 'payforward:metrics-json-answer', id: message.id, metrics: json } satisfies Message),
        );
    } else if (message.type === 'payforward:metrics-text') {
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    }
  });
  metrics.collect = () =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the cluster primary did not answer with the metrics in time'));
      }, timeoutMs);
      waiting.set(id, (answer) => {
        clearTimeout(timer);
        if (answer.text === undefined) reject(new Error(answer.error ?? 'no metrics from the cluster primary'));
        else resolve(answer.text);
      });
      process.send?.({ type: 'payforward:metrics', id } satisfies Message);
    });
}

export interface ApiClusterOptions {
  size: number;
  database: Database;
  /** The primary's own metrics (its workers'), added to the children's. */
  metrics: Metrics;
  log: Logger;
  /**
   * API_PROCESS_START_TIMEOUT_MS: an API process that has not listened this long after its fork is killed and
   * replaced (an API process waits, for one, until its LISTEN connections are in place; see README).
   */
  startTimeoutMs: number;
}

/** The primary's side: forks, watches and stops the API processes. */
export class ApiCluster {
  private readonly children = new Set<Worker>();
  private readonly listening = new Set<Worker>();
  /** Start-up deadlines of the API processes not listening yet. */
  private readonly deadlines = new Map<Worker, NodeJS.Timeout>();
  /** API processes killed for missing their deadline: replaced, even during the start, not a start-up failure. */
  private readonly overdue = new Set<Worker>();
  private readonly recentExits: number[] = [];
  private readonly gathering = new Map<number, (metrics: MetricJson[]) => void>();
  private nextGatherId = 0;
  private stopping = false;
  private started = false;
  private failStart?: (error: Error) => void;

  constructor(private readonly options: ApiClusterOptions) {}

  /** Resolves once every child listens; rejects if one exits before it listens (a start-up failure repeats). */
  start(): Promise<void> {
    // The children run the `api` command: HTTP only, no workers, no migrations.
    cluster.setupPrimary({ args: ['api'] });
    cluster.on('message', (worker, message) => this.onMessage(worker, message));
    return new Promise((resolve, reject) => {
      this.failStart = reject;
      cluster.on('listening', (worker) => {
        // A child with METRICS_PORT listens twice (that port is shared across the children too).
        if (this.listening.has(worker)) return;
        this.listening.add(worker);
        clearTimeout(this.deadlines.get(worker));
        this.deadlines.delete(worker);
        this.options.log.info({ api_pid: worker.process.pid }, 'API process listening');
        if (!this.started && this.listening.size === this.options.size) {
          this.started = true;
          resolve();
        }
      });
      cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal));
      for (let i = 0; i < this.options.size; i++) this.fork();
    });
  }

  /** The API processes' pids. */
  pids(): number[] {
    return [...this.children].map((w) => w.process.pid!).filter(Boolean);
  }

  /** SIGTERM to every child (each finishes its in-flight requests), then waits for them to exit. */
  async stop(): Promise<void> {
    this.stopping = true;
    const exits = [...this.children].map(
      (worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))),
    );
    for (const worker of this.children) if (!worker.isDead()) worker.process.kill('SIGTERM');
    await Promise.all(exits);
  }

  private fork() {
    const worker = cluster.fork();
    this.children.add(worker);
    const { startTimeoutMs } = this.options;
    const deadline = setTimeout(() => {
      this.deadlines.delete(worker);
      if (this.stopping || worker.isDead()) return;
      this.overdue.add(worker);
      this.options.log.error(
        { api_pid: worker.process.pid, start_timeout_ms: startTimeoutMs },
        'API process not listening within API_PROCESS_START_TIMEOUT_MS; killing it and starting another',
      );
      // SIGKILL: a process stuck in its start has not installed the handler that would drain on SIGTERM.
      worker.process.kill('SIGKILL');
    }, startTimeoutMs);
    deadline.unref();
    this.deadlines.set(worker, deadline);
  }

  private onExit(worker: Worker, code: number | null, signal: string | null) {
    this.children.delete(worker);
    clearTimeout(this.deadlines.get(worker));
    this.deadlines.delete(worker);
    const killedOverdue = this.overdue.delete(worker);
    const wasListening = this.listening.delete(worker);
    if (this.stopping) return;
    const pid = worker.process.pid;
    if (!this.started && !wasListening && !killedOverdue) {
      this.failStart?.(new Error(`API process ${pid} exited (code ${code}, signal ${signal}) before it listened`));
      this.stopping = true;
      for (const other of this.children) other.process.kill('SIGTERM');
      return;
    }
    // A child that keeps dying is restarted more and more slowly rather than in a tight loop.
    const now = Date.now();
    this.recentExits.push(now);
    while (this.recentExits[0] < now - 60_000) this.recentExits.shift();
    const delayMs = this.recentExits.length <= 1 ? 0 : Math.min(30_000, 500 * 2 ** (this.recentExits.length - 2));
    this.options.log.error(
      { api_pid: pid, code, signal, restart_in_ms: delayMs },
      'API process exited; starting another in its place',
    );
    setTimeout(() => {
      if (!this.stopping) this.fork();
    }, delayMs).unref();
  }

  private onMessage(worker: Worker, message: unknown) {
    if (!isMessage(message)) return;
    if (message.type === 'payforward:database-request') {
      const { adminUrl, appUrl, workerUrl } = this.options.database;
      tell(worker, { type: 'payforward:database', database: { adminUrl, appUrl, workerUrl } });
    } else if (message.type === 'payforward:metrics-json-answer') {
      this.gathering.get(message.id)?.(message.metrics);
    } else if (message.type === 'payforward:metrics') {
      this.gatherText().then(
        (text) => tell(worker, { type: 'payforward:metrics-text', id: message.id, text }),
        (error: Error) => tell(worker, { type: 'payforward:metrics-text', id: message.id, error: error.message }),
      );
    }
  }

  /**
   * Every live process's registry, summed (counters, histograms and gauges add up; prom-client's process metrics say
   * how they combine, e.g. event-loop lag is averaged). A child that does not answer within a second is left out
   * rather than holding the scrape.
   */
  private async gatherText(): Promise<string> {
    const own = await this.options.metrics.registry.getMetricsAsJSON();
    const children = await Promise.all(
      [...this.listening].map(
        (worker) =>
          new Promise<MetricJson[] | undefined>((resolve) => {
            const id = this.nextGatherId++;
            const timer = setTimeout(() => {
              this.gathering.delete(id);
              resolve(undefined);
            }, 1000);
            this.gathering.set(id, (metrics) => {
              clearTimeout(timer);
              this.gathering.delete(id);
              resolve(metrics);
            });
            tell(worker, { type: 'payforward:metrics-json', id });
          }),
      ),
    );
    const all = [own, ...children.filter((m): m is MetricJson[] => m !== undefined)];
    return AggregatorRegistry.aggregate(all).metrics();
  }
}
