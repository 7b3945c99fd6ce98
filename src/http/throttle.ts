import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { Auth } from './auth.js';
import { ApiError } from './errors.js';
import type { RateLimitDecision, RateLimiter } from './rate-limit.js';

type Limits = Pick<
  Config,
  | 'rateLimitPerKey'
  | 'rateLimitPerTenant'
  | 'rateLimitWindowMs'
  | 'rateLimitPerAddress'
  | 'authFailuresPerAddress'
  | 'authFailureWindowMs'
>;

const seconds = (decision: RateLimitDecision) => Math.max(1, Math.ceil(decision.resetMs / 1000));

/** A 429 with Retry-After for the bucket that refused: the one answer every limiter gives. */
export function tooMany(reply: FastifyReply, decision: RateLimitDecision, message: string): ApiError {
  reply.header('retry-after', String(seconds(decision)));
  return new ApiError('rate_limit_error', 'rate_limit', message, null, 429);
}

/**
 * Runs before authentication, so it costs an anonymous flood no database work: every request counts
 * against its client address, and an address that failed to authenticate too often in the longer
 * auth-failure window is refused outright (guessing keys, operator keys or OAuth secrets).
 */
export async function throttleAddress(
  limiter: RateLimiter,
  limits: Limits,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const address = request.ip;
  // Both in one round trip to Redis (ioredis pipelines commands sent together).
  const [requests, failures] = await Promise.all([
    limiter.hit([{ key: `address:${address}`, limit: limits.rateLimitPerAddress }], limits.rateLimitWindowMs),
    limiter.peek({ key: `auth_failures:${address}`, limit: limits.authFailuresPerAddress }, limits.authFailureWindowMs),
  ]);
  if (!requests.allowed)
    throw tooMany(reply, requests, 'Too many requests from this address; retry after the time in Retry-After.');
  if (!failures.allowed)
    throw tooMany(
      reply,
      failures,
      'Too many failed authentication attempts from this address; retry after the time in Retry-After.',
    );
}

/** Counts a refused credential (any 401) against its client address's auth-failure budget. */
export async function countAuthFailure(limiter: RateLimiter, limits: Limits, request: FastifyRequest) {
  await limiter.hit(
    [{ key: `auth_failures:${request.ip}`, limit: limits.authFailuresPerAddress }],
    limits.authFailureWindowMs,
  );
}

/** The per-key and per-tenant limits, with Stripe's RateLimit-* headers. */
export async function throttleTenant(limiter: RateLimiter, limits: Limits, auth: Auth, reply: FastifyReply) {
  if (auth.kind !== 'tenant') return;
  const decision = await limiter.hit(
    [
      { key: `key:${auth.keyId}`, limit: limits.rateLimitPerKey },
      { key: `tenant:${auth.tenantId}`, limit: limits.rateLimitPerTenant },
    ],
    limits.rateLimitWindowMs,
  );
  reply.header('ratelimit-limit', String(decision.limit));
  reply.header('ratelimit-remaining', String(decision.remaining));
  reply.header('ratelimit-reset', String(seconds(decision)));
  if (!decision.allowed)
    throw tooMany(reply, decision, 'Too many requests hit the API too quickly; retry after the time in Retry-After.');
}
