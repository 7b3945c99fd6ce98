import type { VelocitySnapshot } from './signals.js';

// The training pipeline's velocity store, and the live in-process one: the same snapshot the Redis
// store computes, from a stream where each payment sees only the payments recorded before it.
//
// Counts and sums are kept in time buckets, so a payment's cost does not grow with its key's history:
// the 1 h window is the current minute bucket and the 59 before it, the 24 h and 7 d windows the
// current hour bucket and the 23 (167) before it. A window therefore covers between (n - 1) and n
// bucket widths: a payment a few seconds over 59 minutes old may already have left the 1 h count,
// never one older than 60 minutes. Distinct cards, countries and tenants are exact sliding windows
// (each value scored by when it was last seen), as is the time since the card was last seen.

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
export const WEEK = 7 * DAY;

/** How many buckets of each width the windows span; shared with the Redis script. */
export const MINUTE_BUCKETS = HOUR / MINUTE;
export const DAY_BUCKETS = DAY / HOUR;
export const WEEK_BUCKETS = WEEK / HOUR;

/** One payment of the stream, as the velocity store needs it. */
export interface VelocityEvent {
  time: number; // ms since epoch
  tenant: string;
  customer: string | null;
  email: string | null;
  card: string | null;
  ip: string | null;
  ipCountry: string | null;
  amount: number;
}

interface Bucket {
  index: number;
  count: number;
  sum: number;
}

/** Non-empty buckets of one width, oldest first, at most `span` of them. */
class BucketSeries {
  private buckets: Bucket[] = [];

  constructor(
    private readonly width: number,
    private readonly span: number,
  ) {}

  add(time: number, amount: number): void {
    const index = Math.floor(time / this.width);
    // Payments arrive nearly in time order: the bucket is the last one, or close to the end.
    let i = this.buckets.length - 1;
    while (i >= 0 && this.buckets[i]!.index > index) i--;
    if (i >= 0 && this.buckets[i]!.index === index) {
      this.buckets[i]!.count++;
      this.buckets[i]!.sum += amount;
    } else {
      this.buckets.splice(i + 1, 0, { index, count: 1, sum: amount });
    }
    const newest = this.buckets.at(-1)!.index;
    let stale = 0;
    while (stale < this.buckets.length && this.buckets[stale]!.index <= newest - this.span) stale++;
    if (stale) this.buckets.splice(0, stale);
  }

  /** Count and sum of the buckets among the `n` up to now's own. */
  total(now: number, n: number): { count: number; sum: number } {
    const oldest = Math.floor(now / this.width) - n;
    let count = 0;
    let sum = 0;
    for (let i = this.buckets.length - 1; i >= 0; i--) {
      const bucket = this.buckets[i]!;
      if (bucket.index <= oldest) break;
      count += bucket.count;
      sum += bucket.sum;
    }
    return { count, sum };
  }
}

/** A key's counts and sums by minute and by hour, and when it was last seen. */
class Activity {
  readonly minutes = new BucketSeries(MINUTE, MINUTE_BUCKETS);
  readonly hours = new BucketSeries(HOUR, WEEK_BUCKETS);
  last = -Infinity;

  add(time: number, amount: number): void {
    this.minutes.add(time, amount);
    this.hours.add(time, amount);
    if (time > this.last) this.last = time;
  }
}

interface Totals {
  count1h: number;
  count24h: number;
  count7d: number;
  sum1h: number;
  sum24h: number;
  sum7d: number;
  /** Time of the key's latest payment within 7 days, or null. */
  last: number | null;
}

function totals(activity: Activity | undefined, now: number): Totals {
  if (!activity) return { count1h: 0, count24h: 0, count7d: 0, sum1h: 0, sum24h: 0, sum7d: 0, last: null };
  const hour = activity.minutes.total(now, MINUTE_BUCKETS);
  const day = activity.hours.total(now, DAY_BUCKETS);
  const week = activity.hours.total(now, WEEK_BUCKETS);
  return {
    count1h: hour.count,
    count24h: day.count,
    count7d: week.count,
    sum1h: hour.sum,
    sum24h: day.sum,
    sum7d: week.sum,
    last: activity.last > now - WEEK ? activity.last : null,
  };
}

/**
 * How many distinct values were seen in each of a few sliding windows (value last seen after
 * now - window), in amortized constant time per payment: a log of sightings in time order, one
 * head per window, and each value's latest sighting. A sighting leaving a window lowers its count
 * only if it is still its value's latest. Times are taken as non-decreasing (a late one counts as
 * the latest seen): the stream is time-ordered, and live decisions are within milliseconds.
 */
class DistinctWindows {
  private log: { time: number; value: string }[] = [];
  /** Absolute index of log[0]: indices stay valid when the front of the log is dropped. */
  private base = 0;
  private readonly latest = new Map<string, number>();
  private readonly heads: number[];
  private readonly counts: number[];
  /** The latest sighting's time. */
  newest = -Infinity;

  constructor(private readonly windows: readonly number[]) {
    this.heads = windows.map(() => 0);
    this.counts = windows.map(() => 0);
  }

  private advance(now: number): void {
    const end = this.base + this.log.length;
    const longest = this.windows.length - 1;
    this.windows.forEach((window, w) => {
      while (this.heads[w]! < end && this.log[this.heads[w]! - this.base]!.time <= now - window) {
        const { value } = this.log[this.heads[w]! - this.base]!;
        if (this.latest.get(value) === this.heads[w]) {
          this.counts[w]!--;
          if (w === longest) this.latest.delete(value);
        }
        this.heads[w]!++;
      }
    });
    const dropped = this.heads[longest]! - this.base;
    if (dropped > 1024 && dropped * 2 > this.log.length) {
      this.log = this.log.slice(dropped);
      this.base += dropped;
    }
  }

