/**
 * rps + rpc end to end on loopback, with real kernel peers (curl, socat, Deno sockets) on the public and the
 * local side. The "tunnel" is loopback with identities 127.0.0.x (rp_loopback_net.ts); the real WireGuard
 * tunnel is exercised by the process tests.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./helpers/assert.ts";
import { run, waitFor } from "./helpers/interop.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { parseRoute, RpClient, RpClientError } from "../src/services/rp/client.ts";
import { createHostNet } from "../src/net/host.ts";
import { type Clock, ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { freePort, LoopbackTunnel } from "./rp_loopback_net.ts";
import { echoWithRetry } from "./helpers/udp.ts";

const host = createHostNet();
const SERVER_IP = "127.0.0.1";
/** rpc's start retries until the server answers; generous for a loaded CI machine (it answers at once here). */
const START_TIMEOUT_MS = 30_000;

function startServer(loop: LoopbackTunnel, apiPort: number, opts: { clock?: Clock } = {}): RpServer {
  const server = new RpServer({
    tunnelNet: loop.node(SERVER_IP),
    hostNet: host,
    publicBind: "127.0.0.1",
    clock: opts.clock,
  });
  server.serveApi([SERVER_IP], apiPort);
  return server;
}

function newClient(
  loop: LoopbackTunnel,
  ip: string,
  apiPort: number,
  routes: string[],
  extra: Partial<ConstructorParameters<typeof RpClient>[0]> = {},
) {
  return new RpClient({
    tunnelNet: loop.node(ip),
    hostNet: host,
    routes: routes.map(parseRoute),
    serverApi: { host: SERVER_IP, port: apiPort },
    clientIp: ip,
    backoffInitialMs: 50,
    backoffMaxMs: 400,
    ...extra,
  });
}

function helloService(): { port: number; close: () => Promise<void> } {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => new Response(`hello from the local service: ${new URL(req.url).pathname}\n`),
  );
  return { port: server.addr.port, close: () => (ac.abort(), server.finished) };
}

async function curl(url: string): Promise<string> {
  return (await run(["curl", "-sS", "--max-time", "30", url])).stdout;
}

Deno.test("rp loopback: curl to the public port reaches the local HTTP service; stop deletes the mapping", async () => {
  const loop = new LoopbackTunnel();
  const apiPort = freePort(), publicPort = freePort();
  const hello = helloService();
  const server = startServer(loop, apiPort);
  const client = newClient(loop, "127.0.0.2", apiPort, [`localhost:${hello.port}-${publicPort}`]);
  try {
    await client.start(START_TIMEOUT_MS);
    assertEquals(client.routeStates, ["registered"]);
    assertEquals(await curl(`http://127.0.0.1:${publicPort}/page`), "hello from the local service: /page\n");
    const [m] = server.listAll();
    assertEquals(m.client_ip, "127.0.0.2");
    assertEquals(m.local_addr, `localhost:${hello.port}`);
    await waitFor(() => server.listAll()[0].bytes_out > 0, "byte counters to move");
    assertEquals(server.listAll()[0].connections_total, 1);
    await client.stop();
    assertEquals(server.listAll().length, 0, "SIGTERM path deletes the mapping at once");
    const refused = await run(["curl", "-sS", "--max-time", "5", `http://127.0.0.1:${publicPort}/`], {
      check: false,
    });
    assert(refused.code !== 0, "public port closed");
  } finally {
    await client.stop();
    await server.close();
    await hello.close();
  }
});

/** A TCP service: reads the request until FIN, then sends `size` bytes of a seeded stream and closes. */
function streamService(size: number, seed: number): { port: number; done: Promise<void> } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const c = await l.accept();
    l.close();
    const sink = new Uint8Array(1024);
    while ((await c.read(sink)) !== null) { /* request consumed until half-close */ }
    const rng = seededRandom(seed);
    const chunk = new Uint8Array(64 * 1024);
    for (let sent = 0; sent < size;) {
      const n = Math.min(chunk.length, size - sent);
      rng(chunk.subarray(0, n));
      let off = 0;
      while (off < n) off += await c.write(chunk.subarray(off, n));
      sent += n;
    }
    c.close();
  })();
  return { port: (l.addr as Deno.NetAddr).port, done };
}

