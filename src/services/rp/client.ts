/**
 * rpc: the reverse-proxy client. For each route it listens on a random port of its tunnel address, registers
 * a mapping with the server's API (inside the tunnel), and forwards each tunnel connection or UDP flow to the
 * local service on its own host.
 *
 * Liveness: a heartbeat every 20 s. When the server's `server_startup_time` changes (it restarted) or the
 * server comes back after being unreachable, every route is registered again (replacing is idempotent). A
 * wgedge rps also lists the caller's mappings in its heartbeat reply: a registered route missing there (an
 * operator DELETE, any loss short of a restart) is marked pending and registered again in the same
 * heartbeat. While the server is unreachable the client retries with exponential backoff and never gives up
 * by itself.
 *
 * UDP: a wgedge rps advertises `"protocols": ["tcp","udp"]` in its heartbeat reply. wg-rp's rps sends no
 * such field and opens a TCP listener whatever `protocol` says, so a UDP route is refused against a server
 * that does not advertise "udp" (start() fails with the reason; later it stays "rejected").
 */
import type { Net } from "../../net/types.ts";
import { http1Fetch, type Http1Response } from "../../net/http1.ts";
import { type Clock, systemClock, type TimerHandle } from "../../util/clock.ts";
import { logger } from "../../util/log.ts";
import { fmtAddr, type ForwardStats, newForwardStats, TcpForwarder, UdpForwarder } from "./forward.ts";
import { DEFAULT_BUFFER_KB, HEARTBEAT_INTERVAL_MS, RP_API_PORT } from "./server.ts";
import type { RpRoute } from "../../config/rp_route.ts";
import { joinHostPort } from "../../util/host_port.ts";

// Kept for service.ts and demo.ts, which import these from here.
export { parseRoute, type RpRoute } from "../../config/rp_route.ts";

const log = logger("rpc");

export interface RpClientOptions {
  tunnelNet: Net;
  hostNet: Net;
  routes: RpRoute[];
  /** The server's API address inside the tunnel. */
  serverApi: { host: string; port?: number };
  /** Sent as client_ip for wg-rp compatibility; the server checks it against the connection's source. */
  clientIp?: string;
  /** Tunnel address the internal listeners bind (default: clientIp, else all). */
  listenHost?: string;
  bufferSize?: number;
  clock?: Clock;
  heartbeatIntervalMs?: number;
  /** First retry delay while the server is unreachable (default 1 s), doubling per failure. */
  backoffInitialMs?: number;
  /** Largest retry delay (default: the heartbeat interval, within 5..30 s). */
  backoffMaxMs?: number;
  /** Timeout of one API request. */
  requestTimeoutMs?: number;
  udpIdleTimeoutMs?: number;
  /** Timeout of the dial to the local service. */
  dialTimeoutMs?: number;
}

export type RouteState = "pending" | "registered" | "rejected";

interface RouteRuntime {
  route: RpRoute;
  forwarder: TcpForwarder | UdpForwarder;
  stats: ForwardStats;
  state: RouteState;
  lastError?: string;
  /** When the server last confirmed the mapping (registered it, or listed it in a heartbeat reply). */
  confirmedAt?: number;
}

/** The server refused or could not be reached; message is meant for the user. */
export class RpClientError extends Error {}

/** One of the caller's mappings as the heartbeat reply of a wgedge rps lists it. */
interface ServerMapping {
  protocol: string;
  remote_port: number;
  client_port: number;
}

/** What a heartbeat learned: wg-rp's startup time, and what only a wgedge rps adds. */
export interface HeartbeatReply {
  startupTime: number;
  /** `protocols`, or undefined when the server does not say (wg-rp: TCP only). */
  protocols?: string[];
  /** The caller's mappings, or undefined when the server does not list them (wg-rp). */
  mappings?: ServerMapping[];
}

function parseHeartbeat(json: Record<string, unknown>): HeartbeatReply {
  const reply: HeartbeatReply = { startupTime: json.server_startup_time as number };
  if (Array.isArray(json.protocols)) {
    reply.protocols = json.protocols.filter((p): p is string => typeof p === "string").map((p) =>
      p.toLowerCase()
    );
  }
  if (Array.isArray(json.mappings)) {
    reply.mappings = json.mappings.filter((m): m is ServerMapping =>
      typeof m === "object" && m !== null && typeof m.protocol === "string" &&
      typeof m.remote_port === "number"
    );
  }
  return reply;
}

