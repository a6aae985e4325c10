/**
 * The SOCKS5 and HTTP proxy servers over in-memory Nets (no sockets; a ManualClock for the handshake bound):
 * CONNECT, auth failures, malformed input answered with the protocol's error and counted, the connection
 * limit, the handshake timeout, and the UDP relay's rules (FRAG != 0 dropped, foreign sources dropped,
 * unsolicited answers dropped, the association ending with its TCP connection).
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { type MemoryConn, memoryConnPair, MemoryNet } from "./helpers/memory_net.ts";
import type { Conn, DatagramConn, Listener, ListenOptions, Net, NetAddr } from "../src/net/types.ts";
import { MapResolver } from "../src/net/resolve.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging } from "../src/util/log.ts";
import type { ProxySpec } from "../src/config/proxy.ts";
import { ProxyServer } from "../src/services/proxy/server.ts";
import { statusRow } from "../src/services/proxy/report.ts";
import { renderDashboard } from "../src/services/admin/dashboard.ts";
import {
  encodeGreeting,
  encodeRequest,
  encodeUdpDatagram,
  encodeUserPass,
  parseRequest,
  parseUdpDatagram,
  SOCKS_CMD_BIND,
  SOCKS_CMD_CONNECT,
  SOCKS_CMD_UDP_ASSOCIATE,
} from "../src/wire/socks5.ts";

configureLogging({ level: "error" });

const enc = new TextEncoder(), dec = new TextDecoder();
/** Bound on every await of a reply: the in-memory world answers at once, so this only ends a broken test. */
const BOUND_MS = 5000;

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${BOUND_MS} ms`)), BOUND_MS);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

async function readN(c: Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await bounded(c.read(out.subarray(got)), `${n} bytes`);
    if (k === null) throw new Error(`closed after ${got} of ${n} bytes`);
    got += k;
  }
  return out;
}

async function readToEnd(c: Conn): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const n = await bounded(c.read(buf), "end of stream");
    if (n === null) return text;
    text += dec.decode(buf.subarray(0, n));
  }
}

// ---- an in-memory UDP world ---------------------------------------------------------------------------

class MemUdp implements DatagramConn {
  readonly #queue: [Uint8Array, NetAddr][] = [];
  readonly #waiters: { resolve: (v: [Uint8Array, NetAddr]) => void; reject: (e: Error) => void }[] = [];
  closed = false;

  constructor(readonly hub: UdpHub, readonly addr: NetAddr) {}

  deliver(data: Uint8Array, from: NetAddr): void {
    if (this.closed) return;
    const w = this.#waiters.shift();
    if (w) w.resolve([data, from]);
    else this.#queue.push([data, from]);
  }

  send(data: Uint8Array, to: NetAddr): Promise<number> {
    this.hub.sent.push({ from: this.addr, to, data: data.slice() });
    this.hub.sockets.get(`${to.hostname}:${to.port}`)?.deliver(data.slice(), this.addr);
    return Promise.resolve(data.length);
  }

  receive(): Promise<[Uint8Array, NetAddr]> {
    if (this.closed) return Promise.reject(new Error("closed"));
    const q = this.#queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  close(): void {
    this.closed = true;
    this.hub.sockets.delete(`${this.addr.hostname}:${this.addr.port}`);
    for (const w of this.#waiters.splice(0)) w.reject(new Error("closed"));
  }
}

class UdpHub {
  readonly sockets = new Map<string, MemUdp>();
  readonly sent: { from: NetAddr; to: NetAddr; data: Uint8Array }[] = [];
  #next = 50000;

  constructor(readonly defaultIp: string) {}

  listen(opts: ListenOptions): MemUdp {
    const ip = !opts.hostname || opts.hostname === "0.0.0.0" ? this.defaultIp : opts.hostname;
    const port = opts.port || this.#next++;
    const s = new MemUdp(this, { transport: "udp", hostname: ip, port });
    this.sockets.set(`${ip}:${port}`, s);
    return s;
  }
}

/** The tunnel: TCP targets from a MemoryNet, UDP in its own hub, names from a table. */
function tunnelNet(tcp: MemoryNet, udp: UdpHub, names: Record<string, string> = {}): Net {
  return {
    name: "wg:test",
    dialTcp: (h, p, o) => tcp.dialTcp(h, p, o),
    listenTcp: () => {
      throw new Error("not used");
    },
    listenUdp: (o) => udp.listen(o),
    resolver: new MapResolver(names),
  };
}

function hostNetOf(udp: UdpHub): Net {
  return {
    name: "host",
    dialTcp: () => Promise.reject(new Error("not used")),
    listenTcp: () => {
      throw new Error("not used");
    },
    listenUdp: (o) => udp.listen(o),
  };
}

function spec(over: Partial<ProxySpec> = {}): ProxySpec {
  return {
    id: "PROXY_1",
    protocol: "socks5",
    listen: "127.0.0.1:1080",
    hostname: "127.0.0.1",
    port: 1080,
    via: "wg:test",
    maxConnections: 16,
    handshakeTimeoutMs: 10_000,
    udp: true,
    ...over,
  };
}

interface World {
  server: ProxyServer;
  tcp: MemoryNet;
  tunnelUdp: UdpHub;
  hostUdp: UdpHub;
  clock: ManualClock;
  /** A client connection being served; `done` settles when the server is finished with it. */
  connect(fromIp?: string): { client: MemoryConn; done: Promise<void> };
}

function world(s: ProxySpec, names: Record<string, string> = {}): World {
  const tcp = new MemoryNet("wg:test");
  const tunnelUdp = new UdpHub("10.0.0.2"), hostUdp = new UdpHub("127.0.0.1");
  const clock = new ManualClock();
  const server = new ProxyServer(s, {
    host: hostNetOf(hostUdp),
    egress: tunnelNet(tcp, tunnelUdp, names),
    clock,
  });
  let port = 40000;
  return {
    server,
    tcp,
    tunnelUdp,
    hostUdp,
    clock,
    connect(fromIp = "127.0.0.1") {
      const [client, srv] = memoryConnPair(
        { transport: "tcp", hostname: fromIp, port: port++ },
        { transport: "tcp", hostname: "127.0.0.1", port: s.port },
      );
      return { client, done: server.serveConn(srv) };
    },
  };
}

/** A target that answers "echo:<what it read>" once and closes. */
function echoOnce(server: MemoryConn): void {
  (async () => {
    const buf = new Uint8Array(1024);
    const n = await server.read(buf);
    await server.write(enc.encode(`echo:${dec.decode(buf.subarray(0, n ?? 0))}`));
    server.close();
  })().catch(() => {});
}

async function socksHello(client: Conn, auth?: { user: string; password: string }): Promise<number> {
  await client.write(encodeGreeting(auth ? [0x02] : [0x00]));
  const sel = await readN(client, 2);
  if (sel[1] !== 0x02 || !auth) return sel[1];
  await client.write(encodeUserPass(auth.user, auth.password));
  return (await readN(client, 2))[1] === 0 ? 0x02 : 0xfe;
}

async function socksReply(client: Conn): Promise<{ code: number; host: string; port: number }> {
  const head = await readN(client, 5);
  const rest = head[3] === 1 ? 5 : head[3] === 4 ? 17 : head[4] + 2;
  const all = new Uint8Array(5 + rest);
  all.set(head);
  all.set(await readN(client, rest), 5);
  return parseRequest(all)!;
}

// ---- SOCKS5 ---------------------------------------------------------------------------------------------

Deno.test("socks5 server: CONNECT by name through the egress; bytes sent early and both ways counted", async () => {
  const w = world(spec());
  w.tcp.on("web.test", 80, echoOnce);
  const { client, done } = w.connect();
  assertEquals(await socksHello(client), 0x00);
  // The request and the first payload bytes in one write, as eager clients do.
  const req = encodeRequest(SOCKS_CMD_CONNECT, "web.test", 80);
  const both = new Uint8Array(req.length + 2);
  both.set(req);
  both.set(enc.encode("hi"), req.length);
  await client.write(both);
  const reply = await socksReply(client);
  assertEquals(reply.code, 0);
  assertEquals(await readToEnd(client), "echo:hi");
  client.close(); // the target's FIN was carried to us; our side ends the other direction
  await bounded(done, "end of session");
  assertEquals(w.tcp.dials, [{ host: "web.test", port: 80 }]);
  const st = w.server.stats;
  assertEquals([st.total, st.open, st.bytes.aToB, st.bytes.bToA], [1, 0, 2, 7]);
});

Deno.test("socks5 server: wrong password gets STATUS 1 and is counted; no acceptable method gets 0xFF", async () => {
  const w = world(spec({ user: "alice", password: "s3cret" }));
  w.tcp.on("10.0.0.1", 80, echoOnce);
  const wrong = w.connect();
  assertEquals(await socksHello(wrong.client, { user: "alice", password: "nope" }), 0xfe);
  await bounded(wrong.done, "end of session");
  assertEquals(await readToEnd(wrong.client), "", "closed after the failure");

  const noAuth = w.connect();
  assertEquals(await socksHello(noAuth.client), 0xff, "a client offering only NO AUTH");
  await bounded(noAuth.done, "end of session");

  const good = w.connect();
  assertEquals(await socksHello(good.client, { user: "alice", password: "s3cret" }), 0x02);
  await good.client.write(encodeRequest(SOCKS_CMD_CONNECT, "10.0.0.1", 80));
  assertEquals((await socksReply(good.client)).code, 0);
  await good.client.write(enc.encode("x"));
  assertEquals(await readToEnd(good.client), "echo:x");
  good.client.close();
  await bounded(good.done, "end of session");
  assertEquals([w.server.stats.loginFailures, w.tcp.dials.length], [2, 1]);
});

Deno.test("socks5 server: malformed and unsupported requests get REP 0x07/0x08/0x05 and are counted", async () => {
  const w = world(spec());
  // SOCKS4 greeting: not version 5, no SOCKS5 answer, closed.
  const v4 = w.connect();
  await v4.client.write(new Uint8Array([4, 1, 0, 80, 10, 0, 0, 1, 0]));
  await bounded(v4.done, "end of session");
  assertEquals(await readToEnd(v4.client), "");

  const ask = async (req: Uint8Array) => {
    const s = w.connect();
    assertEquals(await socksHello(s.client), 0);
    await s.client.write(req);
    const head = await readN(s.client, 2);
    await bounded(s.done, "end of session");
    return head[1];
  };
  assertEquals(await ask(encodeRequest(SOCKS_CMD_BIND, "10.0.0.1", 80)), 0x07, "BIND: command not supported");
  assertEquals(await ask(new Uint8Array([5, 1, 0, 9, 1, 2, 3, 4, 0, 80])), 0x08, "unknown ATYP");
  assertEquals(await ask(encodeRequest(SOCKS_CMD_CONNECT, "10.0.0.9", 81)), 0x05, "refused by the target");
  const st = w.server.stats;
  assertEquals([st.badRequests, st.dialFailures, st.open], [3, 1, 0]);
});

Deno.test("socks5 server: a client that stalls in the handshake is closed at the bound (manual clock)", async () => {
  const w = world(spec({ handshakeTimeoutMs: 3000 }));
  const s = w.connect();
  await s.client.write(new Uint8Array([5])); // half a greeting, then nothing
  w.clock.advance(2999);
  assertEquals(w.server.stats.handshakeTimeouts, 0);
  w.clock.advance(1);
  await bounded(s.done, "end of session");
  assertEquals([w.server.stats.handshakeTimeouts, w.server.stats.open], [1, 0]);
});

Deno.test("proxy server: connections past maxConnections are closed at accept and counted", async () => {
  const w = world(spec({ maxConnections: 1 }));
  const queue: Conn[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const listener: Listener = {
    addr: { transport: "tcp", hostname: "127.0.0.1", port: 1080 },
    async accept() {
      while (queue.length === 0 && !closed) await new Promise<void>((r) => wake = r);
      if (closed) throw new Error("listener closed");
      return queue.shift()!;
    },
    close() {
      closed = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {},
  };
  w.server.start(listener);
  const pair = () =>
    memoryConnPair(
      { transport: "tcp", hostname: "127.0.0.1", port: 1 },
      { transport: "tcp", hostname: "127.0.0.1", port: 1080 },
    );
  const [c1, s1] = pair(), [c2, s2] = pair();
  queue.push(s1);
  wake?.();
  assertEquals(await socksHello(c1), 0, "the first is served");
  queue.push(s2);
  wake?.();
  assertEquals(await readToEnd(c2), "", "the second is closed");
  assertEquals([w.server.stats.refused, w.server.stats.open], [1, 1]);
  await w.server.stop(); // closes the served connection too
  assertEquals(await readToEnd(c1), "");
  assertEquals(w.server.stats.state, "stopped");
});

// ---- SOCKS5 UDP ASSOCIATE --------------------------------------------------------------------------------

Deno.test("socks5 UDP: relayed both ways by name; FRAG != 0, foreign sources and unsolicited answers dropped", async () => {
  const w = world(spec(), { "echo.test": "10.0.0.1" });
  const echo = w.tunnelUdp.listen({ hostname: "10.0.0.1", port: 7 });
  const stranger = w.tunnelUdp.listen({ hostname: "10.0.0.66", port: 9 });
  const { client, done } = w.connect("127.0.0.1");
  assertEquals(await socksHello(client), 0);
  // DST.PORT: the client will send from port 6000.
  await client.write(encodeRequest(SOCKS_CMD_UDP_ASSOCIATE, "0.0.0.0", 6000));
  const bnd = await socksReply(client);
  assertEquals([bnd.code, bnd.host], [0, "127.0.0.1"]);
  const relayAt: NetAddr = { transport: "udp", hostname: bnd.host, port: bnd.port };
  const me = w.hostUdp.listen({ hostname: "127.0.0.1", port: 6000 });
  const otherPort = w.hostUdp.listen({ hostname: "127.0.0.1", port: 6001 });
  const otherHost = w.hostUdp.listen({ hostname: "127.0.0.9", port: 6000 });

  await me.send(encodeUdpDatagram("echo.test", 7, enc.encode("one")), relayAt);
  const [got, from] = await bounded(echo.receive(), "the datagram at the target");
  assertEquals([dec.decode(got), from.hostname], ["one", "10.0.0.2"]);

  // A fragment, and datagrams from another port and another host: none reaches the target.
  const frag = encodeUdpDatagram("echo.test", 7, enc.encode("frag"));
  frag[2] = 1;
  await me.send(frag, relayAt);
  await otherPort.send(encodeUdpDatagram("10.0.0.1", 7, enc.encode("port")), relayAt);
  await otherHost.send(encodeUdpDatagram("10.0.0.1", 7, enc.encode("host")), relayAt);
  await me.send(new Uint8Array([0, 0]), relayAt); // too short for a header

  // The answer comes back with the RFC 1928 §7 header naming its source.
  await echo.send(enc.encode("ONE"), from);
  const [back] = await bounded(me.receive(), "the answer at the client");
  const parsed = parseUdpDatagram(back)!;
  assertEquals([parsed.frag, parsed.host, parsed.port, dec.decode(parsed.data)], [0, "10.0.0.1", 7, "ONE"]);
  // A host the client never sent to gets nothing through.
  await stranger.send(enc.encode("spam"), from);

  await me.send(encodeUdpDatagram("10.0.0.1", 7, enc.encode("two")), relayAt);
  assertEquals(dec.decode((await bounded(echo.receive(), "the second datagram"))[0]), "two");
  const st = w.server.stats;
  assertEquals(st.udpDropped.fragment, 1);
  assertEquals(st.udpDropped.foreign_source, 2);
  assertEquals(st.udpDropped.malformed, 1);
  assertEquals(st.udpDropped.unsolicited, 1);
  assertEquals([st.udpDatagramsToTarget, st.udpDatagramsToClient, st.udpAssociations], [2, 1, 1]);
  const sentToTarget = w.tunnelUdp.sent.filter((d) => d.to.hostname === "10.0.0.1").map((d) =>
    dec.decode(d.data)
  );
  assertEquals(sentToTarget, ["one", "two"]);

  // §7: the association ends with its TCP connection; both sockets close.
  client.close();
  await bounded(done, "end of the association");
  assertEquals(w.server.stats.udpAssociations, 0);
  assert(!w.hostUdp.sockets.has(`${relayAt.hostname}:${relayAt.port}`), "relay socket closed");
  assertEquals([...w.tunnelUdp.sockets.keys()].sort(), ["10.0.0.1:7", "10.0.0.66:9"]);
});

Deno.test("socks5 UDP: port 0 in the request locks to the client's first datagram; off when udp=off", async () => {
  const w = world(spec());
  const echo = w.tunnelUdp.listen({ hostname: "10.0.0.1", port: 7 });
  const { client } = w.connect();
  assertEquals(await socksHello(client), 0);
  await client.write(encodeRequest(SOCKS_CMD_UDP_ASSOCIATE, "0.0.0.0", 0));
  const bnd = await socksReply(client);
  const relayAt: NetAddr = { transport: "udp", hostname: bnd.host, port: bnd.port };
  const first = w.hostUdp.listen({ hostname: "127.0.0.1", port: 7000 });
  const second = w.hostUdp.listen({ hostname: "127.0.0.1", port: 7001 });
  await first.send(encodeUdpDatagram("10.0.0.1", 7, enc.encode("a")), relayAt);
  await bounded(echo.receive(), "the first datagram");
  await second.send(encodeUdpDatagram("10.0.0.1", 7, enc.encode("b")), relayAt);
  assertEquals(w.server.stats.udpDropped.foreign_source, 1);
  client.close();

  const off = world(spec({ udp: false }));
  const s = off.connect();
  assertEquals(await socksHello(s.client), 0);
  await s.client.write(encodeRequest(SOCKS_CMD_UDP_ASSOCIATE, "0.0.0.0", 0));
  assertEquals((await readN(s.client, 2))[1], 0x07);
});

// ---- HTTP proxy ---------------------------------------------------------------------------------------

async function httpExchange(w: World, request: string): Promise<string> {
  const { client, done } = w.connect();
  await client.write(enc.encode(request));
  const text = await readToEnd(client);
  await bounded(done, "end of session");
  return text;
}

/** A target that records the request it read (until the blank line and `bodyBytes` more) and answers. */
function recordingTarget(seen: string[], bodyBytes: number, answer: string) {
  return (server: MemoryConn) => {
    (async () => {
      let text = "";
      const buf = new Uint8Array(4096);
      while (!text.includes("\r\n\r\n") || text.length < text.indexOf("\r\n\r\n") + 4 + bodyBytes) {
        const n = await server.read(buf);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n));
      }
      seen.push(text);
      await server.write(enc.encode(answer));
      server.close();
    })().catch(() => {});
  };
}

Deno.test("http proxy: 407 with Proxy-Authenticate without or with wrong credentials; counted", async () => {
  const w = world(spec({ protocol: "http", user: "alice", password: "s3cret" }));
  const none = await httpExchange(w, "GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n");
  assert(none.startsWith("HTTP/1.1 407 "), none);
  assertStringIncludes(none, 'proxy-authenticate: Basic realm="wgedge"');
  const wrong = await httpExchange(
    w,
    `GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\nProxy-Authorization: Basic ${
      btoa("alice:nope")
    }\r\n\r\n`,
  );
  assert(wrong.startsWith("HTTP/1.1 407 "), wrong);
  assertEquals([w.server.stats.loginFailures, w.tcp.dials.length], [2, 0]);
});

Deno.test("http proxy: absolute-form GET forwarded in origin-form, hop-by-hop headers removed both ways", async () => {
  const w = world(spec({ protocol: "http", user: "alice", password: "s3cret" }));
  const seen: string[] = [];
  w.tcp.on(
    "web.test",
    8000,
    recordingTarget(
      seen,
      0,
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-End: 2\r\n\r\nok",
    ),
  );
  const res = await httpExchange(
    w,
    "GET http://web.test:8000/a?b=c HTTP/1.1\r\nHost: elsewhere\r\n" +
      `Proxy-Authorization: Basic ${btoa("alice:s3cret")}\r\nProxy-Connection: keep-alive\r\n` +
      "Connection: X-Private\r\nX-Private: drop me\r\nX-Kept: yes\r\nTE: trailers\r\n\r\n",
  );
  const req = seen[0];
  assert(req.startsWith("GET /a?b=c HTTP/1.1\r\n"), req);
  assertStringIncludes(req, "host: web.test:8000\r\n");
  assertStringIncludes(req, "x-kept: yes\r\n");
  assertStringIncludes(req, "connection: close\r\n");
  for (const gone of ["elsewhere", "proxy-authorization", "proxy-connection", "x-private", "te:"]) {
    assert(!req.toLowerCase().includes(gone), `${gone} removed from the request:\n${req}`);
  }
  assert(res.startsWith("HTTP/1.1 200 OK\r\n"), res);
  assertStringIncludes(res, "x-end: 2\r\n");
  assertStringIncludes(res, "connection: close\r\n");
  assert(res.endsWith("\r\n\r\nok"), res);
  for (const gone of ["keep-alive", "x-hop"]) {
    assert(!res.toLowerCase().includes(gone), `${gone} removed:\n${res}`);
  }
});

Deno.test("http proxy: a chunked POST body is passed with its framing; CONNECT carries bytes both ways", async () => {
  const w = world(spec({ protocol: "http" }));
  const seen: string[] = [];
  const body = "5\r\nhello\r\n0\r\n\r\n";
  w.tcp.on(
    "10.0.0.1",
    80,
    recordingTarget(seen, body.length, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
  );
  const res = await httpExchange(
    w,
    `POST http://10.0.0.1/up HTTP/1.1\r\nHost: 10.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
  );
  assert(res.startsWith("HTTP/1.1 201 Created"), res);
  assert(seen[0].endsWith(`transfer-encoding: chunked\r\nconnection: close\r\n\r\n${body}`), seen[0]);

  w.tcp.on("ssh.test", 22, echoOnce);
  const { client, done } = w.connect();
  await client.write(enc.encode("CONNECT ssh.test:22 HTTP/1.1\r\nHost: ssh.test:22\r\n\r\nSSH-2.0"));
  const text = await readToEnd(client);
  client.close();
  await bounded(done, "end of session");
  assertEquals(text, "HTTP/1.1 200 Connection established\r\n\r\necho:SSH-2.0");
});

