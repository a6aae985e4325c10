/** TCP state machine tests over the fake IP link (ManualClock, deterministic). */
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { TcpLayer, type TcpOptions, TcpState } from "../src/netstack/tcp/mod.ts";
import type { TcpConnection } from "../src/netstack/tcp/connection.ts";
import { drive, elapse, FakeIpLink, type LinkFaults } from "../src/netstack/tcp/testing.ts";
import {
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  TcpHeaderOptions,
  TcpSegmentView,
  writeTcpHeader,
} from "../src/wire/tcp.ts";
import type { Conn } from "../src/net/types.ts";

interface Pair {
  clock: ManualClock;
  link: FakeIpLink;
  a: TcpLayer;
  b: TcpLayer;
}

function pair(opts: Partial<TcpOptions> = {}, faults: LinkFaults = {}, v6 = false): Pair {
  const clock = new ManualClock();
  const link = new FakeIpLink(clock, faults, v6);
  const a = new TcpLayer(link.senders[0], { clock, random: seededRandom(11), ...opts });
  const b = new TcpLayer(link.senders[1], { clock, random: seededRandom(22), ...opts });
  link.attach(0, a);
  link.attach(1, b);
  return { clock, link, a, b };
}

async function settle<T>(p: Pair, promise: Promise<T>, maxMs = 60_000): Promise<T> {
  let done = false, value: T | undefined, error: unknown;
  promise.then((v) => {
    done = true;
    value = v;
  }, (e) => {
    done = true;
    error = e;
  });
  const ok = await drive(p.link, () => done, maxMs);
  if (!ok) throw new Error("did not settle in virtual time");
  if (error) throw error;
  return value as T;
}

async function connected(p: Pair, port = 80): Promise<{ client: TcpConnection; server: TcpConnection }> {
  const l = p.b.listen(undefined, port);
  const acc = l.accept();
  const client = await settle(p, p.a.connect(p.link.addrs[1], port)) as TcpConnection;
  const server = await settle(p, acc) as TcpConnection;
  return { client, server };
}

async function readAll(p: Pair, c: Conn, maxMs = 60_000): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  const task = (async () => {
    for (;;) {
      const n = await c.read(buf);
      if (n === null) return;
      chunks.push(buf.slice(0, n));
    }
  })();
  await settle(p, task, maxMs);
  let len = 0;
  for (const c of chunks) len += c.length;
  const out = new Uint8Array(len);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

async function writeAll(c: Conn, data: Uint8Array): Promise<void> {
  let o = 0;
  while (o < data.length) o += await c.write(data.subarray(o));
}

function pattern(n: number, seed = 1): Uint8Array {
  return seededRandom(seed)(new Uint8Array(n));
}

function parse(seg: Uint8Array): { v: TcpSegmentView; o: TcpHeaderOptions } {
  const v = new TcpSegmentView(seg);
  const o = new TcpHeaderOptions();
  v.parseOptions(o);
  return { v, o };
}

Deno.test("tcp: handshake negotiates MSS, window scaling, SACK and timestamps", async () => {
  const p = pair();
  const syns: TcpHeaderOptions[] = [];
  p.link.tap = (_side, seg) => {
    const { v, o } = parse(seg);
    if (v.flags & TCP_SYN) syns.push(Object.assign(new TcpHeaderOptions(), o, { sackBlocks: [] }));
    return true;
  };
  const { client, server } = await connected(p);
  assertEquals(syns.length, 2);
  assertEquals(syns[0].mss, 1460);
  assertEquals(syns[0].sackPermitted, true);
  assertEquals(syns[0].hasTimestamp, true);
  assertEquals(syns[0].windowShift, 5); // 1 MiB buffer >> 5 fits in 16 bits
  assertEquals(client.state, TcpState.Established);
  assertEquals(server.state, TcpState.Established);
  assertEquals(client.negotiated, { mss: 1448, sack: true, timestamps: true, sndShift: 5, rcvShift: 5 });
  assertEquals(client.remoteAddr, { transport: "tcp", hostname: "10.0.0.2", port: 80 });
  assertEquals(server.localAddr.port, 80);
  assertEquals(server.remoteAddr.port, client.localAddr.port);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: data both ways, then half-close: the other side keeps sending and every byte arrives", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  const up = pattern(300_000, 1), down = pattern(500_000, 2);
  const w1 = writeAll(client, up).then(() => client.closeWrite());
  const gotUp = await readAll(p, server);
  await settle(p, w1);
  assertEquals(gotUp.length, up.length);
  assertEquals(gotUp, up);
  await elapse(p.link, 5);
  assertEquals(client.state, TcpState.FinWait2);
  assertEquals(server.state, TcpState.CloseWait);
  // Half-closed: the server still sends a lot after the client's FIN.
  const w2 = writeAll(server, down).then(() => server.closeWrite());
  const gotDown = await readAll(p, client);
  await settle(p, w2);
  assertEquals(gotDown, down);
  await elapse(p.link, 10);
  assertEquals(client.state, TcpState.TimeWait);
  assertEquals(server.state, TcpState.Closed);
  p.a.close();
  p.b.close();
});

