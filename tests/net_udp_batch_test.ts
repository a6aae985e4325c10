/**
 * The host Net's batched UDP socket (BatchedDatagramConn: recvmmsg/sendmmsg through libc, a bounded receive
 * queue) against Deno's own UDP sockets on loopback: both directions, IPv4 and IPv6, bursts from many
 * senders (sources and per-sender order), the queue bound with a stopped consumer, close(), sizes, and the
 * choice made by listenHostUdp() (WGEDGE_UDP).
 *
 * Bursts are sent before the batched socket first reads, so they wait in the kernel and are read in
 * recvmmsg batches; they are sized to fit a default socket buffer, so loopback cannot drop them. Waits are
 * bounded (60 s) and nothing asserts on time.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "./helpers/assert.ts";
import { capabilityTest, waitFor } from "./helpers/interop.ts";
import { within } from "./helpers/wait.ts";
import {
  BatchedDatagramConn,
  HostDatagramConn,
  listenHostUdp,
  MAX_DATAGRAM_V4,
  RECEIVE_QUEUE_BYTES,
  RECEIVE_QUEUE_DATAGRAMS,
} from "../src/net/host_udp.ts";
import {
  attachBatchIo,
  BatchArenas,
  encodeSockaddr,
  findSocketFd,
  RECV_BATCH,
  UDP_MODE_ENV,
  UdpBatchCounters,
  udpBatchUnavailable,
} from "../src/sys/udp_batch.ts";
import { logger } from "../src/util/log.ts";
import { loadLibc, setIntOption } from "../src/sys/libc.ts";
import { createHostNet } from "../src/net/host.ts";
import { EpollLoop } from "../src/sys/epoll.ts";
import type { NetAddr } from "../src/net/types.ts";

const unavailable = udpBatchUnavailable();
/** Declared ignored (with the reason) where the batched socket cannot work; failed instead in CI. */
const batchTest = (def: Deno.TestDefinition) => capabilityTest(def, unavailable ?? null);

function batched(hostname: string): BatchedDatagramConn {
  return new BatchedDatagramConn(Deno.listenDatagram({ transport: "udp", hostname, port: 0 }));
}

function deno(hostname: string): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}

function portOf(c: { addr: Deno.Addr | NetAddr }): number {
  return (c.addr as Deno.NetAddr).port;
}

/** A datagram carrying (sender, seq) and `size` bytes in all. */
function numbered(sender: number, seq: number, size = 16): Uint8Array {
  const d = new Uint8Array(Math.max(size, 8));
  const v = new DataView(d.buffer);
  v.setUint32(0, sender);
  v.setUint32(4, seq);
  for (let i = 8; i < d.length; i++) d[i] = (sender * 31 + seq + i) & 0xff;
  return d;
}

function readNumbered(d: Uint8Array): [number, number] {
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  return [v.getUint32(0), v.getUint32(4)];
}

