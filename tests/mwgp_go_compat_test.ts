/**
 * mwgp as the Go project (apernet/mwgp v2.1.6) reads its files: per-server and per-peer csvl/ssvl
 * (server.go), a cache entry written by Go (`ssvl: 0` = server address and port must match, wgit.go), the
 * MWGP_NO_CACHE / MWGP_SKIP_LOAD_CACHE variables (cmd/mwgp/main.go), the client's `resolver` (dns+udp and
 * hn2etxt), `dns` without a port and small `max_packet_size`, and a `:port` listen that serves IPv6 and IPv4 clients. Loopback only; the
 * WireGuard peers are noise.ts handshakes; every network wait is bounded.
 */
import { waitFor } from "./helpers/wait.ts";
import { receiveWithin } from "./helpers/udp.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { Forwarder, type Outbound } from "../src/services/mwgp/forwarder.ts";
import { serverRouter } from "../src/services/mwgp/router.ts";
import {
  CachingTargetResolver,
  decryptHn2etxt,
  hn2etxtKey,
  newestHn2etxt,
  parseHn2etxtRecord,
} from "../src/services/mwgp/resolver.ts";
import { aead } from "../src/crypto/aead.ts";
import { loadRecords, serializeTable } from "../src/services/mwgp/cache.ts";
import { MwgpService } from "../src/services/mwgp/service.ts";
import type { UdpAddr } from "../src/services/mwgp/table.ts";
import { type MwgpServerConfig, parseMwgpClientConfig, parseMwgpServerConfig } from "../src/config/mwgp.ts";
import { ConfigErrors } from "../src/config/errors.ts";
import { loadConfig } from "../src/config/mod.ts";
import { createSupervisor } from "../src/cli/server.ts";
import { MapResolver } from "../src/net/resolve.ts";
import { ManualClock } from "../src/util/clock.ts";
import { encodeKey, generatePrivateKey } from "../src/crypto/x25519.ts";
import {
  consumeInitiation,
  createInitiation,
  createResponse,
  Handshake,
  type StaticIdentity,
  staticIdentity,
} from "../src/wireguard/noise.ts";
import { CookieGenerator } from "../src/wireguard/cookie.ts";
import { InitiationMessage } from "../src/wire/wireguard.ts";
import { DENO_JSON, MAIN_TS } from "./helpers/interop.ts";
import { freePort } from "./helpers/ports.ts";
import { fakeZoneDns } from "./helpers/fake_dns.ts";

const LOOP = "127.0.0.1";
const id = (): StaticIdentity => staticIdentity(generatePrivateKey());
const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);

function transport(receiver: number, marker = 0, len = 64): Uint8Array {
  const b = new Uint8Array(len);
  b.set([4, 0, 0, 0]);
  new DataView(b.buffer).setUint32(4, receiver, true);
  b[16] = marker;
  return b;
}

/** A receive bounded at `ms` (a lost datagram fails the test instead of hanging it). */
function recv(conn: Deno.DatagramConn, what: string, ms = 15_000): Promise<[Uint8Array, Deno.NetAddr]> {
  return receiveWithin(conn, what, ms) as Promise<[Uint8Array, Deno.NetAddr]>;
}

function udp(hostname = LOOP): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}
const portOf = (c: Deno.DatagramConn) => (c.addr as Deno.NetAddr).port;

/** An initiation from `c` to `s` with valid MACs. */
function initiation(
  c: StaticIdentity,
  s: StaticIdentity,
  index: number,
): { bytes: Uint8Array; hsS: Handshake } {
  const init = createInitiation(new Handshake(c, s.publicKey), index, Date.now());
  new CookieGenerator(s.publicKey).addMacs(init.bytes, 0);
  return { bytes: init.bytes, hsS: new Handshake(s, c.publicKey) };
}

/** The real server's answer to a forwarded initiation. */
function response(s: StaticIdentity, c: StaticIdentity, hsS: Handshake, fwd: Uint8Array, index: number) {
  assert("hs" in consumeInitiation(s, InitiationMessage.parse(fwd)!, () => hsS, 0, 0), "server consumed it");
  const resp = createResponse(hsS, index)!;
  new CookieGenerator(c.publicKey).addMacs(resp.bytes, 0);
  return resp.bytes;
}

