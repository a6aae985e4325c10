import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "./helpers/assert.ts";
import { ConfigError, ConfigErrors, loadConfig, type LoadOptions } from "../src/config/mod.ts";
import { parseEnvFile } from "../src/config/envfile.ts";
import { looksLikeContent, parseWgAny, readValue } from "../src/config/source.ts";
import { redactConfig, REDACTED } from "../src/config/redact.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { seededRandom } from "../src/util/random.ts";

const rng = seededRandom(99);
const PRIV = encodeKey(generatePrivateKey(rng));
const PRIV2 = encodeKey(generatePrivateKey(rng));
const PEER = encodeKey(publicKey(generatePrivateKey(rng)));
const PSK = encodeKey(rng(new Uint8Array(32)));

const INI = `[Interface]
PrivateKey = ${PRIV}
Address = 10.0.0.2/32
ListenPort = 51000
MTU = 1400

[Peer]
PublicKey = ${PEER}
PresharedKey = ${PSK}
AllowedIPs = 0.0.0.0/0
Endpoint = 192.0.2.1:51820
`;

/** Test files hold keys: 0600, so the loader's world-accessible warning stays out of exact assertions. */
function writePrivate(path: string, text: string): Promise<void> {
  return Deno.writeTextFile(path, text, { mode: 0o600 });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-config-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function load(opts: Partial<LoadOptions>) {
  return await loadConfig({ env: {}, flags: {}, ...opts });
}

async function loadErrors(opts: Partial<LoadOptions>): Promise<ConfigError[]> {
  const e = await assertRejects(() => load(opts));
  assert(e instanceof ConfigErrors || e instanceof ConfigError, `not a config error: ${e}`);
  return ConfigErrors.flatten(e);
}

Deno.test("loader: defaults with an empty environment", async () => {
  const { config, warnings } = await load({});
  assertEquals(config.tunnel, undefined);
  assertEquals(config.tunnels.size, 0);
  assertEquals(config.admin, { listen: "127.0.0.1:8081", hostname: "127.0.0.1", port: 8081 });
  assertEquals(config.log, { level: "info", format: "text" });
  assertEquals(warnings, []);
});

Deno.test("loader: WG_CONFIG as a path, inline INI, or inline pipe form", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/wg0.conf`;
    await writePrivate(path, INI);
    const fromPath = (await load({ env: { WG_CONFIG: path } })).config.tunnel!;
    assertEquals(fromPath.source, path);
    assertEquals(fromPath.iface.mtu, 1400);
    assertEquals(encodeKey(fromPath.peers[0].publicKey), PEER);

    const inline = (await load({ env: { WG_CONFIG: INI } })).config.tunnel!;
    assertEquals(inline.source, "WG_CONFIG");
    assertEquals(inline.iface, fromPath.iface);

    const pipe = (await load({ env: { WG_CONFIG: `${PRIV}|${PEER}|vpn.example.com:51820|10.9.0.2` } })).config
      .tunnel!;
    assertEquals(pipe.iface.addresses, [{ address: "10.9.0.2", prefix: 32 }]);
    assertEquals(pipe.peers[0].endpoint, { host: "vpn.example.com", port: 51820 });
  });
});

Deno.test("loader: -c flag beats WG_CONFIG", async () => {
  await withDir(async (dir) => {
    await writePrivate(`${dir}/a.conf`, INI);
    await writePrivate(`${dir}/b.conf`, INI.replace("MTU = 1400", "MTU = 1300"));
    const { config } = await load({
      env: { WG_CONFIG: `${dir}/a.conf` },
      flags: { config: `${dir}/b.conf` },
    });
    assertEquals(config.tunnel!.source, `${dir}/b.conf`);
    assertEquals(config.tunnel!.iface.mtu, 1300);
  });
});

Deno.test("loader: environment overrides beat the config file; flags beat the environment", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/wg0.conf`;
    await writePrivate(path, INI);
    const keyFile = `${dir}/private.key`;
    await writePrivate(keyFile, PRIV2 + "\n");
    const env = {
      WG_CONFIG: path,
      WG_PRIVATE_KEY: keyFile,
      WG_ADDRESS: "10.5.0.2/24, fd05::2",
      WG_LISTEN_PORT: "0",
      WG_MTU: "1280",
      WG_ENDPOINT: "[2001:db8::7]:4500",
      WG_OBFS: "pa55",
    };
    const t = (await load({ env })).config.tunnel!;
    assertEquals(encodeKey(t.iface.privateKey), PRIV2);
    assertEquals(t.iface.addresses, [{ address: "10.5.0.2", prefix: 24 }, {
      address: "fd05::2",
      prefix: 128,
    }]);
    assertEquals(t.iface.listenPort, undefined);
    assertEquals(t.iface.mtu, 1280);
    assertEquals(t.iface.obfs, "pa55");
    assertEquals(t.peers[0].endpoint, { host: "2001:db8::7", port: 4500 });
    assertEquals(encodeKey(t.peers[0].presharedKey!), PSK, "untouched settings keep the file's values");

    const small = await load({ env: { WG_CONFIG: INI, WG_MTU: "1200", WG_ADDRESS: "fd00::2" } });
    assertEquals(small.warnings, ["WG_MTU: MTU 1200 is below 1280, the minimum IPv6 needs"]);
    const inlineKey = (await load({ env: { WG_CONFIG: path, WG_PRIVATE_KEY: PRIV2 } })).config.tunnel!;
    assertEquals(encodeKey(inlineKey.iface.privateKey), PRIV2);

    const flagged = (await load({
      env,
      flags: {
        mtu: "1350",
        "listen-port": "4000",
        endpoint: "h.example:1",
        address: ["10.6.0.2", "10.7.0.2/32"],
      },
    })).config.tunnel!;
    assertEquals(flagged.iface.mtu, 1350);
    assertEquals(flagged.iface.listenPort, 4000);
    assertEquals(flagged.peers[0].endpoint, { host: "h.example", port: 1 });
    assertEquals(flagged.iface.addresses.map((a) => a.address), ["10.6.0.2", "10.7.0.2"]);
  });
});

