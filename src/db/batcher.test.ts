import { describe, expect, it } from 'vitest';
import { MicroBatcher } from './batcher.js';
import { CommitOutcomeUnknown } from './commit-outcome.js';

// The batcher alone, with a flush standing in for the database: a batch containing the poisoned
// item fails as a whole, as a statement with one bad row does.

describe('MicroBatcher', () => {
  it('after a whole-batch failure retries the items one by one, never more at once than maxConcurrency', async () => {
    let running = 0;
    let peak = 0;
    const batcher = new MicroBatcher<number, number>(
      async (items) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setImmediate(resolve));
        running--;
        if (items.includes(13)) throw new Error('item 13 is refused');
        return items.map((n) => n * 2);
      },
      { maxSize: 64, maxConcurrency: 3 },
    );
    const results = await Promise.allSettled(Array.from({ length: 64 }, (_, n) => batcher.submit(n)));
    expect(peak).toBeLessThanOrEqual(3);
    expect(results[13]).toMatchObject({ status: 'rejected', reason: new Error('item 13 is refused') });
    expect(results.filter((r) => r.status === 'fulfilled').map((r) => r.value)).toEqual(
      Array.from({ length: 64 }, (_, n) => n * 2).filter((n) => n !== 26),
    );
  });

  it('starts a flush beside a running one only for a full batch: below that, items gather into the next', async () => {
    const batches: number[][] = [];
    const gates: Array<() => void> = [];
    const batcher = new MicroBatcher<number, number>(
      async (items) => {
        batches.push(items);
        await new Promise<void>((resolve) => gates.push(resolve));
        return items;
      },
      { maxSize: 4, maxConcurrency: 2 },
    );
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const submitted = [batcher.submit(1)];
    await turn();
    expect(batches).toEqual([[1]]);
    submitted.push(batcher.submit(2), batcher.submit(3), batcher.submit(4));
    await turn();
    expect(batches).toEqual([[1]]);
    submitted.push(batcher.submit(5));
    await turn();
    expect(batches).toEqual([[1], [2, 3, 4, 5]]);
    submitted.push(batcher.submit(6));
    await turn();
    expect(batches).toHaveLength(2);
    gates.shift()!();
    await submitted[0];
    await turn();
    expect(batches).toHaveLength(2);
    gates.shift()!();
    await Promise.all(submitted.slice(1, 5));
    await turn();
    expect(batches).toEqual([[1], [2, 3, 4, 5], [6]]);
    gates.shift()!();
    await expect(Promise.all(submitted)).resolves.toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('does not retry a batch whose commit went unanswered: its items may be written already', async () => {
    let flushes = 0;
    const batcher = new MicroBatcher<number, number>(
      async () => {
        flushes++;
        throw new CommitOutcomeUnknown(4242, new Error('connection lost'));
      },
      { maxSize: 8, maxConcurrency: 2 },
    );
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.submit(n)));
    expect(flushes).toBe(1);
    for (const result of results) expect(result).toMatchObject({ status: 'rejected' });
    expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(CommitOutcomeUnknown);
  });
});
