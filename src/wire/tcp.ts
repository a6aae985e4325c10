/**
 * TCP header layout (RFC 9293 section 3.1) and options (MSS, window scale and timestamps of RFC 7323,
 * SACK-permitted and SACK blocks of RFC 2018). Byte layout only: the state machine lives in src/netstack/tcp/.
 * Every accessor is preceded by a length check in `checkTcpSegment`, so a view over a short or lying buffer
 * is never read out of bounds.
 */

export const TCP_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;
export const TCP_CHECKSUM_OFFSET = 16;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW_SCALE = 3;
export const TCPOPT_SACK_PERMITTED = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;

/** RFC 7323 section 2.3: shift counts above 14 are treated as 14. */
export const TCP_MAX_WINDOW_SHIFT = 14;
/** At most 4 SACK blocks fit in 40 option bytes (3 when timestamps are present). */
export const TCP_MAX_SACK_BLOCKS = 4;

/** Options carried by one segment. Parsing fills a reused instance; absent options are undefined/false. */
export class TcpHeaderOptions {
  mss: number | undefined = undefined;
  windowShift: number | undefined = undefined;
  sackPermitted = false;
  hasTimestamp = false;
  tsVal = 0;
  tsEcr = 0;
  /** SACK blocks as [left, right) sequence-number pairs, flattened: [l0, r0, l1, r1, ...]. */
  sackBlocks: number[] = [];

  reset(): this {
    this.mss = undefined;
    this.windowShift = undefined;
    this.sackPermitted = false;
    this.hasTimestamp = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    this.sackBlocks.length = 0;
    return this;
  }
}

/** Why a segment is rejected, or null when the header is well-formed. */
export function checkTcpSegment(buf: Uint8Array): string | null {
  if (buf.length < TCP_HEADER_LEN) return "shorter than a TCP header";
  const hlen = (buf[12] >> 4) * 4;
  if (hlen < TCP_HEADER_LEN) return "data offset below 5";
  if (hlen > buf.length) return "data offset beyond segment";
  return null;
}

/** Typed accessors over a TCP segment. Call `checkTcpSegment` first. */
export class TcpSegmentView {
  constructor(public buf: Uint8Array) {}

  get srcPort(): number {
    return (this.buf[0] << 8) | this.buf[1];
  }
  get dstPort(): number {
    return (this.buf[2] << 8) | this.buf[3];
  }
  get seq(): number {
    const b = this.buf;
    return ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) >>> 0;
  }
  get ack(): number {
    const b = this.buf;
    return ((b[8] << 24) | (b[9] << 16) | (b[10] << 8) | b[11]) >>> 0;
  }
  get headerLength(): number {
    return (this.buf[12] >> 4) * 4;
  }
  get flags(): number {
    return this.buf[13];
  }
  get window(): number {
    return (this.buf[14] << 8) | this.buf[15];
  }
  get checksum(): number {
    return (this.buf[16] << 8) | this.buf[17];
  }
  get urgentPointer(): number {
    return (this.buf[18] << 8) | this.buf[19];
  }
  get payload(): Uint8Array {
    return this.buf.subarray(this.headerLength);
  }
  get payloadLength(): number {
    return this.buf.length - this.headerLength;
  }

  /** Parses the options into `out`; false when they are malformed (the segment should be dropped). */
  parseOptions(out: TcpHeaderOptions): boolean {
    return parseTcpOptions(this.buf, TCP_HEADER_LEN, this.headerLength, out);
  }
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/**
 * Parses options in buf[start, end). Unknown options are skipped by their length byte; a length that is
 * below 2 or runs past the header makes the whole option list malformed (RFC 9293 section 3.1 requires
 * dropping such a segment rather than guessing).
 */
export function parseTcpOptions(buf: Uint8Array, start: number, end: number, out: TcpHeaderOptions): boolean {
  out.reset();
  let i = start;
  while (i < end) {
    const kind = buf[i];
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    const len = buf[i + 1];
    if (len < 2 || i + len > end) return false;
    switch (kind) {
      case TCPOPT_MSS:
        if (len !== 4) return false;
        out.mss = (buf[i + 2] << 8) | buf[i + 3];
        break;
      case TCPOPT_WINDOW_SCALE:
        if (len !== 3) return false;
        out.windowShift = Math.min(buf[i + 2], TCP_MAX_WINDOW_SHIFT);
        break;
      case TCPOPT_SACK_PERMITTED:
        if (len !== 2) return false;
        out.sackPermitted = true;
        break;
      case TCPOPT_SACK: {
        if ((len - 2) % 8 !== 0 || len === 2) return false;
        for (let o = i + 2; o < i + len; o += 8) out.sackBlocks.push(u32(buf, o), u32(buf, o + 4));
        break;
      }
      case TCPOPT_TIMESTAMP:
        if (len !== 10) return false;
        out.hasTimestamp = true;
        out.tsVal = u32(buf, i + 2);
        out.tsEcr = u32(buf, i + 6);
        break;
    }
    i += len;
  }
  return true;
}

