/**
 * mac1/mac2 and cookies (whitepaper 5.4.4, 5.4.7; wireguard-go cookie.go). The checker is the receiving side
 * of handshake messages (validates MACs, makes cookie replies under load); a generator per peer is the sending
 * side (adds MACs, remembers the cookie a reply gave it).
 */
import { hash, mac, MAC_LEN } from "../crypto/blake2s.ts";
import { xaeadOpen, xaeadSeal } from "../crypto/aead.ts";
import { equalBytes } from "../util/bytes.ts";
import { cryptoRandom, type RandomFill } from "../util/random.ts";
import { COOKIE_NONCE_SIZE, CookieReplyMessage, MAC_SIZE } from "../wire/wireguard.ts";
import { WG_LABEL_COOKIE, WG_LABEL_MAC1 } from "./noise.ts";

export const COOKIE_REFRESH_TIME_MS = 120_000;

const enc = new TextEncoder();

export function mac1Key(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(WG_LABEL_MAC1), publicKey);
}

export function cookieKey(publicKey: Uint8Array): Uint8Array {
  return hash(enc.encode(WG_LABEL_COOKIE), publicKey);
}

/** The message bytes a MAC covers: everything before the mac field (mac1 at len-32, mac2 at len-16). */
function macInputs(
  msg: Uint8Array,
): { beforeMac1: Uint8Array; beforeMac2: Uint8Array; mac1: Uint8Array; mac2: Uint8Array } {
  const m1 = msg.length - 2 * MAC_SIZE, m2 = msg.length - MAC_SIZE;
  return {
    beforeMac1: msg.subarray(0, m1),
    beforeMac2: msg.subarray(0, m2),
    mac1: msg.subarray(m1, m2),
    mac2: msg.subarray(m2),
  };
}

/** Computes mac1 over a handshake message (initiation or response) into its mac1 field. */
export function writeMac1(msg: Uint8Array, key: Uint8Array): Uint8Array {
  const f = macInputs(msg);
  const m = mac(key, f.beforeMac1);
  f.mac1.set(m);
  return m;
}

export function writeMac2(msg: Uint8Array, cookie: Uint8Array | undefined): void {
  const f = macInputs(msg);
  if (cookie) f.mac2.set(mac(cookie, f.beforeMac2));
  else f.mac2.fill(0);
}

export function verifyMac1(msg: Uint8Array, key: Uint8Array): boolean {
  const f = macInputs(msg);
  return equalBytes(mac(key, f.beforeMac1), f.mac1);
}

/** Receiving side: validates MACs of handshake messages addressed to us and makes cookie replies. */
export class CookieChecker {
  readonly mac1Key: Uint8Array;
  readonly encryptionKey: Uint8Array;
  #secret = new Uint8Array(32);
  #secretSetAt = -Infinity;

  constructor(localPublicKey: Uint8Array, private readonly random: RandomFill = cryptoRandom) {
    this.mac1Key = mac1Key(localPublicKey);
    this.encryptionKey = cookieKey(localPublicKey);
  }

  checkMac1(msg: Uint8Array): boolean {
    return verifyMac1(msg, this.mac1Key);
  }

  /** The cookie for a source (IP bytes || port), rotating the secret every COOKIE_REFRESH_TIME. */
  #cookieFor(source: Uint8Array, nowMs: number): Uint8Array {
    if (nowMs - this.#secretSetAt >= COOKIE_REFRESH_TIME_MS) {
      this.random(this.#secret);
      this.#secretSetAt = nowMs;
    }
    return mac(this.#secret, source);
  }

  /** mac2 is valid only for a cookie made from the current secret for this very source. */
  checkMac2(msg: Uint8Array, source: Uint8Array, nowMs: number): boolean {
    if (nowMs - this.#secretSetAt >= COOKIE_REFRESH_TIME_MS) return false;
    const f = macInputs(msg);
    return equalBytes(mac(mac(this.#secret, source), f.beforeMac2), f.mac2);
  }

  /** A cookie reply to the handshake message `msg` whose sender index is `senderIndex`. */
  createReply(msg: Uint8Array, senderIndex: number, source: Uint8Array, nowMs: number): Uint8Array {
    const reply = CookieReplyMessage.create();
    reply.receiver = senderIndex;
    const nonce = this.random(new Uint8Array(COOKIE_NONCE_SIZE));
    reply.nonce.set(nonce);
    const cookie = this.#cookieFor(source, nowMs);
    reply.encryptedCookie.set(xaeadSeal(this.encryptionKey, nonce, cookie, macInputs(msg).mac1));
    return reply.bytes;
  }
}

/** Sending side, one per peer: adds mac1/mac2 and keeps the cookie from the peer's last cookie reply. */
export class CookieGenerator {
  readonly mac1Key: Uint8Array;
  readonly encryptionKey: Uint8Array;
  #cookie: Uint8Array | undefined;
  #cookieSetAt = -Infinity;
  #lastMac1: Uint8Array | undefined;

  constructor(peerPublicKey: Uint8Array) {
    this.mac1Key = mac1Key(peerPublicKey);
    this.encryptionKey = cookieKey(peerPublicKey);
  }

  addMacs(msg: Uint8Array, nowMs: number): void {
    this.#lastMac1 = writeMac1(msg, this.mac1Key);
    const fresh = this.#cookie && nowMs - this.#cookieSetAt < COOKIE_REFRESH_TIME_MS;
    writeMac2(msg, fresh ? this.#cookie : undefined);
  }

  /** Accepts a cookie reply to our last handshake message; false if it does not decrypt. */
  consumeReply(reply: CookieReplyMessage, nowMs: number): boolean {
    if (!this.#lastMac1) return false;
    const cookie = xaeadOpen(this.encryptionKey, reply.nonce, reply.encryptedCookie, this.#lastMac1);
    if (!cookie || cookie.length !== MAC_LEN) return false;
    this.#cookie = cookie;
    this.#cookieSetAt = nowMs;
    this.#lastMac1 = undefined;
    return true;
  }

  get hasCookie(): boolean {
    return this.#cookie !== undefined;
  }
}
