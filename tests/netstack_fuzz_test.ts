/**
 * 100 000 random and mutated IP packets into one stack: nothing throws, nothing escapes into the event loop,
 * and every packet lands in exactly one counter (delivered, held as a fragment, or dropped by reason).
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { Stack } from "../src/netstack/stack.ts";
import { parseIp } from "../src/netstack/addr.ts";
import { buildIpv4Packet, Ipv4Packet } from "../src/wire/ipv4.ts";
import { buildIpv6Packet } from "../src/wire/ipv6.ts";
import { buildIcmpEcho, buildIcmpError } from "../src/wire/icmp.ts";
import { buildUdpDatagram } from "../src/wire/udp.ts";
import { transportChecksum } from "../src/wire/checksum.ts";
import type { PacketInterface, TransportHandler } from "../src/netstack/types.ts";
import type { UdpSocket } from "../src/netstack/udp.ts";

const A4 = parseIp("10.77.0.2")!, B4 = parseIp("10.77.0.1")!;
const A6 = parseIp("fd77::2")!, B6 = parseIp("fd77::1")!;

function withChecksum(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  seg: Uint8Array,
  at: number,
): Uint8Array {
  const c = transportChecksum(src, dst, proto, seg);
  seg[at] = c >> 8;
  seg[at + 1] = c;
  return seg;
}

function tcpSegment(src: Uint8Array, dst: Uint8Array, len: number): Uint8Array {
  const seg = new Uint8Array(len);
  seg[1] = 80;
  seg[3] = 81;
  seg[12] = 0x50;
  seg[13] = 0x02; // SYN
  return withChecksum(src, dst, 6, seg, 16);
}

function seeds(): Uint8Array[] {
  const s: Uint8Array[] = [];
  const data = new Uint8Array(64).map((_, i) => i);
  s.push(buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, buildIcmpEcho(8, 1, 2, data)));
  s.push(
    buildIpv6Packet(
      { src: A6, dst: B6, nextHeader: 58 },
      buildIcmpEcho(128, 1, 2, data, { src: A6, dst: B6 }),
    ),
  );
  s.push(
    buildIpv4Packet(
      { src: A4, dst: B4, protocol: 17 },
      withChecksum(A4, B4, 17, buildUdpDatagram(5, 7, data), 6),
    ),
  );
  s.push(
    buildIpv4Packet(
      { src: A4, dst: B4, protocol: 17 },
      withChecksum(A4, B4, 17, buildUdpDatagram(5, 9, data), 6),
    ),
  );
  s.push(
    buildIpv6Packet(
      { src: A6, dst: B6, nextHeader: 17 },
      withChecksum(A6, B6, 17, buildUdpDatagram(5, 7, data), 6),
    ),
  );
  s.push(buildIpv4Packet({ src: A4, dst: B4, protocol: 6 }, tcpSegment(A4, B4, 40)));
  s.push(buildIpv6Packet({ src: A6, dst: B6, nextHeader: 6 }, tcpSegment(A6, B6, 40)));
  const ours4 = buildIpv4Packet({ src: B4, dst: A4, protocol: 6 }, tcpSegment(B4, A4, 60));
  s.push(buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, buildIcmpError(3, 4, ours4, 1200)));
  const ours6 = buildIpv6Packet({ src: B6, dst: A6, nextHeader: 17 }, buildUdpDatagram(7, 5, data));
  s.push(
    buildIpv6Packet(
      { src: A6, dst: B6, nextHeader: 58 },
      buildIcmpError(2, 0, ours6, 1300, { src: A6, dst: B6 }),
    ),
  );
  s.push(
    buildIpv6Packet(
      { src: A6, dst: B6, nextHeader: 58 },
      buildIcmpError(1, 4, ours6, 0, { src: A6, dst: B6 }),
    ),
  );
  // IPv4 fragments (first and last of a UDP datagram).
  const big = withChecksum(A4, B4, 17, buildUdpDatagram(5, 7, new Uint8Array(300)), 6);
  const f1 = buildIpv4Packet({ src: A4, dst: B4, protocol: 17, ident: 9 }, big.subarray(0, 160));
  f1[6] = 0x20;
  new Ipv4Packet(f1).fillChecksum();
  const f2 = buildIpv4Packet({ src: A4, dst: B4, protocol: 17, ident: 9 }, big.subarray(160));
  f2[7] = 20;
  new Ipv4Packet(f2).fillChecksum();
  s.push(f1, f2);
  // IPv6 with hop-by-hop + destination options + fragment header.
  const ext = new Uint8Array(8 + 8 + 8 + 48);
  ext[0] = 60;
  ext[8] = 44;
  ext[16] = 17;
  ext[19] = 1;
  ext[23] = 7;
  s.push(buildIpv6Packet({ src: A6, dst: B6, nextHeader: 0 }, ext));
  const ext2 = ext.slice();
  ext2[18] = 0;
  ext2[19] = 48; // offset 48, last
  s.push(buildIpv6Packet({ src: A6, dst: B6, nextHeader: 0 }, ext2));
  return s;
}

/** Feeds n random and mutated packets (deterministic for a seed) into the stack's IP layer. */
function feed(stack: Stack, clock: ManualClock, sock: UdpSocket, n: number, seed: number): void {
  // mulberry32: consecutive draws must be independent, or mutation kinds correlate with seed packets.
  let state = seed;
  const next = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rand = (n: number) => Math.floor(next() * n);
  const rnd = (b: Uint8Array) => {
    for (let i = 0; i < b.length; i++) b[i] = rand(256);
    return b;
  };
  const base = seeds();
  for (let i = 0; i < n; i++) {
    let p: Uint8Array;
    const mode = rand(10);
    if (mode === 0) {
      p = rnd(new Uint8Array(rand(200)));
      if (p.length > 0) p[0] = (p[0] & 0x0f) | (rand(2) ? 0x40 : 0x60);
    } else {
      p = base[rand(base.length)].slice();
      const flips = mode <= 3 ? 0 : 1 + rand(4);
      // Mutations aimed at the header most of the time, anywhere otherwise.
      for (let k = 0; k < flips; k++) {
        const at = rand(2) ? rand(Math.min(p.length, 48)) : rand(p.length);
        p[at] ^= 1 << rand(8);
      }
      if (mode === 4) p = p.subarray(0, rand(p.length + 1));
      if (mode === 5) {
        const longer = new Uint8Array(p.length + rand(64));
        longer.set(p);
        p = longer;
      }
      if (mode === 6 && p.length >= 6) {
        p[2] = rand(256);
        p[3] = rand(256);
        p[4] = rand(256);
        p[5] = rand(256);
      }
      // Often repair the IPv4 header checksum so mutations reach the layers behind it.
      if (p.length >= 20 && p[0] >> 4 === 4 && rand(3) !== 0 && Ipv4Packet.checkLen(p)) {
        new Ipv4Packet(p).fillChecksum();
      }
    }
    stack.ip.receive(p);
    if (i % 1000 === 999) clock.advance(1000);
    if (sock.queued > 100) {
      while (sock.queued > 0) sock.receive();
    }
  }
}

