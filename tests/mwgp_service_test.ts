/**
 * The mwgp host service on loopback, in-process: cache options (--skip-load-cache keeps saving, --no-cache
 * touches nothing), client-mode re-resolution of the server name, and no secrets in the status JSON.
 * The WireGuard peers here are noise.ts handshakes on plain loopback sockets.
 */
import { waitFor } from "./helpers/wait.ts";
import { receiveWithin } from "./helpers/udp.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { MwgpService } from "../src/services/mwgp/service.ts";
import { ManualClock } from "../src/util/clock.ts";
import { createSupervisor } from "../src/cli/server.ts";
import { resolveCachePath } from "../src/services/mwgp/cache.ts";
import { dnsServerResolver } from "../src/services/mwgp/resolver.ts";
import { parseMwgpClientConfig, parseMwgpServerConfig } from "../src/config/mwgp.ts";
import { MapResolver } from "../src/net/resolve.ts";
import { encodeKey, generatePrivateKey } from "../src/crypto/x25519.ts";
import {
  consumeInitiation,
  createInitiation,
  createResponse,
  Handshake,
  staticIdentity,
} from "../src/wireguard/noise.ts";
import { CookieGenerator } from "../src/wireguard/cookie.ts";
import { InitiationMessage } from "../src/wire/wireguard.ts";
import { freePort } from "./helpers/ports.ts";
import { fakeZoneDns } from "./helpers/fake_dns.ts";

const LOOP = "127.0.0.1";

function udp(): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: LOOP, port: 0 });
}
const portOf = (c: Deno.DatagramConn) => (c.addr as Deno.NetAddr).port;

/** One handshake client -> mwgp -> fake server -> mwgp -> client over loopback. */
async function handshakeThrough(
  mwgpPort: number,
  server: Deno.DatagramConn,
  sPriv: Uint8Array,
  index: number,
) {
  const s = staticIdentity(sPriv), c = staticIdentity(generatePrivateKey());
  const client = udp();
  try {
    const hsC = new Handshake(c, s.publicKey), hsS = new Handshake(s, c.publicKey);
    const init = createInitiation(hsC, index, Date.now());
    new CookieGenerator(s.publicKey).addMacs(init.bytes, 0);
    await client.send(init.bytes, { transport: "udp", hostname: LOOP, port: mwgpPort });
    const [fwd, from] = await receiveWithin(server, "the initiation forwarded by mwgp to the server");
    assert("hs" in consumeInitiation(s, InitiationMessage.parse(fwd)!, () => hsS, 0, 0));
    const resp = createResponse(hsS, 777)!;
    new CookieGenerator(c.publicKey).addMacs(resp.bytes, 0);
    await server.send(resp.bytes, from);
    const [back] = await receiveWithin(client, "the response forwarded by mwgp back to the client");
    assertEquals(back[0], 2, "response came back to the client");
    return c.publicKey;
  } finally {
    client.close();
  }
}

