/**
 * NTRIP stations through the one loader: the seed's JSON fields, defaults, every problem with its file, line
 * and field, secrets never echoed (errors, check-config, status), wg_config forms, proxies, NTRIP_SHARD,
 * src_tls/dst_tls and NTRIP_TLS_CA_FILE.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { type Config, ConfigErrors, loadConfig } from "../src/config/mod.ts";
import { parseStationProxy, stationShard } from "../src/config/ntrip_stations.ts";
import { arrayElementLines, syntaxErrorLine } from "../src/config/json_lines.ts";
import { redactConfig } from "../src/config/redact.ts";
import { redactDeep } from "../src/util/secret.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { runCheckConfig } from "./helpers/check_config.ts";
import { makeCert } from "./helpers/tls.ts";

const PRIV = encodeKey(generatePrivateKey());
const PEER = encodeKey(publicKey(generatePrivateKey()));
const SRC_PASS = "src-Secret-77";
const DST_PASS = "dst-Secret-88";
const PROXY_PASS = "proxy-Secret-99";

function station(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: "TCSL",
    enable: true,
    src_host: "caster.example.com",
    src_port: 2101,
    src_mount: "TCSL",
    src_user: "rover",
    src_pass: SRC_PASS,
    dst_host: "127.0.0.1",
    dst_port: 2102,
    dst_mount: "/TCSLSUB",
    dst_pass: DST_PASS,
    ...extra,
  };
}

async function writeTemp(text: string, name = "stations.json"): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-ntrip-" });
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  return { dir, path };
}

async function load(env: Record<string, string>, flags: Record<string, string> = {}) {
  return await loadConfig({ env, flags });
}

async function loadErrors(env: Record<string, string>): Promise<string[]> {
  try {
    await load(env);
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  throw new Error("expected configuration errors");
}

Deno.test("stations file: the seed's fields with defaults", async () => {
  const { path } = await writeTemp(
    JSON.stringify([station(), station({ id: "B2", enable: false })], null, 2),
  );
  const { config, warnings } = await load({}, { "ntrip-stations": path });
  assertEquals(warnings, []);
  const s = config.ntripStations!;
  assertEquals(s.source, path);
  assertEquals(s.stations.length, 2);
  const a = s.stations[0];
  assertEquals(a.id, "TCSL");
  assertEquals(a.enable, true);
  assertEquals(a.initialDelaySec, 0);
  assertEquals(a.source.host, "caster.example.com");
  assertEquals(a.source.version, "auto");
  assertEquals(a.destination.version, 1);
  assertEquals(a.destination.mount, "TCSLSUB", "the leading slash is taken off");
  assertEquals(a.ggaIntervalSec, 10);
  assertEquals(a.ggaTalker, "GP");
  assertEquals(a.format, "rtcm3");
  assertEquals(a.position, undefined);
  assertEquals(a.source.via, "auto");
  assertEquals(a.origin, `${path}:2`);
  assertEquals(s.stations[1].enable, false);
});

Deno.test("stations inline in NTRIP_STATIONS; GGA position, talker, format, versions", async () => {
  const json = JSON.stringify([
    station({ lat: 44.06, lon: -121.32, alt: 1100, gga_interval: 5, gga_talker: "gn", format: "RAW" }),
  ]);
  const { config } = await load({ NTRIP_STATIONS: json });
  const a = config.ntripStations!.stations[0];
  assertEquals(a.position, { latDeg: 44.06, lonDeg: -121.32, altM: 1100 });
  assertEquals(a.ggaIntervalSec, 5);
  assertEquals(a.ggaTalker, "GN");
  assertEquals(a.format, "raw");
  assertEquals(config.ntripStations!.source, "NTRIP_STATIONS");
});

Deno.test("every problem names the file, the line of the field, the field and what was expected", async () => {
  const text = `[
  {
    "id": "A",
    "src_host": "caster.example.com",
    "src_port": 0,
    "src_mount": "M",
    "dst_host": "bad host!",
    "dst_port": 2101,
    "dst_mount": "D",
    "dst_pass": "${DST_PASS}",
    "src_ntrip_version": "3",
    "format": "rtcm2"
  },
  {
    "id": "B",
    "src_host": "h", "src_port": 1, "src_mount": "M",
    "dst_host": "h", "dst_port": 2, "dst_mount": "D"
  },
  {
    "id": "A",
    "src_host": "h", "src_port": 1, "src_mount": "M",
    "dst_host": "h", "dst_port": 2, "dst_mount": "D", "dst_pass": "x"
  }
]`;
  const { path } = await writeTemp(text);
  const errs = await loadErrors({ NTRIP_STATIONS: path });
  const find = (s: string) => errs.find((e) => e.includes(s)) ?? `(missing: ${s} in ${errs.join("\n")})`;
  assertEquals(find("src_port:"), `${path}:5: station A: src_port: expected an integer 1..65535, got "0"`);
  assertStringIncludes(
    find("dst_host:"),
    `${path}:7: station A: dst_host: expected a host name or IP address`,
  );
  assertStringIncludes(
    find("src_ntrip_version"),
    `${path}:11: station A: src_ntrip_version: expected one of 1, 2, "auto"`,
  );
  assertStringIncludes(
    find("format"),
    `${path}:12: station A: format: expected one of "rtcm3", "raw", got "rtcm2"`,
  );
  assertStringIncludes(
    find("station B: dst_pass"),
    `${path}:14: station B: dst_pass: expected a non-empty string (required)`,
  );
  assertStringIncludes(
    find("unique"),
    `${path}:20: station A: id: expected a unique station id ("A" is already defined at ${path}:2)`,
  );
});

Deno.test("unknown fields warn with their line; a repeated key warns; neither is fatal", async () => {
  const text = `[
  {
    "id": "A", "src_host": "h", "src_port": 1, "src_mount": "M",
    "dst_host": "h", "dst_port": 2, "dst_mount": "D", "dst_pass": "x",
    "note": "from the old system",
    "src_port": 3
  }
]`;
  const { path } = await writeTemp(text);
  const { config, warnings } = await load({ NTRIP_STATIONS: path });
  assertEquals(config.ntripStations!.stations[0].source.port, 3);
  assert(warnings.includes(`${path}:5: station A: unknown field "note" ignored`), warnings.join("\n"));
  assert(
    warnings.includes(`${path}:6: station A: src_port given twice; the last applies`),
    warnings.join("\n"),
  );
});

Deno.test("a JSON syntax error points at its line; a non-array is refused", async () => {
  const { path } = await writeTemp('[\n  {"id": "A",\n   "src_port": 1,,\n  }\n]');
  const errs = await loadErrors({ NTRIP_STATIONS: path });
  assertEquals(errs.length, 1);
  assert(errs[0].startsWith(`${path}:3: expected a JSON array of station objects`), errs[0]);
  const obj = await writeTemp('{"id": "A"}');
  assertStringIncludes((await loadErrors({ NTRIP_STATIONS: obj.path }))[0], "expected a JSON array");
  assertEquals(syntaxErrorLine("a\nb\nc", new SyntaxError("Unexpected token at position 4")), 3);
});

Deno.test("secrets are never echoed in errors: passwords, proxies with credentials, wg_config", async () => {
  const json = JSON.stringify([
    station({
      src_pass: 12345,
      dst_pass: ["nope"],
      src_proxy: `user:${PROXY_PASS}@nowhere`,
      wg_config: `${PRIV}|not-a-key|nowhere|10.0.0.2`,
    }),
  ]);
  const errs = (await loadErrors({ NTRIP_STATIONS: json })).join("\n");
  for (const secret of [PROXY_PASS, PRIV, PRIV.slice(0, 20), "12345"]) {
    assert(!errs.includes(secret), `a secret in: ${errs}`);
  }
  assertStringIncludes(errs, "src_pass: expected a string, got a number (not shown)");
  assertStringIncludes(errs, "src_proxy: expected a SOCKS5 proxy");
  assertStringIncludes(errs, "wg_config");
});

Deno.test("wg_config: pipe form, inline INI and a wg-quick path relative to the stations file", async () => {
  const ini = `[Interface]\nPrivateKey = ${PRIV}\nAddress = 10.9.0.2/32\n\n[Peer]\nPublicKey = ${PEER}\n` +
    `AllowedIPs = 10.9.0.0/24\nEndpoint = 127.0.0.1:51820\n`;
  const { dir, path } = await writeTemp("");
  await Deno.writeTextFile(`${dir}/st.conf`, ini, { mode: 0o600 });
  await Deno.writeTextFile(
    path,
    JSON.stringify([
      station({ id: "P", wg_config: `${PRIV}|${PEER}|127.0.0.1:51820|172.16.0.2` }),
      station({ id: "I", wg_config: ini }),
      station({ id: "F", wg_config: "st.conf" }),
    ]),
  );
  const { config } = await load({ NTRIP_STATIONS: path });
  const [p, i, f] = config.ntripStations!.stations;
  assertEquals(p.wgConfig?.iface.addresses, [{ address: "172.16.0.2", prefix: 32 }]);
  assertEquals(p.wgConfig?.peers[0].persistentKeepalive, 25);
  assertEquals(i.wgConfig?.peers[0].allowedIps, [{ address: "10.9.0.0", prefix: 24 }]);
  assertEquals(f.wgConfig?.iface.addresses, [{ address: "10.9.0.2", prefix: 32 }]);
  assertEquals(f.wgConfig?.source, `${dir}/st.conf`);
});

Deno.test("proxies: host:port, host:port:user:pass (colons in the password), socks5:// URL", () => {
  assertEquals(parseStationProxy("127.0.0.1:1080"), { host: "127.0.0.1", port: 1080 });
  assertEquals(parseStationProxy("proxy.example:1080:u:p:w"), {
    host: "proxy.example",
    port: 1080,
    username: "u",
    password: "p:w",
  });
  assertEquals(parseStationProxy("socks5://u:p%40x@[::1]:1080"), {
    host: "::1",
    port: 1080,
    username: "u",
    password: "p@x",
  });
  for (const bad of ["http://h:1", "h", "h:0", "h:1:u", "socks5://h"]) {
    let threw = false;
    try {
      parseStationProxy(bad);
    } catch {
      threw = true;
    }
    assert(threw, bad);
  }
});

Deno.test("a proxy hidden by the station's tunnel is warned about; src_via/dst_via choose per side", async () => {
  const pipe = `${PRIV}|${PEER}|127.0.0.1:51820|172.16.0.2`;
  const json = JSON.stringify([
    station({ id: "A", wg_config: pipe, dst_proxy: "127.0.0.1:1080" }),
    station({ id: "B", wg_config: pipe, dst_proxy: "127.0.0.1:1080", dst_via: "proxy" }),
  ]);
  const { config, warnings } = await load({ NTRIP_STATIONS: json });
  assert(warnings.some((w) => w.includes("station A: dst_proxy: not used: wg_config carries both sides")));
  assertEquals(config.ntripStations!.stations[1].destination.via, "proxy");
  const errs = await loadErrors({ NTRIP_STATIONS: JSON.stringify([station({ src_via: "wg" })]) });
  assertStringIncludes(errs[0], "src_via: expected wg_config to be set too");
});

Deno.test("NTRIP_SHARD=i/n: the shards partition the stations, stably by xxh64 of the id", async () => {
  const ids = Array.from({ length: 40 }, (_, i) => `ST${i}`);
  const json = JSON.stringify(ids.map((id) => station({ id })));
  const seen: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const { config } = await load({ NTRIP_STATIONS: json, NTRIP_SHARD: `${i}/3` });
    const mine = config.ntripStations!.stations.map((s) => s.id);
    assertEquals(config.ntripStations!.otherShards, 40 - mine.length);
    assert(mine.every((id) => stationShard(id, 3) === i));
    seen.push(...mine);
  }
  assertEquals(seen.sort(), [...ids].sort());
  assertEquals(stationShard("TCSL", 1), 1);
  const errs = await loadErrors({ NTRIP_STATIONS: json, NTRIP_SHARD: "0/3" });
  assertStringIncludes(errs[0], "NTRIP_SHARD: expected i/n with 1 <= i <= n");
});

Deno.test("json_lines: element and key lines, nested values and strings with brackets do not confuse it", () => {
  const text = '[\n {"a": "[{,", "b": {"c": [1, {"d": 2}]},\n  "e": 1},\n 12,\n {"f": "x\\"}"}\n]';
  const lines = arrayElementLines(text);
  assertEquals(lines.map((l) => l.line), [2, 4, 5]);
  assertEquals([...lines[0].keys], [["a", 2], ["b", 2], ["e", 3]]);
  assertEquals([...lines[2].keys], [["f", 5]]);
});

function redactedText(config: Config): string {
  return JSON.stringify(redactConfig(config));
}

Deno.test("redaction: the loaded stations show no password, proxy credential or private key", async () => {
  const json = JSON.stringify([
    station({
      src_proxy: `proxy.example:1080:pu:${PROXY_PASS}`,
      dst_proxy: `socks5://pu:${PROXY_PASS}@127.0.0.1:1080`,
      wg_config: `${PRIV}|${PEER}|127.0.0.1:51820|172.16.0.2`,
    }),
  ]);
  const { config } = await load({ NTRIP_STATIONS: json });
  for (const text of [redactedText(config), JSON.stringify(redactDeep(redactConfig(config)))]) {
    for (const secret of [SRC_PASS, DST_PASS, PROXY_PASS, PRIV]) assert(!text.includes(secret), text);
    assertStringIncludes(text, "TCSL");
  }
});

Deno.test("check-config prints the stations without a secret, and the errors with file and line", async () => {
  const { path } = await writeTemp(JSON.stringify(
    [station({ src_proxy: `h:1080:u:${PROXY_PASS}`, wg_config: `${PRIV}|${PEER}|127.0.0.1:51820|10.0.0.2` })],
    null,
    2,
  ));
  const run = async (env: Record<string, string>) => {
    const out = await runCheckConfig([], env);
    return { code: out.code, text: out.stdout + out.stderr };
  };
  const ok = await run({ NTRIP_STATIONS: path });
  assertEquals(ok.code, 0, ok.text);
  assertStringIncludes(ok.text, "TCSL");
  for (const secret of [SRC_PASS, DST_PASS, PROXY_PASS, PRIV]) assert(!ok.text.includes(secret), ok.text);
  const bad = await writeTemp(`[\n  {"id": "X", "src_host": "h", "src_port": 70000}\n]`);
  const fail = await run({ NTRIP_STATIONS: bad.path });
  assertEquals(fail.code, 1);
  assertStringIncludes(
    fail.text,
    `${bad.path}:2: station X: src_port: expected an integer 1..65535, got "70000"`,
  );
});

Deno.test("redaction: the seed's own field names (src_pass, dst_pass) are secrets to all three redactors", async () => {
  const raw = { id: "A", src_pass: SRC_PASS, dst_pass: DST_PASS, dst_user: "u" };
  const { isSecretField } = await import("../src/config/redact.ts");
  assert(isSecretField("src_pass") && isSecretField("dst_pass") && !isSecretField("dst_user"));
  const admin = JSON.stringify(redactDeep(raw));
  assert(!admin.includes(SRC_PASS) && !admin.includes(DST_PASS), admin);
  assertStringIncludes(admin, '"dst_user":"u"');
  const lines: string[] = [];
  const { configureLogging, logger } = await import("../src/util/log.ts");
  configureLogging({ sink: { write: (l) => lines.push(l) } });
  try {
    logger("test").info("station", raw);
  } finally {
    configureLogging({
      sink: { write: (l) => Deno.stderr.writeSync(new TextEncoder().encode(l + "\n")) },
    });
  }
  assert(!lines.join("").includes(SRC_PASS) && !lines.join("").includes(DST_PASS), lines.join(""));
});

Deno.test("TLS: src_tls/dst_tls accepted; NTRIP_TLS_CA_FILE's certificates go to the TLS sides", async () => {
  const cert = await makeCert("caster.internal", ["DNS:caster.internal"]);
  try {
    const json = JSON.stringify([station({ src_tls: true }), station({ id: "B2", dst_tls: true })]);
    const plain = await load({ NTRIP_STATIONS: json });
    const [a] = plain.config.ntripStations!.stations;
    assertEquals([a.source.tls, a.destination.tls, a.source.tlsCa], [true, false, undefined]);

    // A bundle: the certificate twice and a key (warned about, not used).
    await Deno.writeTextFile(`${cert.dir}/bundle.pem`, `${cert.cert}\n${cert.cert}\n${cert.key}`);
    const { config, warnings } = await load({
      NTRIP_STATIONS: json,
      NTRIP_TLS_CA_FILE: `${cert.dir}/bundle.pem`,
    });
    const s = config.ntripStations!;
    const ca = s.tlsCa!;
    assertEquals(ca.file, `${cert.dir}/bundle.pem`);
    assertEquals(ca.certs.length, 2);
    assertStringIncludes(ca.certs[0], "-----BEGIN CERTIFICATE-----");
    assertEquals(s.stations[0].source.tlsCa, ca);
    assertEquals(s.stations[0].destination.tlsCa, undefined, "only TLS sides carry it");
    assertEquals(s.stations[1].destination.tlsCa, ca);
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assertStringIncludes(warnings[0], "NTRIP_TLS_CA_FILE: ");
    assertStringIncludes(warnings[0], "holds a private key, which is not used");
    // Listings and station keys show the file and a digest, never the PEM text.
    const shown = JSON.stringify(redactConfig(config));
    assert(!shown.includes("BEGIN CERTIFICATE"), shown.slice(0, 200));
    assertStringIncludes(shown, ca.digest);

    const noTls = await load({
      NTRIP_STATIONS: JSON.stringify([station()]),
      NTRIP_TLS_CA_FILE: cert.certFile,
    });
    assertEquals(noTls.warnings.length, 1);
    assertStringIncludes(noTls.warnings[0], "NTRIP_TLS_CA_FILE is set but no station has src_tls or dst_tls");
  } finally {
    await cert.remove();
  }
});

Deno.test("TLS: an unreadable, empty or broken NTRIP_TLS_CA_FILE is an error naming the variable", async () => {
  const { dir, path } = await writeTemp("not a certificate\n", "ca.pem");
  const json = JSON.stringify([station({ src_tls: true })]);
  try {
    const missing = await loadErrors({ NTRIP_STATIONS: json, NTRIP_TLS_CA_FILE: `${dir}/nope.pem` });
    assertEquals(missing.length, 1);
    assertStringIncludes(missing[0], "NTRIP_TLS_CA_FILE: expected the path of a readable PEM file");
    assertStringIncludes(missing[0], "no such file");

    const empty = await loadErrors({ NTRIP_STATIONS: json, NTRIP_TLS_CA_FILE: path });
    assertStringIncludes(empty[0], "NTRIP_TLS_CA_FILE: expected");
    assertStringIncludes(empty[0], 'no "-----BEGIN CERTIFICATE-----" block');

    await Deno.writeTextFile(path, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const broken = await loadErrors({ NTRIP_STATIONS: json, NTRIP_TLS_CA_FILE: path });
    assertStringIncludes(broken[0], "certificate #1 does not parse");

    const dirErr = await loadErrors({ NTRIP_STATIONS: json, NTRIP_TLS_CA_FILE: dir });
    assertStringIncludes(dirErr[0], "not a regular file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("messages say `expected` once for a bad proxy URL, and put `: ` after the line for wg_config", async () => {
  const errs = await loadErrors({
    NTRIP_STATIONS: JSON.stringify([
      station({ id: "P", src_proxy: "socks5://host-without-port" }),
      station({ id: "W", dst_mount: "W", wg_config: "not|a|pipe|form" }),
    ]),
  });
  const proxy = errs.find((e) => e.includes("src_proxy"));
  assert(proxy && !proxy.includes("expected expected"), proxy);
  const wg = errs.find((e) => e.includes("wg_config"));
  assert(wg && /station W: wg_config/.test(wg), wg);
  assert(!/:\d+ station/.test(wg), `no line number glued to the station: ${wg}`);
});
