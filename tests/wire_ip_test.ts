import { assert, assertEquals } from "./helpers/assert.ts";
import { fromHex } from "../src/util/bytes.ts";
import {
  finishChecksum,
  foldSum,
  internetChecksum,
  onesSum,
  transportChecksum,
  updateChecksum16,
  verifyTransportChecksum,
} from "../src/wire/checksum.ts";
import { buildIpv4Packet, formatIpv4, Ipv4Packet, parseIpv4, writeIpv4Header } from "../src/wire/ipv4.ts";
import {
  buildIpv6Packet,
  formatIpv6,
  Ipv6Packet,
  newHeaderChain,
  parseIpv6,
  walkExtensionHeaders,
} from "../src/wire/ipv6.ts";
import {
  buildIcmpEcho,
  buildIcmpError,
  IcmpMessage,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REQUEST,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_PACKET_TOO_BIG,
} from "../src/wire/icmp.ts";
import { buildUdpDatagram, UdpDatagram } from "../src/wire/udp.ts";
import { seededRandom } from "../src/util/random.ts";

Deno.test("checksum: RFC 1071 section 3 example", () => {
  const data = fromHex("0001f203f4f5f6f7");
  assertEquals(foldSum(onesSum(data)), 0xddf2);
  assertEquals(internetChecksum(data), 0x220d);
});

Deno.test("checksum: odd length pads with a zero byte", () => {
  assertEquals(internetChecksum(fromHex("0102 03")), internetChecksum(fromHex("0102 0300")));
});

Deno.test("checksum: known IPv4 header (checksum 0xb861) verifies and is recomputed", () => {
  const h = fromHex("450000730000400040110000c0a80001c0a800c7");
  assertEquals(internetChecksum(h), 0xb861);
  h[10] = 0xb8;
  h[11] = 0x61;
  assertEquals(internetChecksum(h), 0);
});

Deno.test("checksum: unrolled loop agrees with a byte-by-byte reference for every length and offset", () => {
  const rnd = seededRandom(7);
  const buf = rnd(new Uint8Array(300));
  for (let off = 0; off < 3; off++) {
    for (let len = 0; len + off <= 300; len += 7) {
      let ref = 0;
      for (let i = 0; i < len; i += 2) ref += (buf[off + i] << 8) | (i + 1 < len ? buf[off + i + 1] : 0);
      assertEquals(foldSum(onesSum(buf, off, len)), foldSum(ref), `off ${off} len ${len}`);
    }
  }
});

Deno.test("checksum: the 32-bit word path agrees with the byte reference on packet-sized data in shared buffers", () => {
  const rnd = seededRandom(11);
  // Three buffers used in turn (the word views are cached for two), views at every offset mod 8 of each.
  const buffers = [rnd(new Uint8Array(4096)), rnd(new Uint8Array(8192)), rnd(new Uint8Array(4100))];
  const reference = (b: Uint8Array, len: number, start: number) => {
    let ref = start;
    for (let i = 0; i < len; i += 2) ref += (b[i] << 8) | (i + 1 < len ? b[i + 1] : 0);
    return ref;
  };
  for (let round = 0; round < 2; round++) {
    for (const len of [63, 64, 65, 66, 67, 100, 1420, 1439, 1500, 4000]) {
      for (let base = 0; base < 8; base++) {
        for (const whole of buffers) {
          const view = whole.subarray(base + 8 * round, base + 8 * round + len + 12);
          for (const off of [0, 4, 5]) {
            const got = foldSum(onesSum(view, off, len, 0x1234));
            assertEquals(
              got,
              foldSum(reference(view.subarray(off), len, 0x1234)),
              `base ${base} off ${off} len ${len}`,
            );
          }
        }
      }
    }
  }
  // All-zero words fold to 0 as the byte loop does (a verify compares the fold with 0xffff).
  assertEquals(foldSum(onesSum(new Uint8Array(128))), 0);
});

