/** BLAKE2s-based primitives of the WireGuard whitepaper section 5.4: HASH, MAC, HMAC and KDF1..3. */
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";

export const HASH_LEN = 32;
export const MAC_LEN = 16;

/** HASH(a || b || ...) = BLAKE2s-256. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({});
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, data) = keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return blake2s(data, { key, dkLen: MAC_LEN });
}

/** HMAC-BLAKE2s (64-byte block, 32-byte output). */
export function hmacBlake2s(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(blake2s, key, data);
}

const ONE = Uint8Array.of(1);

function kdfChain(key: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Uint8Array[] {
  const t0 = hmacBlake2s(key, input);
  const out: Uint8Array[] = [];
  let prev = hmacBlake2s(t0, ONE);
  out.push(prev);
  for (let i = 2; i <= n; i++) {
    const buf = new Uint8Array(prev.length + 1);
    buf.set(prev);
    buf[prev.length] = i;
    prev = hmacBlake2s(t0, buf);
    out.push(prev);
  }
  t0.fill(0);
  return out;
}

export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  return kdfChain(key, input, 1)[0];
}

export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const [a, b] = kdfChain(key, input, 2);
  return [a, b];
}

export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const [a, b, c] = kdfChain(key, input, 3);
  return [a, b, c];
}
