/** The proxy section: PROXY_<N> and PROXY_<N>_PASSWORD, the --socks5/--http-proxy flags and their variables. */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./helpers/assert.ts";
import { ConfigError, ConfigErrors, loadConfig, type LoadOptions } from "../src/config/mod.ts";
import { redactConfig } from "../src/config/redact.ts";
import { parseProxyListen } from "../src/config/proxy.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { seededRandom } from "../src/util/random.ts";

const rng = seededRandom(7);
const PIPE = `${encodeKey(generatePrivateKey(rng))}|${encodeKey(publicKey(generatePrivateKey(rng)))}|` +
  "192.0.2.1:51820|10.0.0.2/32";
const TUNNELS = { WG_CONFIG: PIPE, WG_TUNNEL_OFFICE: PIPE };

function load(opts: Partial<LoadOptions>) {
  return loadConfig({ env: {}, flags: {}, ...opts });
}

async function errors(opts: Partial<LoadOptions>): Promise<string> {
  const e = await assertRejects(() => load(opts));
  assert(e instanceof ConfigErrors || e instanceof ConfigError, `not a config error: ${e}`);
  return ConfigErrors.flatten(e).map((x) => x.message).join("\n");
}

Deno.test("proxy config: PROXY_<N> with defaults, options and a password in its own variable", async () => {
  const { config } = await load({
    env: {
      ...TUNNELS,
      PROXY_1: "socks5;1080",
      PROXY_2: "http;0.0.0.0:3128;via=wg:OFFICE;user=alice;max_conns=10;handshake_timeout=3",
      PROXY_2_PASSWORD: "pw-2",
      PROXY_3: "socks5;[::1]:1081;udp=off",
    },
  });
  const [p1, p2, p3] = config.proxies!;
  assertEquals(p1, {
    id: "PROXY_1",
    protocol: "socks5",
    listen: "127.0.0.1:1080",
    hostname: "127.0.0.1",
    port: 1080,
    via: "wg:main",
    user: undefined,
    password: undefined,
    maxConnections: 256,
    handshakeTimeoutMs: 10_000,
    udp: true,
  });
  assertEquals([p2.listen, p2.via, p2.user, p2.password, p2.maxConnections, p2.handshakeTimeoutMs, p2.udp], [
    "0.0.0.0:3128",
    "wg:office",
    "alice",
    "pw-2",
    10,
    3000,
    false,
  ]);
  assertEquals([p3.listen, p3.udp], ["[::1]:1081", false]);
  const low = await load({ env: { WG_CONFIG: PIPE, PROXY_1: "http;1000" } });
  assertStringIncludes(low.warnings.join("\n"), "PROXY_1: listens on port 1000 (< 1024)");
  const shown = JSON.stringify(redactConfig(config));
  assert(!shown.includes("pw-2"), "check-config output hides the password");
  assertStringIncludes(shown, '"password":"[redacted]"');
});

Deno.test("proxy config: flags and WGEDGE_* variables for the main tunnel (up)", async () => {
  const { config } = await load({
    env: { WG_CONFIG: PIPE, WGEDGE_PROXY_PASSWORD: "pw", WGEDGE_HTTP_PROXY: "3128" },
    flags: { socks5: "127.0.0.1:1080", "proxy-user": "bob" },
  });
  assertEquals(config.proxies!.map((p) => [p.id, p.protocol, p.listen, p.via, p.user, p.password]), [
    ["--socks5", "socks5", "127.0.0.1:1080", "wg:main", "bob", "pw"],
    ["WGEDGE_HTTP_PROXY", "http", "127.0.0.1:3128", "wg:main", "bob", "pw"],
  ]);
});

Deno.test("proxy config: bad values are errors naming the variable; secrets are never quoted", async () => {
  const text = await errors({
    env: {
      ...TUNNELS,
      PROXY_1: "socks5;0.0.0.0:1080",
      PROXY_2: "http;3128;user=alice",
      PROXY_3: "socks5;1082;password=hunter2-inline",
      PROXY_3_PASSWORD: "own-secret", // PROXY_3 exists (with an error): not also "no proxy for this password"
      PROXY_4: "ftp;21",
      PROXY_5: "socks5;1085;via=wg:nosuch",
      PROXY_6: "http;127.0.0.1:1092",
      PROXY_12: "socks5;1092",
      PROXY_7: "socks5;example.com:1087",
      PROXY_8: "http;1088;udp=on",
      PROXY_9: "socks5;1089;pw=hunter3-typo",
      PROXY_10_PASSWORD: "orphan-secret",
      PROXY_X: "socks5;1090",
    },
  });
  assertStringIncludes(
    text,
    "PROXY_1: expected a user and password (user=NAME in PROXY_1 and PROXY_1_PASSWORD)",
  );
  assertStringIncludes(text, "which is not loopback");
  assertStringIncludes(text, "PROXY_2: expected a password for user alice in PROXY_2_PASSWORD");
  assertStringIncludes(text, "PROXY_3: expected the password in its own variable PROXY_3_PASSWORD");
  assertStringIncludes(text, "PROXY_4: expected");
  assertStringIncludes(text, "PROXY_5: via: expected a configured tunnel: set WG_TUNNEL_NOSUCH");
  assertStringIncludes(text, "PROXY_6: expected a listen address not already used by PROXY_12");
  assertStringIncludes(text, "PROXY_7: expected a listen address that is an IP address");
  assertStringIncludes(text, "PROXY_8: expected udp= only on a socks5 proxy");
  assertStringIncludes(text, "PROXY_10_PASSWORD: expected a proxy PROXY_10 for this password");
  assertStringIncludes(text, "PROXY_X: expected PROXY_<N> (a proxy) or PROXY_<N>_PASSWORD");
  assert(!text.includes("PROXY_3_PASSWORD: expected a proxy"), text);
  for (const secret of ["hunter2-inline", "hunter3-typo", "orphan-secret", "own-secret"]) {
    assert(!text.includes(secret), `"${secret}" is not in:\n${text}`);
  }
  const flags = await errors({ env: { WG_CONFIG: PIPE }, flags: { "proxy-user": "bob" } });
  assertStringIncludes(flags, "--socks5/WGEDGE_SOCKS5 or --http-proxy/WGEDGE_HTTP_PROXY to apply to");
});

Deno.test("proxy config: a listen address is a port (loopback) or an IP literal with a port", () => {
  assertEquals(parseProxyListen("1080"), { hostname: "127.0.0.1", port: 1080 });
  assertEquals(parseProxyListen("localhost:1080"), { hostname: "127.0.0.1", port: 1080 });
  assertEquals(parseProxyListen("[::]:1080"), { hostname: "::", port: 1080 });
  assert("expected" in parseProxyListen("0"));
  assert("expected" in parseProxyListen("70000"));
  assert("expected" in parseProxyListen("::1:1080"));
});
