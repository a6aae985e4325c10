/**
 * src/net/http1.ts against real peers: curl as the client of our server, Deno.serve as the server of our
 * client, and raw sockets for the malformed and hostile cases.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { run, waitFor } from "./helpers/interop.ts";
import { Hono } from "hono";
import { type ConnInfo, honoHandler, http1Fetch, http1Request, serveHttp1 } from "../src/net/http1.ts";
import { createHostNet } from "../src/net/host.ts";

const host = createHostNet();

function echoApp() {
  const app = new Hono<{ Bindings: ConnInfo }>();
  app.get("/who", (c) => c.json({ remote: c.env.remoteAddr.hostname, port: c.env.remoteAddr.port }));
  app.post("/echo", async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    return c.body(body, 200, { "x-len": String(body.length) });
  });
  app.get("/throw", () => {
    throw new Error("boom");
  });
  return app;
}

function startServer(limits = {}) {
  const listener = host.listenTcp({ hostname: "127.0.0.1", port: 0 });
  const server = serveHttp1(listener, honoHandler(echoApp()), { limits, keepAlive: true });
  return { server, base: `http://127.0.0.1:${server.addr.port}`, port: server.addr.port };
}

/** Sends raw bytes, half-closes, returns everything the server answered. */
async function raw(port: number, text: string | Uint8Array): Promise<string> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const data = typeof text === "string" ? new TextEncoder().encode(text) : text;
  for (let off = 0; off < data.length;) off += await c.write(data.subarray(off));
  await c.closeWrite().catch(() => {});
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (let i = 0; i < 10_000; i++) {
    const n = await c.read(buf).catch(() => null);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  c.close();
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((x) => [...x])));
}

function statusOf(response: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
}

Deno.test("http1 server: curl GET/POST, the remote address reaches the handler, keep-alive reuse", async () => {
  const { server, base } = startServer();
  try {
    const who = JSON.parse((await run(["curl", "-sS", `${base}/who`])).stdout);
    assertEquals(who.remote, "127.0.0.1");
    assert(who.port > 0);
    const posted = await run(["curl", "-sS", "-X", "POST", "--data-binary", "hello body", `${base}/echo`]);
    assertEquals(posted.stdout, "hello body");
    // Chunked request body.
    const chunked = await run([
      "curl",
      "-sS",
      "-H",
      "Transfer-Encoding: chunked",
      "--data-binary",
      "x".repeat(10_000),
      `${base}/echo`,
    ]);
    assertEquals(chunked.stdout, "x".repeat(10_000));
    // Expect: 100-continue is answered, so the body follows at once.
    const expect = await run([
      "curl",
      "-sS",
      "-H",
      "Expect: 100-continue",
      "--expect100-timeout",
      "30",
      "--max-time",
      "25", // without the interim 100 curl would wait the 30 s and fail here
      "--data-binary",
      "y".repeat(5000),
      `${base}/echo`,
    ]);
    assertEquals(expect.stdout, "y".repeat(5000));
    // Two URLs in one curl run share the connection (curl says "Re-using existing connection").
    const two = await run(["curl", "-sS", "-v", `${base}/who`, `${base}/who`]);
    assertStringIncludes(two.stderr.toLowerCase(), "re-using existing connection");
    // HEAD is answered with the GET route's headers and no body.
    const head = await run(["curl", "-sS", "-I", `${base}/who`]);
    assertStringIncludes(head.stdout, "HTTP/1.1 200");
    assertStringIncludes(head.stdout.toLowerCase(), "content-type: application/json");
  } finally {
    await server.close();
  }
});

