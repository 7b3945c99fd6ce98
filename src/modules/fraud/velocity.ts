import type { Redis, Result } from 'ioredis';
import type { VelocitySnapshot } from './model/signals.js';
import {
  DAY,
  DAY_BUCKETS,
  HOUR,
  MINUTE,
  MINUTE_BUCKETS,
  VelocityTracker,
  WEEK,
  WEEK_BUCKETS,
} from './model/velocity.js';

/** What a payment is counted under; a null key (no email, no customer…) counts nothing and reads zeros. */
export interface VelocityKeys {
  tenantId: string;
  livemode: boolean;
  /**
   * The decision's own key (payment and authorization round): the same decision asked again, as a
   * crash recovery's replay asks it, reads what the first one read and records nothing.
   */
  decision: string;
  /** Decision time, ms since the epoch: windows are the 1 h, 24 h and 7 d before it. */
  at: number;
  amount: number;
  /** The tenant's card fingerprint. */
  card: string | null;
  /** A platform-wide keyed fingerprint of the card, for the count of tenants that saw it. */
  platformCard: string | null;
  email: string | null;
  ip: string | null;
  ipCountry: string | null;
  customer: string | null;
}

/** Names one decision's reading. */
export type DecisionName = Pick<VelocityKeys, 'tenantId' | 'livemode' | 'decision'>;

/** Reads the prior activity of a payment's keys and records the payment, as one atomic step. */
export interface VelocityStore {
  recordAndRead(keys: VelocityKeys): Promise<VelocitySnapshot>;
  /**
   * Forgets a decision's reading once its outcome is committed: a committed decision is never asked
   * again (the payment's next authorization is a new round, under a new name), so its reading need
   * not be kept for replays. Fire and forget: a reading not forgotten expires with its TTL.
   */
  settle(name: DecisionName): void;
}

export const ZERO_VELOCITY: VelocitySnapshot = Object.freeze({
  card_count_1h: 0,
  card_count_24h: 0,
  card_count_7d: 0,
  card_sum_1h: 0,
  card_sum_24h: 0,
  card_sum_7d: 0,
  email_count_1h: 0,
  email_count_24h: 0,
  email_count_7d: 0,
  email_sum_24h: 0,
  ip_count_1h: 0,
  ip_count_24h: 0,
  ip_count_7d: 0,
  ip_sum_24h: 0,
  customer_count_1h: 0,
  customer_count_24h: 0,
  customer_count_7d: 0,
  customer_sum_24h: 0,
  customer_sum_7d: 0,
  ip_distinct_cards_1h: 0,
  ip_distinct_cards_24h: 0,
  customer_distinct_cards_24h: 0,
  customer_distinct_cards_7d: 0,
  customer_new_ip_country: 0,
  card_distinct_tenants_24h: 0,
  seconds_since_card_last_seen: -1,
});

/**
 * How long a decision's reading is kept for its replays, renewed by each replay. A decision is only
 * replayed while its payment waits in `processing` for a processor answer: the client's retry (within
 * seconds) and each recovery pass (every minute) renew it, however long an outage lasts. A decision
 * whose outcome is committed is settled at once (`settle`), so what is kept is the payments in flight
 * and those whose outcome is unknown, not 15 minutes of every payment.
 */
const DECISION_TTL = 15 * MINUTE;

/** Counts and sums of one key's prior payments over 1 h, 24 h, 7 d, and when it was last seen. */
interface Activity {
  count: [number, number, number];
  sum: [number, number, number];
  last: number | null;
}

/**
 * The snapshot from the Redis script's raw figures, by the contract's definitions (those of
 * model/velocity.ts, which the in-process store uses directly).
 */
