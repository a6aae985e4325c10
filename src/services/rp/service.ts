/**
 * rps/rpc as running services: start the server or client on a tunnel (a pool lease, see starter.ts), and
 * report into the admin surface (status sections, Prometheus metrics, operator routes for port mappings).
 */
import type { Hono } from "hono";
import type { Net } from "../../net/types.ts";
import type { ServiceRegistry } from "../registry.ts";
import { hostNet } from "../../net/host.ts";
import { logger } from "../../util/log.ts";
import type { Clock } from "../../util/clock.ts";
import type { OwnPort } from "../../config/rp.ts";
import { type PortRange, type RpApiLimits, type RpProtocol, RpServer } from "./server.ts";
import { RpClient, type RpRoute } from "./client.ts";

const log = logger("rp");

/** A tunnel as rp needs it: a Net inside it and its own addresses. */
export interface RpTunnel {
  net: Net;
  /** The tunnel's own addresses (literal IPs). */
  addresses: string[];
  /** Lets go of the tunnel (releases the pool lease). */
  close(): void | Promise<void>;
}

export interface RpsServiceOptions {
  tunnel: RpTunnel;
  hostNet?: Net;
  allowPorts?: PortRange[];
  ownPorts?: OwnPort[];
  clientPorts?: Map<string, PortRange[]>;
  maxMappingsPerClient?: number;
  publicBind?: string;
  bufferKb?: number;
  apiPort?: number;
  clientExpirySec?: number;
  sweepIntervalSec?: number;
  udpTimeoutSec?: number;
  apiLimits?: Partial<RpApiLimits>;
  registry?: ServiceRegistry;
}

/** A running rps: the server, its API on every tunnel address, admin integration. */
export class RpsService {
  readonly #unregister: (() => void)[] = [];

  private constructor(readonly server: RpServer, readonly tunnel: RpTunnel) {}

  static start(opts: RpsServiceOptions): RpsService {
    const server = new RpServer({
      tunnelNet: opts.tunnel.net,
      hostNet: opts.hostNet ?? hostNet,
      allowPorts: opts.allowPorts,
      ownPorts: opts.ownPorts,
      clientPorts: opts.clientPorts,
      maxMappingsPerClient: opts.maxMappingsPerClient,
      publicBind: opts.publicBind,
      bufferSize: (opts.bufferKb ?? 32) * 1024,
      clientExpiryMs: opts.clientExpirySec !== undefined ? opts.clientExpirySec * 1000 : undefined,
      sweepIntervalMs: opts.sweepIntervalSec !== undefined ? opts.sweepIntervalSec * 1000 : undefined,
      udpIdleTimeoutMs: opts.udpTimeoutSec !== undefined ? opts.udpTimeoutSec * 1000 : undefined,
      apiLimits: opts.apiLimits,
    });
    try {
      server.serveApi(opts.tunnel.addresses, opts.apiPort);
    } catch (e) {
      void server.close();
      throw e;
    }
    const svc = new RpsService(server, opts.tunnel);
    if (opts.registry) svc.#register(opts.registry);
    return svc;
  }

  #register(registry: ServiceRegistry): void {
    const server = this.server;
    this.#unregister.push(registry.registerStatus("rp_server", () => {
      const { mappings: _m, ...rest } = server.status();
      return rest;
    }));
    this.#unregister.push(registry.registerStatus("port_mappings", () => server.listAll()));
    this.#unregister.push(registry.addRoutes(installOperatorRoutes(server)));
    const m = registry.metrics;
    const L = ["remote_port", "protocol", "client_ip"];
    const active = m.gauge(
      "wgedge_rp_connections_active",
      "Open TCP connections or UDP flows of a port mapping.",
      L,
    );
    const total = m.counter(
      "wgedge_rp_connections_total",
      "TCP connections accepted or UDP flows created.",
      L,
    );
    const failed = m.counter("wgedge_rp_dial_failures_total", "Tunnel dials to the client that failed.", L);
    const bytes = m.counter("wgedge_rp_bytes_total", "Payload bytes through a mapping, by direction.", [
      ...L,
      "direction",
    ]);
    const mappings = m.gauge("wgedge_rp_mappings", "Port mappings currently registered.");
    const clients = m.gauge("wgedge_rp_clients", "Clients seen within the expiry window.");
    const registrations = m.counter("wgedge_rp_registrations_total", "Port mappings created since start.");
    const expired = m.counter("wgedge_rp_clients_expired_total", "Clients expired for missing heartbeats.");
    const dropped = m.counter(
      "wgedge_rp_datagrams_dropped_total",
      "UDP datagrams a mapping dropped (flow table full, send failed).",
      L,
    );
    const receiveErrors = m.counter(
      "wgedge_rp_receive_errors_total",
      "Errors receiving on a UDP mapping's public socket (it keeps serving).",
      L,
    );
    const all = [active, total, failed, bytes, dropped, receiveErrors];
    this.#unregister.push(m.addCollector(() => {
      for (const x of all) x.reset();
      const list = server.listAll();
      for (const v of list) {
        const l = { remote_port: String(v.remote_port), protocol: v.protocol, client_ip: v.client_ip };
        active.set(l, v.connections_active);
        total.set(l, v.connections_total);
        failed.set(l, v.dial_failures);
        if (v.protocol === "udp") {
          dropped.set(l, v.datagrams_dropped);
          receiveErrors.set(l, v.receive_errors);
        }
        bytes.set({ ...l, direction: "in" }, v.bytes_in);
        bytes.set({ ...l, direction: "out" }, v.bytes_out);
      }
      mappings.set({}, list.length);
      clients.set({}, (server.status().clients as unknown[]).length);
      registrations.set({}, server.totals.registrations);
      expired.set({}, server.totals.expiredClients);
    }));
  }

  async stop(): Promise<void> {
    for (const u of this.#unregister.splice(0)) u();
    await this.server.close();
    await this.tunnel.close();
  }
}

