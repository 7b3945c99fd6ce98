import type { FastifyBaseLogger } from 'fastify';
import type { Counter } from 'prom-client';

/**
 * How a worker pass runs its items (a payment, a payout, a settlement group…): each on its own, so
 * one that fails never stops the pass or delays the others.
 */
export interface ItemRunner {
  /**
   * Items currently waiting out a backoff. A pass whose scan is limited asks for this many more
   * rows, so that items it is going to skip cannot fill the page and starve the others.
   */
  readonly waiting: number;
  /** Runs work for each item in turn; resolves with how many returned true. */
  each<T>(items: Iterable<T>, key: (item: T) => string, work: (item: T) => Promise<boolean>): Promise<number>;
}

/**
 * For a pass called directly (a test, a command): every item is tried, and the failures are
 * thrown together at the end, named by `what` (e.g. "payouts"), so the caller sees them.
 */
export function separately(what = 'items'): ItemRunner {
  return {
    waiting: 0,
    async each(items, _key, work) {
      let done = 0;
      let count = 0;
      const failures: Error[] = [];
      for (const item of items) {
        count++;
        try {
          if (await work(item)) done++;
        } catch (error) {
          failures.push(error instanceof Error ? error : new Error(String(error)));
        }
      }
      if (failures.length)
        throw new AggregateError(failures, `${failures.length} of ${count} ${what} failed: ${failures[0].message}`, {
          cause: failures[0],
        });
      return done;
    },
  };
}

export interface RetryPolicy {
  /** Delay before the first retry of a failed item; it doubles with each further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * The worker's runner for one loop: a failed item is logged, counted in
 * worker_item_failures_total{worker}, and skipped by the passes until its delay has passed (base,
 * doubling per consecutive failure, up to the maximum), then tried again; it is never given up.
 * The backoff is kept in this process: several worker processes each back off on their own.
 */
export class WorkerItems implements ItemRunner {
  private readonly failing = new Map<string, { failures: number; retryAt: number }>();

  constructor(
    private readonly worker: string,
    private readonly policy: RetryPolicy,
    private readonly log: FastifyBaseLogger,
    private readonly failures: Counter<'worker'>,
    private readonly now: () => number = Date.now,
  ) {}

  get waiting(): number {
    const now = this.now();
    let waiting = 0;
    for (const { retryAt } of this.failing.values()) if (retryAt > now) waiting++;
    return waiting;
  }

  async each<T>(items: Iterable<T>, key: (item: T) => string, work: (item: T) => Promise<boolean>): Promise<number> {
    this.forgetVanished();
    let done = 0;
    for (const item of items) {
      const id = key(item);
      const failed = this.failing.get(id);
      if (failed && failed.retryAt > this.now()) continue;
      try {
        if (await work(item)) done++;
        this.failing.delete(id);
      } catch (error) {
        const failures = (failed?.failures ?? 0) + 1;
        const delay = Math.min(this.policy.baseDelayMs * 2 ** (failures - 1), this.policy.maxDelayMs);
        this.failing.set(id, { failures, retryAt: this.now() + delay });
        this.failures.inc({ worker: this.worker });
        this.log.error(
          { err: error, worker: this.worker, item: id, failures, retry_in_ms: delay },
          'worker item failed; it is retried after a delay',
        );
      }
    }
    return done;
  }

  // An item whose retry has been due for a whole maximum delay without being seen again was done
  // by another worker or no longer qualifies: forgetting it keeps the map from growing forever.
  private forgetVanished() {
    const before = this.now() - this.policy.maxDelayMs;
    for (const [id, { retryAt }] of this.failing) if (retryAt < before) this.failing.delete(id);
  }
}
