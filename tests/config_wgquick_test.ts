import {
  assert,
  assertEquals,
  assertNotEquals,
  assertStringIncludes,
  assertThrows,
} from "./helpers/assert.ts";
import { formatWgQuick, wgConfigFingerprint } from "../src/config/canonical.ts";
import { parseWgQuick } from "../src/config/wgquick.ts";
import { parsePipeForm, PIPE_KEEPALIVE_SECONDS } from "../src/config/pipe.ts";
import { parseWgText } from "../src/config/source.ts";
import { type ConfigError, ConfigErrors } from "../src/config/errors.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { seededRandom } from "../src/util/random.ts";

const rng = seededRandom(7);
const PRIV = encodeKey(generatePrivateKey(rng));
const PRIV_BYTES = generatePrivateKey(seededRandom(7));
const PEER1 = encodeKey(publicKey(generatePrivateKey(rng)));
const PEER2 = encodeKey(publicKey(generatePrivateKey(rng)));
const PSK = encodeKey(rng(new Uint8Array(32)));

/** Parses text expected to fail; returns the collected errors. */
function errorsOf(text: string, source = "wg.conf"): ConfigError[] {
  const e = assertThrows(() => parseWgQuick(text, source));
  assert(e instanceof ConfigErrors, `expected ConfigErrors, got ${e}`);
  return e.errors;
}

function only(errors: ConfigError[]): ConfigError {
  assertEquals(errors.length, 1, errors.map((e) => e.message).join("\n"));
  return errors[0];
}

Deno.test("wgquick: a full config with case-insensitive keys, comments, repeated lists, IPv6", () => {
  const warnings: string[] = [];
  const text = [
    "# full example",
    "[interface]   # section names in any case",
    `privatekey = ${PRIV}`,
    "Address = 10.0.0.2/24, FD00::0002/64 ; INI-style comment",
    "ADDRESS = 10.0.1.2",
    "ListenPort = 51820",
    "mtu=1380",
    "DNS = 1.1.1.1, 2606:4700:4700::1111",
    "DNS = corp.example",
    "",
    "[PEER]",
    `PublicKey = ${PEER1}`,
    `PresharedKey = ${PSK}   # psk`,
    "AllowedIPs = 10.0.0.0/24, fd00::/64",
    "AllowedIPs = 192.168.7.9/16",
    "Endpoint = vpn.Example.com:51820",
    "PersistentKeepalive = 25",
    "[Peer]",
    `PublicKey = ${PEER2}`,
    "AllowedIPs = ::/0",
    "Endpoint = [2001:DB8::1]:443",
    "PersistentKeepalive = off",
  ].join("\r\n");
  const cfg = parseWgQuick(text, "wg.conf", warnings);
  assertEquals(warnings, []);
  assertEquals(cfg.source, "wg.conf");
  assertEquals(cfg.iface.privateKey, PRIV_BYTES);
  assertEquals(cfg.iface.addresses, [
    { address: "10.0.0.2", prefix: 24 },
    { address: "fd00::2", prefix: 64 },
    { address: "10.0.1.2", prefix: 32 },
  ]);
  assertEquals(cfg.iface.listenPort, 51820);
  assertEquals(cfg.iface.mtu, 1380);
  assertEquals(cfg.iface.dns, ["1.1.1.1", "2606:4700:4700::1111", "corp.example"]);
  assertEquals(cfg.iface.obfs, undefined);
  assertEquals(cfg.peers.length, 2);
  assertEquals(encodeKey(cfg.peers[0].publicKey), PEER1);
  assertEquals(encodeKey(cfg.peers[0].presharedKey!), PSK);
  assertEquals(cfg.peers[0].allowedIps, [
    { address: "10.0.0.0", prefix: 24 },
    { address: "fd00::", prefix: 64 },
    { address: "192.168.0.0", prefix: 16 }, // host bits cleared, as wg does
  ]);
  assertEquals(cfg.peers[0].endpoint, { host: "vpn.example.com", port: 51820 });
  assertEquals(cfg.peers[0].persistentKeepalive, 25);
  assertEquals(cfg.peers[1].endpoint, { host: "2001:db8::1", port: 443 });
  assertEquals(cfg.peers[1].persistentKeepalive, undefined);
  assertEquals(cfg.peers[1].presharedKey, undefined);
});