function snapshot(
  card: Activity,
  email: Activity,
  ip: Activity,
  customer: Activity,
  distinct: {
    ipCards1h: number;
    ipCards24h: number;
    customerCards24h: number;
    customerCards7d: number;
    customerSawCountry: boolean;
    tenants24h: number;
  },
  keys: VelocityKeys,
  at: number,
): VelocitySnapshot {
  return {
    card_count_1h: card.count[0],
    card_count_24h: card.count[1],
    card_count_7d: card.count[2],
    card_sum_1h: card.sum[0],
    card_sum_24h: card.sum[1],
    card_sum_7d: card.sum[2],
    email_count_1h: email.count[0],
    email_count_24h: email.count[1],
    email_count_7d: email.count[2],
    email_sum_24h: email.sum[1],
    ip_count_1h: ip.count[0],
    ip_count_24h: ip.count[1],
    ip_count_7d: ip.count[2],
    ip_sum_24h: ip.sum[1],
    customer_count_1h: customer.count[0],
    customer_count_24h: customer.count[1],
    customer_count_7d: customer.count[2],
    customer_sum_24h: customer.sum[1],
    customer_sum_7d: customer.sum[2],
    ip_distinct_cards_1h: distinct.ipCards1h,
    ip_distinct_cards_24h: distinct.ipCards24h,
    customer_distinct_cards_24h: distinct.customerCards24h,
    customer_distinct_cards_7d: distinct.customerCards7d,
    customer_new_ip_country:
      keys.customer !== null && keys.ipCountry !== null && customer.count[2] > 0 && !distinct.customerSawCountry
        ? 1
        : 0,
    card_distinct_tenants_24h: distinct.tenants24h,
    seconds_since_card_last_seen: card.last === null ? -1 : (at - card.last) / 1000,
  };
}

/**
 * Key names, scoped by tenant and mode. The platform-wide card key is scoped by mode only: it counts
 * tenants. Values are hex or percent-encoded so a key can hold no separator of its own.
 */
function redisKeys(keys: VelocityKeys) {
  const scope = `fraud:v:${keys.tenantId}:${keys.livemode ? 'live' : 'test'}`;
  const part = (value: string | null) => (value === null ? '' : encodeURIComponent(value));
  return [
    keys.card ? `${scope}:card:${part(keys.card)}` : '',
    keys.email ? `${scope}:email:${part(keys.email)}` : '',
    keys.ip ? `${scope}:ip:${part(keys.ip)}` : '',
    keys.customer ? `${scope}:customer:${part(keys.customer)}` : '',
    keys.ip ? `${scope}:ipcards:${part(keys.ip)}` : '',
    keys.customer ? `${scope}:customercards:${part(keys.customer)}` : '',
    keys.customer ? `${scope}:customercountries:${part(keys.customer)}` : '',
    keys.platformCard ? `fraud:v:${keys.livemode ? 'live' : 'test'}:tenants:${part(keys.platformCard)}` : '',
    decisionKey(keys),
  ];
}

function decisionKey(name: DecisionName) {
  return `fraud:v:${name.tenantId}:${name.livemode ? 'live' : 'test'}:decision:${encodeURIComponent(name.decision)}`;
}

/**
 * One round trip, atomic: Redis runs a script alone, so of N payments on one card at once each sees
 * exactly the payments recorded before it. Activity keys are hashes of per-bucket counts and sums
 * (`mc<minute>`, `ms<minute>`, `hc<hour>`, `hs<hour>`) plus `last`, the latest payment's time: a
 * hash holds at most 60 + 168 buckets, whose stale fields each call deletes, so the cost of a call
 * is bounded whatever the key's history. "Distinct" keys are sorted sets of the card (or country,
 * or tenant) scored by when it was last seen: ZCOUNT over a window counts the distinct values seen
 * in it, exactly, in O(log n). The reading is stored under the decision's key: the same decision run
 * again (a crash recovery's replay) gets that reading back and records nothing.
 */