export class RpClient {
  readonly #opts: RpClientOptions;
  readonly #clock: Clock;
  readonly #routes: RouteRuntime[] = [];
  #serverStartup: number | undefined;
  /** What the server advertised in its last heartbeat reply (undefined: nothing, as wg-rp). */
  #serverProtocols: string[] | undefined;
  #reachable = false;
  #failures = 0;
  #timer: TimerHandle | undefined;
  #stopped = false;
  #nextDelay = 0;
  #tick: Promise<void> = Promise.resolve();
  #routeWork: Promise<void> = Promise.resolve();
  /** Times every route was (re-)registered after the first time; tests and status read it. */
  reregistrations = 0;
  /** Registered mappings the server's heartbeat reply no longer listed (each one was registered again). */
  mappingsLost = 0;

  constructor(opts: RpClientOptions) {
    if (opts.routes.length === 0) throw new RpClientError("no routes configured");
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
  }

  get serverStartupTime(): number | undefined {
    return this.#serverStartup;
  }

  get reachable(): boolean {
    return this.#reachable;
  }

  /** One API request; `timeoutMs` (default: the request timeout, 10 s) bounds dial, request and response. */
  #api(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<Http1Response> {
    const { host, port } = this.#opts.serverApi;
    return http1Fetch(this.#opts.tunnelNet, host, port ?? RP_API_PORT, path, {
      method,
      headers: body === undefined ? undefined : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: timeoutMs ?? this.#requestTimeoutMs(),
    });
  }

  #requestTimeoutMs(): number {
    return this.#opts.requestTimeoutMs ?? 10_000;
  }

  /**
   * One heartbeat; resolves the server's startup time or throws with a user-facing reason. `timeoutMs`
   * shortens the request timeout (start() passes what is left of its start timeout).
   */
  async checkServer(timeoutMs?: number): Promise<number> {
    return (await this.#heartbeat(timeoutMs)).startupTime;
  }

  async #heartbeat(timeoutMs?: number): Promise<HeartbeatReply> {
    const body = this.#opts.clientIp ? { client_ip: this.#opts.clientIp } : {};
    const res = await this.#api("POST", "/api/v1/heartbeat", body, timeoutMs);
    const json = safeJson(res);
    if (res.status !== 200 || typeof json?.server_startup_time !== "number") {
      throw new RpClientError(
        `heartbeat refused: HTTP ${res.status} ${json?.message ?? res.text().slice(0, 200)}`,
      );
    }
    const reply = parseHeartbeat(json);
    this.#serverProtocols = reply.protocols;
    return reply;
  }

  /** Why the server cannot take this route, or null when it can (UDP needs a server that says so). */
  #unsupported(route: RpRoute): string | null {
    if (route.protocol === "tcp") return null;
    if (this.#serverProtocols?.includes(route.protocol)) return null;
    return this.#serverProtocols === undefined
      ? `the server at ${this.#apiText()} does not advertise ${route.protocol.toUpperCase()} support (no ` +
        `"protocols" in its heartbeat reply: a wg-rp rps, which would open a TCP port for it instead); ` +
        `remove the /${route.protocol} route or run wgedge rps there`
      : `the server at ${this.#apiText()} supports only ${this.#serverProtocols.join(", ") || "nothing"}, ` +
        `not ${route.protocol.toUpperCase()}`;
  }

  #sleep(ms: number): Promise<void> {
    // systemClock timers are unref'd; while start() waits for the server nothing else may hold the process.
    if (this.#clock === systemClock) return new Promise((resolve) => setTimeout(resolve, ms));
    return new Promise((resolve) => this.#clock.setTimer(resolve, ms));
  }

  #backoff(failures: number): number {
    const initial = this.#opts.backoffInitialMs ?? 1000;
    // Default cap: one heartbeat period (at least 5 s, at most 30 s), so a server that comes back is noticed
    // about as fast as a live one would be.
    const heartbeat = this.#opts.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    const max = this.#opts.backoffMaxMs ?? Math.min(30_000, Math.max(5000, heartbeat));
    return Math.min(max, initial * 2 ** Math.min(20, Math.max(0, failures - 1)));
  }

  /**
   * Checks the server (retrying with backoff for up to startTimeoutMs), opens the internal listeners and
   * registers every route. Throws RpClientError (after cleaning up) when the server stays unreachable or
   * refuses a route; on success the heartbeat loop runs until stop().
   */
  async start(startTimeoutMs = 30_000): Promise<void> {
    const deadline = this.#clock.now() + startTimeoutMs;
    for (let attempt = 1;; attempt++) {
      try {
        // The start timeout governs: no attempt may outlast it (a 10 s request made --start-timeout 5 take 10 s).
        const left = Math.max(1, Math.round(deadline - this.#clock.now()));
        this.#serverStartup = await this.checkServer(Math.min(this.#requestTimeoutMs(), left));
        break;
      } catch (e) {
        const wait = this.#backoff(attempt);
        if (this.#stopped || this.#clock.now() + wait > deadline) {
          throw new RpClientError(
            `server API ${this.#apiText()} not reachable through the tunnel after ${attempt} attempt(s): ${
              (e as Error).message
            }`,
          );
        }
        log.warn("server not answering yet; retrying", { api: this.#apiText(), inMs: wait, error: e });
        await this.#sleep(wait);
      }
    }
    this.#reachable = true;
    log.info("server answered", {
      api: this.#apiText(),
      serverStartupTime: this.#serverStartup,
      protocols: this.#serverProtocols?.join(",") ?? "(not advertised)",
    });
    // Refuse before opening or registering anything: no half-started client against a TCP-only server.
    for (const route of this.#opts.routes) {
      const why = this.#unsupported(route);
      if (why) throw new RpClientError(`route ${route.spec}: ${why}`);
    }
    try {
      for (const route of this.#opts.routes) this.#routes.push(this.#openRoute(route));
      for (const rt of this.#routes) {
        await this.#register(rt);
        if (rt.state !== "registered") throw new RpClientError(`route ${rt.route.spec}: ${rt.lastError}`);
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.#schedule(this.#opts.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS);
  }

  #apiText(): string {
    const { host, port } = this.#opts.serverApi;
    return fmtAddr({ hostname: host, port: port ?? RP_API_PORT });
  }

  #openRoute(route: RpRoute): RouteRuntime {
    const { tunnelNet, hostNet } = this.#opts;
    const listenHost = this.#opts.listenHost ?? this.#opts.clientIp;
    const stats = newForwardStats();
    const rlog = log.child(`${route.protocol}/${route.remotePort}`);
    const target = route.localHost === "localhost" ? "127.0.0.1" : route.localHost;
    let forwarder: TcpForwarder | UdpForwarder;
    if (route.protocol === "tcp") {
      forwarder = new TcpForwarder({
        listener: tunnelNet.listenTcp({ hostname: listenHost, port: 0 }),
        dial: () =>
          hostNet.dialTcp(target, route.localPort, { timeoutMs: this.#opts.dialTimeoutMs ?? 10_000 }),
        stats,
        bufferSize: this.#opts.bufferSize ?? DEFAULT_BUFFER_KB * 1024,
        log: rlog,
      });
    } else {
      forwarder = new UdpForwarder({
        front: tunnelNet.listenUdp({ hostname: listenHost, port: 0 }),
        openUpstream: () => hostNet.listenUdp({ hostname: target.includes(":") ? "::" : "0.0.0.0", port: 0 }),
        target: () => ({ transport: "udp", hostname: target, port: route.localPort }),
        stats,
        log: rlog,
        clock: this.#clock,
        idleTimeoutMs: this.#opts.udpIdleTimeoutMs,
      });
    }
    rlog.debug("internal listener", { addr: fmtAddr(forwarder.addr) });
    return { route, forwarder, stats, state: "pending" };
  }

  async #register(rt: RouteRuntime): Promise<void> {
    const { route } = rt;
    const body: Record<string, unknown> = {
      local_addr: joinHostPort(route.localHost, route.localPort),
      remote_port: route.remotePort,
      client_port: rt.forwarder.addr.port,
      protocol: route.protocol,
    };
    if (this.#opts.clientIp) body.client_ip = this.#opts.clientIp;
    const unsupported = this.#unsupported(route);
    if (unsupported) {
      rt.state = "rejected";
      rt.lastError = unsupported;
      log.warn("mapping not registered", { route: route.spec, error: rt.lastError });
      return;
    }
    try {
      const res = await this.#api("POST", "/api/v1/port-mappings", body);
      const json = safeJson(res);
      if (res.status === 200 && json?.success === true) {
        if (rt.state !== "registered") {
          log.info("mapping registered", { route: route.spec, message: json.message });
        }
        rt.state = "registered";
        rt.confirmedAt = this.#clock.now();
        rt.lastError = undefined;
        return;
      }
      // 429 (the server's per-client request rate) is "try again later", not a refusal of the route.
      rt.state = res.status >= 400 && res.status < 500 && res.status !== 429 ? "rejected" : "pending";
      rt.lastError = `server answered ${res.status}: ${json?.message ?? res.text().slice(0, 200)}`;
    } catch (e) {
      rt.state = "pending";
      rt.lastError = (e as Error).message;
    }
    log.warn("mapping not registered", { route: route.spec, error: rt.lastError });
  }

  /** Delay of the next heartbeat or retry, ms (status; tests watch the backoff grow). */
  get nextAttemptInMs(): number {
    return this.#nextDelay;
  }

  /** Consecutive failed heartbeats. */
  get failures(): number {
    return this.#failures;
  }

  /** Runs route work one at a time (a heartbeat must not re-register a route a reload is removing). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#routeWork.then(fn);
    this.#routeWork = run.then(() => {}, () => {});
    return run;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#nextDelay = ms;
    this.#clock.clearTimer(this.#timer);
    this.#timer = this.#clock.setTimer(() => {
      this.#tick = this.#serial(() => this.#heartbeatTick());
    }, ms);
  }

  async #heartbeatTick(): Promise<void> {
    if (this.#stopped) return;
    let reply: HeartbeatReply;
    try {
      reply = await this.#heartbeat();
    } catch (e) {
      this.#failures++;
      const wait = this.#backoff(this.#failures);
      if (this.#reachable || this.#failures % 10 === 0) {
        log.warn("server unreachable; retrying with backoff", { api: this.#apiText(), inMs: wait, error: e });
      }
      this.#reachable = false;
      this.#schedule(wait);
      return;
    }
    const startup = reply.startupTime;
    const restarted = this.#serverStartup !== undefined && startup !== this.#serverStartup;
    const recovered = !this.#reachable;
    this.#reachable = true;
    this.#failures = 0;
    this.#serverStartup = startup;
    if (restarted || recovered) {
      // After a restart the server forgot us; after an outage longer than its expiry it swept us. Replacing
      // is idempotent, so register everything again.
      log.info(
        restarted ? "server restarted; registering again" : "server reachable again; registering again",
      );
      this.reregistrations++;
      for (const rt of this.#routes) await this.#register(rt);
    } else {
      if (reply.mappings) this.#noticeLost(reply.mappings);
      for (const rt of this.#routes) {
        if (rt.state === "pending" || rt.state === "rejected") await this.#register(rt);
      }
    }
    const anyUnregistered = this.#routes.some((rt) => rt.state !== "registered");
    this.#schedule(
      anyUnregistered
        ? Math.min(this.#backoff(1) * 5, this.#opts.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS)
        : this.#opts.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS,
    );
  }

  /**
   * Marks pending every registered route the server no longer lists (the operator deleted it, or it was
   * lost some other way short of a restart), so status and metrics stop saying "registered" and the same
   * heartbeat registers it again.
   */
  #noticeLost(held: ServerMapping[]): void {
    const present = new Set(held.map((m) => `${m.protocol.toLowerCase()}/${m.remote_port}`));
    for (const rt of this.#routes) {
      if (rt.state !== "registered") continue;
      if (present.has(`${rt.route.protocol}/${rt.route.remotePort}`)) {
        rt.confirmedAt = this.#clock.now();
        continue;
      }
      rt.state = "pending";
      rt.lastError =
        "the server no longer holds this mapping (deleted by the operator, or lost); registering again";
      this.mappingsLost++;
      log.warn("mapping gone from the server; registering again", { route: rt.route.spec });
    }
  }

  /** Deletes the route's mapping on the server; failures are logged (the server expires it anyway). */
  async #delete(rt: RouteRuntime): Promise<void> {
    const q = `port=${rt.route.remotePort}${rt.route.protocol === "udp" ? "&protocol=udp" : ""}`;
    try {
      const res = await this.#api("DELETE", `/api/v1/port-mappings?${q}`);
      if (res.status === 200 || res.status === 404) log.info("mapping deleted", { route: rt.route.spec });
      else log.warn("mapping delete refused", { route: rt.route.spec, status: res.status });
    } catch (e) {
      log.warn("mapping delete failed", { route: rt.route.spec, error: e });
    }
  }

  /**
   * Applies a reloaded route list: a route no longer listed is deleted on the server and its listener
   * closed; a new one is opened and registered; an unchanged one keeps its mapping and live connections.
   * Resolves the problems (a new route the server refused or could not be asked about; the heartbeat keeps
   * retrying it).
   */
  setRoutes(routes: RpRoute[]): Promise<string[]> {
    return this.#serial(() => this.#setRoutes(routes));
  }

  async #setRoutes(routes: RpRoute[]): Promise<string[]> {
    if (this.#stopped) return [];
    const identity = (r: RpRoute) => `${r.protocol}/${r.remotePort}/${r.localHost}/${r.localPort}`;
    const wanted = new Set(routes.map(identity));
    for (const rt of [...this.#routes]) {
      if (wanted.has(identity(rt.route))) continue;
      this.#routes.splice(this.#routes.indexOf(rt), 1);
      if (rt.state === "registered") await this.#delete(rt);
      await rt.forwarder.close();
      log.info("route removed", { route: rt.route.spec });
    }
    const have = new Set(this.#routes.map((rt) => identity(rt.route)));
    const problems: string[] = [];
    for (const route of routes) {
      if (have.has(identity(route))) continue;
      const rt = this.#openRoute(route);
      this.#routes.push(rt);
      await this.#register(rt);
      if (rt.state !== "registered") problems.push(`route ${route.spec}: ${rt.lastError}`);
    }
    return problems;
  }

  /** Route states for status output. */
  status(): Record<string, unknown> {
    return {
      server_api: this.#apiText(),
      server_reachable: this.#reachable,
      server_startup_time: this.#serverStartup,
      server_protocols: this.#serverProtocols ?? null,
      mappings_lost: this.mappingsLost,
      consecutive_failures: this.#failures,
      next_attempt_in_ms: this.#nextDelay,
      routes: this.#routes.map((rt) => {
        if (rt.forwarder instanceof TcpForwarder) rt.forwarder.flushStats();
        return {
          route: rt.route.spec,
          protocol: rt.route.protocol,
          remote_port: rt.route.remotePort,
          internal_port: rt.forwarder.addr.port,
          state: rt.state,
          // How old "registered" is: the server cannot tell rpc at once that a mapping went, the next
          // heartbeat finds out. Against wg-rp's rps (no list) only the registration confirms.
          confirmed_ms_ago: rt.state === "registered" && rt.confirmedAt !== undefined
            ? Math.round(this.#clock.now() - rt.confirmedAt)
            : null,
          error: rt.lastError,
          connections_total: rt.stats.connectionsTotal,
          connections_active: rt.stats.connectionsActive,
          bytes_in: rt.stats.bytesIn,
          bytes_out: rt.stats.bytesOut,
        };
      }),
    };
  }

  get routeStates(): RouteState[] {
    return this.#routes.map((rt) => rt.state);
  }

  /**
   * Deletes every registered mapping (bounded by deleteTimeoutMs overall), then closes the internal
   * listeners and live connections.
   */
  async stop(deleteTimeoutMs = 5000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#clock.clearTimer(this.#timer);
    await this.#tick.catch(() => {});
    const deletes = this.#routes.filter((rt) => rt.state === "registered").map((rt) => this.#delete(rt));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(deletes),
      new Promise((r) => (timer = setTimeout(r, deleteTimeoutMs))),
    ]);
    clearTimeout(timer);
    await Promise.allSettled(this.#routes.map((rt) => rt.forwarder.close()));
  }
}

function safeJson(res: Http1Response): Record<string, unknown> | undefined {
  try {
    const v = res.json();
    return typeof v === "object" && v !== null ? v as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}