Deno.test("rp loopback: a 64 MiB download through a mapping is byte-exact, with half-close carried", async () => {
  const SIZE = 64 * 1024 * 1024, SEED = 42;
  const loop = new LoopbackTunnel();
  const apiPort = freePort(), publicPort = freePort();
  const svc = streamService(SIZE, SEED);
  const server = startServer(loop, apiPort);
  const client = newClient(loop, "127.0.0.2", apiPort, [`127.0.0.1:${svc.port}-${publicPort}`]);
  try {
    await client.start(START_TIMEOUT_MS);
    const c = await Deno.connect({ hostname: "127.0.0.1", port: publicPort });
    await c.write(new TextEncoder().encode("GET\n"));
    await c.closeWrite(); // the service only answers after our FIN crossed both hops
    const expect = seededRandom(SEED);
    const buf = new Uint8Array(256 * 1024), want = new Uint8Array(256 * 1024);
    let got = 0;
    for (;;) {
      const n = await c.read(buf);
      if (n === null) break;
      expect(want.subarray(0, n));
      for (let i = 0; i < n; i++) {
        if (buf[i] !== want[i]) throw new Error(`byte ${got + i} differs`);
      }
      got += n;
      assert(got <= SIZE, "no extra bytes");
    }
    c.close();
    assertEquals(got, SIZE);
    await svc.done;
    await waitFor(() => server.listAll()[0]?.bytes_out === SIZE, "rps byte counter to reach 64 MiB");
  } finally {
    await client.stop();
    await server.close();
  }
});

Deno.test("rp loopback: a socat UDP echo answers through a /udp mapping from 20 client ports", async () => {
  const loop = new LoopbackTunnel();
  const apiPort = freePort(), publicPort = freePort(), echoPort = freePort();
  // In a process group of its own (setsid execs socat in place): its fork children, one per client port, go
  // with it at the end instead of outliving the test until their 30 s inactivity timeout.
  const socat = new Deno.Command("setsid", {
    args: ["socat", "-T", "30", `UDP4-RECVFROM:${echoPort},bind=127.0.0.1,fork,reuseaddr`, "PIPE"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const server = startServer(loop, apiPort);
  const client = newClient(loop, "127.0.0.3", apiPort, [`127.0.0.1:${echoPort}-${publicPort}/udp`]);
  const sockets: Deno.DatagramConn[] = [];
  try {
    // socat binds asynchronously; a datagram before that would be refused and its flow counted anyway.
    await waitFor(
      async () => (await run(["ss", "-Hlun", `sport = :${echoPort}`])).stdout.trim() !== "",
      "socat UDP echo listening",
    );
    await client.start(START_TIMEOUT_MS);
    assertEquals(server.listAll()[0].protocol, "udp");
    for (let i = 0; i < 20; i++) {
      sockets.push(Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }));
    }
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: publicPort };
    await Promise.all(sockets.map((s, i) => echoWithRetry(s, to, `datagram from client socket ${i}`)));
    const m = server.listAll()[0];
    assertEquals(m.connections_total, 20, "one flow per client port");
  } finally {
    for (const s of sockets) s.close();
    await client.stop();
    await server.close();
    Deno.kill(-socat.pid, "SIGKILL");
    await socat.status;
  }
});

