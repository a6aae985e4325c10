import { assertEquals } from "./helpers/assert.ts";
import { Xxh64, xxh64 } from "../src/crypto/xxh64.ts";
import { toHex } from "../src/util/bytes.ts";
import { seededRandom } from "../src/util/random.ts";

const enc = new TextEncoder();

// Published vectors (xxHash reference / python-xxhash docs / .NET runtime tests).
const VECTORS: [string | Uint8Array, bigint, bigint][] = [
  ["", 0n, 0xEF46DB3751D8E999n],
  ["a", 0n, 0xD24EC4F1A98C6E5Bn],
  ["abc", 0n, 0x44BC2CF5AD770999n],
  ["abc", 12345n, 0x01700E64F6F23509n],
  ["0123456789abcdef0123456789abcdef", 0n, 0x642A94958E71E6C5n],
  ["Nobody inspects the spammish repetition", 0n, 0xFBCEA83C8A378BF1n],
  ["Nobody inspects the spammish repetition", 1234n, 0x55E30CD248A5419Fn],
  ["The quick brown fox jumps over the lazy dog", 0n, 0x0B242D361FDA71BCn],
  ["The quick brown fox jumps over the lazy dog.", 0n, 0x44AD33705751AD73n],
  [new Uint8Array(32).fill(0x61), 0n, 0x856E843298F99AD7n],
  [new Uint8Array(64).fill(0x62), 0n, 0xECBAF4BDF26B6349n],
  [Uint8Array.from({ length: 100 }, (_, i) => i), 0n, 0x6AC1E58032166597n],
];

Deno.test("xxh64: published vectors", () => {
  for (const [input, seed, want] of VECTORS) {
    const bytes = typeof input === "string" ? enc.encode(input) : input;
    assertEquals(xxh64(bytes, seed), want, `input of ${bytes.length} bytes, seed ${seed}`);
  }
});

Deno.test("xxh64: streaming in odd chunks equals one shot, digest does not disturb state", () => {
  const data = Uint8Array.from({ length: 777 }, (_, i) => (i * 31 + 7) & 0xff);
  for (const chunk of [1, 3, 7, 8, 31, 32, 33, 100]) {
    const h = new Xxh64();
    for (let off = 0; off < data.length; off += chunk) {
      const part = data.subarray(off, Math.min(off + chunk, data.length));
      h.update(part);
      assertEquals(h.digest(), xxh64(data.subarray(0, off + part.length)), `prefix ${off + part.length}`);
    }
    assertEquals(h.digest(), xxh64(data));
  }
});

Deno.test("xxh64: digestInto is big-endian", () => {
  const out = new Xxh64().update(enc.encode("abc")).digestInto(new Uint8Array(8));
  assertEquals(toHex(out), "44bc2cf5ad770999");
});

/** A direct BigInt transcription of the spec, as an independent reference for the 32-bit-limb version. */
function referenceXxh64(data: Uint8Array, seed: bigint): bigint {
  const M = (1n << 64n) - 1n;
  const P = [
    0n,
    0x9E3779B185EBCA87n,
    0xC2B2AE3D27D4EB4Fn,
    0x165667B19E3779F9n,
    0x85EBCA77C2B2AE63n,
    0x27D4EB2F165667C5n,
  ];
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M;
  const round = (acc: bigint, lane: bigint) => (rotl((acc + lane * P[2]) & M, 31n) * P[1]) & M;
  const merge = (acc: bigint, v: bigint) => ((acc ^ round(0n, v)) * P[1] + P[4]) & M;
  const u64 = (o: number) => {
    let v = 0n;
    for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(data[o + i]);
    return v;
  };
  const u32 = (o: number) =>
    BigInt((data[o] | (data[o + 1] << 8) | (data[o + 2] << 16) | (data[o + 3] << 24)) >>> 0);
  seed &= M;
  let p = 0, h: bigint;
  if (data.length >= 32) {
    let v1 = (seed + P[1] + P[2]) & M, v2 = (seed + P[2]) & M, v3 = seed, v4 = (seed - P[1]) & M;
    for (; p + 32 <= data.length; p += 32) {
      v1 = round(v1, u64(p));
      v2 = round(v2, u64(p + 8));
      v3 = round(v3, u64(p + 16));
      v4 = round(v4, u64(p + 24));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M;
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else h = (seed + P[5]) & M;
  h = (h + BigInt(data.length)) & M;
  for (; p + 8 <= data.length; p += 8) h = (rotl(h ^ round(0n, u64(p)), 27n) * P[1] + P[4]) & M;
  if (p + 4 <= data.length) {
    h = (rotl(h ^ ((u32(p) * P[1]) & M), 23n) * P[2] + P[3]) & M;
    p += 4;
  }
  for (; p < data.length; p++) h = (rotl(h ^ ((BigInt(data[p]) * P[5]) & M), 11n) * P[1]) & M;
  h = ((h ^ (h >> 33n)) * P[2]) & M;
  h = ((h ^ (h >> 29n)) * P[3]) & M;
  return h ^ (h >> 32n);
}

Deno.test("xxh64: agrees with a BigInt transcription of the spec on random inputs and seeds", () => {
  for (const [input, seed, want] of VECTORS) {
    const bytes = typeof input === "string" ? enc.encode(input) : input;
    assertEquals(referenceXxh64(bytes, seed), want, "the reference itself matches the published vectors");
  }
  const rand = seededRandom(99);
  for (let i = 0; i < 400; i++) {
    const data = rand(new Uint8Array(i % 200));
    const seedBytes = rand(new Uint8Array(8));
    const seed = seedBytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
    assertEquals(xxh64(data, seed), referenceXxh64(data, seed), `length ${data.length}`);
  }
});
