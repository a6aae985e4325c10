/** The TCP packet view: header fields, option parse/build round-trips, malformed input. */
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  checkTcpSegment,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
  TcpHeaderOptions,
  tcpOptionsLength,
  TcpSegmentView,
  writeTcpHeader,
} from "../src/wire/tcp.ts";

Deno.test("tcp wire: header fields round-trip", () => {
  const buf = new Uint8Array(60 + 5);
  const hlen = writeTcpHeader(buf, 0, {
    srcPort: 443,
    dstPort: 65535,
    seq: 0xfffffff0,
    ack: 0x80000001,
    flags: TCP_ACK | TCP_PSH | TCP_FIN,
    window: 0xabcd,
  });
  assertEquals(hlen, 20);
  buf.set([1, 2, 3, 4, 5], hlen);
  const seg = buf.subarray(0, hlen + 5);
  assertEquals(checkTcpSegment(seg), null);
  const v = new TcpSegmentView(seg);
  assertEquals([v.srcPort, v.dstPort, v.seq, v.ack, v.flags, v.window], [
    443,
    65535,
    0xfffffff0,
    0x80000001,
    TCP_ACK | TCP_PSH | TCP_FIN,
    0xabcd,
  ]);
  assertEquals(v.checksum, 0, "checksum left for the IP layer");
  assertEquals(v.headerLength, 20);
  assertEquals(v.payload, Uint8Array.of(1, 2, 3, 4, 5));
});

Deno.test("tcp wire: SYN options (MSS, SACK-permitted, timestamps, window scale) round-trip", () => {
  const buf = new Uint8Array(60);
  const opts = { mss: 1380, sackPermitted: true, timestamp: { val: 0xdeadbeef, ecr: 7 }, windowShift: 7 };
  const hlen = writeTcpHeader(buf, 0, {
    srcPort: 1,
    dstPort: 2,
    seq: 3,
    ack: 0,
    flags: TCP_SYN,
    window: 64240,
  }, opts);
  assertEquals(hlen, 20 + tcpOptionsLength(opts));
  assertEquals(hlen, 40); // the Linux layout: MSS, SACK-perm+TS, NOP+WS
  const o = new TcpHeaderOptions();
  assert(new TcpSegmentView(buf.subarray(0, hlen)).parseOptions(o));
  assertEquals([o.mss, o.sackPermitted, o.hasTimestamp, o.tsVal, o.tsEcr, o.windowShift], [
    1380,
    true,
    true,
    0xdeadbeef,
    7,
    7,
  ]);
});

Deno.test("tcp wire: SACK blocks with timestamps fit in 40 option bytes", () => {
  const buf = new Uint8Array(60);
  const blocks = [100, 200, 0xfffffff0, 0x10, 5000, 6000];
  const opts = { timestamp: { val: 1, ecr: 2 }, sackBlocks: blocks };
  const hlen = writeTcpHeader(
    buf,
    0,
    { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TCP_ACK, window: 5 },
    opts,
  );
  assertEquals(hlen, 60);
  const o = new TcpHeaderOptions();
  assert(new TcpSegmentView(buf.subarray(0, hlen)).parseOptions(o));
  assertEquals(o.sackBlocks, blocks);
  assertEquals(o.tsVal, 1);
});

Deno.test("tcp wire: a Linux SYN parses (captured option bytes)", () => {
  // MSS 1460, SACK_PERM, TS val/ecr, NOP, WS 7 - as tcpdump shows a kernel SYN.
  const opt = [2, 4, 5, 180, 4, 2, 8, 10, 0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 7];
  const seg = new Uint8Array(20 + opt.length);
  writeTcpHeader(seg, 0, { srcPort: 40000, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 64240 });
  seg[12] = ((20 + opt.length) / 4) << 4;
  seg.set(opt, 20);
  const o = new TcpHeaderOptions();
  assert(new TcpSegmentView(seg).parseOptions(o));
  assertEquals([o.mss, o.sackPermitted, o.tsVal, o.windowShift], [1460, true, 0x00010203, 7]);
});

Deno.test("tcp wire: malformed headers and options are rejected, unknown options skipped", () => {
  assertEquals(checkTcpSegment(new Uint8Array(19)), "shorter than a TCP header");
  const seg = new Uint8Array(24);
  writeTcpHeader(seg, 0, { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TCP_ACK, window: 5 });
  seg[12] = 0x40;
  assertEquals(checkTcpSegment(seg), "data offset below 5");
  seg[12] = 0x70;
  assertEquals(checkTcpSegment(seg), "data offset beyond segment");
  seg[12] = 0x60;
  const o = new TcpHeaderOptions();
  const cases: [number[], boolean][] = [
    [[2, 4, 1, 0], true], // MSS
    [[2, 3, 1, 1], false], // MSS with wrong length
    [[3, 3, 20, 0], true], // WS clamped to 14
    [[8, 10, 0, 0], false], // timestamp running past the header
    [[99, 4, 0, 0], true], // unknown kind, skipped by length
    [[99, 1, 0, 0], false], // length below 2
    [[99, 0, 0, 0], false], // length 0 would loop forever
    [[1, 1, 1, 0], true], // NOPs then EOL
    [[5, 2, 0, 0], false], // SACK with no block
  ];
  for (const [bytes, ok] of cases) {
    seg.set(bytes, 20);
    assertEquals(new TcpSegmentView(seg).parseOptions(o), ok, `options ${bytes}`);
  }
  seg.set([3, 3, 20, 0], 20);
  new TcpSegmentView(seg).parseOptions(o);
  assertEquals(o.windowShift, 14);
});

Deno.test("tcp wire: random bytes never throw from the parser", () => {
  let s = 12345;
  const o = new TcpHeaderOptions();
  for (let i = 0; i < 20_000; i++) {
    const len = s % 80;
    const b = new Uint8Array(len);
    for (let j = 0; j < len; j++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      b[j] = s >>> 24;
    }
    if (checkTcpSegment(b) === null) {
      const v = new TcpSegmentView(b);
      v.parseOptions(o);
      void v.payload;
    }
  }
});