for (const family of ["4", "6"] as const) {
  const loop = family === "4" ? "127.0.0.1" : "::1";

  batchTest({
    name:
      `net_udp_batch: IPv${family} burst from many Deno senders arrives with right sources, in order per sender`,
    async fn() {
      const conn = batched(loop);
      const SENDERS = 8, EACH = 30; // 240 small datagrams: within a default (non-root) socket buffer
      const senders = Array.from({ length: SENDERS }, () => deno(loop));
      try {
        // Queued in the kernel before the first read: the reads after the first are recvmmsg batches.
        for (let seq = 0; seq < EACH; seq++) {
          for (let s = 0; s < SENDERS; s++) {
            await senders[s].send(numbered(s, seq, 16 + seq), {
              transport: "udp",
              hostname: loop,
              port: portOf(conn),
            });
          }
        }
        const next = new Array(SENDERS).fill(0);
        for (let n = 0; n < SENDERS * EACH; n++) {
          const [data, from] = await within(conn.receive(), `datagram ${n}`);
          const [s, seq] = readNumbered(data);
          assert(s < SENDERS, `sender ${s}`);
          assertEquals(from.port, portOf(senders[s]), "source port matches the sender in the payload");
          assertEquals(from.hostname, loop);
          assertEquals(from.transport, "udp");
          assertEquals(seq, next[s], `sender ${s} in order`);
          assertEquals(data, numbered(s, seq, 16 + seq));
          next[s]++;
        }
        assert(conn.rxBatches > 0 && conn.rxBatchedDatagrams > 0, "read in recvmmsg batches");
        assertEquals(conn.receiveErrors, 0);
        assertEquals(conn.receiveQueueDrops, 0);
      } finally {
        conn.close();
        for (const s of senders) s.close();
      }
    },
  });

  batchTest({
    name: `net_udp_batch: IPv${family} sends reach a Deno socket in order, in sendmmsg batches`,
    async fn() {
      const conn = batched(loop);
      const peer = deno(loop);
      try {
        const to: NetAddr = { transport: "udp", hostname: loop, port: portOf(peer) };
        const COUNT = 100; // one full batch of 64 at once, the rest at the next microtask
        const sent = [];
        for (let i = 0; i < COUNT; i++) sent.push(conn.send(numbered(0, i, 20), to));
        assertEquals(await Promise.all(sent), new Array(COUNT).fill(20));
        const buf = new Uint8Array(65536);
        for (let i = 0; i < COUNT; i++) {
          const [data, from] = await within(peer.receive(buf), `datagram ${i}`);
          assertEquals(readNumbered(data), [0, i]);
          assertEquals((from as Deno.NetAddr).port, portOf(conn));
        }
        assertEquals(conn.txDatagrams, COUNT);
        assert(conn.txBatches < COUNT, `batched: ${conn.txBatches} sendmmsg calls for ${COUNT}`);
        assertEquals(conn.sendErrors, 0);
      } finally {
        conn.close();
        peer.close();
      }
    },
  });

  batchTest({
    name:
      `net_udp_batch: IPv${family} sizes 0..65507 both ways, through Deno's first read and through recvmmsg`,
    async fn() {
      const conn = batched(loop);
      const peer = deno(loop);
      const sizes = [0, 1, 8, 548, 1472, 1500, 9000, 32768, MAX_DATAGRAM_V4];
      const payload = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
      try {
        for (const n of sizes) {
          await peer.send(payload(n), { transport: "udp", hostname: loop, port: portOf(conn) });
        }
        for (const n of sizes) {
          const [data, from] = await within(conn.receive(), `size ${n}`);
          assertEquals(data.length, n);
          assertEquals(data, payload(n));
          assertEquals(from.port, portOf(peer));
        }
        const to: NetAddr = { transport: "udp", hostname: loop, port: portOf(peer) };
        for (const n of sizes) assertEquals(await conn.send(payload(n), to), n);
        const buf = new Uint8Array(65536);
        for (const n of sizes) {
          const [data] = await within(peer.receive(buf), `size ${n} back`);
          assertEquals(data, payload(n));
        }
        if (family === "4") {
          await assertRejects(() => conn.send(new Uint8Array(MAX_DATAGRAM_V4 + 1), to), "Message too long");
        }
      } finally {
        conn.close();
        peer.close();
      }
    },
  });
}

batchTest({
  name: "net_udp_batch: a dual-stack socket on :: shows IPv4 sources as Deno does and answers them",
  async fn() {
    const conn = batched("::");
    const ref = deno("::");
    const peer = deno("127.0.0.1");
    try {
      // Deno's own socket on :: is the reference for how a v4 source is written.
      await peer.send(numbered(0, 0), { transport: "udp", hostname: "127.0.0.1", port: portOf(ref) });
      const [, refFrom] = await within(ref.receive(), "reference datagram");
      for (let i = 0; i < 5; i++) {
        await peer.send(numbered(0, i), { transport: "udp", hostname: "127.0.0.1", port: portOf(conn) });
      }
      for (let i = 0; i < 5; i++) {
        const [data, from] = await within(conn.receive(), `datagram ${i}`);
        assertEquals(readNumbered(data), [0, i]);
        assertEquals(from.hostname, (refFrom as Deno.NetAddr).hostname);
        assertEquals(from.port, portOf(peer));
        await conn.send(data, from);
        const [back] = await within(peer.receive(), `reply ${i}`);
        assertEquals(readNumbered(back), [0, i]);
      }
    } finally {
      conn.close();
      ref.close();
      peer.close();
    }
  },
});