const SCRIPT = `
local prior = redis.call('GET', KEYS[9])
if prior then
  redis.call('PEXPIRE', KEYS[9], ${DECISION_TTL})
  local values = {}
  for value in string.gmatch(prior, '[^,]+') do values[#values + 1] = value end
  return values
end
local now = tonumber(ARGV[1])
local amount = ARGV[2]
local card, country, tenant = ARGV[3], ARGV[4], ARGV[5]
local MINUTES, DAY_HOURS, WEEK_HOURS = ${MINUTE_BUCKETS}, ${DAY_BUCKETS}, ${WEEK_BUCKETS}
local M, H, D, W = ${MINUTE}, ${HOUR}, ${DAY}, ${WEEK}
local minute, hour = math.floor(now / M), math.floor(now / H)
local out = {}
local function activity(key)
  if key == '' then
    for i = 1, 7 do out[#out + 1] = 0 end
    out[#out + 1] = -1
    return
  end
  local fields = redis.call('HGETALL', key)
  local c1, c24, c7, s1, s24, s7, last = 0, 0, 0, 0, 0, 0, -1
  local stale = {}
  for i = 1, #fields, 2 do
    local field, value = fields[i], tonumber(fields[i + 1])
    if field == 'last' then
      last = value
    else
      local kind, index = string.sub(field, 1, 2), tonumber(string.sub(field, 3))
      if kind == 'mc' or kind == 'ms' then
        if index > minute - MINUTES then
          if kind == 'mc' then c1 = c1 + value else s1 = s1 + value end
        else
          stale[#stale + 1] = field
        end
      elseif index > hour - WEEK_HOURS then
        local recent = index > hour - DAY_HOURS
        if kind == 'hc' then
          c7 = c7 + value
          if recent then c24 = c24 + value end
        else
          s7 = s7 + value
          if recent then s24 = s24 + value end
        end
      else
        stale[#stale + 1] = field
      end
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  out[#out + 1] = c1; out[#out + 1] = c24; out[#out + 1] = c7
  out[#out + 1] = string.format('%.0f', s1); out[#out + 1] = string.format('%.0f', s24)
  out[#out + 1] = string.format('%.0f', s7)
  out[#out + 1] = 0
  out[#out + 1] = (last > now - W) and string.format('%.0f', last) or -1
  redis.call('HINCRBY', key, 'mc' .. minute, 1)
  redis.call('HINCRBY', key, 'ms' .. minute, amount)
  redis.call('HINCRBY', key, 'hc' .. hour, 1)
  redis.call('HINCRBY', key, 'hs' .. hour, amount)
  if now > last then redis.call('HSET', key, 'last', string.format('%.0f', now)) end
  redis.call('PEXPIRE', key, W + H)
end
local function distinct(key, value, windows)
  if key == '' then
    for _ in ipairs(windows) do out[#out + 1] = 0 end
    return
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - W)
  for _, w in ipairs(windows) do
    out[#out + 1] = redis.call('ZCOUNT', key, '(' .. (now - w), '+inf')
  end
  if value ~= '' then
    local seen = tonumber(redis.call('ZSCORE', key, value) or '-1')
    if now > seen then redis.call('ZADD', key, now, value) end
  end
  redis.call('PEXPIRE', key, W)
end
for i = 1, 4 do activity(KEYS[i]) end
distinct(KEYS[5], card, {H, D})
distinct(KEYS[6], card, {D, W})
if KEYS[7] ~= '' and country ~= '' then
  local seen = tonumber(redis.call('ZSCORE', KEYS[7], country) or '-1')
  out[#out + 1] = (seen > now - W) and 1 or 0
  if now > seen then redis.call('ZADD', KEYS[7], now, country) end
  redis.call('PEXPIRE', KEYS[7], W)
else
  out[#out + 1] = 0
end
if KEYS[8] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - D)
  out[#out + 1] = redis.call('ZCOUNT', KEYS[8], '(' .. (now - D), '+inf')
  local seen = tonumber(redis.call('ZSCORE', KEYS[8], tenant) or '-1')
  if now > seen then redis.call('ZADD', KEYS[8], now, tenant) end
  redis.call('PEXPIRE', KEYS[8], D)
else
  out[#out + 1] = 0
end
out[#out + 1] = string.format('%.0f', now)
redis.call('SET', KEYS[9], table.concat(out, ','), 'PX', ${DECISION_TTL})
return out`;

function activityFrom(values: (string | number)[], offset: number): Activity {
  const n = (i: number) => Number(values[offset + i]);
  const last = n(7);
  return { count: [n(0), n(1), n(2)], sum: [n(3), n(4), n(5)], last: last < 0 ? null : last };
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    fraudVelocity(...args: (string | number)[]): Result<(string | number)[], Context>;
  }
}

export class RedisVelocityStore implements VelocityStore {
  constructor(private readonly redis: Redis) {
    redis.defineCommand('fraudVelocity', { numberOfKeys: 9, lua: SCRIPT });
  }