Deno.test("fuzz: 100k random and mutated packets are all counted and none throws", () => {
  const clock = new ManualClock();
  let sent = 0;
  const link: PacketInterface = { mtu: 1420, send: () => void sent++, setReceiver: () => {} };
  const stack = new Stack(link, {
    addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
    clock,
    random: seededRandom(5),
    reassembly: { maxDatagrams: 32, maxBytes: 256 * 1024 },
  });
  let tcpDelivered = 0, tcpErrors = 0;
  const tcp: TransportHandler = {
    deliver: (_s, _d, seg) => {
      assert(seg.length >= 20);
      tcpDelivered++;
    },
    deliverIcmpError: (_k, _s, _d, quoted) => {
      assert(quoted.length >= 8);
      tcpErrors++;
    },
  };
  stack.ip.register(6, tcp);
  const sock = stack.listenUdp(undefined, 7);
  const N = 100_000;
  feed(stack, clock, sock, N, 12345);
  clock.advance(60_000);
  const s = stack.stats;
  const dropped = Object.values(s.rxDropped).reduce((x, y) => x + y, 0);
  assertEquals(s.rxPackets, N);
  assertEquals(s.rxPackets, s.rxDelivered + s.rxFragmentsHeld + dropped, "every packet counted once");
  assertEquals(s.handlerErrors, 0, "no exception inside the stack");
  assertEquals(s.fragments.inFlight, 0);
  assert(s.rxDelivered > N / 10, `some packets must get through: ${s.rxDelivered}`);
  assert(tcpDelivered > 0 && tcpErrors > 0 && s.udp.received > 0 && s.icmp.echoRequestsAnswered > 0);
  assert(s.fragments.reassembled > 0, "some fragments reassembled");
  assert(sent > 0);
  // Every reason we expect from this mix actually occurred (so the counters are wired).
  for (
    const reason of [
      "badVersion",
      "badLength",
      "badHeaderChecksum",
      "badChecksum",
      "notForUs",
      "malformedExtHeaders",
    ] as const
  ) {
    assert(s.rxDropped[reason] > 0, `no ${reason} drops`);
  }
  stack.close();
});

Deno.test("fuzz: 30k mutated packets through the real TCP layer with a listener", () => {
  const clock = new ManualClock();
  let sent = 0;
  const link: PacketInterface = { mtu: 1420, send: () => void sent++, setReceiver: () => {} };
  const stack = new Stack(link, {
    addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
    clock,
    random: seededRandom(6),
  });
  const listener = stack.listenTcp(undefined, 81);
  const sock = stack.listenUdp(undefined, 7);
  const N = 30_000;
  feed(stack, clock, sock, N, 777);
  clock.advance(300_000);
  const s = stack.stats;
  const dropped = Object.values(s.rxDropped).reduce((x, y) => x + y, 0);
  assertEquals(s.rxPackets, s.rxDelivered + s.rxFragmentsHeld + dropped, "every packet counted once");
  assertEquals(s.handlerErrors, 0);
  assert(s.tcp !== undefined && s.tcp.segmentsIn > 0, "TCP saw segments");
  assert(sent > 0);
  listener.close();
  stack.close();
});
