/**
 * ICMPv4 (RFC 792, RFC 1191) and ICMPv6 (RFC 4443) message views. Both share the 8-byte layout
 * type/code/checksum/rest-of-header; echo messages put identifier and sequence in the rest, errors quote as
 * much of the offending packet as fits. ICMPv4's checksum covers the message only; ICMPv6's adds the IPv6
 * pseudo-header (next header 58).
 */
import { finishChecksum, internetChecksum, onesSum, pseudoHeaderSum } from "./checksum.ts";

export const ICMP_HEADER_LEN = 8;

export const ICMPV4_ECHO_REPLY = 0;
export const ICMPV4_DEST_UNREACHABLE = 3;
export const ICMPV4_ECHO_REQUEST = 8;
export const ICMPV4_TIME_EXCEEDED = 11;
export const ICMPV4_PARAMETER_PROBLEM = 12;
/** Destination-unreachable codes (RFC 792, RFC 1122, RFC 1812). */
export const ICMPV4_CODE_NET_UNREACHABLE = 0;
export const ICMPV4_CODE_HOST_UNREACHABLE = 1;
export const ICMPV4_CODE_PROTOCOL_UNREACHABLE = 2;
export const ICMPV4_CODE_PORT_UNREACHABLE = 3;
/** "Fragmentation needed and DF set": RFC 1191 puts the next-hop MTU in bytes 6..7. */
export const ICMPV4_CODE_FRAGMENTATION_NEEDED = 4;
export const ICMPV4_CODE_ADMIN_PROHIBITED = 13;
/** Time-exceeded code 1 (both versions): fragment reassembly time exceeded. */
export const ICMPV4_CODE_REASSEMBLY_TIME_EXCEEDED = 1;
export const ICMPV6_CODE_REASSEMBLY_TIME_EXCEEDED = 1;

export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAMETER_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_CODE_NO_ROUTE = 0;
export const ICMPV6_CODE_ADMIN_PROHIBITED = 1;
export const ICMPV6_CODE_ADDRESS_UNREACHABLE = 3;
export const ICMPV6_CODE_PORT_UNREACHABLE = 4;
/** Parameter problem code 1: unrecognized Next Header (what we answer for an unknown protocol). */
export const ICMPV6_CODE_UNRECOGNIZED_NEXT_HEADER = 1;
/** Parameter problem code 2: unrecognized IPv6 option (RFC 8200 section 4.2, action bits 10/11). */
export const ICMPV6_CODE_UNRECOGNIZED_OPTION = 2;

/** RFC 1812 4.3.2.3: quote as much as fits in 576 bytes (IPv4); RFC 4443 2.4(c): fits in 1280 (IPv6). */
export const ICMPV4_ERROR_MAX_LEN = 576;
export const ICMPV6_ERROR_MAX_LEN = 1280;

export class IcmpMessage {
  buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  static checkLen(buf: Uint8Array): boolean {
    return buf.length >= ICMP_HEADER_LEN;
  }

  static parse(buf: Uint8Array): IcmpMessage | null {
    return IcmpMessage.checkLen(buf) ? new IcmpMessage(buf) : null;
  }

  reset(buf: Uint8Array): this {
    this.buf = buf;
    return this;
  }

