/** UDP header view (RFC 768): ports, length, checksum; 8 bytes before the payload. */

export const UDP_HEADER_LEN = 8;

export class UdpDatagram {
  buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /** True when the header fits and its length field lies between 8 and the buffer length. */
  static checkLen(buf: Uint8Array): boolean {
    if (buf.length < UDP_HEADER_LEN) return false;
    const len = (buf[4] << 8) | buf[5];
    return len >= UDP_HEADER_LEN && len <= buf.length;
  }

  static parse(buf: Uint8Array): UdpDatagram | null {
    return UdpDatagram.checkLen(buf) ? new UdpDatagram(buf) : null;
  }

  reset(buf: Uint8Array): this {
    this.buf = buf;
    return this;
  }

  get srcPort(): number {
    return (this.buf[0] << 8) | this.buf[1];
  }
  set srcPort(v: number) {
    this.buf[0] = v >> 8;
    this.buf[1] = v;
  }
  get dstPort(): number {
    return (this.buf[2] << 8) | this.buf[3];
  }
  set dstPort(v: number) {
    this.buf[2] = v >> 8;
    this.buf[3] = v;
  }
  get length(): number {
    return (this.buf[4] << 8) | this.buf[5];
  }
  set length(v: number) {
    this.buf[4] = v >> 8;
    this.buf[5] = v;
  }
  get checksum(): number {
    return (this.buf[6] << 8) | this.buf[7];
  }
  set checksum(v: number) {
    this.buf[6] = v >> 8;
    this.buf[7] = v;
  }
  /** Payload up to the length field (bytes after it are ignored). */
  get payload(): Uint8Array {
    return this.buf.subarray(UDP_HEADER_LEN, this.length);
  }
}

/**
 * Writes a UDP header with a zero checksum at buf[off] and copies payload after it; the IP layer fills the
 * checksum (it owns the pseudo-header). Returns the datagram length.
 */
export function writeUdpDatagram(
  buf: Uint8Array,
  off: number,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array,
): number {
  const len = UDP_HEADER_LEN + payload.length;
  buf[off] = srcPort >> 8;
  buf[off + 1] = srcPort;
  buf[off + 2] = dstPort >> 8;
  buf[off + 3] = dstPort;
  buf[off + 4] = len >> 8;
  buf[off + 5] = len;
  buf[off + 6] = 0;
  buf[off + 7] = 0;
  buf.set(payload, off + UDP_HEADER_LEN);
  return len;
}

export function buildUdpDatagram(srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(UDP_HEADER_LEN + payload.length);
  writeUdpDatagram(out, 0, srcPort, dstPort, payload);
  return out;
}
