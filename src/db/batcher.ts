import { CommitOutcomeUnknown } from './commit-outcome.js';

export interface BatcherOptions {
  /** Most items in one flush. */
  maxSize: number;
  /**
   * Most flushes in flight at once. A flush beside a running one starts only for a full batch (maxSize items);
   * otherwise new items gather into the next batch until the running flush ends.
   */
  maxConcurrency: number;
}

type Pending<I, R> = { item: I; resolve: (value: R) => void; reject: (error: unknown) => void };

/**
 * Group commit for application writes. Submissions made while the permitted flushes are busy
 * gather into the next batch, so batches grow with load by themselves: under light load an item
 * is flushed on the next turn of the event loop, under heavy load one commit carries a full batch.
 * Each caller is answered only when its batch has finished. If a flush throws as a whole, its
 * items are retried one by one (at most maxConcurrency at a time) so that a single bad item fails
 * alone. A flush must therefore throw only when nothing of the batch was written, or be safe to
 * repeat: one whose commit went unanswered finds out first (see payments/repo.ts).
 */
export class MicroBatcher<I, R> {
  private queue: Pending<I, R>[] = [];
  private scheduled = false;
  private inFlight = new Set<Promise<void>>();

  constructor(
    private readonly flush: (items: I[]) => Promise<Array<R | Error>>,
    private readonly options: BatcherOptions,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once everything submitted so far has been flushed. */
  async idle(): Promise<void> {
    while (this.queue.length || this.inFlight.size) {
      this.drain();
      await Promise.allSettled([...this.inFlight]);
    }
  }

  // Wait one turn so that submissions made by requests handled in the same turn share a batch.
  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  // A second flush for a part batch would pay a statement and a commit for a few items: measured with two
  // flushes always allowed, payment batches averaged 29 items against 46 with this rule, and the database
  // spent 15% more CPU per payment for the same throughput (see README, Benchmarks).
  private drain() {
    while (
      this.queue.length &&
      this.inFlight.size < this.options.maxConcurrency &&
      (this.inFlight.size === 0 || this.queue.length >= this.options.maxSize)
    ) {
      const batch = this.queue.splice(0, this.options.maxSize);
      const run: Promise<void> = this.run(batch).finally(() => {
        this.inFlight.delete(run);
        this.drain();
      });
      this.inFlight.add(run);
    }
  }

  private async run(batch: Pending<I, R>[]) {
    try {
      settle(batch, await this.flush(batch.map((p) => p.item)));
    } catch (error) {
      // An unknown outcome is never retried: the write may be in the database already.
      if (batch.length === 1 || error instanceof CommitOutcomeUnknown) {
        batch.forEach((pending) => pending.reject(error));
        return;
      }
      // One by one, but no more at a time than batches may run: a failed batch of 64 asking for 64
      // connections at once would starve every other request of the pool (and fail for that).
      let next = 0;
      const retryNext = async () => {
        while (next < batch.length) {
          const pending = batch[next++];
          try {
            settle([pending], await this.flush([pending.item]));
          } catch (itemError) {
            pending.reject(itemError);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.options.maxConcurrency, batch.length) }, retryNext));
    }
  }
}

function settle<I, R>(batch: Pending<I, R>[], results: Array<R | Error>) {
  batch.forEach((pending, i) => {
    const result = results[i];
    if (result instanceof Error) pending.reject(result);
    else pending.resolve(result);
  });
}
