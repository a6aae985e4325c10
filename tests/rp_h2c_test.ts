/**
 * The rps API speaks h2c with prior knowledge (what the released wg-rp rpc sends: Go's
 * SetUnencryptedHTTP2) and HTTP/1.1 on the same port: wg-rp's sequence on one reused HTTP/2 connection (as Go
 * keeps it), curl --http2-prior-knowledge, HTTP/1.1 beside it, and the bounds (streams per connection
 * advertised, connections per client, body size, a preface that never completes).
 */
import * as http2 from "node:http2";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { run } from "./helpers/interop.ts";
import { within } from "./helpers/tcp.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { http1Fetch } from "../src/net/http1.ts";
import { createHostNet } from "../src/net/host.ts";
import { freePort, LoopbackTunnel } from "./rp_loopback_net.ts";
import { waitFor } from "./helpers/interop.ts";
import { memoryConnPair } from "./helpers/memory_net.ts";
import { H2_PREFACE, serveHttpConn } from "../src/net/http2.ts";
import { ManualClock } from "../src/util/clock.ts";

const host = createHostNet();

function helloService(): { port: number; close: () => Promise<void> } {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => new Response(`hello over h2-registered mapping: ${new URL(req.url).pathname}\n`),
  );
  return { port: server.addr.port, close: () => (ac.abort(), server.finished) };
}

interface H2Answer {
  status: number;
  json: Record<string, unknown>;
}

/** One request on an open HTTP/2 session (bounded). */
function h2Request(
  session: http2.ClientHttp2Session,
  method: string,
  path: string,
  body?: string,
): Promise<H2Answer> {
  const req = session.request({
    ":method": method,
    ":path": path,
    ...(body !== undefined ? { "content-type": "application/json" } : {}),
  });
  const answer = new Promise<H2Answer>((resolve, reject) => {
    let status = 0;
    const chunks: Uint8Array[] = [];
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => {
      const text = new TextDecoder().decode(
        chunks.reduce((a, c) => {
          const o = new Uint8Array(a.length + c.length);
          o.set(a);
          o.set(c, a.length);
          return o;
        }, new Uint8Array(0)),
      );
      try {
        resolve({ status, json: JSON.parse(text) });
      } catch (e) {
        reject(new Error(`${method} ${path}: not JSON (${status}): ${text} (${e})`));
      }
    });
    req.on("error", reject);
  });
  req.end(body);
  return within(answer, `${method} ${path} over HTTP/2`);
}

function startServer(loop: LoopbackTunnel, apiPort: number): RpServer {
  const server = new RpServer({ tunnelNet: loop.node("127.0.0.1"), hostNet: host, publicBind: "127.0.0.1" });
  server.serveApi(["127.0.0.1"], apiPort);
  return server;
}

