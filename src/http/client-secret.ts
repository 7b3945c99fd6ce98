import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Scope } from '../db/index.js';
import { ApiError } from './errors.js';

const SEPARATOR = '_secret_';

/**
 * Client secrets (`pay_…_secret_…`, as Stripe's) let a buyer's browser, holding only the tenant's publishable key,
 * confirm and read back that one payment. A secret is an HMAC of the tenant, mode and object id under a key of the
 * platform's, so it exists for every payment without being stored, cannot be guessed from the id, and is worth
 * nothing in another tenant's or mode's scope.
 */
export class ClientSecrets {
  private readonly key: Buffer;
  /**
   * The secrets of recently answered objects: a list answers ten at once and a client polling a payment asks for the
   * same one again, and an HMAC (a fresh OpenSSL context each) was about half of a payment list's client-view cost.
   * Oldest out first once full. They are no more secret in memory than the key they are made from.
   */
  private readonly recent = new Map<string, string>();

  constructor(
    platformSecret: string,
    private readonly remembered = 10_000,
  ) {
    this.key = createHmac('sha256', platformSecret).update('payforward client_secret v1').digest();
  }

  for(scope: Scope, id: string): string {
    const message = `${scope.tenantId}\n${scope.livemode ? 'live' : 'test'}\n${id}`;
    let secret = this.recent.get(message);
    if (secret === undefined) {
      secret = `${id}${SEPARATOR}${this.mac(message)}`;
      if (this.recent.size >= this.remembered) this.recent.delete(this.recent.keys().next().value!);
      this.recent.set(message, secret);
    }
    return secret;
  }

  matches(scope: Scope, id: string, presented: string): boolean {
    const expected = Buffer.from(this.for(scope, id));
    const given = Buffer.from(presented);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private mac(message: string): string {
    return createHmac('sha256', this.key).update(message).digest('base64url').slice(0, 32);
  }
}

/** A client secret anywhere in `text` (a URL's query string), hidden. */
export function maskClientSecrets(text: string): string {
  return text.replace(/_secret_[A-Za-z0-9_-]+/g, '_secret_[redacted]');
}

/**
 * For a publishable key on a `with_client_secret` route: the `client_secret` (body or query) must be that of the
 * object named by `:id`, in the key's own tenant and mode. A missing one is a 400; a wrong one answers as if the object
 * did not exist (404), so a key cannot probe for ids.
 */
export function checkClientSecret(request: FastifyRequest, secrets: ClientSecrets, scope: Scope) {
  const id = (request.params as { id?: string } | undefined)?.id;
  const fromBody = (request.body as { client_secret?: unknown } | null | undefined)?.client_secret;
  const fromQuery = (request.query as { client_secret?: unknown } | undefined)?.client_secret;
  const presented = typeof fromBody === 'string' ? fromBody : typeof fromQuery === 'string' ? fromQuery : undefined;
  if (presented === undefined)
    throw new ApiError(
      'invalid_request_error',
      'parameter_missing',
      'A publishable key must send the client_secret of the payment it acts on.',
      'client_secret',
      400,
    );
  if (!id || !secrets.matches(scope, id, presented)) throw ApiError.notFound('payment', id ?? '', 'client_secret');
}
