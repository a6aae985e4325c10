/**
 * The rp data path pieces with an injected clock: UDP flows expire when idle and the table is bounded; TCP
 * forwarding carries half-close and counts bytes; closing a forwarder closes its live connections.
 */
import { receiveWithin } from "./helpers/udp.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { waitFor } from "./helpers/interop.ts";
import { newForwardStats, TcpForwarder, UdpForwarder } from "../src/services/rp/forward.ts";
import { createHostNet } from "../src/net/host.ts";
import { ManualClock } from "../src/util/clock.ts";
import { logger } from "../src/util/log.ts";
import type { DatagramConn } from "../src/net/types.ts";

const host = createHostNet();
const log = logger("test");

function udpEcho(): { port: number; close: () => void; done: Promise<void> } {
  const s = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const done = (async () => {
    for (let i = 0; i < 10_000; i++) {
      try {
        const [d, from] = await s.receive();
        await s.send(d, from);
      } catch {
        return;
      }
    }
  })();
  return { port: (s.addr as Deno.NetAddr).port, close: () => s.close(), done };
}

/** A UDP forwarder from `front` to the echo on loopback, a host socket per flow. */
function udpForwarderTo(
  echoPort: number,
  front: DatagramConn,
  stats: ReturnType<typeof newForwardStats>,
  clock: ManualClock,
  limits: { idleTimeoutMs?: number; maxFlows?: number } = {},
): UdpForwarder {
  return new UdpForwarder({
    front,
    openUpstream: () => host.listenUdp({ hostname: "127.0.0.1", port: 0 }),
    target: () => ({ transport: "udp", hostname: "127.0.0.1", port: echoPort }),
    stats,
    log,
    clock,
    ...limits,
  });
}

async function ask(sock: Deno.DatagramConn, to: number, text: string): Promise<string> {
  await sock.send(new TextEncoder().encode(text), { transport: "udp", hostname: "127.0.0.1", port: to });
  const [d] = await receiveWithin(sock, `the answer to "${text}"`);
  return new TextDecoder().decode(d);
}

Deno.test("rp forward: UDP flows per remote, idle expiry on the injected clock, bounded table", async () => {
  const echo = udpEcho();
  const clock = new ManualClock();
  const stats = newForwardStats();
  const front = host.listenUdp({ hostname: "127.0.0.1", port: 0 });
  const fwd = udpForwarderTo(echo.port, front, stats, clock, { idleTimeoutMs: 60_000, maxFlows: 3 });
  const clients = Array.from(
    { length: 4 },
    () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }),
  );
  try {
    for (const [i, c] of clients.slice(0, 3).entries()) {
      assertEquals(await ask(c, fwd.addr.port, `m${i}`), `m${i}`);
    }
    assertEquals(fwd.flowCount, 3);
    assertEquals(stats.connectionsTotal, 3);
    // Flow 0 speaks again at 30 s; the others go quiet. Sweeps run every idle/2 = 30 s.
    clock.advance(30_000);
    assertEquals(await ask(clients[0], fwd.addr.port, "still here"), "still here");
    clock.advance(29_000);
    assertEquals(fwd.flowCount, 3);
    clock.advance(16_000); // t = 75 s: the sweep at 60 s closed flows 1 and 2 (idle 60 s), not flow 0 (30 s)
    assertEquals(fwd.flowCount, 1);
    assertEquals(stats.connectionsActive, 1);
    // The table is bounded: a 4th remote when 3 are live evicts the least recently active.
    assertEquals(await ask(clients[1], fwd.addr.port, "a"), "a");
    assertEquals(await ask(clients[2], fwd.addr.port, "b"), "b");
    assertEquals(await ask(clients[3], fwd.addr.port, "c"), "c");
    assertEquals(fwd.flowCount, 3);
    assertEquals(stats.connectionsTotal, 6);
    assert(stats.bytesIn > 0 && stats.bytesIn === stats.bytesOut, "bytes counted both ways");
  } finally {
    for (const c of clients) c.close();
    await fwd.close();
    echo.close();
    await echo.done;
  }
  assertEquals(clock.pendingTimers, 0, "no timer left after close");
});

Deno.test("rp forward: a receive error on the public UDP socket is counted and the mapping keeps serving", async () => {
  const echo = udpEcho();
  const clock = new ManualClock();
  const stats = newForwardStats();
  const real = host.listenUdp({ hostname: "127.0.0.1", port: 0 });
  // The first two receives fail as a kernel error would (ENOBUFS); the socket itself stays usable.
  let failures = 2;
  const front: DatagramConn = {
    get addr() {
      return real.addr;
    },
    send: (d, to) => real.send(d, to),
    receive: () =>
      failures-- > 0 ? Promise.reject(new Error("No buffer space available (os error 105)")) : real.receive(),
    close: () => real.close(),
  };
  const fwd = udpForwarderTo(echo.port, front, stats, clock);
  const client = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    await waitFor(() => stats.receiveErrors === 1, "the first receive error counted");
    clock.advance(50); // the rest after an error, on the injected clock
    await waitFor(() => stats.receiveErrors === 2, "the second receive error counted");
    clock.advance(50);
    assertEquals(await ask(client, fwd.addr.port, "after the errors"), "after the errors");
    assertEquals(stats.receiveErrors, 2);
    assertEquals(fwd.flowCount, 1);
  } finally {
    client.close();
    await fwd.close();
    echo.close();
    await echo.done;
  }
  assertEquals(clock.pendingTimers, 0, "no timer left after close");
});

Deno.test("rp forward: TCP half-close crosses the forwarder; close() ends live connections", async () => {
  // Upstream: reads until FIN, then answers with what it got, reversed, and closes.
  const up = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for (let i = 0; i < 2; i++) {
      const c = await up.accept();
      const chunks: number[] = [];
      const buf = new Uint8Array(1024);
      for (;;) {
        const n = await c.read(buf).catch(() => null);
        if (n === null) break;
        chunks.push(...buf.subarray(0, n));
      }
      await c.write(new Uint8Array(chunks.reverse())).catch(() => {});
      c.close();
    }
  })();
  const stats = newForwardStats();
  const fwd = new TcpForwarder({
    listener: host.listenTcp({ hostname: "127.0.0.1", port: 0 }),
    dial: () => host.dialTcp("127.0.0.1", (up.addr as Deno.NetAddr).port),
    stats,
    bufferSize: 16,
    log,
  });
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: fwd.addr.port });
    await c.write(new TextEncoder().encode("abcdef"));
    await c.closeWrite();
    const buf = new Uint8Array(64);
    let text = "";
    for (;;) {
      const n = await c.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    c.close();
    assertEquals(text, "fedcba");
    await waitFor(() => stats.connectionsActive === 0, "connection accounted closed");
    assertEquals(stats.bytesIn, 6);
    assertEquals(stats.bytesOut, 6);
    // A connection held open is closed by fwd.close().
    const held = await Deno.connect({ hostname: "127.0.0.1", port: fwd.addr.port });
    await waitFor(() => stats.connectionsActive === 1, "second connection live");
    await fwd.close();
    assertEquals(await held.read(new Uint8Array(8)).catch(() => null), null);
    held.close();
    assertEquals(stats.connectionsActive, 0);
  } finally {
    await fwd.close();
    up.close();
    await served.catch(() => {});
  }
});
