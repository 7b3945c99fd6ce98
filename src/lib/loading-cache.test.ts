import { describe, expect, it } from 'vitest';
import { LoadingCache } from './loading-cache.js';

describe('LoadingCache', () => {
  it('shares one load among concurrent callers of a key, and keeps keys apart', async () => {
    const cache = new LoadingCache<string>();
    let loads = 0;
    // Every load waits for this gate, so all 51 callers ask while the loads are still in progress.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const load = (value: string) => async () => {
      loads++;
      await gate;
      return value;
    };
    const pending = [...Array.from({ length: 50 }, () => cache.get('a', load('A'))), cache.get('b', load('B'))];
    open();
    const values = await Promise.all(pending);
    expect(values.slice(0, 50).every((v) => v === 'A')).toBe(true);
    expect(values[50]).toBe('B');
    expect(loads).toBe(2);
  });

  it('forgets a failed load, so the next caller tries again', async () => {
    const cache = new LoadingCache<number>();
    await expect(cache.get('k', () => Promise.reject(new Error('database down')))).rejects.toThrow('database down');
    expect(await cache.get('k', async () => 7)).toBe(7);
  });

  it('peeks without loading', async () => {
    const cache = new LoadingCache<number>();
    expect(cache.peek('k')).toBeUndefined();
    await cache.get('k', async () => 5);
    expect(await cache.peek('k')).toBe(5);
  });

  it('reloads after the time to live, after delete and after clear', async () => {
    let now = 1_000;
    const cache = new LoadingCache<number>(20, 100, () => now);
    let n = 0;
    const next = async () => ++n;
    expect(await cache.get('k', next)).toBe(1);
    now += 19;
    expect(await cache.get('k', next)).toBe(1);
    expect(await cache.peek('k')).toBe(1);
    now += 1;
    expect(cache.peek('k')).toBeUndefined();
    expect(await cache.get('k', next)).toBe(2);
    cache.delete('k');
    expect(await cache.get('k', next)).toBe(3);
    cache.clear();
    expect(await cache.get('k', next)).toBe(4);
  });
});
