import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { loadConfig } from '../config.js';
import { appDatabaseUrl, connect, workerDatabaseUrl, type Sql } from './index.js';
import { FUNCTION_OWNER_ROLE, migrate } from './migrate.js';

// Who may run the SECURITY DEFINER functions, which see past row-level security: the worker role
// its cross-tenant worker_* scans, the API's role its auth_* key lookups, nobody else anything.

const config = loadConfig({});
const adminUrl = inject('adminDatabaseUrl');
const probeRole = `payforward_probe_${process.pid}`;
let admin: Sql;
let app: Sql;
let worker: Sql;

interface DefinerFunction {
  signature: string;
  name: string;
  owner_can_login: boolean;
  owner_bypasses_rls: boolean;
  config: string[] | null;
  public_can_execute: boolean;
  app_can_execute: boolean;
  worker_can_execute: boolean;
}

function definerFunctions(): Promise<DefinerFunction[]> {
  return admin<DefinerFunction[]>`
    SELECT p.oid::regprocedure::text AS signature, p.proname AS name, o.rolcanlogin AS owner_can_login,
      o.rolbypassrls AS owner_bypasses_rls, p.proconfig AS config,
      has_function_privilege(${probeRole}, p.oid, 'EXECUTE') AS public_can_execute,
      has_function_privilege(${config.appDbRole}, p.oid, 'EXECUTE') AS app_can_execute,
      has_function_privilege(${config.workerDbRole}, p.oid, 'EXECUTE') AS worker_can_execute
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles o ON o.oid = p.proowner
    WHERE n.nspname = 'public' AND p.prosecdef ORDER BY 1`;
}

beforeAll(async () => {
  admin = connect(adminUrl, { max: 2 });
  app = connect(appDatabaseUrl(adminUrl, config), { max: 1 });
  worker = connect(workerDatabaseUrl(adminUrl, config), { max: 1 });
  // A role with no grant of its own has exactly PUBLIC's rights.
  await admin.unsafe(`CREATE ROLE ${probeRole} NOLOGIN`);
});

afterAll(async () => {
  await admin?.unsafe(`DROP ROLE IF EXISTS ${probeRole}`);
  await Promise.all([admin?.end(), app?.end(), worker?.end()]);
});

describe('SECURITY DEFINER functions', () => {
  it('refuses the worker_* functions to the API role and runs them for the worker role', async () => {
    await expect(app`SELECT * FROM worker_stuck_payments('1 minute'::interval, 10)`).rejects.toMatchObject({
      code: '42501',
    });
    await expect(app`SELECT worker_purge_idempotency_keys('1000 days'::interval)`).rejects.toMatchObject({
      code: '42501',
    });
    expect(await worker`SELECT * FROM worker_stuck_payments('1 minute'::interval, 10)`).toBeInstanceOf(Array);
    expect(await app`SELECT * FROM auth_find_api_key_by_id('key_none')`).toEqual([]);
  });

  it('grants PUBLIC none of them, the API role only auth_*, the worker role only worker_*', async () => {
    const functions = await definerFunctions();
    expect(functions.filter((f) => f.name.startsWith('worker_')).length).toBeGreaterThan(10);
    for (const f of functions) {
      expect(f.public_can_execute, f.signature).toBe(false);
      expect(f.app_can_execute, f.signature).toBe(f.name.startsWith('auth_'));
      expect(f.worker_can_execute, f.signature).toBe(f.name.startsWith('worker_'));
    }
    await expect(
      admin.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL ROLE ${probeRole}`);
        await tx`SELECT * FROM auth_find_api_key_by_id('key_none')`;
      }),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('are owned by a NOLOGIN role and pin search_path with pg_temp last', async () => {
    const functions = await definerFunctions();
    expect(functions.length).toBeGreaterThan(10);
    for (const f of functions) {
      expect(f.owner_can_login, f.signature).toBe(false);
      expect(f.owner_bypasses_rls, f.signature).toBe(true);
      const searchPath = (f.config ?? []).find((setting) => setting.startsWith('search_path='));
      expect(searchPath, f.signature).toBeDefined();
      const schemas = searchPath!
        .slice('search_path='.length)
        .split(',')
        .map((s) => s.trim());
      expect(schemas.at(-1), f.signature).toBe('pg_temp');
      expect(schemas, f.signature).toEqual(['public', 'pg_temp']);
    }
    const [owner] = await admin<{ rolcanlogin: boolean; rolsuper: boolean }[]>`
      SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ${FUNCTION_OWNER_ROLE}`;
    expect(owner).toEqual({ rolcanlogin: false, rolsuper: false });
  });

  it('leaves the API role no way into the worker role', async () => {
    await expect(app.unsafe(`SET ROLE ${config.workerDbRole}`)).rejects.toMatchObject({ code: '42501' });
    await expect(app.unsafe(`SET ROLE ${FUNCTION_OWNER_ROLE}`)).rejects.toMatchObject({ code: '42501' });
    const [role] = await worker<{ rolsuper: boolean; rolbypassrls: boolean }[]>`
      SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`;
    expect(role).toEqual({ rolsuper: false, rolbypassrls: false });
  });

  it('covers the functions later migrations add, and refuses one named outside the rules', async () => {
    // Created as the superuser and with the old, unpinned search_path, as a migration would.
    await admin.unsafe(`CREATE FUNCTION worker_dbsec_probe() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
      SET search_path = public AS $$ SELECT count(*) FROM payments $$`);
    try {
      await migrate(admin, config);
      const [probe] = (await definerFunctions()).filter((f) => f.name === 'worker_dbsec_probe');
      expect(probe).toMatchObject({
        owner_can_login: false,
        config: ['search_path=public, pg_temp'],
        public_can_execute: false,
        app_can_execute: false,
        worker_can_execute: true,
      });
      await expect(app`SELECT worker_dbsec_probe()`).rejects.toMatchObject({ code: '42501' });
      expect((await worker`SELECT worker_dbsec_probe() AS n`)[0].n).toBeGreaterThanOrEqual(0);
    } finally {
      await admin.unsafe('DROP FUNCTION worker_dbsec_probe()');
    }
    await admin.unsafe(
      `CREATE FUNCTION dbsec_unnamed_probe() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT 1 $$`,
    );
    try {
      await expect(migrate(admin, config)).rejects.toThrow(
        /dbsec_unnamed_probe\(\) must be named worker_\* or auth_\*/,
      );
    } finally {
      await admin.unsafe('DROP FUNCTION dbsec_unnamed_probe()');
    }
  });
});
