import { describe, expect, it } from 'vitest';
import { generate } from '../../../../scripts/fraud/generator.js';
import { CSV_COLUMNS } from './dataset.js';
import { buyerAddress, ipCountry } from './ip-country.js';

describe('simulation IP-to-country table', () => {
  it('maps documentation and benchmarking ranges, and nothing else', () => {
    expect(ipCountry('192.0.2.10')).toBe('US');
    expect(ipCountry('198.51.100.255')).toBe('GB');
    expect(ipCountry('203.0.113.0')).toBe('DE');
    expect(ipCountry('198.18.0.1')).toBe('US');
    expect(ipCountry('198.18.32.1')).toBe('GB');
    expect(ipCountry('198.19.255.254')).toBe('AU');
    expect(ipCountry('198.20.0.1')).toBeNull();
    expect(ipCountry('8.8.8.8')).toBeNull();
    expect(ipCountry('2001:db8::1')).toBeNull();
    expect(ipCountry('192.0.2.256')).toBeNull();
    expect(ipCountry('not an ip')).toBeNull();
  });
});

describe("the buyer's address as the model sees it", () => {
  it('keeps public and table addresses, and takes loopback, private and reserved ones for no IP', () => {
    expect(buyerAddress('8.8.8.8')).toBe('8.8.8.8');
    expect(buyerAddress('2a00:1450:4001:82b::200e')).toBe('2a00:1450:4001:82b::200e');
    expect(buyerAddress('203.0.113.5')).toBe('203.0.113.5');
    expect(buyerAddress('198.18.32.1')).toBe('198.18.32.1');
    expect(buyerAddress('::ffff:192.0.2.10')).toBe('192.0.2.10');
    for (const address of [
      '127.0.0.1',
      '::1',
      '::ffff:127.0.0.1',
      '10.1.2.3',
      '192.168.0.7',
      '172.16.5.4',
      '100.64.0.1',
      '169.254.1.1',
      '0.0.0.0',
      '2001:db8::1',
      'fe80::1',
      'not an ip',
    ])
      expect(buyerAddress(address), address).toBeNull();
  });
});

describe('synthetic data generator', () => {
  it('is deterministic per seed, follows the CSV contract and uses the shared IP table', () => {
    const first = generate({ days: 5, seed: 42, people: 1000 });
    expect(generate({ days: 5, seed: 42, people: 1000 })).toEqual(first);
    expect(generate({ days: 5, seed: 43, people: 1000 })).not.toEqual(first);
    for (const row of first) {
      expect(Object.keys(row)).toEqual([...CSV_COLUMNS]);
      expect(row.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(row.amount).toMatch(/^[1-9]\d*$/);
      expect(row.is_fraud).toMatch(/^[01]$/);
      expect(row.ip_country).toBe(ipCountry(row.ip) ?? '');
      if (row.ip !== '') expect(buyerAddress(row.ip)).toBe(row.ip);
    }
    const times = first.map((row) => Date.parse(row.timestamp));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const fraud = first.filter((row) => row.is_fraud === '1').length;
    expect(fraud).toBeGreaterThan(0);
    expect(fraud / first.length).toBeLessThan(0.1);
  });
});
