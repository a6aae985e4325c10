/**
 * IP literal helpers for rp identities: one canonical text per address so ownership compares reliably.
 *
 * An IPv4-mapped IPv6 address (`::ffff:10.0.0.2`) is NOT folded into its IPv4 form: inside a tunnel it is a
 * different source, authenticated by whatever AllowedIPs let it in (a peer with `::/0` may send from any
 * mapped address). Folding it would let that peer act as the IPv4 client 10.0.0.2; the API refuses such
 * sources outright (isIpv4Mapped) and the server keeps them apart from the IPv4 identity.
 */
import { normalizeIp } from "../../config/ip.ts";

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * The canonical form of an IP literal (IPv4 dotted quad; IPv6 in RFC 5952 form, an IPv4-mapped address as
 * `::ffff:a.b.c.d`), or null when the text is not an IP literal (brackets allowed, no zone).
 */
export function canonicalIp(text: string): string | null {
  let s = text.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (s.includes("%")) return null;
  return normalizeIp(s) ?? null;
}

/** True for an IPv4-mapped IPv6 address (`::ffff:0:0/96`) in any spelling. */
export function isIpv4Mapped(text: string): boolean {
  const c = canonicalIp(text);
  return c !== null && /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(c);
}

export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}