Deno.test("loader: bad override values and overrides without a tunnel are errors naming the variable", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/wg0.conf`;
    await writePrivate(path, INI.slice(0, INI.indexOf("[Peer]")));
    const errors = await loadErrors({
      env: {
        WG_CONFIG: path,
        WG_MTU: "99999",
        WG_LISTEN_PORT: "http",
        WG_ADDRESS: "10.0.0.256/32",
        WG_ENDPOINT: "example.com:51820", // valid, but the config has no [Peer]
        WG_PRIVATE_KEY: "tooShort",
      },
      flags: {},
    });
    const text = errors.map((e) => e.message).join("\n");
    assertStringIncludes(text, 'WG_MTU: expected an MTU 576..65535, got "99999"');
    assertStringIncludes(text, 'WG_LISTEN_PORT: expected a UDP port 0..65535, got "http"');
    assertStringIncludes(
      text,
      'WG_ADDRESS: expected an IP prefix like 10.0.0.2/32 or fd00::2/128, got "10.0.0.256/32"',
    );
    assertStringIncludes(text, `WG_ENDPOINT: expected a [Peer] in ${path}`);
    assertStringIncludes(text, "WG_PRIVATE_KEY: expected a base64 WireGuard key (44 characters");
    assert(!text.includes("tooShort"), "a bad key value is not echoed");
    assertEquals(errors.length, 5, text);
    const flagErr = await loadErrors({ env: { WG_CONFIG: INI }, flags: { mtu: "12" } });
    assertEquals(flagErr.map((e) => e.message), ['--mtu: expected an MTU 576..65535, got "12"']);
  });
  const orphan = await loadErrors({ env: { WG_MTU: "1400", WG_OBFS: "x" } });
  assertEquals(orphan.map((e) => e.source).sort(), ["WG_MTU", "WG_OBFS"]);
  assertStringIncludes(orphan[0].message, "WG_CONFIG or -c/--config to be set");
});

Deno.test("loader: a missing or unreadable config file names the variable and the path", async () => {
  const errors = await loadErrors({ env: { WG_CONFIG: "/nonexistent/wg0.conf" } });
  assertEquals(errors.length, 1);
  assertEquals(errors[0].source, "WG_CONFIG");
  assertStringIncludes(errors[0].message, "no such file");
  assertStringIncludes(errors[0].message, '"/nonexistent/wg0.conf"');
  // A relative path is looked for in the working directory (not the env file's): the message says which.
  const relative = await loadErrors({ env: { WG_CONFIG: "nonexistent-dir/wg0.conf" } });
  assertStringIncludes(relative[0].message, `(no such file in the current directory ${Deno.cwd()})`);
  // A value that looks like a key (someone set WG_CONFIG to a private key) is never echoed.
  const keyLike = await loadErrors({ env: { WG_CONFIG: PRIV } });
  assert(!keyLike[0].message.includes(PRIV), keyLike[0].message);
  await withDir(async (dir) => {
    const dirErr = await loadErrors({ flags: { config: dir } });
    assertStringIncludes(
      dirErr[0].message,
      "--config: expected inline config content or the path of a readable file",
    );
    assertStringIncludes(dirErr[0].message, "not a regular file");
  });
});

Deno.test("loader: errors inside WG_CONFIG name the file and its line", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/wg0.conf`;
    await writePrivate(path, INI.replace("MTU = 1400", "MTU = 1400x"));
    const errors = await loadErrors({ env: { WG_CONFIG: path } });
    assertEquals(errors.map((e) => e.message), [`${path}:5: MTU: expected an MTU 576..65535, got "1400x"`]);
    const inline = await loadErrors({ env: { WG_CONFIG: INI.replace("MTU = 1400", "MTU = 1400x") } });
    assertEquals(inline.map((e) => e.message), ['WG_CONFIG:5: MTU: expected an MTU 576..65535, got "1400x"']);
  });
});

