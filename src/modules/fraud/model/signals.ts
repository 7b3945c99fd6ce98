// The contract between the fraud engine (live decisions) and the fraud model (training and scoring).
// Both sides compute these numbers with the same definitions, so features at training time and at
// decision time agree. Windows are sliding: an earlier payment at time t counts in window W when
// decisionTime - W < t <= decisionTime (1 h = the 3,600 s before the decision time, 24 h, 7 d alike).

/** Prior activity, EXCLUDING the payment being decided, in the same tenant and mode unless stated. */
export interface VelocitySnapshot {
  card_count_1h: number;
  card_count_24h: number;
  card_count_7d: number;
  /** Minor units, summed as-is (whatever the currency). */
  card_sum_1h: number;
  card_sum_24h: number;
  card_sum_7d: number;
  email_count_1h: number;
  email_count_24h: number;
  email_count_7d: number;
  email_sum_24h: number;
  ip_count_1h: number;
  ip_count_24h: number;
  ip_count_7d: number;
  ip_sum_24h: number;
  customer_count_1h: number;
  customer_count_24h: number;
  customer_count_7d: number;
  customer_sum_24h: number;
  customer_sum_7d: number;
  ip_distinct_cards_1h: number;
  ip_distinct_cards_24h: number;
  customer_distinct_cards_24h: number;
  customer_distinct_cards_7d: number;
  /**
   * 1 when the customer had payments in the last 7 d and none from this IP country; else 0.
   * Payments whose IP country is unknown (null) never count as "from this IP country", and an unknown
   * IP country on the payment being decided gives 0.
   */
  customer_new_ip_country: number;
  /** Distinct tenants that saw this card fingerprint in the last 24 h (platform-wide; 0 if none). */
  card_distinct_tenants_24h: number;
  /**
   * Seconds since this card's previous payment (any tenant? no: same tenant), or -1 when none in 7 d.
   * Fractional when the timestamps are: (decision time - previous payment time) in ms / 1000.
   */
  seconds_since_card_last_seen: number;
}

/**
 * The velocity features in one fixed order: the model's feature vector lists them so, and stored decision inputs keep
 * their values as an array in this order (src/modules/fraud/engine.ts). Append only: payments already decided read
 * their inputs back by position.
 */
export const VELOCITY_FIELDS: readonly (keyof VelocitySnapshot)[] = [
  'card_count_1h',
  'card_count_24h',
  'card_count_7d',
  'card_sum_1h',
  'card_sum_24h',
  'card_sum_7d',
  'email_count_1h',
  'email_count_24h',
  'email_count_7d',
  'email_sum_24h',
  'ip_count_1h',
  'ip_count_24h',
  'ip_count_7d',
  'ip_sum_24h',
  'customer_count_1h',
  'customer_count_24h',
  'customer_count_7d',
  'customer_sum_24h',
  'customer_sum_7d',
  'ip_distinct_cards_1h',
  'ip_distinct_cards_24h',
  'customer_distinct_cards_24h',
  'customer_distinct_cards_7d',
  'customer_new_ip_country',
  'card_distinct_tenants_24h',
  'seconds_since_card_last_seen',
];

export interface RiskSignals {
  /** Minor units. */
  amount: number;
  /** ISO 4217, upper case. */
  currency: string;
  /** Decision time (UTC). */
  timestamp: Date;
  /** First 6 digits. */
  cardBin: string | null;
  /** ISO 3166 alpha-2. */
  cardCountry: string | null;
  ipCountry: string | null;
  billingCountry: string | null;
  hasEmail: boolean;
  hasCustomer: boolean;
  /** Whether the buyer's IP address was given (a server-to-server integration often has none). */
  hasIp: boolean;
  /** A missing key (no email/customer/ip) gives zeros here; the feature vector makes them missing (NaN). */
  velocity: VelocitySnapshot;
}

/** weight = contribution to the log-odds. */
export interface RiskReason {
  feature: string;
  weight: number;
}

export interface RiskScore {
  /** Integer 0–100. */
  riskScore: number;
  riskLevel: 'normal' | 'elevated' | 'highest';
  /** Top contributing factors, largest |weight| first, at most 5. */
  reasons: RiskReason[];
  modelVersion: string;
}