Deno.test({
  name: "rp h2c: wg-rp's sequence on one reused HTTP/2 connection; HTTP/1.1 and curl on the same port",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const loop = new LoopbackTunnel();
    const apiPort = freePort(), publicPort = freePort();
    const hello = helloService();
    const server = startServer(loop, apiPort);
    const session = http2.connect(`http://127.0.0.1:${apiPort}`);
    session.on("error", () => {});
    try {
      // Availability check, register, heartbeat, public port, delete: one connection, as Go's client keeps it.
      const hb = await h2Request(session, "POST", "/api/v1/heartbeat", '{"client_ip":"127.0.0.1"}');
      assertEquals(hb.status, 200);
      assertEquals(hb.json.server_startup_time, server.startupTime);
      assertEquals(hb.json.protocols, ["tcp", "udp"]);
      const created = await h2Request(
        session,
        "POST",
        "/api/v1/port-mappings",
        JSON.stringify({
          local_addr: `127.0.0.1:${hello.port}`,
          remote_port: publicPort,
          client_ip: "127.0.0.1",
          client_port: hello.port,
        }),
      );
      assertEquals(created.status, 200, JSON.stringify(created.json));
      assertEquals(created.json.success, true);
      const hb2 = await h2Request(session, "POST", "/api/v1/heartbeat", '{"client_ip":"127.0.0.1"}');
      assertEquals(hb2.json.mappings, [{
        protocol: "tcp",
        remote_port: publicPort,
        client_port: hello.port,
      }]);
      const page = await within(fetch(`http://127.0.0.1:${publicPort}/x`), "the public port");
      assertEquals(await page.text(), "hello over h2-registered mapping: /x\n");

      // HTTP/1.1 on the same port, meanwhile.
      const h1 = await http1Fetch(loop.node("127.0.0.1"), "127.0.0.1", apiPort, "/api/v1/port-mappings");
      assertEquals(h1.status, 200);
      assertEquals((h1.json() as { mappings: unknown[] }).mappings.length, 1);
      // curl with prior knowledge (a fresh connection).
      const curl = await run([
        "curl",
        "-sS",
        "--max-time",
        "30",
        "--http2-prior-knowledge",
        "-w",
        "\n%{http_version} %{http_code}",
        `http://127.0.0.1:${apiPort}/api/v1/port-mappings`,
      ]);
      assertStringIncludes(curl.stdout, `"remote_port":${publicPort}`);
      assert(curl.stdout.trimEnd().endsWith("\n2 200"), curl.stdout);

      // Framework answers (404, 413) are JSON over HTTP/2 too.
      const missing = await h2Request(session, "GET", "/api/v1/nope");
      assertEquals([missing.status, missing.json.success], [404, false]);
      const big = await h2Request(session, "POST", "/api/v1/heartbeat", `{"pad":"${"x".repeat(70_000)}"}`);
      assertEquals(big.status, 413);

      const deleted = await h2Request(session, "DELETE", `/api/v1/port-mappings?port=${publicPort}`);
      assertEquals(deleted.status, 200);
      assertEquals(server.listAll().length, 0);
      // Still the same session all along.
      assert(!session.closed && !session.destroyed, "one HTTP/2 connection served the whole sequence");
      assertEquals(session.remoteSettings.maxConcurrentStreams, 16, "streams per connection advertised");
    } finally {
      session.destroy();
      await server.close();
      await hello.close();
    }
  },
});

Deno.test({
  name:
    "rp h2c: connections per client are bounded (HTTP/1.1 and HTTP/2 alike); a freed slot is usable again",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const loop = new LoopbackTunnel();
    const apiPort = freePort();
    const server = startServer(loop, apiPort);
    const conns: Deno.Conn[] = [];
    try {
      // Eight idle connections from one address are held; the ninth is closed at accept.
      for (let i = 0; i < 8; i++) conns.push(await within(Deno.connect({ port: apiPort }), "connect"));
      const ninth = await within(Deno.connect({ port: apiPort }), "connect");
      conns.push(ninth);
      const n = await within(ninth.read(new Uint8Array(16)).catch(() => null), "the ninth to be closed");
      assertEquals(n, null);
      // Once one of the eight goes, the client may connect again.
      conns[0].close();
      await waitFor(async () => {
        const c = await within(Deno.connect({ port: apiPort }), "connect");
        conns.push(c);
        await c.write(new TextEncoder().encode("GET /api/v1/port-mappings HTTP/1.1\r\nHost: x\r\n\r\n"));
        const buf = new Uint8Array(64);
        const got = await within(c.read(buf).catch(() => null), "an answer or a close");
        return got !== null && new TextDecoder().decode(buf.subarray(0, got)).startsWith("HTTP/1.1 200");
      }, "a connection slot to free up");
    } finally {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await server.close();
    }
  },
});

Deno.test("rp h2c: a preface that never completes is closed at the head timeout (manual clock)", async () => {
  const clock = new ManualClock();
  const [client, server] = memoryConnPair(
    { transport: "tcp", hostname: "10.0.0.2", port: 40000 },
    { transport: "tcp", hostname: "10.0.0.1", port: 80 },
  );
  const served = serveHttpConn(server, () => new Response("never"), {
    clock,
    limits: { headTimeoutMs: 10_000 },
  });
  await client.write(new TextEncoder().encode("PRI * HTTP/2.0\r\n"));
  clock.advance(9_999);
  assert(!server.closed, "still waiting within the head timeout");
  clock.advance(1);
  await within(served, "the connection to be given up");
  assert(server.closed, "closed at the head timeout");
});

/** An HTTP/2 frame (RFC 9113 §4.1): 24-bit length, type, flags, stream id, payload. */
function h2Frame(
  type: number,
  flags: number,
  stream: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const f = new Uint8Array(9 + payload.length);
  const v = new DataView(f.buffer);
  v.setUint32(0, payload.length << 8);
  f[3] = type;
  f[4] = flags;
  v.setUint32(5, stream);
  f.set(payload, 9);
  return f;
}

