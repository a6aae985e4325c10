/**
 * WireGuard message layouts (whitepaper section 5.4) as views over a byte buffer. Integers are little-endian;
 * byte 0 is the type and bytes 1..3 are zero (reserved; Cloudflare WARP puts a client id there, see
 * RESERVED_OFFSET). `parse` returns null for a buffer of the wrong size or type, so
 * callers count and drop instead of reading out of bounds.
 */

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
export const TRANSPORT_HEADER_SIZE = 16;
export const TAG_SIZE = 16;
/** Header plus the tag of an empty plaintext: a keepalive. */
export const TRANSPORT_MIN_SIZE = TRANSPORT_HEADER_SIZE + TAG_SIZE;
export const KEY_SIZE = 32;
export const MAC_SIZE = 16;
export const COOKIE_NONCE_SIZE = 24;

/** Returns the message type when byte 0 is 1..4 and bytes 1..3 are zero and the size fits it; else 0. */
export function messageType(buf: Uint8Array): number {
  if (buf.length < 4 || buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) return 0;
  return typeFittingSize(buf[0], buf.length);
}

function typeFittingSize(type: number, size: number): number {
  switch (type) {
    case MESSAGE_INITIATION:
      return size === INITIATION_SIZE ? MESSAGE_INITIATION : 0;
    case MESSAGE_RESPONSE:
      return size === RESPONSE_SIZE ? MESSAGE_RESPONSE : 0;
    case MESSAGE_COOKIE_REPLY:
      return size === COOKIE_REPLY_SIZE ? MESSAGE_COOKIE_REPLY : 0;
    case MESSAGE_TRANSPORT:
      return size >= TRANSPORT_MIN_SIZE ? MESSAGE_TRANSPORT : 0;
    default:
      return 0;
  }
}

/** Bytes 1..3 of every message: zero in the whitepaper, a 3-byte client id for Cloudflare WARP. */
export const RESERVED_OFFSET = 1;
export const RESERVED_SIZE = 3;

/**
 * Like messageType() but any value in bytes 1..3 is accepted: a WARP-style peer fills them, and they are not
 * covered by any MAC or AEAD as sent (senders compute mac1/mac2 over zeros; see withZeroReserved()).
 */
export function messageTypeAnyReserved(buf: Uint8Array): number {
  return buf.length < 4 ? 0 : typeFittingSize(buf[0], buf.length);
}

/** True when bytes 1..3 are all zero (a buffer shorter than 4 bytes counts as zero: nothing to clear). */
export function reservedIsZero(buf: Uint8Array): boolean {
  return buf.length < 4 || (buf[1] === 0 && buf[2] === 0 && buf[3] === 0);
}

/** A copy of `buf` with bytes 1..3 zeroed: the bytes a handshake's mac1/mac2 were computed over. */
export function withZeroReserved(buf: Uint8Array): Uint8Array {
  const copy = buf.slice();
  copy.fill(0, RESERVED_OFFSET, RESERVED_OFFSET + RESERVED_SIZE);
  return copy;
}

/** Writes a 3-byte reserved value into bytes 1..3 of a message about to be sent (after its MACs). */
export function writeReserved(buf: Uint8Array, reserved: Uint8Array): void {
  if (reserved.length !== RESERVED_SIZE) throw new Error(`reserved must be ${RESERVED_SIZE} bytes`);
  if (buf.length < RESERVED_OFFSET + RESERVED_SIZE) throw new Error("message too short for reserved bytes");
  buf.set(reserved, RESERVED_OFFSET);
}

abstract class MessageView {
  protected readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  protected u32(off: number): number {
    return this.view.getUint32(off, true);
  }
  protected setU32(off: number, v: number): void {
    this.view.setUint32(off, v >>> 0, true);
  }
  protected field(off: number, len: number): Uint8Array {
    return this.bytes.subarray(off, off + len);
  }
}

/** Handshake messages carry mac1 and mac2 in their last 32 bytes. */
abstract class HandshakeView extends MessageView {
  get mac1Offset(): number {
    return this.bytes.length - 2 * MAC_SIZE;
  }
  get mac2Offset(): number {
    return this.bytes.length - MAC_SIZE;
  }
  /** The bytes mac1 covers. */
  get beforeMac1(): Uint8Array {
    return this.bytes.subarray(0, this.mac1Offset);
  }
  /** The bytes mac2 covers (everything including mac1). */
  get beforeMac2(): Uint8Array {
    return this.bytes.subarray(0, this.mac2Offset);
  }
  get mac1(): Uint8Array {
    return this.field(this.mac1Offset, MAC_SIZE);
  }
  get mac2(): Uint8Array {
    return this.field(this.mac2Offset, MAC_SIZE);
  }
  get sender(): number {
    return this.u32(4);
  }
  set sender(v: number) {
    this.setU32(4, v);
  }
}

