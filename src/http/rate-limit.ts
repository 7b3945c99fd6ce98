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
  /** Decides on a bucket without counting a request against it. */
  peek(bucket: { key: string; limit: number }, windowMs: number): Promise<RateLimitDecision>;
  close?(): Promise<void>;
}

function decide(
  counts: number[],
  buckets: Array<{ limit: number }>,
  resetMs: number,
  counted = true,
): RateLimitDecision {
  // A plain loop that allocates only the answer: every API request takes two or three decisions.
  let allowed = true;
  let limit = Infinity;
  let remaining = Infinity;
  for (let i = 0; i < buckets.length; i++) {
    const bucketLimit = buckets[i].limit;
    const bucketRemaining = Math.max(0, bucketLimit - counts[i]);
    // A peek asks whether one more would pass; a hit has already counted itself.
    const bucketAllowed = counted ? counts[i] <= bucketLimit : counts[i] < bucketLimit;
    if (!bucketAllowed || bucketRemaining < remaining) {
      allowed &&= bucketAllowed;
      limit = bucketLimit;
      remaining = bucketRemaining;
    }
  }
  return { allowed, limit, remaining, resetMs };
}

/**
 * Fixed windows counted in process: right for a single API process without Redis. Each window
 * length keeps its own counts, so a per-second limit turning over never resets a per-minute one.
 */
export class InProcessRateLimiter implements RateLimiter {
  // One set of fixed windows per window length: the per-address and auth-failure limits use their own.
  private readonly byLength = new Map<number, { start: number; counts: Map<string, number> }>();

  constructor(private readonly now: () => number = Date.now) {}

  private window(windowMs: number, now: number) {
    const start = now - (now % windowMs);
    let window = this.byLength.get(windowMs);
    if (!window || window.start !== start) {
      window = { start, counts: new Map() };
      this.byLength.set(windowMs, window);
    }
    return window;
  }

  async hit(buckets: Array<{ key: string; limit: number }>, windowMs: number): Promise<RateLimitDecision> {
    const now = this.now();
    const window = this.window(windowMs, now);
    const counts = buckets.map(({ key }) => {
      const count = (window.counts.get(key) ?? 0) + 1;
      window.counts.set(key, count);
      return count;
    });
    return decide(counts, buckets, window.start + windowMs - now);
  }

  async peek(bucket: { key: string; limit: number }, windowMs: number): Promise<RateLimitDecision> {
    const now = this.now();
    const window = this.window(windowMs, now);
    return decide([window.counts.get(bucket.key) ?? 0], [bucket], window.start + windowMs - now, false);
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

  async peek(bucket: { key: string; limit: number }, windowMs: number): Promise<RateLimitDecision> {
    const now = this.now();
    const windowIndex = Math.floor(now / windowMs);
    const count = Number((await this.redis.get(`rl:${bucket.key}:${windowIndex}`)) ?? 0);
    return decide([count], [bucket], (windowIndex + 1) * windowMs - now, false);
  }
}

/**
 * Redis while it answers, in-process counting while it does not: a rate limiter must never turn a
 * Redis outage into failed requests. Each process then limits on its own (a looser limit across
 * several processes) until Redis is back, which ioredis notices by reconnecting in the background.
 */
export class ResilientRateLimiter implements RateLimiter {
  private readonly redisLimiter: RedisRateLimiter;
  private readonly local: InProcessRateLimiter;

  constructor(
    private readonly redis: Redis,
    /** Called for each decision taken in process while Redis is configured (for a metric). */
    private readonly onFallback: () => void,
    now: () => number = Date.now,
  ) {
    this.redisLimiter = new RedisRateLimiter(redis, now);
    this.local = new InProcessRateLimiter(now);
  }

  hit(buckets: Array<{ key: string; limit: number }>, windowMs: number): Promise<RateLimitDecision> {
    return this.either(
      () => this.redisLimiter.hit(buckets, windowMs),
      () => this.local.hit(buckets, windowMs),
    );
  }

  peek(bucket: { key: string; limit: number }, windowMs: number): Promise<RateLimitDecision> {
    return this.either(
      () => this.redisLimiter.peek(bucket, windowMs),
      () => this.local.peek(bucket, windowMs),
    );
  }

  private async either(
    shared: () => Promise<RateLimitDecision>,
    local: () => Promise<RateLimitDecision>,
  ): Promise<RateLimitDecision> {
    // Not connected: commands would wait in ioredis's queue for a reconnection; count here instead.
    if (this.redis.status === 'ready') {
      try {
        return await shared();
      } catch {
        // Timed out or lost mid-command: this one is counted here, and so is the next until Redis is back.
      }
    }
    this.onFallback();
    return local();
  }
}
