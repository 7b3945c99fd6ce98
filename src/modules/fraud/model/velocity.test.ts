import { describe, expect, it } from 'vitest';
import { generate } from '../../../../scripts/fraud/generator.js';
import { decisions, type CsvRow } from './dataset.js';
import { VelocityTracker } from './velocity.js';
import type { VelocitySnapshot } from './signals.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// A direct, quadratic reading of the contract's definitions, to check the streaming store against.
// Counts and sums are by bucket: the 1 h window is now's minute and the 59 before it, the 24 h and
// 7 d windows now's hour and the 23 (167) before it. Distinct values and last seen are exact.
function naiveSnapshot(rows: CsvRow[], index: number): VelocitySnapshot {
  const now = Date.parse(rows[index]!.timestamp);
  const me = rows[index]!;
  const prior = rows.slice(0, index).map((row) => ({ row, time: Date.parse(row.timestamp) }));
  const within = (ms: number) => prior.filter((p) => now - p.time < ms);
  const bucketed = (ms: number) => {
    const width = ms === HOUR ? MINUTE : HOUR;
    return prior.filter((p) => Math.floor(p.time / width) > Math.floor(now / width) - ms / width);
  };
  const sameIn = (list: typeof prior, field: keyof CsvRow) =>
    me[field] === '' ? [] : list.filter((p) => p.row.tenant_id === me.tenant_id && p.row[field] === me[field]);
  const same = (field: keyof CsvRow, ms: number) => sameIn(within(ms), field);
  const count = (field: keyof CsvRow, ms: number) => sameIn(bucketed(ms), field).length;
  const sum = (field: keyof CsvRow, ms: number) =>
    sameIn(bucketed(ms), field).reduce((s, p) => s + Number(p.row.amount), 0);
  const distinct = (field: keyof CsvRow, ms: number) =>
    new Set(
      same(field, ms)
        .map((p) => p.row.card_fingerprint)
        .filter((c) => c !== ''),
    ).size;
  const customerWeek = same('customer_id', 7 * DAY);
  const customerWeekBuckets = sameIn(bucketed(7 * DAY), 'customer_id');
  const lastCard = same('card_fingerprint', 7 * DAY).at(-1);
  return {
    card_count_1h: count('card_fingerprint', HOUR),
    card_count_24h: count('card_fingerprint', DAY),
    card_count_7d: count('card_fingerprint', 7 * DAY),
    card_sum_1h: sum('card_fingerprint', HOUR),
    card_sum_24h: sum('card_fingerprint', DAY),
    card_sum_7d: sum('card_fingerprint', 7 * DAY),
    email_count_1h: count('email', HOUR),
    email_count_24h: count('email', DAY),
    email_count_7d: count('email', 7 * DAY),
    email_sum_24h: sum('email', DAY),
    ip_count_1h: count('ip', HOUR),
    ip_count_24h: count('ip', DAY),
    ip_count_7d: count('ip', 7 * DAY),
    ip_sum_24h: sum('ip', DAY),
    customer_count_1h: count('customer_id', HOUR),
    customer_count_24h: count('customer_id', DAY),
    customer_count_7d: count('customer_id', 7 * DAY),
    customer_sum_24h: sum('customer_id', DAY),
    customer_sum_7d: sum('customer_id', 7 * DAY),
    ip_distinct_cards_1h: distinct('ip', HOUR),
    ip_distinct_cards_24h: distinct('ip', DAY),
    customer_distinct_cards_24h: distinct('customer_id', DAY),
    customer_distinct_cards_7d: distinct('customer_id', 7 * DAY),
    customer_new_ip_country:
      me.ip_country !== '' &&
      customerWeekBuckets.length > 0 &&
      customerWeek.every((p) => p.row.ip_country !== me.ip_country)
        ? 1
        : 0,
    card_distinct_tenants_24h:
      me.card_fingerprint === ''
        ? 0
        : new Set(
            within(DAY)
              .filter((p) => p.row.card_fingerprint === me.card_fingerprint)
              .map((p) => p.row.tenant_id),
          ).size,
    seconds_since_card_last_seen: lastCard ? (now - lastCard.time) / 1000 : -1,
  };
}

function row(id: number, timestamp: string, fields: Partial<CsvRow>): CsvRow {
  return {
    id: String(id),
    timestamp,
    tenant_id: 'ten_a',
    customer_id: 'cus_1',
    email: 'a@example.com',
    card_fingerprint: 'fp_1',
    card_bin: '424242',
    card_country: 'US',
    ip: '192.0.2.1',
    ip_country: 'US',
    billing_country: 'US',
    amount: '1000',
    currency: 'USD',
    is_fraud: '0',
    ...fields,
  };
}

