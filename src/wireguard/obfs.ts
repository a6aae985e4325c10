/**
 * mwgp's WireGuard obfuscation (wire-compatible with mwgp >= 2.1.4, spec: shared/spec/mwgp.md).
 *
 * K = SHA-256(password). Keystream block N (N = 1, 2, ...) is XXH64(seed 0) of nonce(16) || K repeated N
 * times, big-endian, XORed over bytes [8(N-1), 8N). The nonce is the datagram's last 16 bytes, which are never
 * XORed: random padding for handshake messages and short transports, the Poly1305 tag for transports of
 * 256 bytes and more (so large data packets carry no overhead). Block 1 is tweaked so that an obfuscated
 * header can never read as a vanilla one, which is how a receiver serves vanilla and obfuscated peers on
 * one port.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { Xxh64 } from "../crypto/xxh64.ts";
import { cryptoRandom, type RandomFill } from "../util/random.ts";
import {
  COOKIE_REPLY_SIZE,
  INITIATION_SIZE,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  messageType,
  RESPONSE_SIZE,
  TRANSPORT_HEADER_SIZE,
  TRANSPORT_MIN_SIZE,
} from "../wire/wireguard.ts";

export interface PacketTransform {
  /** Every datagram the device sends passes through this. */
  encode(message: Uint8Array): Uint8Array;
  /** Every datagram received; returns the vanilla WireGuard message, or null to drop (counted by the caller). */
  decode(datagram: Uint8Array): Uint8Array | null;
}

export const OBFS_NONCE_SIZE = 16;
export const OBFS_BLOCK_SIZE = 8;
/** Random suffix length r is drawn from 0..OBFS_MAX_RANDOM_SUFFIX-1. */
export const OBFS_MAX_RANDOM_SUFFIX = 384;
/** Transports at least this long use their own tag as the nonce and keep their length. */
export const OBFS_TRANSPORT_TAG_AS_NONCE_MIN = 256;
export const INITIATION_MAC2_OFFSET = 132;
export const RESPONSE_MAC2_OFFSET = 76;
/** Byte 1 of an obfuscated message says "mac2 was zero" (handshakes) or "16 bytes appended" (transport). */
const FLAG_PADDED = 0x01;
/** Shorter datagrams are passed through untouched (mwgp: device.MinMessageSize). */
export const OBFS_MIN_DATAGRAM = 32;

export type ObfsKey = Uint8Array;

/** K = SHA-256(password UTF-8). */
export function obfsKey(password: string): ObfsKey {
  return sha256(new TextEncoder().encode(password));
}

/** If block 1 would leave the header looking like a vanilla type byte, force bits so it cannot. */
export function tweakFirstBlock(block: Uint8Array): void {
  if ((block[0] & 0xf8) === 0 && (block[1] & 0xfe) === 0) {
    block[0] |= 0xd7;
    block[1] |= 0x69;
  }
}

/** Generates keystream blocks 1, 2, ... for one nonce (one XXH64 pass over nonce || K || K || ...). */
export class Keystream {
  readonly #hash = new Xxh64();
  readonly block = new Uint8Array(OBFS_BLOCK_SIZE);
  #n = 0;

  constructor(private readonly key: ObfsKey, nonce: Uint8Array) {
    this.#hash.update(nonce);
  }

