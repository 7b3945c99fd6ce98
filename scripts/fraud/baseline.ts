import { currencyExponent } from '../../src/lib/currencies.js';
import type { RiskSignals } from '../../src/modules/fraud/model/signals.js';

// The rules-only baseline the model is measured against: a fixed set of velocity, amount and country
// rules of the kind a tenant's default rule pack holds. Its score is the number of rules a payment hits;
// any hit declines.

export const BASELINE_RULES: readonly { name: string; hits: (s: RiskSignals, major: number) => boolean }[] = [
  { name: 'card testing: 5+ distinct cards from the IP in 1 h', hits: (s) => s.velocity.ip_distinct_cards_1h >= 5 },
  { name: 'card velocity: 4+ payments on the card in 1 h', hits: (s) => s.velocity.card_count_1h >= 4 },
  {
    name: 'card country differs from IP country, 100+ major units',
    hits: (s, major) => s.cardCountry !== null && s.ipCountry !== null && s.cardCountry !== s.ipCountry && major >= 100,
  },
  {
    name: 'new IP country for the customer, 200+ major units',
    hits: (s, major) => s.velocity.customer_new_ip_country === 1 && major >= 200,
  },
  { name: 'card seen at 3+ merchants in 24 h', hits: (s) => s.velocity.card_distinct_tenants_24h >= 3 },
  {
    name: "5x the customer's 7 d average, 200+ major units",
    hits: (s, major) =>
      s.velocity.customer_count_7d > 0 &&
      s.amount >= (5 * s.velocity.customer_sum_7d) / s.velocity.customer_count_7d &&
      major >= 200,
  },
];

export function baselineScore(signals: RiskSignals): number {
  const major = signals.amount / 10 ** (currencyExponent(signals.currency.toLowerCase()) ?? 2);
  return BASELINE_RULES.filter((rule) => rule.hits(signals, major)).length;
}
