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
