/** The TCP building blocks on their own: sequence arithmetic, ring, reassembly, SACK scoreboard, RTO, CC, ISN. */
import { assert, assertEquals, assertNotEquals, assertThrows } from "./helpers/assert.ts";
import { TcpLayer } from "../src/netstack/tcp/mod.ts";
import { seqAdd, seqDiff, seqGt, seqLt } from "../src/netstack/tcp/seq.ts";
import { ByteRing } from "../src/netstack/tcp/ring.ts";
import { ReceiveBuffer } from "../src/netstack/tcp/recvbuffer.ts";
import { SackScoreboard } from "../src/netstack/tcp/sack.ts";
import { RttEstimator } from "../src/netstack/tcp/rtt.ts";
import { type CongestionControl, Cubic, initialWindow, NewReno } from "../src/netstack/tcp/congestion.ts";
import { IsnGenerator } from "../src/netstack/tcp/isn.ts";
import { SynCookies } from "../src/netstack/tcp/syncookie.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";

Deno.test("tcp parts: sequence numbers compare across the 2^32 wrap", () => {
  assert(seqLt(0xfffffff0, 0x10));
  assert(seqGt(0x10, 0xfffffff0));
  assertEquals(seqDiff(0x10, 0xfffffff0), 0x20);
  assertEquals(seqAdd(0xffffffff, 2), 1);
});

Deno.test("tcp parts: ByteRing wraps, grows lazily, never exceeds its limit", () => {
  const r = new ByteRing(64 * 1024);
  assertEquals(r.allocated, 0);
  const src = seededRandom(1)(new Uint8Array(200_000));
  let wrote = 0, read = 0;
  const out = new Uint8Array(7000);
  for (let i = 0; i < 200 && read < src.length; i++) {
    const n = Math.min(r.free, 9000, src.length - wrote);
    r.push(src.subarray(wrote, wrote + n));
    wrote += n;
    const m = r.read(out.subarray(0, 5000 + (i % 2000)));
    assertEquals(out.subarray(0, m), src.subarray(read, read + m));
    read += m;
    assert(r.allocated <= 64 * 1024);
  }
  assertEquals(read, wrote);
});

Deno.test("tcp parts: ByteRing storage starts at 4 KiB for a trickle and doubles only as far as needed", () => {
  const r = new ByteRing(1024 * 1024);
  r.push(new Uint8Array(1000)); // a second of RTCM3 corrections
  assertEquals(r.allocated, 4096);
  r.push(new Uint8Array(4000));
  assertEquals(r.allocated, 8192);
  r.push(new Uint8Array(60_000));
  assertEquals(r.allocated, 65536);
  const small = new ByteRing(3000);
  small.push(new Uint8Array(10));
  assertEquals(small.allocated, 3000, "never above the limit");
});

Deno.test("tcp parts: reassembly places out-of-order data in place and reports SACK blocks", () => {
  const rb = new ReceiveBuffer(100_000);
  const data = seededRandom(2)(new Uint8Array(10_000));
  const base = 0xffffff00; // across the wrap
  const seg = (i: number) => data.subarray(i * 1000, i * 1000 + 1000);
  assertEquals(rb.insert(seqAdd(base, 2000), seg(2), base), 0);
  assertEquals(rb.insert(seqAdd(base, 5000), seg(5), base), 0);
  assertEquals(rb.insert(seqAdd(base, 3000), seg(3), base), 0);
  const blocks: number[] = [];
  rb.sackBlocks(3, blocks);
  assertEquals(blocks, [seqAdd(base, 2000), seqAdd(base, 4000), seqAdd(base, 5000), seqAdd(base, 6000)]);
  assertEquals(rb.outOfOrderBytes, 3000);
  assertEquals(rb.insert(base, seg(0), base), 1000);
  assertEquals(rb.insert(seqAdd(base, 1000), seg(1), seqAdd(base, 1000)), 3000); // fills the hole up to 4000
  assertEquals(rb.unread, 4000);
  const out = new Uint8Array(4000);
  assertEquals(rb.read(out), 4000);
  assertEquals(out, data.subarray(0, 4000));
  assertEquals(rb.insert(seqAdd(base, 4000), seg(4), seqAdd(base, 4000)), 2000);
  assertEquals(rb.read(out), 2000);
  assertEquals(out.subarray(0, 2000), data.subarray(4000, 6000));
  assert(!rb.hasOutOfOrder);
});

