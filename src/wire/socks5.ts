/**
 * SOCKS5 byte layouts (RFC 1928, username/password sub-negotiation RFC 1929), shared by the client
 * (src/net/socks5.ts) and the server (src/services/proxy/). Every parser checks the buffer against the
 * message's own length fields before it reads (`checkLen` then `parse`, as src/wire/ipv4.ts does) and returns
 * null for a short or malformed message; encoders build the exact bytes. Stream readers use the `*Needed`
 * functions to learn how many bytes a message takes from the bytes seen so far.
 */
import { formatIpv4, parseIpv4 } from "./ipv4.ts";
import { formatIpv6, parseIpv6 } from "./ipv6.ts";

// RFC 1928 §3, §4, §6, §7 and RFC 1929 §2.
export const SOCKS_VERSION = 0x05;
export const SOCKS_METHOD_NO_AUTH = 0x00;
export const SOCKS_METHOD_USERPASS = 0x02;
export const SOCKS_METHOD_NO_ACCEPTABLE = 0xff;
export const SOCKS_CMD_CONNECT = 0x01;
export const SOCKS_CMD_BIND = 0x02;
export const SOCKS_CMD_UDP_ASSOCIATE = 0x03;
export const SOCKS_ATYP_IPV4 = 0x01;
export const SOCKS_ATYP_DOMAIN = 0x03;
export const SOCKS_ATYP_IPV6 = 0x04;
export const SOCKS_USERPASS_VERSION = 0x01;
export const SOCKS_USERPASS_SUCCESS = 0x00;
export const SOCKS_USERPASS_FAILURE = 0x01;

/** RFC 1928 §6 REP values. */
export const SOCKS_REP_SUCCEEDED = 0x00;
export const SOCKS_REP_GENERAL_FAILURE = 0x01;
export const SOCKS_REP_NOT_ALLOWED = 0x02;
export const SOCKS_REP_NETWORK_UNREACHABLE = 0x03;
export const SOCKS_REP_HOST_UNREACHABLE = 0x04;
export const SOCKS_REP_CONNECTION_REFUSED = 0x05;
export const SOCKS_REP_TTL_EXPIRED = 0x06;
export const SOCKS_REP_COMMAND_NOT_SUPPORTED = 0x07;
export const SOCKS_REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08;

export const SOCKS_REPLY_TEXT: Record<number, string> = {
  0x01: "general SOCKS server failure",
  0x02: "connection not allowed by ruleset",
  0x03: "network unreachable",
  0x04: "host unreachable",
  0x05: "connection refused",
  0x06: "TTL expired",
  0x07: "command not supported",
  0x08: "address type not supported",
};

/** VER NMETHODS and CMD-less fixed parts: the smallest request/reply is VER CMD RSV ATYP + 4 + 2. */
export const SOCKS_REQUEST_FIXED_LEN = 4;
/** RFC 1928 §7: RSV(2) FRAG(1) ATYP(1) before DST.ADDR. */
export const SOCKS_UDP_FIXED_LEN = 4;

