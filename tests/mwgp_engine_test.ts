/**
 * The mwgp forwarding engine driven in-process: real Noise handshakes (the lead's noise.ts) on both sides,
 * a manual clock, no sockets. Covers index translation with collisions both ways, MAC recomputation checked
 * by the receiving side's CookieChecker, the cookie path, duplicates, second responses, source validation,
 * expiry, the table bound, floods and garbage.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { Forwarder, type Outbound } from "../src/services/mwgp/forwarder.ts";
import { serverRouter } from "../src/services/mwgp/router.ts";
import { CachingTargetResolver } from "../src/services/mwgp/resolver.ts";
import { loadRecords, serializeTable } from "../src/services/mwgp/cache.ts";
import { ForwardingTable, type UdpAddr } from "../src/services/mwgp/table.ts";
import { type MwgpServerConfig, SourceValidation } from "../src/config/mwgp.ts";
import { MapResolver } from "../src/net/resolve.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { generatePrivateKey } from "../src/crypto/x25519.ts";
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  Handshake,
  type StaticIdentity,
  staticIdentity,
} from "../src/wireguard/noise.ts";
import { CookieChecker, CookieGenerator } from "../src/wireguard/cookie.ts";
import { CookieReplyMessage, InitiationMessage, ResponseMessage } from "../src/wire/wireguard.ts";
import { deobfuscate, looksVanilla, obfsKey, obfuscate } from "../src/wireguard/obfs.ts";

const rand = seededRandom(42);
const id = (): StaticIdentity => staticIdentity(generatePrivateKey(rand));

const S1_ADDR: UdpAddr = { hostname: "127.0.0.1", port: 51001 };
const S2_ADDR: UdpAddr = { hostname: "::1", port: 51002 };

interface Setup {
  clock: ManualClock;
  fwd: Forwarder;
  s1: StaticIdentity;
  s2: StaticIdentity;
}

function setup(
  opts: {
    maxEntries?: number;
    csvl?: SourceValidation;
    ssvl?: SourceValidation;
    fallback?: boolean;
    obfs?: string;
  } = {},
  clients: StaticIdentity[] = [],
): Setup {
  const clock = new ManualClock();
  const s1 = id(), s2 = id();
  const config: MwgpServerConfig = {
    mode: "server",
    source: "test",
    listen: { host: "", port: 1000 },
    timeoutSec: 60,
    maxPacketSize: 65536,
    csvl: opts.csvl ?? SourceValidation.Default,
    ssvl: opts.ssvl ?? SourceValidation.Default,
    maxEntries: opts.maxEntries ?? 1000,
    servers: [
      {
        privateKey: s1.privateKey,
        publicKey: s1.publicKey,
        peers: [
          ...clients.map((c) => ({ publicKey: c.publicKey, forwardTo: { host: "127.0.0.1", port: 51001 } })),
          ...(opts.fallback ? [{ forwardTo: { host: "127.0.0.1", port: 51001 } }] : []),
        ],
      },
      {
        privateKey: s2.privateKey,
        publicKey: s2.publicKey,
        peers: clients.map((c) => ({ publicKey: c.publicKey, forwardTo: { host: "::1", port: 51002 } })),
      },
    ],
  };
  const fwd = new Forwarder({
    router: (init, from) => router(init, from),
    clock,
    random: seededRandom(7),
    timeoutMs: 60_000,
    maxEntries: config.maxEntries,
    maxPacketSize: 65536,
    csvl: config.csvl,
    ssvl: config.ssvl,
    clientLegObfs: opts.obfs ? obfsKey(opts.obfs) : undefined,
  });
  const router = serverRouter(config, new CachingTargetResolver(new MapResolver()), fwd.stats);
  return { clock, fwd, s1, s2 };
}

/** A WireGuard client (initiator) and the real server it talks to, both from noise.ts/cookie.ts. */
class Pair {
  readonly hsC: Handshake;
  readonly hsS: Handshake;
  readonly genC: CookieGenerator;
  readonly genS: CookieGenerator;
  readonly checkS: CookieChecker;
  readonly checkC: CookieChecker;
  constructor(
    readonly client: StaticIdentity,
    readonly server: StaticIdentity,
    readonly clientAddr: UdpAddr,
    readonly serverAddr: UdpAddr,
  ) {
    this.hsC = new Handshake(client, server.publicKey);
    this.hsS = new Handshake(server, client.publicKey);
    this.genC = new CookieGenerator(server.publicKey);
    this.genS = new CookieGenerator(client.publicKey);
    this.checkS = new CookieChecker(server.publicKey, seededRandom(1));
    this.checkC = new CookieChecker(client.publicKey, seededRandom(2));
  }

