/**
 * RTCM3 framing against real recordings (tests/fixtures/rtcm3/README.md): the frame counts per type and the
 * station positions of shared/data/rtcm3/README.md, resync after false preambles, a held truncated tail, any
 * split of the input, and a seeded fuzzer that checks every byte is accounted for.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { fromHex } from "../src/util/bytes.ts";
import { seededRandom } from "../src/util/random.ts";
import { crc24q, RTCM3_MAX_FRAME_LEN, Rtcm3Frame, Rtcm3Scanner } from "../src/wire/rtcm3.ts";

const FIXTURES = new URL("./fixtures/rtcm3/", import.meta.url);
const load = (name: string) => Deno.readFileSync(new URL(name, FIXTURES));

/** Scans `bytes` split into pieces of `pieceLen` (0 = one push); returns copies of the frames and the scanner. */
function scan(bytes: Uint8Array, pieceLen = 0): { frames: Uint8Array[]; scanner: Rtcm3Scanner } {
  const scanner = new Rtcm3Scanner();
  const frames: Uint8Array[] = [];
  const step = pieceLen || bytes.length;
  for (let off = 0; off < bytes.length; off += step) {
    scanner.push(bytes.subarray(off, off + step), (frame) => frames.push(frame.slice()), 1000);
  }
  return { frames, scanner };
}

function countsText(byType: Map<number, number>): string {
  return [...byType].sort((a, b) => a[0] - b[0]).map(([type, n]) => `${type}x${n}`).join(" ");
}

function frameBytes(frames: Uint8Array[]): number {
  return frames.reduce((sum, f) => sum + f.length, 0);
}

Deno.test("crc24q: the CRC-24Q check value and the empty frame's CRC", () => {
  assertEquals(crc24q(new TextEncoder().encode("123456789")), 0xcde703);
  assertEquals(crc24q(fromHex("d30000")), 0x47ea4b);
  assertEquals(crc24q(fromHex("00d30000"), 1), 0x47ea4b);
  assertEquals(crc24q(fromHex("d3000000"), 0, 3), 0x47ea4b);
});

Deno.test("Rtcm3Frame: checks the length before reading, type, 1005 station id and ECEF", () => {
  const f9t = load("f9t.rtcm3");
  const first = Rtcm3Frame.parse(f9t);
  assert(first);
  assertEquals([first.messageType, first.stationId, first.ecef()], [4072, undefined, undefined]);
  let at1005 = 0; // the recording starts with 4072; find its first 1005 by walking the frames
  while (Rtcm3Frame.parse(f9t.subarray(at1005))!.messageType !== 1005) {
    at1005 += Rtcm3Frame.parse(f9t.subarray(at1005))!.frameLength;
  }
  const frame = Rtcm3Frame.parse(f9t.subarray(at1005));
  assert(frame);
  assertEquals(frame.messageType, 1005);
  assertEquals(frame.payloadLength, 19);
  assertEquals(frame.frameLength, 25);
  assert(frame.crcValid());
  assertEquals(frame.stationId, 0);
  const ecef = frame.ecef();
  assert(ecef);
  assertEquals([ecef.x.toFixed(4), ecef.y.toFixed(4), ecef.z.toFixed(4)], [
    "-2386072.7310",
    "-3922192.5049",
    "4414363.4131",
  ]);

  assertEquals(Rtcm3Frame.parse(f9t.subarray(at1005, at1005 + 24)), null, "one byte short");
  assertEquals(Rtcm3Frame.parse(f9t.subarray(at1005 + 1)), null, "no preamble");
  assertEquals(Rtcm3Frame.parse(fromHex("d30400")), null, "reserved bits set");
  assertEquals(Rtcm3Frame.parse(new Uint8Array(0)), null);
  const corrupt = f9t.slice(at1005, at1005 + 25);
  corrupt[10] ^= 1;
  assert(!Rtcm3Frame.parse(corrupt)!.crcValid());

  const empty = Rtcm3Frame.parse(fromHex("d3000047ea4b"));
  assert(empty && empty.crcValid());
  assertEquals([empty.messageType, empty.stationId, empty.ecef()], [0, undefined, undefined]);
});