batchTest({
  name: "net_udp_batch: receive(buf) copies into the caller's buffer and returns a view of it",
  async fn() {
    const conn = batched("127.0.0.1");
    const peer = deno("127.0.0.1");
    try {
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: portOf(conn) };
      await peer.send(numbered(1, 1, 100), to);
      await peer.send(numbered(1, 2, 100), to);
      const buf = new Uint8Array(200);
      const [a] = await within(conn.receive(buf), "first");
      assert(a.buffer === buf.buffer && a.byteOffset === 0, "a view of the caller's buffer");
      assertEquals(a, numbered(1, 1, 100));
      const small = new Uint8Array(10);
      const [b] = await within(conn.receive(small), "second");
      assertEquals(b, numbered(1, 2, 100).subarray(0, 10), "cut to the buffer, as a kernel read is");
    } finally {
      conn.close();
      peer.close();
    }
  },
});

/**
 * Starts the receive pump with one read, then (nobody reading) sends rounds of `perRound` datagrams of
 * `size` bytes, each read by the pump before the next is sent (so no socket buffer overflows), until the
 * queue drops. Bounded by `maxRounds`.
 */
async function fillQueue(conn: BatchedDatagramConn, peer: Deno.DatagramConn, size: number, perRound: number) {
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: portOf(conn) };
  await peer.send(numbered(0, 0), to);
  await within(conn.receive(), "first datagram");
  let seq = 1;
  for (let round = 0; round < 400 && conn.receiveQueueDrops === 0; round++) {
    for (let i = 0; i < perRound; i++) await peer.send(numbered(0, seq++, size), to);
    await waitFor(() => conn.rxDatagrams >= seq, "the pump to read the round");
  }
  assert(conn.receiveQueueDrops > 0, "drops counted");
  assertEquals(conn.dropped, conn.receiveQueueDrops + conn.sendErrors, "reported as the socket's drops");
}

batchTest({
  name: "net_udp_batch: a stopped consumer bounds the queue in datagrams; drops are counted, order kept",
  async fn() {
    const conn = batched("127.0.0.1");
    const peer = deno("127.0.0.1");
    try {
      await fillQueue(conn, peer, 16, 50);
      assertEquals(conn.queued, RECEIVE_QUEUE_DATAGRAMS);
      // What is queued comes out in order, oldest first.
      let last = 0;
      for (let i = 0; i < RECEIVE_QUEUE_DATAGRAMS; i++) {
        const [data] = await conn.receive();
        const [, s] = readNumbered(data);
        assert(s > last, `in order: ${s} after ${last}`);
        last = s;
      }
      assertEquals(conn.queued, 0);
    } finally {
      conn.close();
      peer.close();
    }
  },
});

batchTest({
  name: "net_udp_batch: a stopped consumer bounds the queue in bytes (large datagrams)",
  async fn() {
    const conn = batched("127.0.0.1");
    const peer = deno("127.0.0.1");
    const SIZE = 60_000;
    try {
      await fillQueue(conn, peer, SIZE, 2);
      assertEquals(conn.queued, Math.floor(RECEIVE_QUEUE_BYTES / SIZE));
    } finally {
      conn.close();
      peer.close();
    }
  },
});

batchTest({
  name: "net_udp_batch: close() rejects a pending receive as Deno does, later calls with BadResource",
  async fn() {
    const conn = batched("127.0.0.1");
    const pending = conn.receive();
    const second = conn.receive();
    conn.close();
    const e = await assertRejects(() => pending, "operation canceled");
    assert(e instanceof Deno.errors.Interrupted, `Interrupted, got ${e.name}`);
    assert((await assertRejects(() => second)) instanceof Deno.errors.Interrupted);
    assert((await assertRejects(() => conn.receive(), "closed")) instanceof Deno.errors.BadResource);
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: 9 };
    assert((await assertRejects(() => conn.send(new Uint8Array(1), to))) instanceof Deno.errors.BadResource);
    conn.close(); // idempotent
    // The port is free again.
    const again = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: portOf(conn) });
    again.close();
  },
});

