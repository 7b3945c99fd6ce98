import { describe, expect, it } from 'vitest';
import { idFloor, newId } from './ids.js';

describe('newId', () => {
  it('stamps an id with a replayed moment, so it sorts and is found by idFloor at that moment', () => {
    const at = new Date('2026-10-01T14:30:00.000Z');
    const id = newId('pay', at);
    expect(id >= idFloor('pay', at)).toBe(true);
    expect(id < idFloor('pay', new Date(at.getTime() + 1))).toBe(true);
    // Within one replayed millisecond the ids count up, as live ones do: a refund's events list in order.
    const next = [newId('evt', at), newId('evt', at), newId('evt', at)];
    expect([...next].sort()).toEqual(next);
    expect(newId('pay', new Date(at.getTime() - 1)) < id).toBe(true);
  });

  it('keeps the live clock for a moment within a second of now', () => {
    const before = idFloor('pay', new Date(Date.now() - 1));
    const ids = Array.from({ length: 50 }, () => newId('pay', new Date(Date.now() - 500)));
    expect(ids.every((id) => id >= before)).toBe(true);
    expect([...ids].sort()).toEqual(ids);
  });

  it('counts up within a millisecond: thousands of ids in one sort in creation order, each unique', () => {
    const ids = Array.from({ length: 5000 }, () => newId('evt'));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    expect(ids.every((id) => /^evt_[0-9a-hjkmnp-tv-z]{24}$/.test(id))).toBe(true);
    const at = new Date('2026-10-01T14:30:00.000Z');
    const replayed = Array.from({ length: 2000 }, () => newId('pay', at));
    expect([...replayed].sort()).toEqual(replayed);
    expect(replayed.every((id) => id.startsWith(idFloor('pay', at)))).toBe(true);
  });
});
