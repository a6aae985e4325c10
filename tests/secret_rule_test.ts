/**
 * One secret rule (src/util/secret.ts) for every output. A configuration with every kind of secret set to a
 * value of its own is loaded; the secret-holding keys are found by walking the loaded Config (not listed by
 * hand), each must be covered by the rule (its field name, or URL credentials), and no secret value may
 * appear in a log line with the config nested in it (text and JSON), the status JSON and the metrics of the
 * admin API, the `check-config` output (text and --json, the real command), or an error message.
 */
import { loadConfig } from "../src/config/mod.ts";
import { runCheckConfig } from "./helpers/check_config.ts";
import { ConfigErrors } from "../src/config/errors.ts";
import { redactConfig } from "../src/config/redact.ts";
import { isSecretField, redactUrlCredentials } from "../src/util/secret.ts";
import { configureLogging, logger, type LogLevel } from "../src/util/log.ts";
import { createAdminApp } from "../src/services/admin/app.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { toBase64 } from "../src/util/bytes.ts";
import { assert, assertEquals } from "./helpers/assert.ts";

const key = () => generatePrivateKey();
const [mainSk, mainPsk, namedSk, rpsSk, mwgpSk] = [key(), key(), key(), key(), key()];
const peerPub = encodeKey(publicKey(key()));

/** Every secret value, by what it is. Keys appear in outputs as base64. */
const SECRETS: Record<string, string> = {
  "main tunnel private key": encodeKey(mainSk),
  "main tunnel preshared key": encodeKey(mainPsk),
  "main tunnel obfs": "obfs-Secret-main-1",
  "named tunnel private key": encodeKey(namedSk),
  "rps tunnel private key": encodeKey(rpsSk),
  "admin token": "admin-Token-Secret-0123456789",
  "relay SOCKS5 password": "socks-Secret-2",
  "mwgp private key": encodeKey(mwgpSk),
  "mwgp obfs": "mwgp-Obfs-Secret-3",
  "NTRIP caster source password": "caster-Src-Secret-4",
  "NTRIP caster user password": "caster-User-Secret-5",
  "NTRIP station source password": "station-Src-Secret-6",
  "NTRIP station destination password": "station-Dst-Secret-7",
  "NTRIP station proxy password": "station-Proxy-Secret-8",
  "SOCKS5 proxy password": "proxy-Socks-Secret-9",
  "main tunnel SOCKS5/HTTP proxy password": "proxy-Main-Secret-10",
};

const env: Record<string, string> = {
  WG_CONFIG: `[Interface]\nPrivateKey = ${SECRETS["main tunnel private key"]}\nAddress = 10.9.0.2/32\n` +
    `Obfs = ${SECRETS["main tunnel obfs"]}\n[Peer]\nPublicKey = ${peerPub}\n` +
    `PresharedKey = ${SECRETS["main tunnel preshared key"]}\nAllowedIPs = 10.9.0.0/24\n` +
    `Endpoint = 192.0.2.1:51820\n`,
  WG_TUNNEL_SIDE:
    `[Interface]\nPrivateKey = ${SECRETS["named tunnel private key"]}\nAddress = 10.8.0.2/32\n` +
    `[Peer]\nPublicKey = ${peerPub}\nAllowedIPs = 10.8.0.0/24\nEndpoint = 192.0.2.1:51821\n`,
  RPS_CONFIG: `[Interface]\nPrivateKey = ${SECRETS["rps tunnel private key"]}\nAddress = 10.7.0.1/24\n` +
    `[Peer]\nPublicKey = ${peerPub}\nAllowedIPs = 10.7.0.2/32\n`,
  WGEDGE_ADMIN_TOKEN: SECRETS["admin token"],
  RELAY_1: `15001;80;127.0.0.1;TCP;via=socks5://alice:${SECRETS["relay SOCKS5 password"]}@127.0.0.1:1080`,
  MWGP_SERVER_CONFIG: JSON.stringify({
    listen: ":15002",
    servers: [{
      privkey: SECRETS["mwgp private key"],
      address: "192.0.2.1",
      peers: [{ forward_to: ":1000" }],
    }],
    obfs: SECRETS["mwgp obfs"],
  }),
  NTRIP_CASTER_MOUNTS: JSON.stringify([{
    mount: "M1",
    source_password: SECRETS["NTRIP caster source password"],
    users: [`rover:${SECRETS["NTRIP caster user password"]}`],
  }]),
  NTRIP_CASTER_LISTEN: "127.0.0.1:15003",
  PROXY_1: "socks5;127.0.0.1:15005;user=carol",
  PROXY_1_PASSWORD: SECRETS["SOCKS5 proxy password"],
  WGEDGE_SOCKS5: "127.0.0.1:15006",
  WGEDGE_PROXY_USER: "dave",
  WGEDGE_PROXY_PASSWORD: SECRETS["main tunnel SOCKS5/HTTP proxy password"],
  NTRIP_STATIONS: JSON.stringify([{
    id: "S1",
    src_host: "caster.example.com",
    src_port: 2101,
    src_mount: "SRC",
    src_user: "rover",
    src_pass: SECRETS["NTRIP station source password"],
    src_proxy: `socks5://bob:${SECRETS["NTRIP station proxy password"]}@127.0.0.1:1081`,
    dst_host: "127.0.0.1",
    dst_port: 2102,
    dst_mount: "DST",
    dst_pass: SECRETS["NTRIP station destination password"],
  }]),
};

