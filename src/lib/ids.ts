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
  digits ??= Array.from(randomPool(14), (byte) => byte & 31);
  lastTime = time;
  lastTail = digits;
  let head = '';
  for (let i = 0; i < 10; i++) {
    head = ALPHABET[time % 32] + head;
    time = Math.floor(time / 32);
  }
  return `${prefix}_${head}${digits.map((d) => ALPHABET[d]).join('')}`;
}

// Drawing random bytes from the OS costs a system call each time; ids and IVs take a few bytes
// per object, so they come from a pooled buffer refilled 16 KiB at a time.
let pool = Buffer.alloc(0);
let poolOffset = 0;

export function randomPool(size: number): Buffer {
  if (poolOffset + size > pool.length) {
    pool = randomBytes(16 * 1024);
    poolOffset = 0;
  }
  const bytes = pool.subarray(poolOffset, poolOffset + size);
  poolOffset += size;
  return bytes;
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
