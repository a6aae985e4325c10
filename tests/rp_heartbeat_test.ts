/**
 * What rpc learns from the heartbeat reply. Against a server that answers as wg-rp does (no `protocols`, no
 * `mappings`), a UDP route is refused before anything is registered: in process, and as a wgedge rpc process
 * (non-zero exit) against a wg-rp double inside a real tunnel. Against wgedge rps, a mapping the operator
 * deleted is noticed and registered again within one heartbeat (manual clock), with status and metrics
 * saying what is true meanwhile.
 */
import { Hono } from "hono";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./helpers/assert.ts";
import { waitFor } from "./helpers/interop.ts";
import { within } from "./helpers/tcp.ts";
import { freePort, LoopbackTunnel } from "./rp_loopback_net.ts";
import { WgedgeProcess, writePairConfigs } from "./rp_helpers.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { parseRoute, RpClient } from "../src/services/rp/client.ts";
import { installOperatorRoutes, RpcService } from "../src/services/rp/service.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { type Http1Server, serveHttp1 } from "../src/net/http1.ts";
import type { Listener } from "../src/net/types.ts";
import { createHostNet } from "../src/net/host.ts";
import { openTunnel } from "../src/net/tunnels.ts";
import { parseWgQuick } from "../src/config/wgquick.ts";
import { ManualClock } from "../src/util/clock.ts";

const host = createHostNet();
const WG_RP_STARTUP = 1_700_000_123;

/** An rps answering as wg-rp's does (pkg/server/api.go): no capability field, no list; records requests. */
function wgRpDouble(listener: Listener): { server: Http1Server; requests: string[] } {
  const requests: string[] = [];
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const server = serveHttp1(listener, async (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    await req.text();
    if (url.pathname === "/api/v1/heartbeat" && req.method === "POST") {
      return json({ success: true, message: "Heartbeat received", server_startup_time: WG_RP_STARTUP });
    }
    if (url.pathname === "/api/v1/port-mappings" && req.method === "POST") {
      return json({ success: true, message: "Port mapping created successfully" });
    }
    if (url.pathname === "/api/v1/port-mappings" && req.method === "DELETE") {
      return json({ success: true, message: "Port mapping deleted successfully" });
    }
    return new Response("Method not allowed\n", { status: 405 });
  });
  return { server, requests };
}

Deno.test("rpc vs a wg-rp server (no protocols field): a UDP route is refused before anything is registered; TCP still registers", async () => {
  const loop = new LoopbackTunnel();
  const apiPort = freePort();
  const double = wgRpDouble(loop.node("127.0.0.1").listenTcp({ hostname: "127.0.0.1", port: apiPort }));
  const client = (route: string) =>
    new RpClient({
      tunnelNet: loop.node("127.0.0.2"),
      hostNet: host,
      routes: [parseRoute("127.0.0.1:5353-15353"), parseRoute(route)],
      serverApi: { host: "127.0.0.1", port: apiPort },
      clientIp: "127.0.0.2",
    });
  try {
    const udp = client("127.0.0.1:53-10053/udp");
    const err = await assertRejects(() => udp.start(10_000), "does not advertise UDP support");
    assertStringIncludes(err.message, "route 127.0.0.1:53-10053/udp");
    assertStringIncludes(err.message, "wg-rp");
    assertEquals(double.requests, ["POST /api/v1/heartbeat"], "nothing registered, not even the TCP route");

    double.requests.length = 0;
    const tcp = client("127.0.0.1:8080-18080");
    await tcp.start(10_000);
    assertEquals(tcp.routeStates, ["registered", "registered"]);
    assertEquals(tcp.status().server_protocols, null);
    await tcp.stop();
    assertEquals(double.requests.filter((r) => r.startsWith("POST /api/v1/port-mappings")).length, 2);
  } finally {
    await double.server.close();
  }
});

Deno.test({
  name: "rpc process vs a wg-rp double inside a real tunnel: a /udp route exits non-zero with the reason",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cfg = await writePairConfigs(freePort());
    const tunnel = await openTunnel(
      parseWgQuick(await Deno.readTextFile(cfg.serverConf), cfg.serverConf),
      { name: "wgrp-double" },
    );
    const double = wgRpDouble(tunnel.net.listenTcp({ hostname: "10.66.0.1", port: 80 }));
    const rpc = new WgedgeProcess([
      "rpc",
      "-c",
      cfg.clientConf,
      "-r",
      "127.0.0.1:53-10053/udp",
      "--start-timeout",
      "60",
    ]);
    try {
      const status = await within(rpc.status(), "rpc to exit", 90_000);
      assert(status.code !== 0, `rpc exits non-zero (got ${status.code})`);
      const log = rpc.log.text();
      assertStringIncludes(log, "does not advertise UDP support");
      assertStringIncludes(log, "127.0.0.1:53-10053/udp");
      assertEquals(
        double.requests.filter((r) => r.startsWith("POST /api/v1/port-mappings")),
        [],
        "no mapping registered",
      );
    } finally {
      rpc.kill();
      await rpc.status().catch(() => {});
      await double.server.close();
      tunnel.close();
      await Deno.remove(cfg.dir, { recursive: true }).catch(() => {});
    }
  },
});

