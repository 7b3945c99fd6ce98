import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import type { Sql, Tx } from './index.js';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
const LOCK_ID = 7_240_001;

/**
 * Owns every SECURITY DEFINER function. It bypasses row-level security (those functions exist to
 * look across tenants) and cannot log in, so nobody can act with its rights except through the
 * fixed bodies of those functions.
 */
export const FUNCTION_OWNER_ROLE = 'payforward_definer';

export type DatabaseRoles = Pick<Config, 'appDbRole' | 'appDbPassword' | 'workerDbRole' | 'workerDbPassword'>;

/**
 * Applies pending migrations in file-name order, each in its own transaction, then (re)grants the
 * application role the least it needs: no UPDATE or DELETE beyond the tables that change state,
 * never SUPERUSER or BYPASSRLS. Safe to call concurrently: an advisory lock serialises callers.
 */
export async function migrate(admin: Sql, roles: DatabaseRoles): Promise<string[]> {
  const { appDbRole: appRole, workerDbRole: workerRole } = roles;
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
    const login = 'LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE';
    await ensureRole(tx, appRole, `${login} PASSWORD ${literal(roles.appDbPassword)}`);
    await ensureRole(tx, workerRole, `${login} PASSWORD ${literal(roles.workerDbPassword)}`);
    // Only a superuser may create a BYPASSRLS role: in a deployment whose migrator is not one, an
    // administrator creates it once beforehand (see the README).
    await ensureRole(tx, FUNCTION_OWNER_ROLE, 'NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE');
    await checkRoles(tx, roles);
    await tx.unsafe(`
      GRANT USAGE ON SCHEMA public TO "${appRole}", "${workerRole}", "${FUNCTION_OWNER_ROLE}";
      GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO "${appRole}";
      -- Column defaults draw from sequences (event_sequence numbers every event).
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "${appRole}", "${FUNCTION_OWNER_ROLE}";
      REVOKE ALL ON schema_migrations FROM "${appRole}";
      REVOKE ALL ON processor_reports FROM "${appRole}";
      -- The simulated processors' own records: the reconciliation worker reads their settlement reports.
      GRANT SELECT ON sim_processor_calls TO "${workerRole}";
      GRANT UPDATE ON tenants, api_keys, payments, payment_attempts, refunds, idempotency_keys, ledger_accounts, payouts, disputes, bank_accounts, customers, payment_methods TO "${appRole}";
      -- Erasing a customer pseudonymises the events that carried its personal data.
      GRANT UPDATE (data) ON events TO "${appRole}";
      GRANT UPDATE (settlement_id) ON ledger_transactions TO "${appRole}";
      GRANT UPDATE (payout_id) ON settlements TO "${appRole}";
      GRANT UPDATE ON webhook_endpoints, webhook_endpoint_secrets, webhook_deliveries TO "${appRole}";
      GRANT DELETE ON idempotency_keys, dispute_watch, metadata_index, balance_snapshots TO "${appRole}";
      GRANT UPDATE, DELETE ON fraud_rules, fraud_lists, fraud_list_items TO "${appRole}";
      GRANT UPDATE ON fraud_reviews TO "${appRole}";
      GRANT UPDATE, DELETE ON reconciliation_reports TO "${appRole}";
      GRANT DELETE ON reconciliation_items TO "${appRole}";
      GRANT UPDATE ON reports, report_schedules, cases TO "${appRole}";
      GRANT UPDATE ON checkout_sessions TO "${appRole}";
      -- A payment decided again (a new confirm) replaces its last decision.
      GRANT UPDATE ON payment_fraud_decisions TO "${appRole}";
      GRANT DELETE ON report_chunks TO "${appRole}";
      GRANT UPDATE (kek_id, wrapped_dek, pan_ciphertext, card_data_erased_at) ON payment_methods TO "${appRole}";
      REVOKE ALL ON vault_keks FROM "${appRole}";
      GRANT UPDATE ON users, user_passkeys, user_sessions TO "${appRole}";
      GRANT DELETE ON user_sessions TO "${appRole}";
      GRANT UPDATE, DELETE ON event_stream_leases TO "${appRole}";
      -- The analytics rollups are written by their triggers, fold and compaction only (035, 038, 040).
      REVOKE INSERT ON analytics_payment_changes, analytics_attempt_changes, analytics_hourly, analytics_daily, analytics_breakdown_hourly, analytics_breakdown_daily,
        analytics_platform_hourly, analytics_platform_daily, analytics_processor_hourly, analytics_platform_reviews
        FROM "${appRole}";
      -- The webhook fan-out's queue is written by the events trigger alone (047).
      REVOKE INSERT ON webhook_fan_out_queue FROM "${appRole}";
      -- The relay's queue likewise, and its registration is the relay's (049).
      REVOKE INSERT ON event_relay_queue FROM "${appRole}";
      REVOKE ALL ON event_relays FROM "${appRole}";
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "${FUNCTION_OWNER_ROLE}";
      -- Every fold deletes the logs' rows (040, 043), and PostgreSQL 15 lets only a table's owner VACUUM it: the
      -- worker owns these tables so that it can keep them small where autovacuum is off or slow to visit.
      ALTER TABLE analytics_payment_changes OWNER TO "${workerRole}";
      ALTER TABLE analytics_attempt_changes OWNER TO "${workerRole}";
      -- The purge makes and drops request_logs' daily partitions (048), which only their parent's owner may do; a
      -- partition it makes is its own. Checked first: ALTER ... OWNER locks the table even when nothing changes.
      DO $owner$
      DECLARE
        log_table regclass;
      BEGIN
        FOR log_table IN
          SELECT c.oid::regclass FROM pg_class c
          WHERE (c.oid = 'request_logs'::regclass
              OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'request_logs'::regclass))
            AND c.relowner <> '${FUNCTION_OWNER_ROLE}'::regrole
        LOOP
          EXECUTE format('ALTER TABLE %s OWNER TO %I', log_table, '${FUNCTION_OWNER_ROLE}');
        END LOOP;
      END $owner$;
      REVOKE ALL ON schema_migrations FROM "${FUNCTION_OWNER_ROLE}";
      -- The audit trail is append-only (020_audit.sql): its chain heads and checkpoints change only through the
      -- append trigger and the worker_audit_* functions, and no role may rewrite or remove an entry.
      REVOKE ALL ON audit_chains, audit_checkpoints FROM "${appRole}", "${workerRole}";
      REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries FROM "${appRole}", "${workerRole}", "${FUNCTION_OWNER_ROLE}";
      REVOKE UPDATE, DELETE, TRUNCATE ON audit_checkpoints FROM "${FUNCTION_OWNER_ROLE}";
      REVOKE DELETE, TRUNCATE ON audit_chains FROM "${FUNCTION_OWNER_ROLE}";
    `);
    await lockDownDefinerFunctions(tx, roles);
  });
  return applied;
}