/** Builds a bare segment (no options) for forging. */
function forge(
  f: { sport: number; dport: number; seq: number; ack: number; flags: number; window?: number },
): Uint8Array {
  const buf = new Uint8Array(20);
  writeTcpHeader(buf, 0, {
    srcPort: f.sport,
    dstPort: f.dport,
    seq: f.seq,
    ack: f.ack,
    flags: f.flags,
    window: f.window ?? 1000,
  });
  return buf;
}

/** Every segment on the link with the virtual time it was sent. */
function record(p: Pair): { side: 0 | 1; at: number; v: TcpSegmentView; o: TcpHeaderOptions; len: number }[] {
  const log: { side: 0 | 1; at: number; v: TcpSegmentView; o: TcpHeaderOptions; len: number }[] = [];
  const prev = p.link.tap;
  p.link.tap = (side, seg) => {
    const copy = seg.slice();
    const { v, o } = parse(copy);
    log.push({ side, at: p.clock.now(), v, o, len: v.payloadLength });
    return prev ? prev(side, seg) : true;
  };
  return log;
}

Deno.test("tcp: connect to a port with no listener is refused (RST)", async () => {
  const p = pair();
  p.b.listen(undefined, 81);
  await assertRejects(() => settle(p, p.a.connect(p.link.addrs[1], 80)), "connection refused");
  assertEquals(p.b.stats.noConnection, 1);
  assertEquals(p.b.stats.resetsSent, 1);
  assertEquals(p.a.stats.connections, 0);
  p.a.close();
  p.b.close();
});

