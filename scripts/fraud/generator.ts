import { blocksByCountry, ipCountry, ipv4ToInt, ipv4ToString } from '../../src/modules/fraud/model/ip-country.js';
import type { CsvRow } from '../../src/modules/fraud/model/dataset.js';
import { Random } from './random.js';

// Our own synthetic payment stream: merchants (tenants), people with habits (amount range, home country,
// usual IPs, one or two cards, favourite hours, a weekly rhythm) who may be customers of more than one
// merchant, and fraud scenarios laid over them. Deterministic for a given seed and day count.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 0, 5); // a Monday

interface Tenant {
  id: string;
  country: string;
  currency: string;
  exponent: number;
  medianMajor: number; // typical basket in major units
  weight: number;
  /**
   * Share of its payments the merchant sends server to server, without the buyer's IP address
   * (recurring billing, invoices, phone orders): legitimate and fraudulent alike, since it is a
   * property of the integration, so a missing IP tells the model nothing by itself.
   */
  serverSide: number;
  /**
   * Share of its payments that carry a billing country: whether the checkout asks for an address is
   * the merchant's choice, for every buyer alike, so a missing billing country says nothing by itself.
   */
  withBilling: number;
}

interface Card {
  fingerprint: string;
  bin: string;
  country: string;
}

interface Account {
  tenant: Tenant;
  customerId: string;
  email: string;
  person: Person;
  medianMinor: number;
  dailyRate: number;
}

interface Person {
  home: string;
  cards: Card[];
  ips: string[];
  peakHour: number;
  weekendFactor: number;
  accounts: Account[];
}

interface Payment {
  time: number;
  tenant: Tenant;
  customerId: string | null;
  email: string | null;
  card: Card;
  ip: string;
  billing: string;
  amount: number;
  fraud: boolean;
}

const TENANTS: Omit<Tenant, 'id'>[] = [
  { country: 'US', currency: 'USD', exponent: 2, medianMajor: 45, weight: 3, serverSide: 0.03, withBilling: 0.9 },
  { country: 'DE', currency: 'EUR', exponent: 2, medianMajor: 60, weight: 2, serverSide: 0.02, withBilling: 0.5 },
  { country: 'GB', currency: 'GBP', exponent: 2, medianMajor: 30, weight: 2, serverSide: 0.05, withBilling: 0.8 },
  { country: 'FR', currency: 'EUR', exponent: 2, medianMajor: 120, weight: 1, serverSide: 0.1, withBilling: 0.4 },
  { country: 'US', currency: 'USD', exponent: 2, medianMajor: 250, weight: 1, serverSide: 0.6, withBilling: 0.95 },
  { country: 'CA', currency: 'CAD', exponent: 2, medianMajor: 70, weight: 1, serverSide: 0.15, withBilling: 0.7 },
];

/** Hours from UTC of each home country (its main time zone): people shop by their local clock. */
const UTC_OFFSET: Record<string, number> = {
  US: -5,
  GB: 0,
  DE: 1,
  FR: 1,
  NL: 1,
  ES: 1,
  IT: 1,
  CA: -5,
  AU: 10,
  MX: -6,
  IN: 5.5,
};
const HOME_COUNTRIES = ['US', 'US', 'US', 'GB', 'GB', 'DE', 'DE', 'FR', 'NL', 'ES', 'IT', 'CA', 'AU', 'MX', 'IN'];
const FRAUD_COUNTRIES = ['RO', 'RU', 'NG', 'CN', 'BR', 'IN', 'NL', 'US'];
/**
 * Public unicast addresses outside the simulation's table (11.0.0.0/10), as every real-world address
 * is for the engine: an IP whose country is not known. A tenth of everybody's addresses, legitimate
 * and fraudulent alike, come from there, so a missing IP country tells the model nothing by itself.
 */
