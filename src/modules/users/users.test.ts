import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { bootApp, call, createTenant, ok, PLATFORM_KEY, TestClock, type TestApp } from '../../../test/helpers.js';
import { freePort } from '../../../test/process.js';
import {
  acceptInvitation,
  asMember,
  invitationToken,
  newMember,
  outboxToken,
  PASSWORD,
  totpCode,
} from '../../../test/team.js';
import { passwordProblem } from './passwords.js';

const clock = new TestClock();
clock.freeze(Date.UTC(2026, 10, 29, 12, 0, 0));

let t: TestApp;
let tenant: Awaited<ReturnType<typeof createTenant>>;

beforeAll(async () => {
  t = await bootApp({}, undefined, { clock });
  tenant = await createTenant(t.app);
});
afterAll(() => t.close());

const login = (email: string, password: string) =>
  t.app.inject({ method: 'POST', url: '/v1/sessions', payload: { email, password } });

describe('invitations by real SMTP', () => {
  it('sends the link through SMTP_URL; accepting sets the password and enrols TOTP', async () => {
    const received: string[] = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, done) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          received.push(Buffer.concat(chunks).toString('utf8'));
          done();
        });
      },
    });
    const port = await freePort();
    await new Promise<void>((resolve) => smtp.listen(port, '127.0.0.1', resolve));
    const mailing = await bootApp({ SMTP_URL: `smtp://127.0.0.1:${port}` }, undefined, { clock });
    try {
      // No dev outbox once SMTP is configured.
      expect((await call(mailing.app, PLATFORM_KEY, 'GET', '/v1/dev/outbox')).statusCode).toBe(404);
      const team = await createTenant(mailing.app);
      const invited = await ok(
        await call(mailing.app, team.liveKey, 'POST', '/v1/users', { email: 'Ada@Example.com', role: 'admin' }),
      );
      expect(invited).toMatchObject({ object: 'user', email: 'ada@example.com', role: 'admin', status: 'invited' });
      expect(received).toHaveLength(1);
      expect(received[0]).toMatch(/^To: ada@example\.com/m);
      const token = invitationToken(received[0]);
      const member = await acceptInvitation(mailing.app, clock, 'ada@example.com', token);
      expect(member.id).toBe(invited.id);
      expect(member.recoveryCodes).toHaveLength(10);
      const me = await ok(await asMember(mailing.app, member, 'GET', '/v1/users/me'));
      expect(me).toMatchObject({ status: 'active', mfa: { totp: true, recovery_codes_remaining: 10 } });
      // Single use.
      const again = await mailing.app.inject({
        method: 'POST',
        url: `/v1/invitations/${token}/accept`,
        payload: { password: PASSWORD },
      });
      expect(again.statusCode).toBe(404);
      // Only its hash is stored.
      const [row] = await mailing.admin`SELECT invitation_hash, password_hash FROM users WHERE id = ${member.id}`;
      expect(row.invitation_hash).toBeNull();
      expect(row.password_hash).toMatch(/^\$argon2id\$/);
    } finally {
      await mailing.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }
    // A second app boots here: on a busy machine that alone can take most of the default 30 s.
  }, 120_000);

  it('an expired invitation is refused', async () => {
    const email = 'late@example.com';
    await ok(await call(t.app, tenant.liveKey, 'POST', '/v1/users', { email, role: 'analyst' }));
    const token = await outboxToken(t.app, email);
    clock.advance(73 * 3600 * 1000);
    const response = await t.app.inject({
      method: 'POST',
      url: `/v1/invitations/${token}/accept`,
      payload: { password: PASSWORD },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('invitation_expired');
  });
});

