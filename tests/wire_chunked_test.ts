/** HTTP/1.1 chunked coding: the decoder fed whole and one byte at a time, extensions, trailers, errors. */
import { assert, assertEquals } from "./helpers/assert.ts";
import { concatBytes } from "../src/util/bytes.ts";
import { seededRandom } from "../src/util/random.ts";
import {
  CHUNKED_END,
  CHUNKED_MAX_LINE,
  ChunkedDecoder,
  ChunkedError,
  chunkOverhead,
  encodeChunk,
  writeChunk,
} from "../src/wire/chunked.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Decodes `body` in pieces of `pieceLen` (0 = one push); returns the data and whether the end was seen. */
function decode(body: Uint8Array, pieceLen = 0): { data: Uint8Array; done: boolean } {
  const decoder = new ChunkedDecoder();
  const parts: Uint8Array[] = [];
  const step = pieceLen || body.length || 1;
  for (let off = 0; off < body.length; off += step) {
    decoder.push(body.subarray(off, off + step), (d) => parts.push(d.slice()));
  }
  return { data: concatBytes(...parts), done: decoder.done };
}

function assertThrowsChunked(body: string, match: RegExp): void {
  for (const pieceLen of [0, 1]) {
    let caught: unknown;
    try {
      decode(enc(body), pieceLen);
    } catch (e) {
      caught = e;
    }
    assert(caught instanceof ChunkedError, `${JSON.stringify(body)} should fail (pieces of ${pieceLen})`);
    assert(match.test(caught.message), `message ${JSON.stringify(caught.message)} should match ${match}`);
  }
}

Deno.test("chunked: RFC 9112 example with extensions and trailers, whole and one byte at a time", () => {
  const body = "4\r\nWiki\r\n5;name=value\r\npedia\r\nE ; ext\r\n in\r\n\r\nchunks.\r\n0\r\n" +
    "Expires: never\r\nX-Other: 1\r\n\r\n";
  for (const pieceLen of [0, 1, 2, 3, 5]) {
    const { data, done } = decode(enc(body), pieceLen);
    assertEquals(dec(data), "Wikipedia in\r\n\r\nchunks.", `pieces of ${pieceLen}`);
    assert(done);
  }
});

Deno.test("chunked: encodeChunk and CHUNKED_END round-trip through the decoder", () => {
  assertEquals(dec(CHUNKED_END), "0\r\n\r\n");
  assertEquals(dec(encodeChunk(enc("hello"))), "5\r\nhello\r\n");
  assertEquals(encodeChunk(new Uint8Array(0)).length, 0, "an empty chunk would end the body");
  const fill = seededRandom(7);
  const payloads = [1, 15, 16, 255, 256, 1029, 4096].map((n) => fill(new Uint8Array(n)));
  const body = concatBytes(...payloads.map(encodeChunk), CHUNKED_END);
  assertEquals(dec(encodeChunk(payloads[5]).subarray(0, 5)), "405\r\n");
  for (const pieceLen of [0, 1, 13, 1000]) {
    const { data, done } = decode(body, pieceLen);
    assertEquals(data, concatBytes(...payloads));
    assert(done);
  }
});

Deno.test("chunked: not done before the last chunk's blank line; bytes after the end are ignored", () => {
  const decoder = new ChunkedDecoder();
  const out: string[] = [];
  for (const piece of ["3\r\nabc\r\n", "0\r\n", "X: y\r\n"]) {
    decoder.push(enc(piece), (d) => out.push(dec(d)));
    assert(!decoder.done, `not done after ${JSON.stringify(piece)}`);
  }
  decoder.push(enc("\r\nHTTP/1.1 200 OK\r\n"), (d) => out.push(dec(d)));
  assert(decoder.done);
  assertEquals(out.join(""), "abc");
});

Deno.test("chunked: size given with leading zeros, uppercase hex, bare LF line ends", () => {
  assertEquals(dec(decode(enc("000A\r\n0123456789\r\n0\r\n\r\n"), 1).data), "0123456789");
  assertEquals(dec(decode(enc("2\nab\r\n0\n\n")).data), "ab");
});

