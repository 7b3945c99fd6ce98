export interface BatcherOptions {
  maxWaitMs: number;
  maxSize: number;
}

type Pending<I, R> = { item: I; resolve: (value: R) => void; reject: (error: unknown) => void };

/**
 * Collects concurrent submissions for up to maxWaitMs (or maxSize items) and hands them to one
 * flush, which returns one result or Error per item. Each caller is answered only when its batch
 * has finished. If a flush throws as a whole, the items are retried one by one so that a single
 * bad item fails alone instead of taking its batch down with it.
 */
export class MicroBatcher<I, R> {
  private queue: Pending<I, R>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = new Set<Promise<void>>();

  constructor(
    private readonly flush: (items: I[]) => Promise<Array<R | Error>>,
    private readonly options: BatcherOptions,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.options.maxSize) this.drain();
      else if (!this.timer) this.timer = setTimeout(() => this.drain(), this.options.maxWaitMs);
    });
  }

  /** Resolves once everything submitted so far has been flushed. */
  async idle(): Promise<void> {
    this.drain();
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  private drain() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.queue.length) return;
    const batch = this.queue;
    this.queue = [];
    const run = this.run(batch).finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }

  private async run(batch: Pending<I, R>[]) {
    try {
      settle(batch, await this.flush(batch.map((p) => p.item)));
    } catch (error) {
      if (batch.length === 1) {
        batch[0].reject(error);
        return;
      }
      await Promise.all(
        batch.map(async (pending) => {
          try {
            settle([pending], await this.flush([pending.item]));
          } catch (itemError) {
            pending.reject(itemError);
          }
        }),
      );
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