  /** Advances to the next block (block 1 tweaked) and returns it (the same buffer each time). */
  next(): Uint8Array {
    this.#hash.update(this.key);
    this.#hash.digestInto(this.block);
    if (this.#n++ === 0) tweakFirstBlock(this.block);
    return this.block;
  }
}

/** XORs bytes [from, to) of buf with the keystream, continuing from the block that covers `from`. */
function xorRange(ks: Keystream, buf: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i += OBFS_BLOCK_SIZE) {
    const block = ks.next();
    const end = Math.min(i + OBFS_BLOCK_SIZE, to);
    for (let j = i; j < end; j++) buf[j] ^= block[j - i];
  }
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function randomSuffixLength(random: RandomFill): number {
  const b = random(new Uint8Array(2));
  return ((b[0] << 8) | b[1]) % OBFS_MAX_RANDOM_SUFFIX;
}

/**
 * Obfuscates a vanilla WireGuard message into a new buffer. A message that is not a valid WireGuard message is
 * returned unchanged (mwgp does the same; there is nothing to hide the shape of).
 */
export function obfuscate(message: Uint8Array, key: ObfsKey, random: RandomFill = cryptoRandom): Uint8Array {
  const type = messageType(message);
  let out: Uint8Array;
  let xorLength: number;
  switch (type) {
    case MESSAGE_INITIATION:
    case MESSAGE_RESPONSE:
    case MESSAGE_COOKIE_REPLY: {
      const size = message.length;
      out = new Uint8Array(size + OBFS_NONCE_SIZE + randomSuffixLength(random));
      out.set(message);
      xorLength = size;
      const mac2Offset = type === MESSAGE_INITIATION
        ? INITIATION_MAC2_OFFSET
        : type === MESSAGE_RESPONSE
        ? RESPONSE_MAC2_OFFSET
        : -1;
      if (mac2Offset > 0 && isZero(message.subarray(mac2Offset, size))) {
        out[1] = FLAG_PADDED;
        xorLength = mac2Offset;
      }
      random(out.subarray(xorLength));
      break;
    }
    case MESSAGE_TRANSPORT:
      xorLength = TRANSPORT_HEADER_SIZE;
      if (message.length < OBFS_TRANSPORT_TAG_AS_NONCE_MIN) {
        out = new Uint8Array(message.length + OBFS_NONCE_SIZE);
        out.set(message);
        out[1] = FLAG_PADDED;
        random(out.subarray(message.length));
      } else {
        out = message.slice();
      }
      break;
    default:
      return message;
  }
  const ks = new Keystream(key, out.subarray(out.length - OBFS_NONCE_SIZE));
  xorRange(ks, out, 0, xorLength);
  return out;
}

/** Vanilla WireGuard header: type 1..4 then three zero bytes. */
export function looksVanilla(datagram: Uint8Array): boolean {
  return datagram.length >= 4 && datagram[0] >= 1 && datagram[0] <= 4 && datagram[1] === 0 &&
    datagram[2] === 0 && datagram[3] === 0;
}

export interface Deobfuscated {
  message: Uint8Array;
  /** False when the datagram was already a vanilla message (passed through). */
  obfuscated: boolean;
}

/**
 * Reverses `obfuscate` in place and returns a view of the vanilla message; vanilla and too-short datagrams
 * pass through unchanged. Returns null when the datagram is neither (wrong key, garbage, truncated), so the
 * caller counts and drops it.
 */
export function deobfuscate(datagram: Uint8Array, key: ObfsKey): Deobfuscated | null {
  if (datagram.length < OBFS_MIN_DATAGRAM || looksVanilla(datagram)) {
    return { message: datagram, obfuscated: false };
  }
  const ks = new Keystream(key, datagram.subarray(datagram.length - OBFS_NONCE_SIZE));
  const first = ks.next();
  // Decode the first block on a copy: a datagram that turns out invalid is left as it came.
  const head = datagram.slice(0, OBFS_BLOCK_SIZE);
  for (let i = 0; i < OBFS_BLOCK_SIZE; i++) head[i] ^= first[i];
  if (head[2] !== 0 || head[3] !== 0) return null;
  const flagged = head[1] === FLAG_PADDED;
  if (head[1] !== 0 && !flagged) return null;
  let size: number;
  let xorLength: number;
  switch (head[0]) {
    case MESSAGE_INITIATION:
      size = INITIATION_SIZE;
      xorLength = flagged ? INITIATION_MAC2_OFFSET : INITIATION_SIZE;
      if (datagram.length < size + OBFS_NONCE_SIZE) return null;
      break;
    case MESSAGE_RESPONSE:
      size = RESPONSE_SIZE;
      xorLength = flagged ? RESPONSE_MAC2_OFFSET : RESPONSE_SIZE;
      if (datagram.length < size + OBFS_NONCE_SIZE) return null;
      break;
    case MESSAGE_COOKIE_REPLY:
      if (flagged) return null;
      size = COOKIE_REPLY_SIZE;
      xorLength = COOKIE_REPLY_SIZE;
      if (datagram.length < size + OBFS_NONCE_SIZE) return null;
      break;
    case MESSAGE_TRANSPORT:
      size = flagged ? datagram.length - OBFS_NONCE_SIZE : datagram.length;
      xorLength = TRANSPORT_HEADER_SIZE;
      if (size < TRANSPORT_MIN_SIZE || (!flagged && size < OBFS_TRANSPORT_TAG_AS_NONCE_MIN)) return null;
      break;
    default:
      return null;
  }
  datagram.set(head, 0);
  datagram[1] = 0;
  xorRange(ks, datagram, OBFS_BLOCK_SIZE, xorLength);
  const message = datagram.subarray(0, size);
  // A flagged handshake had an all-zero mac2 that the sender replaced with random bytes.
  if (flagged && head[0] !== MESSAGE_TRANSPORT) message.fill(0, xorLength, size);
  return { message, obfuscated: true };
}

/** The obfuscation as a device transform (`Obfs = <password>` on a tunnel). decode works in place. */
export function obfuscationTransform(password: string, random: RandomFill = cryptoRandom): PacketTransform {
  const key = obfsKey(password);
  return {
    encode: (message) => obfuscate(message, key, random),
    decode: (datagram) => deobfuscate(datagram, key)?.message ?? null,
  };
}