Deno.test("loader: WG_TUNNEL_<NAME> tunnels, lowercased, inline or path, with errors named", async () => {
  await withDir(async (dir) => {
    await writePrivate(`${dir}/b.conf`, INI);
    const { config } = await load({
      env: {
        WG_TUNNEL_Station1: `${PRIV}|${PEER}|1.2.3.4:51820|10.1.0.2`,
        WG_TUNNEL_B: `${dir}/b.conf`,
        OTHER: "x",
      },
    });
    assertEquals([...config.tunnels.keys()], ["b", "station1"]);
    assertEquals(config.tunnels.get("station1")!.source, "WG_TUNNEL_Station1");
    assertEquals(config.tunnels.get("b")!.source, `${dir}/b.conf`);
    const errors = await loadErrors({
      env: { WG_TUNNEL_A: "x|y", WG_TUNNEL_: INI, WG_TUNNEL_ok: INI, WG_TUNNEL_OK: INI },
    });
    const text = errors.map((e) => e.message).join("\n");
    assertStringIncludes(text, "WG_TUNNEL_A: expected 4 or 5 fields");
    assertStringIncludes(text, "WG_TUNNEL_: expected a tunnel name");
    assertStringIncludes(
      text,
      'WG_TUNNEL_ok: expected a tunnel name unique regardless of case (WG_TUNNEL_OK already names "ok")',
    );
  });
});

Deno.test("loader: env file values, below the real environment, with line-numbered errors", async () => {
  await withDir(async (dir) => {
    const envPath = `${dir}/wgedge.env`;
    await writePrivate(
      envPath,
      [
        "# wgedge settings",
        "export WGEDGE_LOG_LEVEL=debug",
        "WGEDGE_LOG_FORMAT = json # comment",
        `WG_CONFIG="${INI.replaceAll("\n", "\\n")}"`,
        "WG_MTU='1300'",
        "WGEDGE_ADMIN_LISTEN=127.0.0.1:9000",
        "WGEDGE_LOG_LEVLE=info",
      ].join("\n"),
    );
    const { config, warnings } = await load({ envFile: envPath, env: { WGEDGE_ADMIN_LISTEN: "[::1]:9100" } });
    assertEquals(config.log, { level: "debug", format: "json" });
    assertEquals(config.tunnel!.iface.mtu, 1300);
    assertEquals(config.tunnel!.source, "WG_CONFIG");
    assertEquals(config.admin.listen, "[::1]:9100", "the real environment beats the env file");
    assertEquals(warnings, [`${envPath}:7: WGEDGE_LOG_LEVLE is not a wgedge setting (typo?); ignored`]);

    // WGEDGE_ENV_FILE names the env file when --env-file is not given.
    const viaEnv = await load({ env: { WGEDGE_ENV_FILE: envPath } });
    assertEquals(viaEnv.config.log.level, "debug");
    // An env-file value that is bad is reported at its file and line.
    await writePrivate(
      envPath,
      "\nWG_CONFIG=" + JSON.stringify(INI) + "\nWG_MTU=9\nWGEDGE_LOG_FORMAT=xml\n",
    );
    const errors = await loadErrors({ envFile: envPath });
    assertEquals(errors.map((e) => e.message), [
      `${envPath}:3: WG_MTU: expected an MTU 576..65535, got "9"`,
      `${envPath}:4: WGEDGE_LOG_FORMAT: expected one of text, json, got "xml"`,
    ]);
    const missing = await loadErrors({ envFile: `${dir}/nope.env` });
    assertEquals(missing[0].source, "--env-file");
    assertStringIncludes(missing[0].message, "nope.env");
  });
});