Deno.test("chunked: malformed input throws ChunkedError with a clear message", () => {
  assertThrowsChunked("zz\r\n", /bad chunk-size line "zz"/);
  assertThrowsChunked("\r\n", /bad chunk-size line ""/);
  assertThrowsChunked("-1\r\n", /bad chunk-size line/);
  assertThrowsChunked("0x10\r\n", /bad chunk-size line/);
  assertThrowsChunked("3\r\nabcX\r\n", /chunk data not followed by CRLF/);
  assertThrowsChunked("3\r\nabc\rX", /chunk data not followed by CRLF/);
  assertThrowsChunked("100000000\r\n", /too large/);
  assertThrowsChunked("1" + "0".repeat(CHUNKED_MAX_LINE + 10), /chunk-size line longer than 1024 bytes/);
  assertThrowsChunked("1;" + "x".repeat(CHUNKED_MAX_LINE) + "\r\n", /longer than/);
  assertThrowsChunked("0\r\nX: " + "y".repeat(CHUNKED_MAX_LINE) + "\r\n", /trailer line longer than/);
});

Deno.test("chunked: data split anywhere is passed on as it arrives, never a chunk header", () => {
  const decoder = new ChunkedDecoder();
  const seen: string[] = [];
  decoder.push(enc("a\r\n01234"), (d) => seen.push(dec(d)));
  assertEquals(seen, ["01234"]);
  decoder.push(enc("56789\r\n"), (d) => seen.push(dec(d)));
  assertEquals(seen, ["01234", "56789"]);
});

/** The chunk-size grammar as the decoder had it before it read size lines byte by byte (the reference). */
function referenceSize(line: string): number | "error" {
  const m = /^([0-9A-Fa-f]+)[ \t]*(;.*)?$/.exec(line);
  if (!m) return "error";
  const digits = m[1].replace(/^0+(?=.)/, "");
  if (digits.length > 8 || parseInt(digits, 16) > 0x7fffffff) return "error";
  return parseInt(digits, 16);
}

Deno.test("chunked: size lines read from bytes agree with the grammar, valid or not", () => {
  const lines = [
    "0",
    "1",
    "a",
    "F",
    "00000000000001",
    "7fffffff",
    "80000000",
    "0ffffffff",
    "123456789",
    "1 ",
    "1\t;x",
    "1 ;",
    "1;a=b;c",
    "1 x",
    "1;\rx",
    "1\r\r",
    " 1",
    ";1",
    "",
    "g",
    "1g",
    '10 \t ;ext="q"',
    "1;\x85\xff",
    "000000000",
    "0;",
    "ABCDEF",
    "abcdef0",
    "1\x00",
  ];
  const fill = seededRandom(11);
  const alphabet = "0123456789abcdefABCDEFg ;\t\r=x";
  for (let k = 0; k < 2000; k++) {
    const r = fill(new Uint8Array(1 + (k % 12)));
    lines.push([...r].map((b) => alphabet[b % alphabet.length]).join(""));
  }
  for (const line of lines) {
    const want = referenceSize(line);
    const body = new Uint8Array([...line].map((c) => c.charCodeAt(0)).concat([0x0d, 0x0a]));
    let got: number | "error";
    try {
      const d = new ChunkedDecoder();
      d.push(body, () => {});
      got = d.done ? -1 : 0;
      if (typeof want === "number" && want > 0 && want < 4096) {
        // The decoder now waits for that many data bytes.
        let n = 0;
        d.push(concatBytes(new Uint8Array(want), enc("\r\n")), (x) => (n += x.length));
        got = n;
      } else if (typeof want === "number" && want >= 4096) got = want; // not fed: accepted is enough
    } catch (e) {
      assert(e instanceof ChunkedError);
      got = "error";
    }
    assertEquals(got, want, `size line ${JSON.stringify(line)}`);
  }
});

Deno.test("chunked: writeChunk frames in place; chunkOverhead counts the hex digits", () => {
  assertEquals([1, 15, 16, 255, 256, 4095, 4096, 0xfffff].map(chunkOverhead), [5, 5, 6, 6, 7, 7, 8, 9]);
  const data = enc("hello world, 26 bytes long");
  const out = new Uint8Array(3 + chunkOverhead(data.length) + data.length).fill(0xee);
  const at = writeChunk(out, 3, data.length, data);
  assertEquals(at, 3 + 4);
  assertEquals(dec(out.subarray(3)), "1a\r\nhello world, 26 bytes long\r\n");
  assertEquals(out.subarray(0, 3), new Uint8Array(3).fill(0xee), "nothing written before `at`");
  assertEquals(encodeChunk(data), out.subarray(3));
});
