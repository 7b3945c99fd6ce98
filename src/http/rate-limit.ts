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

/** Fixed windows counted in process: right for a single API process without Redis. */
export class InProcessRateLimiter implements RateLimiter {
  private windows = new Map<string, number>();
  private windowStart = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async hit(buckets: Array<{ key: string; limit: number }>, windowMs: number): Promise<RateLimitDecision> {
    const now = this.now();
    const start = now - (now % windowMs);
    if (start !== this.windowStart) {
      this.windows = new Map();
      this.windowStart = start;
    }
    const counts = buckets.map(({ key }) => {
      const count = (this.windows.get(key) ?? 0) + 1;
      this.windows.set(key, count);
      return count;
    });
    return decide(counts, buckets, start + windowMs - now);
  }
}

/** Fixed windows in Redis, shared by every API process: INCR and PEXPIRE in one round trip. */
export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly now: () => number = Date.now,
  ) {}

  async hit(buckets: Array<{ key: string; limit: number }>, windowMs: number): Promise<RateLimitDecision> {
    const now = this.now();
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