const TABLE: {
  file: string;
  counts: string;
  stationId?: number;
  ecef?: string[];
  skipped: number;
  held: number;
}[] = [
  {
    file: "f9t.rtcm3",
    counts: "1005x26 1077x26 1087x26 1097x26 1127x26 1230x26 4072x26",
    stationId: 0,
    ecef: ["-2386072.7310", "-3922192.5049", "4414363.4131"],
    skipped: 0,
    held: 0,
  },
  {
    file: "GMSD7_20121014.rtcm3",
    counts: "1007x28 1008x28 1019x15 1020x16 1033x28 1077x257 1087x257 1117x257 1127x257",
    skipped: 0,
    held: 302,
  },
  {
    file: "testglo.rtcm3",
    counts: "1004x186 1005x19 1012x186 1019x19 1020x19",
    stationId: 0,
    ecef: ["-3869297.5138", "3436571.3345", "3717369.3757"],
    skipped: 58,
    held: 0,
  },
];

for (const row of TABLE) {
  Deno.test(`Rtcm3Scanner: ${row.file} gives the README's frames per type and station`, () => {
    const bytes = load(row.file);
    const { frames, scanner } = scan(bytes);
    const s = scanner.stats;
    assertEquals(countsText(s.byType), row.counts);
    assertEquals(s.frames, frames.length);
    assertEquals(s.crcErrors, 0);
    assertEquals(s.skippedBytes, row.skipped);
    assertEquals(scanner.pending, row.held);
    assertEquals(frameBytes(frames) + s.skippedBytes + scanner.pending, bytes.length);
    assertEquals(s.stationId, row.stationId);
    assertEquals(s.ecef && [s.ecef.x.toFixed(4), s.ecef.y.toFixed(4), s.ecef.z.toFixed(4)], row.ecef);
    assertEquals(s.lastFrameAtMs, 1000);
    for (const f of frames) assert(Rtcm3Frame.parse(f)!.crcValid());
  });
}

Deno.test("Rtcm3Scanner: GMSD7 is station 611 throughout; its truncated tail is held, not forwarded", () => {
  const bytes = load("GMSD7_20121014.rtcm3");
  const { frames, scanner } = scan(bytes);
  // 1007/1008/1019/1020/1033 and MSM carry DF003 (or the satellite id for ephemerides) right after the type.
  for (const f of frames) {
    const type = Rtcm3Frame.parse(f)!.messageType;
    if (type !== 1019 && type !== 1020) assertEquals(((f[4] & 0x0f) << 8) | f[5], 611, `station of ${type}`);
  }
  assertEquals(scanner.pending, 302);
  assertEquals(frameBytes(frames), bytes.length - 302);
  const tail = bytes.subarray(bytes.length - 302);
  assertEquals(tail[0], 0xd3, "the held bytes start at a preamble");
  assert(Rtcm3Frame.parse(tail) === null, "the tail is shorter than its length field says");

  // The rest of a frame arriving later completes it: give the held frame a fake ending, see it rejected by
  // its CRC and the bytes accounted for.
  let forwarded = 0;
  scanner.push(new Uint8Array(RTCM3_MAX_FRAME_LEN), () => forwarded++);
  assertEquals(forwarded, 0);
  assertEquals(scanner.stats.crcErrors, 1);
  assertEquals(
    frameBytes(frames) + scanner.stats.skippedBytes + scanner.pending,
    bytes.length + RTCM3_MAX_FRAME_LEN,
  );
});

Deno.test("Rtcm3Scanner: the raw u-blox log yields the same 182 frames as f9t.rtcm3", () => {
  const clean = scan(load("f9t.rtcm3")).frames;
  const raw = load("ublox-zed-f9t-rtcm3.raw.log");
  const { frames, scanner } = scan(raw);
  assertEquals(frames.length, 182);
  assertEquals(frames, clean);
  const s = scanner.stats;
  assertEquals(s.crcErrors, 3, "three false preambles");
  assertEquals(s.skippedBytes, 8412);
  assertEquals(
    scanner.pending,
    89,
    "a false preamble near the end announces a frame longer than what follows",
  );
  assertEquals(frameBytes(frames) + s.skippedBytes + scanner.pending, raw.length);
  assertEquals(countsText(s.byType), "1005x26 1077x26 1087x26 1097x26 1127x26 1230x26 4072x26");
});

Deno.test("Rtcm3Scanner: one byte at a time and odd pieces give the same frames and counts", () => {
  for (const file of ["f9t.rtcm3", "ublox-zed-f9t-rtcm3.raw.log", "GMSD7_20121014.rtcm3", "testglo.rtcm3"]) {
    const bytes = load(file);
    const whole = scan(bytes);
    for (const pieceLen of [1, 2, 7, 1029, 1030, 4096]) {
      const split = scan(bytes, pieceLen);
      assertEquals(split.frames.length, whole.frames.length, `${file} in pieces of ${pieceLen}`);
      assertEquals(split.frames, whole.frames, `${file} in pieces of ${pieceLen}`);
      assertEquals(split.scanner.stats.skippedBytes, whole.scanner.stats.skippedBytes);
      assertEquals(split.scanner.stats.crcErrors, whole.scanner.stats.crcErrors);
      assertEquals(split.scanner.pending, whole.scanner.pending);
    }
  }
});

