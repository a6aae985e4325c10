/** The rp config section: env-only rps/rpc, flags over env, defaults, and errors naming the variable. */
import { ConfigErrors, loadConfig } from "../src/config/mod.ts";
import { defaultServerApi, parsePortRanges } from "../src/config/rp.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";

const sk = generatePrivateKey(), ck = generatePrivateKey();
const SERVER_CONF =
  `[Interface]\nPrivateKey = ${encodeKey(sk)}\nAddress = 10.0.0.1/24, fd00::1/64\nListenPort = 51820\n` +
  `[Peer]\nPublicKey = ${encodeKey(publicKey(ck))}\nAllowedIPs = 10.0.0.2/32\n`;
const CLIENT_CONF = `[Interface]\nPrivateKey = ${encodeKey(ck)}\nAddress = 10.0.0.2/32, fd00::2/128\n` +
  `[Peer]\nPublicKey = ${encodeKey(publicKey(sk))}\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 10.0.0.0/24\n`;

async function errors(env: Record<string, string>, flags = {}): Promise<string[]> {
  try {
    await loadConfig({ env, flags });
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  throw new Error("expected ConfigErrors");
}

Deno.test("rp config: rps and rpc from the environment alone (inline configs), with defaults", async () => {
  const { config } = await loadConfig({
    env: {
      RPS_CONFIG: SERVER_CONF,
      RPS_ALLOW_PORTS: "10000-20000, 8080",
      RPS_MAX_MAPPINGS: "5",
      RPC_CONFIG: CLIENT_CONF,
      RPC_ROUTES: "localhost:8080-8080, my-host.lan:53-5353/udp [::1]:22-2222",
    },
    flags: {},
  });
  const rps = config.rps!;
  assertEquals(rps.allowPorts, [{ from: 10000, to: 20000 }, { from: 8080, to: 8080 }]);
  assertEquals(rps.maxMappingsPerClient, 5);
  assertEquals([rps.bufferKb, rps.apiPort, rps.clientExpirySec, rps.sweepIntervalSec], [32, 80, 60, 30]);
  assertEquals(rps.publicBind, "0.0.0.0");
  const rpc = config.rpc!;
  assertEquals(rpc.routes.map((r) => `${r.localHost}:${r.localPort}-${r.remotePort}/${r.protocol}`), [
    "localhost:8080-8080/tcp",
    "my-host.lan:53-5353/udp",
    "::1:22-2222/tcp",
  ]);
  assertEquals(rpc.serverApi, { host: "10.0.0.1", port: 80 }, "wg-rp default: same /24 with .1");
  assertEquals(rpc.clientIp, "10.0.0.2");
  assertEquals(rpc.heartbeatSec, 20);
});

Deno.test("rp config: flags win over env; --server-api; an IPv6 API picks the IPv6 client address", async () => {
  const { config } = await loadConfig({
    env: { RPC_CONFIG: CLIENT_CONF, RPC_ROUTES: "localhost:1-2", RPC_SERVER_API: "10.0.0.9" },
    flags: {
      route: ["localhost:80-8080", "localhost:81-8081/udp"],
      "server-api": "[fd00::1]:8000",
      heartbeat: "5",
    },
  });
  const rpc = config.rpc!;
  assertEquals(rpc.routes.length, 2);
  assertEquals(rpc.serverApi, { host: "fd00::1", port: 8000 });
  assertEquals(rpc.clientIp, "fd00::2");
  assertEquals(rpc.heartbeatSec, 5);
});

Deno.test("rp config: bad values name the variable and what was expected", async () => {
  const errs = await errors({
    RPS_CONFIG: SERVER_CONF,
    RPS_ALLOW_PORTS: "20000-10000",
    RPS_MAX_MAPPINGS: "0",
    RPS_BIND: "not-an-ip",
    RPC_CONFIG: CLIENT_CONF,
    RPC_ROUTES: "localhost:8080",
    RPC_SERVER_API: "server.example:80",
  });
  const all = errs.join("\n");
  assertStringIncludes(all, "RPS_ALLOW_PORTS");
  assertStringIncludes(all, "10000-20000,8080");
  assertStringIncludes(all, "RPS_MAX_MAPPINGS");
  assertStringIncludes(all, "RPS_BIND");
  assertStringIncludes(all, "RPC_ROUTES");
  assertStringIncludes(all, "HOST:PORT-REMOTE_PORT");
  assertStringIncludes(all, "RPC_SERVER_API");
  assert(!all.includes(encodeKey(sk)) && !all.includes(encodeKey(ck)), "no private key in errors");
  const none = await errors({ RPC_CONFIG: CLIENT_CONF });
  assertStringIncludes(none.join("\n"), "at least one route");
  const dup = await errors({ RPC_CONFIG: CLIENT_CONF, RPC_ROUTES: "a:1-9000 b:2-9000" });
  assertStringIncludes(dup.join("\n"), "tcp/9000 repeats");
});

Deno.test("rp config: the API's fairness bounds (RPS_API_*): defaults, values, errors naming the variable", async () => {
  const { config } = await loadConfig({ env: { RPS_CONFIG: SERVER_CONF }, flags: {} });
  const r = config.rps!;
  assertEquals([r.apiConnectionsPerClient, r.apiRequestsPerSec, r.apiRequestBurst, r.apiTimeoutSec], [
    8,
    10,
    100,
    10,
  ]);
  const set = await loadConfig({
    env: {
      RPS_CONFIG: SERVER_CONF,
      RPS_API_CONNECTIONS: "2",
      RPS_API_RATE: "5",
      RPS_API_BURST: "7",
      RPS_API_TIMEOUT: "3",
    },
    flags: {},
  });
  const s = set.config.rps!;
  assertEquals([s.apiConnectionsPerClient, s.apiRequestsPerSec, s.apiRequestBurst, s.apiTimeoutSec], [
    2,
    5,
    7,
    3,
  ]);
  const errs = (await errors({ RPS_CONFIG: SERVER_CONF, RPS_API_RATE: "0", RPS_API_TIMEOUT: "soon" })).join(
    "\n",
  );
  assertStringIncludes(errs, "RPS_API_RATE");
  assertStringIncludes(errs, "RPS_API_TIMEOUT");
});

Deno.test("rp config: port ranges and the default API address", () => {
  assertEquals(parsePortRanges("8080"), [{ from: 8080, to: 8080 }]);
  assertEquals(typeof parsePortRanges("0-10"), "string");
  assertEquals(typeof parsePortRanges("1-70000"), "string");
  assertEquals(typeof parsePortRanges(""), "string");
  assertEquals(typeof parsePortRanges("a-b"), "string");
  const v6only = {
    source: "x",
    iface: { privateKey: ck, addresses: [{ address: "fd12:3456::7", prefix: 128 }], mtu: 1420, dns: [] },
    peers: [],
  };
  assertEquals(defaultServerApi(v6only), "fd12:3456::1");
});
