import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

let lastTime = 0;
let lastTail: number[] = [];

// Time-ordered ids (48-bit millisecond time, then 70 random bits, Crockford base32), so "newest
// first" and cursor pagination can sort by id alone. Within one millisecond the random part counts
// up from the previous id (as monotonic ULIDs do): with fresh random bits, two objects created in
// the same millisecond, such as a refund and its events, would list in random order.
export function newId(prefix: string): string {
  let time = Date.now();
  let digits: number[] | undefined;
  if (time <= lastTime) {
    time = lastTime;
    digits = [...lastTail];
    let i = digits.length - 1;
    while (i >= 0 && digits[i] === 31) digits[i--] = 0;
    if (i >= 0) {
      digits[i]++;
    } else {
      // The count ran out within this millisecond: borrow the next one.
      digits = undefined;
      time++;
    }
  }
  digits ??= Array.from(randomBytes(14), (byte) => byte & 31);
  lastTime = time;
  lastTail = digits;
  let head = '';
  for (let i = 0; i < 10; i++) {
    head = ALPHABET[time % 32] + head;
    time = Math.floor(time / 32);
  }
  return `${prefix}_${head}${digits.map((d) => ALPHABET[d]).join('')}`;
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