batchTest({
  name: "net_udp_batch: names go through Deno's send; a v6 destination on a v4 socket is refused",
  async fn() {
    const conn = batched("127.0.0.1");
    const peer = deno("127.0.0.1");
    try {
      await conn.send(numbered(2, 1), { transport: "udp", hostname: "127.0.0.1", port: portOf(peer) });
      await conn.send(numbered(2, 2), { transport: "udp", hostname: "localhost", port: portOf(peer) });
      const got: number[] = [];
      for (let i = 0; i < 2; i++) {
        got.push(readNumbered((await within(peer.receive(), `datagram ${i}`))[0])[1]);
      }
      assertEquals(got.sort(), [1, 2]);
      await assertRejects(
        () => conn.send(new Uint8Array(1), { transport: "udp", hostname: "::1", port: 9 }),
        "Address family not supported",
      );
    } finally {
      conn.close();
      peer.close();
    }
  },
});

Deno.test({
  name: `net_udp_batch: listenHostUdp() and the host Net follow ${UDP_MODE_ENV}`,
  fn() {
    const before = Deno.env.get(UDP_MODE_ENV);
    const opened: { close(): void }[] = [];
    try {
      Deno.env.set(UDP_MODE_ENV, "deno");
      const d = listenHostUdp("127.0.0.1", 0);
      opened.push(d);
      assert(d instanceof HostDatagramConn && !d.batched, "WGEDGE_UDP=deno: Deno's socket");
      const viaNet = createHostNet().listenUdp({ hostname: "127.0.0.1", port: 0 });
      opened.push(viaNet);
      assert(viaNet instanceof HostDatagramConn, "the host Net too");
      Deno.env.delete(UDP_MODE_ENV);
      const auto = listenHostUdp("127.0.0.1", 0);
      opened.push(auto);
      assertEquals(auto.batched, !unavailable);
      Deno.env.set(UDP_MODE_ENV, "ffi");
      if (unavailable) assertThrows(() => listenHostUdp("127.0.0.1", 0), `${UDP_MODE_ENV}=ffi`);
      else opened.push(listenHostUdp("127.0.0.1", 0));
      Deno.env.set(UDP_MODE_ENV, "kernel");
      assertThrows(() => listenHostUdp("127.0.0.1", 0), `${UDP_MODE_ENV}: expected "deno", "ffi" or "auto"`);
    } finally {
      for (const c of opened) c.close();
      if (before === undefined) Deno.env.delete(UDP_MODE_ENV);
      else Deno.env.set(UDP_MODE_ENV, before);
    }
  },
});

Deno.test({
  name: "net_udp_batch: the Deno fallback receives into a caller's buffer too",
  async fn() {
    const conn = new HostDatagramConn(deno("127.0.0.1"));
    const peer = deno("127.0.0.1");
    try {
      await peer.send(numbered(3, 3), { transport: "udp", hostname: "127.0.0.1", port: portOf(conn) });
      const buf = new Uint8Array(64);
      const [data, from] = await within(conn.receive(buf), "datagram");
      assert(data.buffer === buf.buffer);
      assertEquals(readNumbered(data), [3, 3]);
      assertEquals(from.port, portOf(peer));
    } finally {
      conn.close();
      peer.close();
    }
  },
});

batchTest({
  name: "net_udp_batch: two sockets sharing an address (SO_REUSEADDR) are not told apart: no batching",
  fn() {
    const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0, reuseAddress: true });
    const b = Deno.listenDatagram({
      transport: "udp",
      hostname: "127.0.0.1",
      port: portOf(a),
      reuseAddress: true,
    });
    try {
      assertThrows(() => new BatchedDatagramConn(b), "cannot find the UDP socket's descriptor");
    } finally {
      a.close();
      b.close();
    }
  },
});

