/**
 * The fault tests: a 64 MiB transfer over a link with 5 % loss, 5 % reordering and 1 % duplication
 * arrives intact; a reader that stops reading keeps the sender's memory bounded and the transfer resumes.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { TcpLayer, type TcpOptions } from "../src/netstack/tcp/mod.ts";
import type { TcpConnection } from "../src/netstack/tcp/connection.ts";
import { drive, FakeIpLink, type LinkFaults } from "../src/netstack/tcp/testing.ts";

function setup(opts: Partial<TcpOptions>, faults: LinkFaults) {
  const clock = new ManualClock();
  const link = new FakeIpLink(clock, faults);
  const a = new TcpLayer(link.senders[0], { clock, random: seededRandom(5), ...opts });
  const b = new TcpLayer(link.senders[1], { clock, random: seededRandom(6), ...opts });
  link.attach(0, a);
  link.attach(1, b);
  return { clock, link, a, b };
}

async function open(s: ReturnType<typeof setup>) {
  const l = s.b.listen(undefined, 9000);
  let server: TcpConnection | undefined, client: TcpConnection | undefined;
  l.accept().then((c) => server = c as TcpConnection);
  s.a.connect(s.link.addrs[1], 9000).then((c) => client = c as TcpConnection);
  assert(await drive(s.link, () => !!server && !!client, 120_000), "handshake");
  return { client: client!, server: server! };
}

/** Deterministic bytes: chunk i of the stream is xorshift output seeded by i. */
function chunk(i: number, size: number): Uint8Array {
  return seededRandom(i + 1)(new Uint8Array(size));
}

Deno.test("tcp fault: 64 MiB over 5% loss, 5% reordering, 1% duplication arrives intact", async () => {
  const TOTAL = Number(Deno.env.get("TCP_FAULT_MIB") ?? 64) * 1024 * 1024, CHUNK = 256 * 1024;
  const s = setup({}, { loss: 0.05, reorder: 0.05, duplicate: 0.01, seed: 42, delayMs: 1 });
  const { client, server } = await open(s);
  const sent = createHash("sha256"), got = createHash("sha256");
  let received = 0, writerDone = false, eof = false;
  (async () => {
    for (let i = 0; i < TOTAL / CHUNK; i++) {
      const c = chunk(i, CHUNK);
      sent.update(c);
      let o = 0;
      while (o < c.length) o += await client.write(c.subarray(o));
    }
    await client.closeWrite();
    writerDone = true;
  })();
  (async () => {
    const buf = new Uint8Array(256 * 1024);
    for (;;) {
      const n = await server.read(buf);
      if (n === null) break;
      got.update(buf.subarray(0, n));
      received += n;
    }
    eof = true;
  })();
  const t0 = performance.now();
  const ok = await drive(s.link, () => writerDone && eof, 3_600_000);
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `64 MiB lossy: ${secs.toFixed(1)} s wall, virtual ${
      ((s.clock.now() - 1_000_000) / 1000).toFixed(1)
    } s, ` +
      `retransmits ${s.a.stats.retransmittedSegments}, recoveries ${s.a.stats.fastRecoveries}, ` +
      `timeouts ${s.a.stats.timeouts}, dropped ${s.link.dropped}`,
  );
  assert(ok, `transfer did not finish: received ${received}`);
  assertEquals(received, TOTAL);
  assertEquals(got.digest("hex"), sent.digest("hex"));
  server.close();
  client.close();
  s.a.close();
  s.b.close();
});

