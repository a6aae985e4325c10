/**
 * Which public ports a tunnel client may map: the default RPS_ALLOW_PORTS (1024-65535 without wgedge's own
 * listeners, computed from the loaded Config), RPS_CLIENT_PORTS per client (API, reload in place, and rpc
 * against rps on the loopback harness), and IPv4-mapped IPv6 sources (no impersonation of an IPv4 client).
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./helpers/assert.ts";
import { createRpApi } from "../src/services/rp/api.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { parseRoute, RpClient, RpClientError } from "../src/services/rp/client.ts";
import { canonicalIp } from "../src/services/rp/ip.ts";
import { createHostNet } from "../src/net/host.ts";
import { ConfigErrors, loadConfig } from "../src/config/mod.ts";
import type { RpsConfig } from "../src/config/rp.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { ManualClock } from "../src/util/clock.ts";
import type { NetAddr } from "../src/net/types.ts";
import { freePort, LoopbackTunnel } from "./rp_loopback_net.ts";
import { runCheckConfig } from "./helpers/check_config.ts";

const host = createHostNet();
const sk = generatePrivateKey(), ck = generatePrivateKey();
const SERVER_CONF =
  `[Interface]\nPrivateKey = ${encodeKey(sk)}\nAddress = 10.0.0.1/24\nListenPort = 51820\n` +
  `[Peer]\nPublicKey = ${encodeKey(publicKey(ck))}\nAllowedIPs = 10.0.0.2/32\n`;

function bindings(ip: string) {
  const remoteAddr: NetAddr = { transport: "tcp", hostname: ip, port: 40000 };
  const localAddr: NetAddr = { transport: "tcp", hostname: "10.0.0.1", port: 80 };
  return { remoteAddr, localAddr };
}

function serverFor(rps: Partial<RpsConfig>) {
  const server = new RpServer({
    tunnelNet: host,
    hostNet: host,
    publicBind: "127.0.0.1",
    allowPorts: rps.allowPorts,
    ownPorts: rps.ownPorts,
    clientPorts: rps.clientPorts,
    clock: new ManualClock(),
  });
  const app = createRpApi({ server });
  const call = async (ip: string, method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { "content-type": "application/json" },
    }, bindings(ip));
    return { status: res.status, json: await res.json() as { success: boolean; message: string } };
  };
  const map = (ip: string, port: number) =>
    call(ip, "POST", "/api/v1/port-mappings", { remote_port: port, client_port: 9000 });
  return { server, call, map };
}

Deno.test("rps ports: the default RPS_ALLOW_PORTS refuses the admin port and port 80 with 403 and a reason", async () => {
  const adminPort = freePort(), relayPort = freePort(), proxyPort = freePort();
  const { config } = await loadConfig({
    env: {
      RPS_CONFIG: SERVER_CONF,
      WGEDGE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      RELAY_1: `${relayPort};80;127.0.0.1;TCP`,
      WG_CONFIG: SERVER_CONF.replace("ListenPort = 51820", "ListenPort = 51830"),
      PROXY_1: `socks5;127.0.0.1:${proxyPort}`,
    },
    flags: {},
  });
  const rps = config.rps!;
  assert(rps.allowPortsDefault, "RPS_ALLOW_PORTS unset: the default applies");
  assertEquals(
    rps.ownPorts.map((o) => o.port).sort((a, b) => a - b),
    [adminPort, relayPort, 51830, 51820, proxyPort].sort((a, b) => a - b),
    "own ports from the loaded Config: admin, relay, the tunnels' ListenPorts, the proxy",
  );
  const { server, map } = serverFor(rps);
  try {
    const admin = await map("10.0.0.2", adminPort);
    assertEquals(admin.status, 403, admin.json.message);
    assertStringIncludes(admin.json.message, `remote_port ${adminPort}`);
    assertStringIncludes(admin.json.message, "admin API listens on it");
    const relay = await map("10.0.0.2", relayPort);
    assertEquals(relay.status, 403);
    assertStringIncludes(relay.json.message, "relay RELAY_1");
    const wg = await map("10.0.0.2", 51820);
    assertEquals(wg.status, 403);
    assertStringIncludes(wg.json.message, "WireGuard");
    const proxy = await map("10.0.0.2", proxyPort);
    assertEquals(proxy.status, 403);
    assertStringIncludes(proxy.json.message, "SOCKS5 proxy PROXY_1");
    const low = await map("10.0.0.2", 80);
    assertEquals(low.status, 403, low.json.message);
    assertStringIncludes(low.json.message, "below 1024");
    // A free port above 1023 that wgedge does not use is still open to clients.
    const ok = await map("10.0.0.2", freePort());
    assertEquals(ok.status, 200, ok.json.message);
  } finally {
    await server.close();
  }
  // Set explicitly, RPS_ALLOW_PORTS is taken as written.
  const explicit = await loadConfig({
    env: { RPS_CONFIG: SERVER_CONF, RPS_ALLOW_PORTS: "80,8081" },
    flags: {},
  });
  assertEquals(explicit.config.rps!.allowPorts, [{ from: 80, to: 80 }, { from: 8081, to: 8081 }]);
  assertEquals(explicit.config.rps!.allowPortsDefault, false);
});

Deno.test("rps ports: RPS_CLIENT_PORTS restricts each client (403 with the reason); reload applies it in place", async () => {
  const a = freePort(), b = freePort(), c = freePort();
  const { config } = await loadConfig({
    env: { RPS_CONFIG: SERVER_CONF, RPS_CLIENT_PORTS: `10.0.0.2=${a},${c} 10.0.0.3=${b}` },
    flags: {},
  });
  const rps = config.rps!;
  assertEquals([...rps.clientPorts.keys()], ["10.0.0.2", "10.0.0.3"]);
  const { server, map } = serverFor(rps);
  try {
    assertEquals((await map("10.0.0.2", a)).status, 200);
    const notMine = await map("10.0.0.2", b);
    assertEquals(notMine.status, 403);
    assertStringIncludes(
      notMine.json.message,
      `not among the ports RPS_CLIENT_PORTS gives 10.0.0.2 (${a},${c})`,
    );
    const reserved = await map("10.0.0.4", c);
    assertEquals(reserved.status, 403, "an unlisted client cannot take a port listed for another");
    assertStringIncludes(reserved.json.message, "reserved to 10.0.0.2 by RPS_CLIENT_PORTS");
    assertEquals((await map("10.0.0.3", b)).status, 200);
    // Reload: 10.0.0.2 loses port a; its mapping goes, 10.0.0.3's stays.
    const next = await loadConfig({
      env: { RPS_CONFIG: SERVER_CONF, RPS_CLIENT_PORTS: `10.0.0.2=${c} 10.0.0.3=${b}` },
      flags: {},
    });
    const removed = await server.setPolicy({
      allowPorts: next.config.rps!.allowPorts,
      ownPorts: next.config.rps!.ownPorts,
      clientPorts: next.config.rps!.clientPorts,
    });
    assertEquals(removed, 1);
    assertEquals(server.listAll().map((m) => [m.client_ip, m.remote_port]), [["10.0.0.3", b]]);
    assertEquals((await map("10.0.0.2", a)).status, 403);
  } finally {
    await server.close();
  }
});

Deno.test("rps ports: RPS_CLIENT_PORTS errors name the variable, the entry and what is wrong with its ports", async () => {
  let messages = "";
  try {
    await loadConfig({
      env: {
        RPS_CONFIG: SERVER_CONF,
        RPS_CLIENT_PORTS: "10.0.0.2=10000-10099,nope=5,10.0.0.3=9-1,10.0.0.4=99999,10.0.0.5=8o80",
      },
      flags: {},
    });
  } catch (e) {
    if (!(e instanceof ConfigErrors)) throw e;
    messages = e.errors.map((x) => x.message).join("\n");
  }
  assertStringIncludes(messages, "RPS_CLIENT_PORTS");
  assertStringIncludes(messages, '"nope=5"');
  assertStringIncludes(messages, '"10.0.0.3=9-1"');
  // Each bad port part is named with what is wrong with it, not only the expected format.
  assertStringIncludes(messages, '"9-1" has its low port above its high port');
  assertStringIncludes(messages, '"99999" is outside 1..65535');
  assertStringIncludes(messages, '"8o80" is not a port or a low-high range');
});

Deno.test("rps ports: an rpc asking for a port RPS_CLIENT_PORTS does not give it is refused at start (loopback)", async () => {
  const loop = new LoopbackTunnel();
  const apiPort = freePort(), mine = freePort(), theirs = freePort();
  const server = new RpServer({
    tunnelNet: loop.node("127.0.0.1"),
    hostNet: host,
    publicBind: "127.0.0.1",
    clientPorts: new Map([["127.0.0.2", [{ from: mine, to: mine }]], ["127.0.0.3", [{
      from: theirs,
      to: theirs,
    }]]]),
  });
  server.serveApi(["127.0.0.1"], apiPort);
  const client = (routes: string[]) =>
    new RpClient({
      tunnelNet: loop.node("127.0.0.2"),
      hostNet: host,
      routes: routes.map(parseRoute),
      serverApi: { host: "127.0.0.1", port: apiPort },
      clientIp: "127.0.0.2",
      backoffInitialMs: 50,
      backoffMaxMs: 400,
    });
  const refused = client([`127.0.0.1:9-${theirs}`]);
  const allowed = client([`127.0.0.1:9-${mine}`]);
  try {
    const e = await assertRejects(() => refused.start(30_000));
    assert(e instanceof RpClientError);
    assertStringIncludes(e.message, "403");
    assertStringIncludes(e.message, `not among the ports RPS_CLIENT_PORTS gives 127.0.0.2 (${mine})`);
    await allowed.start(30_000);
    assertEquals(server.listAll().map((m) => [m.client_ip, m.remote_port]), [["127.0.0.2", mine]]);
  } finally {
    await refused.stop();
    await allowed.stop();
    await server.close();
  }
});

Deno.test("rps identity: an IPv4-mapped IPv6 source cannot act as the IPv4 client it names", async () => {
  const port = freePort();
  const { server, call, map } = serverFor({});
  try {
    assertEquals((await map("10.0.0.2", port)).status, 200);
    // A peer whose AllowedIPs let ::ffff:10.0.0.2 in (::/0, say) tries to delete, list and replace 10.0.0.2's.
    for (const spoof of ["::ffff:10.0.0.2", "::ffff:a00:2", "[::ffff:10.0.0.2]"]) {
      const del = await call(spoof, "DELETE", `/api/v1/port-mappings?port=${port}`);
      assertEquals(del.status, 403, `${spoof}: ${del.json.message}`);
      assertStringIncludes(del.json.message, "IPv4-mapped");
      assertEquals((await call(spoof, "GET", "/api/v1/port-mappings")).status, 403);
      assertEquals((await map(spoof, port)).status, 403);
      assertEquals((await call(spoof, "POST", "/api/v1/heartbeat", {})).status, 403);
    }
    // Below the API too, a mapped address is its own identity, never the IPv4 one.
    assert(canonicalIp("::ffff:10.0.0.2") !== "10.0.0.2");
    assertEquals((await server.unregister("::ffff:10.0.0.2", port, "tcp")).status, 403);
    assertEquals(server.listAll().map((m) => m.client_ip), ["10.0.0.2"], "the mapping is still 10.0.0.2's");
  } finally {
    await server.close();
  }
});

Deno.test("rps ports: check-config prints the default RPS_ALLOW_PORTS and what it leaves out", async () => {
  const out = await runCheckConfig([], {
    RPS_CONFIG: SERVER_CONF,
    RPS_CLIENT_PORTS: "10.0.0.2=10000-10099,8080",
  });
  const text = out.stdout;
  assertEquals(out.code, 0, out.stderr);
  assertStringIncludes(
    text,
    "allowPorts: 1024-8080,8082-51819,51821-65535 (default: 1024-65535 without wgedge's own ports: " +
      "8081 admin API, 51820 WireGuard tunnel of rps; set RPS_ALLOW_PORTS to change)",
  );
  assertStringIncludes(text, "10.0.0.2: 10000-10099,8080");
});

Deno.test("rps ports: check-config names a port-range relay left out of the default once, as a range", async () => {
  const out = await runCheckConfig([], {
    RPS_CONFIG: SERVER_CONF,
    RELAY_1: "52000-52009;62000-62009;127.0.0.1;UDP",
    RELAY_2: "52010;25;127.0.0.1;TCP",
  });
  const text = out.stdout;
  assertEquals(out.code, 0, out.stderr);
  assertStringIncludes(
    text,
    "allowPorts: 1024-8080,8082-51819,51821-51999,52011-65535 (default: 1024-65535 without wgedge's own ports: " +
      "8081 admin API, 51820 WireGuard tunnel of rps, 52000-52009 relay RELAY_1, 52010 relay RELAY_2; " +
      "set RPS_ALLOW_PORTS to change)",
  );
});
