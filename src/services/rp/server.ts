/**
 * rps: the reverse-proxy server. Holds the mapping table (owned by the tunnel source address of the client
 * that registered it), opens and closes public listeners on the host Net on request, dials each public
 * connection or UDP flow through the tunnel Net to the owner's internal port, and expires clients that stop
 * sending heartbeats.
 *
 * The API (api.ts) is a thin HTTP layer over register/unregister/list/heartbeat here; the operator routes of
 * the admin API use listAll/unregister with no caller.
 */
import type { Listener, Net } from "../../net/types.ts";
import { honoHandler, type Http1Handler, type Http1Server } from "../../net/http1.ts";
import { type HttpServeOptions, serveHttp } from "../../net/http2.ts";
import { SourceRateLimiter } from "../../net/rate_limit.ts";
import { createRpApi } from "./api.ts";
import { type Clock, systemClock, type TimerHandle } from "../../util/clock.ts";
import { logger } from "../../util/log.ts";
import { type ForwardStats, newForwardStats, TcpForwarder, UdpForwarder } from "./forward.ts";
import { canonicalIp } from "./ip.ts";
import type { PortRange, RpProtocol } from "../../config/rp_route.ts";
import { formatPortRanges, type OwnPort } from "../../config/rp.ts";
import { joinHostPort } from "../../util/host_port.ts";

export { formatPortRanges } from "../../config/rp.ts";

// Kept for api.ts and service.ts, which import these from here.
export type { PortRange, RpProtocol } from "../../config/rp_route.ts";

/** wg-rp's timing: heartbeat every 20 s, sweep every 30 s, a client silent for 60 s is expired. */
export const HEARTBEAT_INTERVAL_MS = 20_000;
export const SWEEP_INTERVAL_MS = 30_000;
export const CLIENT_EXPIRY_MS = 60_000;
/** The API port on the server's tunnel addresses (wg-rp). */
export const RP_API_PORT = 80;
export const DEFAULT_BUFFER_KB = 32;
export const DEFAULT_MAX_MAPPINGS_PER_CLIENT = 64;
/**
 * What the heartbeat reply advertises in `protocols`. wg-rp's rps sends no such field and opens a TCP
 * listener whatever `protocol` says, so wgedge rpc refuses UDP routes where the field is absent.
 */
export const RP_PROTOCOLS: readonly RpProtocol[] = ["tcp", "udp"];

export interface RpServerOptions {
  tunnelNet: Net;
  hostNet: Net;
  /** Allowed public ports; empty/undefined = 1..65535. */
  allowPorts?: PortRange[];
  /**
   * Ports wgedge itself listens on, with what listens there (excluded from the default allowed ports): a
   * refusal names the listener.
   */
  ownPorts?: OwnPort[];
  /**
   * RPS_CLIENT_PORTS: the public ports a listed tunnel client may map (within allowPorts). A port listed for
   * some client may be mapped only by the clients it is listed for; unlisted clients keep allowPorts.
   */
  clientPorts?: Map<string, PortRange[]>;
  maxMappingsPerClient?: number;
  /** Address public listeners bind on the host (default 0.0.0.0; "::" for dual stack). */
  publicBind?: string;
  /** Copy buffer per direction, bytes. */
  bufferSize?: number;
  clock?: Clock;
  clientExpiryMs?: number;
  sweepIntervalMs?: number;
  udpIdleTimeoutMs?: number;
  /** Timeout of the tunnel dial to the client's internal port. */
  dialTimeoutMs?: number;
  /** Concurrent public TCP connections per mapping (default 4096); more are closed at accept. */
  maxConnectionsPerMapping?: number;
  /** UDP flows per mapping (default 1024; the least recently active is evicted). */
  maxUdpFlowsPerMapping?: number;
  /** What one client may take of the API (defaults: DEFAULT_RP_API_LIMITS). */
  apiLimits?: Partial<RpApiLimits>;
}

/**
 * Fairness of the API between tunnel clients: one client holding connections or flooding requests must not
 * keep another's heartbeats out (its mappings would expire). RPS_API_* settings (src/config/rp.ts).
 */
export interface RpApiLimits {
  /** Connections from one tunnel address at once, HTTP/1.1 and HTTP/2 together. */
  connectionsPerClient: number;
  /** Sustained requests per second per tunnel address (token bucket)... */
  requestsPerSecond: number;
  /** ...and how many it may send at once (rpc registers every route at start). */
  requestBurst: number;
  /** Milliseconds for a handler and the writing of its response; a client that stops reading is cut. */
  responseTimeoutMs: number;
}