// ---- csvl / ssvl per server and per peer (server.go 21-25, 70-74)

function goServerConfig(s1: string, s2: string, a: string, b: string, topLevel = ""): string {
  // Exactly the shape of a Go config: levels on a server and on its peers, none at the top level.
  return `{
  "listen": ":1000",
  "timeout": 60,
  ${topLevel}
  "servers": [
    {
      "privkey": "${s1}",
      "address": "127.0.0.1",
      "csvl": 2,
      "ssvl": 2,
      "peers": [
        { "pubkey": "${a}", "forward_to": ":51001", "ssvl": 3 },
        { "pubkey": "${b}", "forward_to": ":51002", "csvl": 3 },
        { "forward_to": ":51003" }
      ]
    },
    {
      "privkey": "${s2}",
      "address": "127.0.0.1",
      "peers": [ { "pubkey": "${a}", "forward_to": ":51004" } ]
    }
  ]
}`;
}

Deno.test("mwgp Go config: csvl/ssvl per server and per peer are read (no unknown-key warning); a peer's wins, then its server's, then the top level", () => {
  const s1 = id(), s2 = id(), a = id(), b = id();
  const text = goServerConfig(
    encodeKey(s1.privateKey),
    encodeKey(s2.privateKey),
    encodeKey(a.publicKey),
    encodeKey(b.publicKey),
  );
  const warnings: string[] = [];
  const c = parseMwgpServerConfig(text, "server.json", warnings);
  assertEquals(warnings, [], "a real Go config loads without warnings");
  const levels = c.servers.map((s) => s.peers.map((p) => [p.csvl ?? 0, p.ssvl ?? 0]));
  assertEquals(levels, [[[2, 3], [3, 2], [2, 2]], [[0, 0]]]);
  // The top level (a wgedge extension for the server) is the default under both.
  const withTop = parseMwgpServerConfig(
    goServerConfig(
      encodeKey(s1.privateKey),
      encodeKey(s2.privateKey),
      encodeKey(a.publicKey),
      encodeKey(b.publicKey),
      `"csvl": 1, "ssvl": 3,`,
    ),
    "server.json",
  );
  assertEquals(withTop.servers[1].peers.map((p) => [p.csvl, p.ssvl]), [[1, 3]]);
  assertEquals(withTop.servers[0].peers[2].csvl, 2, "the server's level beats the top level");
  let msg = "";
  try {
    parseMwgpServerConfig(text.replace(`"ssvl": 3`, `"ssvl": 5`), "server.json");
  } catch (e) {
    assert(e instanceof ConfigErrors || (e as Error).name === "ConfigError", String(e));
    msg = (e as Error).message;
  }
  assert(msg.includes("servers[0].peers[0].ssvl: expected an integer 0..3"), msg);
});

/** A forwarder driven by a parsed config, with a manual clock. */
function engine(config: MwgpServerConfig): Forwarder {
  const fwd: Forwarder = new Forwarder({
    router: (init, from) => router(init, from),
    clock: new ManualClock(),
    timeoutMs: 60_000,
    maxEntries: 100,
    maxPacketSize: config.maxPacketSize,
    csvl: config.csvl,
    ssvl: config.ssvl,
  });
  const router = serverRouter(config, new CachingTargetResolver(new MapResolver()), fwd.stats);
  return fwd;
}

async function engineHandshake(
  fwd: Forwarder,
  c: StaticIdentity,
  s: StaticIdentity,
  clientAddr: UdpAddr,
  index: number,
): Promise<{ cp: number; sp: number; server: UdpAddr }> {
  const init = initiation(c, s, index);
  const toServer = (await fwd.fromClient(init.bytes, clientAddr)) as Outbound;
  assert(toServer, "initiation forwarded");
  const toClient = fwd.fromServer(response(s, c, init.hsS, toServer.data, index + 1), toServer.to);
  assert(toClient, "response forwarded");
  return { cp: u32(toServer.data, 4), sp: u32(toClient.data, 4), server: toServer.to };
}