Deno.test("tcp parts: SACK scoreboard - IsLost, pipe and NextSeg (RFC 6675)", () => {
  const sb = new SackScoreboard();
  const mss = 1000, una = 10_000, max = 20_000;
  // Segment [10000,11000) lost, the next three SACKed: the hole is lost (3 discontiguous... or >2 MSS above).
  assert(sb.update([11_000, 14_000], una, max));
  assert(!sb.update([11_000, 12_000], una, max), "already known");
  assert(sb.isLost(10_000, una, mss));
  assertEquals(sb.pipe(una, max, mss), 20_000 - 14_000); // the lost hole is not in flight
  assertEquals(sb.nextToRetransmit(una, mss, true), [10_000, 11_000]);
  sb.noteRetransmit(10_000, 11_000, max);
  assertEquals(sb.pipe(una, max, mss), 6000 + 1000);
  assertEquals(sb.nextToRetransmit(una, mss, true), undefined);
  // Data sent after the retransmission is SACKed but the retransmission is not: it was lost too.
  sb.update([20_000, 21_000], una, 21_000);
  assertEquals(sb.detectLostRetransmits(), 1);
  assertEquals(sb.nextToRetransmit(una, mss, true), [10_000, 11_000]);
  // Blocks outside (una, max] are ignored; a cumulative ACK trims.
  assert(!sb.update([1, 5], una, 21_000));
  sb.onCumulativeAck(14_000);
  assertEquals(sb.ranges, [20_000, 21_000]);
  assert(!sb.isLost(15_000, 14_000, mss), "one SACKed segment above is not enough");
});

Deno.test("tcp parts: RTO per RFC 6298 - first sample, smoothing, min clamp, backoff and cap", () => {
  const r = new RttEstimator(200, 120_000);
  assertEquals(r.rto, 1000);
  r.sample(100); // SRTT 100, RTTVAR 50 -> 100 + 200 = 300
  assertEquals(r.rto, 300);
  r.sample(100); // RTTVAR 37.5 -> 250
  assertEquals(r.rto, 250);
  r.sample(1);
  assert(r.rto >= 200);
  r.onTimeout();
  r.onTimeout();
  assertEquals(r.rto, 4 * (r.srtt! + 4 * r.rttvar > 200 ? r.srtt! + 4 * r.rttvar : 200));
  for (let i = 0; i < 30; i++) r.onTimeout();
  assertEquals(r.rto, 120_000);
  r.sample(10);
  assertEquals(r.rto, Math.max(200, r.srtt! + 4 * r.rttvar), "a new sample clears the backoff");
});

Deno.test("tcp parts: congestion control - IW10, slow start, loss and timeout responses", () => {
  const mss = 1448;
  assertEquals(initialWindow(mss), 10 * mss);
  assertEquals(initialWindow(9000), 2 * 9000);
  const ccs: CongestionControl[] = [new NewReno(mss), new Cubic(mss)];
  for (const cc of ccs) {
    assertEquals(cc.cwnd, 10 * mss);
    cc.onAck(mss, mss, 0, 10, false);
    assertEquals(cc.cwnd, 11 * mss, `${cc.name} slow start`);
    cc.onAck(mss, mss, 0, 10, true);
    assertEquals(cc.cwnd, 11 * mss, `${cc.name} does not grow when application-limited`);
    cc.onLoss(100 * mss, mss, 0);
    assertEquals(cc.cwnd, cc.ssthresh);
    assertEquals(cc.ssthresh, Math.floor(100 * mss * (cc.name === "cubic" ? 0.7 : 0.5)));
    const before = cc.cwnd;
    for (let i = 0; i < 1000; i++) cc.onAck(mss, mss, i * 10, 10, false);
    assert(cc.cwnd > before, `${cc.name} grows in congestion avoidance`);
    cc.onTimeout(20 * mss, mss, 20_000);
    assertEquals(cc.cwnd, mss);
  }
});

