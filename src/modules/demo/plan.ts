import { luhnValid } from '../vault/cards.js';

/**
 * The demo tenant's history as a plan: what each day brings (payments with their card, customer and
 * follow-ups), drawn from one seeded generator before anything runs, so the same seed gives the same
 * amounts, cards and decisions whatever order the services answer in. Nothing here touches the database.
 */

const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** mulberry32: a small, fast, well-distributed 32-bit generator; enough for demo data, not for secrets. */
export function generator(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const weighted = <T>(items: readonly (readonly [T, number])[]) => {
    let roll = next() * items.reduce((sum, [, weight]) => sum + weight, 0);
    for (const [item, weight] of items) if ((roll -= weight) < 0) return item;
    return items.at(-1)![0];
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return { next, int, pick, weighted, normal };
}
export type Generator = ReturnType<typeof generator>;

/** Relative volume by UTC hour: quiet nights, a lunchtime rise and the busiest hours in the afternoon. */
const HOURS = [
  0.15, 0.1, 0.08, 0.06, 0.06, 0.1, 0.25, 0.45, 0.7, 0.9, 1.05, 1.2, 1.3, 1.35, 1.55, 1.7, 1.8, 1.75, 1.5, 1.25, 1.0,
  0.75, 0.5, 0.3,
].map((weight, hour) => [hour, weight] as const);

/** Relative volume by UTC weekday (Sunday first): Sundays are the quietest, Fridays the busiest. */
const WEEKDAYS = [0.45, 0.95, 1.0, 1.0, 1.05, 1.15, 0.7];

/** What a card does in test mode (see the README's test cards); `saved` cards are generated, always accepted. */
export type CardKind =
  | 'good'
  | 'generic_decline'
  | 'insufficient_funds'
  | 'incorrect_cvc'
  | 'expired_card'
  | 'failover'
  | 'disputed'
  | 'blocked'
  | 'review'
  | 'highest_risk'
  | 'gb'
  | 'de'
  | 'br'
  | 'debit'
  | 'prepaid';

const TEST_NUMBERS: Partial<Record<CardKind, string>> = {
  generic_decline: '4000000000000002',
  insufficient_funds: '4000000000009995',
  incorrect_cvc: '4000000000000127',
  expired_card: '4000000000000069',
  failover: '4000000000000119',
  disputed: '4000000000000259',
  blocked: '4100000000000019',
  review: '4000000000009235',
  highest_risk: '4000000000004954',
  gb: '4000008260000000',
  de: '4000002760000016',
  br: '4000000760000002',
  debit: '4000056655665556',
  prepaid: '5105105105105100',
};

// A new card's behaviour, per thousand payments.
const NEW_CARD_KINDS: readonly (readonly [CardKind, number])[] = [
  ['good', 826],
  ['generic_decline', 30],
  ['insufficient_funds', 25],
  ['incorrect_cvc', 10],
  ['expired_card', 8],
  ['failover', 10],
  ['disputed', 7],
  ['blocked', 4],
  ['review', 14],
  ['highest_risk', 6],
  ['gb', 25],
  ['de', 15],
  ['br', 6],
  ['debit', 10],
  ['prepaid', 4],
];

// Brands of generated cards (Visa, Mastercard, Amex, Discover, JCB): the prefixes and length each uses.
const BRANDS: readonly (readonly [{ prefixes: readonly string[]; length: number }, number])[] = [
  [{ prefixes: ['4'], length: 16 }, 52],
  [{ prefixes: ['51', '52', '53', '54', '55', '2221', '2720'], length: 16 }, 26],
  [{ prefixes: ['34', '37'], length: 15 }, 11],
  [{ prefixes: ['6011', '65'], length: 16 }, 7],
  [{ prefixes: ['3530', '3566'], length: 16 }, 4],
];

const CURRENCIES: readonly (readonly [string, number])[] = [
  ['usd', 74],
  ['eur', 16],
  ['gbp', 10],
];

const FIRST =
  'Ada Alan Ana Ben Chloe Dev Elena Finn Grace Hugo Ines Jon Kira Leo Maya Noah Omar Priya Quinn Rosa Sam Tara Uma Victor Wen Yara Zoe'.split(
    ' ',
  );
const LAST =
  'Ahmed Becker Costa Dubois Evans Fischer Garcia Haddad Ito Jensen Kowalski Larsen Moreau Nakamura Okafor Petrov Quinn Rossi Silva Tanaka Umar Varga Weber Young Zhang'.split(
    ' ',
  );

export interface PlannedCard {
  number: string;
  exp_month: number;
  exp_year: number;
  cvc: string;
  kind: CardKind;
}

export interface PlannedCustomer {
  index: number;
  name: string;
  email: string;
  ip: string;
  card: PlannedCard;
  /** The currency this customer pays in. */
  currency: string;
}

export interface PlannedPayment {
  index: number;
  at: number;
  amount: number;
  currency: string;
  card: PlannedCard;
  /** A customer created by this payment (its card saved), or a returning one paying with the saved card. */
  customer?: { planned: PlannedCustomer; returning: boolean };
  ip: string | null;
  email: string | null;
  manualCapture?: { after: number; action: 'capture' | 'partial' | 'cancel'; ratio: number };
  refund?: { after: number; ratio: number | null; reason: 'requested_by_customer' | 'duplicate' };
  dispute?: { after: number; response: 'winning' | 'losing' | 'accept' | 'none' };
  /** Applied only if the fraud decision sends the payment to review. */
  review: { after: number; decision: 'approved' | 'rejected' };
}

export interface DayPlan {
  start: number;
  payments: PlannedPayment[];
}

function cardNumber(random: Generator): string {
  const brand = random.weighted(BRANDS);
  let digits = random.pick(brand.prefixes);
  while (digits.length < brand.length - 1) digits += String(random.int(0, 9));
  for (let check = 0; check <= 9; check++) if (luhnValid(digits + check)) return digits + check;
  throw new Error('unreachable: one check digit always satisfies Luhn');
}

function plannedCard(random: Generator, kind: CardKind, year: number): PlannedCard {
  const number = TEST_NUMBERS[kind] ?? cardNumber(random);
  const amex = number.startsWith('34') || number.startsWith('37');
  return {
    number,
    kind,
    exp_month: random.int(1, 12),
    exp_year: year + random.int(1, 5),
    cvc: amex ? String(random.int(1000, 9999)) : String(random.int(100, 999)),
  };
}

function ipFor(random: Generator, country: string): string {
  if (country === 'GB') return `198.51.100.${random.int(1, 254)}`;
  if (country === 'DE') return `203.0.113.${random.int(1, 254)}`;
  // 198.18.0.0/19 is the simulation's other US block: room for many distinct buyers.
  return random.next() < 0.3 ? `192.0.2.${random.int(1, 254)}` : `198.18.${random.int(0, 31)}.${random.int(1, 254)}`;
}

/** A basket in minor units: log-normal around the currency's typical order, often ending in 99 or 00. */
function amountFor(random: Generator, currency: string): number {
  const typical = currency === 'gbp' ? 3_800 : currency === 'eur' ? 4_200 : 4_800;
  const raw = Math.exp(Math.log(typical) + 0.85 * random.normal());
  const bounded = Math.min(Math.max(Math.round(raw), 150), 900_000);
  const ending = random.next();
  if (ending < 0.45) return Math.max(99, Math.floor(bounded / 100) * 100 - 1);
  if (ending < 0.7) return Math.max(100, Math.round(bounded / 100) * 100);
  return bounded;
}

/**
 * Plans `days` days ending with the day that holds `until` (that day only up to `until`): payments by
 * weekday and hour, about `perDay` on an ordinary weekday, and what later happens to each.
 */
export function planHistory(options: { days: number; seed: number; until: number; perDay: number }): DayPlan[] {
  const random = generator(options.seed);
  const today = Math.floor(options.until / DAY_MS) * DAY_MS;
  const first = today - (options.days - 1) * DAY_MS;
  const year = new Date(options.until).getUTCFullYear();
  const customers: PlannedCustomer[] = [];
  const plans: DayPlan[] = [];
  let index = 0;
  for (let day = 0; day < options.days; day++) {
    const start = first + day * DAY_MS;
    // A business that grows a little over the period, with day-to-day noise.
    const trend = 0.85 + (0.3 * day) / Math.max(options.days - 1, 1);
    const count = Math.round(
      options.perDay * WEEKDAYS[new Date(start).getUTCDay()]! * trend * (0.88 + 0.24 * random.next()),
    );
    const times = Array.from(
      { length: count },
      () => start + random.weighted(HOURS) * HOUR_MS + random.int(0, HOUR_MS - 1),
    ).sort((a, b) => a - b);
    const payments: PlannedPayment[] = [];
    for (const at of times) {
      const payment = plannedPayment(random, index++, at, customers, year);
      if (at <= options.until) payments.push(payment);
    }
    plans.push({ start, payments });
  }
  return plans;
}

function plannedPayment(
  random: Generator,
  index: number,
  at: number,
  customers: PlannedCustomer[],
  year: number,
): PlannedPayment {
  const who = random.next();
  // Returning customers come back with the card they saved; a weighting towards the earliest keeps some loyal.
  if (customers.length > 10 && who < 0.42) {
    const planned = customers[Math.floor(customers.length * random.next() ** 1.6)]!;
    return withFollowUps(random, {
      index,
      at,
      amount: amountFor(random, planned.currency),
      currency: planned.currency,
      card: planned.card,
      customer: { planned, returning: true },
      ip: planned.ip,
      email: planned.email,
    });
  }
  const kind = random.weighted(NEW_CARD_KINDS);
  const card = plannedCard(random, kind, year);
  const country = kind === 'gb' ? 'GB' : kind === 'de' ? 'DE' : 'US';
  const currency = kind === 'gb' ? 'gbp' : kind === 'de' ? 'eur' : random.weighted(CURRENCIES);
  const name = `${random.pick(FIRST)} ${random.pick(LAST)}`;
  const email = `${name.toLowerCase().replace(' ', '.')}${random.int(1, 999)}@example.com`;
  // The fraud cards need the buyer's IP for the default rules to act on their score; others carry it half the time.
  const fraudCard = kind === 'review' || kind === 'highest_risk';
  const ip = fraudCard || random.next() < 0.5 ? ipFor(random, country) : null;
  // A good card becomes a saved customer card about half the time (the customers who may come back).
  const saves = (kind === 'good' || kind === 'debit') && random.next() < 0.5;
  const customer = saves
    ? {
        planned: { index: customers.length, name, email, ip: ip ?? ipFor(random, country), card, currency },
        returning: false,
      }
    : undefined;
  if (customer) customers.push(customer.planned);
  return withFollowUps(random, {
    index,
    at,
    amount: amountFor(random, currency),
    currency,
    card,
    customer,
    ip: customer ? customer.planned.ip : ip,
    email: customer || random.next() < 0.6 ? email : null,
  });
}

/** Draws every later step now, used or not, so the stream of draws never depends on an outcome. */
function withFollowUps(random: Generator, drawn: Omit<PlannedPayment, 'review'>): PlannedPayment {
  const rolls = Array.from({ length: 6 }, () => random.next());
  const hours = (min: number, max: number, roll: number) => Math.round((min + (max - min) * roll) * HOUR_MS);
  // Any payment may go to review (the model scores more than the review card); the decision is drawn for each.
  const payment: PlannedPayment = {
    ...drawn,
    review: { after: hours(1, 40, rolls[1]!), decision: rolls[2]! < 0.6 ? 'approved' : 'rejected' },
  };
  if (rolls[0]! < 0.12 && payment.card.kind !== 'review')
    payment.manualCapture = {
      after: hours(0.5, 30, rolls[1]!),
      action: rolls[2]! < 0.78 ? 'capture' : rolls[2]! < 0.9 ? 'partial' : 'cancel',
      ratio: 0.5 + 0.45 * rolls[3]!,
    };
  if (payment.card.kind === 'disputed')
    payment.dispute = {
      after: hours(20, 120, rolls[1]!),
      response: rolls[2]! < 0.45 ? 'winning' : rolls[2]! < 0.7 ? 'losing' : rolls[2]! < 0.85 ? 'accept' : 'none',
    };
  else if (rolls[4]! < 0.065)
    payment.refund = {
      after: hours(6, 140, rolls[5]!),
      ratio: rolls[3]! < 0.62 ? null : 0.2 + 0.6 * rolls[1]!,
      reason: rolls[2]! < 0.9 ? 'requested_by_customer' : 'duplicate',
    };
  return payment;
}