  initiation(index: number, clock: ManualClock): Uint8Array {
    const msg = createInitiation(this.hsC, index, clock.wallMs(), rand);
    this.genC.addMacs(msg.bytes, clock.now());
    return msg.bytes;
  }

  /** The server consumes what mwgp forwarded (MACs must verify) and answers with `serverIndex`. */
  respond(forwarded: Uint8Array, serverIndex: number, clock: ManualClock): Uint8Array {
    assert(this.checkS.checkMac1(forwarded), "mac1 of the forwarded initiation verifies at the server");
    const init = InitiationMessage.parse(forwarded)!;
    const r = consumeInitiation(this.server, init, () => this.hsS, clock.now(), 0);
    assert("hs" in r, `server consumed the initiation: ${JSON.stringify(r)}`);
    const resp = createResponse(this.hsS, serverIndex, rand)!;
    this.genS.addMacs(resp.bytes, clock.now());
    return resp.bytes;
  }

  /** The client consumes what mwgp forwarded back. */
  finish(forwarded: Uint8Array): void {
    assert(this.checkC.checkMac1(forwarded), "mac1 of the forwarded response verifies at the client");
    assert(consumeResponse(this.hsC, ResponseMessage.parse(forwarded)!), "client consumed the response");
  }
}

function transport(receiver: number, len = 64): Uint8Array {
  const b = rand(new Uint8Array(len));
  b.set([4, 0, 0, 0]);
  new DataView(b.buffer).setUint32(4, receiver, true);
  return b;
}

const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);

async function handshake(s: Setup, p: Pair, clientIndex: number, serverIndex: number) {
  const toServer = (await s.fwd.fromClient(p.initiation(clientIndex, s.clock), p.clientAddr)) as Outbound;
  assert(toServer, "initiation forwarded");
  assertEquals(toServer.to, p.serverAddr);
  const toClient = s.fwd.fromServer(p.respond(toServer.data, serverIndex, s.clock), p.serverAddr)!;
  assert(toClient, "response forwarded");
  assertEquals(toClient.to, p.clientAddr);
  p.finish(toClient.data);
  const cp = u32(toServer.data, 4); // index the server saw for the client
  const sp = u32(toClient.data, 4); // index the client saw for the server
  assertEquals(u32(toClient.data, 8), clientIndex, "response receiver is the client's own index");
  return { cp, sp };
}

