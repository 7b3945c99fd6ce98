import { describe, expect, it } from 'vitest';
import { addressRefusal, parseCidrList, resolveAllowed, RefusedAddress } from './ssrf.js';

const REFUSED: [string, string][] = [
  ['127.0.0.1', 'IPv4 loopback'],
  ['127.255.0.9', 'IPv4 loopback (whole /8)'],
  ['::1', 'IPv6 loopback'],
  ['10.1.2.3', 'private 10/8'],
  ['172.16.0.1', 'private 172.16/12'],
  ['172.31.255.254', 'private 172.16/12 (end)'],
  ['192.168.1.1', 'private 192.168/16'],
  ['169.254.1.1', 'IPv4 link-local'],
  ['169.254.169.254', 'cloud metadata'],
  ['fe80::1', 'IPv6 link-local'],
  ['fd00:ec2::254', 'AWS metadata over IPv6 (ULA)'],
  ['fc00::1', 'IPv6 unique-local'],
  ['100.64.0.1', 'CGNAT 100.64/10'],
  ['100.127.255.254', 'CGNAT (end)'],
  ['224.0.0.1', 'IPv4 multicast'],
  ['239.255.255.250', 'IPv4 multicast (SSDP)'],
  ['ff02::1', 'IPv6 multicast'],
  ['0.0.0.0', 'IPv4 unspecified'],
  ['0.1.2.3', 'IPv4 "this network" 0/8'],
  ['::', 'IPv6 unspecified'],
  ['255.255.255.255', 'broadcast'],
  ['198.18.0.1', 'benchmarking 198.18/15'],
  ['198.19.255.1', 'benchmarking (end)'],
  ['2001:2::1', 'IPv6 benchmarking'],
  ['192.0.2.1', 'documentation TEST-NET-1'],
  ['240.0.0.1', 'reserved 240/4'],
  ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
  ['::ffff:169.254.169.254', 'IPv4-mapped metadata'],
  ['::ffff:10.0.0.1', 'IPv4-mapped private'],
  ['::ffff:7f00:1', 'IPv4-mapped loopback, hex form'],
  ['64:ff9b::127.0.0.1', 'NAT64 loopback'],
  ['64:ff9b::a9fe:a9fe', 'NAT64 metadata'],
  ['64:ff9b::c0a8:0101', 'NAT64 private'],
  ['2002:7f00:0001::', '6to4 of loopback'],
  ['2002:a9fe:a9fe::1', '6to4 of metadata'],
  ['2002:0a00:0001::', '6to4 of private'],
  ['2001:db8::1', 'IPv6 documentation'],
  ['not-an-ip', 'not an address'],
];

const ALLOWED = [
  '93.184.215.14',
  '8.8.8.8',
  '1.1.1.1',
  '2606:4700:4700::1111',
  '::ffff:8.8.8.8',
  '64:ff9b::8.8.8.8',
  '2002:0808:0808::1',
];

describe('addressRefusal', () => {
  it.each(REFUSED)('refuses %s (%s)', (address) => {
    expect(addressRefusal(address)).not.toBeNull();
  });

  it.each(ALLOWED)('allows public %s', (address) => {
    expect(addressRefusal(address)).toBeNull();
  });

  it('lets WEBHOOK_ALLOW_PRIVATE open exactly its ranges, in every form', () => {
    const allowed = parseCidrList('127.0.0.0/8, 10.1.0.0/16');
    expect(addressRefusal('127.0.0.1', allowed)).toBeNull();
    expect(addressRefusal('::ffff:127.0.0.1', allowed)).toBeNull();
    expect(addressRefusal('10.1.200.3', allowed)).toBeNull();
    expect(addressRefusal('10.2.0.1', allowed)).not.toBeNull();
    expect(addressRefusal('169.254.169.254', allowed)).not.toBeNull();
    expect(addressRefusal('::1', allowed)).not.toBeNull();
  });

  it('rejects a malformed allow-list at start-up', () => {
    expect(() => parseCidrList('127.0.0.1')).toThrow(/WEBHOOK_ALLOW_PRIVATE/);
    expect(() => parseCidrList('localhost/8')).toThrow(/WEBHOOK_ALLOW_PRIVATE/);
  });
});

describe('resolveAllowed', () => {
  it('refuses a name when any of its addresses is forbidden', async () => {
    const resolver = async () => ['93.184.215.14', '10.0.0.5'];
    await expect(resolveAllowed('mixed.example', [], resolver)).rejects.toBeInstanceOf(RefusedAddress);
  });

  it('checks literal addresses without resolving, brackets included', async () => {
    const resolver = async () => {
      throw new Error('must not resolve a literal');
    };
    await expect(resolveAllowed('[::1]', [], resolver)).rejects.toBeInstanceOf(RefusedAddress);
    expect(await resolveAllowed('8.8.8.8', [], resolver)).toEqual(['8.8.8.8']);
  });
});
