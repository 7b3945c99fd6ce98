import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { inScope, type Sql, type Tx } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';
import { newId, randomToken } from '../../lib/ids.js';
import type { SessionRecord, SessionStore } from '../sessions/store.js';
import { teamScope, type RequestContext, type SecurityEvents } from './security-events.js';
import type { PasskeyVerifier, UserRow } from './service.js';

interface PasskeyRow {
  id: string;
  credential_id: string;
  public_key: Buffer;
  counter: number;
  transports: string[];
  created_at: Date;
}

const asChallenge = (challenge: string) => Buffer.from(challenge, 'utf8').toString('base64url');

/**
 * WebAuthn passkeys as a second factor: registered from a signed-in session, then offered at the
 * MFA step of every login. The relying party is the public URL's host; the dashboard must be served
 * from that origin (PUBLIC_URL).
 */
export class PasskeyService implements PasskeyVerifier {
  private readonly rpID: string;
  private readonly origin: string;

  constructor(
    private readonly sql: Sql,
    private readonly sessions: SessionStore,
    private readonly events: SecurityEvents,
    publicUrl: string,
  ) {
    const url = new URL(publicUrl);
    this.rpID = url.hostname;
    this.origin = url.origin;
  }

  private async passkeysOf(tx: Tx, userId: string) {
    return tx<PasskeyRow[]>`SELECT * FROM user_passkeys WHERE user_id = ${userId} ORDER BY id`;
  }

  async optionsFor(tx: Tx, user: UserRow, challenge: string) {
    const passkeys = await this.passkeysOf(tx, user.id);
    if (!passkeys.length) return undefined;
    return generateAuthenticationOptions({
      rpID: this.rpID,
      challenge,
      userVerification: 'preferred',
      allowCredentials: passkeys.map((p) => ({
        id: p.credential_id,
        transports: p.transports as AuthenticatorTransportFuture[],
      })),
    });
  }

  async verify(tx: Tx, user: UserRow, response: unknown, challenge: string): Promise<boolean> {
    const assertion = response as AuthenticationResponseJSON;
    if (typeof assertion?.id !== 'string') return false;
    const [passkey] = await tx<PasskeyRow[]>`
      SELECT * FROM user_passkeys WHERE user_id = ${user.id} AND credential_id = ${assertion.id} FOR UPDATE`;
    if (!passkey) return false;
    try {
      const { verified, authenticationInfo } = await verifyAuthenticationResponse({
        response: assertion,
        expectedChallenge: asChallenge(challenge),
        expectedOrigin: this.origin,
        expectedRPID: this.rpID,
        credential: {
          id: passkey.credential_id,
          publicKey: new Uint8Array(passkey.public_key),
          counter: Number(passkey.counter),
        },
      });
      if (!verified) return false;
      await tx`UPDATE user_passkeys SET counter = ${authenticationInfo.newCounter}, last_used_at = now()
        WHERE id = ${passkey.id}`;
      return true;
    } catch {
      // A malformed or forged assertion is a failed second factor, counted like a wrong code.
      return false;
    }
  }

  /** Registration, step 1: options for navigator.credentials.create(), the challenge kept in the session. */
  async registrationOptions(token: string, record: SessionRecord, email: string) {
    const challenge = randomToken(32);
    const options = await inScope(this.sql, teamScope(record.tenantId), async (tx) =>
      generateRegistrationOptions({
        rpName: 'PayForward',
        rpID: this.rpID,
        userName: email,
        userID: new TextEncoder().encode(record.userId),
        challenge,
        attestationType: 'none',
        excludeCredentials: (await this.passkeysOf(tx, record.userId)).map((p) => ({ id: p.credential_id })),
        authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
      }),
    );
    await this.sessions.update(token, { ...record, challenge });
    return options;
  }

  /** Registration, step 2: the authenticator's attestation, verified against the session's challenge. */
  async register(context: RequestContext, token: string, record: SessionRecord, response: unknown) {
    if (!record.challenge)
      throw ApiError.invalid('registration_not_started', 'Ask POST /v1/users/me/passkeys/options first.');
    let verification;
    try {
      verification = await verifyRegistrationResponse({
        response: response as RegistrationResponseJSON,
        expectedChallenge: asChallenge(record.challenge),
        expectedOrigin: this.origin,
        expectedRPID: this.rpID,
      });
    } catch (error) {
      throw ApiError.invalid(
        'invalid_passkey',
        `The passkey was not accepted: ${(error as Error).message}`,
        'response',
      );
    }
    if (!verification.verified || !verification.registrationInfo)
      throw ApiError.invalid('invalid_passkey', 'The passkey was not accepted.', 'response');
    const { credential } = verification.registrationInfo;
    await this.sessions.update(token, { ...record, challenge: undefined });
    return inScope(this.sql, teamScope(record.tenantId), async (tx) => {
      const [row] = await tx<PasskeyRow[]>`
        INSERT INTO user_passkeys (id, tenant_id, user_id, credential_id, public_key, counter, transports)
        VALUES (${newId('pkey')}, ${record.tenantId}, ${record.userId}, ${credential.id},
          ${Buffer.from(credential.publicKey)}, ${credential.counter}, ${credential.transports ?? []})
        ON CONFLICT (credential_id) DO NOTHING RETURNING *`;
      if (!row) throw ApiError.invalid('passkey_exists', 'This passkey is already registered.', 'response');
      await this.events.mfaEnrolled(tx, context, { tenantId: record.tenantId, userId: record.userId }, 'passkey');
      return { id: row.id, object: 'passkey' as const, created: Math.floor(row.created_at.getTime() / 1000) };
    });
  }
}