Deno.test("http proxy: malformed requests get 400, origin-form 400, an unreachable target 502; counted", async () => {
  const w = world(spec({ protocol: "http" }));
  const status = async (req: string) => (await httpExchange(w, req)).split("\r\n")[0];
  assertEquals(await status("GARBAGE\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  assertEquals(await status("GET http://a/ HTTP/1.1\r\nBad Header\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  assertEquals(await status("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  assertEquals(await status("CONNECT nohostport HTTP/1.1\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  assertEquals(
    await status("POST http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "HTTP/1.1 400 Bad Request",
  );
  assertEquals(
    await status("GET http://10.0.0.9/ HTTP/1.1\r\nHost: 10.0.0.9\r\n\r\n"),
    "HTTP/1.1 502 Bad Gateway",
  );
  assertEquals([w.server.stats.badRequests, w.server.stats.dialFailures], [5, 1]);
});

Deno.test("proxy last error: timed; a later good dial takes it out of the problems box, a new error puts it back", async () => {
  const s = spec({ protocol: "http" });
  const w = world(s);
  w.tcp.on("web.test", 80, recordingTarget([], 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  const unreachable = "GET http://10.0.0.9/ HTTP/1.1\r\nHost: 10.0.0.9\r\n\r\n";
  const good = "GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n";
  const page = () => renderDashboard({ proxies: [statusRow(s, w.server.stats)] }, 5, w.clock.wallMs());
  const iso = (ms: number) => new Date(ms).toISOString();

  assertEquals((await httpExchange(w, unreachable)).split("\r\n")[0], "HTTP/1.1 502 Bad Gateway");
  const errorAt = w.clock.wallMs();
  let row = statusRow(s, w.server.stats);
  assertEquals([row.lastErrorAt, row.lastSuccessAt], [iso(errorAt), undefined]);
  assert(!("lastErrorMs" in row), "status carries ISO times, not the raw counters");
  assertStringIncludes(page(), '<section id="problems" class="bad">');

  w.clock.advance(3 * 60_000);
  assertEquals((await httpExchange(w, good)).split("\r\n")[0], "HTTP/1.1 200 OK");
  row = statusRow(s, w.server.stats);
  assertEquals([row.lastErrorAt, row.lastSuccessAt], [iso(errorAt), iso(w.clock.wallMs())]);
  let html = page();
  assertStringIncludes(html, '<p id="problems" class="allok">No problem found.</p>');
  assert(/last error <span title="[^"]+">3 min ago<\/span>: /.test(html), "the row shows the error's age");

  w.clock.advance(60_000);
  assertEquals((await httpExchange(w, unreachable)).split("\r\n")[0], "HTTP/1.1 502 Bad Gateway");
  html = page();
  assertStringIncludes(html, '<section id="problems" class="bad">');
  assert(/last error <span title="[^"]+">0 s ago<\/span>: /.test(html), "the new error, just now");
});

Deno.test("socks5 and http CONNECT: IPv6 literal targets (ATYP 4, [v6]:port)", async () => {
  const w = world(spec());
  w.tcp.on("fd00::1", 443, echoOnce);
  const s = w.connect();
  assertEquals(await socksHello(s.client), 0);
  await s.client.write(encodeRequest(SOCKS_CMD_CONNECT, "fd00::1", 443));
  assertEquals((await socksReply(s.client)).code, 0);
  await s.client.write(enc.encode("v6"));
  assertEquals(await readToEnd(s.client), "echo:v6");
  s.client.close();
  await bounded(s.done, "end of session");

  const h = world(spec({ protocol: "http" }));
  h.tcp.on("fd00::1", 443, echoOnce);
  const c = h.connect();
  await c.client.write(enc.encode("CONNECT [fd00::1]:443 HTTP/1.1\r\nHost: [fd00::1]:443\r\n\r\nx"));
  assertEquals(await readToEnd(c.client), "HTTP/1.1 200 Connection established\r\n\r\necho:x");
  c.client.close();
  await bounded(c.done, "end of session");
  assertEquals([w.tcp.dials, h.tcp.dials], [[{ host: "fd00::1", port: 443 }], [{
    host: "fd00::1",
    port: 443,
  }]]);
});