Deno.test("loader: errors inside env-file values (WG_TUNNEL_<NAME>, via=, MWGP_*_CONFIG) carry the file's line", async () => {
  await withDir(async (dir) => {
    const envPath = `${dir}/wgedge.env`;
    await writePrivate(
      envPath,
      [
        "# tunnels", // 1
        "WG_TUNNEL_A=x|y", // 2
        `WG_TUNNEL_B="${INI.replace("MTU = 1400", "MTU = 9").replaceAll("\n", "\\n")}"`, // 3
        "RELAY_1=1000;80;h.example;TCP;via=wg:nope", // 4
        'MWGP_SERVER_CONFIG={listen: ":7000", servers: [{peers: [{pubkey: "x"}]}]}', // 5
      ].join("\n"),
    );
    const errors = await loadErrors({ envFile: envPath });
    assertEquals(errors.map((e) => e.message), [
      `${envPath}:2: WG_TUNNEL_A: expected 4 or 5 fields PrivateKey|PublicKey|Endpoint|ClientIP[|Reserved], got 2 field(s)`,
      `${envPath}:3: WG_TUNNEL_B line 5, MTU: expected an MTU 576..65535, got "9"`,
      `${envPath}:5: MWGP_SERVER_CONFIG, servers[0]: expected exactly one of "privkey" or "privkey_file"`,
      `${envPath}:5: MWGP_SERVER_CONFIG, servers[0].peers[0].pubkey: expected a base64-encoded 32-byte key ` +
      '(44 characters ending in "="); got a 1-character value, not shown',
      `${envPath}:5: MWGP_SERVER_CONFIG, servers[0].peers[0].forward_to: expected a string (required)`,
      `${envPath}:4: RELAY_1 via: expected a configured tunnel: set WG_TUNNEL_NOPE (or use wg:main for the ` +
      'WG_CONFIG tunnel), got "wg:nope"',
    ]);
  });
});

Deno.test("loader: warnings about configs inline in the env file carry the file's line too", async () => {
  await withDir(async (dir) => {
    const envPath = `${dir}/wgedge.env`;
    await writePrivate(
      envPath,
      [
        `WG_TUNNEL_A="${INI.replace("MTU = 1400", "PostUp = true").replaceAll("\n", "\\n")}"`, // 1
        'MWGP_SERVER_CONFIG={listen: ":7000", colour: 1, servers: []}', // 2
      ].join("\n"),
    );
    const e = await assertRejects(() => load({ envFile: envPath }));
    assert(e instanceof ConfigErrors, String(e));
    assertEquals(e.warnings, [
      `${envPath}:1: WG_TUNNEL_A line 5, PostUp is a wg-quick host setting; wgedge runs in userspace and ignores it`,
      `${envPath}:2: MWGP_SERVER_CONFIG, colour: unknown key, ignored`,
    ]);
  });
});