Deno.test("tcp: simultaneous open reaches ESTABLISHED on both sides and carries data", async () => {
  const p = pair();
  const ca = p.a.connect(p.link.addrs[1], 5001, { srcPort: 5000 });
  const cb = p.b.connect(p.link.addrs[0], 5000, { srcPort: 5001 });
  const [a, b] = await settle(p, Promise.all([ca, cb])) as TcpConnection[];
  assertEquals(a.state, TcpState.Established);
  assertEquals(b.state, TcpState.Established);
  const msg = pattern(10_000, 7);
  await settle(p, writeAll(a, msg).then(() => a.closeWrite()));
  assertEquals(await readAll(p, b), msg);
  a.close();
  b.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: simultaneous close goes through CLOSING to TIME_WAIT, which expires after timeWaitMs", async () => {
  const p = pair({ timeWaitMs: 5_000 });
  const { client, server } = await connected(p);
  await client.closeWrite();
  await server.closeWrite(); // both FINs cross on the link
  assertEquals(client.state, TcpState.FinWait1);
  assertEquals(server.state, TcpState.FinWait1);
  await elapse(p.link, 20);
  assertEquals(client.state, TcpState.TimeWait);
  assertEquals(server.state, TcpState.TimeWait);
  assertEquals(await client.read(new Uint8Array(10)), null);
  assertEquals(await server.read(new Uint8Array(10)), null);
  await elapse(p.link, 4_900);
  assertEquals(client.state, TcpState.TimeWait);
  await elapse(p.link, 200);
  assertEquals(client.state, TcpState.Closed);
  assertEquals(server.state, TcpState.Closed);
  assertEquals(p.a.stats.connections, 0);
  assertEquals(p.b.stats.connections, 0);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: RFC 5961 - in-window RST with the wrong sequence number gets a challenge ACK, exact one resets", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  const log = record(p);
  const rst = (seq: number) =>
    p.link.inject(
      1,
      forge({ sport: server.localPort, dport: client.localPort, seq, ack: 0, flags: TCP_RST }),
    );
  rst((client.rcvNxt + 1000) >>> 0);
  await elapse(p.link, 5);
  assertEquals(client.state, TcpState.Established);
  assertEquals(p.a.stats.challengeAcks, 1);
  const challenge = log.find((e) => e.side === 0 && (e.v.flags & TCP_ACK) && !(e.v.flags & TCP_RST));
  assert(challenge, "no challenge ACK sent");
  assertEquals(challenge!.v.ack, client.rcvNxt);
  // A SYN on an established connection is challenged too, never accepted.
  p.link.inject(
    1,
    forge({ sport: server.localPort, dport: client.localPort, seq: 12345, ack: 0, flags: TCP_SYN }),
  );
  await elapse(p.link, 5);
  assertEquals(client.state, TcpState.Established);
  assertEquals(p.a.stats.challengeAcks, 2);
  // Outside the window: silently dropped.
  rst((client.rcvNxt + 0x40000000) >>> 0);
  await elapse(p.link, 5);
  assertEquals(p.a.stats.challengeAcks, 2);
  // Exactly RCV.NXT: reset.
  const pending = client.read(new Uint8Array(10));
  rst(client.rcvNxt);
  await assertRejects(() => settle(p, pending), "reset");
  assertEquals(client.state, TcpState.Closed);
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: RTO follows RFC 6298 (min 200 ms) and doubles on each retransmission; SYN retries time out", async () => {
  const p = pair({ synRetries: 3 });
  const { client } = await connected(p);
  const log = record(p);
  let drop = true;
  const prev = p.link.tap!;
  p.link.tap = (side, seg) => prev(side, seg) && !(drop && side === 0);
  await client.write(pattern(100));
  await elapse(p.link, 6_500);
  const sends = log.filter((e) => e.side === 0 && e.len === 100).map((e) => e.at);
  const gaps = sends.slice(1).map((t, i) => t - sends[i]);
  // A tail loss probe just before the first RTO, then the RTO series: 200 ms (the minimum), doubling.
  assertEquals(gaps, [199, 200, 400, 800, 1600, 3200]);
  assertEquals(p.a.stats.timeouts, 5);
  drop = false;
  await elapse(p.link, 7_000);
  assertEquals(client.sndUna, client.sndMax, "data acknowledged after the path healed");

  // SYN to a black hole: retransmitted after 1, 2, 4 s (initial RTO 1 s), then the connect fails.
  const q = pair({ synRetries: 3 });
  const qlog = record(q);
  q.link.tap = ((t) => (side: 0 | 1, seg: Uint8Array) => t(side, seg) && side !== 0)(q.link.tap!);
  const start = q.clock.now();
  await assertRejects(() => settle(q, q.a.connect(q.link.addrs[1], 80)), "timed out");
  const syns = qlog.filter((e) => e.side === 0 && (e.v.flags & TCP_SYN)).map((e) => e.at - start);
  assertEquals(syns, [0, 1000, 3000, 7000]);
  assertEquals(q.clock.now() - start >= 15_000, true);
  p.a.close();
  p.b.close();
  q.a.close();
  q.b.close();
});

