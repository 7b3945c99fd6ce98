import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Sql } from '../src/db/index.js';
import { auditSigningKey, signAuditCheckpoints, signCheckpoint } from '../src/modules/audit/checkpoints.js';
import { verifyAuditTrail } from '../src/modules/audit/verify.js';
import {
  bootAppOnOwnDatabase,
  call,
  createTenant,
  ok,
  TEST_AUDIT_SIGNING_KEY,
  type TestApp,
  type TestTenant,
} from './helpers.js';
import { runUntilExit } from './process.js';

// Tampering as the database superuser, on a database of this file's own: audit:verify reads every chain there.
let t: TestApp;
const trusted = [auditSigningKey(TEST_AUDIT_SIGNING_KEY).publicKey];
const FIVE_MINUTES = 300_000;

beforeAll(async () => {
  t = await bootAppOnOwnDatabase('audit_verify');
});
afterAll(() => t?.close());

const verify = (now = new Date()) =>
  verifyAuditTrail(t.admin, { publicKeys: trusted, now, maxUnsignedMs: 3 * FIVE_MINUTES });
const sign = () => signAuditCheckpoints(t.platform.workerSql, TEST_AUDIT_SIGNING_KEY);
const problemsOf = async (chain: string, now?: Date) => (await verify(now)).problems.filter((p) => p.chain === chain);

/** A tenant with five entries: its creation (tenant and two keys) and two keys made afterwards. */
async function tenantWithEntries(): Promise<TestTenant> {
  const tenant = await createTenant(t.app, 'Tampered tenant');
  for (const name of ['first', 'second'])
    await ok(await call(t.app, tenant.testKey, 'POST', '/v1/api_keys', { scopes: ['events:read'], name }));
  return tenant;
}

/** Runs `change` as the superuser with the append-only triggers off, as an attacker with that power could. */
async function tamper(change: (tx: Sql) => Promise<unknown>) {
  await t.admin.begin(async (tx) => {
    await tx`SET LOCAL session_replication_role = replica`;
    await change(tx as unknown as Sql);
  });
}

