/**
 * mwgp as the Go project (apernet/mwgp v2.1.6) writes its cache: an entry carries `ssvl: 0`, which Go reads
 * as "server address and port must match" (wgit.go). Loopback only; the WireGuard peers are noise.ts
 * handshakes; every network wait is bounded.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { Forwarder } from "../src/services/mwgp/forwarder.ts";
import { serverRouter } from "../src/services/mwgp/router.ts";
import { CachingTargetResolver } from "../src/services/mwgp/resolver.ts";
import { loadRecords, serializeTable } from "../src/services/mwgp/cache.ts";
import { MwgpService } from "../src/services/mwgp/service.ts";
import { type MwgpServerConfig, parseMwgpServerConfig } from "../src/config/mwgp.ts";
import { MapResolver } from "../src/net/resolve.ts";
import { ManualClock } from "../src/util/clock.ts";
import { encodeKey, generatePrivateKey } from "../src/crypto/x25519.ts";
import { type StaticIdentity, staticIdentity } from "../src/wireguard/noise.ts";

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
async function recv(conn: Deno.DatagramConn, what: string, ms = 15_000): Promise<[Uint8Array, Deno.NetAddr]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = conn.receive();
  r.catch(() => {}); // the socket is closed after a timeout
  try {
    const [data, from] = await Promise.race([
      r,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      }),
    ]);
    return [data, from as Deno.NetAddr];
  } finally {
    clearTimeout(timer);
  }
}

/** Polls a condition every 20 ms, at most 60 s (a loaded CI machine delays timers by seconds). */
async function waitUntil(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function udp(hostname = LOOP): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}
const portOf = (c: Deno.DatagramConn) => (c.addr as Deno.NetAddr).port;

// ---- an engine on a parsed config

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
    await waitUntil(
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
