/**
 * The rps API is shared by every tunnel client: one of them holding connections or flooding requests must not
 * keep another's heartbeats out (its mappings would expire), and a client that stops reading its answer is cut
 * at the response deadline. In-memory connections (each with its own tunnel source address) into the real
 * RpServer API; a ManualClock drives the token buckets and the deadlines.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { within } from "./helpers/tcp.ts";
import { type MemoryConn, memoryConnPair } from "./helpers/memory_net.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { http1Request, serveConn } from "../src/net/http1.ts";
import { serveHttpConn } from "../src/net/http2.ts";
import { ManualClock } from "../src/util/clock.ts";
import type { Conn, DatagramConn, Listener, Net, NetAddr } from "../src/net/types.ts";

/** A listener whose connections a test opens from any source address. */
class MemoryListener implements Listener {
  readonly addr: NetAddr = { transport: "tcp", hostname: "10.0.0.1", port: 80 };
  #queue: Conn[] = [];
  #waiting: { resolve: (c: Conn) => void; reject: (e: Error) => void }[] = [];
  #closed = false;
  #nextPort = 40000;

  /** Opens a connection from `source`; returns the client end. */
  connect(source: string): MemoryConn {
    const [client, server] = memoryConnPair(
      { transport: "tcp", hostname: source, port: this.#nextPort++ },
      this.addr,
    );
    const w = this.#waiting.shift();
    if (w) w.resolve(server);
    else this.#queue.push(server);
    return client;
  }

  accept(): Promise<Conn> {
    if (this.#closed) return Promise.reject(new Error("listener closed"));
    const c = this.#queue.shift();
    if (c) return Promise.resolve(c);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w.reject(new Error("listener closed"));
  }

  async *[Symbol.asyncIterator](): AsyncIterableIterator<Conn> {
    for (;;) yield await this.accept();
  }
}

function tunnelNetWith(listener: MemoryListener): Net {
  return {
    name: "memory-tunnel",
    dialTcp: () => Promise.reject(new Error("no dials in this test")),
    listenTcp: () => listener,
    listenUdp: (): DatagramConn => {
      throw new Error("no UDP in this test");
    },
  };
}

function startServer(clock: ManualClock) {
  const listener = new MemoryListener();
  const server = new RpServer({
    tunnelNet: tunnelNetWith(listener),
    hostNet: tunnelNetWith(listener),
    clock,
    apiLimits: { connectionsPerClient: 4, requestsPerSecond: 2, requestBurst: 20, responseTimeoutMs: 5_000 },
  });
  server.serveApi(["10.0.0.1"]);
  return { listener, server };
}

async function heartbeat(listener: MemoryListener, source: string) {
  const conn = listener.connect(source);
  try {
    return await within(
      http1Request(conn, { method: "POST", path: "/api/v1/heartbeat", host: "10.0.0.1", body: "{}" }),
      `${source}'s heartbeat answer`,
    );
  } finally {
    conn.close();
  }
}

Deno.test("rps fairness: a client holding its connections cannot keep another's heartbeat out", async () => {
  const clock = new ManualClock();
  const { listener, server } = startServer(clock);
  const held: MemoryConn[] = [];
  try {
    // 10.0.0.66 opens far more connections than its share and sends nothing on them.
    for (let i = 0; i < 50; i++) held.push(listener.connect("10.0.0.66"));
    const r = await heartbeat(listener, "10.0.0.2");
    assertEquals(r.status, 200, r.text());
    // Only its share stays open: the rest were closed at accept.
    const buf = new Uint8Array(16);
    const closed = await within(
      Promise.all(held.slice(4).map((c) => c.read(buf).catch(() => null))),
      "the connections past the share to be closed",
    );
    assert(closed.every((n) => n === null), "connections past connectionsPerClient are closed");
  } finally {
    for (const c of held) c.close();
    await server.close();
  }
});

Deno.test("rps fairness: a flooding client gets 429 with Retry-After; another client's heartbeat still passes", async () => {
  const clock = new ManualClock();
  const { listener, server } = startServer(clock);
  try {
    const statuses: number[] = [];
    let refusal = "";
    let retryAfter: string | null = null;
    for (let i = 0; i < 60; i++) {
      const r = await heartbeat(listener, "10.0.0.66");
      statuses.push(r.status);
      if (r.status === 429) {
        refusal = r.text();
        retryAfter = r.headers.get("retry-after");
      }
    }
    assertEquals(statuses.filter((s) => s === 200).length, 20, "the burst passes");
    assertEquals(statuses.filter((s) => s === 429).length, 40, "the rest are refused");
    assertStringIncludes(refusal, "too many requests from 10.0.0.66");
    assertEquals(retryAfter, "1");
    // Meanwhile another tunnel client's heartbeat is answered.
    const other = await heartbeat(listener, "10.0.0.2");
    assertEquals(other.status, 200, other.text());
    // The flooder's bucket refills with time (2/s): after a second it may send two more.
    clock.advance(1000);
    assertEquals((await heartbeat(listener, "10.0.0.66")).status, 200);
    assertEquals((await heartbeat(listener, "10.0.0.66")).status, 200);
    assertEquals((await heartbeat(listener, "10.0.0.66")).status, 429);
  } finally {
    await server.close();
  }
});

Deno.test("http1: a client that does not read its answer is cut at the response deadline (manual clock)", async () => {
  const clock = new ManualClock();
  const [client, server] = memoryConnPair(
    { transport: "tcp", hostname: "10.0.0.2", port: 40000 },
    { transport: "tcp", hostname: "10.0.0.1", port: 80 },
  );
  const big = "x".repeat(256 * 1024);
  let called!: () => void;
  const handlerCalled = new Promise<void>((r) => called = r);
  const served = serveConn(server, () => {
    called(); // the response deadline is armed before the handler runs
    return new Response(big);
  }, { clock, limits: { headTimeoutMs: 10_000, responseTimeoutMs: 5_000 } });
  server.stalled = true; // the client's receive window is full: the server's writes do not complete
  await client.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await within(handlerCalled, "the handler to be called");
  clock.advance(4_999);
  assert(!server.closed, "still within the response deadline");
  clock.advance(1);
  await within(served, "the connection to be given up at the response deadline");
  assert(server.closed, "closed at the response deadline");
});

Deno.test("http1 and h2c: a handler that never answers is cut at the response deadline (manual clock)", async () => {
  for (const serve of [serveConn, serveHttpConn]) {
    const clock = new ManualClock();
    const [client, server] = memoryConnPair(
      { transport: "tcp", hostname: "10.0.0.2", port: 40001 },
      { transport: "tcp", hostname: "10.0.0.1", port: 80 },
    );
    let called!: () => void;
    const handlerCalled = new Promise<void>((r) => called = r);
    const served = serve(server, () => {
      called();
      return new Promise<Response>(() => {});
    }, { clock, limits: { headTimeoutMs: 10_000, responseTimeoutMs: 5_000 } });
    await client.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await within(handlerCalled, "the handler to be called");
    clock.advance(5_000);
    await within(served, `${serve.name}: the connection to be given up at the response deadline`);
    assert(server.closed, "closed at the response deadline");
  }
});
