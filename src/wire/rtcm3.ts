/**
 * RTCM 3 transport-layer frames (RTCM 10403, section 4): a frame view, the CRC-24Q and an incremental scanner
 * that cuts a byte stream into whole CRC-valid frames.
 *
 * Frame layout:
 *   preamble 0xD3 (8 bits) | reserved, zero (6 bits) | payload length (10 bits) | payload | CRC-24Q (24 bits)
 * The CRC covers preamble, reserved bits, length and payload. The message type is the payload's first 12 bits.
 */

export const RTCM3_PREAMBLE = 0xd3;
/** Preamble, reserved bits and length. */
export const RTCM3_HEADER_LEN = 3;
export const RTCM3_CRC_LEN = 3;
/** The length field has 10 bits. */
export const RTCM3_MAX_PAYLOAD_LEN = 1023;
export const RTCM3_MAX_FRAME_LEN = RTCM3_HEADER_LEN + RTCM3_MAX_PAYLOAD_LEN + RTCM3_CRC_LEN;
/** Nothing held (shared: a scanner holds no partial frame most of the time). */
const EMPTY = new Uint8Array(0);
/** The top 6 bits of the second byte must be zero (RTCM 10403, table 4-1). */
const RESERVED_MASK = 0xfc;

/** Stationary RTK reference station ARP (1005) and the same with antenna height (1006). */
export const RTCM3_STATION_ARP = 1005;
export const RTCM3_STATION_ARP_HEIGHT = 1006;
/** 1005/1006 payload: DF002 12 + DF003 12 + DF021 6 + DF022..DF141 4 + X 38 + 2 + Y 38 + 2 + Z 38 = 152 bits. */
const STATION_ARP_PAYLOAD_LEN = 19;
const ARP_X_BIT = 34;
const ARP_Y_BIT = 74;
const ARP_Z_BIT = 114;
const ARP_COORD_BITS = 38;
/** DF025..DF027 resolution: 0.0001 m. */
const ARP_UNITS_PER_METRE = 10_000;

/** CRC-24Q: polynomial 0x1864CFB, initial value 0, no reflection, no final XOR. */
const CRC24Q_POLY = 0x864cfb; // the x^24 term falls off the 24-bit register
const CRC24Q_TABLE = (() => {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 16;
    for (let bit = 0; bit < 8; bit++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= CRC24Q_POLY;
    }
    table[i] = crc & 0xffffff;
  }
  return table;
})();

/** CRC-24Q of bytes[start, end). */
export function crc24q(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffffff) ^ CRC24Q_TABLE[(crc >> 16) ^ bytes[i]];
  return crc;
}

export interface Ecef {
  x: number;
  y: number;
  z: number;
}

/** A view of one RTCM3 frame at the start of a buffer (no copy). */
export class Rtcm3Frame {
  buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /**
   * True when buf starts with a preamble, zero reserved bits and holds the whole frame its length field
   * announces. The CRC is not checked here (see `crcValid`).
   */
  static checkLen(buf: Uint8Array): boolean {
    if (buf.length < RTCM3_HEADER_LEN + RTCM3_CRC_LEN) return false;
    if (buf[0] !== RTCM3_PREAMBLE || (buf[1] & RESERVED_MASK) !== 0) return false;
    return RTCM3_HEADER_LEN + (((buf[1] & 0x03) << 8) | buf[2]) + RTCM3_CRC_LEN <= buf.length;
  }

  static parse(buf: Uint8Array): Rtcm3Frame | null {
    return Rtcm3Frame.checkLen(buf) ? new Rtcm3Frame(buf) : null;
  }

