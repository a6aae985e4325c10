/**
 * mwgp on host UDP sockets: one listening socket for the client leg, one unconnected socket per address
 * family for the server leg (so every datagram's leg is known by the socket it arrived on), the expiry tick,
 * the cache file, client-mode re-resolution of the server name, and the admin status/metrics.
 */
import { logger } from "../../util/log.ts";
import { type Clock, systemClock, type TimerHandle } from "../../util/clock.ts";
import { cryptoRandom, type RandomFill } from "../../util/random.ts";
import { toBase64 } from "../../util/bytes.ts";
import { mac1Key, verifyMac1 } from "../../wireguard/cookie.ts";
import { obfsKey } from "../../wireguard/obfs.ts";
import { formatHostPort, type MwgpClientConfig, type MwgpServerConfig } from "../../config/mwgp.ts";
import type { Resolver } from "../../net/resolve.ts";
import type { NetAddr } from "../../net/types.ts";
import { type HostUdpConn, listenHostUdp } from "../../net/host_udp.ts";
import type { ServiceRegistry } from "../registry.ts";
import { Forwarder, type Leg, type Outbound, type Route, type Router } from "./forwarder.ts";
import { serverRouter } from "./router.ts";
import { CachingTargetResolver, dnsServerResolver, hn2etxtResolver } from "./resolver.ts";
import { loadRecords, readCacheFile, resolveCachePath, serializeTable, writeCacheFile } from "./cache.ts";
import { addrKey, sameAddr, type UdpAddr } from "./table.ts";

const log = logger("mwgp");

export const CLIENT_RERESOLVE_MS = 5 * 60_000;
export const CLIENT_RERESOLVE_AFTER_FAILURE_MS = 10_000;
/** Cache writes after a change are coalesced over this delay. */
export const CACHE_WRITE_DELAY_MS = 200;

export interface MwgpServiceOptions {
  /** --cache-file / MWGP_CACHE_FILE (the config's cache_file_path wins over it). */
  cacheFile?: string;
  noCache?: boolean;
  skipLoadCache?: boolean;
  clock?: Clock;
  random?: RandomFill;
  /** Name resolution (tests inject a MapResolver); the client's `dns` overrides it for the server name. */
  resolver?: Resolver;
  /** Status/metrics registry of the admin surface. */
  registry?: ServiceRegistry;
  /** Admin section name (two instances in one process need two names). */
  name?: string;
  /** Client mode: server name re-resolution period and retry after a failure (tests shorten them). */
  reresolveMs?: number;
  reresolveAfterFailureMs?: number;
}

type Config = MwgpServerConfig | MwgpClientConfig;

/**
 * A source as the table keeps it: an IPv4 client reaching the dual-stack listener (`::ffff:a.b.c.d`) is
 * `a.b.c.d`, as mwgp writes it in its cache, so entries compare and move between the two unchanged.
 */
function toUdp(addr: Deno.Addr): UdpAddr {
  const a = addr as Deno.NetAddr;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a.hostname);
  return { hostname: m ? m[1] : a.hostname, port: a.port };
}

/**
 * The client-leg socket. A listen address without a host (`":1000"`) is dual-stack as in mwgp (Go listens on
 * `[::]` with IPv4 mapped into it): one IPv6 socket that also takes IPv4, or IPv4 alone where the host has no
 * IPv6.
 */
export function listenClientLeg(host: string, port: number): HostUdpConn {
  if (host) return listenHostUdp(host, port, GSO);
  try {
    return listenHostUdp("::", port, GSO);
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) throw e;
    log.debug("no IPv6 socket; listening on IPv4 only", { port, error: e });
    return listenHostUdp("0.0.0.0", port, GSO);
  }
}

/**
 * mwgp's sockets send a wake-up's datagrams for one peer (a burst of one TCP flow's packets, all one size) as
 * UDP GSO trains: the kernel takes each train through its stack once instead of per datagram.
 */
const GSO = { gso: true };

export class MwgpService {
  readonly forwarder: Forwarder;
  readonly cachePath: string | null;
  #listener!: HostUdpConn;
  #upstream4?: HostUdpConn;
  #upstream6?: HostUdpConn;
  #closed = false;
  /** The expiry tick and client-mode re-resolution, on the injected clock (tests advance a ManualClock). */
  #expiryTimer: TimerHandle | undefined;
  #resolveTimer: TimerHandle | undefined;
  #cacheDirty = false;
  #cacheTimer: TimerHandle | undefined;
  #cacheWriting: Promise<void> = Promise.resolve();
  #unregister: (() => void)[] = [];
  sendErrors = 0;
  /** The receive loops; close() waits for them so the ports are free when it returns. */
  #loops: Promise<void>[] = [];
  /** Client mode: the resolved server address (null until the first resolution succeeds). */
  #serverAddr: UdpAddr | null = null;
  readonly #clock: Clock;