/** Fields of a header to build. Ports and numbers are plain JS numbers (seq/ack modulo 2^32). */
export interface TcpHeaderFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
}

/** What options to write; sackBlocks is flattened [l0, r0, ...] and at most 4 (3 with a timestamp) blocks. */
export interface TcpOptionsToWrite {
  mss?: number;
  windowShift?: number;
  sackPermitted?: boolean;
  timestamp?: { val: number; ecr: number };
  sackBlocks?: number[];
}

/** Byte length of the options `writeTcpHeader` emits for `o` (padded to a multiple of 4). */
export function tcpOptionsLength(o: TcpOptionsToWrite | undefined): number {
  if (!o) return 0;
  let n = 0;
  if (o.mss !== undefined) n += 4;
  // SACK-permitted rides in the two NOPs before a timestamp, as Linux lays it out.
  if (o.timestamp) n += 12;
  else if (o.sackPermitted) n += 4;
  if (o.windowShift !== undefined) n += 4;
  if (o.sackBlocks && o.sackBlocks.length > 0) n += 4 + 4 * o.sackBlocks.length;
  return n;
}

/**
 * Writes a header with options at buf[off] and returns its length. The checksum field is zeroed (the IP
 * layer fills it). The caller guarantees room for the header (at most 60 bytes).
 */
export function writeTcpHeader(
  buf: Uint8Array,
  off: number,
  f: TcpHeaderFields,
  o?: TcpOptionsToWrite,
): number {
  let p = off + TCP_HEADER_LEN;
  if (o) {
    if (o.mss !== undefined) {
      buf[p++] = TCPOPT_MSS;
      buf[p++] = 4;
      buf[p++] = o.mss >>> 8;
      buf[p++] = o.mss;
    }
    if (o.timestamp) {
      if (o.sackPermitted) {
        buf[p++] = TCPOPT_SACK_PERMITTED;
        buf[p++] = 2;
      } else {
        buf[p++] = TCPOPT_NOP;
        buf[p++] = TCPOPT_NOP;
      }
      buf[p++] = TCPOPT_TIMESTAMP;
      buf[p++] = 10;
      putU32(buf, p, o.timestamp.val);
      putU32(buf, p + 4, o.timestamp.ecr);
      p += 8;
    } else if (o.sackPermitted) {
      buf[p++] = TCPOPT_NOP;
      buf[p++] = TCPOPT_NOP;
      buf[p++] = TCPOPT_SACK_PERMITTED;
      buf[p++] = 2;
    }
    if (o.windowShift !== undefined) {
      buf[p++] = TCPOPT_NOP;
      buf[p++] = TCPOPT_WINDOW_SCALE;
      buf[p++] = 3;
      buf[p++] = o.windowShift;
    }
    const sack = o.sackBlocks;
    if (sack && sack.length > 0) {
      const n = sack.length >> 1;
      buf[p++] = TCPOPT_NOP;
      buf[p++] = TCPOPT_NOP;
      buf[p++] = TCPOPT_SACK;
      buf[p++] = 2 + 8 * n;
      for (let i = 0; i < n * 2; i++, p += 4) putU32(buf, p, sack[i]);
    }
  }
  const hlen = p - off;
  buf[off] = f.srcPort >>> 8;
  buf[off + 1] = f.srcPort;
  buf[off + 2] = f.dstPort >>> 8;
  buf[off + 3] = f.dstPort;
  putU32(buf, off + 4, f.seq);
  putU32(buf, off + 8, f.ack);
  buf[off + 12] = (hlen / 4) << 4;
  buf[off + 13] = f.flags;
  buf[off + 14] = f.window >>> 8;
  buf[off + 15] = f.window;
  buf[off + 16] = 0;
  buf[off + 17] = 0;
  buf[off + 18] = 0;
  buf[off + 19] = 0;
  return hlen;
}

export function tcpFlagsToString(flags: number): string {
  const names: [number, string][] = [
    [TCP_SYN, "S"],
    [TCP_FIN, "F"],
    [TCP_RST, "R"],
    [TCP_PSH, "P"],
    [TCP_ACK, "."],
    [TCP_URG, "U"],
  ];
  return names.filter(([bit]) => flags & bit).map(([, n]) => n).join("") || "-";
}