Deno.test("mwgp engine: no collision keeps indices and MACs as the peers wrote them", async () => {
  const c = id();
  const s = setup({}, [c]);
  const p = new Pair(c, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const { cp, sp } = await handshake(s, p, 1111, 2222);
  assertEquals([cp, sp], [1111, 2222]);
  // Transports both ways with translation (identity here) and the right endpoints.
  const up = s.fwd.fromClient(transport(sp), p.clientAddr) as Outbound;
  assertEquals([up.to, u32(up.data, 4)], [S1_ADDR, 2222]);
  const down = s.fwd.fromServer(transport(cp), S1_ADDR)!;
  assertEquals([down.to, u32(down.data, 4)], [p.clientAddr, 1111]);
  assertEquals(s.fwd.stats.dhOperations, 1);
});

Deno.test("mwgp engine: two clients with the same sender index, servers with the same index, both served", async () => {
  const a = id(), b = id();
  const s = setup({}, [a, b]);
  const pa = new Pair(a, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const pb = new Pair(b, s.s2, { hostname: "192.0.2.11", port: 40000 }, S2_ADDR);
  const ra = await handshake(s, pa, 42, 7);
  const rb = await handshake(s, pb, 42, 7); // same client index, same server index
  assertEquals(ra.cp, 42);
  assert(rb.cp !== 42 && rb.cp !== 0, "second client's index translated for the server");
  assertEquals(ra.sp, 7);
  assert(rb.sp !== 7 && rb.sp !== 0, "second server's index translated for the client");
  // Each direction reaches the right peer with the original index restored.
  const upA = s.fwd.fromClient(transport(ra.sp), pa.clientAddr) as Outbound;
  const upB = s.fwd.fromClient(transport(rb.sp), pb.clientAddr) as Outbound;
  assertEquals([upA.to, u32(upA.data, 4)], [S1_ADDR, 7]);
  assertEquals([upB.to, u32(upB.data, 4)], [S2_ADDR, 7]);
  const downA = s.fwd.fromServer(transport(ra.cp), S1_ADDR)!;
  const downB = s.fwd.fromServer(transport(rb.cp), S2_ADDR)!;
  assertEquals([downA.to, u32(downA.data, 4)], [pa.clientAddr, 42]);
  assertEquals([downB.to, u32(downB.data, 4)], [pb.clientAddr, 42]);
});

Deno.test("mwgp engine: forward() rewrites a transport in place and reuses one result object (the hot path)", async () => {
  const a = id(), b = id();
  const s = setup({}, [a, b]);
  const pa = new Pair(a, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const pb = new Pair(b, s.s2, { hostname: "192.0.2.11", port: 40000 }, S2_ADDR);
  await handshake(s, pa, 42, 7);
  const rb = await handshake(s, pb, 42, 7); // translated both ways
  const up = transport(rb.sp);
  const payload = up.slice(8);
  const out1 = s.fwd.forward("client", up, pb.clientAddr) as Outbound;
  assert(out1.data === up, "the datagram itself, rewritten in place");
  assertEquals([out1.leg, out1.to, u32(up, 4)], ["server", S2_ADDR, 7]);
  assertEquals(up.slice(8), payload, "only the receiver index changed");
  const down = transport(rb.cp);
  const out2 = s.fwd.forward("server", down, S2_ADDR) as Outbound;
  assert(out2 === out1, "one result object, rewritten per datagram");
  assertEquals([out2.leg, out2.to, u32(down, 4)], ["client", pb.clientAddr, 42]);
  assertEquals(s.fwd.forward("server", transport(999_999), S2_ADDR), null, "unknown index dropped");
  assertEquals(s.fwd.stats.drops.unknown_index, 1);
  // fromClient/fromServer keep handing out results of their own.
  const own = s.fwd.fromServer(transport(rb.cp), S2_ADDR)!;
  assert(own !== out1);
});

Deno.test("mwgp engine: forward() counts an entry's idle time from the batch time it is given, not a clock read", async () => {
  const a = id();
  const s = setup({}, [a]);
  const pa = new Pair(a, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const { cp, sp } = await handshake(s, pa, 42, 7);
  const e = s.fwd.table.byClientProxy.get(cp)!;
  s.clock.advance(5_000);
  const batchTime = s.clock.now() - 3_000; // the receive loop read the clock at its wake-up, earlier
  assert(s.fwd.forward("client", transport(sp), pa.clientAddr, batchTime), "forwarded up");
  assertEquals(e.lastActive, batchTime);
  assert(s.fwd.forward("server", transport(cp), S1_ADDR, batchTime + 1), "forwarded down");
  assertEquals(e.lastActive, batchTime + 1);
  assert(s.fwd.forward("server", transport(cp), S1_ADDR), "without a time: the clock's");
  assertEquals(e.lastActive, s.clock.now());
});

Deno.test("mwgp engine: cookie reply to a rewritten initiation reaches the client; next initiation carries a valid mac2", async () => {
  const a = id(), b = id();
  const s = setup({}, [a, b]);
  const pa = new Pair(a, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const pb = new Pair(b, s.s1, { hostname: "192.0.2.11", port: 40000 }, S1_ADDR);
  await handshake(s, pa, 5, 6);
  // b collides with a's index, so mwgp rewrites b's initiation (sender and mac1).
  const fwdInit = (await s.fwd.fromClient(pb.initiation(5, s.clock), pb.clientAddr)) as Outbound;
  assert(u32(fwdInit.data, 4) !== 5);
  // The server is under load: it answers with a cookie reply bound to the mac1 it saw (mwgp's).
  const mwgpSource = new Uint8Array([127, 0, 0, 1, 0xc3, 0x50]);
  const reply = pb.checkS.createReply(fwdInit.data, u32(fwdInit.data, 4), mwgpSource, s.clock.now());
  const toClient = s.fwd.fromServer(reply, S1_ADDR)!;
  assert(toClient, "cookie reply forwarded (the original project dropped these)");
  assertEquals(u32(toClient.data, 4), 5, "receiver restored to the client's index");
  assert(
    pb.genC.consumeReply(CookieReplyMessage.parse(toClient.data)!, s.clock.now()),
    "client decrypts the cookie",
  );
  // The client's next initiation (again colliding) gets a mac2 the server accepts.
  const next = (await s.fwd.fromClient(pb.initiation(5, s.clock), pb.clientAddr)) as Outbound;
  assert(pb.checkS.checkMac1(next.data));
  assert(
    pb.checkS.checkMac2(next.data, mwgpSource, s.clock.now()),
    "mac2 recomputed with the server's cookie",
  );
  assertEquals(s.fwd.stats.cookieRepliesForwarded, 1);
});

Deno.test("mwgp engine: a replayed initiation reuses its entry; a second response leaves no orphan", async () => {
  const c = id();
  const s = setup({}, [c]);
  const p = new Pair(c, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const init = p.initiation(9, s.clock);
  const first = (await s.fwd.fromClient(init.slice(), p.clientAddr)) as Outbound;
  for (let i = 0; i < 5; i++) await s.fwd.fromClient(init.slice(), p.clientAddr);
  assertEquals(s.fwd.table.size, 1, "duplicates share one entry");
  const resp1 = p.respond(first.data, 100, s.clock);
  s.fwd.fromServer(resp1, S1_ADDR);
  // A second response for the same entry (another server index) replaces the first mapping.
  const resp2 = ResponseMessage.parse(resp1.slice())!;
  resp2.sender = 200;
  p.genS.addMacs(resp2.bytes, s.clock.now());
  s.fwd.fromServer(resp2.bytes, S1_ADDR);
  assertEquals(s.fwd.table.byServerProxy.size, 1);
  assert(!s.fwd.table.byServerProxy.has(100), "the first server index is gone");
  assertEquals(u32((s.fwd.fromClient(transport(200), p.clientAddr) as Outbound).data, 4), 200);
});

Deno.test("mwgp engine: a flood of random initiations costs no DH; garbage never throws", async () => {
  const c = id();
  const s = setup({ fallback: true }, [c]);
  for (let i = 0; i < 2000; i++) {
    const b = rand(new Uint8Array(148));
    b.set([1, 0, 0, 0]);
    assertEquals(await s.fwd.fromClient(b, { hostname: "198.51.100.1", port: 1 + i }), null);
  }
  assertEquals(s.fwd.stats.drops.mac1, 2000);
  assertEquals(s.fwd.stats.dhOperations, 0);
  for (let i = 0; i < 3000; i++) {
    const b = rand(new Uint8Array(i % 300));
    if (i % 3 === 0 && b.length >= 4) b.set([1 + (i % 4), 0, 0, 0]);
    await s.fwd.fromClient(b, { hostname: "198.51.100.2", port: 9 });
    s.fwd.fromServer(b, S1_ADDR);
  }
  assertEquals(s.fwd.table.size, 0);
  // A legitimate client still completes.
  await handshake(s, new Pair(c, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR), 1, 2);
});

Deno.test("mwgp engine: fallback peer and unknown keys", async () => {
  const known = id(), stranger = id();
  const withFallback = setup({ fallback: true }, [known]);
  await handshake(
    withFallback,
    new Pair(stranger, withFallback.s1, { hostname: "192.0.2.9", port: 1 }, S1_ADDR),
    3,
    4,
  );
  const noFallback = setup({}, [known]);
  const p = new Pair(stranger, noFallback.s1, { hostname: "192.0.2.9", port: 1 }, S1_ADDR);
  assertEquals(await noFallback.fwd.fromClient(p.initiation(3, noFallback.clock), p.clientAddr), null);
  assertEquals(noFallback.fwd.stats.drops.unknown_peer, 1);
});

Deno.test("mwgp engine: source validation (server leg exact, client leg roams by default or is enforced)", async () => {
  const c = id();
  const s = setup({}, [c]);
  const p = new Pair(c, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const { cp, sp } = await handshake(s, p, 1, 2);
  assertEquals(s.fwd.fromServer(transport(cp), { hostname: "127.0.0.1", port: 9999 }), null);
  assertEquals(s.fwd.stats.drops.source_mismatch, 1);
  const moved = { hostname: "203.0.113.5", port: 5555 };
  assert(s.fwd.fromClient(transport(sp), moved));
  assertEquals(s.fwd.fromServer(transport(cp), S1_ADDR)!.to, moved, "answers follow the roaming client");

  const strict = setup({ csvl: SourceValidation.IpAndPort }, [c]);
  const p2 = new Pair(c, strict.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const r2 = await handshake(strict, p2, 1, 2);
  assertEquals(strict.fwd.fromClient(transport(r2.sp), { hostname: "192.0.2.10", port: 40001 }), null);
  const ipOnly = setup({ csvl: SourceValidation.Ip, ssvl: SourceValidation.None }, [c]);
  const p3 = new Pair(c, ipOnly.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const r3 = await handshake(ipOnly, p3, 1, 2);
  assert(
    ipOnly.fwd.fromClient(transport(r3.sp), { hostname: "192.0.2.10", port: 40001 }),
    "same IP, new port",
  );
  assertEquals(ipOnly.fwd.fromClient(transport(r3.sp), { hostname: "192.0.2.99", port: 40001 }), null);
  assert(ipOnly.fwd.fromServer(transport(r3.cp), { hostname: "10.9.9.9", port: 1 }), "ssvl=1: none");
});

Deno.test("mwgp engine: idle entries expire; pending ones sooner; the table is bounded", async () => {
  const c = id();
  const s = setup({ maxEntries: 16 }, [c]);
  const p = new Pair(c, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  await handshake(s, p, 1, 2);
  for (let i = 0; i < 40; i++) await s.fwd.fromClient(p.initiation(100 + i, s.clock), p.clientAddr);
  assertEquals(s.fwd.table.size, 16, "pending handshakes beyond the bound evict the oldest pending");
  assertEquals(s.fwd.table.completedCount, 1, "the live session survived");
  s.clock.advance(16_000);
  s.fwd.expire();
  assertEquals(s.fwd.table.size, 1, "pending handshakes expire after 15 s");
  s.clock.advance(45_000);
  assertEquals(s.fwd.expire(), true, "a completed entry expired after the 60 s timeout");
  assertEquals(s.fwd.table.size, 0);
});

Deno.test("mwgp cache: records round-trip into a fresh table", async () => {
  const a = id(), b = id();
  const s = setup({}, [a, b]);
  await handshake(s, new Pair(a, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR), 42, 7);
  await handshake(s, new Pair(b, s.s2, { hostname: "2001:db8::1", port: 40000 }, S2_ADDR), 42, 7);
  await s.fwd.fromClient(
    new Pair(a, s.s1, { hostname: "192.0.2.10", port: 1 }, S1_ADDR).initiation(77, s.clock),
    {
      hostname: "192.0.2.10",
      port: 1,
    },
  );
  const file = JSON.parse(JSON.stringify(serializeTable(s.fwd.table)));
  assertEquals(file.client_map.length, 2, "only completed handshakes are saved");
  assertEquals(file.client_map[1].cdst, "[2001:db8::1]:40000");
  const t = new ForwardingTable(100);
  assertEquals(loadRecords(t, file, 0), { loaded: 2, skipped: [] });
  for (const e of s.fwd.table.byServerProxy.values()) {
    const l = t.byServerProxy.get(e.serverProxy)!;
    assertEquals([l.clientOrigin, l.clientProxy, l.serverOrigin, l.client, l.server], [
      e.clientOrigin,
      e.clientProxy,
      e.serverOrigin,
      e.client,
      e.server,
    ]);
  }
  const bad = loadRecords(new ForwardingTable(100), { client_map: [{ coidx: -1 }, ...file.client_map] }, 0);
  assertEquals(bad.loaded, 2);
  assertEquals(bad.skipped.length, 1);
  let threw = false;
  try {
    loadRecords(new ForwardingTable(100), [1, 2], 0);
  } catch {
    threw = true;
  }
  assert(threw, "a file that is not a cache is rejected as a whole");
});

Deno.test("mwgp engine: obfuscated clients are answered obfuscated, vanilla ones vanilla, on one port", async () => {
  const a = id(), b = id();
  const s = setup({ obfs: "pw" }, [a, b]);
  const key = obfsKey("pw");
  const pa = new Pair(a, s.s1, { hostname: "192.0.2.10", port: 40000 }, S1_ADDR);
  const toServer =
    (await s.fwd.fromClient(obfuscate(pa.initiation(1, s.clock), key), pa.clientAddr)) as Outbound;
  assert(toServer && looksVanilla(toServer.data), "the server leg is vanilla WireGuard");
  const back = s.fwd.fromServer(pa.respond(toServer.data, 2, s.clock), S1_ADDR)!;
  assert(!looksVanilla(back.data), "the response to an obfuscated client is obfuscated");
  pa.finish(deobfuscate(back.data, key)!.message);
  const down = s.fwd.fromServer(transport(1, 300), S1_ADDR)!;
  assert(
    !looksVanilla(down.data) && down.data.length === 300,
    "transports too, without overhead at >= 256 bytes",
  );
  const up = s.fwd.fromClient(obfuscate(transport(2, 100), key), pa.clientAddr) as Outbound;
  assertEquals([up.data.length, u32(up.data, 4)], [100, 2]);
  // A vanilla client on the same obfs-enabled forwarder stays vanilla.
  const r = await handshake(s, new Pair(b, s.s2, { hostname: "192.0.2.11", port: 1 }, S2_ADDR), 5, 6);
  assert(looksVanilla(s.fwd.fromServer(transport(r.cp, 64), S2_ADDR)!.data));
  // Garbage that is neither vanilla nor obfuscated with this password is counted, not forwarded.
  assertEquals(await s.fwd.fromClient(new Uint8Array(200).fill(0xaa), pa.clientAddr), null);
  assertEquals(s.fwd.stats.drops.deobfuscate, 1);
});
