import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

// Time-ordered ids (48-bit millisecond time, then 70 random bits, Crockford base32), so "newest
// first" and cursor pagination can sort by id alone.
export function newId(prefix: string): string {
  let time = Date.now();
  let head = '';
  for (let i = 0; i < 10; i++) {
    head = ALPHABET[time % 32] + head;
    time = Math.floor(time / 32);
  }
  const random = randomBytes(14);
  let tail = '';
  for (let i = 0; i < 14; i++) tail += ALPHABET[random[i] & 31];
  return `${prefix}_${head}${tail}`;
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
