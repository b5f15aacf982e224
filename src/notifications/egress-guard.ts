import dns from 'node:dns';
import net from 'node:net';

/**
 * Refuses destinations that are not on the public internet: loopback, private, link-local
 * (including cloud metadata at 169.254.169.254), CGNAT, multicast, documentation and reserved
 * ranges, for IPv4 and IPv6, including v4 addresses mapped or embedded in v6 (::ffff:, NAT64, 6to4).
 */
const blocked = new net.BlockList();
// Separate lists: a BlockList holding ::ffff:0:0/96 also matches every IPv4 address checked against it.
const blockedV6 = new net.BlockList();
for (const [address, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(address, prefix, 'ipv4');
}
// The IANA IPv6 Special-Purpose Address Registry (iana.org/assignments/iana-ipv6-special-registry),
// every entry that is not globally reachable, plus multicast and the deprecated site-local range.
// IPv4 carried in IPv6 (::/96 compatible, ::ffff:0:0/96 mapped, 64:ff9b::/96 and 64:ff9b:1::/48
// NAT64) is refused whole: a webhook has no reason to name a v4 host that way, and a translator
// could reach an internal v4 address through it. 6to4 (2002::/16) is checked by its embedded v4.
for (const [address, prefix] of [
  ['::', 96],
  ['::ffff:0:0', 96],
  ['::ffff:0:0:0', 96],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['100:0:0:1::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['3fff::', 20],
  ['5f00::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  blockedV6.addSubnet(address, prefix, 'ipv6');
}

export class EgressBlockedError extends Error {}

/** The IPv4 address carried inside an IPv6 one (mapped, NAT64 or 6to4), if any. */
function embeddedIpv4(address: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  const groups = expandIpv6(address);
  const fromGroups = (high: number, low: number) => `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return fromGroups(groups[6]!, groups[7]!);
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0)) return fromGroups(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return fromGroups(groups[1]!, groups[2]!);
  return undefined;
}

function expandIpv6(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.replace(v4[1]!, `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`);
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  return [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailGroups].map((g) =>
    Number.parseInt(g || '0', 16),
  );
}

export type EgressPolicy = { allow: net.BlockList };

/** Parses a comma-separated allow-list of CIDRs (e.g. "127.0.0.0/8,::1/128") for tests and development. */
export function egressPolicy(allowList: string | undefined): EgressPolicy {
  const allow = new net.BlockList();
  for (const entry of (allowList ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)) {
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    allow.addSubnet(address, Number(prefix ?? (family === 'ipv6' ? 128 : 32)), family);
  }
  return { allow };
}

/**
 * Whether a webhook may connect to `address` (IPv4 or IPv6 literal): the allow-list admits it (also
 * through the v4 address an IPv6 one carries), or it is in none of the refused ranges.
 */
export function isAddressAllowed(policy: EgressPolicy, address: string): boolean {
  const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
  if (policy.allow.check(address, family)) return true;
  const v4 = family === 'ipv6' ? embeddedIpv4(address) : undefined;
  if (v4 !== undefined && policy.allow.check(v4, 'ipv4')) return true;
  if (family === 'ipv4') return !blocked.check(address, 'ipv4');
  if (blockedV6.check(address, 'ipv6')) return false;
  return v4 === undefined || !blocked.check(v4, 'ipv4');
}

/**
 * Resolves a webhook URL's host the way delivery will and refuses it when any address is not
 * public. A name that does not resolve (yet) passes: the delivery-time guard checks it again on
 * every connection, so this only turns an already-internal destination away early.
 */
export async function assertUrlAllowed(policy: EgressPolicy, url: string, timeoutMs = 3000): Promise<void> {
  const host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  if (net.isIP(host)) return assertAddressAllowed(policy, host);
  let addresses: dns.LookupAddress[];
  try {
    addresses = await Promise.race([
      dns.promises.lookup(host, { all: true }),
      new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('timeout')), timeoutMs).unref()),
    ]);
  } catch {
    return;
  }
  for (const entry of addresses) assertAddressAllowed(policy, entry.address);
}

export function assertAddressAllowed(policy: EgressPolicy, address: string): void {
  if (!isAddressAllowed(policy, address)) throw new EgressBlockedError(`destination ${address} is not a public address`);
}

/**
 * A `lookup` for net/tls connect: resolves, then refuses any non-public answer. Because the socket
 * connects to what this returns, the address checked is the address used (no DNS rebinding gap).
 */
export function guardedLookup(policy: EgressPolicy): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses;
      const refused = list.find((entry) => !isAddressAllowed(policy, entry.address));
      if (refused || list.length === 0) {
        return callback(new EgressBlockedError(`destination ${refused?.address ?? hostname} is not a public address`), '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}