Deno.test("tcp: SACK recovery retransmits only the lost segments, without a timeout", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  const log = record(p);
  const lostIndex = new Set([3, 7, 8, 20]);
  let dataSeen = 0;
  const dropped: number[] = [];
  const firstSent = new Set<number>();
  const prev = p.link.tap!;
  p.link.tap = (side, seg) => {
    if (!prev(side, seg)) return false;
    const v = new TcpSegmentView(seg);
    if (side !== 0 || v.payloadLength === 0 || firstSent.has(v.seq)) return true;
    // Only first transmissions count (and are dropped): every retransmission gets through.
    firstSent.add(v.seq);
    if (lostIndex.has(dataSeen++)) {
      dropped.push(v.seq);
      return false;
    }
    return true;
  };
  const data = pattern(60 * 1448, 9);
  const w = writeAll(client, data).then(() => client.closeWrite());
  assertEquals(await readAll(p, server), data);
  await settle(p, w);
  const seen = new Map<number, number>();
  for (const e of log) if (e.side === 0 && e.len > 0) seen.set(e.v.seq, (seen.get(e.v.seq) ?? 0) + 1);
  const resent = [...seen.entries()].filter(([, n]) => n > 1).map(([s]) => s).sort((a, b) => a - b);
  assertEquals(resent, dropped.slice().sort((a, b) => a - b));
  assertEquals(p.a.stats.timeouts, 0);
  assertEquals(p.a.stats.retransmittedSegments, dropped.length);
  assert(p.a.stats.fastRecoveries >= 1);
  // The receiver sent SACK blocks.
  assert(log.some((e) => e.side === 1 && e.o.sackBlocks.length > 0), "no SACK blocks seen");
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: zero window is advertised, probed, and reopened when the reader reads", async () => {
  const p = pair({ receiveBufferSize: 32 * 1024 });
  const { client, server } = await connected(p);
  const log = record(p);
  const data = pattern(200_000, 3);
  const w = writeAll(client, data);
  await elapse(p.link, 3_000);
  assert(
    log.some((e) => e.side === 1 && e.v.window === 0 && !(e.v.flags & TCP_SYN)),
    "zero window not advertised",
  );
  // Probes: segments from the sender with SND.UNA-1 and no data.
  const probes = log.filter((e) => e.side === 0 && e.len === 0 && e.v.seq === ((client.sndUna - 1) >>> 0));
  assert(probes.length >= 2, `expected window probes, saw ${probes.length}`);
  assertEquals(client.state, TcpState.Established);
  const got = readAll(p, server);
  await settle(p, w.then(() => client.closeWrite()));
  assertEquals(await got, data);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: keepalive times out a dead peer after idle + count * interval; an alive peer answers", async () => {
  const p = pair({ keepAlive: true, keepAliveIdleMs: 10_000, keepAliveIntervalMs: 1_000, keepAliveCount: 3 });
  const { client, server } = await connected(p);
  // Alive: probes are answered for a long time.
  await elapse(p.link, 60_000);
  assertEquals(client.state, TcpState.Established);
  assertEquals(p.a.stats.keepaliveTimeouts, 0);
  // Dead: the server side drops off the network.
  p.link.tap = (side) => side === 0;
  const deadAt = p.clock.now();
  const pending = client.read(new Uint8Array(1));
  let failedAt = 0;
  pending.catch(() => failedAt = p.clock.now());
  await assertRejects(() => settle(p, pending, 60_000), "timed out");
  const after = failedAt - deadAt;
  // The last answer came at most one probe interval before the link died.
  assert(after >= 3_000 && after <= 10_000 + 3 * 1_000 + 5, `timed out after ${after} ms`);
  assertEquals(p.a.stats.keepaliveTimeouts, 1);
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: SYN flood is bounded by the SYN queue; with cookies off the excess is dropped", async () => {
  const clock = new ManualClock();
  const link = new FakeIpLink(clock);
  const b = new TcpLayer(link.senders[1], {
    clock,
    random: seededRandom(3),
    maxSynBacklog: 64,
    synAckRetries: 2,
    synCookies: false,
  });
  link.attach(1, b); // side 0 is a spoofing attacker whose SYN-ACKs go nowhere
  const l = b.listen(undefined, 80, { backlog: 8 });
  for (let i = 0; i < 5000; i++) {
    link.inject(0, forge({ sport: 1024 + i, dport: 80, seq: i * 7919, ack: 0, flags: TCP_SYN }));
  }
  await drive(link, () => link.pending === 0, 100);
  const tl = l as unknown as { halfOpen: number; queued: number };
  assertEquals(tl.halfOpen, 64);
  assertEquals(b.stats.synDropped, 5000 - 64);
  assertEquals(b.stats.connections, 64);
  assertEquals(b.bufferMemory(), 0, "half-open connections hold no buffers");
  // SYN-ACK retries (1 s, 2 s, then 4 s RTO) expire and the queue drains.
  await elapse(link, 8_000);
  assertEquals(tl.halfOpen, 0);
  assertEquals(b.stats.connections, 0);
  const a = new TcpLayer(link.senders[0], { clock, random: seededRandom(4) });
  link.attach(0, a);
  const acc = l.accept();
  const p: Pair = { clock, link, a, b };
  const c = await settle(p, p.a.connect(link.addrs[1], 80));
  const s = await settle(p, acc);
  c.close();
  s.close();
  a.close();
  b.close();
});