export const DEFAULT_RP_API_LIMITS: RpApiLimits = {
  connectionsPerClient: 8,
  requestsPerSecond: 10,
  requestBurst: 100,
  responseTimeoutMs: 10_000,
};

export interface MappingRequest {
  remotePort: number;
  protocol: RpProtocol;
  clientPort: number;
  /** The client's local service as it described it (informational). */
  localAddr: string;
}

/** One mapping as shown to clients, the operator and the status page. */
export interface MappingView {
  remote_port: number;
  protocol: RpProtocol;
  client_ip: string;
  client_port: number;
  local_addr: string;
  created_at: string;
  connections_total: number;
  connections_active: number;
  bytes_in: number;
  bytes_out: number;
  dial_failures: number;
  /** UDP: datagrams dropped (flow table, failed sends) and receive errors on the public socket. */
  datagrams_dropped: number;
  receive_errors: number;
}

export interface RpResult {
  status: number;
  body: { success: boolean; message: string; [k: string]: unknown };
}

interface MappingEntry {
  key: string;
  protocol: RpProtocol;
  remotePort: number;
  owner: string;
  clientPort: number;
  localAddr: string;
  createdWallMs: number;
  stats: ForwardStats;
  forwarder: TcpForwarder | UdpForwarder;
}

interface ClientRecord {
  ip: string;
  lastSeen: number;
  firstSeenWallMs: number;
}

const log = logger("rps");

/**
 * The API's bounds: small bodies, per client address `connectionsPerClient` connections (HTTP/1.1 or HTTP/2;
 * a client needs one at a time) of at most 16 concurrent HTTP/2 streams each, a request rate shared by all
 * its connections, and the response deadline.
 */
function apiServeOptions(limits: RpApiLimits, clock: Clock): HttpServeOptions {
  return {
    limits: { maxBodyBytes: 64 * 1024, responseTimeoutMs: limits.responseTimeoutMs },
    maxConnectionsPerClient: limits.connectionsPerClient,
    maxStreamsPerConn: 16,
    clock,
    rateLimiter: new SourceRateLimiter(
      { perSecond: limits.requestsPerSecond, burst: limits.requestBurst },
      clock,
    ),
  };
}

function mappingKey(protocol: RpProtocol, port: number): string {
  return `${protocol}/${port}`;
}

export function portAllowed(ranges: PortRange[] | undefined, port: number): boolean {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return false;
  if (!ranges || ranges.length === 0) return true;
  return ranges.some((r) => port >= r.from && port <= r.to);
}

function inRanges(ranges: PortRange[], port: number): boolean {
  return ranges.some((r) => port >= r.from && port <= r.to);
}

/**
 * Why `owner` may not map `port`, or null when it may: RPS_ALLOW_PORTS (naming the wgedge listener on the
 * port, if any), then RPS_CLIENT_PORTS (the client's own list; a port reserved to other clients).
 */
