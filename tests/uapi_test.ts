/**
 * UAPI without root: the line reader, get/set against in-memory devices (every errno wireguard-go answers),
 * and the unix socket in a temporary directory (mode, collisions, stale files, removal).
 */
import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "./helpers/assert.ts";
import { tunnelNameOf } from "../src/cli/up.ts";
import { loadConfig } from "../src/config/mod.ts";
import {
  formatUapiReply,
  keyFromHex,
  keyToHex,
  UAPI_ERRNO,
  UapiProtocolError,
  UapiReader,
  type UapiSet,
} from "../src/wire/uapi.ts";
import { parseUapiEndpoint, parseUapiPrefix, uapiGet, uapiSet } from "../src/wireguard/uapi.ts";
import { serveUapi, UapiNameInUse, uapiNameProblem } from "../src/net/uapi_server.ts";
import { generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { seededRandom } from "../src/util/random.ts";
import { advance, flush, ipv4Packet, makePair } from "./helpers/wgpair.ts";
import { uapiTalk as talk } from "./helpers/uapi.ts";

const enc = new TextEncoder();

function read(text: string): UapiReader {
  const r = new UapiReader();
  r.push(enc.encode(text));
  return r;
}

function setOf(text: string): UapiSet {
  const req = read(`set=1\n${text}\n`).next();
  assert(req?.op === "set");
  return req as UapiSet;
}

Deno.test("uapi wire: requests split across reads, empty set, bad get, bad operation, long line", () => {
  const r = new UapiReader();
  r.push(enc.encode("get"));
  assertEquals(r.next(), null);
  r.push(enc.encode("=1\n"));
  assertEquals(r.next(), null, "get=1 waits for its blank line");
  r.push(enc.encode("\nset=1\nlisten_port=5"));
  assertEquals(r.next(), { op: "get" });
  assertEquals(r.next(), null);
  r.push(enc.encode("1820\npublic_key=ab\n\nset=1\n\n"));
  assertEquals(r.next(), {
    op: "set",
    lines: [{ key: "listen_port", value: "51820" }, { key: "public_key", value: "ab" }],
  });
  assertEquals(r.next(), { op: "set", lines: [] });
  assertEquals(read("get=1\nx").next(), { op: "bad-get" });
  assertEquals(read("set=1\nlisten_port=1\nnonsense\nfwmark=0\n\n").next(), {
    op: "set",
    lines: [{ key: "listen_port", value: "1" }],
    bad: "nonsense",
  });
  assert(assertThrows(() => read("show=1\n").next()) instanceof UapiProtocolError);
  assert(
    assertThrows(() => new UapiReader().push(new Uint8Array(70_000).fill(0x61))) instanceof UapiProtocolError,
  );
  assertEquals(formatUapiReply([{ key: "a", value: "1" }], -22), "a=1\nerrno=-22\n\n");
  const k = seededRandom(1)(new Uint8Array(32));
  assertEquals(keyFromHex(keyToHex(k)), k);
  assertEquals(keyFromHex(keyToHex(k).toUpperCase()), k);
  assertEquals(keyFromHex("ab"), null);
  assertEquals(keyFromHex("zz".repeat(32)), null);
});

Deno.test("uapi values: endpoints and prefixes as Go's netip parses them", () => {
  assertEquals(parseUapiEndpoint("192.0.2.1:51820"), { address: "192.0.2.1", port: 51820 });
  assertEquals(parseUapiEndpoint("[fd00::1]:1"), { address: "fd00::1", port: 1 });
  for (const bad of ["192.0.2.1", "host:1", "[fd00::1]", "fd00::1:5", "1.2.3.4:65536", "1.2.3.4:-1", ""]) {
    assertEquals(parseUapiEndpoint(bad), null, bad);
  }
  assertEquals(parseUapiPrefix("10.0.0.0/8")?.bits, 8);
  assertEquals(parseUapiPrefix("::/0")?.bits, 0);
  for (const bad of ["10.0.0.1", "10.0.0.0/33", "fd00::/129", "10.0.0.0/08", "x/1"]) {
    assertEquals(parseUapiPrefix(bad), null, bad);
  }
  assertEquals(uapiNameProblem("wg0"), null);
  assert(uapiNameProblem("a-very-long-name")?.includes("15 characters"));
  assert(uapiNameProblem("../x")?.includes("not an interface name"));
  assert(uapiNameProblem("")?.includes("empty"));
});

Deno.test("uapi get: what wg show reads, matching the device status", async () => {
  const p = await makePair({ psk: seededRandom(9)(new Uint8Array(32)), aKeepalive: 25 });
  try {
    p.a.send(ipv4Packet("10.0.0.1", "10.0.0.2"));
    await flush();
    p.b.send(ipv4Packet("10.0.0.2", "10.0.0.1"));
    await flush();
    const lines = uapiGet(p.a);
    const get = (k: string) => lines.filter((l) => l.key === k).map((l) => l.value);
    const st = p.a.status().peers[0];
    assertEquals(lines[0], { key: "private_key", value: keyToHex(p.a.identity.privateKey) });
    assertEquals(get("listen_port"), [String(p.a.listenPort)]);
    assertEquals(get("public_key"), [keyToHex(p.a.peers[0].publicKey)]);
    assertEquals(get("preshared_key"), [keyToHex(p.a.peers[0].handshake.presharedKey)]);
    assertEquals(get("protocol_version"), ["1"]);
    assertEquals(get("endpoint"), [st.endpoint!]);
    assertEquals(get("tx_bytes"), [String(st.txBytes)]);
    assertEquals(get("rx_bytes"), [String(st.rxBytes)]);
    assert(st.txBytes > 0 && st.rxBytes > 0);
    assertEquals(get("persistent_keepalive_interval"), ["25"]);
    assertEquals(get("allowed_ip"), st.allowedIps);
    const ms = Date.parse(st.lastHandshake!);
    assertEquals(get("last_handshake_time_sec"), [String(Math.floor(ms / 1000))]);
    assertEquals(get("last_handshake_time_nsec"), [String((ms % 1000) * 1e6)]);
    assertEquals(lines.map((l) => l.key).slice(0, 4), [
      "private_key",
      "listen_port",
      "public_key",
      "preshared_key",
    ]);
  } finally {
    p.close();
  }
});

Deno.test("uapi set: peers, endpoint, allowed IPs, keepalive, PSK; changes take effect at once", async () => {
  const p = await makePair();
  try {
    const rng = seededRandom(3);
    const c = publicKey(generatePrivateKey(rng));
    const a = p.a;
    const b = keyToHex(p.a.peers[0].publicKey);
    // Add a peer with an endpoint, two prefixes and a keepalive; move one of b's prefixes.
    assertEquals(
      await uapiSet(
        a,
        setOf(
          `public_key=${keyToHex(c)}\nendpoint=192.0.2.9:5000\npersistent_keepalive_interval=10\n` +
            `allowed_ip=10.9.0.0/16\nallowed_ip=fd09::/64\nprotocol_version=1\n` +
            `public_key=${b}\nallowed_ip=10.0.0.2/32\nallowed_ip=10.0.1.0/24\n`,
        ),
      ),
      0,
    );
    const st = a.status().peers;
    assertEquals(st.length, 2);
    assertEquals(st[1].endpoint, "192.0.2.9:5000");
    assertEquals(st[1].allowedIps, ["10.9.0.0/16", "fd09::/64"]);
    assertEquals(st[1].persistentKeepalive, 10);
    assertEquals(st[0].allowedIps, ["10.0.0.2/32", "10.0.1.0/24"]);
    assert(a.hasRoute(Uint8Array.of(10, 9, 1, 1)));
    // Turning the keepalive on sent a handshake initiation to the new endpoint at once (pkaOn).
    assertEquals(a.peers[1].stats.handshakeAttempts, 1);
    // Remove one prefix, replace the rest, set a PSK: the handshake with b then fails (b has none).
    assertEquals(await uapiSet(a, setOf(`public_key=${keyToHex(c)}\nallowed_ip=-10.9.0.0/16\n`)), 0);
    assertEquals(a.status().peers[1].allowedIps, ["fd09::/64"]);
    assertEquals(
      await uapiSet(a, setOf(`public_key=${b}\nreplace_allowed_ips=true\nallowed_ip=10.0.0.0/24\n`)),
      0,
    );
    assertEquals(a.status().peers[0].allowedIps, ["10.0.0.0/24"]);
    assertEquals(await uapiSet(a, setOf(`public_key=${b}\npreshared_key=${"11".repeat(32)}\n`)), 0);
    assertEquals(a.status().peers[0].keying, "preshared");
    a.send(ipv4Packet("10.0.0.1", "10.0.0.2"));
    await flush();
    assertEquals(p.bGot.length, 0, "b rejects a handshake under a PSK it does not have");
    assertEquals(await uapiSet(a, setOf(`public_key=${b}\npreshared_key=${"00".repeat(32)}\n`)), 0);
    await advance(p.clock, 5_500);
    assertEquals(p.bGot.length, 1, "without the PSK the staged packet arrives after the retry");
    // Remove b: nothing routes to it any more.
    assertEquals(await uapiSet(a, setOf(`public_key=${b}\nremove=true\n`)), 0);
    assertEquals(a.status().peers.map((x) => x.publicKey), [a.status().peers[0].publicKey]);
    assert(!a.hasRoute(Uint8Array.of(10, 0, 0, 2)));
    a.send(ipv4Packet("10.0.0.1", "10.0.0.2"));
    await flush();
    assertEquals(p.bGot.length, 1);
    // update_only does not create; replace_peers empties.
    const d = keyToHex(publicKey(generatePrivateKey(rng)));
    assertEquals(await uapiSet(a, setOf(`public_key=${d}\nupdate_only=true\nallowed_ip=10.5.0.0/16\n`)), 0);
    assertEquals(a.peers.length, 1);
    assertEquals(await uapiSet(a, setOf("replace_peers=true\n")), 0);
    assertEquals(a.peers.length, 0);
    // The device's own key as a peer is ignored (wireguard-go's dummy peer).
    assertEquals(
      await uapiSet(a, setOf(`public_key=${keyToHex(a.identity.publicKey)}\nallowed_ip=10.1.0.0/16\n`)),
      0,
    );
    assertEquals(a.peers.length, 0);
  } finally {
    p.close();
  }
});

Deno.test("uapi set: private key and listen port", async () => {
  const p = await makePair();
  try {
    const b = p.b;
    const before = b.publicKey;
    p.a.send(ipv4Packet("10.0.0.1", "10.0.0.2"));
    await flush();
    assertEquals(p.bGot.length, 1);
    const sk = generatePrivateKey(seededRandom(77));
    assertEquals(await uapiSet(b, setOf(`private_key=${keyToHex(sk)}\n`)), 0);
    assert(b.publicKey !== before);
    assertEquals(b.peers[0].keypairs.current, undefined, "sessions dropped");
    // a still knows b's old key: its next handshake fails mac1 at b.
    await advance(p.clock, 200_000);
    p.a.send(ipv4Packet("10.0.0.1", "10.0.0.2"));
    await flush();
    assertEquals(p.bGot.length, 1);
    assert(b.stats.dropped.mac1 >= 1);
    // Rebinding the in-memory bind to a new port.
    assertEquals(await uapiSet(b, setOf("listen_port=51999\n")), 0);
    assertEquals(b.listenPort, 51999);
    assertEquals(uapiGet(b).find((l) => l.key === "listen_port")?.value, "51999");
  } finally {
    p.close();
  }
});

Deno.test("uapi set: every refusal answers wireguard-go's errno and keeps what came before", async () => {
  const p = await makePair();
  try {
    const a = p.a;
    const b = keyToHex(a.peers[0].publicKey);
    const cases: [string, number][] = [
      ["private_key=xyz\n", UAPI_ERRNO.invalid],
      [`private_key=${"00".repeat(32)}\n`, UAPI_ERRNO.invalid],
      ["listen_port=65536\n", UAPI_ERRNO.invalid],
      ["listen_port=-1\n", UAPI_ERRNO.invalid],
      ["fwmark=0\n", 0],
      ["fwmark=1\n", UAPI_ERRNO.notSupported],
      ["fwmark=x\n", UAPI_ERRNO.invalid],
      ["replace_peers=false\n", UAPI_ERRNO.invalid],
      ["endpoint=1.2.3.4:5\n", UAPI_ERRNO.invalid], // a peer key before a public_key
      ["public_key=12\n", UAPI_ERRNO.invalid],
      [`public_key=${b}\nremove=yes\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\nupdate_only=1\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\npreshared_key=00\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\nendpoint=vpn.example.com:51820\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\npersistent_keepalive_interval=65536\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\nreplace_allowed_ips=1\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\nallowed_ip=10.0.0.0\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\nprotocol_version=2\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\nnonsense=1\n`, UAPI_ERRNO.invalid],
      [`public_key=${b}\nallowed_ip=10.0.7.0/24\njunk\n`, UAPI_ERRNO.protocol],
    ];
    for (const [text, errno] of cases) {
      const logged: string[] = [];
      assertEquals(await uapiSet(a, setOf(text), (m) => logged.push(m)), errno, text);
      if (errno !== 0) assertEquals(logged.length, 1, text);
      for (const m of logged) assert(!m.includes("00".repeat(32)), m);
    }
    // The line before the protocol error was applied, as wireguard-go applies lines as it reads them.
    assert(a.status().peers[0].allowedIps.includes("10.0.7.0/24"));
  } finally {
    p.close();
  }
});

Deno.test("uapi socket: 0600, get and set over it, collisions refused, stale files replaced, removed at close", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-uapi-" });
  const p = await makePair();
  try {
    const s = await serveUapi(p.a, { name: "wgt0", dir: `${dir}/sub` });
    assertEquals(s.path, `${dir}/sub/wgt0.sock`);
    assertEquals((await Deno.stat(s.path)).mode! & 0o777, 0o600);
    const got = await talk(s.path, "get=1\n\n");
    assert(got.startsWith(`private_key=${keyToHex(p.a.identity.privateKey)}\n`), got);
    assert(got.endsWith("errno=0\n\n"), got);
    const c = keyToHex(publicKey(generatePrivateKey(seededRandom(5))));
    assertEquals(await talk(s.path, `set=1\npublic_key=${c}\nallowed_ip=10.3.0.0/16\n\n`), "errno=0\n\n");
    assertEquals(p.a.status().peers[1].allowedIps, ["10.3.0.0/16"]);
    assertEquals(await talk(s.path, "set=1\nlisten_port=x\n\n"), "errno=-22\n\n");
    assertEquals(await talk(s.path, "get=1\nx"), "errno=-22\n\n");
    // Two requests on one connection, as wg setconf then get would.
    const two = await talk(s.path, "set=1\nfwmark=0\n\nget=1\n\n", 2);
    assert(two.startsWith("errno=0\n\nprivate_key="), two);
    // Another tunnel with the same name is refused while this one answers.
    const inUse = await assertRejects(() => serveUapi(p.b, { name: "wgt0", dir: `${dir}/sub` }), "is in use");
    assert(inUse instanceof UapiNameInUse);
    s.close();
    await assertRejects(() => Deno.stat(s.path), "No such file");
    // A stale socket file (its process died: bound, nothing listening) is replaced.
    const stalePath = `${dir}/sub/wgt1.sock`;
    const py = await new Deno.Command("/usr/bin/python3", {
      args: ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", stalePath],
    }).output();
    assert(py.success);
    assert((await Deno.stat(stalePath)).isSocket);
    const s2 = await serveUapi(p.b, { name: "wgt1", dir: `${dir}/sub` });
    assert((await talk(s2.path, "get=1\n\n")).includes(`private_key=${keyToHex(p.b.identity.privateKey)}`));
    s2.close();
    await assertRejects(() => serveUapi(p.b, { name: "this-name-is-too-long", dir }), "15 characters");
  } finally {
    p.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("uapi names and directory: up's name from the file, WG_UAPI_DIR from the loader", async () => {
  assertEquals(tunnelNameOf("/etc/wireguard/wg0.conf"), "wg0");
  assertEquals(tunnelNameOf("office.conf"), "office");
  assertEquals(tunnelNameOf("/etc/wgedge/tunnel"), "tunnel");
  assertEquals(tunnelNameOf("WG_CONFIG"), "main", "inline content");
  assertEquals(tunnelNameOf("--config"), "main");
  const load = (env: Record<string, string>, flags: Record<string, string> = {}) =>
    loadConfig({ env, flags });
  assertEquals((await load({})).config.uapi, { dir: "/var/run/wireguard" });
  assertEquals((await load({ WG_UAPI_DIR: "off" })).config.uapi, {});
  assertEquals((await load({ WG_UAPI_DIR: "/run/x" }, { "uapi-dir": "/tmp/y" })).config.uapi, {
    dir: "/tmp/y",
  });
  const bad = await assertRejects(() => load({ WG_UAPI_DIR: "relative/dir" }), "WG_UAPI_DIR");
  assertStringIncludes(bad.message, "an absolute directory path");
});