function leaks(text: string): string[] {
  return Object.entries(SECRETS).filter(([, v]) => text.includes(v)).map(([what]) => what);
}

function assertClean(text: string, where: string): void {
  const found = leaks(text);
  assertEquals(found, [], `${where} shows: ${found.join(", ")}`);
}

/** Every path of the loaded Config whose value holds a secret (bytes compared as base64). */
function secretPaths(value: unknown, path: string[] = [], out: { path: string[]; text: string }[] = []) {
  if (value instanceof Uint8Array) value = toBase64(value);
  if (typeof value === "string") {
    if (leaks(value).length > 0) out.push({ path, text: value });
    return out;
  }
  if (value instanceof Map) {
    for (const [k, v] of value) secretPaths(v, [...path, String(k)], out);
  } else if (Array.isArray(value)) value.forEach((v, i) => secretPaths(v, [...path, String(i)], out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) secretPaths(v, [...path, k], out);
  }
  return out;
}

Deno.test("secrets: every secret-holding config key is covered by the one rule", async () => {
  const { config } = await loadConfig({ env, flags: {} });
  const paths = secretPaths(config);
  // Every kind of secret reached the loaded Config (else this test would not test it).
  const reached = new Set(paths.flatMap((p) => leaks(p.text)));
  assertEquals(Object.keys(SECRETS).filter((w) => !reached.has(w)), [], "secrets the config did not hold");
  for (const { path, text } of paths) {
    // The field holding it (or, inside an array, the field holding the array) is secret-named, or the
    // secret is URL credentials that the rule cuts from any string.
    const named = path.some((k) => isSecretField(k));
    const cut = leaks(redactUrlCredentials(text)).length === 0;
    assert(named || cut, `config.${path.join(".")} holds a secret the rule does not cover`);
  }
  assert(paths.length >= Object.keys(SECRETS).length, "one path per secret at least");
});

Deno.test("secrets: absent from check-config output (text and --json, the real command)", async () => {
  const { config } = await loadConfig({ env, flags: {} });
  assertClean(JSON.stringify(redactConfig(config)), "redactConfig");
  for (const args of [[], ["--json"]]) {
    const out = await runCheckConfig(args, env);
    const text = out.stdout + out.stderr;
    assertEquals(out.code, 0, text);
    assert(text.includes("M1") && text.includes("S1"), "the output shows the config");
    assertClean(text, `wgedge check-config ${args.join(" ")}`);
  }
});

Deno.test("secrets: absent from log lines with the config nested in a field (text and JSON)", async () => {
  const { config } = await loadConfig({ env, flags: {} });
  const lines: string[] = [];
  const sink = { write: (line: string, _level: LogLevel) => lines.push(line) };
  const log = logger("secret-test");
  try {
    for (const json of [false, true]) {
      configureLogging({ level: "debug", json, sink });
      log.info("config loaded", {
        config,
        nested: { deeper: { relay: config.relay, caster: config.ntripCaster } },
      });
      log.warn("dial failed", {
        error: new Error(`socks5://alice:${SECRETS["relay SOCKS5 password"]}@127.0.0.1 refused`),
      });
      log.info("stations", { list: config.ntripStations?.stations, mwgp: config.mwgp });
    }
  } finally {
    configureLogging({ level: "error", json: false, sink: { write: (l) => console.error(l) } });
  }
  assertEquals(lines.length, 6);
  for (const line of lines) assertClean(line, "log line");
  assert(lines.some((l) => l.includes("[redacted]")), "the secrets are shown as [redacted]");
});

Deno.test("secrets: absent from the admin status JSON and metrics labels", async () => {
  const { config } = await loadConfig({ env, flags: {} });
  const registry = new ServiceRegistry();
  // A service that (wrongly) puts its whole config into its status and a credential URL into a label.
  registry.registerStatus("careless", () => ({ config, tunnels: config.tunnels }));
  const g = registry.metrics.gauge("wgedge_test_via", "A label holding a URL.", ["via"]);
  registry.metrics.addCollector(() => g.set({ via: config.relay!.relays[0].via! }, 1));
  const app = createAdminApp({ registry, version: "test" });
  const status = await app.request("http://localhost/api/v1/status");
  assertEquals(status.status, 200);
  const text = await status.text();
  assert(text.includes("M1"), "the status shows the config");
  assertClean(text, "/api/v1/status");
  const metrics = await (await app.request("http://localhost/metrics")).text();
  assert(metrics.includes("wgedge_test_via"), "the metric is there");
  assertClean(metrics, "/metrics");
  assertClean(await (await app.request("http://localhost/")).text(), "dashboard");
});

Deno.test("secrets: absent from error messages of a config with every secret and some errors", async () => {
  const broken = {
    ...env,
    RPS_API_RATE: "0",
    RELAY_2: `15004;80;127.0.0.1;TCP;via=socks5://alice:${SECRETS["relay SOCKS5 password"]}@127.0.0.1:99999`,
    MWGP_SERVER_CONFIG: env.MWGP_SERVER_CONFIG.replace('"listen":":15002"', '"listen":"nope"'),
  };
  let messages: string[] = [];
  try {
    await loadConfig({ env: broken, flags: {} });
  } catch (e) {
    if (!(e instanceof ConfigErrors)) throw e;
    messages = [...e.errors.map((x) => x.message), ...e.warnings];
  }
  assert(messages.length >= 3, `errors reported: ${messages.join("\n")}`);
  for (const m of messages) assertClean(m, "config error");
});
