/**
 * XXH64 (xxHash specification, "XXH64 algorithm description", Yann Collet). mwgp's obfuscation keystream is
 * built from it, so it must match the reference bit for bit; tests pin the published vectors.
 *
 * 64-bit lanes are kept as two uint32 halves (hi, lo) and multiplied in 16-bit limbs: several times faster
 * than BigInt, and this runs for every obfuscated packet. Helpers return through the module registers
 * `R[0]`/`R[1]` (hi/lo) instead of allocating a pair per operation.
 */

export const XXH_PRIME64_1 = 0x9E3779B185EBCA87n;
export const XXH_PRIME64_2 = 0xC2B2AE3D27D4EB4Fn;
export const XXH_PRIME64_3 = 0x165667B19E3779F9n;
export const XXH_PRIME64_4 = 0x85EBCA77C2B2AE63n;
export const XXH_PRIME64_5 = 0x27D4EB2F165667C5n;

const P1H = 0x9E3779B1, P1L = 0x85EBCA87;
const P2H = 0xC2B2AE3D, P2L = 0x27D4EB4F;
const P3H = 0x165667B1, P3L = 0x9E3779F9;
const P4H = 0x85EBCA77, P4L = 0xC2B2AE63;
const P5H = 0x27D4EB2F, P5L = 0x165667C5;
const STRIPE = 32;

/** Result registers [hi, lo]; a typed array so the uint32 values are stored unboxed. */
const R = new Uint32Array(2);

/** (ah:al) * (bh:bl) mod 2^64 into R (16-bit limbs, as long.js does; every partial sum stays exact). */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a48 = ah >>> 16, a32 = ah & 0xffff, a16 = al >>> 16, a00 = al & 0xffff;
  const b48 = bh >>> 16, b32 = bh & 0xffff, b16 = bl >>> 16, b00 = bl & 0xffff;
  let c00 = a00 * b00;
  let c16 = c00 >>> 16;
  c00 &= 0xffff;
  c16 += a16 * b00;
  let c32 = c16 >>> 16;
  c16 &= 0xffff;
  c16 += a00 * b16;
  c32 += c16 >>> 16;
  c16 &= 0xffff;
  c32 += a32 * b00;
  let c48 = c32 >>> 16;
  c32 &= 0xffff;
  c32 += a16 * b16;
  c48 += c32 >>> 16;
  c32 &= 0xffff;
  c32 += a00 * b32;
  c48 += c32 >>> 16;
  c32 &= 0xffff;
  c48 += a48 * b00 + a32 * b16 + a16 * b32 + a00 * b48;
  c48 &= 0xffff;
  R[0] = ((c48 << 16) | c32) >>> 0;
  R[1] = ((c16 << 16) | c00) >>> 0;
}

function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  R[1] = lo >>> 0;
  R[0] = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** Rotate left by 0 < r < 32. */