Deno.test("wgquick: defaults, Obfs, a peer without endpoint, ListenPort 0", () => {
  const cfg = parseWgQuick(
    `[Interface]\nPrivateKey=${PRIV}\nObfs = s3cret-pass\nListenPort = 0\n[Peer]\nPublicKey=${PEER1}\nAllowedIPs=`,
    "x",
  );
  assertEquals(cfg.iface.mtu, 1420);
  assertEquals(cfg.iface.addresses, []);
  assertEquals(cfg.iface.dns, []);
  assertEquals(cfg.iface.listenPort, undefined);
  assertEquals(cfg.iface.obfs, "s3cret-pass");
  assertEquals(cfg.peers[0].endpoint, undefined);
  assertEquals(cfg.peers[0].allowedIps, []);
});

Deno.test("wgquick: wg-quick host keys are warnings; unknown keys are errors with file and line, as in wg(8)", () => {
  const warnings: string[] = [];
  const cfg = parseWgQuick(
    [
      "[Interface]",
      `PrivateKey = ${PRIV}`,
      "Table = off",
      "PostUp = iptables -A FORWARD -i %i -j ACCEPT",
      "SaveConfig = true",
      "FwMark = 0x1234",
      "PreUp = true",
      "PreDown = true",
      "PostDown = true",
      "[Peer]",
      `PublicKey = ${PEER1}`,
    ].join("\n"),
    "wg0.conf",
    warnings,
  );
  assertEquals(cfg.peers.length, 1);
  assertEquals(warnings.length, 7, warnings.join("\n"));
  assertStringIncludes(warnings[0], "wg0.conf:3: Table is a wg-quick host setting");
  assertStringIncludes(warnings[1], "wg0.conf:4: PostUp");
  assertStringIncludes(warnings[6], "wg0.conf:9: PostDown");

  const errors = errorsOf(
    [
      "[Interface]",
      `PrivateKey = ${PRIV}`,
      "Colour = blue",
      "Lisen Port = 51820",
      "[Peer]",
      `PublicKey = ${PEER1}`,
      "Endpint = 192.0.2.1:51820",
      "yAnz5TF+lX = 1",
    ].join("\n"),
    "wg0.conf",
  );
  assertEquals(errors.map((e) => e.message), [
    "wg0.conf:3: Colour: expected an [Interface] key: PrivateKey, Address, ListenPort, MTU, DNS, Obfs (or a " +
    "wg-quick host key such as PostUp)",
    'wg0.conf:4: "Lisen Port": expected a key name without spaces (ListenPort)',
    "wg0.conf:7: Endpint: expected a [Peer] key: PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive, Reserved",
    "wg0.conf:8: expected Key = Value (line not shown: it is not a Key = Value line, and it may hold a private key)",
  ]);
});

Deno.test("wgquick: repeated single keys and doubly claimed AllowedIPs warn; the later wins", () => {
  const warnings: string[] = [];
  const cfg = parseWgQuick(
    `[Interface]\nPrivateKey=${PRIV}\nMTU=1400\nMTU=1300\n[Peer]\nPublicKey=${PEER1}\nAllowedIPs=10.0.0.0/24, 10.1.0.0/24\n` +
      `[Peer]\nPublicKey=${PEER2}\nAllowedIPs=10.0.0.0/24`,
    "w",
    warnings,
  );
  assertEquals(cfg.iface.mtu, 1300);
  assertEquals(cfg.peers[0].allowedIps, [{ address: "10.1.0.0", prefix: 24 }]);
  assertEquals(cfg.peers[1].allowedIps, [{ address: "10.0.0.0", prefix: 24 }]);
  assertEquals(warnings.length, 2, warnings.join("\n"));
  assertStringIncludes(warnings[0], "w:4: MTU given again (first at line 3)");
  assertStringIncludes(warnings[1], "10.0.0.0/24 is also claimed by the peer at line 5");
});

Deno.test("wgquick: the example error message shape", () => {
  const e = only(errorsOf(`[Interface]\nPrivateKey = ${PRIV}\n\n\n\n\nAddress = 10.0.0.300/32`));
  assertEquals(e.source, "wg.conf");
  assertEquals(e.line, 7);
  assertEquals(e.key, "Address");
  assertEquals(
    e.message,
    'wg.conf:7: Address: expected an IP prefix like 10.0.0.2/32 or fd00::2/128, got "10.0.0.300/32"',
  );
});