  get type(): number {
    return this.buf[0];
  }
  set type(v: number) {
    this.buf[0] = v;
  }
  get code(): number {
    return this.buf[1];
  }
  set code(v: number) {
    this.buf[1] = v;
  }
  get checksum(): number {
    return (this.buf[2] << 8) | this.buf[3];
  }
  set checksum(v: number) {
    this.buf[2] = v >> 8;
    this.buf[3] = v;
  }
  /** Echo identifier. */
  get ident(): number {
    return (this.buf[4] << 8) | this.buf[5];
  }
  set ident(v: number) {
    this.buf[4] = v >> 8;
    this.buf[5] = v;
  }
  /** Echo sequence number. */
  get seq(): number {
    return (this.buf[6] << 8) | this.buf[7];
  }
  set seq(v: number) {
    this.buf[6] = v >> 8;
    this.buf[7] = v;
  }
  /** ICMPv4 fragmentation-needed next-hop MTU (RFC 1191). */
  get v4NextHopMtu(): number {
    return (this.buf[6] << 8) | this.buf[7];
  }
  /** ICMPv6 packet-too-big MTU (32 bits). */
  get v6Mtu(): number {
    const b = this.buf;
    return ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) >>> 0;
  }
  /** Echo data, or the quoted packet of an error message. */
  get body(): Uint8Array {
    return this.buf.subarray(ICMP_HEADER_LEN);
  }

  verifyV4(): boolean {
    return internetChecksum(this.buf) === 0;
  }
  fillChecksumV4(): void {
    this.buf[2] = 0;
    this.buf[3] = 0;
    this.checksum = internetChecksum(this.buf);
  }
  verifyV6(src: Uint8Array, dst: Uint8Array): boolean {
    return finishChecksum(
      onesSum(this.buf, 0, this.buf.length, pseudoHeaderSum(src, dst, 58, this.buf.length)),
    ) === 0;
  }
  fillChecksumV6(src: Uint8Array, dst: Uint8Array): void {
    this.buf[2] = 0;
    this.buf[3] = 0;
    this.checksum = finishChecksum(
      onesSum(this.buf, 0, this.buf.length, pseudoHeaderSum(src, dst, 58, this.buf.length)),
    );
  }
}

/**
 * Writes an echo request/reply at buf[off] (data copied after the header) with checksum: for ICMPv6 pass
 * src and dst for the pseudo-header, for ICMPv4 leave them undefined. Returns the message length.
 */
export function writeIcmpEcho(
  buf: Uint8Array,
  off: number,
  type: number,
  ident: number,
  seq: number,
  data: Uint8Array,
  v6?: { src: Uint8Array; dst: Uint8Array },
): number {
  const len = ICMP_HEADER_LEN + data.length;
  const m = new IcmpMessage(buf.subarray(off, off + len));
  buf[off] = type;
  buf[off + 1] = 0;
  m.ident = ident;
  m.seq = seq;
  buf.set(data, off + ICMP_HEADER_LEN);
  if (v6) m.fillChecksumV6(v6.src, v6.dst);
  else m.fillChecksumV4();
  return len;
}

export function buildIcmpEcho(
  type: number,
  ident: number,
  seq: number,
  data: Uint8Array,
  v6?: { src: Uint8Array; dst: Uint8Array },
): Uint8Array {
  const out = new Uint8Array(ICMP_HEADER_LEN + data.length);
  writeIcmpEcho(out, 0, type, ident, seq, data, v6);
  return out;
}

/**
 * An ICMP error message quoting `offending` (the whole IP packet that caused it; truncated so the error,
 * inside its IP header, stays within the RFC limits). `param` fills bytes 4..7: the next-hop MTU for
 * ICMPv4 fragmentation-needed (low 16 bits), the MTU for ICMPv6 packet-too-big, the pointer for
 * parameter-problem.
 */
export function buildIcmpError(
  type: number,
  code: number,
  offending: Uint8Array,
  param = 0,
  v6?: { src: Uint8Array; dst: Uint8Array },
): Uint8Array {
  const ipHeaderLen = v6 ? 40 : 20;
  const maxLen = (v6 ? ICMPV6_ERROR_MAX_LEN : ICMPV4_ERROR_MAX_LEN) - ipHeaderLen;
  const quoted = Math.min(offending.length, maxLen - ICMP_HEADER_LEN);
  const out = new Uint8Array(ICMP_HEADER_LEN + quoted);
  out[0] = type;
  out[1] = code;
  out[4] = param >>> 24;
  out[5] = param >>> 16;
  out[6] = param >>> 8;
  out[7] = param;
  out.set(offending.subarray(0, quoted), ICMP_HEADER_LEN);
  const m = new IcmpMessage(out);
  if (v6) m.fillChecksumV6(v6.src, v6.dst);
  else m.fillChecksumV4();
  return out;
}