function helloService(): { port: number; close: () => Promise<void> } {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => new Response(`hello again: ${new URL(req.url).pathname}\n`),
  );
  return { port: server.addr.port, close: () => (ac.abort(), server.finished) };
}

async function publicAnswer(port: number): Promise<string | null> {
  try {
    const res = await within(fetch(`http://127.0.0.1:${port}/p`), "the public port");
    return await res.text();
  } catch {
    return null;
  }
}

Deno.test({
  name:
    "rpc notices an operator DELETE within one heartbeat (manual clock) and registers again; status and metrics tell the truth meanwhile",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const loop = new LoopbackTunnel();
    const apiPort = freePort(), publicPort = freePort();
    const hello = helloService();
    const server = new RpServer({
      tunnelNet: loop.node("127.0.0.1"),
      hostNet: host,
      publicBind: "127.0.0.1",
    });
    server.serveApi(["127.0.0.1"], apiPort);
    const operator = new Hono();
    installOperatorRoutes(server)(operator);
    const operatorDelete = async () =>
      (await operator.request(`/api/v1/port-mappings?port=${publicPort}`, { method: "DELETE" })).status;
    const clock = new ManualClock(1_000_000, Date.now());
    const registry = new ServiceRegistry();
    const spec = `127.0.0.1:${hello.port}-${publicPort}`;
    const svc = await RpcService.start({
      tunnel: { net: loop.node("127.0.0.2"), addresses: ["127.0.0.2"], close() {} },
      hostNet: host,
      routes: [parseRoute(spec)],
      serverApi: { host: "127.0.0.1", port: apiPort },
      clientIp: "127.0.0.2",
      heartbeatSec: 20,
      clock,
      registry,
    });
    const client = svc.client;
    const metric = (name: string, labels = "") => {
      const line = registry.metrics.render().split("\n").find((l) => l.startsWith(`${name}${labels} `));
      return line === undefined ? undefined : Number(line.split(" ").pop());
    };
    const registered = () => metric("wgedge_rpc_route_registered", `{route="${spec}"}`);
    const route = () =>
      (registry.status().rp_routes as { state: string; error?: string; confirmed_ms_ago: number | null }[])[
        0
      ];
    const other = new RpClient({
      tunnelNet: loop.node("127.0.0.3"),
      hostNet: host,
      routes: [parseRoute(`127.0.0.1:9-${publicPort}`)],
      serverApi: { host: "127.0.0.1", port: apiPort },
      clientIp: "127.0.0.3",
      clock,
    });
    try {
      assertEquals(registered(), 1);
      assertEquals(await publicAnswer(publicPort), "hello again: /p\n");

      // 1. The operator deletes the mapping; the next heartbeat (one interval later) finds it missing from
      //    the server's list and registers it again.
      assertEquals(await operatorDelete(), 200);
      assertEquals(await publicAnswer(publicPort), null, "the public port closed");
      assertEquals(client.nextAttemptInMs, 20_000);
      // Until the next heartbeat the rpc cannot know; its status says how old its "registered" is.
      clock.advance(15_000);
      assertEquals([route().state, route().confirmed_ms_ago], ["registered", 15_000]);
      clock.advance(5_000);
      await waitFor(
        () => client.mappingsLost === 1 && client.routeStates[0] === "registered",
        "re-registration",
      );
      assertEquals(server.listAll().map((m) => m.client_ip), ["127.0.0.2"]);
      assertEquals(await publicAnswer(publicPort), "hello again: /p\n");
      assertEquals(registered(), 1);
      assertEquals(route().confirmed_ms_ago, 0);
      assertEquals(metric("wgedge_rpc_mappings_lost_total"), 1);
      assertEquals(client.reregistrations, 0, "not mistaken for a server restart");

      // 2. Deleted again, and another client takes the port before the heartbeat: the rpc says so (state,
      //    error, metric 0) and keeps trying; once the port is free it registers again.
      assertEquals(await operatorDelete(), 200);
      await other.start(10_000);
      clock.advance(20_000);
      await waitFor(
        () => client.mappingsLost === 2 && client.routeStates[0] === "rejected",
        "the loss noticed",
      );
      assertEquals(registered(), 0);
      assertEquals([route().state, route().confirmed_ms_ago], ["rejected", null]);
      assertStringIncludes(route().error ?? "", "already mapped by another client");
      assertEquals(metric("wgedge_rpc_mappings_lost_total"), 2);
      assert(client.nextAttemptInMs < 20_000, "retried sooner than a heartbeat");
      await other.stop();
      clock.advance(client.nextAttemptInMs);
      await waitFor(() => client.routeStates[0] === "registered", "registered again once the port is free");
      assertEquals(registered(), 1);
      assertEquals(route().error, undefined);
      assertEquals(await publicAnswer(publicPort), "hello again: /p\n");
    } finally {
      await other.stop();
      await svc.stop();
      await server.close();
      await hello.close();
    }
  },
});