function rotl(h: number, l: number, r: number): void {
  R[0] = ((h << r) | (l >>> (32 - r))) >>> 0;
  R[1] = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** acc = rotl(acc + lane * P2, 31) * P1 */
function round(accH: number, accL: number, laneH: number, laneL: number): void {
  mul(laneH, laneL, P2H, P2L);
  add(accH, accL, R[0], R[1]);
  rotl(R[0], R[1], 31);
  mul(R[0], R[1], P1H, P1L);
}

function readU32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/**
 * Streaming XXH64: `update` any number of times, `digest` any number of times (digest does not disturb the
 * state, like Go's xxhash.Digest.Sum, which mwgp relies on to hash growing prefixes in one pass).
 */
export class Xxh64 {
  // v1..v4 as hi/lo halves
  #v = new Uint32Array(8);
  #total = 0;
  readonly #buf = new Uint8Array(STRIPE);
  #buffered = 0;
  readonly #seedH: number;
  readonly #seedL: number;

  constructor(readonly seed: bigint = 0n) {
    if (seed === 0n) {
      this.#seedH = this.#seedL = 0; // the obfuscator's case: skip the BigInt conversions
    } else {
      const s = BigInt.asUintN(64, seed);
      this.#seedH = Number(s >> 32n);
      this.#seedL = Number(s & 0xffffffffn);
    }
    this.reset();
  }

  reset(): this {
    const v = this.#v, sH = this.#seedH, sL = this.#seedL;
    add(sH, sL, P1H, P1L);
    add(R[0], R[1], P2H, P2L);
    v[0] = R[0], v[1] = R[1];
    add(sH, sL, P2H, P2L);
    v[2] = R[0], v[3] = R[1];
    v[4] = sH, v[5] = sL;
    // seed - P1 = seed + (2^64 - P1); P1's low half is non-zero, so no carry into the high half.
    add(sH, sL, (~P1H) >>> 0, (-P1L) >>> 0);
    v[6] = R[0], v[7] = R[1];
    this.#total = 0;
    this.#buffered = 0;
    return this;
  }

  #stripe(b: Uint8Array, off: number): void {
    const v = this.#v;
    for (let i = 0; i < 4; i++) {
      const o = off + 8 * i;
      round(v[2 * i], v[2 * i + 1], readU32(b, o + 4), readU32(b, o));
      v[2 * i] = R[0];
      v[2 * i + 1] = R[1];
    }
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

  /** Computes the digest into R. */
  #digest(): void {
    const v = this.#v;
    let hH: number, hL: number;
    if (this.#total >= STRIPE) {
      rotl(v[0], v[1], 1);
      let aH = R[0], aL = R[1];
      rotl(v[2], v[3], 7);
      add(aH, aL, R[0], R[1]);
      aH = R[0], aL = R[1];
      rotl(v[4], v[5], 12);
      add(aH, aL, R[0], R[1]);
      aH = R[0], aL = R[1];
      rotl(v[6], v[7], 18);
      add(aH, aL, R[0], R[1]);
      hH = R[0], hL = R[1];
      for (let i = 0; i < 4; i++) {
        // mergeRound: h ^= round(0, v); h = h * P1 + P4
        round(0, 0, v[2 * i], v[2 * i + 1]);
        mul((hH ^ R[0]) >>> 0, (hL ^ R[1]) >>> 0, P1H, P1L);
        add(R[0], R[1], P4H, P4L);
        hH = R[0], hL = R[1];
      }
    } else {
      add(this.#seedH, this.#seedL, P5H, P5L);
      hH = R[0], hL = R[1];
    }
    add(hH, hL, Math.floor(this.#total / 0x1_0000_0000) >>> 0, this.#total >>> 0);
    hH = R[0], hL = R[1];
    const b = this.#buf, end = this.#buffered;
    let p = 0;
    for (; p + 8 <= end; p += 8) {
      round(0, 0, readU32(b, p + 4), readU32(b, p));
      rotl((hH ^ R[0]) >>> 0, (hL ^ R[1]) >>> 0, 27);
      mul(R[0], R[1], P1H, P1L);
      add(R[0], R[1], P4H, P4L);
      hH = R[0], hL = R[1];
    }
    if (p + 4 <= end) {
      mul(0, readU32(b, p), P1H, P1L);
      rotl((hH ^ R[0]) >>> 0, (hL ^ R[1]) >>> 0, 23);
      mul(R[0], R[1], P2H, P2L);
      add(R[0], R[1], P3H, P3L);
      hH = R[0], hL = R[1];
      p += 4;
    }
    for (; p < end; p++) {
      mul(0, b[p], P5H, P5L);
      rotl((hH ^ R[0]) >>> 0, (hL ^ R[1]) >>> 0, 11);
      mul(R[0], R[1], P1H, P1L);
      hH = R[0], hL = R[1];
    }
    // avalanche
    hL = (hL ^ (hH >>> 1)) >>> 0; // h ^= h >> 33
    mul(hH, hL, P2H, P2L);
    hH = R[0], hL = R[1];
    hL = (hL ^ ((hL >>> 29) | (hH << 3))) >>> 0; // h ^= h >> 29
    hH = (hH ^ (hH >>> 29)) >>> 0;
    mul(hH, hL, P3H, P3L);
    hH = R[0], hL = R[1];
    hL = (hL ^ hH) >>> 0; // h ^= h >> 32
    R[0] = hH;
    R[1] = hL;
  }

  /** The hash of everything written so far, as an unsigned 64-bit BigInt. */
  digest(): bigint {
    this.#digest();
    return (BigInt(R[0]) << 32n) | BigInt(R[1]);
  }

  /** The digest written big-endian into out (8 bytes), as Go's hash.Hash64.Sum appends it. */
  digestInto(out: Uint8Array): Uint8Array {
    this.#digest();
    out[0] = R[0] >>> 24, out[1] = (R[0] >>> 16) & 0xff, out[2] = (R[0] >>> 8) & 0xff, out[3] = R[0] & 0xff;
    out[4] = R[1] >>> 24, out[5] = (R[1] >>> 16) & 0xff, out[6] = (R[1] >>> 8) & 0xff, out[7] = R[1] & 0xff;
    return out;
  }
}

/** One-shot XXH64 of data with the given seed. */
export function xxh64(data: Uint8Array, seed: bigint = 0n): bigint {
  return new Xxh64(seed).update(data).digest();
}
