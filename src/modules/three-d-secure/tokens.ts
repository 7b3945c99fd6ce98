import { SignJWT, jwtVerify } from 'jose';
import type { Scope } from '../../db/index.js';
import { ApiError } from '../../http/errors.js';

const CHALLENGE_TTL = '1h';

/**
 * The simulated 3-D Secure challenge is reached by a URL that carries a signed token naming the
 * payment and its tenant; the customer's browser has no API key, and the token is all it needs.
 */
export class ThreeDSecure {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly publicUrl: string,
  ) {
    this.key = new TextEncoder().encode(`3ds:${secret}`);
  }

  async challengeUrl(scope: Scope, paymentId: string): Promise<string> {
    const token = await new SignJWT({ t: scope.tenantId, l: scope.livemode })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(paymentId)
      .setAudience('payforward-3ds')
      .setExpirationTime(CHALLENGE_TTL)
      .sign(this.key);
    return `${this.publicUrl}/3ds/${token}`;
  }

  async verify(token: string): Promise<{ scope: Scope; paymentId: string }> {
    try {
      const { payload } = await jwtVerify(token, this.key, { audience: 'payforward-3ds', algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || typeof payload.t !== 'string' || typeof payload.l !== 'boolean')
        throw new Error('malformed');
      return { scope: { tenantId: payload.t, livemode: payload.l }, paymentId: payload.sub };
    } catch {
      throw new ApiError(
        'invalid_request_error',
        'resource_missing',
        'This authentication link is invalid or has expired.',
        null,
        404,
      );
    }
  }
}