const UNCOVERED_IP_BASE = ipv4ToInt('11.0.0.0')!;
const UNCOVERED_IP_SHARE = 0.1;
/** People living away from the country that issued their card (expatriates, cross-border workers). */
const ABROAD_SHARE = 0.05;
/** Share of a person's payments made while travelling, from an IP in another country. */
const TRAVEL_SHARE = 0.04;

export interface GeneratorOptions {
  days: number;
  seed: number;
  /** People in the population; about 0.3 payments per person per day. */
  people?: number;
}

export function generate(options: GeneratorOptions): CsvRow[] {
  const rng = new Random(options.seed);
  const blocks = blocksByCountry();
  const tenants: Tenant[] = TENANTS.map((t, i) => ({ ...t, id: `ten_${String(i + 1).padStart(2, '0')}` }));
  const tenantWeights = tenants.map((t) => t.weight);
  let serial = 0;

  const ipIn = (country: string): string => {
    if (!blocks.has(country) || rng.chance(UNCOVERED_IP_SHARE))
      return ipv4ToString(UNCOVERED_IP_BASE + rng.int(0, 4_194_303));
    const block = rng.pick(blocks.get(country)!);
    return ipv4ToString(block.first + rng.int(1, block.last - block.first - 1));
  };
  const newCard = (country: string): Card => ({
    fingerprint: `fp_${rng.hex(16)}`,
    bin: `${rng.pick(['4', '5', '3'])}${rng.digits(5)}`,
    country,
  });
  const weightedTenant = (): Tenant => {
    let r = rng.next() * tenantWeights.reduce((a, b) => a + b, 0);
    for (const tenant of tenants) if ((r -= tenant.weight) < 0) return tenant;
    return tenants[0]!;
  };
  const fraudCountry = (): string => rng.pick(FRAUD_COUNTRIES);
  const elsewhere = (home: string): string => {
    const others = HOME_COUNTRIES.filter((country) => country !== home);
    return rng.pick(others);
  };
  const minor = (tenant: Tenant, major: number): number => Math.max(50, Math.round(major * 10 ** tenant.exponent));

  const people: Person[] = [];
  const accounts: Account[] = [];
  const population = options.people ?? 3000;
  // Fraud comes at rates proportional to the population, so the fraud share does not depend on its size.
  const scale = population / 3000;
  for (let p = 0; p < population; p++) {
    const home = rng.pick(HOME_COUNTRIES);
    // Legitimate buyers whose card country is not their IP (and billing) country: they live abroad.
    const issuer = rng.chance(ABROAD_SHARE) ? elsewhere(home) : home;
    const person: Person = {
      home,
      cards: [
        newCard(issuer),
        ...(rng.chance(0.35) ? [newCard(rng.chance(0.9) ? issuer : rng.pick(HOME_COUNTRIES))] : []),
      ],
      ips: [ipIn(home), ...(rng.chance(0.5) ? [ipIn(home)] : [])],
      peakHour: (rng.chance(0.6) ? rng.normal(19, 2) : rng.normal(12, 3)) - UTC_OFFSET[home]!,
      weekendFactor: rng.logNormal(1.2, 0.4),
      accounts: [],
    };
    const accountCount = rng.chance(0.25) ? 2 : 1;
    const used = new Set<Tenant>();
    for (let a = 0; a < accountCount; a++) {
      const tenant = weightedTenant();
      if (used.has(tenant)) continue;
      used.add(tenant);
      const account: Account = {
        tenant,
        customerId: `cus_${rng.hex(12)}`,
        email: `user${rng.hex(8)}@example.${rng.pick(['com', 'org', 'net'])}`,
        person,
        medianMinor: minor(tenant, rng.logNormal(tenant.medianMajor, 0.6)),
        dailyRate: rng.logNormal(0.15, 0.8),
      };
      person.accounts.push(account);
      accounts.push(account);
    }
    people.push(person);
  }

  const payments: Payment[] = [];
  const hourIn = (day: number, hour: number): number =>
    START + day * DAY + Math.floor((((hour % 24) + 24) % 24) * 3600) * 1000;

  // Cards seen at a compromised merchant during the breach, used by fraudsters some days later.
  const skimmed: { card: Card; usableFrom: number }[] = [];
  let breach: { tenant: Tenant; until: number } | null = null;

  for (let day = 0; day < options.days; day++) {
    const weekend = new Date(START + day * DAY).getUTCDay() % 6 === 0;
    if (!breach && rng.chance(1 / 12)) breach = { tenant: rng.pick(tenants), until: day + rng.int(2, 5) };

    // Legitimate behaviour.
    for (const account of accounts) {
      const person = account.person;
      const rate = account.dailyRate * (weekend ? person.weekendFactor : 1);
      for (let n = rng.poisson(Math.min(rate, 4)); n > 0; n--) {
        const travelling = rng.chance(TRAVEL_SHARE);
        const country = travelling ? elsewhere(person.home) : person.home;
        const card = rng.chance(0.8) ? person.cards[0]! : rng.pick(person.cards);
        const bigPurchase = rng.chance(0.01);
        const guest = rng.chance(0.15);
        const payment: Payment = {
          time: hourIn(day, rng.normal(person.peakHour, 2.5)),
          tenant: account.tenant,
          customerId: guest ? null : account.customerId,
          email: rng.chance(0.04) ? null : account.email,
          card,
          ip: travelling || rng.chance(0.05) ? ipIn(country) : rng.pick(person.ips),
          // Mostly the home address; now and then another (a gift, a business address abroad).
          billing: rng.chance(0.02) ? elsewhere(person.home) : person.home,
          amount: Math.round(rng.logNormal(account.medianMinor, 0.5) * (bigPurchase ? rng.int(3, 8) : 1)),
          // First-party ("friendly") fraud: the cardholder's own payment, disputed later as fraud. It looks
          // like the person's habits, so no model can tell it apart: it keeps the task honest.
          fraud: rng.chance(0.001),
        };
        payments.push(payment);
        if (breach && breach.tenant === account.tenant && day <= breach.until && rng.chance(0.5))
          skimmed.push({ card, usableFrom: day + rng.int(2, 10) });
      }
      // Now and then a person adds a new card.
      if (rng.chance(0.0015)) person.cards.push(newCard(rng.chance(0.9) ? person.home : rng.pick(HOME_COUNTRIES)));
    }
    if (breach && day >= breach.until) breach = null;

    // Card testing: many fresh cards from one IP in a short burst of small amounts, as a guest.
    for (let n = rng.poisson(0.3 * scale); n > 0; n--) {
      const tenant = weightedTenant();
      const country = fraudCountry();
      const ip = ipIn(country);
      const email = rng.chance(0.5) ? `t${rng.hex(6)}@example.net` : null;
      let time = hourIn(day, rng.int(0, 23));
      for (let k = rng.int(6, 40); k > 0; k--) {
        time += rng.int(5, 90) * 1000;
        payments.push({
          time,
          tenant,
          customerId: null,
          email: email ?? (rng.chance(0.5) ? `t${rng.hex(6)}@example.net` : null),
          card: newCard(rng.pick(HOME_COUNTRIES)),
          ip,
          billing: rng.chance(0.5) ? country : rng.pick(HOME_COUNTRIES),
          amount: minor(tenant, rng.pick([0.5, 1, 1, 2, 5])),
          fraud: true,
        });
      }
    }

    // Stolen or skimmed cards used at several merchants within hours, by fraudsters posing as new customers.
    const stolen: Card[] = [];
    for (let n = rng.poisson(0.8 * scale); n > 0; n--) stolen.push(rng.pick(rng.pick(people).cards));
    for (let i = skimmed.length - 1; i >= 0; i--)
      if (skimmed[i]!.usableFrom === day) {
        if (rng.chance(0.15)) stolen.push(skimmed[i]!.card);
        skimmed.splice(i, 1);
      }
    for (const card of stolen) {
      const sameCountryProxy = rng.chance(0.3);
      const country = sameCountryProxy ? card.country : fraudCountry();
      let time = hourIn(day, rng.int(0, 23));
      for (let k = rng.int(1, 6); k > 0; k--) {
        const tenant = weightedTenant();
        time += rng.int(2, 120) * 60_000;
        payments.push({
          time,
          tenant,
          customerId: rng.chance(0.5) ? `cus_${rng.hex(12)}` : null,
          email: `${rng.hex(10)}@example.org`,
          card,
          ip: ipIn(country),
          billing: rng.chance(0.6) ? card.country : country,
          amount: minor(tenant, rng.logNormal(tenant.medianMajor * 3, 0.6)),
          fraud: true,
        });
      }
    }

    // Account takeover: a known customer suddenly spends more, from a new IP and usually a new country.
    for (let n = rng.poisson(0.5 * scale); n > 0; n--) {
      const account = rng.pick(accounts);
      const country = rng.chance(0.75) ? fraudCountry() : account.person.home;
      const ip = ipIn(country);
      const card = rng.chance(0.4) ? newCard(rng.pick(HOME_COUNTRIES)) : rng.pick(account.person.cards);
      let time = hourIn(day, rng.int(0, 23));
      for (let k = rng.int(1, 5); k > 0; k--) {
        time += rng.int(1, 180) * 60_000;
        payments.push({
          time,
          tenant: account.tenant,
          customerId: account.customerId,
          email: account.email,
          card,
          ip,
          billing: account.person.home,
          amount: Math.round(account.medianMinor * rng.logNormal(6, 0.5)),
          fraud: true,
        });
      }
    }

    // Large out-of-pattern amounts on a customer's own card and account, from an unusual IP.
    for (let n = rng.poisson(0.6 * scale); n > 0; n--) {
      const account = rng.pick(accounts);
      payments.push({
        time: hourIn(day, rng.int(0, 23)),
        tenant: account.tenant,
        customerId: account.customerId,
        email: account.email,
        card: rng.pick(account.person.cards),
        ip: ipIn(rng.chance(0.5) ? account.person.home : fraudCountry()),
        billing: account.person.home,
        amount: Math.round(account.medianMinor * rng.logNormal(15, 0.4)),
        fraud: true,
      });
    }

    // A compromised merchant's terminal also runs fraudulent payments with foreign cards during the breach.
    if (breach)
      for (let n = rng.poisson(3 * scale); n > 0; n--) {
        const card = newCard(rng.pick(HOME_COUNTRIES));
        payments.push({
          time: hourIn(day, rng.int(0, 23)),
          tenant: breach.tenant,
          customerId: null,
          email: rng.chance(0.3) ? null : `${rng.hex(10)}@example.com`,
          card,
          ip: ipIn(fraudCountry()),
          billing: rng.chance(0.5) ? card.country : rng.pick(HOME_COUNTRIES),
          amount: minor(breach.tenant, rng.logNormal(breach.tenant.medianMajor * 2, 0.5)),
          fraud: true,
        });
      }
  }

  payments.sort((a, b) => a.time - b.time);
  return payments.map((payment) => {
    const ip = rng.chance(payment.tenant.serverSide) ? null : payment.ip;
    const billing = rng.chance(payment.tenant.withBilling) ? payment.billing : null;
    return {
      id: `tx_${String(++serial).padStart(8, '0')}`,
      timestamp: new Date(payment.time).toISOString().replace('.000Z', 'Z'),
      tenant_id: payment.tenant.id,
      customer_id: payment.customerId ?? '',
      email: payment.email ?? '',
      card_fingerprint: payment.card.fingerprint,
      card_bin: payment.card.bin,
      card_country: payment.card.country,
      ip: ip ?? '',
      ip_country: (ip && ipCountry(ip)) ?? '',
      billing_country: billing ?? '',
      amount: String(payment.amount),
      currency: payment.tenant.currency,
      is_fraud: payment.fraud ? '1' : '0',
    };
  });
}
