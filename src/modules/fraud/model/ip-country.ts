import ipaddr from 'ipaddr.js';

// A small IP-to-country table for the simulation, shared by the data generator and the fraud engine.
// It covers only address blocks reserved for documentation and benchmarking (RFC 5737, RFC 2544), so
// it never claims anything about a real network; any other address has no known country.

/** One IPv4 block: first address and prefix length, and the country it stands for in the simulation. */
export interface IpBlock {
  cidr: string;
  country: string;
}

const BENCHMARK_COUNTRIES = 'US GB DE FR NL ES IT CA BR MX IN NG RO RU CN AU'.split(' ');

export const IP_BLOCKS: readonly IpBlock[] = [
  { cidr: '192.0.2.0/24', country: 'US' },
  { cidr: '198.51.100.0/24', country: 'GB' },
  { cidr: '203.0.113.0/24', country: 'DE' },
  // 198.18.0.0/15 cut into sixteen /19 blocks, one per country.
  ...BENCHMARK_COUNTRIES.map((country, i) => ({
    cidr: `${ipv4ToString(ipv4ToInt('198.18.0.0')! + i * 8192)}/19`,
    country,
  })),
];

interface ParsedBlock {
  first: number;
  last: number;
  country: string;
}

const PARSED: ParsedBlock[] = IP_BLOCKS.map(parseBlock);

export function parseBlock(block: IpBlock): ParsedBlock {
  const [address, prefix] = block.cidr.split('/');
  const first = ipv4ToInt(address!)!;
  const size = 2 ** (32 - Number(prefix));
  return { first, last: first + size - 1, country: block.country };
}

/** The simulated country of an IPv4 address, or null when the address is outside the table or not IPv4. */
export function ipCountry(ip: string): string | null {
  const value = ipv4ToInt(ip);
  if (value === null) return null;
  for (const block of PARSED) if (value >= block.first && value <= block.last) return block.country;
  return null;
}

/**
 * The address as the fraud model sees the buyer's: null for one that says nothing about a buyer
 * (loopback, private, link-local, shared, reserved and other special-purpose ranges: a proxy's or a test
 * machine's own address), except the simulation table's blocks; an IPv4-mapped IPv6 address as IPv4.
 * A public address outside the table is kept: it is an IP whose country is not known, not a risk.
 */
export function buyerAddress(ip: string): string | null {
  if (!ipaddr.isValid(ip)) return null;
  const address = ipaddr.process(ip).toString();
  if (ipCountry(address) !== null) return address;
  return ipaddr.parse(address).range() === 'unicast' ? address : null;
}

/** Countries the table knows, each with the address blocks that stand for it. */
export function blocksByCountry(): Map<string, ParsedBlock[]> {
  const byCountry = new Map<string, ParsedBlock[]>();
  for (const block of PARSED) byCountry.set(block.country, [...(byCountry.get(block.country) ?? []), block]);
  return byCountry;
}

export function ipv4ToInt(ip: string): number | null {
  const parts = ip.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

export function ipv4ToString(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}
