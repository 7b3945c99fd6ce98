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
  return `${prefix}_${timeHead(time)}${digits.map((d) => ALPHABET[d]).join('')}`;
}

/**
 * Sorts after every id newId(prefix) made before `time` and before every one made from then on:
 * a range of ids is a range of creation times that the primary key index can seek.
 */
export function idFloor(prefix: string, time: Date): string {
  return `${prefix}_${timeHead(time.getTime())}`;
}

function timeHead(ms: number): string {
  let head = '';
  for (let i = 0; i < 10; i++) {
    head = ALPHABET[ms % 32] + head;
    ms = Math.floor(ms / 32);
  }
  return head;
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