Deno.test("tcp: during a SYN flood SYN cookies let a real client in, options intact, no state per SYN", async () => {
  const clock = new ManualClock();
  const link = new FakeIpLink(clock);
  const b = new TcpLayer(link.senders[1], { clock, random: seededRandom(3), maxSynBacklog: 64 });
  link.attach(1, b);
  const l = b.listen(undefined, 80, { backlog: 8 });
  for (let i = 0; i < 5000; i++) {
    link.inject(0, forge({ sport: 1024 + i, dport: 80, seq: i * 7919, ack: 0, flags: TCP_SYN }));
  }
  await drive(link, () => link.pending === 0, 100);
  const tl = l as unknown as { halfOpen: number };
  assertEquals(tl.halfOpen, 64);
  assertEquals(b.stats.synCookiesSent, 5000 - 64);
  assertEquals(b.stats.connections, 64, "cookies keep no state");
  // The SYN queue is still full: a real client connects through a cookie.
  const a = new TcpLayer(link.senders[0], { clock, random: seededRandom(4) });
  link.attach(0, a);
  const p: Pair = { clock, link, a, b };
  const acc = l.accept();
  const client = await settle(p, p.a.connect(link.addrs[1], 80)) as TcpConnection;
  const server = await settle(p, acc) as TcpConnection;
  assertEquals(b.stats.synCookiesAccepted, 1);
  assertEquals(server.negotiated, { mss: 1448, sack: true, timestamps: true, sndShift: 5, rcvShift: 5 });
  const up = pattern(300_000, 1), down = pattern(300_000, 2);
  const w1 = writeAll(client, up).then(() => client.closeWrite());
  const w2 = writeAll(server, down).then(() => server.closeWrite());
  const [gotUp, gotDown] = await Promise.all([readAll(p, server), readAll(p, client)]);
  await settle(p, Promise.all([w1, w2]));
  assertEquals(gotUp, up);
  assertEquals(gotDown, down);
  // A forged ACK with a wrong cookie is answered with RST and creates nothing.
  const before = b.stats.connections;
  link.inject(0, forge({ sport: 999, dport: 80, seq: 1234, ack: 5678, flags: TCP_ACK }));
  await elapse(link, 5);
  assertEquals(b.stats.connections, before);
  assertEquals(b.stats.synCookiesAccepted, 1);
  a.close();
  b.close();
});

Deno.test("tcp: segments never exceed the MSS (link MTU 1280, IPv6, with SACK blocks on data)", async () => {
  const p = pair({}, { mtu: 1280, loss: 0.05, seed: 3 }, true);
  const log = record(p);
  const { client, server } = await connected(p);
  assertEquals(client.remoteAddr.hostname, "fd00::2");
  const up = pattern(400_000, 4), down = pattern(400_000, 5);
  const w1 = writeAll(client, up).then(() => client.closeWrite());
  const w2 = writeAll(server, down).then(() => server.closeWrite());
  const [gotUp, gotDown] = await Promise.all([readAll(p, server), readAll(p, client)]);
  await settle(p, Promise.all([w1, w2]));
  assertEquals(gotUp, up);
  assertEquals(gotDown, down);
  const maxSeg = Math.max(...log.map((e) => e.v.headerLength + e.len));
  assert(maxSeg <= 1280 - 40, `segment of ${maxSeg} bytes exceeds MTU 1280 minus the IPv6 header`);
  assert(
    log.some((e) => e.len > 0 && e.o.sackBlocks.length > 0),
    "expected data segments carrying SACK blocks",
  );
  p.a.close();
  p.b.close();
});

Deno.test("tcp: delayed ACK - one segment is acknowledged after 40 ms, two full segments at once", async () => {
  const p = pair();
  const { client } = await connected(p);
  const log = record(p);
  await client.write(pattern(100));
  await elapse(p.link, 100);
  const sent = log.find((e) => e.side === 0 && e.len === 100)!;
  const ack = log.find((e) => e.side === 1 && e.at > sent.at)!;
  assertEquals(ack.at - sent.at, 1 + 40); // one-way delay, then the delayed-ACK timer
  log.length = 0;
  await client.write(pattern(2 * 1448));
  await elapse(p.link, 100);
  const data = log.filter((e) => e.side === 0 && e.len > 0);
  assertEquals(data.length, 2);
  const ack2 = log.find((e) => e.side === 1)!;
  assertEquals(ack2.at - data[1].at, 1);
  assertEquals(ack2.v.ack, client.sndMax);
  p.a.close();
  p.b.close();
});

Deno.test("tcp: Nagle (noDelay=false) holds small writes while data is unacknowledged", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  client.setNoDelay(false);
  const log = record(p);
  for (let i = 0; i < 10; i++) await client.write(Uint8Array.of(i));
  await elapse(p.link, 200);
  const segs = log.filter((e) => e.side === 0 && e.len > 0).map((e) => e.len);
  assertEquals(segs, [1, 9]);
  const buf = new Uint8Array(20);
  assertEquals(await settle(p, server.read(buf)), 10);
  // Default (noDelay) sends each write at once.
  client.setNoDelay(true);
  log.length = 0;
  for (let i = 0; i < 5; i++) await client.write(Uint8Array.of(i));
  assertEquals(log.filter((e) => e.side === 0 && e.len > 0).length, 5);
  p.a.close();
  p.b.close();
});