Deno.test("wgquick: every error path names source, line, key and expectation; all are collected", () => {
  const text = [
    "Address = 10.0.0.1", // 1: before any section
    "[Interface]", // 2
    "PrivateKey = not-a-key", // 3
    "Address = 10.0.0.1/33, fe80::1%eth0", // 4 (two errors)
    "ListenPort = 65536", // 5
    "MTU = 575", // 6
    "DNS = bad_name!", // 7
    "Obfs =", // 8
    "PublicKey = " + PEER1, // 9: peer key in [Interface]
    "just some words", // 10: not Key = Value
    "[Interface]", // 11: second [Interface]
    "[Peer]", // 12: no PublicKey
    "AllowedIPs = 10.0.0.0/8", // 13
    "Endpoint = fd00::1:51820", // 14
    "PersistentKeepalive = 70000", // 15
    "PresharedKey = short", // 16
    "MTU = 1400", // 17: interface key in [Peer]
    "[Peer]", // 18
    `PublicKey = ${PEER1}`, // 19
    "Endpoint = example.com", // 20
    "[Peer]", // 21
    `PublicKey = ${PEER1}`, // 22: duplicate peer
    "[Sever]", // 23: unknown section
  ].join("\n");
  const errors = errorsOf(text);
  const summary = errors.map((e) => `${e.line}:${e.key ?? ""}`).sort();
  assertEquals(
    summary,
    [
      "1:Address",
      "3:PrivateKey",
      "4:Address",
      "4:Address",
      "5:ListenPort",
      "6:MTU",
      "7:DNS",
      "8:Obfs",
      "9:PublicKey",
      "10:",
      "11:[Interface]",
      "12:PublicKey",
      "14:Endpoint",
      "15:PersistentKeepalive",
      "16:PresharedKey",
      "17:MTU",
      "20:Endpoint",
      "22:PublicKey",
      "23:",
    ].sort(),
  );
  for (const e of errors) {
    assertEquals(e.source, "wg.conf");
    assert(e.line !== undefined, e.message);
    assert(e.expected.length > 0);
    assert(e.message.startsWith(`wg.conf:${e.line}: `), e.message);
    assertStringIncludes(e.message, "expected ");
  }
  const byLine = (n: number) => errors.find((e) => e.line === n)!;
  assertStringIncludes(byLine(5).message, 'expected a UDP port 0..65535 (0 = any), got "65536"');
  assertStringIncludes(byLine(6).message, 'MTU: expected an MTU 576..65535, got "575"');
  assertStringIncludes(byLine(14).message, "[fd00::1]:51820");
  assertStringIncludes(byLine(22).message, "line 18");
});

Deno.test("wgquick: missing [Interface] / missing PrivateKey are errors", () => {
  const noIface = only(errorsOf(`[Peer]\nPublicKey=${PEER1}`));
  assertEquals(noIface.key, "[Interface]");
  assertStringIncludes(noIface.message, "wg.conf: [Interface]: expected an [Interface] section");
  const noKey = only(errorsOf(`# hi\n[Interface]\nAddress=10.0.0.1/32`));
  assertEquals(noKey.line, 2);
  assertEquals(noKey.key, "PrivateKey");
  assertEquals(only(errorsOf("")).key, "[Interface]");
});

Deno.test("wgquick: secrets never appear in errors or warnings", () => {
  const secretish = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI";
  const warnings: string[] = [];
  let msgs = "";
  try {
    parseWgQuick(
      [
        "[Interface]",
        `PrivateKey = ${secretish}`, // 43 chars: wrong length, must not be echoed
        `${PRIV}`, // a pasted key on its own line
        `PrivateKey = ${PRIV} trailing`,
        `${PRIV.slice(0, 20)} = x`,
        "[Peer]",
        `PublicKey = ${PEER1}`,
        `PresharedKey = ${PSK}x`,
      ].join("\n"),
      "wg.conf",
      warnings,
    );
  } catch (e) {
    msgs = (e as Error).message;
  }
  assert(msgs.length > 0);
  const all = msgs + "\n" + warnings.join("\n");
  for (const s of [secretish, PRIV, PRIV.slice(0, 20), PSK, PSK.slice(0, 20)]) {
    assert(!all.includes(s), `secret leaked into: ${all}`);
  }
});