  get payloadLength(): number {
    return ((this.buf[1] & 0x03) << 8) | this.buf[2];
  }
  get frameLength(): number {
    return RTCM3_HEADER_LEN + this.payloadLength + RTCM3_CRC_LEN;
  }
  get payload(): Uint8Array {
    return this.buf.subarray(RTCM3_HEADER_LEN, RTCM3_HEADER_LEN + this.payloadLength);
  }
  /** DF002, the first 12 payload bits; 0 for a frame whose payload is too short to hold one. */
  get messageType(): number {
    return this.payloadLength >= 2 ? (this.buf[3] << 4) | (this.buf[4] >> 4) : 0;
  }
  /** The CRC field as sent. */
  get crc(): number {
    const at = RTCM3_HEADER_LEN + this.payloadLength;
    return (this.buf[at] << 16) | (this.buf[at + 1] << 8) | this.buf[at + 2];
  }
  crcValid(): boolean {
    return crc24q(this.buf, 0, RTCM3_HEADER_LEN + this.payloadLength) === this.crc;
  }

  #isStationArp(): boolean {
    const type = this.messageType;
    return (type === RTCM3_STATION_ARP || type === RTCM3_STATION_ARP_HEIGHT) &&
      this.payloadLength >= STATION_ARP_PAYLOAD_LEN;
  }

  /** DF003 reference station id of a 1005/1006 message; undefined for other types. */
  get stationId(): number | undefined {
    return this.#isStationArp() ? ((this.buf[4] & 0x0f) << 8) | this.buf[5] : undefined;
  }

  /** The antenna reference point of a 1005/1006 message (DF025..DF027) in metres; undefined otherwise. */
  ecef(): Ecef | undefined {
    if (!this.#isStationArp()) return undefined;
    const payload = this.payload;
    const coord = (bit: number) => signedBits(payload, bit, ARP_COORD_BITS) / ARP_UNITS_PER_METRE;
    return { x: coord(ARP_X_BIT), y: coord(ARP_Y_BIT), z: coord(ARP_Z_BIT) };
  }
}

/** Two's-complement field of `len` bits (at most 52) starting `bit` bits into bytes, most significant first. */
function signedBits(bytes: Uint8Array, bit: number, len: number): number {
  let value = 0;
  for (let i = bit; i < bit + len; i++) value = value * 2 + ((bytes[i >> 3] >> (7 - (i & 7))) & 1);
  const signBit = 2 ** (len - 1);
  return value >= signBit ? value - 2 * signBit : value;
}

export interface Rtcm3Stats {
  /** Whole CRC-valid frames seen. */
  frames: number;
  /** Frames per message type. */
  byType: Map<number, number>;
  /** Preambles whose announced frame failed its CRC (each one is skipped and the scan resumes after it). */
  crcErrors: number;
  /** Bytes dropped because they were not part of a valid frame. */
  skippedBytes: number;
  /** When the last valid frame was seen (the `nowMs` given to push, or Date.now()). */
  lastFrameAtMs?: number;
  /** From the last 1005/1006. */
  stationId?: number;
  ecef?: Ecef;
}

/**
 * Cuts a byte stream into whole CRC-valid RTCM3 frames. Every byte pushed ends up in exactly one of: a frame
 * handed to onFrame, `stats.skippedBytes`, or `pending` (held for the rest of a frame).
 */
export class Rtcm3Scanner {
  readonly stats: Rtcm3Stats = { frames: 0, byType: new Map(), crcErrors: 0, skippedBytes: 0 };
  readonly #maxFrameLen: number;
  #held = EMPTY;
  #view = new Rtcm3Frame(this.#held);

