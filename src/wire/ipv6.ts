/**
 * IPv6 header view (RFC 8200), the extension-header walk and the Fragment header. The fixed header is 40
 * bytes; `checkLen` validates version and payload length against the buffer before any other read.
 */
import { parseIpv4 } from "./ipv4.ts";

export const IPV6_VERSION = 6;
export const IPV6_HEADER_LEN = 40;
/** RFC 8200 section 5: every link carries at least 1280-byte packets. */
export const IPV6_MIN_MTU = 1280;
export const IPV6_DEFAULT_HOP_LIMIT = 64;
export const IPV6_FRAGMENT_HEADER_LEN = 8;

/** Next Header values of the extension headers this stack walks (RFC 8200 section 4). */
export const IPV6_NEXT_HOP_BY_HOP = 0;
export const IPV6_NEXT_ROUTING = 43;
export const IPV6_NEXT_FRAGMENT = 44;
export const IPV6_NEXT_ESP = 50;
export const IPV6_NEXT_AH = 51;
export const IPV6_NEXT_NONE = 59;
export const IPV6_NEXT_DEST_OPTS = 60;

export class Ipv6Packet {
  buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /** True when buf holds the fixed header with version 6 and the whole payload length. */
  static checkLen(buf: Uint8Array): boolean {
    if (buf.length < IPV6_HEADER_LEN) return false;
    if (buf[0] >> 4 !== IPV6_VERSION) return false;
    return IPV6_HEADER_LEN + ((buf[4] << 8) | buf[5]) <= buf.length;
  }

  static parse(buf: Uint8Array): Ipv6Packet | null {
    return Ipv6Packet.checkLen(buf) ? new Ipv6Packet(buf) : null;
  }

  reset(buf: Uint8Array): this {
    this.buf = buf;
    return this;
  }

  get version(): number {
    return this.buf[0] >> 4;
  }
  get trafficClass(): number {
    return ((this.buf[0] & 0x0f) << 4) | (this.buf[1] >> 4);
  }
  get flowLabel(): number {
    return ((this.buf[1] & 0x0f) << 16) | (this.buf[2] << 8) | this.buf[3];
  }
  get payloadLen(): number {
    return (this.buf[4] << 8) | this.buf[5];
  }
  set payloadLen(v: number) {
    this.buf[4] = v >> 8;
    this.buf[5] = v;
  }
  get nextHeader(): number {
    return this.buf[6];
  }
  get hopLimit(): number {
    return this.buf[7];
  }
  set hopLimit(v: number) {
    this.buf[7] = v;
  }
  get src(): Uint8Array {
    return this.buf.subarray(8, 24);
  }
  get dst(): Uint8Array {
    return this.buf.subarray(24, 40);
  }
  /** Everything after the fixed header up to payload length (extension headers included). */
  get payload(): Uint8Array {
    return this.buf.subarray(IPV6_HEADER_LEN, IPV6_HEADER_LEN + this.payloadLen);
  }
  /** Offset of the end of the packet (fixed header + payload length). */
  get end(): number {
    return IPV6_HEADER_LEN + this.payloadLen;
  }
}

/** Result of walking the extension-header chain; reused between calls so the walk allocates nothing. */
export interface Ipv6HeaderChain {
  /** Upper-layer protocol (or IPV6_NEXT_NONE / an unknown value). */
  protocol: number;
  /** Offset of the upper-layer header within the packet. */
  offset: number;
  /** Offset of the Fragment header, or -1. */
  fragmentHeaderOffset: number;
  /** Offset of the Next Header field that names `protocol`. */
  nextHeaderFieldOffset: number;
  /** Offset of the Next Header field that names the Fragment header (to splice it out when reassembled). */
  fragmentNextFieldOffset: number;
  /**
   * Offset of the first option (hop-by-hop or destination options) we do not know whose type asks for the
   * packet to be discarded (RFC 8200 section 4.2: action bits 01, 10, 11), or -1.
   */
  unknownOptionOffset: number;
  /** The action bits (type >> 6) of that option. */
  unknownOptionAction: number;
}

export function newHeaderChain(): Ipv6HeaderChain {
  return {
    protocol: 0,
    offset: 0,
    fragmentHeaderOffset: -1,
    nextHeaderFieldOffset: 6,
    fragmentNextFieldOffset: -1,
    unknownOptionOffset: -1,
    unknownOptionAction: 0,
  };
}

/** Upper bound on extension headers walked, so a crafted chain cannot make us loop long. */
const MAX_EXTENSION_HEADERS = 16;

/**
 * Walks hop-by-hop, routing, fragment and destination-options headers from the fixed header to the
 * upper-layer header. Returns false for a truncated or malformed chain (a header running past `end`, a
 * hop-by-hop header not first, too many headers). Headers after a non-first fragment are not walked: the
 * fragment's payload is opaque until reassembled.
 */
