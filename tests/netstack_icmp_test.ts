import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { createLinkPair } from "../src/netstack/link.ts";
import { Stack } from "../src/netstack/stack.ts";
import { parseIp } from "../src/netstack/addr.ts";
import { PMTU_EXPIRY_MS } from "../src/netstack/ip.ts";
import { buildIpv4Packet, Ipv4Packet } from "../src/wire/ipv4.ts";
import { buildIpv6Packet } from "../src/wire/ipv6.ts";
import {
  buildIcmpError,
  IcmpMessage,
  ICMPV4_CODE_FRAGMENTATION_NEEDED,
  ICMPV4_CODE_PROTOCOL_UNREACHABLE,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV6_CODE_UNRECOGNIZED_NEXT_HEADER,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
} from "../src/wire/icmp.ts";
import { buildUdpDatagram } from "../src/wire/udp.ts";
import type { TransportHandler } from "../src/netstack/types.ts";

const A4 = parseIp("10.77.0.2")!, B4 = parseIp("10.77.0.1")!;
const A6 = parseIp("fd77::2")!, B6 = parseIp("fd77::1")!;

function setup(opts: { icmpErrorsPerSec?: number } = {}) {
  const clock = new ManualClock();
  const [la, lb] = createLinkPair({ clock, mtu: 1420 });
  const b = new Stack(lb, {
    addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
    clock,
    random: seededRandom(3),
    icmpErrorsPerSec: opts.icmpErrorsPerSec,
  });
  const out: Uint8Array[] = [];
  la.setReceiver((p) => out.push(p));
  const errors: { kind: string; src: Uint8Array; dst: Uint8Array; quoted: Uint8Array; mtu?: number }[] = [];
  const fakeTcp: TransportHandler = {
    deliver() {},
    deliverIcmpError(kind, src, dst, quoted, mtu) {
      errors.push({ kind, src: src.slice(), dst: dst.slice(), quoted: quoted.slice(), mtu });
    },
  };
  b.ip.register(6, fakeTcp);
  return { b, clock, out, errors };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}

/** A TCP segment that b (10.77.0.1 / fd77::1) sent to a, as a router would quote it. */
function ourTcpPacket(v6: boolean, size = 1400): Uint8Array {
  const seg = new Uint8Array(size - (v6 ? 40 : 20));
  seg[0] = 0x1f; // src port 8080
  seg[1] = 0x90;
  seg[2] = 0x00;
  seg[3] = 0x50;
  seg[12] = 0x50;
  return v6
    ? buildIpv6Packet({ src: B6, dst: A6, nextHeader: 6 }, seg)
    : buildIpv4Packet({ src: B4, dst: A4, protocol: 6, dontFragment: true }, seg);
}

Deno.test("icmp: IPv4 fragmentation-needed lowers the path MTU and reaches the transport", () => {
  const { b, errors } = setup();
  try {
    assertEquals(b.ip.mtuFor(A4), 1420);
    const err = buildIcmpError(
      ICMPV4_DEST_UNREACHABLE,
      ICMPV4_CODE_FRAGMENTATION_NEEDED,
      ourTcpPacket(false),
      1300,
    );
    b.ip.receive(buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, err));
    assertEquals(b.ip.mtuFor(A4), 1300);
    assertEquals(b.ip.mtuFor(parseIp("10.77.0.3")!), 1420, "other destinations keep the link MTU");
    assertEquals(errors.length, 1);
    assertEquals(errors[0].kind, "too-big");
    assertEquals(errors[0].mtu, 1300);
    assertEquals(errors[0].src, B4);
    assertEquals(errors[0].dst, A4);
    assertEquals(errors[0].quoted.subarray(0, 4), new Uint8Array([0x1f, 0x90, 0, 0x50]));
    assertEquals(b.stats.icmp.pmtuUpdates, 1);
    // A higher value never raises it; a tiny one is floored.
    b.ip.receive(
      buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, buildIcmpError(3, 4, ourTcpPacket(false), 1400)),
    );
    assertEquals(b.ip.mtuFor(A4), 1300);
    b.ip.receive(
      buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, buildIcmpError(3, 4, ourTcpPacket(false), 100)),
    );
    assertEquals(b.ip.mtuFor(A4), 552);
  } finally {
    b.close();
  }
});

Deno.test("icmp: IPv6 packet-too-big (floored at 1280) and expiry after 10 minutes", () => {
  const { b, clock, errors } = setup();
  try {
    const ptb = buildIcmpError(ICMPV6_PACKET_TOO_BIG, 0, ourTcpPacket(true), 1000, { src: A6, dst: B6 });
    b.ip.receive(buildIpv6Packet({ src: A6, dst: B6, nextHeader: 58 }, ptb));
    assertEquals(b.ip.mtuFor(A6), 1280);
    assertEquals(errors.length, 1);
    assertEquals(errors[0].kind, "too-big");
    assertEquals(errors[0].mtu, 1280);
    clock.advance(PMTU_EXPIRY_MS);
    assertEquals(b.ip.mtuFor(A6), 1420);
  } finally {
    b.close();
  }
});

