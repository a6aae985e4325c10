import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { createLinkPair } from "../src/netstack/link.ts";
import { Stack, type StackOptions } from "../src/netstack/stack.ts";
import { parseIp } from "../src/netstack/addr.ts";
import { buildIpv4Packet, Ipv4Packet } from "../src/wire/ipv4.ts";
import { buildIpv6Packet } from "../src/wire/ipv6.ts";
import { buildUdpDatagram } from "../src/wire/udp.ts";
import { transportChecksum } from "../src/wire/checksum.ts";
import { IcmpMessage } from "../src/wire/icmp.ts";
import type { StackStats } from "../src/netstack/stack.ts";

const A4 = parseIp("10.77.0.2")!, B4 = parseIp("10.77.0.1")!;
const A6 = parseIp("fd77::2")!, B6 = parseIp("fd77::1")!;

function stack(extra: Partial<StackOptions> = {}) {
  const clock = new ManualClock();
  const [la, lb] = createLinkPair({ clock });
  const b = new Stack(lb, {
    addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
    clock,
    random: seededRandom(3),
    ...extra,
  });
  const sent: Uint8Array[] = [];
  la.setReceiver((p) => sent.push(p));
  return { b, clock, la, sent };
}

function udpSegment(src: Uint8Array, dst: Uint8Array, dstPort: number, payload: Uint8Array): Uint8Array {
  const seg = buildUdpDatagram(40000, dstPort, payload);
  const c = transportChecksum(src, dst, 17, seg);
  seg[6] = c >> 8;
  seg[7] = c;
  return seg;
}

function payloadOf(n: number, seed: number): Uint8Array {
  return seededRandom(seed)(new Uint8Array(n));
}

/** Splits an IPv4 packet's payload into fragments of `size` bytes (multiple of 8). */
function fragmentV4(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  ident: number,
  data: Uint8Array,
  size: number,
) {
  const frags: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += size) {
    const piece = data.subarray(off, Math.min(data.length, off + size));
    const p = buildIpv4Packet({ src, dst, protocol: proto, ident }, piece);
    const more = off + size < data.length;
    const field = (off >> 3) | (more ? 0x2000 : 0);
    p[6] = field >> 8;
    p[7] = field & 0xff;
    new Ipv4Packet(p).fillChecksum();
    frags.push(p);
  }
  return frags;
}

/** IPv6 fragments with an optional hop-by-hop header in the unfragmentable part. */
function fragmentV6(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  ident: number,
  data: Uint8Array,
  size: number,
  hbh = false,
) {
  const frags: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += size) {
    const piece = data.subarray(off, Math.min(data.length, off + size));
    const more = off + size < data.length;
    const ext = new Uint8Array((hbh ? 8 : 0) + 8 + piece.length);
    let o = 0;
    if (hbh) {
      ext[0] = 44;
      ext[2] = 1; // PadN option filling the 6 option bytes
      ext[3] = 4;
      o = 8;
    }
    ext[o] = proto;
    const field = off | (more ? 1 : 0);
    ext[o + 2] = field >> 8;
    ext[o + 3] = field & 0xff;
    ext[o + 4] = ident >>> 24;
    ext[o + 5] = ident >>> 16;
    ext[o + 6] = ident >>> 8;
    ext[o + 7] = ident;
    ext.set(piece, o + 8);
    frags.push(buildIpv6Packet({ src, dst, nextHeader: hbh ? 0 : 44 }, ext));
  }
  return frags;
}

function dropped(s: StackStats): number {
  return Object.values(s.rxDropped).reduce((x, y) => x + y, 0);
}

function assertAccounted(s: StackStats): void {
  assertEquals(s.rxPackets, s.rxDelivered + s.rxFragmentsHeld + dropped(s), "rx accounting");
}

Deno.test("fragments: IPv4 in order and out of order reassemble to the original datagram", async () => {
  const { b } = stack();
  try {
    const sock = b.listenUdp(undefined, 9);
    const data = payloadOf(3000, 1);
    const seg = udpSegment(A4, B4, 9, data);
    const frags = fragmentV4(A4, B4, 17, 77, seg, 1000);
    assertEquals(frags.length, 4);
    for (const f of frags) b.ip.receive(f);
    const reversed = fragmentV4(A4, B4, 17, 78, seg, 512).reverse();
    for (const f of reversed) b.ip.receive(f);
    assertEquals(sock.queued, 2);
    assertEquals((await sock.receive())[0], data);
    assertEquals((await sock.receive())[0], data);
    const s = b.stats;
    assertEquals(s.fragments.reassembled, 2);
    assertEquals(s.fragments.inFlight, 0);
    assertEquals(s.rxFragmentsHeld, 3 + reversed.length - 1);
    assertEquals(s.rxDelivered, 2);
    assertAccounted(s);
  } finally {
    b.close();
  }
});

Deno.test("fragments: IPv6 (with hop-by-hop in the unfragmentable part) shuffled", async () => {
  const { b } = stack();
  try {
    const sock = b.listenUdp("fd77::1", 9);
    const data = payloadOf(4000, 2);
    const seg = udpSegment(A6, B6, 9, data);
    const frags = fragmentV6(A6, B6, 17, 0xdeadbeef, seg, 1232, true);
    const order = [2, 0, 3, 1];
    for (const i of order) b.ip.receive(frags[i]);
    assertEquals((await sock.receive())[0], data);
    const plain = fragmentV6(A6, B6, 17, 5, seg, 8 * 100);
    for (const f of plain) b.ip.receive(f);
    assertEquals((await sock.receive())[0], data);
    // An atomic fragment (offset 0, M = 0) is processed at once (RFC 6946).
    const atomic = fragmentV6(A6, B6, 17, 6, udpSegment(A6, B6, 9, new Uint8Array([5])), 64);
    assertEquals(atomic.length, 1);
    b.ip.receive(atomic[0]);
    assertEquals((await sock.receive())[0], new Uint8Array([5]));
    assertEquals(b.stats.fragments.reassembled, 2);
    assertAccounted(b.stats);
  } finally {
    b.close();
  }
});

