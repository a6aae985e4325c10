import { assertEquals } from "./helpers/assert.ts";
import { Xxh64, xxh64 } from "../src/crypto/xxh64.ts";
import { toHex } from "../src/util/bytes.ts";

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