Deno.test("checksum: RFC 1624 incremental update equals a full recomputation", () => {
  const rnd = seededRandom(11);
  for (let n = 0; n < 200; n++) {
    const buf = rnd(new Uint8Array(40));
    buf[10] = buf[11] = 0;
    const c = internetChecksum(buf);
    const word = 2 * (n % 20 === 5 ? 6 : n % 20);
    const old = (buf[word] << 8) | buf[word + 1];
    const nv = (n * 7919) & 0xffff;
    buf[word] = nv >> 8;
    buf[word + 1] = nv & 0xff;
    const updated = updateChecksum16(c, old, nv);
    buf[10] = buf[11] = 0;
    assertEquals(
      foldSum(updated) === 0xffff ? 0 : updated,
      internetChecksum(buf) === 0xffff ? 0 : internetChecksum(buf),
    );
  }
});

Deno.test("checksum: UDP over IPv4 pseudo-header matches a hand-computed value", () => {
  // 10.0.0.1:1234 -> 10.0.0.2:80, payload "hi": sum computed by hand below.
  const src = parseIpv4("10.0.0.1")!, dst = parseIpv4("10.0.0.2")!;
  const seg = buildUdpDatagram(1234, 80, new TextEncoder().encode("hi"));
  const pseudo = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 10;
  const udp = 1234 + 80 + 10 + 0 + 0x6869;
  assertEquals(transportChecksum(src, dst, 17, seg), finishChecksum(pseudo + udp));
  const c = transportChecksum(src, dst, 17, seg);
  seg[6] = c >> 8;
  seg[7] = c;
  assert(verifyTransportChecksum(src, dst, 17, seg));
  seg[9] ^= 1;
  assert(!verifyTransportChecksum(src, dst, 17, seg));
});

Deno.test("ipv4: build/parse round trip, flags, fragment offset", () => {
  const src = parseIpv4("192.0.2.1")!, dst = parseIpv4("198.51.100.7")!;
  const p = buildIpv4Packet(
    { src, dst, protocol: 17, ttl: 33, ident: 0xbeef, dontFragment: true },
    new Uint8Array(12),
  );
  const v = Ipv4Packet.parse(p)!;
  assert(v);
  assertEquals(v.version, 4);
  assertEquals(v.headerLen, 20);
  assertEquals(v.totalLen, 32);
  assertEquals(v.ttl, 33);
  assertEquals(v.ident, 0xbeef);
  assertEquals(v.protocol, 17);
  assert(v.dontFragment && !v.moreFragments && !v.isFragment);
  assertEquals(v.src, src);
  assertEquals(v.dst, dst);
  assertEquals(v.srcU32, 0xc0000201);
  assertEquals(v.payload.length, 12);
  assert(v.verifyChecksum());
  p[7] = 3; // offset 3 units = 24 bytes
  p[6] = 0x20; // MF
  v.fillChecksum();
  assert(v.isFragment && v.moreFragments);
  assertEquals(v.fragmentOffset, 24);
  assert(v.verifyChecksum());
});

Deno.test("ipv4: checkLen rejects short buffers, bad IHL, bad total length; allows link padding", () => {
  const p = buildIpv4Packet(
    { src: new Uint8Array(4), dst: new Uint8Array(4), protocol: 1 },
    new Uint8Array(8),
  );
  assert(Ipv4Packet.checkLen(p));
  for (let n = 0; n < p.length; n++) assert(!Ipv4Packet.checkLen(p.subarray(0, n)), `len ${n}`);
  const padded = new Uint8Array(p.length + 10);
  padded.set(p);
  assert(Ipv4Packet.checkLen(padded));
  assertEquals(new Ipv4Packet(padded).payload.length, 8);
  const bad = p.slice();
  bad[0] = 0x44; // IHL 4
  assert(!Ipv4Packet.checkLen(bad));
  bad[0] = 0x4f; // IHL 15 = 60 > total length 28
  assert(!Ipv4Packet.checkLen(bad));
  bad[0] = 0x65;
  assert(!Ipv4Packet.checkLen(bad));
  const big = p.slice();
  big[3] = 200;
  assert(!Ipv4Packet.checkLen(big));
});