/** Admin routes: every mapping with owner and counters; delete any mapping. */
export function installOperatorRoutes(server: RpServer): (app: Hono) => void {
  return (app) => {
    app.get("/api/v1/port-mappings", (c) => {
      const mappings = server.listAll();
      return c.json({ success: true, message: `${mappings.length} mapping(s)`, mappings });
    });
    app.delete("/api/v1/port-mappings", async (c) => {
      const portText = c.req.query("port") ?? "";
      const proto = (c.req.query("protocol") ?? "tcp").toLowerCase();
      if (!/^\d{1,5}$/.test(portText) || (proto !== "tcp" && proto !== "udp")) {
        return c.json({ success: false, message: "expected ?port=1..65535[&protocol=tcp|udp]" }, 400);
      }
      const r = await server.unregister(null, Number(portText), proto as RpProtocol);
      return new Response(JSON.stringify(r.body), {
        status: r.status,
        headers: { "content-type": "application/json" },
      });
    });
  };
}

export interface RpcServiceOptions {
  tunnel: RpTunnel;
  hostNet?: Net;
  routes: RpRoute[];
  serverApi: { host: string; port?: number };
  clientIp?: string;
  bufferKb?: number;
  heartbeatSec?: number;
  startTimeoutSec?: number;
  udpTimeoutSec?: number;
  registry?: ServiceRegistry;
  /** Drives the heartbeat (tests pass a ManualClock). */
  clock?: Clock;
}

/** A running rpc: registered routes with heartbeat, admin status/metrics. */
export class RpcService {
  readonly #unregister: (() => void)[] = [];

  private constructor(readonly client: RpClient, readonly tunnel: RpTunnel) {}

  /** Resolves once every route is registered; rejects (tunnel closed) when the server refuses or is absent. */
  static async start(opts: RpcServiceOptions): Promise<RpcService> {
    const client = new RpClient({
      tunnelNet: opts.tunnel.net,
      hostNet: opts.hostNet ?? hostNet,
      routes: opts.routes,
      serverApi: opts.serverApi,
      clientIp: opts.clientIp,
      bufferSize: (opts.bufferKb ?? 32) * 1024,
      heartbeatIntervalMs: opts.heartbeatSec !== undefined ? opts.heartbeatSec * 1000 : undefined,
      udpIdleTimeoutMs: opts.udpTimeoutSec !== undefined ? opts.udpTimeoutSec * 1000 : undefined,
      clock: opts.clock,
    });
    try {
      await client.start((opts.startTimeoutSec ?? 30) * 1000);
    } catch (e) {
      await opts.tunnel.close();
      throw e;
    }
    const svc = new RpcService(client, opts.tunnel);
    if (opts.registry) svc.#register(opts.registry);
    log.info("rpc running", { routes: opts.routes.map((r) => r.spec).join(",") });
    return svc;
  }

  #register(registry: ServiceRegistry): void {
    const client = this.client;
    this.#unregister.push(registry.registerStatus("rp_client", () => {
      const { routes: _r, ...rest } = client.status();
      return rest;
    }));
    this.#unregister.push(registry.registerStatus("rp_routes", () => client.status().routes));
    const m = registry.metrics;
    const reachable = m.gauge("wgedge_rpc_server_reachable", "1 while the rps API answers heartbeats.");
    const registered = m.gauge(
      "wgedge_rpc_route_registered",
      "1 while a route is registered with rps (as of the last heartbeat, which checks the server's list).",
      ["route"],
    );
    const lost = m.counter(
      "wgedge_rpc_mappings_lost_total",
      "Registered mappings the server no longer held at a heartbeat (operator DELETE); each registered again.",
    );
    this.#unregister.push(m.addCollector(() => {
      registered.reset();
      const s = client.status();
      reachable.set({}, s.server_reachable ? 1 : 0);
      lost.set({}, client.mappingsLost);
      for (const r of s.routes as { route: string; state: string }[]) {
        registered.set({ route: r.route }, r.state === "registered" ? 1 : 0);
      }
    }));
  }

  /** Deletes the mappings on the server (SIGINT/SIGTERM path), then closes everything. */
  async stop(): Promise<void> {
    for (const u of this.#unregister.splice(0)) u();
    await this.client.stop();
    await this.tunnel.close();
  }
}