batchTest({
  name:
    "net_udp_batch: a datagram the kernel refuses is counted in sendErrors; the rest of the batch still goes",
  async fn() {
    const conn = batched("0.0.0.0");
    const peer = deno("127.0.0.1");
    try {
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: portOf(peer) };
      // Port 0 is no destination: sendmmsg refuses it (EINVAL) after the send() was staged.
      const staged = [
        conn.send(numbered(4, 1), to),
        conn.send(numbered(4, 2), { transport: "udp", hostname: "127.0.0.1", port: 0 }),
        conn.send(numbered(4, 3), to),
      ];
      assertEquals(await Promise.all(staged), [16, 16, 16], "resolved once staged");
      const got: number[] = [];
      for (let i = 0; i < 2; i++) {
        got.push(readNumbered((await within(peer.receive(), `datagram ${i}`))[0])[1]);
      }
      assertEquals(got, [1, 3]);
      assertEquals(conn.sendErrors, 1);
      assertEquals(conn.txDatagrams, 2);
    } finally {
      conn.close();
      peer.close();
    }
  },
});

for (const kind of ["batched", "deno"] as const) {
  const register = kind === "batched" ? batchTest : Deno.test;
  register({
    name:
      `net_udp_batch: push mode (${kind}): listen() hands each datagram and its source to a handler that ` +
      "rewrites it in place and answers with sendNow(), after onWake once per wake-up; close() ends listen()",
    async fn() {
      const conn = kind === "batched" ? batched("127.0.0.1") : new HostDatagramConn(deno("127.0.0.1"));
      const peer = deno("127.0.0.1");
      const sources = new Set<NetAddr>();
      let wakes = 0, handledBeforeAWake = 0, handled = 0;
      const listening = conn.listen((data, from) => {
        if (wakes === 0) handledBeforeAWake++;
        handled++;
        sources.add(from);
        data[8] ^= 0xff;
        assert(conn.sendNow(data, from), "staged");
      }, () => wakes++);
      try {
        const N = 50;
        const to = { transport: "udp" as const, hostname: "127.0.0.1", port: portOf(conn) };
        for (let i = 0; i < N; i++) await peer.send(numbered(1, i), to);
        for (let i = 0; i < N; i++) {
          const [back] = await within(peer.receive(), `echo ${i}`);
          const want = numbered(1, i);
          want[8] ^= 0xff;
          assertEquals(back, want);
        }
        for (const s of sources) assertEquals(s.port, portOf(peer));
        assertEquals(handled, N);
        assertEquals(handledBeforeAWake, 0, "onWake runs before the first datagram of a wake-up");
        assert(wakes >= 1 && wakes <= N, `one onWake per wake-up, not more than per datagram (${wakes})`);
        if (kind === "deno") assertEquals(wakes, N, "Deno's socket wakes once per datagram");
        if (kind === "batched") {
          assertEquals(sources.size, 1, "one address object per source");
          assertEquals(conn.sendNow(new Uint8Array(4), { hostname: "::1", port: 9 }), false, "wrong family");
          assertEquals(conn.sendErrors, 1);
        }
      } finally {
        conn.close();
        peer.close();
      }
      await within(listening, "listen() to end after close()");
      assertEquals(conn.sendNow(new Uint8Array(4), { hostname: "127.0.0.1", port: 9 }), false, "closed");
    },
  });
}

