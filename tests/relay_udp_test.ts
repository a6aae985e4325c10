/** UDP relay against real loopback sockets: per-client flows, idle expiry on an injected clock, table bound. */
import { RelayService } from "../src/services/relay/service.ts";
import type { UdpRelay } from "../src/services/relay/udp.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging } from "../src/util/log.ts";
import { receiveWithin } from "./helpers/udp.ts";
import { waitFor } from "./helpers/wait.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort as freeUdpPort } from "./helpers/ports.ts";
import { createHostNet } from "../src/net/host.ts";
import type { Net, NetAddr } from "../src/net/types.ts";
import type { DatagramHandler, HostUdpConn } from "../src/net/host_udp.ts";

configureLogging({ level: "error" });

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A UDP echo target: answers "echo <payload>" to whoever sent it; records the source ports it saw. */
function echoTarget() {
  const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const sources = new Set<number>();
  const done = (async () => {
    for (;;) {
      let msg: [Uint8Array, Deno.Addr];
      try {
        msg = await sock.receive();
      } catch {
        return;
      }
      const from = msg[1] as Deno.NetAddr;
      sources.add(from.port);
      await sock.send(enc.encode(`echo ${dec.decode(msg[0])}`), from).catch(() => {});
    }
  })();
  return {
    port: (sock.addr as Deno.NetAddr).port,
    sources,
    async close() {
      sock.close();
      await done;
    },
  };
}

async function startUdpRelay(line: string, clock?: ManualClock) {
  const svc = new RelayService({ clock });
  await svc.apply(parseRelayConfig({ RELAY_1: line, ENABLE_LOGGING: "n" }), true);
  return { svc, relay: svc.get("RELAY_1") as UdpRelay };
}

/**
 * Sends one datagram and waits for one reply (bounded by a timer). One datagram, not retries: the tests count
 * packets exactly, and these small bursts on loopback stay far below the sockets' receive buffers, so nothing
 * is lost; the bound is generous because a loaded CI machine can stall the relay's event loop for seconds.
 */
async function roundTrip(client: Deno.DatagramConn, port: number, payload: string): Promise<string> {
  await client.send(enc.encode(payload), { transport: "udp", hostname: "127.0.0.1", port });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`no reply to ${payload}`)), 30_000);
  });
  try {
    const [data] = await Promise.race([client.receive(), timeout]);
    return dec.decode(data);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("relay udp: 50 clients each get their own replies through per-client flows", async () => {
  const target = echoTarget();
  const inPort = freeUdpPort();
  const { svc, relay } = await startUdpRelay(`${inPort};${target.port};127.0.0.1;UDP`);
  const clients = Array.from(
    { length: 50 },
    () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }),
  );
  try {
    // Two rounds: the second reuses each client's flow.
    for (let round = 0; round < 2; round++) {
      const replies = await Promise.all(clients.map((c, i) => roundTrip(c, inPort, `c${i} r${round}`)));
      replies.forEach((r, i) => assertEquals(r, `echo c${i} r${round}`));
    }
    assertEquals(relay.flowCount, 50);
    assertEquals(target.sources.size, 50, "one upstream source port per client");
    const st = svc.status()[0];
    assertEquals(st.total, 50);
    assertEquals(st.packetsToTarget, 100);
    assertEquals(st.packetsToClient, 100);
  } finally {
    for (const c of clients) c.close();
    await svc.stop();
    await target.close();
  }
});

