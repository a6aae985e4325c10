/** `wgedge check-config` as a user runs it: a subprocess, its output and exit code. */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { type CheckConfigResult as Result, runCheckConfig as checkConfig } from "./helpers/check_config.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { KEY_EXPECTED } from "../src/config/keys.ts";

const PRIV = encodeKey(generatePrivateKey());
const PRIV_PUB = encodeKey(publicKey(new Uint8Array(atob(PRIV).split("").map((c) => c.charCodeAt(0)))));
const PRIV2 = encodeKey(generatePrivateKey());
const PEER = encodeKey(publicKey(generatePrivateKey()));
const PSK = encodeKey(crypto.getRandomValues(new Uint8Array(32)));
const OBFS = "obfs-password-Zq9";
const TOKEN = "admin-token-4f1d2c3b5a697887";
const SECRETS = [PRIV, PRIV2, PSK, OBFS, TOKEN, PRIV.slice(0, 24), PSK.slice(0, 24)];

const INI = `[Interface]
PrivateKey = ${PRIV}
Address = 10.0.0.2/32, fd00::2/128
Obfs = ${OBFS}
Table = off

[Peer]
PublicKey = ${PEER}
PresharedKey = ${PSK}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = vpn.example.com:51820
`;

function assertNoSecrets(r: Result): void {
  const all = r.stdout + r.stderr;
  for (const s of SECRETS) assert(!all.includes(s), `secret ${s.slice(0, 6)}… leaked:\n${all}`);
}

