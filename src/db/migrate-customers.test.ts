import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../config.js';
import { connect, type Sql } from './index.js';
import { migrate } from './migrate.js';

// Migration 014 turned the free-text `customer` of payments and payment methods into customer objects. This
// builds a database as it stood at migration 013, with such free text in it, and runs the rest on it.

const MIGRATIONS = join(import.meta.dirname, 'migrations');
const runUrl = new URL(inject('adminDatabaseUrl'));
const name = `${runUrl.pathname.slice(1)}_customers014`;
let server: Sql;
let db: Sql;

const day = (n: number) => new Date(Date.UTC(2026, 0, n));

async function migrateUpTo(sql: Sql, last: string) {
  await sql`CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
  const files = readdirSync(MIGRATIONS)
    .filter((file) => file.endsWith('.sql') && file <= last)
    .sort();
  await sql.begin(async (tx) => {
    for (const file of files) {
      await tx.unsafe(readFileSync(join(MIGRATIONS, file), 'utf8'));
      await tx`INSERT INTO schema_migrations (name) VALUES (${file})`;
    }
  });
  return files;
}

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
  server = connect(runUrl.toString(), { max: 1 });
  await server.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await server.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(runUrl);
  url.pathname = `/${name}`;
  db = connect(url.toString(), { max: 1 });
  const applied = await migrateUpTo(db, '013_attempt_idempotency_key.sql');
  expect(applied.at(-1)).toBe('013_attempt_idempotency_key.sql');
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
  await db?.end();
  await server?.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await server?.end();
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
