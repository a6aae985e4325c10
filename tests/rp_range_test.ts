/**
 * rpc port ranges (`-r HOST:FIRST-LAST-RFIRST-RLAST`): the parser expands a range into one route per port
 * (local FIRST+i -> public RFIRST+i) and refuses bad ranges with the route and the reason; end to end on
 * loopback (rp_loopback_net.ts), the first, a middle and the last public port each reach their own local port.
 */
import { assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { RpClient } from "../src/services/rp/client.ts";
import { parseRoute, parseRoutes } from "../src/config/rp_route.ts";
import { createHostNet } from "../src/net/host.ts";
import { freePort, LoopbackTunnel } from "./rp_loopback_net.ts";
import { freePortRange } from "./helpers/ports.ts";
import { within } from "./helpers/tcp.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("rp range routes: expand port by port; single routes unchanged; bad ranges say why", () => {
  const r = parseRoutes("my-host.lan:8000-8009-18000-18009/udp");
  assertEquals(r.length, 10);
  assertEquals(r[0], {
    spec: "my-host.lan:8000-18000/udp",
    localHost: "my-host.lan",
    localPort: 8000,
    remotePort: 18000,
    protocol: "udp",
  });
  assertEquals([r[9].localPort, r[9].remotePort, r[9].spec], [8009, 18009, "my-host.lan:8009-18009/udp"]);
  assertEquals(parseRoutes("[::1]:53-54-5353-5354").map((x) => x.spec), ["[::1]:53-5353", "[::1]:54-5354"]);
  assertEquals(parseRoutes("localhost:80-8080").length, 1);
  assertEquals(parseRoute("localhost:80-8080").remotePort, 8080);
  const bad: [string, string][] = [
    ["h:8000-8009-18000-18008", `remote range "18000-18008" has 9 ports, the local range 10`],
    ["h:8009-8000-18000-18009", "FIRST <= LAST"],
    ["h:1-2000-10001-12000", "at most 1000 ports"],
    ["h:65000-65536-1-537", "ports within 1..65535"],
    ["h:1-2-3", "neither PORT-REMOTE_PORT nor FIRST-LAST-REMOTE_FIRST-REMOTE_LAST"],
    ["h:80", "neither"],
  ];
  for (const [route, why] of bad) {
    let msg = "";
    try {
      parseRoutes(route);
    } catch (e) {
      msg = (e as Error).message;
    }
    assertStringIncludes(msg, `route "${route}"`);
    assertStringIncludes(msg, why);
  }
  let single = "";
  try {
    parseRoute("h:1-2-3-4");
  } catch (e) {
    single = (e as Error).message;
  }
  assertStringIncludes(single, "a port range where one port was expected");
});

Deno.test("rp range: public ports FIRST, middle and LAST each reach their own local port", async () => {
  const N = 5;
  const loop = new LoopbackTunnel();
  const host = createHostNet();
  const apiPort = freePort();
  const localFirst = freePortRange(N), publicFirst = freePortRange(N);
  const listeners = Array.from(
    { length: N },
    (_, i) => Deno.listen({ hostname: "127.0.0.1", port: localFirst + i }),
  );
  const serving = listeners.map((l, i) =>
    (async () => {
      for await (const c of l) {
        await c.write(enc.encode(`local ${localFirst + i}`)).catch(() => {});
        c.close();
      }
    })().catch(() => {})
  );
  const server = new RpServer({ tunnelNet: loop.node("127.0.0.1"), hostNet: host, publicBind: "127.0.0.1" });
  server.serveApi(["127.0.0.1"], apiPort);
  const route = `127.0.0.1:${localFirst}-${localFirst + N - 1}-${publicFirst}-${publicFirst + N - 1}`;
  const client = new RpClient({
    tunnelNet: loop.node("127.0.0.2"),
    hostNet: host,
    routes: parseRoutes(route),
    serverApi: { host: "127.0.0.1", port: apiPort },
    clientIp: "127.0.0.2",
    backoffInitialMs: 50,
    backoffMaxMs: 400,
  });
  try {
    await client.start(30_000);
    assertEquals(client.routeStates, Array(N).fill("registered"));
    assertEquals(
      server.listAll().map((m) => m.remote_port).sort(),
      Array.from({ length: N }, (_, i) => publicFirst + i),
    );
    for (const i of [0, 2, N - 1]) {
      const c = await within(Deno.connect({ hostname: "127.0.0.1", port: publicFirst + i }), "connect");
      const buf = new Uint8Array(64);
      let got = "";
      for (;;) {
        const n = await within(c.read(buf), `answer via public port ${publicFirst + i}`);
        if (n === null) break;
        got += dec.decode(buf.subarray(0, n));
      }
      c.close();
      assertEquals(got, `local ${localFirst + i}`);
    }
  } finally {
    await client.stop();
    assertEquals(server.listAll().length, 0, "stop deletes every mapping of the range");
    await server.close();
    for (const l of listeners) l.close();
    await Promise.allSettled(serving);
  }
});
