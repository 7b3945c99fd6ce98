import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import { bootApp, bootAppOnOwnDatabase, createTenant, ok, TestClock, type TestApp } from '../../../test/helpers.js';
import { tokenHash } from './store.js';
import { asMember, cookieOf, newMember, PASSWORD, signIn, type Member } from '../../../test/team.js';

const ORIGIN = 'http://127.0.0.1:4000';

for (const store of ['postgresql', 'redis'] as const) {
  describe(`sessions in ${store}`, () => {
    const clock = new TestClock();
    clock.freeze(Date.UTC(2026, 10, 29, 9, 0, 0));
    let t: TestApp;
    let liveKey: string;

    beforeAll(async () => {
      t = await bootApp(
        store === 'redis' ? { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' } : {},
        undefined,
        {
          clock,
        },
      );
      liveKey = (await createTenant(t.app)).liveKey;
    });
    afterAll(() => t.close());

    it('ends after 15 idle minutes, and after 12 hours however busy', async () => {
      const member = await newMember(t.app, clock, liveKey, 'view_only');
      clock.advance(14 * 60 * 1000);
      expect((await asMember(t.app, member, 'GET', '/v1/users/me')).statusCode).toBe(200);
      clock.advance(15 * 60 * 1000);
      const idle = await asMember(t.app, member, 'GET', '/v1/users/me');
      expect(idle.statusCode).toBe(401);
      expect(idle.json().error.code).toBe('session_expired');

      const busy = await signIn(t.app, clock, member);
      for (let elapsed = 0; elapsed < 12 * 60; elapsed += 10) {
        expect((await asMember(t.app, busy, 'GET', '/v1/users/me')).statusCode, `${elapsed} min`).toBe(200);
        clock.advance(10 * 60 * 1000);
      }
      expect((await asMember(t.app, busy, 'GET', '/v1/users/me')).statusCode).toBe(401);
    });

    it('logout and a password change end sessions at once', async () => {
      const member = await newMember(t.app, clock, liveKey, 'support');
      const other = await signIn(t.app, clock, member);
      const logout = await asMember(t.app, member, 'DELETE', '/v1/sessions/current');
      expect(logout.statusCode, logout.body).toBe(200);
      expect(String(logout.headers['set-cookie'])).toMatch(/pf_session=;.*Max-Age=0/);
      expect((await asMember(t.app, member, 'GET', '/v1/users/me')).statusCode).toBe(401);
      expect((await asMember(t.app, other, 'GET', '/v1/users/me')).statusCode).toBe(200);

      const third = await signIn(t.app, clock, member);
      const changed = await asMember(t.app, other, 'POST', '/v1/users/me/password', {
        current_password: PASSWORD,
        new_password: 'a whole new passphrase 42',
      });
      expect(changed.statusCode, changed.body).toBe(200);
      expect((await asMember(t.app, other, 'GET', '/v1/users/me')).statusCode).toBe(401);
      expect((await asMember(t.app, third, 'GET', '/v1/users/me')).statusCode).toBe(401);
      const oldPassword = await t.app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { email: member.email, password: PASSWORD },
      });
      expect(oldPassword.statusCode).toBe(401);
    });
  });
}