Deno.test("envfile: quoting, export, multi-line values, comments", () => {
  const warnings: string[] = [];
  const m = parseEnvFile(
    [
      "# comment",
      "",
      "  A=plain value  # trailing comment",
      "export B = 'single # not a comment $HOME'",
      'C="double \\"quoted\\"\\n\\t\\\\ \\$x"',
      "D=",
      'E="line one',
      "line two",
      '[Interface]"  # after',
      "F=a#b",
      "A=again",
      "G='multi",
      "line'",
    ].join("\n"),
    "x.env",
    warnings,
  );
  assertEquals(m.get("A"), { value: "again", line: 11 });
  assertEquals(m.get("B")!.value, "single # not a comment $HOME");
  assertEquals(m.get("C")!.value, 'double "quoted"\n\t\\ $x');
  assertEquals(m.get("D")!.value, "");
  assertEquals(m.get("E"), { value: "line one\nline two\n[Interface]", line: 7 });
  assertEquals(m.get("F")!.value, "a#b");
  assertEquals(m.get("G"), { value: "multi\nline", line: 12 });
  assertEquals(warnings, ["x.env:11: A set again (first at line 3); the later value is used"]);
});

Deno.test("envfile: every bad line is reported with its line, without echoing it", () => {
  const e = assertThrows(() =>
    parseEnvFile(
      [
        "OK=1",
        "not an assignment secret123",
        "1BAD=x",
        "WITH SPACE=x",
        'Q="closed" junk',
        'U="never closed',
        "more",
      ]
        .join("\n"),
      "w.env",
    )
  );
  assert(e instanceof ConfigErrors);
  assertEquals(e.errors.map((x) => `${x.source}:${x.line}:${x.key ?? ""}`), [
    "w.env:2:",
    "w.env:3:",
    "w.env:4:",
    "w.env:5:Q",
    "w.env:6:U",
  ]);
  assert(!e.message.includes("secret123"));
  assertStringIncludes(e.errors[4].message, 'closing "');
});

Deno.test("loader: admin listen and token rules", async () => {
  const v6 = await load({ env: { WGEDGE_ADMIN_LISTEN: "[::1]:0" } });
  assertEquals(v6.config.admin, { listen: "[::1]:0", hostname: "::1", port: 0 });
  const flag = await load({ flags: { "admin-listen": "localhost:9" } });
  assertEquals(flag.config.admin.hostname, "localhost");
  const open = await loadErrors({ env: { WGEDGE_ADMIN_LISTEN: ":8081" } });
  assertEquals(open.map((e) => e.source), ["WGEDGE_ADMIN_TOKEN"]);
  assertStringIncludes(open[0].message, "0.0.0.0:8081, which is not loopback");
  const ok = await load({ env: { WGEDGE_ADMIN_LISTEN: "0.0.0.0:8081", WGEDGE_ADMIN_TOKEN: "short" } });
  assertEquals(ok.config.admin.token, "short");
  assertEquals(ok.warnings.length, 1);
  assert(!ok.warnings[0].includes('short"'), ok.warnings[0]);
  const bad = await loadErrors({ env: { WGEDGE_ADMIN_LISTEN: "8081" } });
  assertStringIncludes(bad[0].message, "WGEDGE_ADMIN_LISTEN: expected host:port");
});

Deno.test("loader: log flags beat env; every section's errors are reported together", async () => {
  const { config } = await load({ env: { WGEDGE_LOG_LEVEL: "warn" }, flags: { "log-level": "ERROR" } });
  assertEquals(config.log.level, "error");
  const errors = await loadErrors({
    env: { WGEDGE_LOG_LEVEL: "loud", WGEDGE_ADMIN_LISTEN: "x:y", WG_CONFIG: "/nope", WG_TUNNEL_X: "/nope2" },
  });
  assertEquals(errors.map((e) => e.source), [
    "WG_CONFIG",
    "WG_TUNNEL_X",
    "WGEDGE_ADMIN_LISTEN",
    "WGEDGE_LOG_LEVEL",
  ]);
});

