import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseAt } from '../../test/migrations.js';
import { loadConfig } from '../config.js';
import { decisionInputs, type StoredInputs } from '../modules/fraud/engine.js';
import type { Sql } from './index.js';
import { migrate } from './migrate.js';

// Migration 034 moved each payment's last fraud decision off the payments row into payment_fraud_decisions. This
// builds a database as it stood at migration 033, with decisions on payment rows (velocity by name, as stored then),
// and runs the rest on it.

let scratch: Awaited<ReturnType<typeof databaseAt>>;
let db: Sql;

const outcome = {
  action: 'review',
  risk_score: 55,
  risk_level: 'elevated',
  rule: { id: 'rule_1', name: 'review elevated' },
  reasons: [{ feature: 'Amount (log of major units)', weight: 1.25 }],
  model_version: '2026-11-30.2',
};
const inputs = {
  amount: 125000,
  currency: 'usd',
  card: { bin: '424242', brand: 'visa', country: 'US', fingerprint: 'fp_1', funding: 'credit' },
  ip: { address: '203.0.113.9', country: 'FR' },
  billing_country: 'US',
  email: 'buyer@example.com',
  customer: '',
  risk_score: 55,
  risk_level: 'elevated',
  velocity: { card_count_1h: 3, ip_distinct_cards_24h: 2, seconds_since_card_last_seen: 12.5 },
  hour: 14,
  day_of_week: 2,
  shadow_matches: [],
};

beforeAll(async () => {
  scratch = await databaseAt('fraud034', '033_webhook_worker_plans.sql');
  db = scratch.db;
  await db`INSERT INTO tenants (id, name) VALUES ('ten_a', 'Shop A')`;
  await db`INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method, fraud_outcome,
      fraud_inputs, updated_at)
    VALUES ('pay_decided', 'ten_a', false, 125000, 'usd', 'succeeded', 'automatic', ${db.json(outcome)},
      ${db.json(inputs)}, '2026-11-02T10:00:00Z'),
      ('pay_undecided', 'ten_a', false, 1000, 'usd', 'requires_payment_method', 'automatic', NULL, NULL, now())`;
  await migrate(db, loadConfig({}));
});

afterAll(async () => {
  await scratch?.drop();
});

describe('migration 034: fraud decisions move to payment_fraud_decisions', () => {
  it('moves each decided payment’s outcome and inputs, and only those', async () => {
    const rows = await db<
      { payment_id: string; tenant_id: string; livemode: boolean; outcome: unknown; inputs: StoredInputs }[]
    >`SELECT payment_id, tenant_id, livemode, outcome, inputs, decided_at FROM payment_fraud_decisions`;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ payment_id: 'pay_decided', tenant_id: 'ten_a', livemode: false, outcome, inputs });
    expect(rows[0]).toHaveProperty('decided_at', new Date('2026-11-02T10:00:00Z'));
    // The older named velocity still reads back for backtests.
    const read = decisionInputs(rows[0].inputs);
    expect(read.velocity.card_count_1h).toBe(3);
    expect(read.velocity.seconds_since_card_last_seen).toBe(12.5);
  });

  it('drops the columns from payments', async () => {
    const columns = await db<{ column_name: string }[]>`
      SELECT column_name FROM information_schema.columns WHERE table_name = 'payments' AND column_name LIKE 'fraud_%'`;
    expect(columns.map((c) => c.column_name)).toEqual(['fraud_details']);
  });
});
