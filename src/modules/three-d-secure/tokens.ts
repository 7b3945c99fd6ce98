import { SignJWT, jwtVerify } from 'jose';
import type { Scope } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';

const CHALLENGE_TTL = '1h';

/**
 * The simulated 3-D Secure challenge is reached by a URL that carries a signed token naming the
 * payment, its tenant and the processor attempt that asked for authentication; the customer's
 * browser has no API key, and the token is all it needs. The token is good only while that attempt
 * is the payment's latest and the payment still waits for authentication (checked by the payment
 * service), so it works once, and a newer confirmation voids the links issued before it.
 * The simulated issuer exists only in test mode: a live-mode token is never honoured.
 */
export class ThreeDSecure {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly publicUrl: string,
  ) {
    this.key = new TextEncoder().encode(`3ds:${secret}`);
  }

  async challengeUrl(scope: Scope, paymentId: string, attemptId: string): Promise<string> {
    const token = await new SignJWT({ t: scope.tenantId, l: scope.livemode, a: attemptId })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(paymentId)
      .setAudience('payforward-3ds')
      .setExpirationTime(CHALLENGE_TTL)
      .sign(this.key);
    return `${this.publicUrl}/3ds/${token}`;
  }

  async verify(token: string): Promise<{ scope: Scope; paymentId: string; attemptId: string }> {
    try {
      const { payload } = await jwtVerify(token, this.key, { audience: 'payforward-3ds', algorithms: ['HS256'] });
      if (
        typeof payload.sub !== 'string' ||
        typeof payload.t !== 'string' ||
        typeof payload.a !== 'string' ||
        payload.l !== false
      )
        throw new Error('malformed, or live mode');
      return { scope: { tenantId: payload.t, livemode: false }, paymentId: payload.sub, attemptId: payload.a };
    } catch {
      throw invalidLink();
    }
  }
}

export const invalidLink = () =>
  new ApiError(
    'invalid_request_error',
    'resource_missing',
    'This authentication link is invalid, expired or already used.',
    null,
    404,
  );
