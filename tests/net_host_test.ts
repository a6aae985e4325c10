/** The host Net: connect timeout, refused dials named, injected resolver, IP-literal helpers. */
import { createHostNet, DialError } from "../src/net/host.ts";
import { isIpLiteral, MapResolver, osResolver } from "../src/net/resolve.ts";
import { receiveWithin } from "./helpers/udp.ts";
import { within } from "./helpers/wait.ts";
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { getIntOption, type Libc, loadLibc } from "../src/sys/libc.ts";

/** A listener whose accept queue is full: further SYNs are dropped, so a connect hangs until its timeout. */
async function saturatedListener() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  let closed = false;
  // A connect slower than 200 ms may only mean a loaded machine, so the queue counts as full after three
  // in a row; a slow connect that completes later is kept (it fills the queue too) and closed with the rest.
  for (let i = 0, hung = 0; i < 5000 && hung < 3; i++) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connecting = Deno.connect({ hostname: "127.0.0.1", port });
    const c = await Promise.race([
      connecting,
      new Promise<null>((r) => timer = setTimeout(() => r(null), 200)),
    ]);
    clearTimeout(timer);
    if (c) {
      conns.push(c);
      hung = 0;
      continue;
    }
    hung++;
    connecting.then((late) => closed ? late.close() : conns.push(late), () => {});
  }
  return {
    port,
    close() {
      closed = true;
      for (const c of conns) c.close();
      l.close();
    },
  };
}

Deno.test({
  name: "host net: a dial that cannot complete fails with a timeout error after timeoutMs",
  sanitizeOps: false, // the connect that saturated the queue may still be pending in the runtime
  sanitizeResources: false,
  async fn() {
    const sat = await saturatedListener();
    try {
      const net = createHostNet();
      const e = await assertRejects(
        () => net.dialTcp("127.0.0.1", sat.port, { timeoutMs: 300 }),
        "timed out",
      );
      assert(e instanceof DialError && e.reason === "timeout");
    } finally {
      sat.close();
    }
  },
});

Deno.test("host net: refused and unresolvable targets are named in the error", async () => {
  const port = freePort(); // reserved: no parallel test file binds it, so the dial is refused
  const net = createHostNet({ resolver: new MapResolver({ "svc.test": "127.0.0.1" }) });
  const refused = await assertRejects(
    () => net.dialTcp("svc.test", port, { timeoutMs: 30_000 }), // refused at once; generous under load
    `svc.test:${port}`,
  );
  assertEquals((refused as DialError).reason, "refused");
  const unresolved = await assertRejects(() => net.dialTcp("nope.test", port), "cannot resolve");
  assertEquals((unresolved as DialError).reason, "resolve");
});

Deno.test("host net: dials every address the resolver returns until one answers", async () => {
  const port = freePort(); // free on every address: nothing answers on 127.0.0.2
  const l = Deno.listen({ hostname: "127.0.0.3", port });
  const resolver = new MapResolver({ "multi.test": ["127.0.0.2", "127.0.0.3"] });
  const net = createHostNet({ resolver });
  const accepted = l.accept();
  const c = await net.dialTcp("multi.test", port, { timeoutMs: 30_000 });
  assertEquals(c.remoteAddr.hostname, "127.0.0.3");
  c.close();
  (await accepted).close();
  l.close();
});

Deno.test("resolve: IP literals pass through; the OS resolver answers localhost", async () => {
  assert(isIpLiteral("10.0.0.1") && isIpLiteral("::1") && isIpLiteral("2001:db8::1"));
  assert(!isIpLiteral("300.1.1.1") && !isIpLiteral("example.com"));
  assertEquals(await osResolver.resolve("[::1]"), ["::1"]);
  const local = await osResolver.resolve("localhost");
  assert(local.some((a) => a === "127.0.0.1" || a === "::1"), local.join(","));
});

Deno.test("host net: listeners and UDP sockets report their bound addresses", async () => {
  const net = createHostNet();
  const l = net.listenTcp({ hostname: "127.0.0.1", port: 0 });
  assertEquals(l.addr.hostname, "127.0.0.1");
  const accepted = l.accept();
  const c = await net.dialTcp("127.0.0.1", l.addr.port);
  const s = await accepted;
  await c.write(new Uint8Array([7]));
  const b = new Uint8Array(1);
  assertEquals(await within(s.read(b), "the byte on loopback TCP"), 1);
  c.close();
  s.close();
  l.close();
  const u = net.listenUdp({ hostname: "127.0.0.1", port: 0 });
  const v = net.listenUdp({ hostname: "127.0.0.1", port: 0 });
  await u.send(new Uint8Array([1, 2]), v.addr);
  const [data, from] = await receiveWithin(v, "the datagram on loopback");
  assertEquals([...data], [1, 2]);
  assertEquals(from.port, u.addr.port);
  u.close();
  v.close();
});

/** This process's TCP sockets whose local port is `port`, with whether each is listening, by descriptor. */
function tcpSocketsOnPort(libc: Libc, port: number): { fd: number; listening: boolean }[] {
  const out: { fd: number; listening: boolean }[] = [];
  const name = new Uint8Array(28), len = new Uint32Array(1);
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(e.name);
    if (getIntOption(libc, fd, 1, 3 /* SO_TYPE */) !== 1 /* SOCK_STREAM */) continue;
    len[0] = 28;
    if (libc.lib.getsockname(fd, name, len) !== 0 || len[0] < 4) continue;
    const family = name[0] | (name[1] << 8); // AF_INET or AF_INET6; a Unix socket is SOCK_STREAM too
    if ((family !== 2 && family !== 10) || ((name[2] << 8) | name[3]) !== port) continue;
    out.push({ fd, listening: getIntOption(libc, fd, 1, 30 /* SO_ACCEPTCONN */) === 1 });
  }
  return out;
}

Deno.test({
  name:
    "host net: accepted and dialled sockets have TCP_NODELAY and SO_KEEPALIVE on (accepted: from the listener)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const libc = loadLibc();
    if ("reason" in libc) throw new Error(`libc: ${libc.reason}`);
    const net = createHostNet();
    const listener = net.listenTcp({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    const dialled = await net.dialTcp("127.0.0.1", port, { timeoutMs: 30_000 });
    const accepted = await listener.accept();
    try {
      const listening = tcpSocketsOnPort(libc, port).filter((s) => s.listening);
      assertEquals(listening.length, 1);
      // Set once on the listening socket; Linux copies both to every socket it accepts.
      assertEquals(getIntOption(libc, listening[0].fd, 6, 1 /* TCP_NODELAY */), 1);
      assertEquals(getIntOption(libc, listening[0].fd, 1, 9 /* SO_KEEPALIVE */), 1);
      const acceptedFds = tcpSocketsOnPort(libc, port).filter((s) => !s.listening);
      assertEquals(acceptedFds.length, 1, "the accepted socket");
      const dialledFds = tcpSocketsOnPort(libc, (dialled.localAddr as Deno.NetAddr).port);
      assertEquals(dialledFds.length, 1, "the dialled socket");
      for (const { fd } of [...acceptedFds, ...dialledFds]) {
        assertEquals(getIntOption(libc, fd, 6, 1 /* TCP_NODELAY */), 1, `TCP_NODELAY on fd ${fd}`);
        assertEquals(getIntOption(libc, fd, 1, 9 /* SO_KEEPALIVE */), 1, `SO_KEEPALIVE on fd ${fd}`);
      }
    } finally {
      accepted.close();
      dialled.close();
      listener.close();
    }
  },
});