Deno.test("pipe form: PrivateKey|PublicKey|Endpoint|ClientIP", () => {
  const cfg = parsePipeForm(`${PRIV}|${PEER1}|vpn.example.com:51820|10.8.0.5`, "WG_CONFIG");
  assertEquals(cfg.source, "WG_CONFIG");
  assertEquals(cfg.iface.privateKey, PRIV_BYTES);
  assertEquals(cfg.iface.addresses, [{ address: "10.8.0.5", prefix: 32 }]);
  assertEquals(cfg.iface.mtu, 1420);
  assertEquals(cfg.peers.length, 1);
  assertEquals(encodeKey(cfg.peers[0].publicKey), PEER1);
  assertEquals(cfg.peers[0].endpoint, { host: "vpn.example.com", port: 51820 });
  assertEquals(cfg.peers[0].allowedIps, [{ address: "0.0.0.0", prefix: 0 }, { address: "::", prefix: 0 }]);
  assertEquals(cfg.peers[0].persistentKeepalive, PIPE_KEEPALIVE_SECONDS);

  const v6 = parsePipeForm(` ${PRIV} | ${PEER1} | [fd00::1]:51820 | 10.8.0.5/24, FD00::5 \n`, "x");
  assertEquals(v6.peers[0].endpoint, { host: "fd00::1", port: 51820 });
  assertEquals(v6.iface.addresses, [{ address: "10.8.0.5", prefix: 24 }, {
    address: "fd00::5",
    prefix: 128,
  }]);

  // A file may carry the form with comments around it; parseWgText picks the format.
  const fromFile = parseWgText(
    `# tunnel for station 4\n\n${PRIV}|${PEER1}|1.2.3.4:51820|10.8.0.5\n`,
    "p.conf",
  );
  assertEquals(fromFile.peers[0].endpoint, { host: "1.2.3.4", port: 51820 });
  const ini = parseWgText(`[Interface]\nPrivateKey=${PRIV}\nPostUp = echo a | tee b`, "i.conf");
  assertEquals(ini.peers, []);
});

Deno.test("pipe form: errors name the field and never echo keys", () => {
  const cases: [string, string][] = [
    [`${PRIV}|${PEER1}|host`, "expected 4 or 5 fields"],
    [`${PRIV}|${PEER1}|host:1|10.0.0.1|extra`, "Reserved (field 5)"],
    [`${PRIV}|${PEER1}|host:1|10.0.0.1|1,2,3|more`, "expected 4 or 5 fields"],
    [`${PRIV}x|${PEER1}|host:1|10.0.0.1`, "PrivateKey (field 1)"],
    [`${PRIV}|nope|host:1|10.0.0.1`, "PublicKey (field 2)"],
    [`${PRIV}|${PEER1}|fd00::1:5|10.0.0.1`, "Endpoint (field 3)"],
    [`${PRIV}|${PEER1}|host:99999|10.0.0.1`, "Endpoint (field 3)"],
    [`${PRIV}|${PEER1}|host:1|10.0.0.256`, "ClientIP (field 4)"],
    [`${PRIV}|${PEER1}|host:1|`, "ClientIP (field 4)"],
  ];
  for (const [text, want] of cases) {
    const e = assertThrows(() => parsePipeForm(text, "WG_TUNNEL_A"));
    assert(e instanceof ConfigErrors, text);
    assertStringIncludes(e.message, "WG_TUNNEL_A: ");
    assertStringIncludes(e.message, want);
    assert(!e.message.includes(PRIV.slice(0, 16)), e.message);
  }
  const e = assertThrows(() => parsePipeForm(`${PRIV}|${PEER1}|1.2.3.4:5|10.0.0.1\nsecond|line`, "f.conf"));
  assertStringIncludes(e.message, "f.conf:2: expected exactly one line");
});

Deno.test("canonical: the same tunnel written differently has one canonical text and fingerprint", () => {
  const ini = parseWgQuick(
    `[interface]\nprivatekey=${PRIV}\naddress = 10.8.0.5\n[peer]\npublickey=${PEER1}\nallowedips=0.0.0.0/0,::0/0\n` +
      `endpoint=VPN.example.com:51820\npersistentkeepalive=25 # keep NAT open`,
    "a.conf",
  );
  const pipe = parsePipeForm(`${PRIV}|${PEER1}|vpn.example.com:51820|10.8.0.5/32`, "WG_TUNNEL_X");
  assertEquals(formatWgQuick(ini), formatWgQuick(pipe));
  assertEquals(wgConfigFingerprint(ini), wgConfigFingerprint(pipe));
  const other = parsePipeForm(`${PRIV}|${PEER1}|vpn.example.com:51821|10.8.0.5/32`, "WG_TUNNEL_X");
  assertNotEquals(wgConfigFingerprint(ini), wgConfigFingerprint(other));
  // The canonical text parses back to the same config.
  assertEquals(parseWgQuick(formatWgQuick(ini), "a.conf"), ini);
  const shown = formatWgQuick(
    parseWgQuick(
      `[Interface]\nPrivateKey=${PRIV}\nObfs=pw\n[Peer]\nPublicKey=${PEER1}\nPresharedKey=${PSK}`,
      "x",
    ),
    { redact: true },
  );
  assert(!shown.includes(PRIV) && !shown.includes(PSK) && !shown.includes("= pw"), shown);
  assertStringIncludes(shown, `PublicKey = ${PEER1}`);
});