Deno.test("mwgp service: --skip-load-cache starts empty but keeps saving; --no-cache neither reads nor writes", async () => {
  const dir = await Deno.makeTempDir();
  const server = udp();
  const sPriv = generatePrivateKey();
  const config = parseMwgpServerConfig(
    `{ listen: "${LOOP}:0", servers: [{ privkey: "${encodeKey(sPriv)}", address: "${LOOP}",
       peers: [{ forward_to: ":${portOf(server)}" }] }] }`,
    "test",
  );
  const cacheFile = `${dir}/cache.json`;
  const stale = {
    client_map: [{
      coidx: 1,
      cpidx: 1,
      soidx: 2,
      spidx: 2,
      cpk: null,
      spk: null,
      cdst: "127.0.0.1:9",
      sdst: "127.0.0.1:9",
      csvl: 0,
      ssvl: 0,
      obfe: false,
    }],
  };
  try {
    await Deno.writeTextFile(cacheFile, JSON.stringify(stale));
    const loaded = await MwgpService.start(config, { cacheFile });
    assertEquals(loaded.forwarder.table.size, 1, "the cache is read by default");
    await loaded.close();

    const svc = await MwgpService.start(config, { cacheFile, skipLoadCache: true });
    try {
      assertEquals(svc.forwarder.table.size, 0, "--skip-load-cache: not read");
      await handshakeThrough(svc.listenPort, server, sPriv, 4242);
      await svc.flushCache();
      const saved = JSON.parse(await Deno.readTextFile(cacheFile));
      assertEquals(saved.client_map.length, 1, "--skip-load-cache still saves");
      assertEquals(saved.client_map[0].coidx, 4242);
      assertEquals((await Deno.stat(cacheFile)).mode! & 0o777, 0o600);
      const status = JSON.stringify(svc.status());
      assert(!status.includes(encodeKey(sPriv)), "no private key in status");
    } finally {
      await svc.close();
    }

    const before = await Deno.readTextFile(cacheFile);
    const none = await MwgpService.start(config, { cacheFile, noCache: true });
    try {
      assertEquals(none.forwarder.table.size, 0, "--no-cache: not read");
      assertEquals(none.cachePath, null);
      await handshakeThrough(none.listenPort, server, sPriv, 5151);
      await none.flushCache();
      assertEquals(await Deno.readTextFile(cacheFile), before, "--no-cache: not written");
    } finally {
      await none.close();
    }
  } finally {
    server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mwgp service: the client re-resolves the server name and re-points its entries", async () => {
  const port = freePort(); // free on every address, so both 127.0.0.2 and 127.0.0.3 can bind it
  const serverA = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.2", port });
  const serverB = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.3", port });
  const sPriv = generatePrivateKey();
  const s = staticIdentity(sPriv);
  const c = staticIdentity(generatePrivateKey());
  const resolver = new MapResolver({ "mwgp.test": "127.0.0.2" });
  const config = parseMwgpClientConfig(
    `{ server: "mwgp.test:${portOf(serverA)}", listen: "${LOOP}:0",
       server_pubkey: "${encodeKey(s.publicKey)}", client_pubkey: "${encodeKey(c.publicKey)}" }`,
    "test",
  );
  const clock = new ManualClock(1_000_000, Date.now());
  // Periods shorter than the table's timeout, so the pending entry is still there to be re-pointed.
  const PERIOD = 1000, RETRY = 200;
  const svc = await MwgpService.start(config, {
    noCache: true,
    resolver,
    clock,
    reresolveMs: PERIOD,
    reresolveAfterFailureMs: RETRY,
  });
  const client = udp();
  try {
    assertEquals(svc.status().serverAddress, `127.0.0.2:${portOf(serverA)}`);
    const hsC = new Handshake(c, s.publicKey);
    const init = createInitiation(hsC, 99, Date.now());
    new CookieGenerator(s.publicKey).addMacs(init.bytes, 0);
    await client.send(init.bytes, { transport: "udp", hostname: LOOP, port: svc.listenPort });
    const [fwd] = await receiveWithin(serverA, "the initiation at the first resolved address");
    assertEquals(fwd.length, 148, "initiation reached the first address");
    resolver.set("mwgp.test", "127.0.0.3");
    const first = resolver.lookups.get("mwgp.test") ?? 0;
    clock.advance(PERIOD - 1);
    assertEquals(resolver.lookups.get("mwgp.test") ?? 0, first, "no lookup before the period");
    clock.advance(1);
    await waitFor(() => svc.status().serverAddress === `127.0.0.3:${portOf(serverA)}`, "re-resolution");
    const entry = [...svc.forwarder.table.entries()][0];
    assertEquals(entry.server.hostname, "127.0.0.3", "pending entry re-pointed");
    assert((resolver.lookups.get("mwgp.test") ?? 0) >= 2);
    const asked = resolver.lookups.get("mwgp.test") ?? 0;
    resolver.table.delete("mwgp.test");
    // Armed timers: the expiry tick and the next re-resolution (none while a lookup is in flight).
    await waitFor(() => clock.pendingTimers === 2, "the next re-resolution armed");
    clock.advance(PERIOD);
    await waitFor(
      () => (resolver.lookups.get("mwgp.test") ?? 0) === asked + 1 && clock.pendingTimers === 2,
      "a failed lookup handled and the retry armed",
    );
    // After a failure the retry comes after reresolveAfterFailureMs, not the full period.
    clock.advance(RETRY);
    await waitFor(
      () => (resolver.lookups.get("mwgp.test") ?? 0) === asked + 2,
      "the retry after the failure",
    );
    assertEquals(
      svc.status().serverAddress,
      `127.0.0.3:${portOf(serverA)}`,
      "a failed lookup keeps the last address",
    );
  } finally {
    client.close();
    await svc.close();
    serverA.close();
    serverB.close();
  }
});

Deno.test("mwgp cache path precedence: config > --cache-file/MWGP_CACHE_FILE > user cache dir", () => {
  assertEquals(
    resolveCachePath({ configPath: "/a.json", flagOrEnvPath: "/b.json", listen: ":1000" }),
    "/a.json",
  );
  assertEquals(resolveCachePath({ flagOrEnvPath: "/b.json", listen: ":1000" }), "/b.json");
  assertEquals(
    resolveCachePath({ listen: ":1000", env: { XDG_CACHE_HOME: "/var/cache/u" } }),
    "/var/cache/u/mwgp/wgit-cache-:1000.json",
  );
  assertEquals(
    resolveCachePath({ listen: "[::]:1000", env: { HOME: "/home/u" } }),
    "/home/u/.cache/mwgp/wgit-cache-[::]:1000.json",
  );
});

Deno.test("mwgp client: the custom `dns` server resolves the server name", async () => {
  const dns = fakeZoneDns({ "vpn.mwgp.test": { a: "127.0.0.9" } });
  try {
    const r = dnsServerResolver({ host: LOOP, port: dns.port });
    assertEquals(await r.resolve("vpn.mwgp.test"), ["127.0.0.9"]);
    assert(dns.queries() >= 1, "the configured server was asked");
    let failed = false;
    await r.resolve("other.mwgp.test").catch(() => failed = true);
    assert(failed, "an unknown name fails");
  } finally {
    dns.close();
  }
});

Deno.test("mwgp client: Go's `resolver` key (dns+udp://host:port) resolves the server name", async () => {
  const dns = fakeZoneDns({ "vpn.mwgp.test": { a: "127.0.0.9" } });
  const warnings: string[] = [];
  const config = parseMwgpClientConfig(
    `{ server: "vpn.mwgp.test:5000", listen: "${LOOP}:0", resolver: "dns+udp://${LOOP}:${dns.port}",
       server_pubkey: "${encodeKey(generatePrivateKey())}", client_pubkey: "${
      encodeKey(generatePrivateKey())
    }" }`,
    "client.json",
    warnings,
  );
  assertEquals(warnings, [], "resolver is not an unknown key");
  // The service's own resolver knows nothing: only the configured DNS server can answer.
  const svc = await MwgpService.start(config, { noCache: true, resolver: new MapResolver({}) });
  try {
    assertEquals(svc.status().serverAddress, "127.0.0.9:5000");
    assert(dns.queries() >= 1, "the resolver named in the config was asked");
  } finally {
    await svc.close();
    dns.close();
  }
});

Deno.test("mwgp under serve: MWGP_SERVER_CONFIG starts it; SIGHUP reload restarts on change and stops on removal", async () => {
  const dir = await Deno.makeTempDir();
  const cfgFile = `${dir}/server.json5`;
  const write = (obfs?: string) =>
    Deno.writeTextFile(
      cfgFile,
      `{ listen: "${LOOP}:0", timeout: 60, ${obfs ? `obfs: "${obfs}",` : ""}
         servers: [{ privkey: "${
        encodeKey(generatePrivateKey())
      }", address: "${LOOP}", peers: [{ forward_to: ":9" }] }] }`,
    );
  await write();
  const env: Record<string, string | undefined> = {
    MWGP_SERVER_CONFIG: cfgFile,
    MWGP_CACHE_FILE: `${dir}/cache.json`,
  };
  const server = createSupervisor({ flags: {}, env, admin: false });
  try {
    await server.start();
    const status = () =>
      server.registry.status().mwgp_server as { listen: string; obfs: boolean } | undefined;
    assert(status(), "mwgp_server section present");
    assertEquals(status()!.obfs, false);
    assert(server.registry.metrics.render().includes("wgedge_mwgp_table_entries"), "metrics registered");
    await write("a-password");
    assertEquals((await server.reload()).result, "success");
    assertEquals(status()?.obfs, true, "the instance runs the changed configuration (obfuscation on)");
    delete env.MWGP_SERVER_CONFIG;
    assertEquals((await server.reload()).result, "success");
    assertEquals(status(), undefined, "stopped when the configuration is removed");
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