/** Type 1: 4 sender, 8 ephemeral(32), 40 encrypted static(48), 88 encrypted timestamp(28), 116 mac1, 132 mac2. */
export class InitiationMessage extends HandshakeView {
  static parse(buf: Uint8Array): InitiationMessage | null {
    return messageType(buf) === MESSAGE_INITIATION ? new InitiationMessage(buf) : null;
  }
  static create(): InitiationMessage {
    const b = new Uint8Array(INITIATION_SIZE);
    b[0] = MESSAGE_INITIATION;
    return new InitiationMessage(b);
  }
  get ephemeral(): Uint8Array {
    return this.field(8, KEY_SIZE);
  }
  get encryptedStatic(): Uint8Array {
    return this.field(40, KEY_SIZE + TAG_SIZE);
  }
  get encryptedTimestamp(): Uint8Array {
    return this.field(88, 12 + TAG_SIZE);
  }
}

/** Type 2: 4 sender, 8 receiver, 12 ephemeral(32), 44 encrypted nothing(16), 60 mac1, 76 mac2. */
export class ResponseMessage extends HandshakeView {
  static parse(buf: Uint8Array): ResponseMessage | null {
    return messageType(buf) === MESSAGE_RESPONSE ? new ResponseMessage(buf) : null;
  }
  static create(): ResponseMessage {
    const b = new Uint8Array(RESPONSE_SIZE);
    b[0] = MESSAGE_RESPONSE;
    return new ResponseMessage(b);
  }
  get receiver(): number {
    return this.u32(8);
  }
  set receiver(v: number) {
    this.setU32(8, v);
  }
  get ephemeral(): Uint8Array {
    return this.field(12, KEY_SIZE);
  }
  get encryptedNothing(): Uint8Array {
    return this.field(44, TAG_SIZE);
  }
}

/** Type 3: 4 receiver, 8 nonce(24), 32 encrypted cookie(16+16). */
export class CookieReplyMessage extends MessageView {
  static parse(buf: Uint8Array): CookieReplyMessage | null {
    return messageType(buf) === MESSAGE_COOKIE_REPLY ? new CookieReplyMessage(buf) : null;
  }
  static create(): CookieReplyMessage {
    const b = new Uint8Array(COOKIE_REPLY_SIZE);
    b[0] = MESSAGE_COOKIE_REPLY;
    return new CookieReplyMessage(b);
  }
  get receiver(): number {
    return this.u32(4);
  }
  set receiver(v: number) {
    this.setU32(4, v);
  }
  get nonce(): Uint8Array {
    return this.field(8, COOKIE_NONCE_SIZE);
  }
  get encryptedCookie(): Uint8Array {
    return this.field(32, MAC_SIZE + TAG_SIZE);
  }
}

/** Type 4: 4 receiver, 8 counter(u64), 16 ciphertext || tag. */
export class TransportMessage extends MessageView {
  static parse(buf: Uint8Array): TransportMessage | null {
    return messageType(buf) === MESSAGE_TRANSPORT ? new TransportMessage(buf) : null;
  }
  get receiver(): number {
    return this.u32(4);
  }
  set receiver(v: number) {
    this.setU32(4, v);
  }
  /** The 64-bit counter as a number (exact below 2^53, far beyond REJECT_AFTER_MESSAGES in practice). */
  get counter(): number {
    return this.u32(8) + this.u32(12) * 0x1_0000_0000;
  }
  set counter(v: number) {
    this.setU32(8, v % 0x1_0000_0000);
    this.setU32(12, Math.floor(v / 0x1_0000_0000));
  }
  get sealed(): Uint8Array {
    return this.bytes.subarray(TRANSPORT_HEADER_SIZE);
  }
}

/** Reads the receiver index of a response, cookie reply or transport message (offset 4 or 8) without a view. */
export function receiverIndex(buf: Uint8Array): number {
  const off = buf[0] === MESSAGE_RESPONSE ? 8 : 4;
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}

/**
 * Writes the receiver index (little-endian) of a message messageType() accepted, without a view: a forwarder
 * rewrites it per transport datagram, where a view object per datagram would be the only allocation.
 */
export function setReceiverIndex(buf: Uint8Array, v: number): void {
  const off = buf[0] === MESSAGE_RESPONSE ? 8 : 4;
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = (v >>> 16) & 0xff;
  buf[off + 3] = (v >>> 24) & 0xff;
}
