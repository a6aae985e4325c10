/** AdaptiveReadBuffer (small, grows while reads fill it, back to small) and ByteStage (reused append buffer). */
import { assert, assertEquals, assertThrows } from "./helpers/assert.ts";
import { AdaptiveReadBuffer, ByteStage } from "../src/util/read_buffer.ts";

Deno.test("read buffer: starts at min, doubles while reads fill it, stops at max", () => {
  const r = new AdaptiveReadBuffer(2048, 16384);
  const sizes: number[] = [];
  for (let k = 0; k < 6; k++) {
    sizes.push(r.buf.length);
    r.buf.fill(k);
    const data = r.filled(r.buf.length);
    assertEquals(data.length, sizes[k]);
    assertEquals(data[0], k, "the data read is what the returned view shows");
  }
  assertEquals(sizes, [2048, 4096, 8192, 16384, 16384, 16384]);
});

Deno.test("read buffer: a read that fits the small buffer goes back to it; a partly filled big one stays", () => {
  const r = new AdaptiveReadBuffer(2048, 16384);
  const small = r.buf;
  r.filled(2048);
  r.filled(4096);
  assertEquals(r.buf.length, 8192);
  r.filled(3000); // more than min: keep the big buffer
  assertEquals(r.buf.length, 8192);
  const data = r.filled(100);
  assert(r.buf === small, "back to the small buffer");
  assertEquals(data.length, 100);
  r.filled(10);
  assert(r.buf === small, "a small read keeps the small buffer (no allocation)");
});

Deno.test("read buffer: min = max never grows; bad sizes are refused", () => {
  const r = new AdaptiveReadBuffer(1024, 1024);
  const b = r.buf;
  r.filled(1024);
  assert(r.buf === b);
  assertThrows(() => new AdaptiveReadBuffer(0, 10), "min");
  assertThrows(() => new AdaptiveReadBuffer(10, 5), "min");
});

Deno.test("byte stage: appends in place, grows to the next power of two, keeps its storage over clear()", () => {
  const s = new ByteStage(8);
  s.append(Uint8Array.of(1, 2, 3));
  s.append(Uint8Array.of(4, 5, 6, 7, 8));
  assertEquals([...s.bytes], [1, 2, 3, 4, 5, 6, 7, 8]);
  assertEquals(s.capacity, 8);
  s.append(Uint8Array.of(9));
  assertEquals(s.capacity, 16);
  assertEquals([...s.bytes], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  s.clear();
  assertEquals(s.length, 0);
  s.append(new Uint8Array(40).fill(7));
  assertEquals([s.length, s.capacity], [40, 64]);
  s.clear();
  s.append(Uint8Array.of(1));
  assertEquals([s.length, s.capacity, s.bytes[0]], [1, 64, 1]);
  const empty = new ByteStage(0);
  empty.append(Uint8Array.of(5, 6));
  assertEquals([...empty.bytes], [5, 6]);
});