  private constructor(readonly config: Config, readonly opts: MwgpServiceOptions, router: Router | null) {
    this.#clock = opts.clock ?? systemClock;
    const random = opts.random ?? cryptoRandom;
    const obfs = config.obfs ? obfsKey(config.obfs) : undefined;
    const listen = formatHostPort(config.listen);
    this.cachePath = opts.noCache
      ? null
      : resolveCachePath({ configPath: config.cacheFilePath, flagOrEnvPath: opts.cacheFile, listen });
    this.forwarder = new Forwarder({
      router: router ?? ((init) => this.#clientRoute(init)),
      clock: this.#clock,
      random,
      timeoutMs: config.timeoutSec * 1000,
      maxEntries: config.maxEntries,
      maxPacketSize: config.maxPacketSize,
      csvl: config.csvl,
      ssvl: config.ssvl,
      clientLegObfs: config.mode === "server" ? obfs : undefined,
      serverLegObfs: config.mode === "client" ? obfs : undefined,
      onTableChanged: () => this.#scheduleCacheWrite(),
    });
  }

  static async start(config: Config, opts: MwgpServiceOptions = {}): Promise<MwgpService> {
    let svc: MwgpService;
    if (config.mode === "server") {
      const targets = new CachingTargetResolver(opts.resolver, () => (opts.clock ?? systemClock).now());
      // The router counts DH operations into the forwarder's stats, which exist once the service does.
      const late: { router?: Router } = {};
      svc = new MwgpService(config, opts, (init, from) => late.router!(init, from));
      late.router = serverRouter(config, targets, svc.forwarder.stats);
    } else {
      svc = new MwgpService(config, opts, null);
    }
    await svc.#loadCache();
    svc.#listener = listenClientLeg(config.listen.host, config.listen.port);
    if (config.mode === "client") await svc.#resolveServer();
    svc.#loops.push(svc.#receiveLoop(svc.#listener, "client"));
    svc.#armExpiry(Math.max(1000, Math.min(10_000, (config.timeoutSec * 1000) / 4)));
    if (opts.registry) svc.#register(opts.registry);
    log.info("mwgp started", {
      mode: config.mode,
      listen: svc.listenAddr,
      ...(config.mode === "server"
        ? { servers: config.servers.length }
        : { server: formatHostPort(config.server) }),
      obfs: config.obfs ? "on" : "off",
      cache: svc.cachePath ?? "disabled",
    });
    return svc;
  }

  get listenAddr(): string {
    return addrKey(toUdp(this.#listener.addr));
  }

  get listenPort(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  // ---- client mode: a fixed route to the (re-resolved) server

  #clientRoute(init: Parameters<Router>[0]): Route | "mac1" | "resolve" {
    const c = this.config as MwgpClientConfig;
    if (!verifyMac1(init.bytes, this.#clientMac1Key ??= mac1Key(c.serverPublicKey))) return "mac1";
    if (!this.#serverAddr) return "resolve";
    return {
      server: this.#serverAddr,
      serverPublicKey: c.serverPublicKey,
      clientPublicKey: c.clientPublicKey,
      label: "server",
    };
  }
  #clientMac1Key: Uint8Array | undefined;

  async #resolveServer(): Promise<void> {
    if (this.#closed) return;
    const c = this.config as MwgpClientConfig;
    const resolver = new CachingTargetResolver(
      c.hn2etxtSecret !== undefined && c.dns
        ? hn2etxtResolver(c.dns, c.hn2etxtSecret, this.opts.resolver)
        : c.dns
        ? dnsServerResolver(c.dns, this.opts.resolver)
        : this.opts.resolver,
      undefined,
      0,
    );
    const addr = await resolver.resolve(c.server);
    let next = this.opts.reresolveMs ?? CLIENT_RERESOLVE_MS;
    if (!addr) {
      log.warn("cannot resolve the mwgp server; retrying", { server: formatHostPort(c.server) });
      next = this.opts.reresolveAfterFailureMs ?? CLIENT_RERESOLVE_AFTER_FAILURE_MS;
    } else if (!this.#serverAddr || !sameAddr(addr, this.#serverAddr)) {
      const old = this.#serverAddr;
      this.#serverAddr = addr;
      const n = this.forwarder.repointServer(old, addr);
      if (old) log.info("mwgp server moved", { from: addrKey(old), to: addrKey(addr), entries: n });
      if (n > 0) this.#scheduleCacheWrite();
    }
    if (this.#closed) return;
    this.#resolveTimer = this.#clock.setTimer(() => this.#resolveServer(), next);
  }

  // ---- sockets

  #upstreamFor(to: UdpAddr): HostUdpConn {
    if (to.hostname.includes(":")) {
      if (!this.#upstream6) {
        this.#upstream6 = listenHostUdp("::", 0, GSO);
        this.#loops.push(this.#receiveLoop(this.#upstream6, "server"));
      }
      return this.#upstream6;
    }
    if (!this.#upstream4) {
      this.#upstream4 = listenHostUdp("0.0.0.0", 0, GSO);
      this.#loops.push(this.#receiveLoop(this.#upstream4, "server"));
    }
    return this.#upstream4;
  }

  /** Sends at once (staged for the socket's next batched send); a failure is counted, never thrown. */
  #send(out: Outbound): void {
    try {
      const conn = out.leg === "client" ? this.#listener : this.#upstreamFor(out.to);
      if (!conn.sendNow(out.data, out.to) && !this.#closed) this.sendErrors++;
    } catch (e) {
      if (this.#closed) return;
      this.sendErrors++;
      log.debug("send failed", { to: addrKey(out.to), error: e });
    }
  }

  /**
   * The forwarding loop of one socket, in push mode: each datagram (a view into the receive batch) is looked
   * up and rewritten in place by the forwarder, and its result staged for the next sendmmsg of the other leg,
   * synchronously; no promise and no allocation per transport datagram. Only an initiation waits (its route
   * may need a lookup); the forwarder copied it first. The clock is read once per wake-up (a batch of up to a
   * few hundred datagrams), not per datagram: entries' idle times count in seconds.
   */
  #receiveLoop(conn: HostUdpConn, leg: Leg): Promise<void> {
    return conn.listen((data, from) => {
      if (this.#closed) return;
      try {
        const out = this.forwarder.forward(leg, data, this.#udpAddr(from), this.#now);
        if (out === null) return;
        if (out instanceof Promise) {
          out.then((o) => o && this.#send(o), (e) => log.warn("handshake routing failed", { error: e }));
        } else {
          this.#send(out);
        }
      } catch (e) {
        // A bug on a strange packet must not stop the relay; it is counted as malformed.
        this.forwarder.stats.drops.malformed++;
        log.warn("packet handling failed", { leg, error: e });
      }
    }, this.#onWake);
  }

  /** The injected clock's time at the current wake-up of a receive loop (see #receiveLoop). */
  #now = 0;
  readonly #onWake = (): void => {
    this.#now = this.#clock.now();
  };

  /**
   * A source as the table keeps it (toUdp), made once per source object: the batched socket hands out one
   * NetAddr per source, so a datagram from a known peer costs a WeakMap lookup, no regex and no object.
   */
  readonly #sourceAddrs = new WeakMap<NetAddr, UdpAddr>();
  #udpAddr(from: NetAddr): UdpAddr {
    if (from === this.#lastSource) return this.#lastUdpAddr; // a burst from one peer: no lookup at all
    let a = this.#sourceAddrs.get(from);
    if (!a) this.#sourceAddrs.set(from, a = toUdp(from));
    this.#lastSource = from;
    return this.#lastUdpAddr = a;
  }
  #lastSource: NetAddr | undefined;
  #lastUdpAddr: UdpAddr = { hostname: "", port: 0 };

  // ---- expiry and cache

  #armExpiry(tickMs: number): void {
    this.#expiryTimer = this.#clock.setTimer(() => {
      if (this.#closed) return;
      if (this.forwarder.expire()) this.#scheduleCacheWrite();
      this.#armExpiry(tickMs);
    }, tickMs);
  }

  #scheduleCacheWrite(): void {
    if (!this.cachePath || this.#closed) return;
    this.#cacheDirty = true;
    if (this.#cacheTimer !== undefined) return;
    this.#cacheTimer = this.#clock.setTimer(() => {
      this.#cacheTimer = undefined;
      this.#cacheWriting = this.#cacheWriting.then(() => this.#writeCache());
    }, CACHE_WRITE_DELAY_MS);
  }

  async #writeCache(): Promise<void> {
    if (!this.cachePath || !this.#cacheDirty) return;
    this.#cacheDirty = false;
    try {
      await writeCacheFile(this.cachePath, serializeTable(this.forwarder.table));
    } catch (e) {
      log.warn("cannot write the cache file", { path: this.cachePath, error: e });
    }
  }

  async #loadCache(): Promise<void> {
    if (!this.cachePath || this.opts.skipLoadCache) return;
    try {
      const data = await readCacheFile(this.cachePath);
      if (data === null) return;
      const { loaded, skipped } = loadRecords(this.forwarder.table, data, this.#clock.now());
      for (const s of skipped) log.warn("cache record skipped", { path: this.cachePath, record: s });
      log.info("forwarding table loaded from cache", { path: this.cachePath, entries: loaded });
    } catch (e) {
      log.warn("cache file unreadable or corrupt; starting with an empty table", {
        path: this.cachePath,
        error: e,
      });
    }
  }

  /** Writes the cache now (if anything changed). */
  async flushCache(): Promise<void> {
    if (this.#cacheTimer !== undefined) {
      this.#clock.clearTimer(this.#cacheTimer);
      this.#cacheTimer = undefined;
    }
    await this.#cacheWriting;
    await this.#writeCache();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flushCache();
    this.#closed = true;
    this.#clock.clearTimer(this.#expiryTimer);
    this.#clock.clearTimer(this.#resolveTimer);
    for (const u of this.#unregister) u();
    for (const c of [this.#listener, this.#upstream4, this.#upstream6]) {
      try {
        c?.close();
      } catch { /* already closed */ }
    }
    await Promise.allSettled(this.#loops);
  }

  // ---- admin

  status(): Record<string, unknown> {
    const f = this.forwarder;
    const now = this.#clock.now();
    return {
      mode: this.config.mode,
      listen: this.listenAddr,
      obfs: Boolean(this.config.obfs),
      cacheFile: this.cachePath,
      server: this.config.mode === "client" ? formatHostPort(this.config.server) : undefined,
      serverAddress: this.#serverAddr ? addrKey(this.#serverAddr) : undefined,
      entries: f.table.size,
      completed: f.table.completedCount,
      stats: { ...f.stats, drops: { ...f.stats.drops }, sendErrors: this.sendErrors },
      table: [...f.table.entries()].slice(0, 1000).map((e) => ({
        client: addrKey(e.client),
        server: addrKey(e.server),
        serverLabel: e.serverLabel || undefined,
        clientPublicKey: e.clientPublicKey ? toBase64(e.clientPublicKey) : null,
        clientIndex: e.clientOrigin,
        clientProxyIndex: e.clientProxy,
        serverIndex: e.serverOrigin,
        serverProxyIndex: e.serverProxy,
        completed: e.completed,
        obfuscated: e.obfuscated,
        idleSec: Math.round((now - e.lastActive) / 1000),
      })),
    };
  }

  #register(registry: ServiceRegistry): void {
    const name = this.opts.name ?? `mwgp_${this.config.mode}`;
    this.#unregister.push(registry.registerStatus(name, () => this.status()));
    const m = registry.metrics;
    const L = ["instance"];
    const lbl = { instance: name };
    const entries = m.gauge(
      "wgedge_mwgp_table_entries",
      "Forwarding entries (pending and completed handshakes).",
      L,
    );
    const completed = m.gauge(
      "wgedge_mwgp_table_completed",
      "Forwarding entries with a completed handshake.",
      L,
    );
    const packets = m.counter("wgedge_mwgp_forwarded_packets_total", "Datagrams forwarded, by direction.", [
      ...L,
      "direction",
    ]);
    const bytes = m.counter("wgedge_mwgp_forwarded_bytes_total", "Bytes forwarded (as sent), by direction.", [
      ...L,
      "direction",
    ]);
    const drops = m.counter("wgedge_mwgp_drops_total", "Datagrams dropped, by reason.", [...L, "reason"]);
    const dh = m.counter(
      "wgedge_mwgp_dh_operations_total",
      "X25519 operations spent identifying initiations.",
      L,
    );
    const handshakes = m.counter("wgedge_mwgp_handshakes_total", "Initiations forwarded to a server.", L);
    this.#unregister.push(m.addCollector(() => {
      const s = this.forwarder.stats;
      entries.set(lbl, this.forwarder.table.size);
      completed.set(lbl, this.forwarder.table.completedCount);
      packets.set({ ...lbl, direction: "to_server" }, s.packetsToServer);
      packets.set({ ...lbl, direction: "to_client" }, s.packetsToClient);
      bytes.set({ ...lbl, direction: "to_server" }, s.bytesToServer);
      bytes.set({ ...lbl, direction: "to_client" }, s.bytesToClient);
      for (const [reason, n] of Object.entries(s.drops)) drops.set({ ...lbl, reason }, n);
      dh.set(lbl, s.dhOperations);
      handshakes.set(lbl, s.handshakesForwarded);
    }));
  }
}