describe('velocity snapshot of the training stream', () => {
  it('equals a direct reading of the definitions on generated data, payment by payment', () => {
    // The generated stream plus a card-testing burst: eight cards from one IP within minutes.
    const burst = Array.from({ length: 8 }, (_, i) =>
      row(9000 + i, `2026-01-07T03:0${i}:30Z`, { customer_id: '', card_fingerprint: `fp_t${i}`, ip: '198.18.160.7' }),
    );
    const rows = [...generate({ days: 9, seed: 11, people: 150 }), ...burst].sort(
      (a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp),
    );
    expect(rows.length).toBeGreaterThan(300);
    const seen = { testingBurst: false, sharedCard: false, newCountry: false };
    let index = 0;
    for (const decision of decisions(rows)) {
      const velocity = decision.signals.velocity;
      expect(velocity, `row ${decision.id}`).toEqual(naiveSnapshot(rows, index));
      seen.testingBurst ||= velocity.ip_distinct_cards_1h >= 3;
      seen.sharedCard ||= velocity.card_distinct_tenants_24h >= 2;
      seen.newCountry ||= velocity.customer_new_ip_country === 1;
      index++;
    }
    expect(seen).toEqual({ testingBurst: true, sharedCard: true, newCountry: true });
  });

  it('uses sliding windows that exclude the payment itself and a payment exactly one window old', () => {
    const rows = [
      row(1, '2026-01-01T00:00:00Z', {}),
      row(2, '2026-01-01T00:30:00Z', { card_fingerprint: 'fp_2', ip_country: 'DE', ip: '203.0.113.9' }),
      row(3, '2026-01-01T01:00:00Z', { tenant_id: 'ten_b', customer_id: 'cus_9' }),
      row(4, '2026-01-01T01:00:00Z', { amount: '500', ip_country: 'FR', ip: '198.18.96.1' }),
    ];
    const result = [...decisions(rows)].map((d) => d.signals.velocity);
    expect(result[0]).toMatchObject({ card_count_7d: 0, seconds_since_card_last_seen: -1, customer_new_ip_country: 0 });
    expect(result[1]).toMatchObject({
      customer_count_1h: 1,
      customer_distinct_cards_24h: 1,
      customer_new_ip_country: 1,
      ip_count_24h: 0,
    });
    // Row 3: another tenant; the card is known platform-wide but not in this tenant.
    expect(result[2]).toMatchObject({
      card_count_7d: 0,
      card_distinct_tenants_24h: 1,
      seconds_since_card_last_seen: -1,
    });
    // Row 4: row 1 is exactly 1 h old, so outside the 1 h window and inside the 24 h one.
    expect(result[3]).toMatchObject({
      card_count_1h: 0,
      card_count_24h: 1,
      card_sum_24h: 1000,
      customer_count_1h: 1,
      customer_sum_24h: 2000,
      customer_distinct_cards_7d: 2,
      email_count_1h: 1,
      card_distinct_tenants_24h: 2,
      seconds_since_card_last_seen: 3600,
      customer_new_ip_country: 1,
    });
  });

  it('forgets keys with nothing left in any window, without changing what is read', () => {
    const tracker = new VelocityTracker();
    const event = (time: number, card: string) => ({
      time,
      tenant: 'ten_a',
      customer: null,
      email: null,
      card,
      ip: null,
      ipCountry: null,
      amount: 100,
    });
    tracker.record(event(0, 'fp_old'));
    expect(tracker.size).toBe(2);
    // A week and a day later, enough payments on another card to trigger a sweep.
    const start = 8 * DAY;
    for (let i = 0; i < 100_000; i++) tracker.record(event(start + i, 'fp_hot'));
    expect(tracker.size).toBe(2);
    expect(tracker.snapshot(event(start + 100_000, 'fp_old'))).toMatchObject({
      card_count_7d: 0,
      card_distinct_tenants_24h: 0,
      seconds_since_card_last_seen: -1,
    });
    expect(tracker.snapshot(event(start + 100_000, 'fp_hot'))).toMatchObject({ card_count_1h: 100_000 });
  });

  it('gives zeros for a missing key', () => {
    const rows = [row(1, '2026-01-01T00:00:00Z', {}), row(2, '2026-01-01T00:01:00Z', { email: '', customer_id: '' })];
    const second = [...decisions(rows)][1]!;
    expect(second.signals.hasEmail).toBe(false);
    expect(second.signals.velocity).toMatchObject({ email_count_1h: 0, customer_count_1h: 0, card_count_1h: 1 });
  });
});
