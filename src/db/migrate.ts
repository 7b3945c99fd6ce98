import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './index.js';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
const LOCK_ID = 7_240_001;

/**
 * Applies pending migrations in file-name order, each in its own transaction, then (re)grants the
 * application role the least it needs: no UPDATE or DELETE beyond the tables that change state,
 * never SUPERUSER or BYPASSRLS. Safe to call concurrently: an advisory lock serialises callers.
 */
export async function migrate(admin: Sql, appRole: string, appPassword: string): Promise<string[]> {
  const applied: string[] = [];
  await admin.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${LOCK_ID})`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set((await tx<{ name: string }[]>`SELECT name FROM schema_migrations`).map((r) => r.name));
    const files = readdirSync(MIGRATIONS_DIR)
      .filter((f) => f.endsWith('.sql'))
      .sort();
    for (const file of files) {
      if (done.has(file)) continue;
      await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, file), 'utf8'));
      await tx`INSERT INTO schema_migrations (name) VALUES (${file})`;
      applied.push(file);
    }
    // Roles belong to the whole server, so databases migrated at once (parallel test runs) may
    // race to create it: losing that race is fine.
    const quotedPassword = appPassword.replace(/'/g, "''");
    await tx.unsafe(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${appRole}') THEN
        CREATE ROLE "${appRole}" LOGIN PASSWORD '${quotedPassword}' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
      END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END $$`);
    const [role] = await tx<
      { rolsuper: boolean; rolbypassrls: boolean }[]
    >`SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ${appRole}`;
    if (role.rolsuper || role.rolbypassrls)
      throw new Error(`role ${appRole} must not be SUPERUSER or BYPASSRLS: row-level security would not apply`);
    await tx.unsafe(`
      GRANT USAGE ON SCHEMA public TO "${appRole}";
      GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO "${appRole}";
      REVOKE ALL ON schema_migrations FROM "${appRole}";
      REVOKE ALL ON processor_reports FROM "${appRole}";
      GRANT UPDATE ON tenants, api_keys, payments, payment_attempts, refunds, idempotency_keys, ledger_accounts, payouts, disputes, bank_accounts TO "${appRole}";
      GRANT UPDATE (settlement_id) ON ledger_transactions TO "${appRole}";
      GRANT UPDATE (payout_id) ON settlements TO "${appRole}";
      GRANT DELETE ON idempotency_keys, dispute_watch TO "${appRole}";
      GRANT UPDATE, DELETE ON reconciliation_reports TO "${appRole}";
      GRANT DELETE ON reconciliation_items TO "${appRole}";
      GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO "${appRole}";
    `);
  });
  return applied;
}