describe('invitation resend', () => {
  const resend = (key: string, id: string) => call(t.app, key, 'POST', `/v1/users/${id}/resend_invitation`);

  it('a send that failed after the commit is answered 502, the user stays invited, and a resend delivers a working link', async () => {
    const received: string[] = [];
    let refuseNext = true;
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, done) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          if (refuseNext) {
            refuseNext = false;
            return done(Object.assign(new Error('mailbox busy, try later'), { responseCode: 451 }));
          }
          received.push(Buffer.concat(chunks).toString('utf8'));
          done();
        });
      },
    });
    const port = await freePort();
    await new Promise<void>((resolve) => smtp.listen(port, '127.0.0.1', resolve));
    const mailing = await bootApp({ SMTP_URL: `smtp://127.0.0.1:${port}` }, undefined, { clock });
    try {
      const team = await createTenant(mailing.app);
      const email = 'grace@example.com';
      const failed = await call(mailing.app, team.liveKey, 'POST', '/v1/users', { email, role: 'developer' });
      expect(failed.statusCode).toBe(502);
      expect(failed.json().error).toMatchObject({ type: 'api_error', code: 'invitation_not_sent' });
      const [pending] = (await ok(await call(mailing.app, team.liveKey, 'GET', '/v1/users'))).data;
      expect(pending).toMatchObject({ email, status: 'invited' });
      expect(failed.json().error.message).toContain(`/v1/users/${pending.id}/resend_invitation`);

      // Inviting the same email again points to the resend instead of a bare "taken".
      const again = await call(mailing.app, team.liveKey, 'POST', '/v1/users', { email, role: 'developer' });
      expect(again.statusCode).toBe(400);
      expect(again.json().error).toMatchObject({ code: 'invitation_pending', param: 'email' });
      expect(again.json().error.message).toContain(pending.id);

      const resent = await ok(
        await call(mailing.app, team.liveKey, 'POST', `/v1/users/${pending.id}/resend_invitation`),
      );
      expect(resent).toMatchObject({ id: pending.id, status: 'invited' });
      expect(received).toHaveLength(1);
      expect(received[0]).toMatch(/^To: grace@example\.com/m);
      const member = await acceptInvitation(mailing.app, clock, email, invitationToken(received[0]));
      expect(member.id).toBe(pending.id);

      const audit = await ok(await call(mailing.app, team.liveKey, 'GET', `/v1/audit_logs?object=${pending.id}`));
      const resentEntry = audit.data.find((e: { action: string }) => e.action === 'user.invitation_resent');
      expect(resentEntry).toMatchObject({ actor: { type: 'api_key', id: team.liveKeyId } });
      expect(JSON.stringify(audit.data)).not.toContain(invitationToken(received[0]));
    } finally {
      await mailing.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }
  }, 120_000);

  it('an expired link is replaced: the old one no longer works, the new one does for 72 hours', async () => {
    const email = 'resend.expired@example.com';
    const invited = await ok(await call(t.app, tenant.liveKey, 'POST', '/v1/users', { email, role: 'analyst' }));
    const oldToken = await outboxToken(t.app, email);
    clock.advance(73 * 3600 * 1000);
    await ok(await resend(tenant.liveKey, invited.id));
    const newToken = await outboxToken(t.app, email);
    expect(newToken).not.toBe(oldToken);
    const stale = await t.app.inject({
      method: 'POST',
      url: `/v1/invitations/${oldToken}/accept`,
      payload: { password: PASSWORD },
    });
    expect(stale.statusCode).toBe(404);
    clock.advance(71 * 3600 * 1000);
    const member = await acceptInvitation(t.app, clock, email, newToken);
    expect(member.id).toBe(invited.id);
    // Accepted: nothing left to resend.
    const accepted = await resend(tenant.liveKey, invited.id);
    expect(accepted.statusCode).toBe(400);
    expect(accepted.json().error).toMatchObject({ code: 'user_not_invited', param: 'id' });
  });

  it("another team's pending email stays email_taken; 401, 403 and 404 for the wrong caller", async () => {
    const email = 'resend.other@example.com';
    const invited = await ok(await call(t.app, tenant.liveKey, 'POST', '/v1/users', { email, role: 'support' }));
    const other = await createTenant(t.app, 'Other team');
    const taken = await call(t.app, other.liveKey, 'POST', '/v1/users', { email, role: 'support' });
    expect(taken.statusCode).toBe(400);
    expect(taken.json().error.code).toBe('email_taken');
    expect(taken.body).not.toContain(invited.id);
    expect((await resend(other.liveKey, invited.id)).statusCode).toBe(404);
    expect((await resend(tenant.testKey, invited.id)).statusCode).toBe(403);
    const anonymous = await t.app.inject({ method: 'POST', url: `/v1/users/${invited.id}/resend_invitation` });
    expect(anonymous.statusCode).toBe(401);
    const readOnly = await ok(await call(t.app, tenant.liveKey, 'POST', '/v1/api_keys', { scopes: ['users:read'] }));
    expect((await resend(readOnly.secret, invited.id)).statusCode).toBe(403);
    const bad = await call(t.app, tenant.liveKey, 'POST', `/v1/users/${invited.id}/resend_invitation`, { x: 1 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.type).toBe('invalid_request_error');
  });
});

