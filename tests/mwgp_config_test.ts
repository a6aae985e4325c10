import { assert, assertEquals } from "./helpers/assert.ts";
import {
  loadMwgpSection,
  parseHostPort,
  parseMwgpClientConfig,
  parseMwgpServerConfig,
  SourceValidation,
} from "../src/config/mwgp.ts";
import { ConfigErrors } from "../src/config/errors.ts";
import { loadConfig } from "../src/config/mod.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";

const priv = encodeKey(generatePrivateKey());
const pub = encodeKey(publicKey(generatePrivateKey()));

function errorsOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert(e instanceof ConfigErrors || (e as Error).name === "ConfigError", String(e));
    return (e as Error).message;
  }
  throw new Error("expected a config error");
}

Deno.test("mwgp config: the seed's documented server config parses (JSON5 comments, trailing commas)", () => {
  const text = `{
  "listen": ":1000",  // Listen address
  "timeout": 60,
  "servers": [
    {
      "privkey": "${priv}",
      "address": "192.0.2.1",
      "peers": [
        { "pubkey": "${pub}", "forward_to": ":1000" },
        { "pubkey": "${pub}", "forward_to": "192.0.2.2:1002" },
        { "forward_to": ":1003" },
        { "pubkey": "${pub}", "forward_to": "[2001:db8::1]:1004" },
        { "pubkey": "${pub}", "forward_to": "wg.example.net:1005" },
      ]
    },
  ],
  "obfs": "kisekimo, mahoumo, muryoudewaarimasen"
}`;
  const c = parseMwgpServerConfig(text, "server.json");
  assertEquals(c.listen, { host: "", port: 1000 });
  assertEquals(c.timeoutSec, 60);
  const peers = c.servers[0].peers;
  assertEquals(peers.map((p) => [p.forwardTo.host, p.forwardTo.port]), [
    ["192.0.2.1", 1000],
    ["192.0.2.2", 1002],
    ["192.0.2.1", 1003],
    ["2001:db8::1", 1004],
    ["wg.example.net", 1005],
  ]);
  assertEquals(peers[2].publicKey, undefined, "fallback peer");
  assertEquals(c.csvl, SourceValidation.Default);
  assertEquals(c.obfs, "kisekimo, mahoumo, muryoudewaarimasen");
});

Deno.test("mwgp config: timeout <= 0 means 60; privkey_file reads the first 44 bytes", async () => {
  const f = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(f, priv + "\n");
    const c = parseMwgpServerConfig(
      `{ listen: "127.0.0.1:1", timeout: 0, servers: [{ privkey_file: "${f}", peers: [{ forward_to: "10.0.0.1:2" }] }] }`,
      "s.json5",
    );
    assertEquals(c.timeoutSec, 60);
    assertEquals(encodeKey(c.servers[0].privateKey), priv);
  } finally {
    await Deno.remove(f);
  }
});

Deno.test("mwgp config: every problem names the file, the path (and line) and what was expected; keys not echoed", () => {
  const text = `{
  listen: "nope",
  csvl: 7,
  servers: [
    { privkey: "${priv.slice(0, 20)}",
      peers: [ { pubkey: "", forward_to: ":1" }, { forward_to: ":2" }, { forward_to: ":3" } ] },
    { privkey: "${priv}", privkey_file: "/x", peers: [] },
  ],
}`;
  const msg = errorsOf(() => parseMwgpServerConfig(text, "/etc/mwgp/server.json5"));
  assert(msg.includes("/etc/mwgp/server.json5:2: listen: expected an address"), msg);
  assert(msg.includes("csvl: expected an integer 0..3"), msg);
  assert(msg.includes("servers[0].privkey: expected a base64-encoded 32-byte key"), msg);
  assert(msg.includes("servers[0].peers[0].pubkey"), msg);
  assert(msg.includes("servers[0].peers[2]: expected at most one fallback peer"), msg);
  assert(msg.includes('servers[0].peers[0].forward_to: expected a host (or a server "address"'), msg);
  assert(msg.includes('servers[1]: expected exactly one of "privkey" or "privkey_file"'), msg);
  assert(msg.includes("servers[1].peers: expected a non-empty array"), msg);
  assert(!msg.includes(priv.slice(0, 20)), "no key material in errors");
  const syntax = errorsOf(() =>
    parseMwgpServerConfig('{\n  listen: ":1",\n  servers: [ oops ]\n}', "bad.json5")
  );
  assert(/bad\.json5:3: expected valid JSON5/.test(syntax), syntax);
  assert(
    errorsOf(() => parseMwgpServerConfig('{ listen: ":1" }', "x")).includes(
      "servers: expected a non-empty array",
    ),
  );
});