Deno.test("ipv4: header with options: payload starts after them", () => {
  const buf = new Uint8Array(24 + 4);
  writeIpv4Header(buf, 0, { src: new Uint8Array(4), dst: new Uint8Array(4), protocol: 17, payloadLen: 8 });
  buf[0] = 0x46;
  buf[3] = 28;
  buf.set([1, 1, 1, 0], 20); // NOP NOP NOP EOL
  buf.set([9, 9, 9, 9], 24);
  const v = new Ipv4Packet(buf);
  v.fillChecksum();
  assert(Ipv4Packet.checkLen(buf) && v.verifyChecksum());
  assertEquals(v.payload, new Uint8Array([9, 9, 9, 9]));
});

Deno.test("address text: IPv4 and IPv6 parse/format (RFC 5952)", () => {
  assertEquals(formatIpv4(parseIpv4("10.77.0.2")!), "10.77.0.2");
  for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "1.2.3.4.5", "a.b.c.d", ""]) {
    assertEquals(parseIpv4(bad), null, bad);
  }
  const cases: [string, string][] = [
    ["fd77::2", "fd77::2"],
    ["FD77:0:0:0:0:0:0:2", "fd77::2"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["2001:db8::", "2001:db8::"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
    ["::ffff:10.0.0.1", "::ffff:10.0.0.1"],
  ];
  for (const [input, want] of cases) assertEquals(formatIpv6(parseIpv6(input)!), want, input);
  for (
    const bad of ["1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", ":", "1:2:3:4:5:6:7", "fe80::1%eth0"]
  ) {
    assertEquals(parseIpv6(bad), null, bad);
  }
});

Deno.test("ipv6: build/parse round trip and checkLen", () => {
  const src = parseIpv6("fd77::1")!, dst = parseIpv6("fd77::2")!;
  const p = buildIpv6Packet(
    { src, dst, nextHeader: 17, hopLimit: 9, trafficClass: 0xab, flowLabel: 0x12345 },
    new Uint8Array(8),
  );
  const v = Ipv6Packet.parse(p)!;
  assert(v);
  assertEquals(v.payloadLen, 8);
  assertEquals(v.nextHeader, 17);
  assertEquals(v.hopLimit, 9);
  assertEquals(v.trafficClass, 0xab);
  assertEquals(v.flowLabel, 0x12345);
  assertEquals(v.src, src);
  assertEquals(v.dst, dst);
  for (let n = 0; n < p.length; n++) assert(!Ipv6Packet.checkLen(p.subarray(0, n)), `len ${n}`);
});

Deno.test("ipv6: extension header walk (hop-by-hop, routing, dest opts, fragment) and malformed chains", () => {
  const src = parseIpv6("fd77::1")!, dst = parseIpv6("fd77::2")!;
  // HBH(8) -> Routing(16) -> DestOpts(8) -> Fragment(8) -> UDP
  const ext = new Uint8Array(8 + 16 + 8 + 8 + 8);
  ext[0] = 43; // HBH next = routing
  ext[1] = 0;
  ext[8] = 60; // routing next = dest opts
  ext[9] = 1; // 16 bytes
  ext[24] = 44; // dest opts next = fragment
  ext[32] = 17; // fragment next = UDP, offset 0, M=1
  ext[35] = 1;
  const p = buildIpv6Packet({ src, dst, nextHeader: 0 }, ext);
  const chain = newHeaderChain();
  assert(walkExtensionHeaders(p, p.length, chain));
  assertEquals(chain.protocol, 17);
  assertEquals(chain.offset, 40 + 40);
  assertEquals(chain.fragmentHeaderOffset, 40 + 32);
  assertEquals(chain.fragmentNextFieldOffset, 40 + 24);
  // Truncated inside the routing header.
  assert(!walkExtensionHeaders(p, 40 + 12, chain));
  // Hop-by-hop not first.
  const bad = p.slice();
  bad[40 + 8] = 0;
  assert(!walkExtensionHeaders(bad, bad.length, chain));
  // Non-first fragment: the walk stops at the fragment's payload.
  const nf = p.slice();
  nf[40 + 34] = 0;
  nf[40 + 35] = 8 | 1;
  assert(walkExtensionHeaders(nf, nf.length, chain));
  assertEquals(chain.offset, 40 + 40);
  // A chain of 17 destination-options headers exceeds the walk bound.
  const many = new Uint8Array(17 * 8);
  for (let i = 0; i < 17; i++) many[i * 8] = 60;
  const long = buildIpv6Packet({ src, dst, nextHeader: 60 }, many);
  assert(!walkExtensionHeaders(long, long.length, chain));
});