Deno.test("Rtcm3Scanner: discardPending, reset, and maxBuffered", () => {
  const f9t = load("f9t.rtcm3");
  const scanner = new Rtcm3Scanner();
  const types: number[] = [];
  const firstLen = Rtcm3Frame.parse(f9t)!.frameLength;
  scanner.push(f9t.subarray(0, firstLen + 5), (_f, type) => types.push(type));
  assertEquals([types, scanner.pending], [[4072], 5]);
  assertEquals(scanner.discardPending(), 5);
  assertEquals([scanner.pending, scanner.stats.skippedBytes, scanner.stats.frames], [0, 5, 1]);
  scanner.reset();
  assertEquals([scanner.stats.frames, scanner.stats.byType.size, scanner.stats.skippedBytes], [0, 0, 0]);
  assertEquals([scanner.stats.stationId, scanner.stats.ecef, scanner.stats.lastFrameAtMs], [
    undefined,
    undefined,
    undefined,
  ]);

  // A 1077 frame of the recording is longer than 100 bytes: with maxBuffered 100 it is skipped as noise.
  const small = new Rtcm3Scanner({ maxBuffered: 100 });
  const seen: number[] = [];
  small.push(f9t, (_f, type) => seen.push(type));
  assertEquals(seen.filter((t) => t === 1005).length, 26);
  assert(small.pending < 100);
  assert(!seen.includes(1077));
});

/** Inputs built from the recordings (mutated) and from random bytes with preambles sprinkled in. */
Deno.test("Rtcm3Scanner: 100 000 fuzzed inputs never throw and every byte is accounted for", () => {
  const fill = seededRandom(0x52544d33);
  const word = new Uint8Array(4);
  const rand = (n: number) => {
    fill(word);
    return (((word[0] << 24) | (word[1] << 16) | (word[2] << 8) | word[3]) >>> 0) % n;
  };
  const sources = [load("f9t.rtcm3"), load("ublox-zed-f9t-rtcm3.raw.log"), load("testglo.rtcm3")];
  const budgetMs = 60_000; // a bound, not an assertion: the loop finishes long before on any machine
  const started = Date.now();
  let totalFrames = 0, totalCrcErrors = 0;

  for (let n = 0; n < 100_000; n++) {
    let input: Uint8Array;
    if (n % 2 === 0) {
      const src = sources[rand(sources.length)];
      const start = rand(src.length);
      input = src.slice(start, start + 1 + rand(1500));
      for (let k = rand(4); k > 0 && input.length > 0; k--) {
        const at = rand(input.length);
        switch (rand(4)) {
          case 0:
            input[at] ^= 1 << rand(8);
            break;
          case 1:
            input[at] = 0xd3;
            break;
          case 2:
            input = new Uint8Array([...input.subarray(0, at), ...input.subarray(at + 1)]);
            break;
          default:
            input = new Uint8Array([...input.subarray(0, at), rand(256), ...input.subarray(at)]);
        }
      }
    } else {
      input = fill(new Uint8Array(rand(300)));
      for (let k = rand(6); k > 0 && input.length > 0; k--) input[rand(input.length)] = 0xd3;
      if (input.length > 3 && rand(2) === 0) input[rand(input.length - 2) + 1] &= 0x03;
    }

    const scanner = new Rtcm3Scanner();
    let inFrames = 0;
    const onFrame = (frame: Uint8Array, type: number) => {
      const view = Rtcm3Frame.parse(frame);
      assert(view && view.frameLength === frame.length && view.crcValid() && view.messageType === type);
      inFrames += frame.length;
    };
    for (let off = 0; off < input.length;) {
      const len = 1 + rand(200);
      scanner.push(input.subarray(off, off + len), onFrame);
      off += len;
    }
    const s = scanner.stats;
    assertEquals(inFrames + s.skippedBytes + scanner.pending, input.length, `input ${n}`);
    assert(scanner.pending < RTCM3_MAX_FRAME_LEN);
    totalFrames += s.frames;
    totalCrcErrors += s.crcErrors;
    if (Date.now() - started > budgetMs) throw new Error(`fuzzing exceeded ${budgetMs} ms at input ${n}`);
  }
  assert(totalFrames > 10_000, `mutated recordings still carry frames (${totalFrames})`);
  assert(totalCrcErrors > 1_000, `mutations and random bytes produce false preambles (${totalCrcErrors})`);
});
