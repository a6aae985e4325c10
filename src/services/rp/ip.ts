/** IP literal helpers for rp identities: one canonical text per address so ownership compares reliably. */

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * The canonical form of an IP literal (IPv4 dotted quad; IPv6 compressed lower-case; an IPv4-mapped IPv6
 * address becomes its IPv4 form), or null when the text is not an IP literal.
 */
export function canonicalIp(text: string): string | null {
  let s = text.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (IPV4.test(s)) return s;
  if (!s.includes(":") || s.includes("%") || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let host: string;
  try {
    host = new URL(`http://[${s}]/`).hostname;
  } catch {
    return null;
  }
  const inner = host.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(inner);
  if (mapped) {
    const hi = parseInt(mapped[1], 16), lo = parseInt(mapped[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return inner;
}

export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}
