/**
 * TCP buffer storage over the fake IP link (ManualClock): allocated on use, and gone as soon as a connection
 * is CLOSED, not when the application drops its last reference to it; unread data survives a reset until read.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { TcpLayer, TcpState } from "../src/netstack/tcp/mod.ts";
import type { TcpConnection } from "../src/netstack/tcp/connection.ts";
import { drive, FakeIpLink } from "../src/netstack/tcp/testing.ts";

function pair() {
  const clock = new ManualClock();
  const link = new FakeIpLink(clock);
  const a = new TcpLayer(link.senders[0], { clock, random: seededRandom(1) });
  const b = new TcpLayer(link.senders[1], { clock, random: seededRandom(2) });
  link.attach(0, a);
  link.attach(1, b);
  return { link, a, b };
}

/** Runs the link until the promise settles (bounded in virtual time). */
async function settle<T>(link: FakeIpLink, p: Promise<T>): Promise<T> {
  let done = false;
  p.finally(() => done = true).catch(() => {});
  assert(await drive(link, () => done), "did not settle in virtual time");
  return p;
}

async function connected() {
  const p = pair();
  const l = p.b.listen(undefined, 80);
  const accepted = l.accept();
  const client = await settle(p.link, p.a.connect(p.link.addrs[1], 80)) as TcpConnection;
  const server = await settle(p.link, accepted) as TcpConnection;
  return { ...p, client, server, listener: l };
}

async function writeAll(link: FakeIpLink, c: TcpConnection, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await settle(link, c.write(data.subarray(o)));
}

Deno.test("tcp memory: a connection holds no storage until data moves", async () => {
  const { client, server, listener } = await connected();
  assertEquals([client.bufferedBytes.allocated, server.bufferedBytes.allocated], [0, 0]);
  listener.close();
  client.close();
  server.close();
});

Deno.test("tcp memory: both ends drop their buffers when CLOSED, without waiting for the idle release", async () => {
  const { link, a, b, client, server, listener } = await connected();
  const data = new Uint8Array(200_000).fill(7);
  const reading = (async () => {
    const buf = new Uint8Array(65536);
    let n = 0;
    for (let r; (r = await server.read(buf)) !== null;) n += r;
    return n;
  })();
  await writeAll(link, client, data);
  await client.closeWrite();
  assertEquals(await settle(link, reading), data.length);
  assert(server.bufferedBytes.allocated > 0 || client.bufferedBytes.allocated > 0, "storage was used");
  // The server (passive close) ends in LAST_ACK -> CLOSED, the client in TIME_WAIT.
  server.close();
  assert(await drive(link, () => server.state === TcpState.Closed && client.state === TcpState.TimeWait));
  assertEquals(server.bufferedBytes.allocated, 0, "CLOSED: storage gone at once");
  assertEquals(client.bufferedBytes.allocated, 0, "TIME_WAIT holds no storage");
  assertEquals(b.bufferMemory(), 0);
  assertEquals(a.bufferMemory(), 0);
  client.close();
  listener.close();
});

Deno.test("tcp memory: unread data survives a reset until read, then its storage goes", async () => {
  const { link, client, server, listener } = await connected();
  await writeAll(link, client, new Uint8Array(3000).fill(1));
  assert(await drive(link, () => server.bufferedBytes.receive === 3000));
  client.reset();
  assert(await drive(link, () => server.state === TcpState.Closed));
  assertEquals(server.bufferedBytes.receive, 3000, "the data sent before the RST is still there");
  assert(server.bufferedBytes.allocated >= 3000);
  const buf = new Uint8Array(4096);
  assertEquals(await server.read(buf), 3000);
  assertEquals(server.bufferedBytes.allocated, 0, "read out of a CLOSED connection: storage gone");
  server.close();
  listener.close();
});
