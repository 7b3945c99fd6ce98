import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

let lastTime = 0;
let lastTail = '';

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
    const tail = (time === lastReplayed.time && countUp(lastReplayed.tail)) || randomTail();
    lastReplayed = { time, tail };
    return `${prefix}_${timeHead(time)}${tail}`;
  }
  let time = Date.now();
  let tail: string | undefined;
  if (time <= lastTime) {
    time = lastTime;
    tail = countUp(lastTail);
    // The count ran out within this millisecond: borrow the next one.
    if (!tail) time++;
  }
  tail ??= randomTail();
  lastTime = time;
  lastTail = tail;
  return `${prefix}_${timeHead(time)}${tail}`;
}

const REPLAY_THRESHOLD_MS = 1_000;
const TAIL_LENGTH = 14;
const LAST_DIGIT = ALPHABET[31];
let lastReplayed: { time: number; tail: string } = { time: -1, tail: '' };

// Built character by character: every object written takes an id, and Array.from/map/join over the bytes was four
// times slower (0.5 against 0.13 µs an id in a loop; newId was 2% of the API's busy time under a refund load).
function randomTail(): string {
  const bytes = randomPool(TAIL_LENGTH);
  let tail = '';
  for (let i = 0; i < TAIL_LENGTH; i++) tail += ALPHABET[bytes[i] & 31];
  return tail;
}

/** The random part plus one, or undefined when it is all ones already. */
function countUp(tail: string): string | undefined {
  let i = tail.length - 1;
  while (i >= 0 && tail[i] === LAST_DIGIT) i--;
  if (i < 0) return undefined;
  return tail.slice(0, i) + ALPHABET[ALPHABET.indexOf(tail[i]) + 1] + '0'.repeat(tail.length - 1 - i);
}

/**
 * Sorts after every id newId(prefix) made before `time` and before every one made from then on:
 * a range of ids is a range of creation times that the primary key index can seek.
 */
export function idFloor(prefix: string, time: Date): string {
  return `${prefix}_${timeHead(time.getTime())}`;
}

/**
 * How far an id's time may stray from its row's created_at (a clock stepped back between the two): a query that
 * turns a created_at range into an id range widens it by this much either side and keeps the created_at bounds.
 */
export const ID_TIME_MARGIN_MS = 60 * 60 * 1000;

/** The start of the id range of the rows created at or after `time`: sorts before every id they can have. */
export function idRangeFrom(prefix: string, time: Date): string {
  return idFloor(prefix, new Date(Math.max(0, time.getTime() - ID_TIME_MARGIN_MS)));
}

/** The end (exclusive) of the id range of the rows created before `time`: sorts after every id they can have. */
export function idRangeUntil(prefix: string, time: Date): string {
  return idFloor(prefix, new Date(time.getTime() + ID_TIME_MARGIN_MS));
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

let lastHead = { ms: -1, head: '' };

function timeHead(ms: number): string {
  if (ms === lastHead.ms) return lastHead.head;
  let head = '';
  for (let i = 0, rest = ms; i < 10; i++) {
    head = ALPHABET[rest % 32] + head;
    rest = Math.floor(rest / 32);
  }
  lastHead = { ms, head };
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
