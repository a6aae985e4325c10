/**
 * Address helpers shared by every config format: IPv4/IPv6 literals, prefixes, hostnames and host:port.
 *
 * Deliberately strict, because a config typo should fail at start-up rather than route somewhere else:
 * - IPv4 is exactly four decimal octets 0..255 without leading zeros (`010.0.0.1` is octal to inet_aton and
 *   decimal to most people, so it is rejected as ambiguous), no shorthand forms like `10.1`.
 * - IPv6 follows RFC 4291 section 2.2 (one `::`, 1..4 hex digits per group, an embedded dotted IPv4 tail) and
 *   is printed in the RFC 5952 canonical form (lowercase, leading zeros dropped, the longest run of two or
 *   more zero groups compressed, IPv4-mapped addresses in mixed notation). Zone ids (`fe80::1%eth0`) are
 *   rejected: a tunnel address has no link.
 */
import type { Endpoint, IpPrefix } from "../wireguard/config.ts";
import { parseIpv4 as wireParseIpv4 } from "../wire/ipv4.ts";
import { parseIpv6 as wireParseIpv6 } from "../wire/ipv6.ts";
import { joinHostPort } from "../util/host_port.ts";

export const IPV4_LEN = 4;
export const IPV6_LEN = 16;
const IPV6_GROUPS = 8;

/** Dotted-quad IPv4 to 4 bytes, or undefined when it is not exactly that (the wire layer's parser). */
export function parseIpv4(text: string): Uint8Array | undefined {
  return wireParseIpv4(text) ?? undefined;
}

/** RFC 4291 text form to 16 bytes, or undefined. No brackets, no zone id (the wire layer's parser). */
export function parseIpv6(text: string): Uint8Array | undefined {
  return wireParseIpv6(text) ?? undefined;
}

/** An IPv4 or IPv6 literal to 4 or 16 bytes, or undefined when it is neither. */
export function parseIp(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

function isIpv4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** 4 bytes -> dotted quad; 16 bytes -> RFC 5952 canonical text. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === IPV4_LEN) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== IPV6_LEN) {
    throw new RangeError(`formatIp: expected 4 or 16 bytes, got ${bytes.length}`);
  }
  if (isIpv4Mapped(bytes)) return `::ffff:${formatIp(bytes.subarray(12, 16))}`;
  const groups: number[] = [];
  for (let i = 0; i < IPV6_GROUPS; i++) groups.push((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  // Longest run of zero groups, first one on a tie, only when at least two long (RFC 5952 4.2).
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < IPV6_GROUPS;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < IPV6_GROUPS && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Canonical text of an IP literal, or undefined when the text is not one. */
export function normalizeIp(text: string): string | undefined {
  const b = parseIp(text);
  return b ? formatIp(b) : undefined;
}

export function ipVersion(bytes: Uint8Array): 4 | 6 {
  return bytes.length === IPV4_LEN ? 4 : 6;
}

/** Copy of `bytes` with every bit after the first `prefix` bits cleared. */
export function maskAddress(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

export interface ParsePrefixOptions {
  /** A bare address without `/len` is a host prefix (/32, /128), as wg-quick accepts. Default true. */
  allowBareAddress?: boolean;
  /** Clear host bits (`10.0.0.7/24` -> `10.0.0.0/24`), as `wg` does for AllowedIPs. Default false. */
  maskHostBits?: boolean;
}

/**
 * `addr/len` (IPv4 or IPv6) to a canonical IpPrefix, or undefined when malformed or the length is out of
 * range for the family.
 */
export function parsePrefix(text: string, opts: ParsePrefixOptions = {}): IpPrefix | undefined {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(addrText);
  if (!bytes) return undefined;
  const maxLen = bytes.length * 8;
  let prefix = maxLen;
  if (slash < 0) {
    if (opts.allowBareAddress === false) return undefined;
  } else {
    const lenText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
    prefix = Number(lenText);
    if (prefix > maxLen) return undefined;
  }
  const addr = opts.maskHostBits ? maskAddress(bytes, prefix) : bytes;
  return { address: formatIp(addr), prefix };
}

export function formatPrefix(p: IpPrefix): string {
  return `${p.address}/${p.prefix}`;
}

/** True when `address` (an IP literal) falls inside `p`. False for a family mismatch or a bad literal. */
export function prefixContains(p: IpPrefix, address: string): boolean {
  const net = parseIp(p.address);
  const a = parseIp(address);
  if (!net || !a || net.length !== a.length) return false;
  const mn = maskAddress(net, p.prefix), ma = maskAddress(a, p.prefix);
  for (let i = 0; i < mn.length; i++) if (mn[i] !== ma[i]) return false;
  return true;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, each 1..63, at most 253
 * characters, one trailing dot allowed. An all-numeric name is refused so that `10.0.0.300` is reported as a
 * bad IPv4 address instead of being looked up in DNS.
 */
export function isHostname(text: string): boolean {
  const t = text.endsWith(".") ? text.slice(0, -1) : text;
  if (t.length === 0 || t.length > 253) return false;
  const labels = t.split(".");
  if (!labels.every((l) => LABEL.test(l))) return false;
  return !/^[0-9]+$/.test(labels[labels.length - 1]);
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string };

export const HOST_PORT_EXPECTED = "host:port, IPv4:port or [IPv6]:port with a port 1..65535";

export interface ParseHostPortOptions {
  /** Accept port 0 (e.g. "pick any" for a listen address). Default false. */
  allowPortZero?: boolean;
  /** Accept an empty host (`:8081` = all addresses) for listen addresses. Default false. */
  allowEmptyHost?: boolean;
}

/**
 * `host:port`, `1.2.3.4:port` or `[v6]:port` to an Endpoint with the host normalized (IP literals canonical,
 * names lowercased). A bare IPv6 literal without brackets is refused: its last group cannot be told from a
 * port.
 */
export function parseHostPort(text: string, opts: ParseHostPortOptions = {}): Parsed<Endpoint> {
  const fail: Parsed<Endpoint> = { ok: false, expected: HOST_PORT_EXPECTED };
  let host: string, portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return fail;
    const inner = text.slice(1, close);
    if (inner.includes("%")) return { ok: false, expected: "an IPv6 address without a zone id (%...)" };
    const v6 = parseIpv6(inner);
    if (!v6) return { ok: false, expected: "a valid IPv6 address inside [...]:port" };
    host = formatIp(v6);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return fail;
    if (text.indexOf(":") !== colon) {
      return { ok: false, expected: "an IPv6 endpoint in brackets, like [fd00::1]:51820" };
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host === "") {
      if (!opts.allowEmptyHost) return fail;
    } else if (/^[0-9.]+$/.test(host)) {
      const v4 = parseIpv4(host);
      if (!v4) return { ok: false, expected: "a valid IPv4 address (four numbers 0..255, no leading zeros)" };
      host = formatIp(v4);
    } else if (isHostname(host)) {
      host = host.toLowerCase();
    } else {
      return { ok: false, expected: "a host name (letters, digits, '-', '.') or an IP address before :port" };
    }
  }
  if (!/^(0|[1-9][0-9]{0,4})$/.test(portText)) return fail;
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !opts.allowPortZero)) return fail;
  return { ok: true, value: { host, port } };
}

/** `host:port` with brackets around IPv6 literals. */
export function formatHostPort(e: Endpoint): string {
  return joinHostPort(e.host, e.port);
}
