import postgres from 'postgres';
import { MicroBatcher, type BatcherOptions } from './batcher.js';
import { scopedPageRead, scopedRead, type Scope, type Sql, type Tx } from './index.js';

/**
 * Reads of one kind that concurrent requests share one query for (payments by id, balances by scope): given a batch's
 * inputs, it sends its query at once (before its first await) and answers each input, in order; an Error answers that
 * input alone. Its query sees every scope of the batch, so it must hand each input only its own scope's rows.
 */
export type ReadCombiner<I, R> = (tx: Tx, inputs: I[]) => Promise<Array<R | Error>>;

type BatchedRead =
  | { scope: Scope; page: (tx: Tx) => Promise<unknown> }
  | { scope: Scope; combiner: ReadCombiner<unknown, unknown>; input: unknown };

/**
 * The reads of concurrent requests (retrieves, balances, list pages) in one transaction and one round trip: BEGIN, the
 * union of their scopes, one query per kind of combined read, each page's queries, and COMMIT, sent as one socket
 * write. A list's page used to cost a transaction of its own (reserving a connection, BEGIN, the scope, COMMIT: about
 * a fifth of a list's API time); beside the retrieves of the same turn it costs only its own queries. Reads draw on
 * their own pool (DB_READ_POOL_SIZE), so they never wait on the write batches' connections.
 */
export class ReadBatcher {
  private readonly batcher: MicroBatcher<BatchedRead, unknown>;

  constructor(sql: Sql, options: BatcherOptions) {
    this.batcher = new MicroBatcher((reads) => flushReads(sql, reads), options);
  }

  read<I, R>(combiner: ReadCombiner<I, R>, scope: Scope, input: I): Promise<R> {
    return this.batcher.submit({ scope, combiner: combiner as ReadCombiner<unknown, unknown>, input }) as Promise<R>;
  }

  /**
   * A list's page (see Reads.page). Its queries must name the scope's tenant and mode themselves: row-level security
   * limits the shared transaction to the batch's scopes, which may be other tenants'.
   */
  page<T>(scope: Scope, query: (tx: Tx) => Promise<T>): Promise<T> {
    return this.batcher.submit({ scope, page: query }) as Promise<T>;
  }

  idle(): Promise<void> {
    return this.batcher.idle();
  }
}

async function flushReads(sql: Sql, reads: BatchedRead[]): Promise<unknown[]> {
  const scopes = reads.map((read) => read.scope);
  // A page needs the planner settings that keep it an index walk in list order (scopedPageRead); the combined reads
  // are key lookups, planned the same under them.
  const read = reads.some((item) => 'page' in item) ? scopedPageRead : scopedRead;
  const answers = await read(sql, scopes, (tx) => {
    const answers: unknown[] = new Array(reads.length);
    const groups = new Map<ReadCombiner<unknown, unknown>, number[]>();
    const pages: number[] = [];
    reads.forEach((item, i) => {
      if ('page' in item) pages.push(i);
      else if (groups.has(item.combiner)) groups.get(item.combiner)!.push(i);
      else groups.set(item.combiner, [i]);
    });
    // The combined reads first: a page's failing query aborts the transaction for what follows it, not for them.
    const sent: Promise<unknown>[] = [...groups].map(([combiner, indexes]) =>
      combiner(
        tx,
        indexes.map((i) => (reads[i] as { input: unknown }).input),
      ).then((values) => indexes.forEach((index, k) => (answers[index] = values[k]))),
    );
    for (const i of pages)
      sent.push(
        (reads[i] as { page: (tx: Tx) => Promise<unknown> }).page(tx).then(
          (value) => (answers[i] = value),
          (error: unknown) => (answers[i] = error instanceof Error ? error : new Error(String(error))),
        ),
      );
    return Promise.all(sent).then(() => answers);
  });
  // A query that failed aborted the transaction, and the reads queued after it failed with it: thrown, the batch is
  // read again one by one (MicroBatcher), so that only the read at fault fails.
  const failed = reads.length > 1 && answers.find((answer) => answer instanceof postgres.PostgresError);
  if (failed) throw failed;
  return answers;
}