export function walkExtensionHeaders(buf: Uint8Array, end: number, out: Ipv6HeaderChain): boolean {
  let next = buf[6];
  let nextField = 6;
  let off = IPV6_HEADER_LEN;
  out.fragmentHeaderOffset = -1;
  out.unknownOptionOffset = -1;
  for (let n = 0; n < MAX_EXTENSION_HEADERS; n++) {
    switch (next) {
      case IPV6_NEXT_HOP_BY_HOP:
        // RFC 8200 section 4.1: hop-by-hop options only immediately after the fixed header.
        if (off !== IPV6_HEADER_LEN) return false;
      /* falls through */
      case IPV6_NEXT_ROUTING:
      case IPV6_NEXT_DEST_OPTS: {
        if (off + 8 > end) return false;
        const len = (buf[off + 1] + 1) << 3;
        if (off + len > end) return false;
        if (next !== IPV6_NEXT_ROUTING && !scanOptions(buf, off + 2, off + len, out)) return false;
        next = buf[off];
        nextField = off;
        off += len;
        continue;
      }
      case IPV6_NEXT_FRAGMENT: {
        if (off + IPV6_FRAGMENT_HEADER_LEN > end) return false;
        if (out.fragmentHeaderOffset >= 0) return false;
        out.fragmentHeaderOffset = off;
        out.fragmentNextFieldOffset = nextField;
        next = buf[off];
        nextField = off;
        off += IPV6_FRAGMENT_HEADER_LEN;
        // A non-first fragment carries no further headers we could read.
        if ((((buf[off - 6] << 8) | buf[off - 5]) & 0xfff8) !== 0) break;
        continue;
      }
    }
    out.protocol = next;
    out.offset = off;
    out.nextHeaderFieldOffset = nextField;
    return true;
  }
  return false;
}

/** Option types we understand: Pad1, PadN, Router Alert (RFC 2711). Everything else is "unknown". */
const OPT_PAD1 = 0, OPT_PADN = 1, OPT_ROUTER_ALERT = 5;

/** Checks the TLV options in [p, end): false when one overruns; records the first unknown "discard" option. */
function scanOptions(buf: Uint8Array, p: number, end: number, out: Ipv6HeaderChain): boolean {
  while (p < end) {
    const type = buf[p];
    if (type === OPT_PAD1) {
      p++;
      continue;
    }
    if (p + 2 > end || p + 2 + buf[p + 1] > end) return false;
    if (type !== OPT_PADN && type !== OPT_ROUTER_ALERT && type >> 6 !== 0 && out.unknownOptionOffset < 0) {
      out.unknownOptionOffset = p;
      out.unknownOptionAction = type >> 6;
    }
    p += 2 + buf[p + 1];
  }
  return true;
}

/** View of an IPv6 Fragment header (RFC 8200 section 4.5) at buf[off]; caller checked 8 bytes exist. */
export class Ipv6FragmentHeader {
  constructor(public buf: Uint8Array, public off: number) {}

  get nextHeader(): number {
    return this.buf[this.off];
  }
  /** Offset of this fragment's data in bytes. */
  get fragmentOffset(): number {
    return ((this.buf[this.off + 2] << 8) | this.buf[this.off + 3]) & 0xfff8;
  }
  get moreFragments(): boolean {
    return (this.buf[this.off + 3] & 1) !== 0;
  }
  get ident(): number {
    const b = this.buf, o = this.off;
    return ((b[o + 4] << 24) | (b[o + 5] << 16) | (b[o + 6] << 8) | b[o + 7]) >>> 0;
  }
}

export interface Ipv6HeaderFields {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  payloadLen: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

/** Writes the 40-byte fixed header at buf[off]. Returns the header length. */
export function writeIpv6Header(buf: Uint8Array, off: number, f: Ipv6HeaderFields): number {
  const tc = f.trafficClass ?? 0, fl = f.flowLabel ?? 0;
  buf[off] = 0x60 | (tc >> 4);
  buf[off + 1] = ((tc & 0x0f) << 4) | ((fl >> 16) & 0x0f);
  buf[off + 2] = fl >> 8;
  buf[off + 3] = fl;
  buf[off + 4] = f.payloadLen >> 8;
  buf[off + 5] = f.payloadLen;
  buf[off + 6] = f.nextHeader;
  buf[off + 7] = f.hopLimit ?? IPV6_DEFAULT_HOP_LIMIT;
  buf.set(f.src, off + 8);
  buf.set(f.dst, off + 24);
  return IPV6_HEADER_LEN;
}

export function buildIpv6Packet(f: Omit<Ipv6HeaderFields, "payloadLen">, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(IPV6_HEADER_LEN + payload.length);
  writeIpv6Header(out, 0, { ...f, payloadLen: payload.length });
  out.set(payload, IPV6_HEADER_LEN);
  return out;
}

/** RFC 5952 text: lowercase, leading zeros dropped, the longest run (>= 2) of zero groups as "::". */
export function formatIpv6(a: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((a[i] << 8) | a[i + 1]);
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-mapped addresses read better with a dotted tail (RFC 5952 section 5).
  if (bestStart === 0 && bestLen === 5 && g[5] === 0xffff) {
    return `::ffff:${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Parses IPv6 text (with "::" and an optional dotted IPv4 tail; no zone, no brackets); null when invalid. */
export function parseIpv6(s: string): Uint8Array | null {
  if (s.length < 2 || s.length > 45) return null;
  const out = new Uint8Array(16);
  let tail4: Uint8Array | null = null;
  let text = s;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) >= 0) {
    tail4 = parseIpv4(text.slice(lastColon + 1));
    if (!tail4) return null;
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = text.indexOf("::");
  if (dbl >= 0 && text.indexOf("::", dbl + 1) >= 0) return null;
  const parseGroups = (t: string): number[] | null => {
    if (t === "") return [];
    const parts = t.split(":");
    const res: number[] = [];
    for (const p of parts) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      res.push(parseInt(p, 16));
    }
    return res;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseGroups(text.slice(0, dbl));
    const tail = parseGroups(text.slice(dbl + 2));
    if (!head || !tail || head.length + tail.length > 7) return null;
    groups = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(text);
    if (!all || all.length !== 8) return null;
    groups = all;
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >> 8;
    out[2 * i + 1] = groups[i];
  }
  if (tail4) out.set(tail4, 12);
  return out;
}