Deno.test("tcp parts: ISNs are keyed per 4-tuple and advance with time (RFC 6528)", () => {
  const clock = new ManualClock();
  const g = new IsnGenerator(seededRandom(1), clock);
  const h = new IsnGenerator(seededRandom(2), clock);
  const a = Uint8Array.of(10, 0, 0, 1), b = Uint8Array.of(10, 0, 0, 2);
  const x = g.isn(a, 1000, b, 80);
  assertNotEquals(x, g.isn(a, 1001, b, 80));
  assertNotEquals(x, h.isn(a, 1000, b, 80), "a different key gives a different ISN");
  clock.advance(1000);
  assertEquals(seqDiff(g.isn(a, 1000, b, 80), x), 250_000, "4 µs clock");
});

Deno.test("tcp parts: SYN cookies round-trip the MSS, expire after two 64 s slots, reject tampering", () => {
  const clock = new ManualClock();
  const c = new SynCookies(seededRandom(9), clock);
  const l = Uint8Array.of(10, 0, 0, 1), r = Uint8Array.of(10, 0, 0, 2);
  const cookie = c.make(l, 80, r, 40000, 0xfffffff0, 1380);
  assertEquals(c.check(l, 80, r, 40000, 0xfffffff0, cookie), 1360, "largest table MSS not above the peer's");
  assertEquals(c.check(l, 80, r, 40001, 0xfffffff0, cookie), undefined, "another tuple");
  assertEquals(c.check(l, 80, r, 40000, 0x12345678, cookie), undefined, "another peer ISN");
  assertEquals(c.check(l, 80, r, 40000, 0xfffffff0, (cookie + 0x1000) >>> 0), undefined);
  // Blind guesses: the 24-bit hash leaves 8 valid values per 2^24, in 3 of 256 time slots.
  const guess = seededRandom(4);
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const g = guess(new Uint8Array(4));
    if (c.check(l, 80, r, 40000, 0xfffffff0, ((g[0] << 24) | (g[1] << 16) | (g[2] << 8) | g[3]) >>> 0)) {
      accepted++;
    }
  }
  assertEquals(accepted, 0);
  clock.advance(100_000);
  assertEquals(c.check(l, 80, r, 40000, 0xfffffff0, cookie), 1360, "still valid a slot later");
  clock.advance(200_000);
  assertEquals(c.check(l, 80, r, 40000, 0xfffffff0, cookie), undefined, "expired");
  for (
    const [now, ws, sack] of [[1_000_000, 7, true], [0x1f, undefined, false], [0xffffffe0, 14, true]] as const
  ) {
    const ts = SynCookies.encodeTimestamp(now, ws, sack);
    assert(seqDiff(ts, now) <= 0, "never ahead of the clock");
    assertEquals(SynCookies.decodeTimestamp(ts), { windowShift: ws, sackPermitted: sack });
  }
});

Deno.test("tcp parts: bad TCP options fail at construction, naming the option", () => {
  const ip = { mtuFor: () => 1500, sendSegment: () => {}, isLocal: () => false, sourceFor: () => undefined };
  assertThrows(() => new TcpLayer(ip, { receiveBufferSize: 0 }), "receiveBufferSize");
  assertThrows(() => new TcpLayer(ip, { minRtoMs: 5000, maxRtoMs: 1000 }), "minRtoMs");
  assertThrows(() => new TcpLayer(ip, { congestionControl: "bbr" as "cubic" }), "congestionControl");
  new TcpLayer(ip, { receiveBufferSize: 64 * 1024 }).close();
});
