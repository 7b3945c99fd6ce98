import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { reconcilePayments } from '../bench/reconcile.js';
import { productionSecrets } from '../bench/secrets.js';
import { productionSecretProblems } from '../src/bootstrap.js';

// The bench's own correctness check: committed payments against the answers its clients got.

describe('bench: payments committed against answers', () => {
  it('passes when every answer is committed and nothing was cut off', () => {
    expect(reconcilePayments({ answered: 1000, answeredCommitted: 1000, committed: 1000, unanswered: 0 }).ok).toBe(
      true,
    );
  });

  it('passes whether requests cut off at the end of a run reached the server or not', () => {
    // None reached the server (the case the old check failed), some did, all did.
    for (const committed of [1000, 1003, 1007]) {
      const result = reconcilePayments({ answered: 1000, answeredCommitted: 1000, committed, unanswered: 7 });
      expect(result.ok, result.detail).toBe(true);
    }
  });

  it('fails on a payment beyond one per cut-off request (a doubled payment)', () => {
    const result = reconcilePayments({ answered: 1000, answeredCommitted: 1000, committed: 1008, unanswered: 7 });
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('1 more payments than requests could have made');
  });

  it('fails when an answered payment is not committed, even if a cut-off one makes the count add up', () => {
    const result = reconcilePayments({ answered: 1000, answeredCommitted: 999, committed: 1000, unanswered: 7 });
    expect(result.ok).toBe(false);
    expect(result.detail).toContain('1 answered payments missing');
  });
});

describe('bench: the API it starts in production mode', () => {
  it('is given every secret production requires, strong enough', () => {
    expect(productionSecretProblems(productionSecrets({ PLATFORM_API_KEY: undefined }))).toEqual([]);
  });

  it('keeps the values the bench must know', () => {
    const platformKey = randomBytes(32).toString('base64url');
    expect(productionSecrets({ PLATFORM_API_KEY: platformKey }).PLATFORM_API_KEY).toBe(platformKey);
  });
});