function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

// Roles belong to the whole server, so databases migrated at once (parallel test runs) may race
// to create one: losing that race is fine. An existing role keeps its password (rotate it with
// ALTER ROLE); its attributes are checked below, not silently changed.
async function ensureRole(tx: Tx, name: string, attributes: string) {
  await tx.unsafe(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${literal(name)}) THEN
        CREATE ROLE "${name}" ${attributes};
      END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END $$`);
}

async function checkRoles(tx: Tx, { appDbRole, workerDbRole }: DatabaseRoles) {
  const rows = await tx<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean }[]>`
    SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles
    WHERE rolname IN (${appDbRole}, ${workerDbRole}, ${FUNCTION_OWNER_ROLE})`;
  for (const role of rows) {
    if (role.rolname === FUNCTION_OWNER_ROLE) {
      if (role.rolcanlogin || role.rolsuper)
        throw new Error(`role ${FUNCTION_OWNER_ROLE} owns the SECURITY DEFINER functions: it must be NOLOGIN`);
    } else if (role.rolsuper || role.rolbypassrls) {
      throw new Error(`role ${role.rolname} must not be SUPERUSER or BYPASSRLS: row-level security would not apply`);
    }
  }
  // Membership would let the API's role SET ROLE to the worker role and scan every tenant.
  const [membership] = await tx<{ app_in_worker: boolean; app_in_owner: boolean; worker_in_owner: boolean }[]>`
    SELECT pg_has_role(${appDbRole}, ${workerDbRole}, 'MEMBER') AS app_in_worker,
      pg_has_role(${appDbRole}, ${FUNCTION_OWNER_ROLE}, 'MEMBER') AS app_in_owner,
      pg_has_role(${workerDbRole}, ${FUNCTION_OWNER_ROLE}, 'MEMBER') AS worker_in_owner`;
  if (membership.app_in_worker || membership.app_in_owner || membership.worker_in_owner)
    throw new Error(
      `roles ${appDbRole} and ${workerDbRole} must not be members of ${workerDbRole} or ${FUNCTION_OWNER_ROLE}`,
    );
}

/**
 * Every SECURITY DEFINER function, including those later migrations add, by naming rule:
 * `worker_*` (cross-tenant scans) only for the worker role, `auth_*` (key lookup before any tenant
 * is known) only for the API's role, trigger functions for nobody (a trigger needs no EXECUTE
 * right to fire). Each is owned by the NOLOGIN owner role and has its search_path pinned with
 * pg_temp last, so a caller's temporary objects can never shadow the tables it reads.
 */
async function lockDownDefinerFunctions(tx: Tx, { appDbRole, workerDbRole }: DatabaseRoles) {
  const functions = await tx<{ signature: string; name: string; is_trigger: boolean }[]>`
    SELECT p.oid::regprocedure::text AS signature, p.proname AS name, p.prorettype = 'trigger'::regtype AS is_trigger
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND p.prosecdef
    ORDER BY 1`;
  const statements = functions.map(({ signature, name, is_trigger }) => {
    const grantee = name.startsWith('worker_') ? workerDbRole : name.startsWith('auth_') ? appDbRole : undefined;
    if (!grantee && !is_trigger)
      throw new Error(`SECURITY DEFINER function ${signature} must be named worker_* or auth_* (or be a trigger)`);
    return [
      `ALTER FUNCTION ${signature} OWNER TO "${FUNCTION_OWNER_ROLE}"`,
      `ALTER FUNCTION ${signature} SET search_path = public, pg_temp`,
      `REVOKE ALL ON FUNCTION ${signature} FROM PUBLIC, "${appDbRole}", "${workerDbRole}"`,
      ...(grantee ? [`GRANT EXECUTE ON FUNCTION ${signature} TO "${grantee}"`] : []),
    ].join(';\n');
  });
  if (statements.length) await tx.unsafe(statements.join(';\n'));
}