Deno.test("rp loopback: rpc re-registers after an rps restart and after an outage, with backoff", async () => {
  const loop = new LoopbackTunnel();
  const apiPort = freePort(), publicPort = freePort();
  const hello = helloService();
  const clock = new ManualClock(1_000_000, Date.now());
  let server = startServer(loop, apiPort);
  const client = newClient(loop, "127.0.0.2", apiPort, [`127.0.0.1:${hello.port}-${publicPort}`], {
    clock,
    heartbeatIntervalMs: 20_000,
    backoffInitialMs: 1000,
    backoffMaxMs: 8000,
  });
  try {
    await client.start(START_TIMEOUT_MS);
    const firstStartup = client.serverStartupTime!;
    await server.close();
    // The server is gone: heartbeats fail and the retry delay doubles up to the cap.
    clock.advance(20_000);
    await waitFor(() => client.failures === 1, "first failed heartbeat");
    assertEquals(client.reachable, false);
    assertEquals(client.nextAttemptInMs, 1000);
    for (const expected of [2000, 4000, 8000, 8000]) {
      const before = client.failures;
      clock.advance(client.nextAttemptInMs);
      await waitFor(() => client.failures === before + 1, "next failed attempt");
      assertEquals(client.nextAttemptInMs, expected);
    }
    // A new server process comes up on the same address one second later (startup times are whole seconds;
    // its clock is a ManualClock instead of a sleep).
    server = startServer(loop, apiPort, { clock: new ManualClock(0, (firstStartup + 1) * 1000) });
    assertEquals(server.startupTime, firstStartup + 1);
    clock.advance(client.nextAttemptInMs);
    await waitFor(() => client.reachable && server.listAll().length === 1, "re-registration");
    assertEquals(client.reregistrations, 1);
    assertEquals(client.serverStartupTime, server.startupTime);
    assertEquals(
      await curl(`http://127.0.0.1:${publicPort}/again`),
      "hello from the local service: /again\n",
    );
  } finally {
    await client.stop();
    await server.close();
    await hello.close();
  }
});

Deno.test("rp loopback: two clients, one port — the second is refused and start() says why", async () => {
  const loop = new LoopbackTunnel();
  const apiPort = freePort(), publicPort = freePort();
  const hello = helloService();
  const server = startServer(loop, apiPort);
  const a = newClient(loop, "127.0.0.2", apiPort, [`127.0.0.1:${hello.port}-${publicPort}`]);
  const b = newClient(loop, "127.0.0.3", apiPort, [`127.0.0.1:${hello.port}-${publicPort}`]);
  try {
    await a.start(START_TIMEOUT_MS);
    const e = await assertRejects(() => b.start(START_TIMEOUT_MS));
    assert(e instanceof RpClientError);
    assertStringIncludes(e.message, "409");
    assertEquals(server.listAll().map((m) => m.client_ip), ["127.0.0.2"]);
  } finally {
    await a.stop();
    await b.stop();
    await server.close();
    await hello.close();
  }
});

Deno.test("rp loopback: rpc start fails clearly when the server API does not answer", async () => {
  const loop = new LoopbackTunnel();
  const client = newClient(loop, "127.0.0.2", freePort(), ["127.0.0.1:1-20000"]);
  const e = await assertRejects(() => client.start(300));
  assert(e instanceof RpClientError);
  assertStringIncludes(e.message, "not reachable");
});

Deno.test("rp routes: split at the last '-', IPv6 brackets, protocol suffix, clear errors", () => {
  assertEquals(parseRoute("my-host.example:8080-9090"), {
    spec: "my-host.example:8080-9090",
    localHost: "my-host.example",
    localPort: 8080,
    remotePort: 9090,
    protocol: "tcp",
  });
  assertEquals(parseRoute("[::1]:53-5353/udp").localHost, "::1");
  assertEquals(parseRoute("[::1]:53-5353/UDP").protocol, "udp");
  assertEquals(parseRoute("localhost:80-80/tcp").remotePort, 80);
  for (
    const bad of [
      "localhost:80",
      "80-80",
      "::1:80-80",
      "host:0-80",
      "host:80-70000",
      "host:80-80/sctp",
      "h st:1-2",
    ]
  ) {
    let threw = false;
    try {
      parseRoute(bad);
    } catch (e) {
      threw = true;
      assertStringIncludes((e as Error).message, bad);
    }
    assert(threw, `${bad} rejected`);
  }
});