describe('passwords', () => {
  it('refuses short, common and common-with-decoration passwords', () => {
    expect(passwordProblem('short', 'a@b.c')).toMatch(/12 characters/);
    expect(passwordProblem('baseball1234', 'a@b.c')).toMatch(/common/);
    expect(passwordProblem('Password123456!', 'a@b.c')).toMatch(/common/);
    expect(passwordProblem('aaaaaaaaaaaaaaa', 'a@b.c')).toMatch(/repeats/);
    expect(passwordProblem('grace.hopper-rocks', 'grace.hopper@example.com')).toMatch(/email/);
    expect(passwordProblem(PASSWORD, 'a@b.c')).toBeUndefined();
  });

  it('an invitation is not accepted with a weak password (400, the token still works)', async () => {
    const email = 'weak@example.com';
    await ok(await call(t.app, tenant.liveKey, 'POST', '/v1/users', { email, role: 'support' }));
    const token = await outboxToken(t.app, email);
    const weak = await t.app.inject({
      method: 'POST',
      url: `/v1/invitations/${token}/accept`,
      payload: { password: 'qwerty123456' },
    });
    expect(weak.statusCode).toBe(400);
    expect(weak.json().error).toMatchObject({ code: 'password_too_weak', param: 'password' });
    await acceptInvitation(t.app, clock, email, token);
  });
});

describe('sign-in', () => {
  it('TOTP with a fixed clock: a code is good in its window, once, and not a minute later', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'developer');
    const challenge = await ok(await login(member.email, PASSWORD));
    expect(challenge.methods).toEqual(['totp', 'recovery_code']);
    const code = totpCode(member.secret, clock);
    clock.advance(60_000);
    const stale = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: { login_token: challenge.login_token, code },
    });
    expect(stale.statusCode).toBe(401);
    expect(stale.json().error.code).toBe('invalid_mfa_code');
    const fresh = totpCode(member.secret, clock);
    const accepted = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: { login_token: challenge.login_token, code: fresh },
    });
    expect(accepted.statusCode, accepted.body).toBe(200);
    const cookie = String(accepted.headers['set-cookie']);
    expect(cookie).toMatch(/pf_session=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Strict/);
    // The login token is spent; the same code cannot open a second session either.
    const replay = await ok(await login(member.email, PASSWORD));
    const reused = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: { login_token: replay.login_token, code: fresh },
    });
    expect(reused.statusCode).toBe(401);
  });

  it('recovery codes work once each', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'analyst');
    const [code] = member.recoveryCodes;
    const first = await ok(await login(member.email, PASSWORD));
    const used = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: { login_token: first.login_token, recovery_code: code },
    });
    expect(used.statusCode, used.body).toBe(200);
    const second = await ok(await login(member.email, PASSWORD));
    const reused = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: { login_token: second.login_token, recovery_code: code },
    });
    expect(reused.statusCode).toBe(401);
    const [row] = await t.admin`SELECT cardinality(recovery_code_hashes) AS left FROM users WHERE id = ${member.id}`;
    expect(row.left).toBe(9);
  });

  it('answers an unknown email exactly as a wrong password, after hashing just as long', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'view_only');
    const timed = async (email: string) => {
      const started = process.hrtime.bigint();
      const response = await login(email, 'not the password at all');
      return { response, ms: Number(process.hrtime.bigint() - started) / 1e6 };
    };
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      const a = await timed(member.email);
      const b = await timed(`nobody${i}@example.com`);
      expect(a.response.statusCode).toBe(401);
      expect(b.response.statusCode).toBe(401);
      const { request_id: _a, ...errorA } = a.response.json().error;
      const { request_id: _b, ...errorB } = b.response.json().error;
      expect(errorB).toEqual(errorA);
      known.push(a.ms);
      unknown.push(b.ms);
    }
    const median = (values: number[]) => values.sort((x, y) => x - y)[2];
    // Without the dummy hash an unknown email answers in a millisecond against ~30 ms of argon2id.
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.3);
  });

  it('locks the account for 30 minutes after 10 failures, with the same answer', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'support');
    for (let i = 0; i < 10; i++) expect((await login(member.email, 'wrong password ' + i)).statusCode).toBe(401);
    const locked = await login(member.email, PASSWORD);
    expect(locked.statusCode).toBe(401);
    expect(locked.json().error.code).toBe('invalid_credentials');
    const user = await ok(await call(t.app, tenant.liveKey, 'GET', `/v1/users/${member.id}`));
    expect(user.locked_until).toBe(Math.floor(clock.now() / 1000) + 30 * 60);
    clock.advance(30 * 60 * 1000);
    expect((await login(member.email, PASSWORD)).statusCode).toBe(200);
  });
});