batchTest({
  name:
    "net_udp_batch: sendStaged() on one socket sends what another socket staged in the shared arena, at once",
  async fn() {
    const arenas = new BatchArenas();
    const log = logger("test");
    const local = { address: new Uint8Array([127, 0, 0, 1]) };
    const a = deno("127.0.0.1"), b = deno("127.0.0.1"), peer = deno("127.0.0.1");
    const statsA = new UdpBatchCounters(), statsB = new UdpBatchCounters();
    const ioA = attachBatchIo({ ...local, port: portOf(a) }, statsA, log, { arenas });
    const ioB = attachBatchIo({ ...local, port: portOf(b) }, statsB, log, { arenas });
    try {
      assert(!("reason" in ioA) && !("reason" in ioB), "batch I/O attached");
      const to = encodeSockaddr(ioB.family, local.address, portOf(peer))!;
      for (let i = 0; i < 3; i++) ioB.stage(numbered(2, i), to);
      assertEquals(statsB.txDatagrams, 0, "staged, not sent yet");
      ioA.sendStaged(); // a forwarder's wake-up on socket A ends: B's batch leaves now, not at the microtask
      assertEquals([statsB.txDatagrams, statsB.txBatches], [3, 1], "one sendmmsg, synchronously");
      assertEquals(statsA.txDatagrams, 0);
      for (let i = 0; i < 3; i++) {
        const [d, from] = await within(peer.receive(), `datagram ${i}`);
        assertEquals(readNumbered(d), [2, i]);
        assertEquals((from as Deno.NetAddr).port, portOf(b), "sent from the socket that staged it");
      }
      ioA.sendStaged();
      assertEquals(statsB.txDatagrams, 3, "nothing staged: nothing sent");
    } finally {
      if (!("reason" in ioA)) ioA.close();
      if (!("reason" in ioB)) ioB.close();
      a.close();
      b.close();
      peer.close();
    }
  },
});

/** Sizes sent in one task: a train of 100s ended by a shorter one, a longer one starting the next train. */
const GSO_SIZES = [100, 100, 100, 100, 100, 40, 100, 100, 200, 200, 200];

for (const gso of [true, false]) {
  for (const family of ["4", "6"] as const) {
    const loop = family === "4" ? "127.0.0.1" : "::1";
    batchTest({
      name: `net_udp_batch: IPv${family} sendNow() bursts to one peer ${
        gso ? "leave as UDP GSO trains and arrive" : "without gso leave one datagram per message, arriving"
      } as the same datagrams in order`,
      async fn() {
        const conn = new BatchedDatagramConn(
          Deno.listenDatagram({ transport: "udp", hostname: loop, port: 0 }),
          -1,
          gso,
        );
        const peer = deno(loop);
        try {
          assertEquals(conn.gso, gso, "the kernel has UDP_SEGMENT (Linux 4.18+)");
          const to = { hostname: loop, port: portOf(peer) }; // one object: one cached sockaddr
          const sent = GSO_SIZES.map((size, i) => numbered(7, i, size));
          for (const d of sent) assert(conn.sendNow(d, to), "staged");
          for (const [i, want] of sent.entries()) {
            const [got] = await within(peer.receive(), `datagram ${i}`);
            assertEquals(got, want, `datagram ${i} (${want.length} bytes) unchanged`);
          }
          assertEquals([conn.txDatagrams, conn.txBatches, conn.sendErrors], [GSO_SIZES.length, 1, 0]);
          // Trains: 5 x 100 + 40 (ended by the shorter one), 100 + 100 (a 200 is longer), 3 x 200.
          assertEquals(conn.txGsoDatagrams, gso ? GSO_SIZES.length : 0);
        } finally {
          conn.close();
          peer.close();
        }
      },
    });
  }
}

