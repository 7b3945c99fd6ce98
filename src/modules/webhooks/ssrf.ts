import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Whether a webhook may connect to an address: only ordinary public unicast. Everything else
 * (loopback, RFC 1918, link-local with the cloud metadata service, CGNAT, multicast, unspecified,
 * broadcast, benchmarking and documentation ranges, IPv6 unique-local such as fd00:ec2::254) is
 * refused, and an IPv6 address that carries an IPv4 one (mapped, NAT64, 6to4, Teredo) is judged by
 * the IPv4 address it reaches. `allowed` is the operator's WEBHOOK_ALLOW_PRIVATE list.
 */
export function addressRefusal(address: string, allowed: readonly Cidr[] = []): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return 'not an IP address';
  }
  const target = embeddedIPv4(parsed) ?? parsed;
  if (allowed.some(([range, bits]) => range.kind() === target.kind() && target.match(range, bits))) return null;
  const range = target.range();
  return range === 'unicast' ? null : `${target.toString()} is in a forbidden range (${range})`;
}

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** WEBHOOK_ALLOW_PRIVATE: comma-separated CIDR ranges such as `127.0.0.0/8,::1/128`. */
export function parseCidrList(raw: string | undefined): Cidr[] {
  if (!raw) return [];
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      try {
        return ipaddr.parseCIDR(item);
      } catch {
        throw new Error(`WEBHOOK_ALLOW_PRIVATE must be a comma-separated list of CIDR ranges, got "${item}"`);
      }
    });
}

function embeddedIPv4(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | null {
  if (address.kind() === 'ipv4') return null;
  const v6 = address as ipaddr.IPv6;
  const parts = v6.parts;
  const low32 = () => new ipaddr.IPv4([parts[6] >> 8, parts[6] & 0xff, parts[7] >> 8, parts[7] & 0xff]);
  switch (v6.range()) {
    case 'ipv4Mapped':
    case 'rfc6145':
      return low32();
    case 'rfc6052':
      // 64:ff9b::/96 carries the IPv4 address in its last 32 bits; the /48 local-use prefix may place it elsewhere,
      // so that one is judged as it is (not unicast: refused).
      return v6.match(ipaddr.IPv6.parse('64:ff9b::'), 96) ? low32() : null;
    case '6to4':
      return new ipaddr.IPv4([parts[1] >> 8, parts[1] & 0xff, parts[2] >> 8, parts[2] & 0xff]);
    case 'teredo':
      // The client's address, obfuscated by inverting its bits.
      return new ipaddr.IPv4([(~parts[6] >> 8) & 0xff, ~parts[6] & 0xff, (~parts[7] >> 8) & 0xff, ~parts[7] & 0xff]);
    default:
      return null;
  }
}

export class RefusedAddress extends Error {
  readonly code = 'EWEBHOOKADDRESS';
}

export type Resolver = (hostname: string) => Promise<string[]>;

export const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses: LookupAddress[]) =>
      error ? reject(error) : resolve(addresses.map((a) => a.address)),
    ),
  );

/**
 * Resolves a host and checks every address it names: one forbidden address refuses the host, so
 * a name that answers with a public and a private address cannot be steered to the private one.
 */
export async function resolveAllowed(hostname: string, allowed: readonly Cidr[], resolver: Resolver) {
  const host = hostname.replace(/^\[(.*)\]$/, '$1');
  const addresses = isIP(host) ? [host] : await resolver(host);
  if (!addresses.length) throw new RefusedAddress(`${host} has no address`);
  for (const address of addresses) {
    const refusal = addressRefusal(address, allowed);
    if (refusal) throw new RefusedAddress(`${host} resolves to ${refusal}`);
  }
  return addresses;
}

/**
 * A `lookup` for http.request that answers the one address already checked: the connection goes
 * exactly there, so a name whose DNS answer changes between the check and the connect (rebinding)
 * cannot slip through.
 */
export function pinnedLookup(address: string): LookupFunction {
  const family = isIP(address);
  return (_hostname, options, callback) => {
    if (options.all) (callback as (e: null, a: LookupAddress[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
}
