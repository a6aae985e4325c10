/** IP address helpers for the stack: text <-> bytes, prefixes, and a hash for numeric map keys. */
import { formatIpv4, parseIpv4 } from "../wire/ipv4.ts";
import { formatIpv6, parseIpv6 } from "../wire/ipv6.ts";

/** Parses a literal IPv4 or IPv6 address (brackets and an IPv6 zone are not accepted); null when invalid. */
export function parseIp(s: string): Uint8Array | null {
  return s.includes(":") ? parseIpv6(s) : parseIpv4(s);
}

export function formatIp(a: Uint8Array): string {
  return a.length === 4 ? formatIpv4(a) : formatIpv6(a);
}

export function sameAddr(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when addr lies in prefix/len (same family). */
export function inPrefix(addr: Uint8Array, prefix: Uint8Array, len: number): boolean {
  if (addr.length !== prefix.length) return false;
  let i = 0;
  for (; len >= 8; len -= 8, i++) if (addr[i] !== prefix[i]) return false;
  if (len === 0) return true;
  const mask = (0xff << (8 - len)) & 0xff;
  return (addr[i] & mask) === (prefix[i] & mask);
}

export function isUnspecified(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

/** Multicast or (limited/class-E) broadcast: never answered with an ICMP error (RFC 1122 3.2.2, RFC 4443 2.4). */
export function isMulticastOrBroadcast(a: Uint8Array): boolean {
  if (a.length === 4) return a[0] >= 224;
  return a[0] === 0xff;
}

/** FNV-1a over the address bytes, seeded: a numeric key for maps of addresses (collisions resolved by caller). */
export function hashAddr(a: Uint8Array, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < a.length; i++) h = Math.imul(h ^ a[i], 0x01000193) >>> 0;
  return h;
}
