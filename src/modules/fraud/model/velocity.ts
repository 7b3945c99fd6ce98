import type { VelocitySnapshot } from './signals.js';

// The training pipeline's velocity store: the same snapshot the engine's live store computes, from a
// time-ordered stream where each payment sees only the payments before it (exact sliding windows).

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

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

interface Entry {
  time: number;
  amount: number;
  card: string | null;
  ipCountry: string | null;
  tenant: string;
}

/** A key's payments, oldest first; entries older than the longest window are dropped from the front. */
class History {
  private entries: Entry[] = [];
  private start = 0;

  constructor(private readonly horizon: number) {}

  prune(now: number): void {
    while (this.start < this.entries.length && this.entries[this.start]!.time <= now - this.horizon) this.start++;
    if (this.start > 1024 && this.start * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }

  /** Entries with now - window < time, newest first. */
  *within(now: number, window: number): Generator<Entry> {
    for (let i = this.entries.length - 1; i >= this.start; i--) {
      const entry = this.entries[i]!;
      if (entry.time <= now - window) return;
      yield entry;
    }
  }

  push(entry: Entry): void {
    this.entries.push(entry);
  }

  get size(): number {
    return this.entries.length - this.start;
  }
}

interface Totals {
  count1h: number;
  count24h: number;
  count7d: number;
  sum1h: number;
  sum24h: number;
  sum7d: number;
}

function totals(history: History | undefined, now: number): Totals {
  const result = { count1h: 0, count24h: 0, count7d: 0, sum1h: 0, sum24h: 0, sum7d: 0 };
  if (!history) return result;
  history.prune(now);
  for (const entry of history.within(now, WEEK)) {
    const age = now - entry.time;
    result.count7d++;
    result.sum7d += entry.amount;
    if (age < DAY) {
      result.count24h++;
      result.sum24h += entry.amount;
    }
    if (age < HOUR) {
      result.count1h++;
      result.sum1h += entry.amount;
    }
  }
  return result;
}

function distinctCards(history: History | undefined, now: number, window: number): number {
  if (!history) return 0;
  const cards = new Set<string>();
  for (const entry of history.within(now, window)) if (entry.card !== null) cards.add(entry.card);
  return cards.size;
}

/**
 * Computes each payment's VelocitySnapshot from the payments recorded before it. Call snapshot(event)
 * then record(event), in time order.
 */
export class VelocityTracker {
  private readonly byKey = new Map<string, History>();
  private readonly cardTenants = new Map<string, History>();

  snapshot(event: VelocityEvent): VelocitySnapshot {
    const now = event.time;
    const card = this.history('card', event.tenant, event.card);
    const email = this.history('email', event.tenant, event.email);
    const ip = this.history('ip', event.tenant, event.ip);
    const customer = this.history('customer', event.tenant, event.customer);
    const c = totals(card, now);
    const e = totals(email, now);
    const i = totals(ip, now);
    const u = totals(customer, now);
    let lastCardTime: number | undefined;
    if (card) for (const entry of card.within(now, WEEK)) lastCardTime ??= entry.time;
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
      ip_distinct_cards_1h: distinctCards(ip, now, HOUR),
      ip_distinct_cards_24h: distinctCards(ip, now, DAY),
      customer_distinct_cards_24h: distinctCards(customer, now, DAY),
      customer_distinct_cards_7d: distinctCards(customer, now, WEEK),
      customer_new_ip_country: newIpCountry(customer, now, event.ipCountry),
      card_distinct_tenants_24h: this.distinctTenants(event.card, now),
      seconds_since_card_last_seen: lastCardTime === undefined ? -1 : (now - lastCardTime) / 1000,
    };
  }

  record(event: VelocityEvent): void {
    const entry: Entry = {
      time: event.time,
      amount: event.amount,
      card: event.card,
      ipCountry: event.ipCountry,
      tenant: event.tenant,
    };
    for (const [kind, value] of [
      ['card', event.card],
      ['email', event.email],
      ['ip', event.ip],
      ['customer', event.customer],
    ] as const) {
      if (value === null) continue;
      const key = `${kind}\u0000${event.tenant}\u0000${value}`;
      let history = this.byKey.get(key);
      if (!history) this.byKey.set(key, (history = new History(WEEK)));
      history.push(entry);
    }
    if (event.card !== null) {
      let history = this.cardTenants.get(event.card);
      if (!history) this.cardTenants.set(event.card, (history = new History(DAY)));
      history.prune(event.time);
      history.push(entry);
    }
  }

  private history(kind: string, tenant: string, value: string | null): History | undefined {
    if (value === null) return undefined;
    return this.byKey.get(`${kind}\u0000${tenant}\u0000${value}`);
  }

  private distinctTenants(card: string | null, now: number): number {
    if (card === null) return 0;
    const history = this.cardTenants.get(card);
    if (!history) return 0;
    history.prune(now);
    const tenants = new Set<string>();
    for (const entry of history.within(now, DAY)) tenants.add(entry.tenant);
    return tenants.size;
  }
}

function newIpCountry(customer: History | undefined, now: number, ipCountry: string | null): number {
  if (!customer || ipCountry === null) return 0;
  let seen = false;
  for (const entry of customer.within(now, WEEK)) {
    if (entry.ipCountry === ipCountry) return 0;
    seen = true;
  }
  return seen ? 1 : 0;
}