Deno.test("tcp: malformed and stale segments are counted and dropped, never thrown", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  const before = p.a.stats.malformed;
  p.link.inject(1, new Uint8Array(10)); // shorter than a header
  const badOffset = forge({
    sport: server.localPort,
    dport: client.localPort,
    seq: 0,
    ack: 0,
    flags: TCP_ACK,
  });
  badOffset[12] = 0x30; // data offset 3
  p.link.inject(1, badOffset);
  const beyond = forge({ sport: server.localPort, dport: client.localPort, seq: 0, ack: 0, flags: TCP_ACK });
  beyond[12] = 0xf0; // 60-byte header in a 20-byte segment
  p.link.inject(1, beyond);
  const badOpt = new Uint8Array(24);
  writeTcpHeader(badOpt, 0, {
    srcPort: server.localPort,
    dstPort: client.localPort,
    seq: client.rcvNxt,
    ack: client.sndNxt,
    flags: TCP_ACK,
    window: 100,
  });
  badOpt[12] = 0x60;
  badOpt.set([2, 9, 0, 0], 20); // MSS option with length 9
  p.link.inject(1, badOpt);
  await elapse(p.link, 5);
  assertEquals(p.a.stats.malformed - before, 4);
  assertEquals(client.state, TcpState.Established);
  // An old duplicate (sequence far below RCV.NXT) is answered with an ACK, not accepted.
  p.link.inject(
    1,
    forge({
      sport: server.localPort,
      dport: client.localPort,
      seq: (client.rcvNxt - 50000) >>> 0,
      ack: client.sndNxt,
      flags: TCP_ACK | TCP_FIN,
    }),
  );
  await elapse(p.link, 5);
  assertEquals(client.state, TcpState.Established);
  assert(p.a.stats.outOfWindow >= 1);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: close() with unread data resets; listener close refuses new connections", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  await client.write(pattern(1000));
  await elapse(p.link, 50);
  server.close(); // 1000 unread bytes: RST instead of FIN
  await assertRejects(() => settle(p, client.read(new Uint8Array(10))), "reset");
  const l2 = p.b.listen(undefined, 99);
  l2.close();
  await assertRejects(() => settle(p, p.a.connect(p.link.addrs[1], 99)), "connection refused");
  await assertRejects(() => l2.accept(), "closed");
  p.a.close();
  p.b.close();
});

