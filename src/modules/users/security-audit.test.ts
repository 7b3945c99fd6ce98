import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, call, createTenant, ok, TestClock, type TestApp } from '../../../test/helpers.js';
import { asMember, newMember, PASSWORD, signIn } from '../../../test/team.js';
import { MAX_FAILED_LOGINS } from './service.js';

const clock = new TestClock();
clock.freeze(Date.UTC(2026, 10, 29, 12, 0, 0));

let t: TestApp;
let tenant: Awaited<ReturnType<typeof createTenant>>;

beforeAll(async () => {
  t = await bootApp({}, undefined, { clock });
  tenant = await createTenant(t.app, 'Audited team');
});
afterAll(() => t.close());

/** The tenant's audit entries about one user, oldest first, as the live-mode audit log lists them. */
async function entriesAbout(userId: string) {
  const page = await ok(await call(t.app, tenant.liveKey, 'GET', '/v1/audit_logs?limit=100'));
  return (page.data as { action: string; target: { id: string } }[])
    .filter((entry) => entry.target.id === userId)
    .reverse();
}

describe('security actions of team users in the audit trail', () => {
  it('records the invitation, enrolment, sign-ins, a failed sign-in, the role change and the deactivation', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'developer');
    const refused = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: { email: member.email, password: 'not the password at all' },
    });
    expect(refused.statusCode).toBe(401);
    await signIn(t.app, clock, member);
    await ok(await call(t.app, tenant.liveKey, 'PATCH', `/v1/users/${member.id}`, { role: 'analyst' }));
    await ok(await call(t.app, tenant.liveKey, 'DELETE', `/v1/users/${member.id}`));

    const entries = await entriesAbout(member.id);
    const actions = entries.map((entry) => entry.action);
    for (const action of [
      'user.invited',
      'user.mfa_enrolled',
      'user.login_failed',
      'user.login_succeeded',
      'user.role_changed',
      'user.deactivated',
    ])
      expect(actions, action).toContain(action);
    expect(entries.find((e) => e.action === 'user.role_changed')).toMatchObject({
      changes: { before: { role: 'developer' }, after: { role: 'analyst' } },
    });
    expect(entries.find((e) => e.action === 'user.login_failed')).toMatchObject({
      changes: { after: { reason: 'wrong_password' } },
      actor: { ip: '127.0.0.1' },
    });
    const stored = JSON.stringify(await t.admin`SELECT content FROM audit_entries WHERE target_id = ${member.id}`);
    expect(stored).not.toContain(PASSWORD);
    expect(stored).not.toContain(member.secret);
  });

  it('a sign-in attempt for an unknown email joins the platform chain, naming no user', async () => {
    const before = await t.admin`SELECT count(*)::int AS n FROM audit_entries WHERE action = 'user.login_failed'
      AND tenant_id = '__platform__'`;
    await t.app.inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: { email: 'nobody@example.com', password: 'whatever it may be' },
    });
    const after = await t.admin`SELECT count(*)::int AS n, max(content::text) AS last FROM audit_entries
      WHERE action = 'user.login_failed' AND tenant_id = '__platform__'`;
    expect(after[0].n).toBe(before[0].n + 1);
    expect(after[0].last).toContain('unknown_email');
  });

  it('records a wrong second factor, the lockout after too many wrong passwords, and a password change', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'analyst');
    const challenge = await ok(
      await t.app.inject({ method: 'POST', url: '/v1/sessions', payload: { email: member.email, password: PASSWORD } }),
    );
    const wrongCode = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: { login_token: challenge.login_token, code: '000000' },
    });
    expect(wrongCode.statusCode).toBe(401);

    const session = await signIn(t.app, clock, member);
    const NEW_PASSWORD = 'a different staple horse battery';
    await ok(
      await asMember(t.app, session, 'POST', '/v1/users/me/password', {
        current_password: PASSWORD,
        new_password: NEW_PASSWORD,
      }),
    );
    for (let i = 0; i < MAX_FAILED_LOGINS; i++) {
      const refused = await t.app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: member.email, password: `wrong password number ${i}` },
      });
      expect(refused.statusCode).toBe(401);
    }

    const entries = await entriesAbout(member.id);
    const actions = entries.map((entry) => entry.action);
    for (const action of ['user.mfa_failed', 'user.password_changed', 'user.locked_out'])
      expect(actions, action).toContain(action);
    expect(actions.filter((action) => action === 'user.locked_out')).toHaveLength(1);
    expect(entries.find((e) => e.action === 'user.mfa_failed')).toMatchObject({
      changes: { after: { method: 'totp' } },
    });
    expect(entries.find((e) => e.action === 'user.locked_out')).toMatchObject({
      changes: { after: { locked_until: new Date(clock.now() + 30 * 60 * 1000).toISOString() } },
    });
    const stored = JSON.stringify(await t.admin`SELECT content FROM audit_entries WHERE target_id = ${member.id}`);
    expect(stored).not.toContain(NEW_PASSWORD);
  });
});
