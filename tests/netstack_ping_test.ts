import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { createLinkPair, type LinkPairOptions } from "../src/netstack/link.ts";
import { Stack } from "../src/netstack/stack.ts";
import { formatIp, parseIp } from "../src/netstack/addr.ts";
import { buildIpv4Packet } from "../src/wire/ipv4.ts";
import { buildIcmpEcho, ICMPV4_ECHO_REQUEST } from "../src/wire/icmp.ts";

function pair(opts: LinkPairOptions = {}) {
  const clock = opts.clock ?? new ManualClock();
  const [la, lb] = createLinkPair({ clock, random: seededRandom(1), ...opts });
  const a = new Stack(la, {
    addresses: [{ address: "10.77.0.2", prefix: 32 }, { address: "fd77::2", prefix: 128 }],
    clock,
    random: seededRandom(2),
  });
  const b = new Stack(lb, {
    addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
    clock,
    random: seededRandom(3),
  });
  return { a, b, la, lb, clock: clock as ManualClock };
}

Deno.test("ping: IPv4 and IPv6 between two stacks over the in-memory link", async () => {
  const { a, b, la } = pair();
  try {
    assertEquals(await a.ping("10.77.0.1"), 0);
    assertEquals(await b.ping("10.77.0.2"), 0);
    assertEquals(await a.ping("fd77::1"), 0);
    assertEquals(await b.ping("[fd77::2]", { size: 1000 }), 0);
    assertEquals(a.stats.icmp.echoRequestsAnswered, 2);
    assertEquals(b.stats.icmp.echoRequestsAnswered, 2);
    assertEquals(a.stats.icmp.echoRepliesReceived, 2);
    assertEquals(la.stats.sent, 4);
    // Larger than the MTU: request and reply are fragmented and reassembled on both sides.
    assertEquals(await a.ping("10.77.0.1", { size: 3000 }), 0);
    assertEquals(await a.ping("fd77::1", { size: 5000 }), 0);
    assert(a.stats.txFragments >= 3 + 4 && b.stats.txFragments >= 3 + 4);
    assertEquals(b.stats.fragments.reassembled, 2);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("ping: rtt follows the link delay (ManualClock)", async () => {
  const clock = new ManualClock();
  const { a, b } = pair({ clock, delayMs: 25 });
  try {
    const p = a.ping("10.77.0.1");
    // Let the request travel, be answered, and the reply travel back.
    for (let i = 0; i < 4; i++) {
      await Promise.resolve();
      clock.advance(25);
      await new Promise((r) => setTimeout(r, 0));
    }
    assertEquals(await p, 50);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("ping: timeout when the link loses everything; no timers leak", async () => {
  const clock = new ManualClock();
  const { a, b } = pair({ clock, loss: 1 });
  try {
    const p = a.ping("10.77.0.1", { timeoutMs: 1000 });
    clock.advance(999);
    clock.advance(1);
    await assertRejects(() => p, "no reply within 1000 ms");
    assertEquals(a.ip.icmp.pendingPings, 0);
    assertEquals(clock.pendingTimers, 0);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("ping: invalid targets and oversize fail fast with clear errors", async () => {
  const { a, b } = pair();
  const [lc] = createLinkPair({ clock: new ManualClock() });
  const v4only = new Stack(lc, {
    addresses: [{ address: "10.0.0.9", prefix: 32 }],
    clock: new ManualClock(),
  });
  try {
    await assertRejects(() => a.ping("example.com"), "not a literal IP");
    await assertRejects(() => a.ping("10.77.0.1", { size: 70000 }), "not in 0..65507");
    await assertRejects(() => v4only.ping("fd77::1"), "no IPv6 address");
  } finally {
    a.close();
    b.close();
    v4only.close();
  }
});

Deno.test("ping: close rejects pending pings", async () => {
  const clock = new ManualClock();
  const { a, b } = pair({ clock, loss: 1 });
  const p = a.ping("fd77::1");
  a.close();
  b.close();
  await assertRejects(() => p, "stack closed");
  assertEquals(clock.pendingTimers, 0);
});

Deno.test("ping: echo request with a bad ICMP checksum is dropped and counted, not answered", async () => {
  const { a, b, la } = pair();
  try {
    const msg = buildIcmpEcho(ICMPV4_ECHO_REQUEST, 1, 1, new Uint8Array(4));
    msg[2] ^= 0xff;
    la.send(buildIpv4Packet({ src: parseIp("10.77.0.2")!, dst: parseIp("10.77.0.1")!, protocol: 1 }, msg));
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(b.stats.rxDropped.badChecksum, 1);
    assertEquals(b.stats.icmp.echoRequestsAnswered, 0);
    // Not for us:
    la.send(buildIpv4Packet({ src: parseIp("10.77.0.2")!, dst: parseIp("10.77.0.99")!, protocol: 1 }, msg));
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(b.stats.rxDropped.notForUs, 1);
    assert(b.stats.rxPackets === 2);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("stack: source address follows the subnet of the destination (several addresses per family)", () => {
  const [l] = createLinkPair({ clock: new ManualClock() });
  const s = new Stack(l, {
    addresses: [
      { address: "10.0.0.2", prefix: 32 },
      { address: "192.168.5.2", prefix: 24 },
      { address: "10.9.0.2", prefix: 16 },
      { address: "fd00::2", prefix: 64 },
      { address: "fd01::2", prefix: 64 },
    ],
    clock: new ManualClock(),
  });
  try {
    const src = (d: string) => formatIp(s.ip.sourceFor(parseIp(d)!)!);
    assertEquals(src("192.168.5.77"), "192.168.5.2");
    assertEquals(src("10.9.200.1"), "10.9.0.2");
    assertEquals(src("8.8.8.8"), "10.0.0.2", "no subnet matches: the first address");
    assertEquals(src("fd01::99"), "fd01::2");
    assertEquals(src("2001:db8::1"), "fd00::2");
    assertEquals(s.addresses, ["10.0.0.2", "192.168.5.2", "10.9.0.2", "fd00::2", "fd01::2"]);
  } finally {
    s.close();
  }
});