Deno.test("source: inline vs path detection and parseWgAny", async () => {
  assert(looksLikeContent("[Interface]"));
  assert(looksLikeContent("a\nb"));
  assert(looksLikeContent("k|k|h:1|10.0.0.1"));
  assert(!looksLikeContent("/etc/wireguard/wg0.conf"));
  assertEquals((await readValue("[interface]\n", "V")).source, "V");
  await withDir(async (dir) => {
    await writePrivate(`${dir}/p.conf`, `${PRIV}|${PEER}|1.2.3.4:5|10.0.0.9\n`);
    const cfg = await parseWgAny(`${dir}/p.conf`, "NTRIP station 3 wg_config");
    assertEquals(cfg.source, `${dir}/p.conf`);
    assertEquals(cfg.iface.addresses[0].address, "10.0.0.9");
    const e = await assertRejects(() => parseWgAny(`${dir}/missing.conf`, "NTRIP station 3 wg_config"));
    assertStringIncludes(e.message, "NTRIP station 3 wg_config: expected inline config content or the path");
  });
});

Deno.test("redact: secrets hidden, public keys in base64, URL credentials cut, Maps flattened", async () => {
  const { config } = await load({
    env: {
      WG_CONFIG: INI.replace("[Peer]", "Obfs = hunter2\n[Peer]"),
      WG_TUNNEL_X: `${PRIV2}|${PEER}|1.2.3.4:5|10.0.0.9`,
      WGEDGE_ADMIN_TOKEN: "tok-tok-tok-tok-tok",
    },
  });
  const r = redactConfig({ ...config, extra: { via: "socks5://user:pa55@proxy:1080", password: "p" } }) as {
    tunnel: { iface: Record<string, unknown>; peers: Record<string, unknown>[] };
    tunnels: Record<string, { iface: Record<string, unknown> }>;
    admin: Record<string, unknown>;
    extra: Record<string, unknown>;
  };
  assertEquals(r.tunnel.iface.privateKey, REDACTED);
  assertEquals(r.tunnel.iface.obfs, REDACTED);
  assertEquals(r.tunnel.peers[0].presharedKey, REDACTED);
  assertEquals(r.tunnel.peers[0].publicKey, PEER);
  assertEquals(r.tunnels.x.iface.privateKey, REDACTED);
  assertEquals(r.admin.token, REDACTED);
  assertEquals(r.extra, { via: "socks5://[redacted]@proxy:1080", password: REDACTED });
  const json = JSON.stringify(r);
  for (const s of [PRIV, PRIV2, PSK, "hunter2", "tok-tok-tok", "pa55"]) assert(!json.includes(s), s);
});

Deno.test("errors: a secret given to the wrong variable is not echoed", async () => {
  const errors = await loadErrors({
    env: { WG_CONFIG: INI, WG_MTU: INI, WG_LISTEN_PORT: PRIV, WG_ENDPOINT: `${PSK}:1` },
  });
  const text = errors.map((e) => e.message).join("\n");
  assertEquals(errors.length, 3, text);
  assertStringIncludes(text, "WG_MTU: expected an MTU 576..65535, got a multi-line value (not shown)");
  assertStringIncludes(text, 'WG_LISTEN_PORT: expected a UDP port 0..65535, got "[key-like text hidden]"');
  for (const s of [PRIV, PSK]) assert(!text.includes(s), text);
  for (const e of errors) assert(e.got === undefined || (!e.got.includes(PRIV) && !e.got.includes(PSK)));
});

Deno.test("loader: files holding secrets that every user can read are warned about", async () => {
  await withDir(async (dir) => {
    const conf = `${dir}/wg0.conf`, key = `${dir}/private.key`, env = `${dir}/wgedge.env`;
    await writePrivate(conf, INI);
    await writePrivate(key, PRIV2);
    await writePrivate(env, `WG_CONFIG=${conf}\nWG_PRIVATE_KEY=${key}\n`);
    assertEquals((await load({ envFile: env })).warnings, []);
    for (const f of [conf, key, env]) await Deno.chmod(f, 0o644);
    const { warnings } = await load({ envFile: env });
    assertEquals(
      warnings.sort(),
      [conf, env, key].sort().map((f) =>
        `${f}: holds secrets but is accessible to every user of this machine; chmod 600 it`
      ),
    );
    // An env file without secrets is not worth a warning.
    await writePrivate(`${dir}/plain.env`, "WGEDGE_LOG_LEVEL=debug\n");
    await Deno.chmod(`${dir}/plain.env`, 0o644);
    assertEquals((await load({ envFile: `${dir}/plain.env` })).warnings, []);
  });
});