Deno.test("mwgp Go config: each session gets its peer's levels (per-peer ssvl/csvl enforced, the server's for the others)", async () => {
  const s1 = id(), s2 = id(), a = id(), b = id();
  const fwd = engine(parseMwgpServerConfig(
    goServerConfig(
      encodeKey(s1.privateKey),
      encodeKey(s2.privateKey),
      encodeKey(a.publicKey),
      encodeKey(b.publicKey),
    ),
    "server.json",
  ));
  const aAddr = { hostname: "192.0.2.10", port: 40000 }, bAddr = { hostname: "192.0.2.11", port: 40000 };
  const ra = await engineHandshake(fwd, a, s1, aAddr, 100);
  const rb = await engineHandshake(fwd, b, s1, bAddr, 200);
  assertEquals([ra.server.port, rb.server.port], [51001, 51002]);
  // Server leg: a's peer says 3 (IP and port), b inherits the server's 2 (IP only).
  const otherPort = (s: UdpAddr) => ({ hostname: s.hostname, port: s.port + 100 });
  assertEquals(fwd.fromServer(transport(ra.cp), otherPort(ra.server)), null, "a: ssvl 3 from its peer");
  assertEquals(fwd.stats.drops.source_mismatch, 1);
  assertEquals(
    fwd.fromServer(transport(rb.cp), otherPort(rb.server))?.to,
    bAddr,
    "b: ssvl 2 from its server",
  );
  // Client leg: b's peer says 3, a inherits the server's 2 (same IP, new port is fine).
  assertEquals(
    fwd.fromClient(transport(rb.sp), { hostname: bAddr.hostname, port: 40001 }),
    null,
    "b: csvl 3",
  );
  assertEquals(fwd.stats.drops.source_mismatch, 2);
  assert(fwd.fromClient(transport(ra.sp), { hostname: aAddr.hostname, port: 40001 }), "a: csvl 2, same IP");
  assertEquals(fwd.fromClient(transport(ra.sp), { hostname: "192.0.2.99", port: 40001 }), null, "a: new IP");
});

// ---- a cache entry written by Go: `ssvl: 0` means "server address and port must match" (wgit.go 531-533)

/** A cache file as mwgp 2.1.6 writes it (json.MarshalIndent of WGITCacheTable, field order included). */
function goCacheFile(cpk: string, spk: string, cdst: string, sdst: string): string {
  return `{
  "client_map": [
    {
      "coidx": 1111,
      "cpidx": 1111,
      "cpk": "${cpk}",
      "cdst": "${cdst}",
      "csvl": 0,
      "soidx": 2222,
      "spidx": 2222,
      "spk": "${spk}",
      "sdst": "${sdst}",
      "ssvl": 0,
      "obfe": false
    }
  ]
}`;
}

Deno.test("mwgp Go cache (SECURITY): an entry with ssvl 0 drops a server transport from the wrong port; csvl 0 still roams", () => {
  const s = id(), c = id();
  const fwd = engine(parseMwgpServerConfig(
    `{ listen: ":1000", servers: [{ privkey: "${
      encodeKey(s.privateKey)
    }", peers: [{ forward_to: "127.0.0.1:9" }] }] }`,
    "server.json",
  ));
  const file = JSON.parse(
    goCacheFile(encodeKey(c.publicKey), encodeKey(s.publicKey), "192.0.2.10:40000", "127.0.0.1:51820"),
  );
  assertEquals(loadRecords(fwd.table, file, 0), { loaded: 1, skipped: [] });
  assertEquals(fwd.fromServer(transport(1111), { hostname: "127.0.0.1", port: 51821 }), null, "wrong port");
  assertEquals(fwd.fromServer(transport(1111), { hostname: "127.0.0.2", port: 51820 }), null, "wrong IP");
  assertEquals(fwd.stats.drops.source_mismatch, 2, "both counted");
  const ok = fwd.fromServer(transport(1111), { hostname: "127.0.0.1", port: 51820 });
  assertEquals(ok?.to, { hostname: "192.0.2.10", port: 40000 }, "the server's own address and port pass");
  assertEquals(u32(ok!.data, 4), 1111);
  // csvl 0 is mwgp's client default: no check, the client may roam.
  const moved = { hostname: "203.0.113.7", port: 7000 };
  assert(fwd.fromClient(transport(2222), moved), "client roams");
  assertEquals(fwd.fromServer(transport(1111), { hostname: "127.0.0.1", port: 51820 })?.to, moved);
  // Written back as Go wrote it (the raw levels), so Go reads the same meaning.
  const back = serializeTable(fwd.table).client_map[0];
  assertEquals([back.csvl, back.ssvl], [0, 0]);
});