Deno.test("http1 server: malformed and hostile requests get 4xx/5xx and never crash", async () => {
  const { server, port } = startServer({ maxBodyBytes: 1024, maxHeadBytes: 2048 });
  try {
    const cases: [string, number][] = [
      ["GARBAGE\r\n\r\n", 400],
      ["GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505],
      ["GET /who HTTP/1.1\r\n\r\n", 400], // no Host
      ["GET /who HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
      ["GET /who HTTP/1.1\nHost: x\n\n", 400], // bare LF
      ["GET /who HTTP/1.1\r\nHost : x\r\n\r\n", 400], // space before colon
      ["GET /who HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400],
      [
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
      ],
      ["POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400],
      ["POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400],
      ["POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501],
      ["POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413],
      ["POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400],
      [`GET /who HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(4000)}\r\n\r\n`, 431],
      [`GET /${"a".repeat(4000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
      ["GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      ["GET /throw HTTP/1.1\r\nHost: x\r\n\r\n", 500],
      ["POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 400], // body cut short
    ];
    for (const [req, want] of cases) {
      const res = await raw(port, req);
      assertEquals(statusOf(res), want, JSON.stringify(req.slice(0, 60)));
    }
    // Random bytes never crash the server; it still answers afterwards.
    let seed = 7;
    for (let i = 0; i < 50; i++) {
      const junk = new Uint8Array(1 + (i * 37) % 500);
      for (let j = 0; j < junk.length; j++) junk[j] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
      await raw(port, junk);
    }
    assertEquals(statusOf(await raw(port, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n")), 200);
    // Pipelined requests on one connection are answered in order; Connection: close ends it.
    const two = await raw(
      port,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none" +
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo",
    );
    assert(two.indexOf("one") > 0 && two.indexOf("two") > two.indexOf("one"), two);
    assertEquals(two.match(/HTTP\/1\.1 200/g)?.length, 2);
  } finally {
    await server.close();
  }
});

Deno.test("http1 server: slow heads and slow bodies are cut by the request timeout; connections are capped", async () => {
  const listener = host.listenTcp({ hostname: "127.0.0.1", port: 0 });
  const server = serveHttp1(listener, () => new Response("x"), {
    limits: { headTimeoutMs: 200 },
  });
  // A second server with a long timeout, so only the cap can close the third connection.
  const capped = serveHttp1(host.listenTcp({ hostname: "127.0.0.1", port: 0 }), () => new Response("x"), {
    maxConnections: 2,
  });
  try {
    for (const partial of ["GET / HT", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"]) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      await c.write(new TextEncoder().encode(partial));
      // Closed by the server, not by us. A reset is that close too: on a loaded machine the timeout can fire
      // before the server has read our bytes, and closing with unread data makes the kernel send RST.
      const n = await c.read(new Uint8Array(100)).catch((e) => {
        if (e instanceof Deno.errors.ConnectionReset) return null;
        throw e;
      });
      assertEquals(n, null, partial);
      c.close();
    }
    // Two idle connections fill the cap; a third is closed at once while they are held.
    const held = [
      await Deno.connect({ hostname: "127.0.0.1", port: capped.addr.port }),
      await Deno.connect({ hostname: "127.0.0.1", port: capped.addr.port }),
    ];
    await waitFor(() => capped.activeConnections === 2, "two connections served");
    const third = await Deno.connect({ hostname: "127.0.0.1", port: capped.addr.port });
    await third.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).catch(() => 0);
    assertEquals(await third.read(new Uint8Array(100)).catch(() => null), null);
    third.close();
    for (const c of held) c.close();
  } finally {
    await server.close();
    await capped.close();
  }
});

Deno.test("http1 client: Content-Length, chunked and close-delimited responses from Deno.serve and raw peers", async () => {
  const ac = new AbortController();
  const srv = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/stream") {
        const body = new ReadableStream({
          start(ctl) {
            for (let i = 0; i < 5; i++) ctl.enqueue(new TextEncoder().encode(`part${i};`));
            ctl.close();
          },
        });
        return new Response(body); // chunked
      }
      return new Response(`${req.method} ${path} ${await req.text()}`);
    },
  );
  // A raw HTTP/1.0-style server: no length, body ends at close.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const rawDone = (async () => {
    const c = await l.accept();
    await c.read(new Uint8Array(4096));
    await c.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nuntil close"));
    c.close();
  })();
  try {
    const a = await http1Fetch(host, "127.0.0.1", srv.addr.port, "/x", { method: "POST", body: "payload" });
    assertEquals(a.status, 200);
    assertEquals(a.text(), "POST /x payload");
    const b = await http1Fetch(host, "127.0.0.1", srv.addr.port, "/stream");
    assertEquals(b.text(), "part0;part1;part2;part3;part4;");
    const c = await http1Fetch(host, "127.0.0.1", (l.addr as Deno.NetAddr).port, "/");
    assertEquals(c.text(), "until close");
    assertEquals(c.headers.get("x-a"), "b");
    // A response larger than the limit is refused.
    const conn = await host.dialTcp("127.0.0.1", srv.addr.port);
    let refused = false;
    try {
      await http1Request(conn, { path: "/stream", host: "x" }, { maxBodyBytes: 10 });
    } catch (e) {
      refused = String((e as Error).message).includes("larger");
    } finally {
      conn.close();
    }
    assert(refused, "oversized response refused");
    await rawDone;
  } finally {
    l.close();
    ac.abort();
    await srv.finished;
  }
});