Deno.test("rp h2c: streams past the per-connection bound are refused, the others stay open (raw frames)", async () => {
  const [client, server] = memoryConnPair(
    { transport: "tcp", hostname: "10.0.0.2", port: 40001 },
    { transport: "tcp", hostname: "10.0.0.1", port: 80 },
  );
  const clock = new ManualClock();
  const served = serveHttpConn(server, () => new Response("{}"), {
    maxStreamsPerConn: 4,
    clock,
    limits: { headTimeoutMs: 10_000 },
  });
  // A request's header block from HPACK's static table only: POST, /, http, and :authority "x" (a literal
  // without indexing). No END_STREAM: each stream stays open waiting for a body.
  const block = new Uint8Array([0x83, 0x84, 0x86, 0x01, 0x01, 0x78]);
  const out: Uint8Array[] = [H2_PREFACE, h2Frame(4, 0, 0)];
  for (let i = 0; i < 6; i++) out.push(h2Frame(1, 0x4, 1 + 2 * i, block));
  for (const b of out) await client.write(b);
  const resets = new Map<number, number>();
  let pending = new Uint8Array(0);
  const buf = new Uint8Array(16 * 1024);
  try {
    await within(
      (async () => {
        while (resets.size < 2) {
          const n = await client.read(buf);
          if (n === null) throw new Error("the server closed the connection");
          const joined = new Uint8Array(pending.length + n);
          joined.set(pending);
          joined.set(buf.subarray(0, n), pending.length);
          let off = 0;
          while (joined.length - off >= 9) {
            const v = new DataView(joined.buffer, off);
            const len = v.getUint32(0) >>> 8;
            if (joined.length - off < 9 + len) break;
            const type = joined[off + 3], flags = joined[off + 4], stream = v.getUint32(5) & 0x7fffffff;
            if (type === 4 && (flags & 1) === 0) await client.write(h2Frame(4, 1, 0)); // ACK its SETTINGS
            if (type === 3) resets.set(stream, v.getUint32(9));
            if (type === 7) throw new Error("GOAWAY instead of refusing the extra streams");
            off += 9 + len;
          }
          pending = joined.slice(off);
        }
      })(),
      "the extra streams to be reset",
    );
    assertEquals([...resets.keys()].sort((a, b) => a - b), [9, 11], "only the 5th and 6th streams reset");
    for (const code of resets.values()) {
      assert(code === 7 || code === 1, `REFUSED_STREAM or PROTOCOL_ERROR: ${code}`);
    }
    // The client goes away with four streams still waiting for their bodies: they end at the head timeout,
    // and the connection with them.
    client.close();
    clock.advance(10_000);
    await within(served, "the connection to end");
    assert(server.closed, "the server side is closed");
  } finally {
    client.close();
  }
});

Deno.test({
  name: "rp h2c: the per-client request rate holds on HTTP/2 too (429 on the same session)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const loop = new LoopbackTunnel();
    const apiPort = freePort();
    const clock = new ManualClock(); // no time passes: the bucket does not refill
    const server = new RpServer({
      tunnelNet: loop.node("127.0.0.1"),
      hostNet: host,
      publicBind: "127.0.0.1",
      clock,
      apiLimits: { requestsPerSecond: 1, requestBurst: 3 },
    });
    server.serveApi(["127.0.0.1"], apiPort);
    const session = http2.connect(`http://127.0.0.1:${apiPort}`);
    session.on("error", () => {});
    try {
      const statuses: number[] = [];
      let refusal = "";
      for (let i = 0; i < 5; i++) {
        const r = await h2Request(session, "POST", "/api/v1/heartbeat", "{}");
        statuses.push(r.status);
        if (r.status === 429) refusal = String(r.json.message);
      }
      assertEquals(statuses, [200, 200, 200, 429, 429]);
      assertStringIncludes(refusal, "too many requests from 127.0.0.1");
      clock.advance(1000);
      assertEquals((await h2Request(session, "POST", "/api/v1/heartbeat", "{}")).status, 200);
    } finally {
      session.destroy();
      await server.close();
    }
  },
});