Deno.test("tcp: a spurious RTO (the path stalled, nothing lost) is detected by the timestamp echo and undone", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  let received = 0;
  (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await server.read(buf);
      if (n === null) return;
      received += n;
    }
  })().catch(() => {});
  await settle(p, writeAll(client, pattern(20 * 1448, 12)));
  await elapse(p.link, 100);
  const cwndBefore = client.cc.cwnd;
  // RTT 500 ms: past the tail loss probe (199 ms) and the RTO (399 ms), before the backed-off RTO (799 ms).
  p.link.faults.delayMs = 250;
  await client.write(pattern(10 * 1448, 13));
  await elapse(p.link, 450);
  assertEquals(p.a.stats.timeouts, 1);
  p.link.faults.delayMs = 1;
  await elapse(p.link, 1_000);
  assertEquals(p.a.stats.timeouts, 1);
  assertEquals(p.a.stats.spuriousTimeouts, 1);
  assert(client.cc.cwnd >= cwndBefore, `cwnd ${client.cc.cwnd} restored to at least ${cwndBefore}`);
  assertEquals(client.sndUna, client.sndMax);
  assertEquals(received, 30 * 1448);
  // Only the probe and the one segment resent by the timeout were retransmitted, not the whole flight.
  assertEquals(p.a.stats.retransmittedSegments, 2);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: a lost tail segment is recovered by a tail loss probe, not a retransmission timeout", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  let received = 0;
  (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await server.read(buf);
      if (n === null) return;
      received += n;
    }
  })().catch(() => {});
  // Warm up the RTT estimate.
  await settle(p, writeAll(client, pattern(4 * 1448, 1)));
  await elapse(p.link, 100);
  const log = record(p);
  const prev = p.link.tap!;
  let dataSegments = 0;
  p.link.tap = (side, seg) => {
    if (!prev(side, seg)) return false;
    if (side === 0 && new TcpSegmentView(seg).payloadLength > 0 && ++dataSegments === 10) return false; // the tail
    return true;
  };
  const t0 = p.clock.now();
  await client.write(pattern(10 * 1448, 2));
  await elapse(p.link, 1_000);
  assertEquals(received, 14 * 1448);
  assertEquals(p.a.stats.timeouts, 0);
  assertEquals(p.a.stats.retransmittedSegments, 1);
  const resent = log.filter((e) => e.side === 0 && e.len > 0).at(-1)!;
  assert(resent.at - t0 < 200, `probe after ${resent.at - t0} ms, before the 200 ms RTO`);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: zero-window probes that go unanswered abort the connection; answered ones never do", async () => {
  const p = pair({ receiveBufferSize: 16 * 1024, maxRetries: 4 });
  const { client, server } = await connected(p);
  await writeAll(client, pattern(100_000, 4)); // fits the send buffer; the receiver's window is 16 KiB
  // The reader never reads, but the peer is alive: probes are answered for ten virtual minutes.
  await elapse(p.link, 600_000);
  assertEquals(client.state, TcpState.Established);
  // Now the peer vanishes.
  p.link.tap = (side) => side === 0;
  await assertRejects(
    () => settle(p, client.read(new Uint8Array(1)), 3_600_000),
    "zero-window probes unanswered",
  );
  assertEquals(client.state, TcpState.Closed);
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: buffers grow with use and give their storage back once idle", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  assertEquals(p.a.bufferMemory() + p.b.bufferMemory(), 0, "a fresh connection holds no buffer storage");
  const data = pattern(600_000, 8);
  const w = writeAll(client, data);
  const buf = new Uint8Array(1 << 20);
  let got = 0;
  const r = (async () => {
    while (got < data.length) got += (await server.read(buf))!;
  })();
  await settle(p, Promise.all([w, r]));
  assert(p.a.bufferMemory() > 0 && p.b.bufferMemory() > 0);
  await elapse(p.link, 6_000);
  assertEquals(p.a.bufferMemory() + p.b.bufferMemory(), 0);
  // And they still work afterwards.
  await client.write(pattern(1000, 9));
  assertEquals(await settle(p, server.read(buf)), 1000);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: PAWS drops a segment whose timestamp is older than TS.Recent (RFC 7323 section 5)", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  await server.write(pattern(100, 1));
  const buf = new Uint8Array(1000);
  assertEquals(await settle(p, client.read(buf)), 100);
  const tsRecent = client.lastTsRecent!;
  const seg = (tsVal: number, payload: Uint8Array) => {
    const b = new Uint8Array(60 + payload.length);
    const h = writeTcpHeader(b, 0, {
      srcPort: server.localPort,
      dstPort: client.localPort,
      seq: client.rcvNxt,
      ack: client.sndNxt,
      flags: TCP_ACK,
      window: 1000,
    }, { timestamp: { val: tsVal, ecr: 0 } });
    b.set(payload, h);
    return b.subarray(0, h + payload.length);
  };
  p.link.inject(1, seg((tsRecent - 1000) >>> 0, Uint8Array.of(1, 2, 3)));
  await elapse(p.link, 50);
  assertEquals(p.a.stats.pawsRejected, 1);
  assertEquals(client.recvBuffer.unread, 0, "the old segment's data was not accepted");
  // The same bytes with a current timestamp are accepted.
  p.link.inject(1, seg((tsRecent + 5) >>> 0, Uint8Array.of(1, 2, 3)));
  assertEquals(await settle(p, client.read(buf)), 3);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: ICMP packet-too-big quoting an in-flight segment shrinks segments; a blind one is ignored", async () => {
  const p = pair();
  const log = record(p);
  const { client, server } = await connected(p);
  const quote = (seq: number) => {
    const q = new Uint8Array(20);
    writeTcpHeader(q, 0, {
      srcPort: client.localPort,
      dstPort: server.localPort,
      seq,
      ack: 0,
      flags: TCP_ACK,
      window: 0,
    });
    return q;
  };
  p.a.deliverIcmpError(
    "too-big",
    p.link.addrs[0],
    p.link.addrs[1],
    quote((client.sndUna + 100_000) >>> 0),
    600,
  );
  assertEquals(client.mss, 1448, "an error quoting a sequence number not in flight changes nothing");
  p.a.deliverIcmpError("too-big", p.link.addrs[0], p.link.addrs[1], quote(client.sndUna), 1000);
  assertEquals(client.mss, 1000 - 40 - 12);
  const data = pattern(50_000, 3);
  const w = writeAll(client, data).then(() => client.closeWrite());
  assertEquals(await readAll(p, server), data);
  await settle(p, w);
  const largest = Math.max(...log.filter((e) => e.side === 0).map((e) => e.v.headerLength + e.len));
  assert(largest <= 1000 - 20, `segment of ${largest} bytes above the 1000-byte path MTU`);
  p.a.close();
  p.b.close();
});