Deno.test("tcp fault: a reader that stops keeps the sender's memory bounded; the transfer resumes", async () => {
  const SEND_BUF = 256 * 1024, RECV_BUF = 128 * 1024, TOTAL = 4 * 1024 * 1024;
  const s = setup({ sendBufferSize: SEND_BUF, receiveBufferSize: RECV_BUF }, { delayMs: 2 });
  const { client, server } = await open(s);
  let written = 0, writerDone = false;
  (async () => {
    const c = chunk(0, 64 * 1024);
    while (written < TOTAL) {
      const off = written % c.length;
      written += await client.write(c.subarray(off, Math.min(c.length, off + TOTAL - written)));
    }
    await client.closeWrite();
    writerDone = true;
  })();
  // Nobody reads for 30 virtual seconds: the writer must block, buffers must stay within their limits.
  let maxSend = 0, maxRecv = 0, maxAlloc = 0;
  const end = s.clock.now() + 30_000;
  await drive(s.link, () => {
    maxSend = Math.max(maxSend, client.bufferedBytes.send);
    maxRecv = Math.max(maxRecv, server.bufferedBytes.receive);
    maxAlloc = Math.max(maxAlloc, s.a.bufferMemory(), s.b.bufferMemory());
    return s.clock.now() >= end;
  }, 31_000);
  assert(!writerDone, "writer finished although nobody reads");
  assert(written <= SEND_BUF + RECV_BUF, `accepted ${written} bytes with buffers of ${SEND_BUF + RECV_BUF}`);
  assert(maxSend <= SEND_BUF, `send buffer held ${maxSend}`);
  assert(maxRecv <= RECV_BUF, `receive buffer held ${maxRecv}`);
  assert(maxAlloc <= SEND_BUF + RECV_BUF, `allocated ${maxAlloc}`);
  // The window filled (less at most one segment the sender holds back to avoid silly-window syndrome).
  assert(
    server.bufferedBytes.receive > RECV_BUF - 1500,
    `receive buffer only ${server.bufferedBytes.receive}`,
  );
  const writtenWhileStalled = written;
  // The sender probes the zero window and does not give up.
  assert(client.state !== undefined && !client.isClosed, "sender aborted during the stall");
  // The reader resumes: everything arrives in order.
  let received = 0, eof = false, mismatch = -1;
  const expect = chunk(0, 64 * 1024);
  (async () => {
    const buf = new Uint8Array(50_000);
    for (;;) {
      const n = await server.read(buf);
      if (n === null) break;
      for (let i = 0; i < n && mismatch < 0; i++) {
        if (buf[i] !== expect[(received + i) % expect.length]) mismatch = received + i;
      }
      received += n;
    }
    eof = true;
  })();
  assert(await drive(s.link, () => eof && writerDone, 600_000), `stalled after resume: ${received}`);
  assert(writtenWhileStalled < TOTAL);
  assertEquals(received, TOTAL);
  assertEquals(mismatch, -1);
  server.close();
  client.close();
  s.a.close();
  s.b.close();
});

Deno.test("tcp fault: without SACK, timestamps or window scaling (NewReno, Karn timing) 8 MiB over 3% loss arrives intact", async () => {
  const TOTAL = 8 * 1024 * 1024, CHUNK = 256 * 1024;
  const s = setup(
    { sack: false, timestamps: false, windowScaling: false, congestionControl: "newreno" },
    { loss: 0.03, reorder: 0.02, duplicate: 0.01, seed: 7 },
  );
  const { client, server } = await open(s);
  assertEquals(client.negotiated, { mss: 1460, sack: false, timestamps: false, sndShift: 0, rcvShift: 0 });
  const sent = createHash("sha256"), got = createHash("sha256");
  let received = 0, eof = false;
  (async () => {
    for (let i = 0; i < TOTAL / CHUNK; i++) {
      const c = chunk(i, CHUNK);
      sent.update(c);
      for (let o = 0; o < c.length;) o += await client.write(c.subarray(o));
    }
    await client.closeWrite();
  })();
  (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await server.read(buf);
      if (n === null) break;
      got.update(buf.subarray(0, n));
      received += n;
    }
    eof = true;
  })();
  assert(await drive(s.link, () => eof, 3_600_000), `transfer did not finish: ${received}`);
  console.log(
    `NewReno 8 MiB: virtual ${((s.clock.now() - 1_000_000) / 1000).toFixed(1)} s, retransmits ` +
      `${s.a.stats.retransmittedSegments}, recoveries ${s.a.stats.fastRecoveries}, timeouts ${s.a.stats.timeouts}`,
  );
  assertEquals(received, TOTAL);
  assertEquals(got.digest("hex"), sent.digest("hex"));
  assert(s.a.stats.fastRecoveries > 0, "losses repaired by fast retransmit, not only timeouts");
  server.close();
  client.close();
  s.a.close();
  s.b.close();
});