  /** Distinct values seen in window `w` (an index into the constructor's windows, longest last). */
  count(now: number, w: number): number {
    this.advance(now);
    return this.counts[w]!;
  }

  has(now: number, w: number, value: string): boolean {
    this.advance(now);
    const at = this.latest.get(value);
    return at !== undefined && at >= this.heads[w]!;
  }

  add(time: number, value: string): void {
    this.newest = Math.max(this.newest, time);
    this.advance(this.newest);
    const previous = this.latest.get(value);
    this.heads.forEach((head, w) => {
      if (previous === undefined || previous < head) this.counts[w]!++;
    });
    this.latest.set(value, this.base + this.log.length);
    this.log.push({ time: this.newest, value });
  }
}

const SWEEP_EVERY = 100_000;

interface KeyState {
  activity: Activity;
  /** Cards seen with an IP (1 h, 24 h) or a customer (24 h, 7 d). */
  cards?: DistinctWindows;
  /** IP countries a customer paid from in 7 d. */
  countries?: DistinctWindows;
}

/**
 * Computes each payment's VelocitySnapshot from the payments recorded before it. Call snapshot(event)
 * then record(event), in time order.
 */
export class VelocityTracker {
  private readonly byKey = new Map<string, KeyState>();
  private readonly cardTenants = new Map<string, DistinctWindows>();
  private recordedSinceSweep = 0;

  snapshot(event: VelocityEvent): VelocitySnapshot {
    const now = event.time;
    const card = this.state('card', event.tenant, event.card);
    const ip = this.state('ip', event.tenant, event.ip);
    const customer = this.state('customer', event.tenant, event.customer);
    const c = totals(card?.activity, now);
    const e = totals(this.state('email', event.tenant, event.email)?.activity, now);
    const i = totals(ip?.activity, now);
    const u = totals(customer?.activity, now);
    const tenants = event.card === null ? undefined : this.cardTenants.get(event.card);
    return {
      card_count_1h: c.count1h,
      card_count_24h: c.count24h,
      card_count_7d: c.count7d,
      card_sum_1h: c.sum1h,
      card_sum_24h: c.sum24h,
      card_sum_7d: c.sum7d,
      email_count_1h: e.count1h,
      email_count_24h: e.count24h,
      email_count_7d: e.count7d,
      email_sum_24h: e.sum24h,
      ip_count_1h: i.count1h,
      ip_count_24h: i.count24h,
      ip_count_7d: i.count7d,
      ip_sum_24h: i.sum24h,
      customer_count_1h: u.count1h,
      customer_count_24h: u.count24h,
      customer_count_7d: u.count7d,
      customer_sum_24h: u.sum24h,
      customer_sum_7d: u.sum7d,
      ip_distinct_cards_1h: ip?.cards?.count(now, 0) ?? 0,
      ip_distinct_cards_24h: ip?.cards?.count(now, 1) ?? 0,
      customer_distinct_cards_24h: customer?.cards?.count(now, 0) ?? 0,
      customer_distinct_cards_7d: customer?.cards?.count(now, 1) ?? 0,
      customer_new_ip_country:
        customer && event.ipCountry !== null && u.count7d > 0 && !customer.countries!.has(now, 0, event.ipCountry)
          ? 1
          : 0,
      card_distinct_tenants_24h: tenants?.count(now, 0) ?? 0,
      seconds_since_card_last_seen: c.last === null ? -1 : (now - c.last) / 1000,
    };
  }

  record(event: VelocityEvent): void {
    const { time, amount, tenant, card } = event;
    for (const [kind, value] of [
      ['card', card],
      ['email', event.email],
      ['ip', event.ip],
      ['customer', event.customer],
    ] as const) {
      if (value === null) continue;
      const key = `${kind}\u0000${tenant}\u0000${value}`;
      let state = this.byKey.get(key);
      if (!state) {
        state = { activity: new Activity() };
        if (kind === 'ip') state.cards = new DistinctWindows([HOUR, DAY]);
        if (kind === 'customer') {
          state.cards = new DistinctWindows([DAY, WEEK]);
          state.countries = new DistinctWindows([WEEK]);
        }
        this.byKey.set(key, state);
      }
      state.activity.add(time, amount);
      if (card !== null) state.cards?.add(time, card);
      if (event.ipCountry !== null) state.countries?.add(time, event.ipCountry);
    }
    if (card !== null) {
      let tenants = this.cardTenants.get(card);
      if (!tenants) this.cardTenants.set(card, (tenants = new DistinctWindows([DAY])));
      tenants.add(time, tenant);
    }
    if (++this.recordedSinceSweep >= SWEEP_EVERY) this.sweep(time);
  }

  /**
   * Forgets keys with nothing left in any window, so that a long-running process (the store without
   * Redis) holds a week of keys, not every key it ever saw. Every SWEEP_EVERY payments, one pass over
   * the keys: amortized constant per payment as long as keys are fewer than that many times the rate.
   */
  private sweep(now: number): void {
    this.recordedSinceSweep = 0;
    for (const [key, state] of this.byKey) if (state.activity.last <= now - WEEK) this.byKey.delete(key);
    for (const [card, tenants] of this.cardTenants) if (tenants.newest <= now - DAY) this.cardTenants.delete(card);
  }

  /** Keys held (activity and platform-wide card keys): what a sweep bounds. */
  get size(): number {
    return this.byKey.size + this.cardTenants.size;
  }

  private state(kind: string, tenant: string, value: string | null): KeyState | undefined {
    if (value === null) return undefined;
    return this.byKey.get(`${kind}\u0000${tenant}\u0000${value}`);
  }
}
