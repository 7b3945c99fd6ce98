import { expect } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { TOTP } from 'otpauth';
import { PLATFORM_KEY, call, ok, type TestClock } from './helpers.js';

export const PASSWORD = 'correct horse battery staple';

/** A signed-in team member: the cookie to send, the CSRF token to echo, the TOTP secret to sign in again. */
export interface Member {
  id: string;
  email: string;
  cookie: string;
  csrf: string;
  secret: string;
  recoveryCodes: string[];
}

export const totpCode = (secret: string, clock: TestClock) => new TOTP({ secret }).generate({ timestamp: clock.now() });

export function invitationToken(text: string): string {
  // Quoted-printable soft line breaks, if the transport wrapped the line.
  const match = /\/invitations\/([A-Za-z0-9_-]+)/.exec(text.replace(/=\r?\n/g, ''));
  expect(match, text).not.toBeNull();
  return match![1];
}

/** The invitation link of the newest dev-outbox message to `email`. */
export async function outboxToken(app: FastifyInstance, email: string): Promise<string> {
  const outbox = await ok(await call(app, PLATFORM_KEY, 'GET', '/v1/dev/outbox'));
  const message = outbox.data.find((m: { to: string }) => m.to === email);
  expect(message, `no mail to ${email}`).toBeDefined();
  return invitationToken(message.text);
}

export function cookieOf(response: { headers: Record<string, unknown> }): string {
  const header = String(response.headers['set-cookie']);
  const match = /pf_session=([^;]*)/.exec(header);
  expect(match, header).not.toBeNull();
  return match![1];
}

/** Accepts an invitation and finishes the TOTP enrolment: the new member's first session. */
export async function acceptInvitation(
  app: FastifyInstance,
  clock: TestClock,
  email: string,
  token: string,
  password = PASSWORD,
): Promise<Member> {
  const challenge = await ok(
    await app.inject({ method: 'POST', url: `/v1/invitations/${token}/accept`, payload: { password } }),
  );
  expect(challenge.methods).toEqual(['totp_enrolment']);
  const secret = challenge.totp_enrolment.secret as string;
  const response = await app.inject({
    method: 'POST',
    url: '/v1/sessions/mfa',
    payload: { login_token: challenge.login_token, code: totpCode(secret, clock) },
  });
  const session = await ok(response);
  // TOTP codes are single use: the next sign-in needs the next time step.
  clock.advance(30_000);
  return {
    id: session.user,
    email,
    cookie: cookieOf(response),
    csrf: session.csrf_token,
    secret,
    recoveryCodes: session.recovery_codes,
  };
}

/** Invites `email` with `role` through `inviterKey` (the dev outbox) and signs the member in. */
export async function newMember(
  app: FastifyInstance,
  clock: TestClock,
  inviterKey: string,
  role: string,
  email = `${role}.${Math.random().toString(36).slice(2)}@example.com`,
): Promise<Member> {
  await ok(await call(app, inviterKey, 'POST', '/v1/users', { email, role }));
  return acceptInvitation(app, clock, email, await outboxToken(app, email));
}

/** Password then TOTP; returns the new session. */
export async function signIn(app: FastifyInstance, clock: TestClock, member: Member, livemode = false) {
  const challenge = await ok(
    await app.inject({
      method: 'POST',
      url: '/v1/sessions',
      payload: { email: member.email, password: PASSWORD, livemode },
    }),
  );
  const response = await app.inject({
    method: 'POST',
    url: '/v1/sessions/mfa',
    payload: { login_token: challenge.login_token, code: totpCode(member.secret, clock) },
  });
  const session = await ok(response);
  clock.advance(30_000);
  return { ...member, cookie: cookieOf(response), csrf: session.csrf_token as string };
}

/** A request as the member: the cookie, and the CSRF token unless `csrf: false`. */
export function asMember(
  app: FastifyInstance,
  member: Pick<Member, 'cookie' | 'csrf'>,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT' | 'HEAD',
  url: string,
  payload?: unknown,
  { csrf = true } = {},
) {
  return app.inject({
    method,
    url,
    headers: {
      cookie: `pf_session=${member.cookie}`,
      ...(csrf ? { 'x-csrf-token': member.csrf } : {}),
      ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
  });
}