export function portRefusal(
  policy: Pick<RpServerOptions, "allowPorts" | "ownPorts" | "clientPorts">,
  owner: string,
  port: number,
): string | null {
  if (!portAllowed(policy.allowPorts, port)) {
    const own = policy.ownPorts?.find((o) => o.port === port);
    return `remote_port ${port} is outside the allowed ports (RPS_ALLOW_PORTS ${
      formatPortRanges(policy.allowPorts)
    })${
      own
        ? `: wgedge's ${own.what} listens on it`
        : port < 1024
        ? ": ports below 1024 are not allowed by default"
        : ""
    }`;
  }
  const clients = policy.clientPorts;
  if (!clients || clients.size === 0) return null;
  const mine = clients.get(owner);
  if (mine) {
    return inRanges(mine, port)
      ? null
      : `remote_port ${port} is not among the ports RPS_CLIENT_PORTS gives ${owner} (${
        formatPortRanges(mine)
      })`;
  }
  for (const [other, ranges] of clients) {
    if (inRanges(ranges, port)) return `remote_port ${port} is reserved to ${other} by RPS_CLIENT_PORTS`;
  }
  return null;
}

/** Totals over all mappings ever removed plus the live ones, for Prometheus counters that never go down. */
export interface RpTotals {
  registrations: number;
  expiredClients: number;
  removedMappings: number;
}

export class RpServer {
  readonly startupTime: number;
  readonly clock: Clock;
  readonly #opts: RpServerOptions;
  readonly #mappings = new Map<string, MappingEntry>();
  readonly #clients = new Map<string, ClientRecord>();
  readonly #apiServers: Http1Server[] = [];
  readonly totals: RpTotals = { registrations: 0, expiredClients: 0, removedMappings: 0 };
  /** Bytes and connections of mappings already removed, so totals stay monotonic. */
  readonly retired = newForwardStats();
  #sweepTimer: TimerHandle | undefined;
  #closed = false;

  constructor(opts: RpServerOptions) {
    this.#opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.startupTime = Math.floor(this.clock.wallMs() / 1000);
    this.#armSweep();
  }

  get allowPorts(): PortRange[] | undefined {
    return this.#opts.allowPorts;
  }

  get clientExpiryMs(): number {
    return this.#opts.clientExpiryMs ?? CLIENT_EXPIRY_MS;
  }

  /**
   * Applies reloaded limits in place: the allowed ports (RPS_ALLOW_PORTS, RPS_CLIENT_PORTS), mappings per
   * client and client expiry. A mapping on a port no longer allowed to its owner is removed (its public
   * listener closes); resolves how many were.
   */
  async setPolicy(p: {
    allowPorts?: PortRange[];
    ownPorts?: OwnPort[];
    clientPorts?: Map<string, PortRange[]>;
    maxMappingsPerClient?: number;
    clientExpiryMs?: number;
  }) {
    this.#opts.allowPorts = p.allowPorts;
    this.#opts.ownPorts = p.ownPorts;
    this.#opts.clientPorts = p.clientPorts;
    this.#opts.maxMappingsPerClient = p.maxMappingsPerClient;
    this.#opts.clientExpiryMs = p.clientExpiryMs;
    const disallowed = [...this.#mappings.values()].filter((m) =>
      portRefusal(this.#opts, m.owner, m.remotePort) !== null
    );
    await Promise.all(disallowed.map((m) => this.#remove(m, "port no longer allowed")));
    return disallowed.length;
  }

  #armSweep(): void {
    if (this.#closed) return;
    this.#sweepTimer = this.clock.setTimer(() => {
      void this.sweep();
      this.#armSweep();
    }, this.#opts.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
  }

  /** Records that `caller` is alive (every authenticated API call counts as a heartbeat). */
  touch(caller: string): void {
    const ip = canonicalIp(caller) ?? caller;
    const rec = this.#clients.get(ip);
    if (rec) rec.lastSeen = this.clock.now();
    else this.#clients.set(ip, { ip, lastSeen: this.clock.now(), firstSeenWallMs: this.clock.wallMs() });
  }

  /**
   * wg-rp's reply plus what wgedge rpc uses: `protocols` (what this server maps) and `mappings`, the
   * caller's own mappings (protocol, public port, internal port), so a client notices within one heartbeat
   * that one of its mappings is gone (an operator DELETE) and registers it again.
   */
  heartbeat(caller: string): RpResult {
    const owner = canonicalIp(caller) ?? caller;
    this.touch(owner);
    const mappings = [...this.#mappings.values()].filter((m) => m.owner === owner).map((m) => ({
      protocol: m.protocol,
      remote_port: m.remotePort,
      client_port: m.clientPort,
    }));
    return {
      status: 200,
      body: {
        success: true,
        message: "Heartbeat received",
        server_startup_time: this.startupTime,
        protocols: [...RP_PROTOCOLS],
        mappings,
      },
    };
  }

  /** Expires clients silent for longer than the expiry: their mappings and public listeners go. */
  sweep(): Promise<void> {
    const closing: Promise<void>[] = [];
    const now = this.clock.now();
    for (const rec of [...this.#clients.values()]) {
      if (now - rec.lastSeen < this.clientExpiryMs) continue;
      this.#clients.delete(rec.ip);
      const owned = [...this.#mappings.values()].filter((m) => m.owner === rec.ip);
      if (owned.length > 0) {
        this.totals.expiredClients++;
        log.info("client expired (no heartbeat)", {
          client: rec.ip,
          silentMs: Math.round(now - rec.lastSeen),
          mappings: owned.length,
        });
      }
      for (const m of owned) closing.push(this.#remove(m, "client expired"));
    }
    return Promise.all(closing).then(() => {});
  }

  register(caller: string, req: MappingRequest): RpResult {
    const owner = canonicalIp(caller) ?? caller;
    this.touch(owner);
    if (this.#closed) return { status: 503, body: { success: false, message: "server is shutting down" } };
    const refusal = portRefusal(this.#opts, owner, req.remotePort);
    if (refusal) {
      log.info("mapping refused", { client: owner, remotePort: req.remotePort, why: refusal });
      return { status: 403, body: { success: false, message: refusal } };
    }
    const key = mappingKey(req.protocol, req.remotePort);
    const existing = this.#mappings.get(key);
    if (existing && existing.owner !== owner) {
      return {
        status: 409,
        body: { success: false, message: `${key} is already mapped by another client` },
      };
    }
    if (existing) {
      // Same client re-registering (restart, new internal port): keep the public listener, retarget it.
      existing.clientPort = req.clientPort;
      existing.localAddr = req.localAddr;
      log.info("mapping replaced", { mapping: key, client: owner, clientPort: req.clientPort });
      return {
        status: 200,
        body: { success: true, message: `Port mapping ${key} replaced`, mapping: this.#view(existing) },
      };
    }
    const max = this.#opts.maxMappingsPerClient ?? DEFAULT_MAX_MAPPINGS_PER_CLIENT;
    const held = [...this.#mappings.values()].filter((m) => m.owner === owner).length;
    if (held >= max) {
      return {
        status: 400,
        body: { success: false, message: `client already holds ${held} mappings (max ${max})` },
      };
    }
    let entry: MappingEntry;
    try {
      entry = this.#open(owner, req);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      log.warn("public listen refused", { mapping: key, client: owner, error: why });
      return {
        status: 500,
        body: { success: false, message: `cannot listen on ${req.protocol} port ${req.remotePort}: ${why}` },
      };
    }
    this.#mappings.set(key, entry);
    this.totals.registrations++;
    log.info("mapping created", {
      mapping: key,
      client: owner,
      clientPort: req.clientPort,
      localAddr: req.localAddr,
    });
    return {
      status: 200,
      body: { success: true, message: `Port mapping ${key} created`, mapping: this.#view(entry) },
    };
  }

  #open(owner: string, req: MappingRequest): MappingEntry {
    const { hostNet, tunnelNet } = this.#opts;
    const hostname = this.#opts.publicBind ?? "0.0.0.0";
    const stats = newForwardStats();
    const key = mappingKey(req.protocol, req.remotePort);
    const entry = {
      key,
      protocol: req.protocol,
      remotePort: req.remotePort,
      owner,
      clientPort: req.clientPort,
      localAddr: req.localAddr,
      createdWallMs: this.clock.wallMs(),
      stats,
    } as MappingEntry;
    const mlog = log.child(key);
    if (req.protocol === "tcp") {
      const listener: Listener = hostNet.listenTcp({ hostname, port: req.remotePort });
      entry.forwarder = new TcpForwarder({
        listener,
        dial: () =>
          tunnelNet.dialTcp(entry.owner, entry.clientPort, { timeoutMs: this.#opts.dialTimeoutMs ?? 10_000 }),
        stats,
        bufferSize: this.#opts.bufferSize ?? DEFAULT_BUFFER_KB * 1024,
        log: mlog,
        maxConnections: this.#opts.maxConnectionsPerMapping ?? 4096,
      });
    } else {
      const front = hostNet.listenUdp({ hostname, port: req.remotePort });
      entry.forwarder = new UdpForwarder({
        front,
        openUpstream: () => tunnelNet.listenUdp({ port: 0 }),
        target: () => ({ transport: "udp", hostname: entry.owner, port: entry.clientPort }),
        stats,
        log: mlog,
        clock: this.clock,
        idleTimeoutMs: this.#opts.udpIdleTimeoutMs,
        maxFlows: this.#opts.maxUdpFlowsPerMapping ?? 1024,
      });
    }
    return entry;
  }

  /** Removes a mapping; resolves once its public listener is closed (the port is free again). */
  #remove(entry: MappingEntry, why: string): Promise<void> {
    if (this.#mappings.get(entry.key) !== entry) return Promise.resolve();
    this.#mappings.delete(entry.key);
    this.totals.removedMappings++;
    const s = entry.stats;
    const retire = () => {
      this.retired.connectionsTotal += s.connectionsTotal;
      this.retired.bytesIn += s.bytesIn;
      this.retired.bytesOut += s.bytesOut;
      this.retired.dialFailures += s.dialFailures;
      this.retired.datagramsDropped += s.datagramsDropped;
      this.retired.receiveErrors += s.receiveErrors;
    };
    log.info("mapping removed", { mapping: entry.key, client: entry.owner, why });
    return entry.forwarder.close().then(retire, retire);
  }

  /**
   * Deletes a mapping. `caller` null = the operator (admin API): any mapping. Otherwise only the owner may.
   */
  async unregister(caller: string | null, port: number, protocol: RpProtocol): Promise<RpResult> {
    if (caller !== null) this.touch(caller);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return { status: 400, body: { success: false, message: `invalid port ${port}` } };
    }
    const key = mappingKey(protocol, port);
    const entry = this.#mappings.get(key);
    if (!entry) return { status: 404, body: { success: false, message: `no mapping ${key}` } };
    const owner = caller === null ? null : canonicalIp(caller) ?? caller;
    if (owner !== null && entry.owner !== owner) {
      return { status: 403, body: { success: false, message: `${key} belongs to another client` } };
    }
    await this.#remove(entry, owner === null ? "deleted by operator" : "deleted by client");
    return { status: 200, body: { success: true, message: `Port mapping ${key} deleted` } };
  }

  #view(m: MappingEntry): MappingView {
    if (m.forwarder instanceof TcpForwarder) m.forwarder.flushStats();
    return {
      remote_port: m.remotePort,
      protocol: m.protocol,
      client_ip: m.owner,
      client_port: m.clientPort,
      local_addr: m.localAddr,
      created_at: new Date(m.createdWallMs).toISOString(),
      connections_total: m.stats.connectionsTotal,
      connections_active: m.stats.connectionsActive,
      bytes_in: m.stats.bytesIn,
      bytes_out: m.stats.bytesOut,
      dial_failures: m.stats.dialFailures,
      datagrams_dropped: m.stats.datagramsDropped,
      receive_errors: m.stats.receiveErrors,
    };
  }

  /** The caller's own mappings. */
  listFor(caller: string): MappingView[] {
    const owner = canonicalIp(caller) ?? caller;
    this.touch(owner);
    return [...this.#mappings.values()].filter((m) => m.owner === owner).map((m) => this.#view(m));
  }

  /** Every mapping (operator view). */
  listAll(): MappingView[] {
    return [...this.#mappings.values()].map((m) => this.#view(m)).sort((a, b) =>
      a.remote_port - b.remote_port || a.protocol.localeCompare(b.protocol)
    );
  }

  /** Status JSON section: settings, clients with last-seen age, mappings with counters. */
  status(): Record<string, unknown> {
    const now = this.clock.now();
    return {
      startup_time: this.startupTime,
      allow_ports: formatPortRanges(this.#opts.allowPorts),
      client_ports: Object.fromEntries(
        [...(this.#opts.clientPorts ?? new Map())].map(([ip, r]) => [ip, formatPortRanges(r)]),
      ),
      client_expiry_ms: this.clientExpiryMs,
      api: this.#apiServers.map((s) => joinHostPort(s.addr.hostname, s.addr.port)),
      clients: [...this.#clients.values()].map((c) => ({
        client_ip: c.ip,
        last_seen_ms_ago: Math.round(now - c.lastSeen),
        mappings: [...this.#mappings.values()].filter((m) => m.owner === c.ip).length,
      })),
      mappings: this.listAll(),
    };
  }

  /**
   * Serves the API (createRpApi unless another handler is given) on TCP port 80 of each tunnel address,
   * HTTP/1.1 and h2c prior knowledge on the same port (the released wg-rp rpc speaks h2c). Addresses that
   * cannot be bound are reported; at least one must succeed.
   */
  serveApi(
    addresses: string[],
    port = RP_API_PORT,
    handler: Http1Handler = honoHandler(createRpApi({ server: this })),
  ): void {
    const errors: string[] = [];
    // One limiter for every API address: a client reaching the API on two addresses shares its budget.
    const serveOptions = apiServeOptions({ ...DEFAULT_RP_API_LIMITS, ...this.#opts.apiLimits }, this.clock);
    for (const hostname of addresses) {
      try {
        const listener = this.#opts.tunnelNet.listenTcp({ hostname, port });
        this.#apiServers.push(serveHttp(listener, handler, serveOptions));
        log.info("API listening", { addr: joinHostPort(hostname, port) });
      } catch (e) {
        errors.push(`${joinHostPort(hostname, port)}: ${(e as Error).message}`);
      }
    }
    if (this.#apiServers.length === 0) throw new Error(`rps API could not listen: ${errors.join("; ")}`);
    for (const e of errors) log.warn("API listen failed", { error: e });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.clock.clearTimer(this.#sweepTimer);
    await Promise.allSettled(this.#apiServers.map((s) => s.close()));
    const closing = [...this.#mappings.values()].map((m) => m.forwarder.close());
    this.#mappings.clear();
    await Promise.allSettled(closing);
  }
}
