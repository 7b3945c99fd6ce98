import type { Redis } from 'ioredis';

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  resetMs: number;
}

export interface RateLimiter {
  /** Counts one request against every bucket; the tightest bucket decides. */
  hit(buckets: Array<{ key: string; limit: number }>, windowMs: number): Promise<RateLimitDecision>;
  close?(): Promise<void>;
}

function decide(counts: number[], buckets: Array<{ limit: number }>, resetMs: number): RateLimitDecision {
  let tightest: RateLimitDecision = { allowed: true, limit: Infinity, remaining: Infinity, resetMs };
  buckets.forEach((bucket, i) => {
    const remaining = Math.max(0, bucket.limit - counts[i]);
    const allowed = counts[i] <= bucket.limit;
    if (!allowed || remaining < tightest.remaining)
      tightest = { allowed: tightest.allowed && allowed, limit: bucket.limit, remaining, resetMs };
  });
  return tightest;
}

/**
 * Fixed windows counted in process: right for a single API process without Redis. Each window
 * length keeps its own counts, so a per-second limit turning over never resets a per-minute one.
 */
export class InProcessRateLimiter implements RateLimiter {
  private readonly windows = new Map<number, { start: number; counts: Map<string, number> }>();

  async hit(buckets: Array<{ key: string; limit: number }>, windowMs: number): Promise<RateLimitDecision> {
    const now = Date.now();
    const start = now - (now % windowMs);
    let window = this.windows.get(windowMs);
    if (window?.start !== start) {
      window = { start, counts: new Map() };
      this.windows.set(windowMs, window);
    }
    const counts = buckets.map(({ key }) => {
      const count = (window.counts.get(key) ?? 0) + 1;
      window.counts.set(key, count);
      return count;
    });
    return decide(counts, buckets, start + windowMs - now);
  }
}

/** Fixed windows in Redis, shared by every API process: INCR and PEXPIRE in one round trip. */
export class RedisRateLimiter implements RateLimiter {
  constructor(private readonly redis: Redis) {}

  async hit(buckets: Array<{ key: string; limit: number }>, windowMs: number): Promise<RateLimitDecision> {
    const now = Date.now();
    const windowIndex = Math.floor(now / windowMs);
    const pipeline = this.redis.multi();
    for (const { key } of buckets) {
      const redisKey = `rl:${key}:${windowIndex}`;
      pipeline.incr(redisKey).pexpire(redisKey, windowMs * 2);
    }
    const replies = (await pipeline.exec()) ?? [];
    const counts = buckets.map((_, i) => Number(replies[i * 2]?.[1] ?? 0));
    return decide(counts, buckets, (windowIndex + 1) * windowMs - now);
  }

  async close() {
    await this.redis.quit();
  }
}
