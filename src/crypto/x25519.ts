/** X25519 (RFC 7748) key agreement and WireGuard key encoding. */
import { x25519 } from "@noble/curves/ed25519.js";
import { fromBase64, isZero, toBase64 } from "../util/bytes.ts";
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

export function publicKey(privateKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(privateKey);
}

/** DH(priv, pub); throws WeakKeyError on an all-zero result. */
export function dh(privateKey: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  let out: Uint8Array;
  try {
    out = x25519.getSharedSecret(privateKey, peerPublic);
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
