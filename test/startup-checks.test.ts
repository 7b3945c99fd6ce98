import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { appDatabaseUrl, connect, refusePrivilegedRoles, type Sql } from '../src/db/index.js';
import { createPlatform } from '../src/platform.js';
import { startOwnPostgres, type OwnPostgres } from './own-postgres.js';
import { freePort, productionSecrets, runUntilExit, startServer, stopServer, type ServerProcess } from './process.js';

// What the real binary refuses at start-up: weak or missing production secrets, and any
// database connection (primary or replica) whose role would skip row-level security.

const dataDir = mkdtempSync(join(tmpdir(), 'payforward-startup-'));
const adminUrl = inject('adminDatabaseUrl');
let admin: Sql;
let ownPg: OwnPostgres | undefined;
const servers: ServerProcess[] = [];

beforeAll(() => {
  admin = connect(adminUrl, { max: 2 });
});

afterAll(async () => {
  for (const server of servers) await stopServer(server);
  await admin?.end();
  await ownPg?.remove();
  rmSync(dataDir, { recursive: true, force: true });
});

async function ownServer(): Promise<OwnPostgres> {
  ownPg ??= await startOwnPostgres();
  return ownPg;
}

async function baseEnv(): Promise<Record<string, string>> {
  return { DATABASE_URL: adminUrl, PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
}

describe('NODE_ENV=production', () => {
  it('refuses to start, naming the variable, when a secret is missing', async () => {
    const env = { ...(await baseEnv()), ...productionSecrets() } as Record<string, string>;
    delete env.VAULT_FINGERPRINT_KEY;
    const { code, output } = await runUntilExit('api', env);
    expect(code, output).not.toBe(0);
    expect(output).toContain('VAULT_FINGERPRINT_KEY is not set');
    expect(existsSync(join(dataDir, 'secrets.json'))).toBe(false);
  });

  it('refuses weak secrets: a guessable password, a short token, an all-zero key', async () => {
    const env = {
      ...(await baseEnv()),
      ...productionSecrets(),
      APP_DB_PASSWORD: 'payforward_app',
      JWT_SECRET: 'test-jwt-secret-0123456789',
      VAULT_KEK: Buffer.alloc(32).toString('base64'),
    };
    const { code, output } = await runUntilExit('start', env);
    expect(code, output).not.toBe(0);
    expect(output).toContain('APP_DB_PASSWORD is too weak');
    expect(output).toContain('JWT_SECRET is too weak');
    expect(output).toContain('VAULT_KEK must be 32 random bytes');
    expect(output).not.toContain('payforward_app');
  });

  it('starts with strong secrets, prints no key and seeds no demo tenant', async () => {
    // A server of its own, where the roles are created with this test's passwords: on a shared
    // server they already exist with others, which password authentication would refuse.
    const pg = await ownServer();
    const secrets = productionSecrets();
    // SEED_DEMO_TENANT is left at its default (true): production overrides it.
    const server = await startServer('api', { ...(await baseEnv()), DATABASE_URL: pg.url, ...secrets });
    servers.push(server);
    const output = server.output();
    expect(output).toContain('PayForward API listening');
    for (const value of Object.values(secrets)) if (value !== 'production') expect(output).not.toContain(value);
    expect(output).not.toMatch(/sk_(test|live)_|Platform key|Test secret key|Demo tenant/);
    const pgAdmin = connect(pg.url, { max: 1 });
    try {
      expect(await pgAdmin`SELECT id FROM tenants`).toEqual([]);
    } finally {
      await pgAdmin.end();
    }
    expect(existsSync(join(dataDir, 'secrets.json'))).toBe(false);
  }, 90_000);
});

describe('database roles at start-up', () => {
  it('connects to the replica as the application role, whatever role its URL names', async () => {
    const config = loadConfig({ DATABASE_REPLICA_URL: adminUrl, DB_POOL_SIZE: '2' });
    const platform = createPlatform(config, appDatabaseUrl(adminUrl, config), {
      platformApiKey: 'op_platform_unused',
      vaultKeks: [Buffer.alloc(32, 1).toString('base64')],
      vaultFingerprintKey: Buffer.alloc(32, 2).toString('base64'),
      jwtSecret: 'unused',
      auditSigningKey: Buffer.alloc(32, 3).toString('base64'),
    });
    try {
      expect(platform.replica).not.toBe(platform.sql);
      const [row] = await platform.replica<{ user: string }[]>`SELECT current_user AS user`;
      expect(row.user).toBe(config.appDbRole);
    } finally {
      await platform.close();
    }
  });

  it('gives a process without workers (`api`) no worker-role connection at all', async () => {
    const config = loadConfig({ DB_POOL_SIZE: '2' });
    const platform = createPlatform(config, appDatabaseUrl(adminUrl, config), {
      platformApiKey: 'op_platform_unused',
      vaultKeks: [Buffer.alloc(32, 1).toString('base64')],
      vaultFingerprintKey: Buffer.alloc(32, 2).toString('base64'),
      jwtSecret: 'unused',
      auditSigningKey: Buffer.alloc(32, 3).toString('base64'),
    });
    try {
      expect(() => platform.workerSql`SELECT 1`).toThrow(/holds no worker-role connection/);
      await expect(platform.payments.recoverStuckPayments()).rejects.toThrow(/holds no worker-role connection/);
    } finally {
      await platform.close();
    }
  });

  it('refuses a connection whose role is SUPERUSER or BYPASSRLS', async () => {
    await expect(refusePrivilegedRoles([{ setting: 'DATABASE_URL', sql: admin }])).rejects.toThrow(
      /DATABASE_URL connects as role postgres, which has SUPERUSER and BYPASSRLS/,
    );
    const role = `payforward_bypass_probe_${process.pid}`;
    const password = randomBytes(24).toString('hex');
    await admin.unsafe(`CREATE ROLE ${role} LOGIN BYPASSRLS PASSWORD '${password}'`);
    const url = new URL(adminUrl);
    url.username = role;
    url.password = password;
    const bypass = connect(url.toString(), { max: 1 });
    try {
      await expect(refusePrivilegedRoles([{ setting: 'DATABASE_REPLICA_URL', sql: bypass }])).rejects.toThrow(
        new RegExp(`DATABASE_REPLICA_URL connects as role ${role}, which has BYPASSRLS`),
      );
    } finally {
      await bypass.end();
      await admin.unsafe(`DROP ROLE ${role}`);
    }
  });

  it('the binary exits non-zero when the replica role is a superuser there', async () => {
    // A replica server of its own whose application role has SUPERUSER: the migration on the
    // primary cannot see it, only the start-up check can.
    const replica = await ownServer();
    const replicaAdmin = connect(replica.url, { max: 1 });
    const appRole = loadConfig({}).appDbRole;
    await replicaAdmin.unsafe(
      `DO $$ BEGIN CREATE ROLE ${appRole} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    await replicaAdmin.unsafe(`ALTER ROLE ${appRole} SUPERUSER`);
    await replicaAdmin.end();
    const { code, output } = await runUntilExit('api', {
      ...(await baseEnv()),
      SEED_DEMO_TENANT: 'false',
      DATABASE_REPLICA_URL: replica.url,
    });
    expect(code, output).not.toBe(0);
    expect(output).toMatch(
      /DATABASE_REPLICA_URL \(as APP_DB_ROLE\) connects as role payforward_app, which has SUPERUSER/,
    );
    expect(output).not.toContain('PayForward API listening');
  });
});