Deno.test("icmp: errors quoting packets we did not send are dropped as icmpInvalid", () => {
  const { b, errors } = setup();
  try {
    const notOurs = buildIpv4Packet({ src: A4, dst: B4, protocol: 6 }, new Uint8Array(40));
    b.ip.receive(buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, buildIcmpError(3, 4, notOurs, 600)));
    const truncated = buildIcmpError(3, 3, ourTcpPacket(false).subarray(0, 24));
    b.ip.receive(buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, truncated));
    assertEquals(b.stats.rxDropped.icmpInvalid, 2);
    assertEquals(errors.length, 0);
    assertEquals(b.ip.mtuFor(A4), 1420);
  } finally {
    b.close();
  }
});

Deno.test("icmp: unknown protocol answered with protocol unreachable / parameter problem", async () => {
  const { b, out } = setup();
  try {
    const p4 = buildIpv4Packet({ src: A4, dst: B4, protocol: 99 }, new Uint8Array(8));
    b.ip.receive(p4);
    b.ip.receive(buildIpv6Packet({ src: A6, dst: B6, nextHeader: 99 }, new Uint8Array(8)));
    await settle();
    assertEquals(b.stats.rxDropped.unknownProtocol, 2);
    assertEquals(out.length, 2);
    const r4 = new Ipv4Packet(out[0]);
    assert(r4.verifyChecksum());
    const m4 = new IcmpMessage(r4.payload);
    assertEquals([m4.type, m4.code], [ICMPV4_DEST_UNREACHABLE, ICMPV4_CODE_PROTOCOL_UNREACHABLE]);
    assert(m4.verifyV4());
    assertEquals(m4.body, p4);
    const m6 = new IcmpMessage(out[1].subarray(40));
    assertEquals([m6.type, m6.code, m6.v6Mtu], [
      ICMPV6_PARAMETER_PROBLEM,
      ICMPV6_CODE_UNRECOGNIZED_NEXT_HEADER,
      6,
    ]);
    assert(m6.verifyV6(B6, A6));
  } finally {
    b.close();
  }
});

Deno.test("icmp: errors are rate limited, and never sent about ICMP errors", async () => {
  const { b, out, clock } = setup({ icmpErrorsPerSec: 10 });
  try {
    for (let i = 0; i < 100; i++) {
      b.ip.receive(
        buildIpv4Packet({ src: A4, dst: B4, protocol: 17 }, buildUdpDatagram(1, 2000 + i, new Uint8Array(4))),
      );
    }
    await settle();
    assertEquals(b.stats.icmp.errorsSent, 50);
    assertEquals(b.stats.icmp.errorsRateLimited, 50);
    clock.advance(1000);
    b.ip.receive(
      buildIpv4Packet({ src: A4, dst: B4, protocol: 17 }, buildUdpDatagram(1, 3000, new Uint8Array(4))),
    );
    assertEquals(b.stats.icmp.errorsSent, 51);
    // An ICMP error about something we never sent: no error in reply.
    const before = b.stats.icmp.errorsSent;
    b.ip.receive(
      buildIpv4Packet({ src: A4, dst: B4, protocol: 1 }, buildIcmpError(3, 3, new Uint8Array(28))),
    );
    assertEquals(b.stats.icmp.errorsSent, before);
    await settle();
    assertEquals(out.length, 51);
  } finally {
    b.close();
  }
});

Deno.test("icmp: unknown IPv6 option with action 10 gets parameter problem code 2; own source dropped", async () => {
  const { b, out } = setup();
  try {
    const ext = new Uint8Array(16);
    ext[0] = 17;
    ext.set([0x9e, 1, 0], 2); // unknown option, action 10
    ext[5] = 1; // PadN filling the rest
    ext[6] = 0;
    b.ip.receive(buildIpv6Packet({ src: A6, dst: B6, nextHeader: 60 }, ext));
    await settle();
    assertEquals(b.stats.rxDropped.unknownOption, 1);
    assertEquals(out.length, 1);
    const m = new IcmpMessage(out[0].subarray(40));
    assertEquals([m.type, m.code, m.v6Mtu], [ICMPV6_PARAMETER_PROBLEM, 2, 42]);
    b.ip.receive(
      buildIpv4Packet({ src: B4, dst: B4, protocol: 17 }, buildUdpDatagram(1, 2, new Uint8Array(1))),
    );
    b.ip.receive(
      buildIpv6Packet({ src: B6, dst: B6, nextHeader: 17 }, buildUdpDatagram(1, 2, new Uint8Array(1))),
    );
    assertEquals(b.stats.rxDropped.badSource, 2);
  } finally {
    b.close();
  }
});