batchTest({
  name: "net_udp_batch: a train the kernel refuses (EINVAL: UDP GSO with checksums off) leaves datagram by " +
    "datagram and the socket stops building trains",
  async fn() {
    const libc = loadLibc();
    assert(!("reason" in libc), "libc");
    const arenas = new BatchArenas();
    const local = { address: new Uint8Array([127, 0, 0, 1]) };
    const sock = deno("127.0.0.1"), peer = deno("127.0.0.1");
    const stats = new UdpBatchCounters();
    const io = attachBatchIo({ ...local, port: portOf(sock) }, stats, logger("test"), { arenas, gso: true });
    try {
      assert(!("reason" in io), "batch I/O attached");
      assert(io.gso, "the kernel has UDP_SEGMENT");
      const fd = findSocketFd(libc, { ...local, port: portOf(sock) });
      assert(setIntOption(libc, fd, 1, /* SOL_SOCKET */ 11, /* SO_NO_CHECK */ 1), "SO_NO_CHECK set");
      const to = encodeSockaddr(io.family, local.address, portOf(peer))!;
      for (let i = 0; i < 3; i++) io.stage(numbered(3, i, 100), to);
      io.flush();
      assertEquals([stats.txDatagrams, stats.txGsoDatagrams, stats.sendErrors], [3, 0, 0], "sent one by one");
      assertEquals(io.gso, false, "no more trains on this socket");
      for (let i = 0; i < 3; i++) {
        const [d] = await within(peer.receive(), `datagram ${i}`);
        assertEquals(d, numbered(3, i, 100));
      }
      for (let i = 3; i < 5; i++) io.stage(numbered(3, i, 100), to);
      io.flush();
      assertEquals([stats.txDatagrams, stats.txBatches, stats.sendErrors], [5, 1, 0], "then plain messages");
      for (let i = 3; i < 5; i++) {
        assertEquals((await within(peer.receive(), `datagram ${i}`))[0], numbered(3, i, 100));
      }
    } finally {
      if (!("reason" in io)) io.close();
      sock.close();
      peer.close();
    }
  },
});

batchTest({
  name: "net_udp_batch: push mode hands a burst of equal-sized datagrams out without a new view per datagram",
  async fn() {
    const conn = batched("127.0.0.1");
    const peer = deno("127.0.0.1");
    const N = 2 * RECV_BATCH + 20; // queued before listen(): Deno's first read, then recvmmsg batches
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: portOf(conn) };
    for (let i = 0; i < N; i++) await peer.send(numbered(4, i, 200), to);
    const views = new Set<Uint8Array>();
    const seqs: number[] = [];
    const listening = conn.listen((data) => {
      views.add(data);
      seqs.push(readNumbered(data)[1]);
      assertEquals(data, numbered(4, seqs.at(-1)!, 200));
    });
    try {
      await waitFor(() => seqs.length === N, "the burst to be handled");
      assertEquals(seqs, [...Array(N).keys()], "every datagram, in order");
      assert(views.size <= 1 + RECV_BATCH, `one view per receive slot, not per datagram (${views.size})`);
    } finally {
      conn.close();
      peer.close();
    }
    await within(listening, "listen() to end");
  },
});

for (const coreRunning of [false, true]) {
  batchTest({
    name:
      "net_udp_batch: push mode lingers after a wake-up: what another push-mode socket receives meanwhile " +
      `reaches its handler in the same task${
        coreRunning ? ", while the epoll loop's pool-thread wait runs" : ""
      }`,
    async fn() {
      const loop = EpollLoop.shared();
      if ("reason" in loop) throw new Error(loop.reason);
      // As while a TCP relay runs on the kernel-socket core: the pool thread waits on the same epoll instance.
      if (coreRunning) loop.acquire();
      const a = batched("127.0.0.1"), b = batched("127.0.0.1");
      const peer = deno("127.0.0.1");
      const toB = { hostname: "127.0.0.1", port: portOf(b) };
      const order: string[] = [];
      const listeningA = a.listen((data) => {
        order.push("a");
        queueMicrotask(() => order.push("microtask queued by a"));
        // Staged; it leaves at the end of a's wake-up, and loopback puts it in b's queue during that send.
        assert(a.sendNow(data, toB), "staged");
      });
      const listeningB = b.listen(() => order.push("b"));
      try {
        await peer.send(numbered(5, 1), { transport: "udp", hostname: "127.0.0.1", port: portOf(a) });
        await waitFor(() => order.length === 3, "both handlers and the microtask");
        if (!coreRunning) {
          // Without the linger, b would wait for its own wake-up through Deno, after a's microtasks.
          assertEquals(order, ["a", "b", "microtask queued by a"]);
        } else assertEquals([...order].sort(), ["a", "b", "microtask queued by a"]);
      } finally {
        a.close();
        b.close();
        peer.close();
        if (coreRunning) await within(loop.release(), "the pool thread's wait to end");
      }
      await within(listeningA, "a's listen() to end");
      await within(listeningB, "b's listen() to end");
    },
  });
}