Deno.test("icmp: echo v4/v6 checksums, error quoting limits", () => {
  const e4 = buildIcmpEcho(ICMPV4_ECHO_REQUEST, 0x1234, 7, new Uint8Array([1, 2, 3]));
  const m = IcmpMessage.parse(e4)!;
  assert(m.verifyV4());
  assertEquals([m.type, m.code, m.ident, m.seq], [8, 0, 0x1234, 7]);
  assertEquals(m.body, new Uint8Array([1, 2, 3]));
  const src = parseIpv6("fd77::1")!, dst = parseIpv6("fd77::2")!;
  const e6 = new IcmpMessage(buildIcmpEcho(ICMPV6_ECHO_REQUEST, 1, 2, new Uint8Array(5), { src, dst }));
  assert(e6.verifyV6(src, dst));
  assert(!e6.verifyV6(dst, dst));
  const err4 = buildIcmpError(ICMPV4_DEST_UNREACHABLE, 4, new Uint8Array(2000), 1280);
  assertEquals(err4.length, 576 - 20);
  assertEquals(new IcmpMessage(err4).v4NextHopMtu, 1280);
  assert(new IcmpMessage(err4).verifyV4());
  const err6 = new IcmpMessage(
    buildIcmpError(ICMPV6_PACKET_TOO_BIG, 0, new Uint8Array(2000), 1300, { src, dst }),
  );
  assertEquals(err6.buf.length, 1280 - 40);
  assertEquals(err6.v6Mtu, 1300);
  assert(err6.verifyV6(src, dst));
  assertEquals(IcmpMessage.parse(new Uint8Array(7)), null);
});

Deno.test("udp: view round trip and length checks", () => {
  const d = buildUdpDatagram(53, 40000, new Uint8Array([7, 8, 9]));
  const v = UdpDatagram.parse(d)!;
  assertEquals([v.srcPort, v.dstPort, v.length, v.checksum], [53, 40000, 11, 0]);
  assertEquals(v.payload, new Uint8Array([7, 8, 9]));
  assert(!UdpDatagram.checkLen(d.subarray(0, 7)));
  assert(!UdpDatagram.checkLen(d.subarray(0, 10)));
  const bad = d.slice();
  bad[5] = 4;
  assert(!UdpDatagram.checkLen(bad));
});

Deno.test("ipv6: options scanned: unknown discard-type options reported, overruns rejected", () => {
  const src = parseIpv6("fd77::1")!, dst = parseIpv6("fd77::2")!;
  const opts = (bytes: number[]) => {
    const ext = new Uint8Array(8);
    ext[0] = 17;
    ext.set(bytes, 2);
    return buildIpv6Packet({ src, dst, nextHeader: 60 }, ext);
  };
  const chain = newHeaderChain();
  assert(walkExtensionHeaders(opts([1, 4, 0, 0, 0, 0]), 48, chain)); // PadN
  assertEquals(chain.unknownOptionOffset, -1);
  assert(walkExtensionHeaders(opts([0, 0, 0x1e, 2, 0, 0]), 48, chain)); // unknown, action 00: skipped
  assertEquals(chain.unknownOptionOffset, -1);
  assert(walkExtensionHeaders(opts([0, 0x9e, 1, 0, 1, 0]), 48, chain)); // action 10
  assertEquals([chain.unknownOptionOffset, chain.unknownOptionAction], [43, 2]);
  assert(!walkExtensionHeaders(opts([1, 9, 0, 0, 0, 0]), 48, chain)); // PadN longer than the header
});
