import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../http/metrics.js';
import { separately, WorkerItems } from './isolation.js';

// The runner's own logic with an injected clock; test/worker-isolation.test.ts drives it through the
// real workers against a failing tenant.

function runner(base = 1_000, max = 8_000) {
  let now = 0;
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  const metrics = new Metrics(false);
  const items = new WorkerItems(
    'test-loop',
    { baseDelayMs: base, maxDelayMs: max },
    log,
    metrics.workerItemFailures,
    () => now,
  );
  const failuresCounted = async () =>
    (await metrics.workerItemFailures.get()).values.find((v) => v.labels.worker === 'test-loop')?.value ?? 0;
  return { items, lines, failuresCounted, at: (ms: number) => (now = ms) };
}

describe('WorkerItems', () => {
  it('goes on past a failing item, logs and counts it, and retries it only after a doubling delay', async () => {
    const { items, lines, failuresCounted, at } = runner();
    let broken = true;
    const tried: string[] = [];
    const pass = () =>
      items.each(
        ['a', 'bad', 'c'],
        (id) => id,
        async (id) => {
          tried.push(id);
          if (id === 'bad' && broken) throw new Error('refused for bad');
          return true;
        },
      );

    expect(await pass()).toBe(2);
    expect(tried).toEqual(['a', 'bad', 'c']);
    expect(await failuresCounted()).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ worker: 'test-loop', item: 'bad', failures: 1, retry_in_ms: 1_000 });
    expect(JSON.stringify(lines[0])).toContain('refused for bad');
    expect(items.waiting).toBe(1);

    // Within its delay the failed item is skipped; the others still run.
    tried.length = 0;
    at(999);
    expect(await pass()).toBe(2);
    expect(tried).toEqual(['a', 'c']);

    // Due again: tried, fails, and now waits twice as long.
    tried.length = 0;
    at(1_000);
    await pass();
    expect(tried).toEqual(['a', 'bad', 'c']);
    expect(lines[1]).toMatchObject({ item: 'bad', failures: 2, retry_in_ms: 2_000 });
    at(2_999);
    tried.length = 0;
    await pass();
    expect(tried).not.toContain('bad');

    // The delay stops growing at the maximum.
    for (const [time, delay] of [
      [3_000, 4_000],
      [7_000, 8_000],
      [15_000, 8_000],
    ]) {
      at(time);
      await pass();
      expect(lines.at(-1)).toMatchObject({ item: 'bad', retry_in_ms: delay });
    }
    expect(await failuresCounted()).toBe(5);

    // Once it works it is done with, and its backoff forgotten.
    broken = false;
    at(23_000);
    tried.length = 0;
    expect(await pass()).toBe(3);
    expect(tried).toEqual(['a', 'bad', 'c']);
    expect(items.waiting).toBe(0);
    expect(await failuresCounted()).toBe(5);
  });

  it('separately tries every item and then throws the failures together', async () => {
    const tried: number[] = [];
    const failing = separately('numbers').each([1, 2, 3], String, async (n) => {
      tried.push(n);
      if (n === 2) throw new Error('two is refused');
      return true;
    });
    await expect(failing).rejects.toThrow('1 of 3 numbers failed: two is refused');
    expect(tried).toEqual([1, 2, 3]);
  });
});