Deno.test("mwgp config: errors point at the line of the value they are about, or of the object lacking it", () => {
  const text = `{
  // a comment with forward_to: in it
  listen: ":7000",
  servers: [
    {
      privkey: "${priv}",
      peers: [
        { pubkey: "${pub}", forward_to: "127.0.0.1:51820" },
        { pubkey: "${pub}" },
        { 'pubkey': "${pub}",
          "forward_to": "no port" },
      ],
    },
  ],
}`;
  const msg = errorsOf(() => parseMwgpServerConfig(text, "s.json5")).split("\n");
  assertEquals(msg, [
    "s.json5:9: servers[0].peers[1].forward_to: expected a string (required)",
    's.json5:11: servers[0].peers[2].forward_to: expected an address "host:port", ":port" or "[v6]:port", got "no port"',
  ]);
});

Deno.test("mwgp config: client keys are required (a config error, not zeros)", () => {
  const msg = errorsOf(() =>
    parseMwgpClientConfig(`{ server: "vpn.example.com:1000", listen: "127.0.0.1:1000" }`, "c.json")
  );
  assert(msg.includes("server_pubkey: expected a string (required)"), msg);
  assert(msg.includes("client_pubkey: expected a string (required)"), msg);
  const c = parseMwgpClientConfig(
    `{ server: "vpn.example.com:1000", listen: "127.10.11.1:1000", server_pubkey: "${pub}", client_pubkey: "${pub}",
       dns: "8.8.8.8:53", obfs: "pw" }`,
    "c.json",
  );
  assertEquals(c.server, { host: "vpn.example.com", port: 1000 });
  assertEquals(c.dns, { host: "8.8.8.8", port: 53 });
});

Deno.test("mwgp config: host:port forms", () => {
  assertEquals(parseHostPort(":1000"), { host: "", port: 1000 });
  assertEquals(parseHostPort("[::1]:51820"), { host: "::1", port: 51820 });
  assertEquals(parseHostPort("host.example:1"), { host: "host.example", port: 1 });
  for (const bad of ["", "1000", "::1:5", "[1.2.3.4]:5", "h:0", "h:65536", "h: 5", "a b:1"]) {
    assertEquals(parseHostPort(bad), null, bad);
  }
});

Deno.test("mwgp config: env section (inline JSON5 or a path) through the one loader", async () => {
  const inline =
    `{ listen: ":1000", servers: [{ privkey: "${priv}", address: "127.0.0.1", peers: [{ forward_to: ":2" }] }] }`;
  const s = await loadMwgpSection({ MWGP_SERVER_CONFIG: inline, MWGP_CACHE_FILE: "/var/cache/x.json" });
  assertEquals(s.server?.servers.length, 1);
  assertEquals(s.cacheFile, "/var/cache/x.json");
  const { config } = await loadConfig({ env: { MWGP_SERVER_CONFIG: inline }, flags: {} });
  assertEquals(config.mwgp?.server?.listen.port, 1000);
  let msg = "";
  try {
    await loadConfig({ env: { MWGP_CLIENT_CONFIG: "/nonexistent/mwgp-client.json" }, flags: {} });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("MWGP_CLIENT_CONFIG") && msg.includes("no such file"), msg);
  const none = await loadConfig({ env: {}, flags: {} });
  assertEquals(none.config.mwgp, undefined);
});
