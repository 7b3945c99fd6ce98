import type { FastifyRequest, FastifyReply } from 'fastify';
import { tooMany } from '../../http/throttle.js';

/**
 * A tokenized card's fingerprint tells whether two numbers are the same card, so whoever can
 * tokenize at will can test guesses for the digits between a known BIN and last4. Tokenizing,
 * whether saving a card or charging one inline, therefore has its own, much lower, limit per key
 * and per tenant, on the platform's limiter (shared through Redis when there is one).
 *
 * A route hook that runs before the Idempotency-Key is claimed, as the general limit does: a 429
 * must not become the stored answer to that key. A payment whose `payment_method` is a saved
 * `pm_…` tokenizes nothing and is not counted.
 */
export function limitCardTokenization(tokenizes: (body: unknown) => boolean = () => true) {
  return async function cardTokenizationLimit(request: FastifyRequest, reply: FastifyReply) {
    const auth = request.auth;
    if (auth?.kind !== 'tenant' || !tokenizes(request.body)) return;
    const { config, rateLimiter, metrics } = request.server.platform;
    const decision = await rateLimiter.hit(
      [
        { key: `pm:key:${auth.keyId}`, limit: config.paymentMethodRateLimitPerKey },
        { key: `pm:tenant:${auth.tenantId}`, limit: config.paymentMethodRateLimitPerTenant },
      ],
      config.paymentMethodRateLimitWindowMs,
    );
    if (decision.allowed) return;
    metrics.paymentMethodRateLimited.inc();
    throw tooMany(
      reply,
      decision,
      'Too many cards were tokenized with this key or account; retry after the time in Retry-After.',
    );
  };
}

/** A payment body tokenizes a card when its `payment_method` holds card details rather than a `pm_…` id. */
export function paymentBodyTokenizes(body: unknown): boolean {
  const method = (body as { payment_method?: unknown } | null)?.payment_method;
  return typeof method === 'object' && method !== null;
}