/** Test files hold keys: 0600, so the loader's world-accessible warning stays out of exact assertions. */
function writePrivate(path: string, text: string): Promise<void> {
  return Deno.writeTextFile(path, text, { mode: 0o600 });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-check-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("check-config: text output is the effective config, redacted; warnings on stderr", async () => {
  await withDir(async (dir) => {
    await writePrivate(`${dir}/wg0.conf`, INI);
    await writePrivate(
      `${dir}/wgedge.env`,
      `WG_MTU=1380\nWGEDGE_ADMIN_LISTEN=0.0.0.0:8081\nWGEDGE_ADMIN_TOKEN=${TOKEN}\nWG_TUNNEL_NTRIP="${PRIV2}|${PEER}|[2001:db8::1]:51820|10.9.0.2"\n`,
    );
    const r = await checkConfig(["-c", `${dir}/wg0.conf`, "--env-file", `${dir}/wgedge.env`]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "privateKey: [redacted]");
    assertStringIncludes(r.stdout, "obfs: [redacted]");
    assertStringIncludes(r.stdout, "presharedKey: [redacted]");
    assertStringIncludes(r.stdout, "token: [redacted]");
    assertStringIncludes(r.stdout, `publicKey: ${PEER}`);
    assertStringIncludes(r.stdout, "addresses: 10.0.0.2/32, fd00::2/128");
    assertStringIncludes(r.stdout, "mtu: 1380");
    assertStringIncludes(r.stdout, "endpoint: [2001:db8::1]:51820");
    assertStringIncludes(r.stdout, "ntrip:");
    assertStringIncludes(r.stderr, `warning: ${dir}/wg0.conf:5: Table is a wg-quick host setting`);
    assertStringIncludes(r.stdout, `publicKey: ${PRIV_PUB}`, "the interface's own public key is shown");
    assertNoSecrets(r);
  });
});

Deno.test("check-config --json: parseable, redacted, flag beats env", async () => {
  await withDir(async (dir) => {
    await writePrivate(`${dir}/a.conf`, INI);
    await writePrivate(
      `${dir}/b.conf`,
      INI.replace("Address = 10.0.0.2/32, fd00::2/128", "Address = 10.1.0.2/32"),
    );
    const r = await checkConfig(["--json", "--config", `${dir}/b.conf`], {
      WG_CONFIG: `${dir}/a.conf`,
      WG_ENDPOINT: "192.0.2.7:4500",
      WGEDGE_LOG_FORMAT: "json",
    });
    assertEquals(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assertEquals(report.valid, true, "the same shape as a failure report");
    assertEquals(report.warnings, [
      `${dir}/b.conf:5: Table is a wg-quick host setting; wgedge runs in userspace and ignores it`,
    ], "the warnings are in the report too");
    const j = report.config;
    assertEquals(j.tunnel.source, `${dir}/b.conf`);
    assertEquals(j.tunnel.iface.addresses, [{ address: "10.1.0.2", prefix: 32 }]);
    assertEquals(j.tunnel.iface.privateKey, "[redacted]");
    assertEquals(j.tunnel.iface.publicKey, PRIV_PUB);
    assertEquals(j.tunnel.iface.obfs, "[redacted]");
    assertEquals(j.tunnel.peers[0].presharedKey, "[redacted]");
    assertEquals(j.tunnel.peers[0].publicKey, PEER);
    assertEquals(j.tunnel.peers[0].endpoint, { host: "192.0.2.7", port: 4500 }, "env beats the file");
    assertEquals(j.log, { level: "info", format: "json" });
    assertEquals(j.admin.listen, "127.0.0.1:8081");
    assertNoSecrets(r);
  });
});

Deno.test("check-config: every error on its own line with source, line and expectation; exit 1", async () => {
  await withDir(async (dir) => {
    const bad = INI
      .replace("Address = 10.0.0.2/32, fd00::2/128", "Address = 10.0.0.300/32")
      .replace(`PresharedKey = ${PSK}`, `PresharedKey = ${PSK.slice(0, 30)}`)
      .replace("Endpoint = vpn.example.com:51820", "Endpoint = vpn.example.com");
    await writePrivate(`${dir}/bad.conf`, bad);
    await writePrivate(`${dir}/bad.env`, `WG_MTU=12\nWGEDGE_ADMIN_TOKEN="${TOKEN}\n`);
    const envErr = await checkConfig(["-c", `${dir}/bad.conf`, "--env-file", `${dir}/bad.env`]);
    assertEquals(envErr.code, 1);
    assertStringIncludes(envErr.stderr, `${dir}/bad.env:2: WGEDGE_ADMIN_TOKEN: expected a closing "`);
    assertNoSecrets(envErr);

    await writePrivate(`${dir}/bad.env`, `WG_MTU=12\nWGEDGE_ADMIN_TOKEN=${TOKEN}\n`);
    const r = await checkConfig(["-c", `${dir}/bad.conf`, "--env-file", `${dir}/bad.env`], {
      WGEDGE_LOG_LEVEL: "chatty",
    });
    assertEquals(r.code, 1, r.stdout);
    assertEquals(r.stdout, "");
    const lines = r.stderr.trim().split("\n");
    assertEquals(lines, [
      // The file's warnings come first, beside the errors (Table is a host setting wgedge ignores).
      `warning: ${dir}/bad.conf:5: Table is a wg-quick host setting; wgedge runs in userspace and ignores it`,
      `${dir}/bad.conf:3: Address: expected an IP prefix like 10.0.0.2/32 or fd00::2/128, got "10.0.0.300/32"`,
      `${dir}/bad.conf:9: PresharedKey: expected ${KEY_EXPECTED}, got a 30-character value`,
      `${dir}/bad.conf:11: Endpoint: expected host:port, IPv4:port or [IPv6]:port with a port 1..65535, got "vpn.example.com"`,
      `${dir}/bad.env:1: WG_MTU: expected an MTU 576..65535, got "12"`,
      `WGEDGE_LOG_LEVEL: expected one of debug, info, warn, error, got "chatty"`,
      "check-config: 5 errors",
    ]);
    assertNoSecrets(r);

    const json = await checkConfig(["--json", "-c", `${dir}/bad.conf`]);
    assertEquals(json.code, 1);
    const report = JSON.parse(json.stdout);
    assertEquals(report.valid, false);
    assertEquals(report.errors.length, 3, "the same errors as the text form, as JSON");
    assertStringIncludes(report.errors[0], `${dir}/bad.conf:3: Address`);
    assertNoSecrets(json);
  });
});

Deno.test("check-config: a missing file names the flag and path; bad flags are usage errors", async () => {
  const r = await checkConfig(["-c", "/nonexistent/wg0.conf"]);
  assertEquals(r.code, 1);
  assertStringIncludes(
    r.stderr,
    '--config: expected inline config content or the path of a readable file (no such file), got "/nonexistent/wg0.conf"',
  );
  const usage = await checkConfig(["--bogus"]);
  assertEquals(usage.code, 2);
  assertStringIncludes(usage.stderr, "Usage: wgedge check-config");
  const inline = await checkConfig([], { WG_CONFIG: INI });
  assertEquals(inline.code, 0, inline.stderr);
  assertStringIncludes(inline.stdout, "source: WG_CONFIG");
  assertNoSecrets(inline);
});

Deno.test("check-config: the shipped examples load cleanly and their secrets stay hidden", async () => {
  const repo = new URL("..", import.meta.url).pathname;
  const wgConf = await Deno.readTextFile(`${repo}config/example-wg.conf`);
  const envText = await Deno.readTextFile(`${repo}config/example.env`);
  const secrets = [
    /^PrivateKey = (\S+)/m.exec(wgConf)![1],
    /^PresharedKey = (\S+)/m.exec(wgConf)![1],
    /^WG_TUNNEL_STATION1="([^|]+)\|/m.exec(envText)![1],
  ];
  for (
    const args of [["-c", "config/example-wg.conf"], ["--env-file", "config/example.env"], [
      "--json",
      "--env-file",
      "config/example.env",
    ]]
  ) {
    const r = await checkConfig(args, {}, repo);
    assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    // The only warning allowed: a git checkout leaves the example (with its published keys) world-readable.
    const warnings = r.stderr.split("\n").filter((l) =>
      l !== "" && !l.includes("is accessible to every user")
    );
    assertEquals(warnings, [], "the examples produce no other warnings");
    for (const s of secrets) {
      assert(!(r.stdout + r.stderr).includes(s), `example secret leaked with ${args.join(" ")}`);
    }
  }
});

Deno.test("check-config: the shipped mwgp examples (mwgp's own format) load without errors or warnings", async () => {
  const repo = new URL("..", import.meta.url).pathname;
  const server = await Deno.readTextFile(`${repo}config/mwgp-server.json5`);
  const privkeys = [...server.matchAll(/"privkey": "([^"]+)"/g)].map((m) => m[1]);
  assertEquals(privkeys.length, 2);
  for (const args of [[], ["--json"]]) {
    const r = await checkConfig(args, {
      MWGP_SERVER_CONFIG: "config/mwgp-server.json5",
      MWGP_CLIENT_CONFIG: "config/mwgp-client.json5",
    }, repo);
    assertEquals(r.code, 0, r.stderr);
    // Only the warning that their port 1000 (mwgp's own example) needs CAP_NET_BIND_SERVICE under systemd.
    const warnings = r.stderr.split("\n").filter((l) => l !== "");
    assertEquals(warnings.filter((l) => !l.includes("listens on port 1000 (< 1024)")), [], "no unknown keys");
    for (const s of privkeys) assert(!(r.stdout + r.stderr).includes(s), "example private key leaked");
    if (args.length > 0) {
      const j = JSON.parse(r.stdout).config;
      assertEquals(j.mwgp.server.servers.length, 2);
      assertEquals(j.mwgp.server.servers[0].peers[1].csvl, 3, "a per-peer csvl is read");
      assertEquals(j.mwgp.client.dns, { host: "8.8.8.8", port: 53 }, "the resolver key is read");
    }
  }
  // An hn2etxt resolver's secret (in the URL's query) is redacted like the other secrets.
  const client = (await Deno.readTextFile(`${repo}config/mwgp-client.json5`)).replace(
    '"resolver": "dns+udp://8.8.8.8:53"',
    '"resolver": "hn2etxt+udp://8.8.8.8:53?secret=hn2etxt-secret-Qx7"',
  );
  const file = await Deno.makeTempFile({ suffix: ".json5" });
  try {
    await Deno.writeTextFile(file, client);
    const r = await checkConfig(["--json"], { MWGP_CLIENT_CONFIG: file }, repo);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(JSON.parse(r.stdout).config.mwgp.client.hn2etxtSecret, "[redacted]");
    assert(!(r.stdout + r.stderr).includes("hn2etxt-secret-Qx7"), "hn2etxt secret leaked");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("check-config: accepts the loader's flags, which beat the environment", async () => {
  const r = await checkConfig([
    "--json",
    "--mtu",
    "1300",
    "--log-level",
    "debug",
    "-r",
    "50025;25;example.com;TCP",
  ], {
    WG_CONFIG: INI,
    WG_MTU: "1400",
  });
  assertEquals(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout).config;
  assertEquals(j.tunnel.iface.mtu, 1300);
  assertEquals(j.log.level, "debug");
  assert(j.relay !== undefined, "the -r flag reached the relay section");
  assertNoSecrets(r);
  const bad = await checkConfig(["--mtu", "1"], { WG_CONFIG: INI });
  assertEquals(bad.code, 1);
  assertStringIncludes(bad.stderr, '--mtu: expected an MTU 576..65535, got "1"');
});

Deno.test("check-config --json prints errors as JSON on stdout and exits 1", async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname, "check-config", "--json"],
    env: { RELAY_1: "99999;80;example.com;TCP" },
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  if (out.code !== 1) throw new Error(`exit ${out.code}`);
  const parsed = JSON.parse(new TextDecoder().decode(out.stdout));
  if (parsed.valid !== false || !parsed.errors.some((m: string) => m.includes("RELAY_1"))) {
    throw new Error(`unexpected: ${JSON.stringify(parsed)}`);
  }
});

Deno.test("check-config: warnings are shown beside the errors (the typo behind a missing key)", async () => {
  await withDir(async (dir) => {
    const env = `${dir}/wgedge.env`;
    // WGEDGE_LOG_LEVL is a typo (a warning), RELAY_1 is broken (an error): both must be printed.
    await writePrivate(env, `RELAY_1=not-a-relay\nWGEDGE_LOG_LEVL=debug\n`);
    const text = await checkConfig(["--env-file", env]);
    assertEquals(text.code, 1);
    assertStringIncludes(text.stderr, "RELAY_1");
    assertStringIncludes(text.stderr, "warning: ");
    assertStringIncludes(text.stderr, "WGEDGE_LOG_LEVL");
    const json = await checkConfig(["--env-file", env, "--json"]);
    const out = JSON.parse(json.stdout);
    assertEquals(out.valid, false);
    assert(out.warnings.some((w: string) => w.includes("WGEDGE_LOG_LEVL")), json.stdout);
  });
});

Deno.test("check-config: an env file's errors are listed in line order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const env = `${dir}/a.env`;
    await Deno.writeTextFile(
      env,
      'RELAY_1="52977;80;10.0.0.1;TCP;via=wg:nope"\nWG_TUNNEL_FOO="abc|def"\nENABLE_LOGGING=maybe\n' +
        "HEALTH_CHECK_TIMEOUT=-1\nWGEDGE_LOG_LEVEL=verbose\n",
      { mode: 0o600 },
    );
    const r = await checkConfig(["--env-file", env]);
    assertEquals(r.code, 1);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith(`${env}:`)).map((l) =>
      Number(l.split(":")[1])
    );
    assertEquals(lines, [1, 2, 3, 4, 5], r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
