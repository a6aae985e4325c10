/**
 * X25519 (RFC 7748) key agreement and WireGuard key encoding. Two backends as for the AEAD: Deno's native
 * `node:crypto` (about 5x faster; handshakes and mwgp's peer lookup are DH-bound) used only if it reproduces
 * the RFC 7748 section 6.1 vector at start-up, and `@noble/curves` (x25519_noble.ts) as the portable
 * reference, loaded only where it is used so that a command without keys does not load the package.
 */
import * as nodeCrypto from "node:crypto";
import { equalBytes, fromBase64, fromHex, isZero, toBase64 } from "../util/bytes.ts";
import { cryptoRandom, type RandomFill } from "../util/random.ts";

export const KEY_LEN = 32;

export class WeakKeyError extends Error {
  constructor() {
    super("X25519 produced an all-zero shared secret (low-order public key)");
  }
}

/** Clamps a scalar as RFC 7748 section 5 (and `wg genkey`) do. */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  const k = key.slice();
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

export function generatePrivateKey(fill: RandomFill = cryptoRandom): Uint8Array {
  return clampPrivateKey(fill(new Uint8Array(KEY_LEN)));
}

export interface X25519Backend {
  readonly name: string;
  publicKey(privateKey: Uint8Array): Uint8Array;
  /** Raw X25519; may throw on a low-order point. */
  sharedSecret(privateKey: Uint8Array, peerPublic: Uint8Array): Uint8Array;
}

// DER wrappers for raw X25519 keys (RFC 8410): PKCS#8 private key, SubjectPublicKeyInfo public key.
const PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");
const SPKI_PREFIX = fromHex("302a300506032b656e032100");

function wrap(prefix: Uint8Array, key: Uint8Array): Uint8Array {
  const der = new Uint8Array(prefix.length + key.length);
  der.set(prefix);
  der.set(key, prefix.length);
  return der;
}

function nativePrivate(k: Uint8Array) {
  return nodeCrypto.createPrivateKey({
    key: wrap(PKCS8_PREFIX, k) as unknown as Buffer,
    format: "der",
    type: "pkcs8",
  });
}

export const nativeX25519: X25519Backend = {
  name: "native",
  publicKey(k) {
    const der = nodeCrypto.createPublicKey(nativePrivate(k)).export({ format: "der", type: "spki" });
    return new Uint8Array(der.subarray(SPKI_PREFIX.length));
  },
  sharedSecret(k, p) {
    const pub = nodeCrypto.createPublicKey({
      key: wrap(SPKI_PREFIX, p) as unknown as Buffer,
      format: "der",
      type: "spki",
    });
    return new Uint8Array(nodeCrypto.diffieHellman({ privateKey: nativePrivate(k), publicKey: pub }));
  },
};

/** RFC 7748 section 6.1. */
export const RFC7748_VECTOR = {
  alicePrivate: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  alicePublic: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  bobPrivate: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
  bobPublic: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  shared: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
};

export function x25519BackendPassesVector(b: X25519Backend): boolean {
  try {
    const v = RFC7748_VECTOR;
    const a = fromHex(v.alicePrivate), bob = fromHex(v.bobPrivate);
    return equalBytes(b.publicKey(a), fromHex(v.alicePublic)) &&
      equalBytes(b.publicKey(bob), fromHex(v.bobPublic)) &&
      equalBytes(b.sharedSecret(a, fromHex(v.bobPublic)), fromHex(v.shared)) &&
      equalBytes(b.sharedSecret(bob, fromHex(v.alicePublic)), fromHex(v.shared));
  } catch {
    return false;
  }
}

/**
 * Chosen when this module loads, so that @noble/curves is imported (top-level await, a string literal that
 * `deno compile` includes) only where native fails the vector or WGEDGE_X25519=noble asks for it.
 */
let selected: X25519Backend =
  Deno.env.get("WGEDGE_X25519") !== "noble" && x25519BackendPassesVector(nativeX25519)
    ? nativeX25519
    : (await import("./x25519_noble.ts")).nobleX25519;

export function x25519Backend(): X25519Backend {
  return selected;
}

export function setX25519Backend(b: X25519Backend): void {
  selected = b;
}

export function publicKey(privateKey: Uint8Array): Uint8Array {
  return x25519Backend().publicKey(privateKey);
}

/** DH(priv, pub); throws WeakKeyError on an all-zero result. */
export function dh(privateKey: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  let out: Uint8Array;
  try {
    out = x25519Backend().sharedSecret(privateKey, peerPublic);
  } catch {
    throw new WeakKeyError();
  }
  if (isZero(out)) throw new WeakKeyError();
  return out;
}

/** Decodes a 44-character base64 WireGuard key; throws a message that never echoes the key itself. */
export function decodeKey(text: string, what = "key"): Uint8Array {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(t)) {
    throw new Error(`${what}: expected 44 characters of base64 encoding 32 bytes`);
  }
  return fromBase64(t);
}

export function encodeKey(key: Uint8Array): string {
  return toBase64(key);
}
