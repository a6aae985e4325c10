/** The host Net: connect timeout, refused dials named, injected resolver, IP-literal helpers. */
import { createHostNet, DialError } from "../src/net/host.ts";
import { isIpLiteral, MapResolver, osResolver } from "../src/net/resolve.ts";
import { receiveWithin } from "./helpers/udp.ts";
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";

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
  assertEquals(await s.read(b), 1);
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