  /** Whether a call can be answered now; while not, callers use their fallback instead of waiting. */
  get available(): boolean {
    return this.redis.status === 'ready';
  }

  async recordAndRead(keys: VelocityKeys): Promise<VelocitySnapshot> {
    const values = await this.redis.fraudVelocity(
      ...redisKeys(keys),
      keys.at,
      keys.amount,
      keys.card ?? '',
      keys.ipCountry ?? '',
      `${keys.tenantId}`,
    );
    return snapshot(
      activityFrom(values, 0),
      activityFrom(values, 8),
      activityFrom(values, 16),
      activityFrom(values, 24),
      {
        ipCards1h: Number(values[32]),
        ipCards24h: Number(values[33]),
        customerCards24h: Number(values[34]),
        customerCards7d: Number(values[35]),
        customerSawCountry: Number(values[36]) === 1,
        tenants24h: Number(values[37]),
      },
      keys,
      Number(values[38]),
    );
  }

  settle(name: DecisionName) {
    if (this.available) this.redis.unlink(decisionKey(name)).catch(() => undefined);
  }
}

/**
 * The same figures kept in this process's memory: the store without Redis, and the one a Redis
 * outage degrades to. It is the training pipeline's own tracker (one per mode), so its definitions
 * are the model's by construction; synchronous, hence atomic within the process. Cards are keyed by
 * the platform-wide fingerprint, which the count of tenants that saw a card needs. Readings are kept
 * by decision as the Redis store keeps them, so that a replayed decision counts once.
 */
export class InProcessVelocityStore implements VelocityStore {
  private readonly test = new VelocityTracker();
  private readonly live = new VelocityTracker();
  /** In order of last use, which is time order to within a request's duration. */
  private readonly decided = new Map<string, { at: number; snapshot: VelocitySnapshot }>();

  async recordAndRead(keys: VelocityKeys): Promise<VelocitySnapshot> {
    const decision = InProcessVelocityStore.nameOf(keys);
    const prior = this.decided.get(decision);
    if (prior) {
      // Renewed, and moved to the end of the map's (time) order.
      this.decided.delete(decision);
      this.decided.set(decision, { at: keys.at, snapshot: prior.snapshot });
      return prior.snapshot;
    }
    const tracker = keys.livemode ? this.live : this.test;
    const event = {
      time: keys.at,
      tenant: keys.tenantId,
      customer: keys.customer,
      email: keys.email,
      card: keys.platformCard ?? keys.card,
      ip: keys.ip,
      ipCountry: keys.ipCountry,
      amount: keys.amount,
    };
    const snapshot = tracker.snapshot(event);
    tracker.record(event);
    for (const [key, { at }] of this.decided) {
      if (at > keys.at - DECISION_TTL) break;
      this.decided.delete(key);
    }
    this.decided.set(decision, { at: keys.at, snapshot });
    return snapshot;
  }

  settle(name: DecisionName) {
    this.decided.delete(InProcessVelocityStore.nameOf(name));
  }

  /** Readings kept for replays (decisions not settled, within their TTL). */
  get kept(): number {
    return this.decided.size;
  }

  private static nameOf(name: DecisionName) {
    return `${name.tenantId}:${name.livemode}:${name.decision}`;
  }
}

/**
 * Redis while it answers; during an outage the in-process store, so that the decision still
 * completes (with this process's view of the outage's payments only). `onDegraded` is called with
 * the reason each time, for the log and the metric.
 */
export class ResilientVelocityStore implements VelocityStore {
  constructor(
    private readonly redis: RedisVelocityStore,
    private readonly fallback: InProcessVelocityStore,
    private readonly onDegraded: (reason: string) => void,
  ) {}

  async recordAndRead(keys: VelocityKeys): Promise<VelocitySnapshot> {
    if (!this.redis.available) {
      this.onDegraded('redis_unavailable');
      return this.fallback.recordAndRead(keys);
    }
    try {
      return await this.redis.recordAndRead(keys);
    } catch {
      this.onDegraded('redis_error');
      return this.fallback.recordAndRead(keys);
    }
  }

  /** Both stores: a reading taken during an outage is kept by the fallback. */
  settle(name: DecisionName) {
    this.fallback.settle(name);
    this.redis.settle(name);
  }
}