Deno.test("relay udp: idle flows expire after udp_timeout (injected clock)", async () => {
  const clock = new ManualClock();
  const target = echoTarget();
  const inPort = freeUdpPort();
  const { svc, relay } = await startUdpRelay(`${inPort};${target.port};127.0.0.1;UDP;udp_timeout=30`, clock);
  const a = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const b = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    assertEquals(await roundTrip(a, inPort, "a1"), "echo a1");
    assertEquals(await roundTrip(b, inPort, "b1"), "echo b1");
    assertEquals(relay.flowCount, 2);
    clock.advance(20_000);
    assertEquals(await roundTrip(a, inPort, "a2"), "echo a2"); // a is active again; b idles on
    clock.advance(15_000); // b idle 35 s > 30 s, a idle 15 s
    assertEquals(relay.flowCount, 1);
    assertEquals(relay.stats.flowsExpired, 1);
    clock.advance(30_000);
    assertEquals(relay.flowCount, 0);
    assertEquals(relay.stats.flowsExpired, 2);
    // A client whose flow expired simply gets a new one.
    assertEquals(await roundTrip(b, inPort, "b2"), "echo b2");
    assertEquals(relay.flowCount, 1);
    assertEquals(relay.stats.total, 3);
  } finally {
    a.close();
    b.close();
    await svc.stop();
    await target.close();
  }
  assertEquals(clock.pendingTimers, 0, "no timer left armed after stop");
});

Deno.test("relay udp: the flow table bound holds under a flood of new source ports", async () => {
  const target = echoTarget();
  const inPort = freeUdpPort();
  const MAX = 16;
  const { svc, relay } = await startUdpRelay(`${inPort};${target.port};127.0.0.1;UDP;max_flows=${MAX}`);
  const N = 300;
  const clients = Array.from(
    { length: N },
    () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }),
  );
  try {
    let maxSeen = 0;
    // Batches of 25 so the kernel's receive buffer never overflows (that would be a loss before the relay,
    // not a property of the relay); after each batch wait, bounded, until the relay has seen it.
    for (let i = 0; i < N; i += 25) {
      for (let j = i; j < Math.min(N, i + 25); j++) {
        await clients[j].send(enc.encode(`flood ${j}`), {
          transport: "udp",
          hostname: "127.0.0.1",
          port: inPort,
        });
      }
      for (let k = 0; k < 12_000 && relay.stats.total < Math.min(N, i + 25); k++) { // <= 60 s
        maxSeen = Math.max(maxSeen, relay.flowCount);
        await new Promise((r) => setTimeout(r, 5));
      }
      maxSeen = Math.max(maxSeen, relay.flowCount);
    }
    assertEquals(relay.stats.total, N);
    assert(maxSeen <= MAX, `flow table grew to ${maxSeen}`);
    assertEquals(relay.flowCount, MAX);
    assertEquals(relay.stats.flowsEvicted, N - MAX);
    // The newest client still has a working flow.
    const last = clients[N - 1];
    assertEquals(await roundTrip(last, inPort, "still here"), `echo flood ${N - 1}`); // the queued echo first
    const [again] = await receiveWithin(last, 'the echo of "still here"');
    assertEquals(dec.decode(again), "echo still here");
  } finally {
    for (const c of clients) c.close();
    await svc.stop();
    await target.close();
  }
});

Deno.test("relay udp: drops counted by the sockets themselves (batched queues) are in packetsDropped", async () => {
  const target = echoTarget();
  const inPort = freeUdpPort();
  const host = createHostNet();
  // Sockets that report their own drops, as a batched socket does for a full receive queue or a send the
  // kernel refused after send() had resolved.
  const reporting = (dropped: number): Net => ({
    ...host,
    name: host.name,
    listenUdp(opts) {
      const inner = host.listenUdp(opts);
      return {
        addr: inner.addr,
        send: (d, to) => inner.send(d, to),
        receive: () => inner.receive(),
        close: () => inner.close(),
        dropped,
      };
    },
  });
  const clock = new ManualClock();
  const svc = new RelayService({
    clock,
    listenNet: reporting(5),
    egress: { acquire: () => Promise.resolve({ net: reporting(2), release: () => {} }), key: () => "" },
  });
  const line = `${inPort};${target.port};127.0.0.1;UDP;udp_timeout=1`;
  await svc.apply(parseRelayConfig({ RELAY_1: line, ENABLE_LOGGING: "n" }), true);
  const client = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    assertEquals(await roundTrip(client, inPort, "one"), "echo one");
    assertEquals(svc.status()[0].packetsDropped, 5 + 2, "front socket 5 + the flow's upstream 2");
    clock.advance(5000); // the flow expires; its socket's drops stay counted
    assertEquals(svc.status()[0].active, 0);
    assertEquals(svc.status()[0].packetsDropped, 5 + 2);
  } finally {
    client.close();
    await svc.stop();
    await target.close();
  }
});

