import { assert, assertEquals, assertRejects, assertThrows } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { createLinkPair, type LinkPairOptions } from "../src/netstack/link.ts";
import { Stack } from "../src/netstack/stack.ts";
import { parseIp } from "../src/netstack/addr.ts";
import { buildIpv4Packet } from "../src/wire/ipv4.ts";
import { buildIpv6Packet } from "../src/wire/ipv6.ts";
import { buildUdpDatagram } from "../src/wire/udp.ts";
import { transportChecksum } from "../src/wire/checksum.ts";
import type { DatagramConn } from "../src/net/types.ts";

function pair(opts: LinkPairOptions & { udp?: { receiveQueueDatagrams?: number } } = {}) {
  const clock = opts.clock ?? new ManualClock();
  const [la, lb] = createLinkPair({ clock, random: seededRandom(41), ...opts });
  const a = new Stack(la, {
    addresses: [{ address: "10.77.0.2", prefix: 32 }, { address: "fd77::2", prefix: 128 }],
    clock,
    random: seededRandom(2),
    udp: opts.udp,
  });
  const b = new Stack(lb, {
    addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
    clock,
    random: seededRandom(3),
    udp: opts.udp,
  });
  return { a, b, la, lb };
}

/** Lets queued link deliveries and promise chains run (bounded). */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0));
}

function echo(sock: DatagramConn): void {
  (async () => {
    for (;;) {
      const [data, from] = await sock.receive();
      await sock.send(data, from);
    }
  })().catch(() => {/* socket closed */});
}

