/**
 * XXH64 (xxHash specification, "XXH64 algorithm description", Yann Collet). mwgp's obfuscation keystream is
 * built from it, so it must match the reference bit for bit; tests pin the published vectors. Arithmetic is
 * on BigInt lanes truncated to 64 bits: slower than native code, but the obfuscator hashes at most a few
 * hundred bytes per packet and this keeps the code a direct transcription of the spec.
 */

const MASK64 = (1n << 64n) - 1n;
export const XXH_PRIME64_1 = 0x9E3779B185EBCA87n;
export const XXH_PRIME64_2 = 0xC2B2AE3D27D4EB4Fn;
export const XXH_PRIME64_3 = 0x165667B19E3779F9n;
export const XXH_PRIME64_4 = 0x85EBCA77C2B2AE63n;
export const XXH_PRIME64_5 = 0x27D4EB2F165667C5n;
const STRIPE = 32;

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK64;
}

function round(acc: bigint, lane: bigint): bigint {
  acc = (acc + lane * XXH_PRIME64_2) & MASK64;
  acc = rotl(acc, 31n);
  return (acc * XXH_PRIME64_1) & MASK64;
}

function mergeRound(acc: bigint, val: bigint): bigint {
  acc ^= round(0n, val);
  return (acc * XXH_PRIME64_1 + XXH_PRIME64_4) & MASK64;
}

function readU64(b: Uint8Array, off: number): bigint {
  const lo = (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
  const hi = (b[off + 4] | (b[off + 5] << 8) | (b[off + 6] << 16) | (b[off + 7] << 24)) >>> 0;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

function readU32(b: Uint8Array, off: number): bigint {
  return BigInt((b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0);
}

/**
 * Streaming XXH64: `update` any number of times, `digest` any number of times (digest does not disturb the
 * state, like Go's xxhash.Digest.Sum, which mwgp relies on to hash growing prefixes in one pass).
 */
export class Xxh64 {
  #v1 = 0n;
  #v2 = 0n;
  #v3 = 0n;
  #v4 = 0n;
  #total = 0;
  readonly #buf = new Uint8Array(STRIPE);
  #buffered = 0;

  constructor(readonly seed: bigint = 0n) {
    this.reset();
  }

  reset(): this {
    const s = this.seed & MASK64;
    this.#v1 = (s + XXH_PRIME64_1 + XXH_PRIME64_2) & MASK64;
    this.#v2 = (s + XXH_PRIME64_2) & MASK64;
    this.#v3 = s;
    this.#v4 = (s - XXH_PRIME64_1) & MASK64;
    this.#total = 0;
    this.#buffered = 0;
    return this;
  }

  #stripe(b: Uint8Array, off: number): void {
    this.#v1 = round(this.#v1, readU64(b, off));
    this.#v2 = round(this.#v2, readU64(b, off + 8));
    this.#v3 = round(this.#v3, readU64(b, off + 16));
    this.#v4 = round(this.#v4, readU64(b, off + 24));
  }

  update(data: Uint8Array): this {
    this.#total += data.length;
    let off = 0;
    if (this.#buffered > 0) {
      const take = Math.min(STRIPE - this.#buffered, data.length);
      this.#buf.set(data.subarray(0, take), this.#buffered);
      this.#buffered += take;
      off = take;
      if (this.#buffered < STRIPE) return this;
      this.#stripe(this.#buf, 0);
      this.#buffered = 0;
    }
    for (; off + STRIPE <= data.length; off += STRIPE) this.#stripe(data, off);
    if (off < data.length) {
      this.#buf.set(data.subarray(off), 0);
      this.#buffered = data.length - off;
    }
    return this;
  }

  /** The hash of everything written so far, as an unsigned 64-bit BigInt. */
  digest(): bigint {
    let h: bigint;
    if (this.#total >= STRIPE) {
      h = (rotl(this.#v1, 1n) + rotl(this.#v2, 7n) + rotl(this.#v3, 12n) + rotl(this.#v4, 18n)) & MASK64;
      h = mergeRound(h, this.#v1);
      h = mergeRound(h, this.#v2);
      h = mergeRound(h, this.#v3);
      h = mergeRound(h, this.#v4);
    } else {
      h = (this.seed + XXH_PRIME64_5) & MASK64;
    }
    h = (h + BigInt(this.#total)) & MASK64;
    const b = this.#buf, end = this.#buffered;
    let p = 0;
    for (; p + 8 <= end; p += 8) {
      h ^= round(0n, readU64(b, p));
      h = (rotl(h, 27n) * XXH_PRIME64_1 + XXH_PRIME64_4) & MASK64;
    }
    if (p + 4 <= end) {
      h ^= (readU32(b, p) * XXH_PRIME64_1) & MASK64;
      h = (rotl(h, 23n) * XXH_PRIME64_2 + XXH_PRIME64_3) & MASK64;
      p += 4;
    }
    for (; p < end; p++) {
      h ^= (BigInt(b[p]) * XXH_PRIME64_5) & MASK64;
      h = (rotl(h, 11n) * XXH_PRIME64_1) & MASK64;
    }
    h ^= h >> 33n;
    h = (h * XXH_PRIME64_2) & MASK64;
    h ^= h >> 29n;
    h = (h * XXH_PRIME64_3) & MASK64;
    h ^= h >> 32n;
    return h;
  }

  /** The digest written big-endian into out (8 bytes), as Go's hash.Hash64.Sum appends it. */
  digestInto(out: Uint8Array): Uint8Array {
    let h = this.digest();
    for (let i = 7; i >= 0; i--) {
      out[i] = Number(h & 0xffn);
      h >>= 8n;
    }
    return out;
  }
}

/** One-shot XXH64 of data with the given seed. */
export function xxh64(data: Uint8Array, seed: bigint = 0n): bigint {
  return new Xxh64(seed).update(data).digest();
}