Deno.test("relay udp: datagrams held while a flow's target resolves reach it intact after later batches", async () => {
  const target = echoTarget();
  const inPort = freeUdpPort();
  // The target's name resolves only when the test says so; the calls show which flows have been seen.
  let calls = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => open = r);
  const resolver = {
    async resolve(_name: string) {
      calls++;
      await gate;
      return ["127.0.0.1"];
    },
  };
  const svc = new RelayService({ resolver });
  await svc.apply(
    parseRelayConfig({ RELAY_1: `${inPort};${target.port};echo.test;UDP`, ENABLE_LOGGING: "n" }),
    true,
  );
  const a = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const b = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: inPort };
  const N = 8;
  try {
    // a's datagrams wait in its flow's queue across several wake-ups of the relay's socket, whose receive
    // buffers are reused meanwhile (b's datagram is read after all of a's: one socket, in order); the queue
    // must hold copies, not views into those buffers.
    for (let i = 0; i < N / 2; i++) await a.send(enc.encode(`held ${i}`), to);
    await waitFor(() => calls === 1, "a's flow to start resolving");
    for (let i = N / 2; i < N; i++) await a.send(enc.encode(`held ${i}`), to);
    await b.send(enc.encode("b's first datagram, of another length"), to);
    await waitFor(() => calls === 2, "b's flow to start resolving, after a's datagrams were read");
    open();
    const got = new Set<string>();
    for (let i = 0; i < N; i++) got.add(dec.decode((await receiveWithin(a, `echo ${i}`))[0]));
    assertEquals([...got].sort(), Array.from({ length: N }, (_, i) => `echo held ${i}`).sort());
  } finally {
    open();
    a.close();
    b.close();
    await svc.stop();
    await target.close();
  }
});

Deno.test("relay udp: a datagram the flow's socket refuses in push form is counted once, by the socket", async () => {
  const inPort = freeUdpPort();
  const host = createHostNet();
  let refused = 0;
  // The flow's upstream socket: the host's push form, except that every sendNow() is refused (as a closed
  // socket or a wrong address family would be) and counted in its own `dropped`, as the host sockets do.
  const refusing: Net = {
    ...host,
    name: host.name,
    listenUdp(opts) {
      const inner = host.listenUdp(opts) as HostUdpConn;
      return {
        addr: inner.addr,
        batched: inner.batched,
        receiveHandlerErrors: 0,
        send: (d: Uint8Array, to: NetAddr) => inner.send(d, to),
        receive: () => inner.receive(),
        listen: (h: DatagramHandler, onWake?: () => void) => inner.listen(h, onWake),
        sendNow: () => {
          refused++;
          return false;
        },
        close: () => inner.close(),
        get dropped() {
          return refused;
        },
      } satisfies HostUdpConn;
    },
  };
  const svc = new RelayService({
    egress: { acquire: () => Promise.resolve({ net: refusing, release: () => {} }), key: () => "" },
  });
  await svc.apply(parseRelayConfig({ RELAY_1: `${inPort};9;127.0.0.1;UDP`, ENABLE_LOGGING: "n" }), true);
  const client = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: inPort };
    for (let i = 0; i < 3; i++) await client.send(enc.encode(`refused ${i}`), to);
    await waitFor(() => refused === 3, "the three datagrams to reach the flow's socket");
    const st = svc.status()[0];
    assertEquals(st.packetsDropped, 3, "each refused datagram once, not by the relay and the socket both");
    assertEquals(st.packetsToTarget, 0);
  } finally {
    client.close();
    await svc.stop();
  }
});
