import { currencyExponent } from '../../../lib/currencies.js';
import { VELOCITY_FIELDS, type RiskSignals, type VelocitySnapshot } from './signals.js';

// The one feature-vector function: training export and live scoring both call it, so the model sees
// the same numbers in both places. Adding or reordering a feature needs a newly trained model (the
// model artifact records the names it was trained on and loading checks them).

const MISSING_LABELS: Record<string, string> = {
  card_ip_country_mismatch: 'Card or IP country not given',
  billing_ip_country_mismatch: 'Billing or IP country not given',
  card_billing_country_mismatch: 'Card or billing country not given',
};

/**
 * Feature names in vector order, each with the label an analyst reads in a decision's reasons, and the
 * label for when the feature is missing (NaN): a missing country is not a country that differs.
 */
export const FEATURES: readonly { name: string; label: string; missingLabel: string }[] = withMissingLabels([
  { name: 'amount_log', label: 'Amount (log of major units)' },
  { name: 'hour_of_day', label: 'Hour of day (UTC)' },
  { name: 'day_of_week', label: 'Day of week (UTC)' },
  { name: 'card_ip_country_mismatch', label: 'Card country differs from IP country' },
  { name: 'billing_ip_country_mismatch', label: 'Billing country differs from IP country' },
  { name: 'card_billing_country_mismatch', label: 'Card country differs from billing country' },
  { name: 'has_email', label: 'Email given' },
  { name: 'has_customer', label: 'Customer given' },
  ...VELOCITY_FIELDS.map((field) => ({ name: field, label: velocityLabel(field) })),
  { name: 'amount_vs_customer_7d_avg', label: "Amount relative to the customer's 7 d average" },
  { name: 'amount_vs_card_7d_avg', label: "Amount relative to the card's 7 d average" },
  { name: 'customer_24h_vs_7d_daily', label: "Customer's 24 h spend relative to their 7 d daily average" },
]);

export const FEATURE_NAMES: readonly string[] = FEATURES.map((feature) => feature.name);

function withMissingLabels(features: { name: string; label: string }[]) {
  return features.map((f) => ({ ...f, missingLabel: MISSING_LABELS[f.name] ?? `${f.label}: not given` }));
}

function velocityLabel(field: keyof VelocitySnapshot): string {
  const special: Partial<Record<keyof VelocitySnapshot, string>> = {
    ip_distinct_cards_1h: 'Distinct cards from this IP in the last 1 h',
    ip_distinct_cards_24h: 'Distinct cards from this IP in the last 24 h',
    customer_distinct_cards_24h: 'Distinct cards of this customer in the last 24 h',
    customer_distinct_cards_7d: 'Distinct cards of this customer in the last 7 d',
    customer_new_ip_country: 'New IP country for this customer',
    card_distinct_tenants_24h: 'Merchants that saw this card in the last 24 h',
    seconds_since_card_last_seen: "Time since the card's previous payment",
  };
  const label = special[field];
  if (label) return label;
  const [subject, measure, window] = field.split('_') as [string, string, string];
  const what = measure === 'count' ? 'Payments' : 'Amount';
  const by = subject === 'ip' ? 'IP' : subject;
  return `${what} by this ${by} in the last ${window.replace(/(\d+)/, '$1 ')}`;
}

/** Missing (NaN) when either side is unknown, else 1 when they differ and 0 when they match. */
function mismatch(a: string | null, b: string | null): number {
  if (a === null || b === null) return NaN;
  return a.toUpperCase() === b.toUpperCase() ? 0 : 1;
}

/** Which key each velocity field counts under, in VELOCITY_FIELDS order: the key a payment may not have. */
const VELOCITY_SUBJECT: readonly ('ip' | 'customer' | 'email' | 'other')[] = VELOCITY_FIELDS.map((field) =>
  field.startsWith('ip_')
    ? 'ip'
    : field.startsWith('customer_')
      ? 'customer'
      : field.startsWith('email_')
        ? 'email'
        : 'other',
);

/**
 * The velocity fields of a key the payment does not have (no IP, no customer, no email) are missing
 * (NaN), not zero: LightGBM learns where missing values go at each split, instead of taking "no IP"
 * for "an IP never seen before".
 */
function velocityFeatures(signals: RiskSignals, into: number[], from: number) {
  const has = { ip: signals.hasIp, customer: signals.hasCustomer, email: signals.hasEmail, other: true };
  for (let i = 0; i < VELOCITY_FIELDS.length; i++)
    into[from + i] = has[VELOCITY_SUBJECT[i]!] ? signals.velocity[VELOCITY_FIELDS[i]!] : NaN;
}

function ratio(value: number, total: number, count: number): number {
  return count > 0 && total > 0 ? value / (total / count) : -1;
}

/** The model's input for one decision, in FEATURE_NAMES order. */
export function featureVector(signals: RiskSignals): number[] {
  const exponent = currencyExponent(signals.currency.toLowerCase()) ?? 2;
  const v = signals.velocity;
  const time = signals.timestamp;
  const x = [
    Math.log1p(signals.amount / 10 ** exponent),
    time.getUTCHours() + time.getUTCMinutes() / 60,
    time.getUTCDay(),
    mismatch(signals.cardCountry, signals.ipCountry),
    mismatch(signals.billingCountry, signals.ipCountry),
    mismatch(signals.cardCountry, signals.billingCountry),
    signals.hasEmail ? 1 : 0,
    signals.hasCustomer ? 1 : 0,
  ];
  velocityFeatures(signals, x, x.length);
  x.push(
    signals.hasCustomer ? ratio(signals.amount, v.customer_sum_7d, v.customer_count_7d) : NaN,
    ratio(signals.amount, v.card_sum_7d, v.card_count_7d),
    signals.hasCustomer ? ratio(v.customer_sum_24h, v.customer_sum_7d, 7) : NaN,
  );
  return x;
}
