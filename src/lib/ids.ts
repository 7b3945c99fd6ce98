import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

let lastTime = 0;
let lastTail: number[] = [];

// Time-ordered ids (48-bit millisecond time, then 70 random bits, Crockford base32), so "newest
// first" and cursor pagination can sort by id alone. Within one millisecond the random part counts
// up from the previous id (as monotonic ULIDs do): with fresh random bits, two objects created in
// the same millisecond, such as a refund and its events, would list in random order.
//
// `at`, the time a service's clock stamps on the object, is used when it is more than a second away from now: a
// clock replaying the past (the demo seeder), whose objects must sort, and be found by idFloor, at their own time.
// Those ids count up within a millisecond of their own.
export function newId(prefix: string, at?: Date): string {
  const replayed = at !== undefined && Math.abs(at.getTime() - Date.now()) > REPLAY_THRESHOLD_MS;
  if (replayed) {
    const time = at.getTime();
    const digits = time === lastReplayed.time ? countUp(lastReplayed.tail) : undefined;
    lastReplayed = { time, tail: digits ?? Array.from(randomPool(14), (byte) => byte & 31) };
    return `${prefix}_${timeHead(time)}${lastReplayed.tail.map((d) => ALPHABET[d]).join('')}`;
  }
  let time = Date.now();
  let digits: number[] | undefined;
  if (time <= lastTime) {
    time = lastTime;
    digits = countUp(lastTail);
    // The count ran out within this millisecond: borrow the next one.
    if (!digits) time++;
  }
  digits ??= Array.from(randomPool(14), (byte) => byte & 31);
  lastTime = time;
  lastTail = digits;
  return `${prefix}_${timeHead(time)}${digits.map((d) => ALPHABET[d]).join('')}`;
}

const REPLAY_THRESHOLD_MS = 1_000;
let lastReplayed: { time: number; tail: number[] } = { time: -1, tail: [] };

/** The random part plus one, or undefined when it is all ones already. */
function countUp(tail: number[]): number[] | undefined {
  const digits = [...tail];
  let i = digits.length - 1;
  while (i >= 0 && digits[i] === 31) digits[i--] = 0;
  if (i < 0) return undefined;
  digits[i]++;
  return digits;
}

/**
 * Sorts after every id newId(prefix) made before `time` and before every one made from then on:
 * a range of ids is a range of creation times that the primary key index can seek.
 */
export function idFloor(prefix: string, time: Date): string {
  return `${prefix}_${timeHead(time.getTime())}`;
}

/**
 * The creation time (ms) an id in newId's format carries, or undefined for anything else: the prefix, then 24
 * characters of the alphabet (10 of time, 14 random).
 */
export function idTime(prefix: string, id: string): number | undefined {
  if (id.length !== prefix.length + 25 || !id.startsWith(`${prefix}_`)) return undefined;
  let ms = 0;
  for (let i = prefix.length + 1; i < id.length; i++) {
    const digit = ALPHABET.indexOf(id[i]);
    if (digit < 0) return undefined;
    if (i < prefix.length + 11) ms = ms * 32 + digit;
  }
  return ms;
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
