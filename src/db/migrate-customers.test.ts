import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseAt } from '../../test/migrations.js';
import { loadConfig } from '../config.js';
import type { Sql } from './index.js';
import { migrate } from './migrate.js';

// Migration 014 turned the free-text `customer` of payments and payment methods into customer objects. This
// builds a database as it stood at migration 013, with such free text in it, and runs the rest on it.

let scratch: Awaited<ReturnType<typeof databaseAt>>;
let db: Sql;

const day = (n: number) => new Date(Date.UTC(2026, 0, n));

async function payment(id: string, tenant: string, livemode: boolean, customer: string | null, created: Date) {
  await db`INSERT INTO payments (id, tenant_id, livemode, amount, currency, status, capture_method, customer, created_at)
    VALUES (${id}, ${tenant}, ${livemode}, 1000, 'usd', 'succeeded', 'automatic', ${customer}, ${created})`;
}

async function card(id: string, tenant: string, customer: string, created: Date) {
  await db`INSERT INTO payment_methods (id, tenant_id, livemode, type, brand, bin, last4, exp_month, exp_year, funding,
      fingerprint, cvc_check, customer, kek_id, wrapped_dek, pan_ciphertext, created_at)
    VALUES (${id}, ${tenant}, false, 'card', 'visa', '424242', '4242', 12, 2030, 'credit', ${`fp_${id}`}, 'pass',
      ${customer}, 'kek_1', '\\x00'::bytea, '\\x00'::bytea, ${created})`;
}

beforeAll(async () => {
  scratch = await databaseAt('customers014', '013_attempt_idempotency_key.sql');
  db = scratch.db;
  await db`INSERT INTO tenants (id, name) VALUES ('ten_a', 'Shop A'), ('ten_b', 'Shop B')`;
  // Shop A, test mode: Alice twice (first on day 3), Bob once and on a saved card, one payment without customer.
  await payment('pay_a1', 'ten_a', false, 'alice@example.com', day(5));
  await payment('pay_a2', 'ten_a', false, 'alice@example.com', day(3));
  await payment('pay_a3', 'ten_a', false, 'Bob Martin', day(4));
  await payment('pay_a4', 'ten_a', false, null, day(4));
  await card('pm_a1', 'ten_a', 'Bob Martin', day(2));
  // The same text in live mode and in another tenant is another customer each time.
  await payment('pay_a5', 'ten_a', true, 'alice@example.com', day(6));
  await payment('pay_b1', 'ten_b', false, 'alice@example.com', day(7));
  await migrate(db, loadConfig({}));
});

afterAll(async () => {
  await scratch?.drop();
});

describe('migration 014: free-text customers become customer objects', () => {
  it('makes one customer per distinct text, tenant and mode, keeping the text in metadata.legacy_customer', async () => {
    const customers = await db<
      { id: string; tenant_id: string; livemode: boolean; legacy: string; created_at: Date }[]
    >`SELECT id, tenant_id, livemode, metadata->>'legacy_customer' AS legacy, created_at FROM customers
      ORDER BY tenant_id, livemode, legacy`;
    expect(customers.map((c) => [c.tenant_id, c.livemode, c.legacy])).toEqual([
      ['ten_a', false, 'Bob Martin'],
      ['ten_a', false, 'alice@example.com'],
      ['ten_a', true, 'alice@example.com'],
      ['ten_b', false, 'alice@example.com'],
    ]);
    for (const customer of customers) expect(customer.id).toMatch(/^cus_[0-9a-hjkmnp-tv-z]{24}$/);
    expect(new Set(customers.map((c) => c.id)).size).toBe(4);
    // Created when the text was first seen: Alice's earlier payment, Bob's card before his payment.
    const created = Object.fromEntries(
      customers.map((c) => [`${c.tenant_id}/${c.livemode}/${c.legacy}`, c.created_at]),
    );
    expect(created['ten_a/false/alice@example.com']).toEqual(day(3));
    expect(created['ten_a/false/Bob Martin']).toEqual(day(2));
  });

  it('links every payment and card to its customer, and leaves a payment without one alone', async () => {
    const links = await db<{ id: string; customer: string | null; legacy: string | null; tenant_id: string }[]>`
      SELECT p.id, p.customer, c.metadata->>'legacy_customer' AS legacy, c.tenant_id FROM payments p
      LEFT JOIN customers c ON c.id = p.customer
      UNION ALL
      SELECT m.id, m.customer, c.metadata->>'legacy_customer', c.tenant_id FROM payment_methods m
      LEFT JOIN customers c ON c.id = m.customer
      ORDER BY id`;
    const byId = Object.fromEntries(links.map((l) => [l.id, l]));
    expect(byId.pay_a1.legacy).toBe('alice@example.com');
    expect(byId.pay_a1.customer).toBe(byId.pay_a2.customer);
    expect(byId.pay_a3.customer).toBe(byId.pm_a1.customer);
    expect(byId.pay_a3.legacy).toBe('Bob Martin');
    expect(byId.pay_a4.customer).toBeNull();
    expect(new Set([byId.pay_a1.customer, byId.pay_a5.customer, byId.pay_b1.customer]).size).toBe(3);
    expect(byId.pay_b1.tenant_id).toBe('ten_b');
    for (const link of links.filter((l) => l.id !== 'pay_a4')) expect(link.customer).toMatch(/^cus_/);
  });

  it('indexes the legacy text, so a shop can still search its customers by it', async () => {
    const rows = await db<{ object_id: string }[]>`
      SELECT object_id FROM metadata_index
      WHERE tenant_id = 'ten_a' AND livemode = false AND key = 'legacy_customer' AND value = 'Bob Martin'`;
    const [bob] = await db<{ customer: string }[]>`SELECT customer FROM payments WHERE id = 'pay_a3'`;
    expect(rows.map((r) => r.object_id)).toEqual([bob.customer]);
  });
});