  /**
   * maxBuffered: the longest frame waited for (default and upper limit: the longest RTCM3 frame, 1029 bytes).
   * A smaller value bounds what is held; a preamble announcing a longer frame is then skipped as noise.
   */
  constructor(opts: { maxBuffered?: number } = {}) {
    this.#maxFrameLen = Math.max(
      RTCM3_HEADER_LEN + RTCM3_CRC_LEN,
      Math.min(opts.maxBuffered ?? RTCM3_MAX_FRAME_LEN, RTCM3_MAX_FRAME_LEN),
    );
  }

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.#held.length;
  }

  /**
   * Feeds bytes; calls onFrame(frame bytes, messageType) for each whole CRC-valid frame, in order. Bytes that
   * are not part of a valid frame are counted (skippedBytes) and dropped; on a bad CRC it rescans from the byte
   * after the false preamble. A partial frame at the end is held (not forwarded) until the rest arrives.
   * `frame` may be a view into `chunk` or into the scanner's own buffer: it is valid only during the call
   * (copy it to keep it).
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array, type: number) => void, nowMs?: number): void {
    if (this.#held.length === 0) {
      this.#hold(chunk.subarray(this.#scan(chunk, onFrame, nowMs)));
      return;
    }
    // A held partial frame needs at most one frame's worth of the new chunk to be decided, so only that much
    // is copied; whatever follows is scanned in place.
    const head = chunk.subarray(0, RTCM3_MAX_FRAME_LEN);
    const work = new Uint8Array(this.#held.length + head.length);
    work.set(this.#held);
    work.set(head, this.#held.length);
    const heldLen = this.#held.length;
    this.#held = EMPTY;
    const stop = this.#scan(work, onFrame, nowMs);
    if (head.length === chunk.length) {
      this.#hold(work.subarray(stop));
    } else {
      // The scan stopped inside the copied part of chunk: a frame starting in the held bytes needs at most
      // RTCM3_MAX_FRAME_LEN bytes, which work had, so it was decided.
      const rest = chunk.subarray(stop - heldLen);
      this.#hold(rest.subarray(this.#scan(rest, onFrame, nowMs)));
    }
  }

  /**
   * Drops the held partial frame (counted as skipped), e.g. when a new session starts mid-stream; the
   * statistics are kept. Returns how many bytes were dropped.
   */
  discardPending(): number {
    const dropped = this.#held.length;
    this.stats.skippedBytes += dropped;
    this.#held = EMPTY;
    return dropped;
  }

  /** Forgets the held bytes and zeroes the statistics (the same stats object), as a new scanner. */
  reset(): void {
    this.#held = EMPTY;
    const s = this.stats;
    s.frames = 0;
    s.byType.clear();
    s.crcErrors = 0;
    s.skippedBytes = 0;
    delete s.lastFrameAtMs;
    delete s.stationId;
    delete s.ecef;
  }

  #hold(tail: Uint8Array): void {
    this.#held = tail.length === 0 ? EMPTY : tail.slice();
  }

  /** Emits the frames of buf; returns where an incomplete frame starts (buf.length when none). */
  #scan(buf: Uint8Array, onFrame: (frame: Uint8Array, type: number) => void, nowMs?: number): number {
    const stats = this.stats;
    let i = 0;
    while (i < buf.length) {
      if (buf[i] !== RTCM3_PREAMBLE) {
        let next = buf.indexOf(RTCM3_PREAMBLE, i);
        if (next < 0) next = buf.length;
        stats.skippedBytes += next - i;
        i = next;
        continue;
      }
      if (buf.length - i < RTCM3_HEADER_LEN) return i;
      if ((buf[i + 1] & RESERVED_MASK) !== 0) { // a 0xD3 that is not a preamble
        stats.skippedBytes++;
        i++;
        continue;
      }
      const payloadLen = ((buf[i + 1] & 0x03) << 8) | buf[i + 2];
      const frameLen = RTCM3_HEADER_LEN + payloadLen + RTCM3_CRC_LEN;
      if (frameLen > this.#maxFrameLen) {
        stats.skippedBytes++;
        i++;
        continue;
      }
      if (buf.length - i < frameLen) return i;
      const frame = buf.subarray(i, i + frameLen);
      const view = this.#view;
      view.buf = frame;
      if (!view.crcValid()) { // a false preamble: resync from the byte after it
        stats.crcErrors++;
        stats.skippedBytes++;
        i++;
        continue;
      }
      const type = view.messageType;
      stats.frames++;
      stats.byType.set(type, (stats.byType.get(type) ?? 0) + 1);
      stats.lastFrameAtMs = nowMs ?? Date.now();
      const stationId = view.stationId;
      if (stationId !== undefined) {
        stats.stationId = stationId;
        stats.ecef = view.ecef();
      }
      i += frameLen;
      onFrame(frame, type);
    }
    return i;
  }
}
