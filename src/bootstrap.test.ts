import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { productionSecretProblems, strongKey, strongText } from './bootstrap.js';

const strongEnv = () => ({
  PLATFORM_API_KEY: `op_platform_${randomBytes(32).toString('base64url')}`,
  VAULT_KEK: randomBytes(32).toString('base64'),
  VAULT_FINGERPRINT_KEY: randomBytes(32).toString('base64'),
  JWT_SECRET: randomBytes(32).toString('hex'),
  AUDIT_SIGNING_KEY: randomBytes(32).toString('base64'),
  APP_DB_PASSWORD: randomBytes(32).toString('base64url'),
  WORKER_DB_PASSWORD: randomBytes(48).toString('base64'),
});

describe('production secrets', () => {
  it('accepts 32 random bytes however they are written', () => {
    for (let i = 0; i < 50; i++) {
      expect(strongText(randomBytes(32).toString('base64url'))).toBe(true);
      expect(strongText(randomBytes(32).toString('hex'))).toBe(true);
      expect(strongText(randomBytes(32).toString('base64'))).toBe(true);
      expect(strongKey(randomBytes(32).toString('base64'))).toBe(true);
    }
    expect(productionSecretProblems(strongEnv())).toEqual([]);
  });

  it('accepts base64url of random bytes that happens to show only letters (no digit, no - or _)', () => {
    const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    for (let i = 0; i < 50; i++) {
      // 43 symbols of the base64url alphabet drawn at random, as about one encoding of 32 random bytes in 7,600 is.
      const secret = Array.from(randomBytes(43), (byte) => letters[byte % letters.length]).join('');
      expect(strongText(secret), secret).toBe(true);
    }
  });

  it('refuses short, small-alphabet, repetitive and defaulted secrets', () => {
    for (const weak of [
      'payforward_app',
      'test-jwt-secret-0123456789',
      'op_platform_test_0123456789abcdef',
      'a'.repeat(200),
      'abcdefghij'.repeat(10),
      'Password1!'.repeat(8),
      randomBytes(16).toString('hex'),
      randomBytes(20).toString('base64url'),
    ])
      expect(strongText(weak), weak).toBe(false);
    expect(strongKey(Buffer.alloc(32).toString('base64'))).toBe(false);
    expect(strongKey(Buffer.from('0123456789abcdef'.repeat(2)).toString('base64'))).toBe(false);
    expect(strongKey(randomBytes(16).toString('base64'))).toBe(false);
    expect(strongKey(randomBytes(64).toString('base64'))).toBe(false);
  });

  it('names every missing or weak variable, and checks each key of a rotation list', () => {
    const env: Record<string, string> = { ...strongEnv(), JWT_SECRET: 'changeme', APP_DB_PASSWORD: '' };
    delete (env as Partial<typeof env>).WORKER_DB_PASSWORD;
    env.VAULT_KEK = `${randomBytes(32).toString('base64')},${Buffer.alloc(32, 7).toString('base64')}`;
    const problems = productionSecretProblems(env);
    expect(problems).toEqual([
      expect.stringMatching(/^VAULT_KEK must be 32 random bytes/),
      expect.stringMatching(/^JWT_SECRET is too weak/),
      'APP_DB_PASSWORD is not set',
      'WORKER_DB_PASSWORD is not set',
    ]);
  });
});
