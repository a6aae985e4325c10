/**
 * IPv4 header view (RFC 791). The view wraps a buffer without copying; `checkLen` validates every length
 * field against the buffer before any accessor reads past the fixed header.
 */
import { finishChecksum, internetChecksum, onesSum } from "./checksum.ts";

export const IPV4_VERSION = 4;
export const IPV4_MIN_HEADER_LEN = 20;
export const IPV4_MAX_HEADER_LEN = 60;
/** RFC 791: every host must accept datagrams of 576 octets. */
export const IPV4_MIN_REASSEMBLY_MTU = 576;
/** RFC 791 / RFC 1191: the smallest MTU a link may have. */
export const IPV4_MIN_MTU = 68;
export const IPV4_DEFAULT_TTL = 64;
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
const FRAG_OFFSET_MASK = 0x1fff;

export class Ipv4Packet {
  buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /**
   * True when buf holds a complete IPv4 header and its total length: version 4, IHL >= 5, header within
   * total length, total length within the buffer. Bytes after total length (link padding) are allowed.
   */
  static checkLen(buf: Uint8Array): boolean {
    if (buf.length < IPV4_MIN_HEADER_LEN) return false;
    if (buf[0] >> 4 !== IPV4_VERSION) return false;
    const headerLen = (buf[0] & 0x0f) << 2;
    if (headerLen < IPV4_MIN_HEADER_LEN) return false;
    const totalLen = (buf[2] << 8) | buf[3];
    return totalLen >= headerLen && totalLen <= buf.length;
  }

  static parse(buf: Uint8Array): Ipv4Packet | null {
    return Ipv4Packet.checkLen(buf) ? new Ipv4Packet(buf) : null;
  }

  /** Re-points this view at another buffer (lets the hot path reuse one view object). */
  reset(buf: Uint8Array): this {
    this.buf = buf;
    return this;
  }

  get version(): number {
    return this.buf[0] >> 4;
  }
  get headerLen(): number {
    return (this.buf[0] & 0x0f) << 2;
  }
  get dscp(): number {
    return this.buf[1] >> 2;
  }
  get ecn(): number {
    return this.buf[1] & 3;
  }
  get totalLen(): number {
    return (this.buf[2] << 8) | this.buf[3];
  }
  set totalLen(v: number) {
    this.buf[2] = v >> 8;
    this.buf[3] = v;
  }
  get ident(): number {
    return (this.buf[4] << 8) | this.buf[5];
  }
  set ident(v: number) {
    this.buf[4] = v >> 8;
    this.buf[5] = v;
  }
  get flagsAndOffset(): number {
    return (this.buf[6] << 8) | this.buf[7];
  }
  get dontFragment(): boolean {
    return (this.buf[6] & 0x40) !== 0;
  }
  get moreFragments(): boolean {
    return (this.buf[6] & 0x20) !== 0;
  }
  /** Fragment offset in bytes (the header field counts 8-byte units). */
  get fragmentOffset(): number {
    return (((this.buf[6] << 8) | this.buf[7]) & FRAG_OFFSET_MASK) << 3;
  }
  /** True when this packet is a fragment (MF set or a non-zero offset). */
  get isFragment(): boolean {
    return (((this.buf[6] << 8) | this.buf[7]) & (IPV4_FLAG_MF | FRAG_OFFSET_MASK)) !== 0;
  }
  get ttl(): number {
    return this.buf[8];
  }
  set ttl(v: number) {
    this.buf[8] = v;
  }
  get protocol(): number {
    return this.buf[9];
  }
  get checksum(): number {
    return (this.buf[10] << 8) | this.buf[11];
  }
  /** Source address (a view into the packet, not a copy). */
  get src(): Uint8Array {
    return this.buf.subarray(12, 16);
  }
  get dst(): Uint8Array {
    return this.buf.subarray(16, 20);
  }
  /** Source address as an unsigned 32-bit number (a map key without allocation). */
  get srcU32(): number {
    const b = this.buf;
    return ((b[12] << 24) | (b[13] << 16) | (b[14] << 8) | b[15]) >>> 0;
  }
  get dstU32(): number {
    const b = this.buf;
    return ((b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19]) >>> 0;
  }
  /** The payload after header and options, up to total length (link padding excluded). */
  get payload(): Uint8Array {
    return this.buf.subarray(this.headerLen, this.totalLen);
  }
  get payloadLen(): number {
    return this.totalLen - this.headerLen;
  }

  verifyChecksum(): boolean {
    return internetChecksum(this.buf, 0, this.headerLen) === 0;
  }

  fillChecksum(): void {
    this.buf[10] = 0;
    this.buf[11] = 0;
    const c = internetChecksum(this.buf, 0, this.headerLen);
    this.buf[10] = c >> 8;
    this.buf[11] = c;
  }
}

export interface Ipv4HeaderFields {
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  /** Bytes after the 20-byte header. */
  payloadLen: number;
  ttl?: number;
  ident?: number;
  dontFragment?: boolean;
  dscp?: number;
}

/** Writes a 20-byte IPv4 header (no options) with its checksum at buf[off]. Returns the header length. */
export function writeIpv4Header(buf: Uint8Array, off: number, f: Ipv4HeaderFields): number {
  const totalLen = IPV4_MIN_HEADER_LEN + f.payloadLen;
  buf[off] = 0x45;
  buf[off + 1] = (f.dscp ?? 0) << 2;
  buf[off + 2] = totalLen >> 8;
  buf[off + 3] = totalLen;
  const ident = f.ident ?? 0;
  buf[off + 4] = ident >> 8;
  buf[off + 5] = ident;
  buf[off + 6] = f.dontFragment ? 0x40 : 0;
  buf[off + 7] = 0;
  buf[off + 8] = f.ttl ?? IPV4_DEFAULT_TTL;
  buf[off + 9] = f.protocol;
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  buf.set(f.src, off + 12);
  buf.set(f.dst, off + 16);
  const c = finishChecksum(onesSum(buf, off, IPV4_MIN_HEADER_LEN));
  buf[off + 10] = c >> 8;
  buf[off + 11] = c;
  return IPV4_MIN_HEADER_LEN;
}

/** A new IPv4 packet carrying payload. */
export function buildIpv4Packet(f: Omit<Ipv4HeaderFields, "payloadLen">, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(IPV4_MIN_HEADER_LEN + payload.length);
  writeIpv4Header(out, 0, { ...f, payloadLen: payload.length });
  out.set(payload, IPV4_MIN_HEADER_LEN);
  return out;
}

/** Dotted-quad text of a 4-byte address. */
export function formatIpv4(a: Uint8Array): string {
  return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
}

/** Parses dotted-quad text (exactly four decimal parts 0..255, no leading zeros); null when invalid. */
export function parseIpv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}