describe('team management', () => {
  it('lists, reads and changes roles; a role change ends the member’s sessions', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'developer');
    const list = await ok(await call(t.app, tenant.liveKey, 'GET', '/v1/users?limit=100'));
    expect(list.data.map((u: { id: string }) => u.id)).toContain(member.id);
    expect((await asMember(t.app, member, 'GET', '/v1/payments')).statusCode).toBe(200);
    const changed = await ok(await call(t.app, tenant.liveKey, 'PATCH', `/v1/users/${member.id}`, { role: 'analyst' }));
    expect(changed.role).toBe('analyst');
    const ended = await asMember(t.app, member, 'GET', '/v1/payments');
    expect(ended.statusCode).toBe(401);
    expect(ended.json().error.code).toBe('session_expired');
  });

  it('an admin cannot make an owner; a developer cannot invite; a test key cannot manage users', async () => {
    const admin = await newMember(t.app, clock, tenant.liveKey, 'admin');
    const owner = await asMember(t.app, admin, 'POST', '/v1/users', { email: 'o@example.com', role: 'owner' });
    expect(owner.statusCode).toBe(403);
    expect(owner.json().error.code).toBe('role_beyond_caller');
    const developer = await newMember(t.app, clock, tenant.liveKey, 'developer');
    const invite = await asMember(t.app, developer, 'POST', '/v1/users', { email: 'x@example.com', role: 'view_only' });
    expect(invite.statusCode).toBe(403);
    expect(invite.json().error.code).toBe('missing_scope');
    const testKey = await call(t.app, tenant.testKey, 'POST', '/v1/users', {
      email: 'y@example.com',
      role: 'view_only',
    });
    expect(testKey.statusCode).toBe(403);
    expect(testKey.json().error.code).toBe('livemode_key_required');
  });

  it('deactivation ends sessions and sign-in; the last owner stays', async () => {
    const team = await createTenant(t.app, 'Owners');
    const owner = await newMember(t.app, clock, team.liveKey, 'owner');
    const last = await call(t.app, team.liveKey, 'DELETE', `/v1/users/${owner.id}`);
    expect(last.statusCode).toBe(400);
    expect(last.json().error.code).toBe('last_owner');
    const member = await newMember(t.app, clock, team.liveKey, 'support');
    const gone = await ok(await asMember(t.app, owner, 'DELETE', `/v1/users/${member.id}`));
    expect(gone.status).toBe('deactivated');
    expect((await asMember(t.app, member, 'GET', '/v1/users/me')).statusCode).toBe(401);
    expect((await login(member.email, PASSWORD)).statusCode).toBe(401);
  });

  it('another tenant’s user is not found; bad input is a 400 with the envelope; no credential is a 401', async () => {
    const member = await newMember(t.app, clock, tenant.liveKey, 'view_only');
    const other = await createTenant(t.app, 'Other');
    for (const [method, body] of [
      ['GET', undefined],
      ['PATCH', { role: 'admin' }],
      ['DELETE', undefined],
    ] as const) {
      const response = await call(t.app, other.liveKey, method, `/v1/users/${member.id}`, body);
      expect(response.statusCode, `${method} ${response.body}`).toBe(404);
      expect(response.json().error.code).toBe('resource_missing');
    }
    for (const body of [{ email: 'not-an-email', role: 'admin' }, { email: 'a@b.co', role: 'emperor' }, {}]) {
      const response = await call(t.app, tenant.liveKey, 'POST', '/v1/users', body);
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().error.type).toBe('invalid_request_error');
    }
    const operatorRole = await call(t.app, tenant.liveKey, 'POST', '/v1/users', {
      email: 'op@example.com',
      role: 'operator_admin',
    });
    expect(operatorRole.statusCode).toBe(400);
    expect((await t.app.inject({ method: 'POST', url: '/v1/sessions', payload: { email: 1 } })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'GET', url: '/v1/users' })).statusCode).toBe(401);
  });
});

describe('operator staff', () => {
  it('operator_admin acts as the platform; operator_support only reads', async () => {
    const admin = await newMember(t.app, clock, PLATFORM_KEY, 'operator_admin');
    const created = await asMember(t.app, admin, 'POST', '/v1/tenants', { name: 'By an operator' });
    expect(created.statusCode, created.body).toBe(200);
    const support = await newMember(t.app, clock, PLATFORM_KEY, 'operator_support');
    expect((await asMember(t.app, support, 'GET', '/v1/users')).statusCode).toBe(200);
    const refused = await asMember(t.app, support, 'POST', '/v1/tenants', { name: 'Nope' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('read_only_role');
    // Operators have no tenant: tenant routes refuse them like the operator key.
    expect((await asMember(t.app, admin, 'GET', '/v1/payments')).statusCode).toBe(403);
  });
});