Deno.test("udp: echo over IPv4 and IPv6, addresses and ports reported", async () => {
  const { a, b } = pair();
  try {
    const server = b.listenUdp(undefined, 7);
    echo(server);
    const client = a.listenUdp(undefined, 0);
    assert(client.addr.port >= 49152);
    await client.send(new TextEncoder().encode("hello v4"), {
      transport: "udp",
      hostname: "10.77.0.1",
      port: 7,
    });
    const [d4, from4] = await client.receive();
    assertEquals(new TextDecoder().decode(d4), "hello v4");
    assertEquals(from4, { transport: "udp", hostname: "10.77.0.1", port: 7 });
    await client.send(new TextEncoder().encode("hello v6"), {
      transport: "udp",
      hostname: "fd77::1",
      port: 7,
    });
    const [d6, from6] = await client.receive();
    assertEquals(new TextDecoder().decode(d6), "hello v6");
    assertEquals(from6, { transport: "udp", hostname: "fd77::1", port: 7 });
    assertEquals(b.stats.udp.received, 2);
    assertEquals(a.stats.udp.sent, 2);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("udp: echo with 10% loss each way: every datagram that arrives is intact, losses counted", async () => {
  const { a, b, la, lb } = pair({ loss: 0.1 });
  try {
    const server = b.listenUdp("10.77.0.1", 5000);
    echo(server);
    const client = a.listenUdp("10.77.0.2", 0);
    const n = 300;
    for (let i = 0; i < n; i++) {
      const msg = new Uint8Array(100 + i);
      msg.fill(i & 0xff);
      await client.send(msg, { transport: "udp", hostname: "10.77.0.1", port: 5000 });
      if (i % 50 === 0) await settle(2);
    }
    await settle();
    const got = client.queued;
    for (let k = 0; k < got; k++) {
      const [d] = await client.receive();
      const i = d.length - 100;
      assert(i >= 0 && i < n && d.every((x) => x === (i & 0xff)), `datagram ${k} corrupt`);
    }
    assertEquals(got, lb.stats.delivered);
    assertEquals(la.stats.lost + la.stats.delivered, n);
    assert(la.stats.lost > 0 && lb.stats.lost > 0, "loss was injected");
    assert(got > n / 2, `too few echoes: ${got}`);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("udp: closed port answered with ICMP port unreachable; counted on both sides", async () => {
  const { a, b } = pair();
  try {
    const client = a.listenUdp(undefined, 0);
    await client.send(new Uint8Array(10), { transport: "udp", hostname: "10.77.0.1", port: 9999 });
    await client.send(new Uint8Array(10), { transport: "udp", hostname: "fd77::1", port: 9999 });
    await settle();
    assertEquals(b.stats.udp.noPort, 2);
    assertEquals(b.stats.icmp.errorsSent, 2);
    assertEquals(a.stats.icmp.errorsReceived, 2);
    assertEquals(a.stats.udp.icmpErrors, 2);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("udp: full receive queue drops and counts", async () => {
  const { a, b } = pair({ udp: { receiveQueueDatagrams: 4 } });
  try {
    const server = b.listenUdp(undefined, 53);
    const client = a.listenUdp(undefined, 0);
    for (let i = 0; i < 10; i++) {
      await client.send(new Uint8Array([i]), { transport: "udp", hostname: "10.77.0.1", port: 53 });
    }
    await settle();
    assertEquals(server.queued, 4);
    assertEquals(b.stats.udp.queueFull, 6);
    assertEquals((await server.receive())[0], new Uint8Array([0]));
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("udp: bind rules, errors, close rejects receive", async () => {
  const { a, b } = pair();
  try {
    const s1 = b.listenUdp("10.77.0.1", 1000);
    assertThrows(() => b.listenUdp("10.77.0.1", 1000), "already in use");
    assertThrows(() => b.listenUdp(undefined, 1000), "already in use");
    const s2 = b.listenUdp("fd77::1", 1000); // another address, same port: fine
    assertThrows(() => b.listenUdp("fd77::1", 1000), "udp bind: [fd77::1]:1000 already in use");
    assertThrows(() => b.listenUdp("10.9.9.9", 1), "not an address of this tunnel");
    assertThrows(() => b.listenUdp("nope", 1), "not a literal IP");
    assertThrows(() => b.listenUdp(undefined, 70000), "0..65535");
    const ports = new Set<number>();
    for (let i = 0; i < 50; i++) ports.add(b.listenUdp(undefined, 0).addr.port);
    assertEquals(ports.size, 50);
    await assertRejects(
      () => s1.send(new Uint8Array(65508), { transport: "udp", hostname: "10.77.0.2", port: 1 }),
      "exceed the largest UDP payload",
    );
    await assertRejects(
      () => s1.send(new Uint8Array(1), { transport: "udp", hostname: "host.example", port: 1 }),
      "literal IP",
    );
    await assertRejects(
      () => s1.send(new Uint8Array(1), { transport: "udp", hostname: "fd77::2", port: 1 }),
      "no local IPv6",
    );
    const pending = s2.receive();
    s2.close();
    await assertRejects(() => pending, "closed");
    await assertRejects(() => s2.receive(), "closed");
    s1.close();
    b.listenUdp(undefined, 1000).close(); // the port is free again
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("udp: checksum rules (bad dropped; zero allowed on IPv4 only; trailing bytes ignored)", async () => {
  const { a, b, la } = pair();
  try {
    const server = b.listenUdp(undefined, 4000);
    const s4 = parseIp("10.77.0.2")!, d4 = parseIp("10.77.0.1")!;
    const s6 = parseIp("fd77::2")!, d6 = parseIp("fd77::1")!;
    const seg = buildUdpDatagram(1, 4000, new Uint8Array([1, 2, 3]));
    // Zero checksum on IPv4: accepted.
    la.send(buildIpv4Packet({ src: s4, dst: d4, protocol: 17 }, seg));
    // Zero checksum on IPv6: dropped.
    la.send(buildIpv6Packet({ src: s6, dst: d6, nextHeader: 17 }, seg));
    // Wrong checksum on IPv4: dropped.
    const bad = seg.slice();
    bad[6] = 0x12;
    la.send(buildIpv4Packet({ src: s4, dst: d4, protocol: 17 }, bad));
    // Correct checksum, IP payload longer than the UDP length: the extra byte is not data.
    const withTail = new Uint8Array(seg.length + 1);
    withTail.set(seg);
    withTail[seg.length] = 0xee;
    const c = transportChecksum(s6, d6, 17, seg);
    withTail[6] = c >> 8;
    withTail[7] = c;
    la.send(buildIpv6Packet({ src: s6, dst: d6, nextHeader: 17 }, withTail));
    await settle();
    assertEquals(b.stats.rxDropped.badChecksum, 2);
    assertEquals(server.queued, 2);
    assertEquals((await server.receive())[0], new Uint8Array([1, 2, 3]));
    assertEquals((await server.receive())[0], new Uint8Array([1, 2, 3]));
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("udp: datagrams larger than the MTU are fragmented, reassembled, and follow the path MTU", async () => {
  const { a, b, la } = pair();
  try {
    const server = b.listenUdp(undefined, 7);
    echo(server);
    const client = a.listenUdp(undefined, 0);
    for (const [host, size] of [["10.77.0.1", 5000], ["fd77::1", 9000], ["10.77.0.1", 65507]] as const) {
      const msg = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
      await client.send(msg, { transport: "udp", hostname: host, port: 7 });
      const [back] = await client.receive();
      assertEquals(back, msg, `${size} bytes via ${host}`);
    }
    assert(la.stats.oversizeDropped === 0, "no fragment exceeds the link MTU");
    // After a packet-too-big, fragments follow the smaller path MTU.
    const seen: number[] = [];
    la.setReceiver((p) => seen.push(p.length));
    b.ip.updatePathMtu(parseIp("fd77::2")!, 1280);
    await server.send(new Uint8Array(3000), {
      transport: "udp",
      hostname: "fd77::2",
      port: client.addr.port,
    });
    await settle();
    assertEquals(seen.length, 3);
    assert(seen.every((n) => n <= 1280), `fragment sizes ${seen}`);
  } finally {
    a.close();
    b.close();
  }
});