describe('audit:verify', () => {
  it('passes an untouched trail whose heads are signed', async () => {
    await tenantWithEntries();
    expect(await sign()).toBeGreaterThanOrEqual(1);
    const result = await verify();
    expect(result.problems).toEqual([]);
    expect(result.entries).toBeGreaterThanOrEqual(5);
    expect(result.checkpoints).toBeGreaterThanOrEqual(1);
    // Nothing moved: a second pass signs nothing.
    expect(await sign()).toBe(0);
  });

  it('finds an edited entry, whether its hashed content or a filter column was changed', async () => {
    const a = await tenantWithEntries();
    await tamper(
      (tx) => tx`UPDATE audit_entries SET content = replace(content, '"first"', '"frist"')
      WHERE tenant_id = ${a.id} AND seq = 4`,
    );
    expect(await problemsOf(a.id)).toEqual([
      expect.objectContaining({ seq: 4, problem: expect.stringContaining('does not match its hash') }),
    ]);
    const b = await tenantWithEntries();
    await tamper((tx) => tx`UPDATE audit_entries SET action = 'api_key.revoked' WHERE tenant_id = ${b.id} AND seq = 4`);
    expect(await problemsOf(b.id)).toEqual([
      expect.objectContaining({ seq: 4, problem: expect.stringContaining('action column differs') }),
    ]);
  });

  it('finds a deleted entry', async () => {
    const tenant = await tenantWithEntries();
    await tamper((tx) => tx`DELETE FROM audit_entries WHERE tenant_id = ${tenant.id} AND seq = 2`);
    expect(await problemsOf(tenant.id)).toEqual([
      expect.objectContaining({ seq: 3, problem: expect.stringContaining('expected entry 2 next, found entry 3') }),
    ]);
  });

  it('finds reordered entries', async () => {
    const tenant = await tenantWithEntries();
    await tamper(async (tx) => {
      await tx`UPDATE audit_entries SET seq = -1 WHERE tenant_id = ${tenant.id} AND seq = 4`;
      await tx`UPDATE audit_entries SET seq = 4 WHERE tenant_id = ${tenant.id} AND seq = 5`;
      await tx`UPDATE audit_entries SET seq = 5 WHERE tenant_id = ${tenant.id} AND seq = -1`;
    });
    expect(await problemsOf(tenant.id)).toEqual([
      expect.objectContaining({ seq: 4, problem: expect.stringContaining('does not link to the entry before it') }),
    ]);
  });

  it("finds a truncated end, even with the chain's head row rewound to match", async () => {
    const tenant = await tenantWithEntries();
    await sign();
    const [fourth] = await t.admin<{ hash: Buffer }[]>`
      SELECT hash FROM audit_entries WHERE tenant_id = ${tenant.id} AND seq = 4`;
    await tamper((tx) => tx`DELETE FROM audit_entries WHERE tenant_id = ${tenant.id} AND seq = 5`);
    expect(await problemsOf(tenant.id)).toEqual([
      expect.objectContaining({ problem: expect.stringContaining('entries were cut off the end') }),
      expect.objectContaining({ seq: 5, problem: expect.stringContaining('no longer exists') }),
    ]);
    await tamper(
      (tx) => tx`UPDATE audit_chains SET seq = 4, head_hash = ${fourth.hash} WHERE tenant_id = ${tenant.id}`,
    );
    expect(await problemsOf(tenant.id)).toEqual([
      expect.objectContaining({
        seq: 5,
        problem: 'checkpoint 1 signed entry 5, which no longer exists with that hash',
      }),
    ]);
  });

  it('finds a forged checkpoint and a missing one', async () => {
    const forged = await tenantWithEntries();
    await sign();
    const [checkpoint] = await t.admin<{ seq: number; hash: Buffer; signed_at: Date }[]>`
      SELECT seq, hash, signed_at FROM audit_checkpoints WHERE tenant_id = ${forged.id}`;
    const impostor = auditSigningKey(randomBytes(32).toString('base64'));
    const fake = { tenant_id: forged.id, number: 1, ...checkpoint };
    await tamper(
      (tx) => tx`UPDATE audit_checkpoints SET public_key = ${impostor.publicKey},
        signature = ${signCheckpoint(impostor.privateKey, fake)} WHERE tenant_id = ${forged.id}`,
    );
    expect(await problemsOf(forged.id)).toEqual([
      expect.objectContaining({ problem: expect.stringContaining('signed by a key that is not trusted') }),
    ]);
    await tamper(
      (tx) => tx`UPDATE audit_checkpoints SET public_key = ${trusted[0]}, seq = seq - 1 WHERE tenant_id = ${forged.id}`,
    );
    expect(await problemsOf(forged.id)).toEqual([
      expect.objectContaining({ problem: expect.stringContaining('invalid signature') }),
    ]);

    const missing = await tenantWithEntries();
    await sign();
    await ok(await call(t.app, missing.testKey, 'POST', '/v1/api_keys', { scopes: ['events:read'] }));
    await sign();
    await tamper((tx) => tx`DELETE FROM audit_checkpoints WHERE tenant_id = ${missing.id} AND number = 1`);
    expect(await problemsOf(missing.id)).toEqual([
      expect.objectContaining({ problem: 'checkpoint 1 is missing (the next is 2)' }),
    ]);
    await tamper((tx) => tx`DELETE FROM audit_checkpoints WHERE tenant_id = ${missing.id}`);
    expect(await problemsOf(missing.id)).toEqual([]);
    // Once the checkpoint worker has had three intervals, entries without a checkpoint are an alarm.
    const later = new Date(Date.now() + 4 * FIVE_MINUTES);
    expect(await problemsOf(missing.id, later)).toEqual([
      expect.objectContaining({ seq: 1, problem: expect.stringContaining('covered by no checkpoint') }),
    ]);
  });

  it('exits non-zero naming the first broken link (npm run audit:verify)', async () => {
    const tenant = await tenantWithEntries();
    await tamper(
      (tx) => tx`UPDATE audit_entries SET content = replace(content, '"second"', '"2nd"')
      WHERE tenant_id = ${tenant.id} AND seq = 5`,
    );
    const { code, output } = await runUntilExit('verify-audit', {
      DATABASE_URL: t.adminUrl,
      DATA_DIR: mkdtempSync(join(tmpdir(), 'payforward-audit-')),
      AUDIT_SIGNING_KEY: TEST_AUDIT_SIGNING_KEY,
      SEED_DEMO_TENANT: 'false',
    });
    expect(code, output).toBe(1);
    expect(output).toMatch(
      new RegExp(`chain ${tenant.id} at entry 5 \\(aud_\\w+\\): its content does not match its hash`),
    );
    expect(output).toContain('Audit trail broken');
  }, 120_000);
});

describe('append-only', () => {
  it('refuses UPDATE, DELETE and TRUNCATE to the application and worker roles, and to the superuser', async () => {
    const tenant = await tenantWithEntries();
    const url = (role: string, password: string) => {
      const u = new URL(t.adminUrl);
      u.username = role;
      u.password = password;
      return u.toString();
    };
    const roles = [
      connect(url(t.config.appDbRole, t.config.appDbPassword), { max: 1 }),
      connect(url(t.config.workerDbRole, t.config.workerDbPassword), { max: 1 }),
      t.admin,
    ];
    try {
      for (const sql of roles) {
        await expect(
          sql.begin(async (tx) => {
            await tx`SELECT set_config('app.scope', ${`${tenant.id}:f`}, true)`;
            await tx`UPDATE audit_entries SET action = 'x' WHERE tenant_id = ${tenant.id}`;
          }),
        ).rejects.toThrow(/permission denied|append-only/);
        await expect(sql`DELETE FROM audit_entries WHERE tenant_id = ${tenant.id}`).rejects.toThrow(
          /permission denied|append-only/,
        );
        await expect(sql`TRUNCATE audit_entries`).rejects.toThrow(/permission denied|append-only|must be owner/);
        await expect(sql`DELETE FROM audit_checkpoints`).rejects.toThrow(/permission denied|append-only/);
      }
    } finally {
      await roles[0].end();
      await roles[1].end();
    }
    const [{ count }] = await t.admin<{ count: number }[]>`
      SELECT count(*)::int AS count FROM audit_entries WHERE tenant_id = ${tenant.id}`;
    expect(count).toBe(5);
  });
});