// On a database of its own: the purge acts on every tenant's sessions, by this test's clock.
describe('the worker purge of expired PostgreSQL sessions', () => {
  const clock = new TestClock();
  clock.freeze(Date.UTC(2026, 10, 29, 9, 0, 0));
  let t: TestApp;

  beforeAll(async () => {
    t = await bootAppOnOwnDatabase('session_purge', {}, { clock });
  });
  afterAll(() => t.close());

  it('deletes the sessions past idle or absolute expiry that nobody presents again, and only those', async () => {
    const { liveKey } = await createTenant(t.app);
    const member = await newMember(t.app, clock, liveKey, 'view_only');
    const kept = await signIn(t.app, clock, member);
    const aged = await signIn(t.app, clock, member);
    clock.advance(10 * 60 * 1000);
    expect((await asMember(t.app, kept, 'GET', '/v1/users/me')).statusCode).toBe(200);
    expect((await asMember(t.app, aged, 'GET', '/v1/users/me')).statusCode).toBe(200);
    // Busy for over 12 hours: its idle clock is fresh, its absolute one has run out.
    await t.admin`UPDATE user_sessions SET created_at = created_at - interval '12 hours'
      WHERE token_hash = ${tokenHash(aged.cookie)}`;
    clock.advance(6 * 60 * 1000);
    const sessions = async () =>
      (await t.admin<{ token_hash: Buffer }[]>`SELECT token_hash FROM user_sessions WHERE user_id = ${member.id}`)
        .map((r) => r.token_hash.toString('hex'))
        .sort();
    // The first session (from the invitation) has been idle 16 minutes; none was presented since.
    expect(await sessions()).toHaveLength(3);

    expect(t.platform.sessionPurge).toBeDefined();
    expect(await t.platform.sessionPurge!.run()).toBe(2);
    expect(await sessions()).toEqual([tokenHash(kept.cookie).toString('hex')]);
    expect((await asMember(t.app, kept, 'GET', '/v1/users/me')).statusCode).toBe(200);
    expect(await t.platform.sessionPurge!.run()).toBe(0);
  });

  it('is not set up with Redis, whose session keys expire by themselves', async () => {
    const withRedis = await bootApp({ REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
    try {
      expect(withRedis.platform.sessionPurge).toBeUndefined();
    } finally {
      await withRedis.close();
    }
  });
});

describe('CSRF and the session principal', () => {
  const clock = new TestClock();
  clock.freeze(Date.UTC(2026, 10, 29, 9, 0, 0));
  let t: TestApp;
  let liveKey: string;
  let member: Member;

  beforeAll(async () => {
    t = await bootApp({}, undefined, { clock });
    liveKey = (await createTenant(t.app)).liveKey;
    member = await newMember(t.app, clock, liveKey, 'admin');
  });
  afterAll(() => t.close());

  it('refuses a state-changing request without the session’s CSRF token (403, our envelope)', async () => {
    const payload = { email: 'csrf@example.com', role: 'view_only' };
    for (const headers of [{}, { 'x-csrf-token': 'wrong' }]) {
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        headers: { cookie: `pf_session=${member.cookie}`, 'content-type': 'application/json', ...headers },
        payload: JSON.stringify(payload),
      });
      expect(response.statusCode).toBe(403);
      expect(response.json().error).toMatchObject({ type: 'permission_error', code: 'csrf_token_invalid' });
    }
    // Reads need none; the same request with the token succeeds.
    expect((await asMember(t.app, member, 'GET', '/v1/users', undefined, { csrf: false })).statusCode).toBe(200);
    expect((await asMember(t.app, member, 'POST', '/v1/users', payload)).statusCode).toBe(200);
  });

  it('a session acts in the mode it was opened in', async () => {
    const live = await signIn(t.app, clock, member, true);
    const session = await ok(await asMember(t.app, live, 'GET', '/v1/sessions/current'));
    expect(session).toMatchObject({ livemode: true, role: 'admin', user: member.id });
    const payment = await ok(await asMember(t.app, live, 'GET', '/v1/payments'));
    expect(payment.object).toBe('list');
  });

  it('an API key cannot call the signed-in user’s routes', async () => {
    const response = await t.app.inject({
      method: 'GET',
      url: '/v1/users/me',
      headers: { authorization: `Bearer ${liveKey}` },
    });
    expect(response.statusCode).toBe(403);
    expect(response.json().error.code).toBe('session_required');
  });

  it('a passkey registers and then signs in with a real signed assertion', async () => {
    const authenticator = new SoftwareAuthenticator();
    const options = await ok(await asMember(t.app, member, 'POST', '/v1/users/me/passkeys/options', {}));
    expect(options.rp.id).toBe('127.0.0.1');
    const registered = await asMember(t.app, member, 'POST', '/v1/users/me/passkeys', {
      response: authenticator.register(options.challenge),
    });
    expect(registered.statusCode, registered.body).toBe(200);
    expect((await ok(await asMember(t.app, member, 'GET', '/v1/users/me'))).mfa.passkeys).toBe(1);

    const login = async () =>
      ok(
        await t.app.inject({
          method: 'POST',
          url: '/v1/sessions',
          payload: { email: member.email, password: PASSWORD },
        }),
      );
    const challenge = await login();
    expect(challenge.methods).toContain('webauthn');
    const forged = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: {
        login_token: challenge.login_token,
        webauthn: authenticator.assert(challenge.webauthn.challenge, true),
      },
    });
    expect(forged.statusCode).toBe(401);
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/sessions/mfa',
      payload: { login_token: challenge.login_token, webauthn: authenticator.assert(challenge.webauthn.challenge) },
    });
    expect(response.statusCode, response.body).toBe(200);
    const session = { cookie: cookieOf(response), csrf: response.json().csrf_token };
    expect((await asMember(t.app, session, 'GET', '/v1/users/me')).statusCode).toBe(200);
  });
});

/** A platform authenticator in software: an ES256 key pair, "none" attestation, real signatures. */
class SoftwareAuthenticator {
  private readonly privateKey: KeyObject;
  private readonly publicJwk: { x: string; y: string };
  private readonly credentialId = Buffer.from('software-passkey-0001');
  private counter = 0;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    this.publicJwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  }

  private clientData(type: string, challenge: string) {
    return Buffer.from(JSON.stringify({ type, challenge, origin: ORIGIN, crossOrigin: false }));
  }

  private authData(flags: number, attested?: Buffer) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(++this.counter);
    const rpIdHash = createHash('sha256').update('127.0.0.1').digest();
    return Buffer.concat([rpIdHash, Buffer.from([flags]), counter, ...(attested ? [attested] : [])]);
  }

  register(challenge: string) {
    const cose = new Map<number, number | Uint8Array>([
      [1, 2], // kty: EC2
      [3, -7], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, Buffer.from(this.publicJwk.x, 'base64url')],
      [-3, Buffer.from(this.publicJwk.y, 'base64url')],
    ]);
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.credentialId.length);
    const attested = Buffer.concat([Buffer.alloc(16), idLength, this.credentialId, isoCBOR.encode(cose)]);
    // Flags: user present, user verified, attested credential data included.
    const authData = this.authData(0x01 | 0x04 | 0x40, attested);
    const attestationObject = isoCBOR.encode(
      new Map<string, unknown>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]) as never,
    );
    const id = this.credentialId.toString('base64url');
    return {
      id,
      rawId: id,
      type: 'public-key',
      clientExtensionResults: {},
      response: {
        clientDataJSON: this.clientData('webauthn.create', challenge).toString('base64url'),
        attestationObject: Buffer.from(attestationObject).toString('base64url'),
        transports: ['internal'],
      },
    };
  }

  assert(challenge: string, tamper = false) {
    const authData = this.authData(0x01 | 0x04);
    const clientData = this.clientData('webauthn.get', challenge);
    const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()]);
    const signature = sign('sha256', signed, this.privateKey);
    if (tamper) signature[signature.length - 1] ^= 0xff;
    const id = this.credentialId.toString('base64url');
    return {
      id,
      rawId: id,
      type: 'public-key',
      clientExtensionResults: {},
      response: {
        clientDataJSON: clientData.toString('base64url'),
        authenticatorData: authData.toString('base64url'),
        signature: signature.toString('base64url'),
      },
    };
  }
}