Deno.test("tcp: readable/writable streams like Deno.Conn (pipeTo carries the bytes and the FIN)", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  const data = pattern(300_000, 6);
  const src = new ReadableStream<Uint8Array>({
    start(ctrl) {
      for (let o = 0; o < data.length; o += 50_000) ctrl.enqueue(data.slice(o, o + 50_000));
      ctrl.close();
    },
  });
  const piped = src.pipeTo(client.writable);
  const chunks: Uint8Array[] = [];
  const collected = (async () => {
    for await (const c of server.readable) chunks.push(c.slice());
  })();
  await settle(p, Promise.all([piped, collected]));
  const got = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    got.set(c, o);
    o += c.length;
  }
  assertEquals(got, data);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: connect timeoutMs fails the dial and leaves nothing behind", async () => {
  const p = pair();
  p.link.tap = (side) => side !== 0; // SYNs vanish
  const start = p.clock.now();
  let failedAt = 0;
  const dial = p.a.connect(p.link.addrs[1], 80, { timeoutMs: 2_500 });
  dial.catch(() => failedAt = p.clock.now());
  await assertRejects(() => settle(p, dial), "timed out");
  assertEquals(failedAt - start, 2_500);
  assertEquals(p.a.stats.connections, 0);
  p.a.close();
  p.b.close();
});

Deno.test("tcp: RFC 5961 ACK validation - an ACK for data never sent is answered and its data dropped", async () => {
  const p = pair();
  const { client, server } = await connected(p);
  const log = record(p);
  const bad = new Uint8Array(25);
  writeTcpHeader(bad, 0, {
    srcPort: server.localPort,
    dstPort: client.localPort,
    seq: client.rcvNxt,
    ack: (client.sndMax + 100_000) >>> 0,
    flags: TCP_ACK,
    window: 1000,
  });
  bad.set([1, 2, 3, 4, 5], 20);
  p.link.inject(1, bad);
  await elapse(p.link, 5);
  assertEquals(client.recvBuffer.unread, 0, "data riding on an invalid ACK is not accepted");
  assert(log.some((e) => e.side === 0 && e.len === 0 && e.v.ack === client.rcvNxt), "answered with an ACK");
  assertEquals(client.state, TcpState.Established);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});

Deno.test("tcp: initial window is 10 segments (RFC 6928)", async () => {
  const p = pair();
  const { client } = await connected(p);
  const log = record(p);
  p.link.tap = ((t) => (side: 0 | 1, seg: Uint8Array) => t(side, seg) && side === 0)(p.link.tap!); // no ACKs back
  await client.write(pattern(100_000, 1));
  await elapse(p.link, 50);
  // Ten segments at once; anything later is the tail loss probe (which may carry new data).
  const data = log.filter((e) => e.side === 0 && e.len > 0);
  assertEquals(data.filter((e) => e.at === data[0].at).length, 10);
  assertEquals(data.length, 11);
  p.a.close();
  p.b.close();
});

Deno.test("tcp: Karn's rule - without timestamps a retransmitted segment gives no RTT sample", async () => {
  const p = pair({ timestamps: false });
  const { client, server } = await connected(p);
  assertEquals(client.negotiated.timestamps, false);
  let dropped = false;
  p.link.tap = (side, seg) => {
    if (side === 0 && !dropped && new TcpSegmentView(seg).payloadLength > 0) {
      dropped = true;
      return false;
    }
    return true;
  };
  await client.write(pattern(100, 1));
  const buf = new Uint8Array(200);
  assertEquals(await settle(p, server.read(buf)), 100);
  await elapse(p.link, 100);
  assert(p.a.stats.retransmittedSegments >= 1);
  // The retransmission was acknowledged about 200 ms after the first send: that must not become an RTT sample.
  assert(client.rtt.srtt! < 20, `srtt ${client.rtt.srtt} polluted by an ambiguous sample`);
  client.close();
  server.close();
  p.a.close();
  p.b.close();
});