Deno.test("mwgp Go cache (SECURITY): over loopback, after loading a Go cache, a transport from the server's wrong port is dropped and counted", async () => {
  const dir = await Deno.makeTempDir();
  const server = udp(), wrong = udp(), client = udp();
  const s = id(), c = id();
  await Deno.writeTextFile(
    `${dir}/cache.json`,
    goCacheFile(
      encodeKey(c.publicKey),
      encodeKey(s.publicKey),
      `${LOOP}:${portOf(client)}`,
      `${LOOP}:${portOf(server)}`,
    ),
  );
  const config = parseMwgpServerConfig(
    `{ listen: "${LOOP}:0", servers: [{ privkey: "${encodeKey(s.privateKey)}", address: "${LOOP}",
       peers: [{ forward_to: ":${portOf(server)}" }] }] }`,
    "server.json",
  );
  const svc = await MwgpService.start(config, { cacheFile: `${dir}/cache.json` });
  try {
    assertEquals(svc.forwarder.table.completedCount, 1, "the Go entry was loaded");
    // The session continues from the client: mwgp's upstream socket comes up, the server learns it.
    await client.send(transport(2222, 1), { transport: "udp", hostname: LOOP, port: svc.listenPort });
    const [up, mwgpUpstream] = await recv(server, "the client's transport at the server");
    assertEquals([u32(up, 4), up[16]], [2222, 1]);
    // A transport for the client from another port of the server's host...
    await wrong.send(transport(1111, 9), mwgpUpstream);
    const f = svc.forwarder.stats;
    await waitFor(
      () => f.drops.source_mismatch + f.packetsToClient > 0,
      "the wrong-port transport handled",
    );
    assertEquals(f.drops.source_mismatch, 1, "dropped and counted");
    assertEquals(f.packetsToClient, 0, "not forwarded");
    // ...while the server's own port still reaches the client (the first datagram it gets is this one).
    await server.send(transport(1111, 2), mwgpUpstream);
    const [down] = await recv(client, "the server's transport at the client");
    assertEquals([u32(down, 4), down[16]], [1111, 2]);
  } finally {
    await svc.close();
    for (const x of [server, wrong, client]) x.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- MWGP_NO_CACHE / MWGP_SKIP_LOAD_CACHE (cmd/mwgp/main.go 104-106)

/** `wgedge mwgp server CONFIG` with `env`: one handshake through it, then SIGTERM. */
async function runMwgpServer(
  configPath: string,
  listenPort: number,
  server: Deno.DatagramConn,
  env: Record<string, string>,
) {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("WG_") && !k.startsWith("WGEDGE_") && !k.startsWith("MWGP_")) base[k] = v;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_JSON, MAIN_TS, "mwgp", "server", configPath],
    env: { ...base, ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const c = id();
  const config = parseMwgpServerConfig(await Deno.readTextFile(configPath), configPath);
  const s = staticIdentity(config.servers[0].privateKey);
  const client = udp();
  try {
    // Until the process listens, initiations are lost: resend (each wait bounded), then answer once.
    const init = initiation(c, s, 4242);
    let got: [Uint8Array, Deno.NetAddr] | undefined;
    for (let i = 0; i < 60 && !got; i++) {
      await client.send(init.bytes, { transport: "udp", hostname: LOOP, port: listenPort });
      got = await recv(server, "the initiation", 1000).catch(() => undefined);
    }
    assert(got, "the initiation went through wgedge mwgp");
    await server.send(response(s, c, init.hsS, got[0], 777), got[1]);
    const [back] = await recv(client, "the response");
    assertEquals(back[0], 2);
  } finally {
    client.close();
    child.kill("SIGTERM");
  }
  const status = await child.status;
  return { code: status.code, stderr: await stderr };
}

Deno.test("mwgp CLI: MWGP_NO_CACHE=1 writes no cache; MWGP_SKIP_LOAD_CACHE=1 starts empty but saves (as mwgp)", async () => {
  const dir = await Deno.makeTempDir();
  const server = udp();
  const port = freePort();
  const cfg = `${dir}/server.json5`;
  await Deno.writeTextFile(
    cfg,
    `{ "listen": "${LOOP}:${port}", "servers": [{ "privkey": "${encodeKey(generatePrivateKey())}",
       "address": "${LOOP}", "peers": [{ "forward_to": ":${portOf(server)}" }] }] }`,
  );
  const cache = `${dir}/cache.json`;
  const exists = () => Deno.stat(cache).then(() => true, () => false);
  try {
    let r = await runMwgpServer(cfg, port, server, { MWGP_CACHE_FILE: cache, MWGP_NO_CACHE: "1" });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await exists(), false, "MWGP_NO_CACHE=1: no cache file written");

    r = await runMwgpServer(cfg, port, server, { MWGP_CACHE_FILE: cache, MWGP_NO_CACHE: "false" });
    assertEquals(r.code, 0, r.stderr);
    const saved = JSON.parse(await Deno.readTextFile(cache));
    assertEquals(saved.client_map.map((e: { coidx: number }) => e.coidx), [4242], "written without it");

    // A stale entry in the cache: skipped at start, so the file written at the end holds only the new one.
    saved.client_map[0].coidx = 1;
    saved.client_map[0].cpidx = 1;
    saved.client_map[0].spidx = 1;
    await Deno.writeTextFile(cache, JSON.stringify(saved));
    r = await runMwgpServer(cfg, port, server, { MWGP_CACHE_FILE: cache, MWGP_SKIP_LOAD_CACHE: "true" });
    assertEquals(r.code, 0, r.stderr);
    const after = JSON.parse(await Deno.readTextFile(cache));
    assertEquals(after.client_map.map((e: { coidx: number }) => e.coidx), [4242], "stale entry not loaded");
  } finally {
    server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mwgp under serve: MWGP_NO_CACHE and MWGP_SKIP_LOAD_CACHE apply; other values than Go's booleans warn", async () => {
  const dir = await Deno.makeTempDir();
  const cache = `${dir}/cache.json`;
  const s = id(), c = id();
  await Deno.writeTextFile(
    cache,
    goCacheFile(encodeKey(c.publicKey), encodeKey(s.publicKey), "127.0.0.1:40000", "127.0.0.1:9"),
  );
  const inline = `{ listen: "${LOOP}:0", servers: [{ privkey: "${
    encodeKey(s.privateKey)
  }", address: "${LOOP}", peers: [{ forward_to: ":9" }] }] }`;
  const statusOf = (sv: ReturnType<typeof createSupervisor>) =>
    sv.registry.status().mwgp_server as { cacheFile: string | null; entries: number };
  try {
    const noCache = createSupervisor({
      flags: {},
      env: { MWGP_SERVER_CONFIG: inline, MWGP_CACHE_FILE: cache, MWGP_NO_CACHE: "1" },
      admin: false,
    });
    try {
      await noCache.start();
      assertEquals(statusOf(noCache).cacheFile, null, "MWGP_NO_CACHE=1: no cache file");
      assertEquals(statusOf(noCache).entries, 0, "and nothing read");
    } finally {
      await noCache.stop();
    }
    const skip = createSupervisor({
      flags: {},
      env: { MWGP_SERVER_CONFIG: inline, MWGP_CACHE_FILE: cache, MWGP_SKIP_LOAD_CACHE: "T" },
      admin: false,
    });
    try {
      await skip.start();
      assertEquals(statusOf(skip).cacheFile, cache, "MWGP_SKIP_LOAD_CACHE: the cache is still written");
      assertEquals(statusOf(skip).entries, 0, "but not read");
    } finally {
      await skip.stop();
    }
    const { config, warnings } = await loadConfig({
      env: { MWGP_SERVER_CONFIG: inline, MWGP_NO_CACHE: "yes" },
      flags: {},
    });
    assertEquals(config.mwgp?.noCache, undefined, '"yes" is not a Go boolean: false, as mwgp');
    assert(warnings.some((w) => w.includes("MWGP_NO_CACHE") && w.includes("yes")), warnings.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- client config: resolver, dns without a port, small max_packet_size (client.go)

Deno.test("mwgp Go client config: resolver dns+udp://, dns without a port (53), max_packet_size below 1500", () => {
  const keys = `server_pubkey: "${encodeKey(id().publicKey)}", client_pubkey: "${encodeKey(id().publicKey)}"`;
  const parse = (extra: string, warnings: string[] = []) =>
    parseMwgpClientConfig(
      `{ server: "vpn.example.com:1000", listen: ":1000", ${keys}, ${extra} }`,
      "c",
      warnings,
    );
  const warnings: string[] = [];
  assertEquals(parse(`resolver: "dns+udp://127.0.0.53:5353"`, warnings).dns, {
    host: "127.0.0.53",
    port: 5353,
  });
  assertEquals(warnings, [], "resolver is a known key");
  assertEquals(parse(`resolver: "dns+udp://1.1.1.1"`).dns, { host: "1.1.1.1", port: 53 });
  assertEquals(parse(`resolver: "dns+udp://[2001:db8::53]:54"`).dns, { host: "2001:db8::53", port: 54 });
  assertEquals(parse(`dns: "8.8.8.8"`).dns, { host: "8.8.8.8", port: 53 });
  assertEquals(parse(`dns: "8.8.8.8:5353"`).dns, { host: "8.8.8.8", port: 5353 });
  assertEquals(parse(`dns: "2001:4860:4860::8888"`).dns, { host: "2001:4860:4860::8888", port: 53 });
  assertEquals(parse(`max_packet_size: 1280`).maxPacketSize, 1280);
  assertEquals(parse(`max_packet_size: 1`).maxPacketSize, 1);
  assertEquals(parse(`max_packet_size: 0`).maxPacketSize, 65536, "<= 0: the default, as mwgp");
  const errorOf = (extra: string) => {
    try {
      parse(extra);
    } catch (e) {
      return (e as Error).message;
    }
    return "";
  };
  assert(errorOf(`dns: "8.8.8.8", resolver: "dns+udp://1.1.1.1:53"`).includes("not both"));
  assert(errorOf(`resolver: "doh+https://dns.example/"`).includes("resolver: expected"));
  const hn = parse(`resolver: "hn2etxt+udp://1.1.1.1?secret=a%20b"`);
  assertEquals([hn.dns, hn.hn2etxtSecret], [{ host: "1.1.1.1", port: 53 }, "a b"], "hn2etxt: URL-decoded");
  const bad = errorOf(`resolver: "hn2etxt+udp://?secret=do-not-echo"`);
  assert(bad.includes("resolver: expected") && !bad.includes("do-not-echo"), bad);
});

// ---- the hn2etxt resolver (resolvers/hn2etxt): the address in encrypted TXT records

/** A TXT record as mwgp's hn2etxt tooling publishes it: unpadded base64 of nonce || ChaCha20-Poly1305. */
function hn2etxtTxt(secret: string, plaintext: string): string {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const sealed = aead().seal(hn2etxtKey(secret), nonce, new TextEncoder().encode(plaintext));
  const all = new Uint8Array(12 + sealed.length);
  all.set(nonce);
  all.set(sealed, 12);
  return btoa(String.fromCharCode(...all)).replace(/=+$/, "");
}

Deno.test("mwgp hn2etxt: records decrypt with the secret's key; the newest valid one wins; others are skipped", () => {
  const key = hn2etxtKey("s3cret");
  assertEquals(parseHn2etxtRecord("hn2etxt addr=192.0.2.7 time=1700000000"), {
    addr: "192.0.2.7",
    time: 1700000000,
  });
  assertEquals(parseHn2etxtRecord("hn2etxt addr=h.example time=soon"), { addr: "h.example", time: 0 });
  assertEquals(parseHn2etxtRecord("addr=192.0.2.7"), null, "not an hn2etxt record");
  assertEquals(parseHn2etxtRecord("hn2etxt time=1"), null, "no addr");
  const txts = [
    "v=spf1 -all",
    hn2etxtTxt("s3cret", "hn2etxt addr=192.0.2.1 time=100"),
    hn2etxtTxt("other", "hn2etxt addr=192.0.2.66 time=999"),
    hn2etxtTxt("s3cret", "hn2etxt addr=192.0.2.2 time=200"),
    hn2etxtTxt("s3cret", "hn2etxt addr=192.0.2.3 time=200"),
    hn2etxtTxt("s3cret", "hn2etxt addr=192.0.2.4"),
  ];
  assertEquals(newestHn2etxt(key, txts), { addr: "192.0.2.2", time: 200 });
  assertEquals(newestHn2etxt(key, txts.slice(0, 3)), { addr: "192.0.2.1", time: 100 });
  assertEquals(newestHn2etxt(key, [txts[0], txts[2]]), null);
  assertEquals(decryptHn2etxt(key, txts[1] + "=="), null, "padded base64 is not mwgp's encoding");
});

Deno.test("mwgp client: an hn2etxt resolver finds the server's address in the name's encrypted TXT records", async () => {
  const dns = fakeZoneDns({
    "vpn.mwgp.test": {
      txt: [
        hn2etxtTxt("s3cret", "hn2etxt addr=old.mwgp.test time=1700000000"),
        hn2etxtTxt("s3cret", "hn2etxt addr=new.mwgp.test time=1700000600"),
      ],
    },
    "old.mwgp.test": { a: "127.0.0.8" },
    "new.mwgp.test": { a: "127.0.0.9" },
  });
  const config = parseMwgpClientConfig(
    `{ server: "vpn.mwgp.test:5000", listen: "${LOOP}:0", resolver: "hn2etxt+udp://${LOOP}:${dns.port}?secret=s3cret",
       server_pubkey: "${encodeKey(id().publicKey)}", client_pubkey: "${encodeKey(id().publicKey)}" }`,
    "client.json",
  );
  const svc = await MwgpService.start(config, { noCache: true, resolver: new MapResolver({}) });
  try {
    assertEquals(svc.status().serverAddress, "127.0.0.9:5000", "the newest record's host, the config's port");
  } finally {
    await svc.close();
    dns.close();
  }
});

Deno.test("mwgp Go server config: max_packet_size below 1500 is accepted and bounds what is forwarded", async () => {
  const s = id(), c = id();
  const config = parseMwgpServerConfig(
    `{ listen: ":1000", max_packet_size: 1200, servers: [{ privkey: "${encodeKey(s.privateKey)}",
       peers: [{ forward_to: "127.0.0.1:9" }] }] }`,
    "server.json",
  );
  assertEquals(config.maxPacketSize, 1200);
  const fwd = engine(config);
  const r = await engineHandshake(fwd, c, s, { hostname: "192.0.2.1", port: 1 }, 5);
  assert(fwd.fromClient(transport(r.sp, 0, 1200), { hostname: "192.0.2.1", port: 1 }), "1200 bytes pass");
  assertEquals(fwd.fromClient(transport(r.sp, 0, 1201), { hostname: "192.0.2.1", port: 1 }), null);
  assertEquals(fwd.stats.drops.oversize, 1);
});

// ---- a ":port" listen is dual-stack, as Go's

Deno.test('mwgp listen ":port": an IPv6 client on ::1 and an IPv4 client on 127.0.0.1 are both served', async () => {
  const server = udp();
  const s = id();
  const port = freePort();
  const config = parseMwgpServerConfig(
    `{ listen: ":${port}", servers: [{ privkey: "${encodeKey(s.privateKey)}", address: "${LOOP}",
       peers: [{ forward_to: ":${portOf(server)}" }] }] }`,
    "server.json",
  );
  const svc = await MwgpService.start(config, { noCache: true });
  try {
    for (const [host, index] of [["::1", 61], [LOOP, 62]] as const) {
      const client = udp(host);
      try {
        const c = id();
        const init = initiation(c, s, index);
        await client.send(init.bytes, { transport: "udp", hostname: host, port });
        const [fwd, from] = await recv(server, `the initiation from ${host}`);
        await server.send(response(s, c, init.hsS, fwd, index + 100), from);
        const [back, via] = await recv(client, `the response at ${host}`);
        assertEquals([back[0], u32(back, 8)], [2, index], `${host}: the response came back`);
        assertEquals(via.port, port, "from the listening port");
        const entry = [...svc.forwarder.table.entries()].find((e) => e.clientOrigin === index)!;
        assertEquals(entry.client, { hostname: host, port: portOf(client) }, "IPv4 kept as plain a.b.c.d");
      } finally {
        client.close();
      }
    }
  } finally {
    await svc.close();
    server.close();
  }
});