/** A SOCKS address: an IP literal (IPv6 without brackets) or a domain name, and a port. */
export interface SocksAddress {
  atyp: number;
  host: string;
  port: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Bytes of DST.ADDR for `atyp` (a domain's length byte included); -1 for an unknown type. */
export function socksAddrLen(atyp: number, domainLen: number): number {
  if (atyp === SOCKS_ATYP_IPV4) return 4;
  if (atyp === SOCKS_ATYP_IPV6) return 16;
  if (atyp === SOCKS_ATYP_DOMAIN) return 1 + domainLen;
  return -1;
}

/**
 * Reads ATYP DST.ADDR DST.PORT at buf[off]; null when the buffer is short, the type unknown, or a domain
 * is empty or not UTF-8. `len` is the bytes it took.
 */
export function readSocksAddress(buf: Uint8Array, off: number): (SocksAddress & { len: number }) | null {
  if (buf.length < off + 2) return null;
  const atyp = buf[off];
  const addrLen = socksAddrLen(atyp, buf[off + 1]);
  if (addrLen < 0 || buf.length < off + 1 + addrLen + 2) return null;
  const a = buf.subarray(off + 1, off + 1 + addrLen);
  let host: string;
  if (atyp === SOCKS_ATYP_IPV4) host = formatIpv4(a);
  else if (atyp === SOCKS_ATYP_IPV6) host = formatIpv6(a);
  else {
    if (addrLen === 1) return null;
    try {
      host = decoder.decode(a.subarray(1));
    } catch {
      return null;
    }
  }
  const p = off + 1 + addrLen;
  return { atyp, host, port: (buf[p] << 8) | buf[p + 1], len: 1 + addrLen + 2 };
}

/** ATYP DST.ADDR DST.PORT for host (IPv4/IPv6 literal, else a domain of 1..255 bytes); throws otherwise. */
export function encodeSocksAddress(host: string, port: number): Uint8Array {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  let body: Uint8Array;
  const v4 = parseIpv4(h);
  const v6 = v4 ? null : h.includes(":") ? parseIpv6(h) : null;
  if (v4) body = new Uint8Array([SOCKS_ATYP_IPV4, ...v4]);
  else if (v6) body = new Uint8Array([SOCKS_ATYP_IPV6, ...v6]);
  else {
    const name = encoder.encode(h);
    if (name.length === 0 || name.length > 255) {
      throw new RangeError("host name must be 1..255 bytes for SOCKS5");
    }
    body = new Uint8Array(2 + name.length);
    body[0] = SOCKS_ATYP_DOMAIN;
    body[1] = name.length;
    body.set(name, 2);
  }
  const out = new Uint8Array(body.length + 2);
  out.set(body);
  out[body.length] = port >> 8;
  out[body.length + 1] = port & 0xff;
  return out;
}

// ---- §3 method negotiation ----------------------------------------------------------------------------

/** Client greeting: VER NMETHODS METHODS[NMETHODS]. */
export function greetingNeeded(buf: Uint8Array): number {
  return buf.length < 2 ? 2 : 2 + buf[1];
}

export function parseGreeting(buf: Uint8Array): { version: number; methods: number[] } | null {
  if (buf.length < 2 || buf.length < 2 + buf[1]) return null;
  return { version: buf[0], methods: [...buf.subarray(2, 2 + buf[1])] };
}

export function encodeGreeting(methods: number[]): Uint8Array {
  return new Uint8Array([SOCKS_VERSION, methods.length, ...methods]);
}

/** Server's METHOD selection: VER METHOD. */
export function encodeMethodSelection(method: number): Uint8Array {
  return new Uint8Array([SOCKS_VERSION, method]);
}

// ---- RFC 1929 username/password ------------------------------------------------------------------------

/** VER ULEN UNAME PLEN PASSWD: bytes needed given what was read (at least 2, then 3 + ULEN, then all). */
export function userPassNeeded(buf: Uint8Array): number {
  if (buf.length < 2) return 2;
  const ulen = buf[1];
  if (buf.length < 3 + ulen) return 3 + ulen;
  return 3 + ulen + buf[2 + ulen];
}

/** The credentials as bytes (compared as bytes: RFC 1929 does not name an encoding). */
export function parseUserPass(
  buf: Uint8Array,
): { version: number; user: Uint8Array; password: Uint8Array } | null {
  if (buf.length < 2) return null;
  const ulen = buf[1];
  if (buf.length < 3 + ulen) return null;
  const plen = buf[2 + ulen];
  if (buf.length < 3 + ulen + plen) return null;
  return {
    version: buf[0],
    user: buf.subarray(2, 2 + ulen),
    password: buf.subarray(3 + ulen, 3 + ulen + plen),
  };
}

export function encodeUserPass(user: string, password: string): Uint8Array {
  const u = encoder.encode(user), p = encoder.encode(password);
  if (u.length > 255 || p.length > 255) {
    throw new RangeError("username and password must be at most 255 bytes");
  }
  const out = new Uint8Array(3 + u.length + p.length);
  out[0] = SOCKS_USERPASS_VERSION;
  out[1] = u.length;
  out.set(u, 2);
  out[2 + u.length] = p.length;
  out.set(p, 3 + u.length);
  return out;
}

/** VER STATUS (0 = success). */
export function encodeUserPassReply(status: number): Uint8Array {
  return new Uint8Array([SOCKS_USERPASS_VERSION, status]);
}

// ---- §4 requests and §6 replies: VER CMD|REP RSV ATYP DST.ADDR DST.PORT ----------------------------------

/** Bytes a request or reply takes given what was read: 5 first (through a domain's length byte). */
export function requestNeeded(buf: Uint8Array): number {
  if (buf.length < SOCKS_REQUEST_FIXED_LEN + 1) return SOCKS_REQUEST_FIXED_LEN + 1;
  const addrLen = socksAddrLen(buf[3], buf[4]);
  // An unknown ATYP: nothing more to read; parse() then says why.
  return addrLen < 0 ? buf.length : SOCKS_REQUEST_FIXED_LEN + addrLen + 2;
}

export interface SocksRequest extends SocksAddress {
  version: number;
  /** CMD in a request, REP in a reply. */
  code: number;
  rsv: number;
}

/** A request (or reply): null when short, the address type unknown or the domain empty/invalid. */
export function parseRequest(buf: Uint8Array): SocksRequest | null {
  if (buf.length < SOCKS_REQUEST_FIXED_LEN + 1) return null;
  const a = readSocksAddress(buf, 3);
  if (!a || buf.length < 3 + a.len) return null;
  return { version: buf[0], code: buf[1], rsv: buf[2], atyp: a.atyp, host: a.host, port: a.port };
}

/** VER CMD RSV ATYP DST.ADDR DST.PORT (a reply: REP in place of CMD, BND.ADDR/BND.PORT). */
export function encodeRequest(code: number, host: string, port: number): Uint8Array {
  const addr = encodeSocksAddress(host, port);
  const out = new Uint8Array(3 + addr.length);
  out.set([SOCKS_VERSION, code, 0x00]);
  out.set(addr, 3);
  return out;
}

export const encodeReply = encodeRequest;

// ---- §7 UDP: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA -----------------------------------------------------

export interface SocksUdpDatagram extends SocksAddress {
  frag: number;
  data: Uint8Array;
}

/** A UDP request header and its data (a view, not a copy); null when short or malformed. */
export function parseUdpDatagram(buf: Uint8Array): SocksUdpDatagram | null {
  if (buf.length < SOCKS_UDP_FIXED_LEN + 1) return null;
  const a = readSocksAddress(buf, 3);
  if (!a) return null;
  const start = 3 + a.len;
  return { frag: buf[2], atyp: a.atyp, host: a.host, port: a.port, data: buf.subarray(start) };
}

/** The header for `host:port` (FRAG 0) followed by data. */
export function encodeUdpDatagram(host: string, port: number, data: Uint8Array): Uint8Array {
  const addr = encodeSocksAddress(host, port);
  const out = new Uint8Array(3 + addr.length + data.length);
  out.set(addr, 3);
  out.set(data, 3 + addr.length);
  return out;
}