Deno.test("fragments: overlapping fragment discards the datagram; exact duplicate is ignored", () => {
  const { b } = stack();
  try {
    const sock = b.listenUdp(undefined, 9);
    const seg = udpSegment(A4, B4, 9, payloadOf(2000, 3));
    const frags = fragmentV4(A4, B4, 17, 1, seg, 1000);
    const overlapping = fragmentV4(A4, B4, 17, 1, seg, 504)[1]; // bytes 504..1008 overlap the first piece
    b.ip.receive(frags[0]);
    b.ip.receive(overlapping);
    assertEquals(b.stats.rxDropped.fragmentOverlap, 1);
    assertEquals(b.stats.fragments.inFlight, 0);
    b.ip.receive(frags[1]);
    b.ip.receive(frags[2]);
    assertEquals(sock.queued, 0, "a datagram with overlaps is never delivered from the old pieces");

    const v6 = fragmentV6(A6, B6, 17, 9, udpSegment(A6, B6, 9, payloadOf(2000, 4)), 1000);
    b.ip.receive(v6[0]);
    b.ip.receive(v6[0]);
    assertEquals(b.stats.rxDropped.fragmentDuplicate, 1);
    b.ip.receive(v6[1]);
    b.ip.receive(v6[2]);
    assertEquals(sock.queued, 1);
    assertAccounted(b.stats);
  } finally {
    b.close();
  }
});

Deno.test("fragments: incomplete datagram times out after 30 s (ManualClock), no timer leaks", async () => {
  const { b, clock, sent } = stack();
  try {
    const seg = udpSegment(A4, B4, 9, payloadOf(2000, 5));
    b.ip.receive(fragmentV4(A4, B4, 17, 2, seg, 1000)[0]);
    b.ip.receive(fragmentV6(A6, B6, 17, 2, udpSegment(A6, B6, 9, payloadOf(2000, 5)), 1000)[1]);
    const v6first = fragmentV6(A6, B6, 17, 3, udpSegment(A6, B6, 9, payloadOf(2000, 5)), 1000, true)[0];
    b.ip.receive(v6first);
    assertEquals(b.stats.fragments.inFlight, 3);
    clock.advance(29_999);
    assertEquals(b.stats.fragments.inFlight, 3);
    clock.advance(1);
    assertEquals(b.stats.fragments.inFlight, 0);
    assertEquals(b.stats.fragments.timeouts, 3);
    assertEquals(clock.pendingTimers, 0);
    // "Fragment reassembly time exceeded" goes back for the datagrams whose first fragment arrived.
    for (let i = 0; i < 5; i++) await Promise.resolve();
    assertEquals(sent.length, 2);
    const m4 = new IcmpMessage(new Ipv4Packet(sent[0]).payload);
    assertEquals([m4.type, m4.code], [11, 1]);
    assertEquals(m4.body.subarray(0, 28), fragmentV4(A4, B4, 17, 2, seg, 1000)[0].subarray(0, 28));
    const m6 = new IcmpMessage(sent[1].subarray(40));
    assertEquals([m6.type, m6.code], [3, 1]);
    assert(m6.verifyV6(B6, A6));
    assertEquals(m6.body.subarray(0, 64), v6first.subarray(0, 64), "the quote is the first fragment as sent");
  } finally {
    b.close();
  }
});

Deno.test("fragments: bounded datagrams in flight, bytes held, and reassembled size", () => {
  const { b, clock } = stack({ reassembly: { maxDatagrams: 4, maxBytes: 5000 } });
  try {
    const seg = udpSegment(A4, B4, 9, payloadOf(2000, 6));
    for (let id = 0; id < 6; id++) b.ip.receive(fragmentV4(A4, B4, 17, id, seg, 1000)[0]);
    assertEquals(b.stats.fragments.inFlight, 4);
    assertEquals(b.stats.fragments.evicted, 2);
    // 4 x ~1020 bytes held; a 2000-byte fragment evicts the oldest to stay within 5000 bytes.
    const big = fragmentV4(A4, B4, 17, 100, udpSegment(A4, B4, 9, payloadOf(6000, 7)), 2000)[0];
    b.ip.receive(big);
    assert(b.stats.fragments.evicted >= 3);
    assert(b.stats.fragments.inFlight <= 4);
    // A fragment whose end lies beyond 65535 bytes is refused.
    const far = buildIpv4Packet({ src: A4, dst: B4, protocol: 17, ident: 200 }, new Uint8Array(16));
    const field = 0x2000 | (65528 >> 3);
    far[6] = field >> 8;
    far[7] = field & 0xff;
    new Ipv4Packet(far).fillChecksum();
    b.ip.receive(far);
    assertEquals(b.stats.rxDropped.fragmentTooBig, 1);
    // A non-last fragment whose length is not a multiple of 8 is invalid.
    const odd = fragmentV4(A4, B4, 17, 300, payloadOf(20, 8), 8)[0].slice(0, 20 + 8);
    odd[3] = 20 + 5;
    odd[2] = 0;
    new Ipv4Packet(odd).fillChecksum();
    b.ip.receive(odd.subarray(0, 25));
    assertEquals(b.stats.rxDropped.fragmentInvalid, 1);
    clock.advance(30_000);
    assertEquals(b.stats.fragments.inFlight, 0);
    assertEquals(clock.pendingTimers, 0);
    assertAccounted(b.stats);
  } finally {
    b.close();
  }
});
