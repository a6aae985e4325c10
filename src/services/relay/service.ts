/**
 * The relay service: owns every configured relay, applies a (re)loaded RelayConfig by diffing it against the
 * running set — only relays whose definition changed are restarted, so live connections on the others are
 * untouched — and reports status and metrics into the ServiceRegistry.
 */
import type { Net } from "../../net/types.ts";
import { hostNet } from "../../net/host.ts";
import { osResolver, type Resolver } from "../../net/resolve.ts";
import {
  type RelayConfig,
  type RelayOptions,
  relayPortsText,
  type RelaySpec,
  relayTargetPortsText,
} from "../../config/relay.ts";
import type { ServiceRegistry } from "../registry.ts";
import { type Clock, systemClock } from "../../util/clock.ts";
import { type Logger, logger } from "../../util/log.ts";
import { TcpRelay } from "./tcp.ts";
import { UdpRelay } from "./udp.ts";
import { HealthChecker } from "./health.ts";
import { memberSpec, RangeRelay } from "./range.ts";
import { createEgress, type Egress, type EgressProvider, viaDisplay } from "./egress.ts";
import type { RelayStats } from "./stats.ts";
import { joinHostPort } from "../../util/host_port.ts";

export interface RelayServiceDeps {
  listenNet?: Net;
  /** Egress per `via=`; default: host, socks5 from the URL, no tunnels. */
  egress?: EgressProvider;
  resolver?: Resolver;
  clock?: Clock;
  log?: Logger;
  registry?: ServiceRegistry;
}

export interface RelayStatus {
  id: string;
  protocol: "tcp" | "udp";
  /** TCP: "kernel" on wgedge's own sockets (sys/tcp_relay.ts), "deno" on Deno's (a name, via=, no FFI). */
  engine?: "kernel" | "deno";
  listen: string;
  target: string;
  via: string;
  state: RelayStats["state"];
  health: RelayStats["health"];
  active: number;
  total: number;
  failed: number;
  bytesToTarget: number;
  bytesToClient: number;
  packetsToTarget?: number;
  packetsToClient?: number;
  flowsEvicted?: number;
  flowsExpired?: number;
  packetsDropped?: number;
  lastError?: string;
  /** When lastError happened (ISO, like ntrip's lastError.at). */
  lastErrorAt?: string;
  /** When a dial (TCP) or flow (UDP) to the target last succeeded (ISO): an error older than this is past. */
  lastSuccessAt?: string;
}

interface Running {
  spec: RelaySpec;
  key: string;
  relay: TcpRelay | UdpRelay | RangeRelay;
  egress: Egress;
  health?: HealthChecker;
}

export interface ApplyResult {
  started: string[];
  stopped: string[];
  unchanged: string[];
  /** Relays that failed to start: id -> message. */
  failed: Record<string, string>;
}

/** Equal keys = nothing to restart: the definition, the options and what its egress is (a tunnel's config). */
function definitionKey(spec: RelaySpec, options: RelayOptions, egress: EgressProvider): string {
  return JSON.stringify([spec, options, egress.key(spec.via)]);
}

/** `host:port`, `[v6]:port`, or with a range `host:60000-60099`. */
function targetText(spec: RelaySpec): string {
  return joinHostPort(spec.outHost, relayTargetPortsText(spec));
}

const METRIC_LABELS = ["relay", "protocol", "listen", "target"] as const;

export class RelayService {
  readonly #running = new Map<string, Running>();
  /** Relays that could not start (bind failed...): shown in status as state "error". */
  readonly #failed = new Map<string, { spec: RelaySpec; error: string; atMs: number }>();
  readonly #listenNet: Net;
  #egress: EgressProvider;
  readonly #resolver: Resolver;
  readonly #clock: Clock;
  readonly #log: Logger;
  #unregister: (() => void)[] = [];
  #applying: Promise<unknown> = Promise.resolve();

  constructor(deps: RelayServiceDeps = {}) {
    this.#listenNet = deps.listenNet ?? hostNet;
    this.#resolver = deps.resolver ?? osResolver;
    this.#egress = deps.egress ?? createEgress(this.#listenNet);
    this.#clock = deps.clock ?? systemClock;
    this.#log = deps.log ?? logger("relay");
    if (deps.registry) this.#register(deps.registry);
  }

  /** The running relay with this id (tests and the CLI read its live stats). */
  get(id: string): TcpRelay | UdpRelay | RangeRelay | undefined {
    return this.#running.get(id)?.relay;
  }

  /**
   * Brings the running set in line with config. Unchanged relays keep running; changed ones are stopped
   * before their replacement binds (same port). With `strict`, the first failure to start throws (start-up);
   * otherwise failures are recorded and reported (reload keeps the rest running). A new `egress` (a reloaded
   * configuration's tunnels) restarts exactly the relays whose egress changed.
   */
  apply(config: RelayConfig, strict = false, egress?: EgressProvider): Promise<ApplyResult> {
    const run = this.#applying.then(() => {
      if (egress) this.#egress = egress;
      return this.#apply(config, strict);
    });
    this.#applying = run.catch(() => {});
    return run;
  }

  async #apply(config: RelayConfig, strict: boolean): Promise<ApplyResult> {
    const result: ApplyResult = { started: [], stopped: [], unchanged: [], failed: {} };
    const wanted = new Map(
      config.relays.map((s) => [s.id, { spec: s, key: definitionKey(s, config.options, this.#egress) }]),
    );
    // Stop removed or changed relays first, so a changed relay can rebind its port.
    for (const [id, r] of [...this.#running]) {
      const w = wanted.get(id);
      if (w && w.key === r.key) continue;
      await this.#stopOne(r);
      this.#running.delete(id);
      result.stopped.push(id);
    }
    this.#failed.clear();
    for (const [id, { spec, key }] of wanted) {
      if (this.#running.has(id)) {
        result.unchanged.push(id);
        continue;
      }
      try {
        this.#running.set(id, await this.#startOne(spec, config.options, key));
        result.started.push(id);
      } catch (e) {
        const msg = (e as Error).message ?? String(e);
        result.failed[id] = msg;
        this.#failed.set(id, { spec, error: msg, atMs: this.#clock.wallMs() });
        this.#log.error("relay failed to start", { relay: id, error: msg });
        if (strict) throw e;
      }
    }
    return result;
  }

  async #startOne(spec: RelaySpec, options: RelayOptions, key: string): Promise<Running> {
    const held = await this.#egress.acquire(spec.via, `relay ${spec.id}`);
    const egress = held.net;
    const log = this.#log;
    const make = (single: RelaySpec): TcpRelay | UdpRelay =>
      single.protocol === "tcp"
        ? new TcpRelay(single, options, { listenNet: this.#listenNet, egress, log, clock: this.#clock })
        : new UdpRelay(single, options, {
          listenNet: this.#listenNet,
          egress,
          resolver: this.#resolver,
          clock: this.#clock,
          log,
        });
    const relay = (spec.portCount ?? 1) > 1 ? new RangeRelay(spec, make) : make(spec);
    try {
      relay.start();
    } catch (e) {
      // A range may have bound some of its ports: release them all.
      await relay.stop().catch(() => {});
      held.release();
      throw e;
    }
    let health: HealthChecker | undefined;
    if (options.healthCheck) {
      // A range is probed on its first target port; its results are merged into the range's stats.
      const probed = relay instanceof RangeRelay ? memberSpec(spec, 0) : spec;
      health = new HealthChecker(probed, options, relay instanceof RangeRelay ? relay.health : relay.stats, {
        egress,
        resolver: this.#resolver,
        clock: this.#clock,
        log,
      });
      health.start();
    }
    log.info("relay started", {
      relay: spec.id,
      protocol: spec.protocol,
      listen: relay.listenAddr,
      target: targetText(spec),
      via: viaDisplay(spec.via),
    });
    return { spec, key, relay, egress: held, health };
  }

  async #stopOne(r: Running): Promise<void> {
    await r.health?.stop();
    await r.relay.stop();
    r.egress.release();
    this.#log.info("relay stopped", { relay: r.spec.id });
  }

  status(): RelayStatus[] {
    const out: RelayStatus[] = [];
    for (const r of this.#running.values()) {
      const s = r.relay.stats;
      const st: RelayStatus = {
        id: r.spec.id,
        protocol: r.spec.protocol,
        listen: r.relay.listenAddr,
        target: targetText(r.spec),
        via: viaDisplay(r.spec.via),
        state: s.state,
        health: s.health,
        active: s.active,
        total: s.total,
        failed: s.failed,
        bytesToTarget: s.bytesToTarget,
        bytesToClient: s.bytesToClient,
      };
      const tcp = r.relay instanceof RangeRelay ? r.relay.members[0] : r.relay;
      if (tcp instanceof TcpRelay) st.engine = tcp.engine;
      if (r.spec.protocol === "udp") {
        Object.assign(st, {
          packetsToTarget: s.packetsToTarget,
          packetsToClient: s.packetsToClient,
          flowsEvicted: s.flowsEvicted,
          flowsExpired: s.flowsExpired,
          packetsDropped: (r.relay as UdpRelay | RangeRelay).packetsDropped(),
        });
      }
      if (s.lastError) st.lastError = s.lastError;
      if (s.lastError && s.lastErrorMs !== undefined) st.lastErrorAt = new Date(s.lastErrorMs).toISOString();
      if (s.lastSuccessMs !== undefined) st.lastSuccessAt = new Date(s.lastSuccessMs).toISOString();
      out.push(st);
    }
    for (const [id, f] of this.#failed) {
      out.push({
        id,
        protocol: f.spec.protocol,
        listen: joinHostPort(f.spec.bind ?? "0.0.0.0", relayPortsText(f.spec)),
        target: targetText(f.spec),
        via: viaDisplay(f.spec.via),
        state: "error",
        health: "unknown",
        active: 0,
        total: 0,
        failed: 0,
        bytesToTarget: 0,
        bytesToClient: 0,
        lastError: f.error,
        lastErrorAt: new Date(f.atMs).toISOString(),
      });
    }
    return out;
  }

  #register(registry: ServiceRegistry): void {
    this.#unregister.push(registry.registerStatus("relays", () => this.status()));
    const m = registry.metrics;
    const L = METRIC_LABELS;
    const up = m.gauge("wgedge_relay_up", "1 while the relay is listening, 0 when it failed to start.", L);
    const healthy = m.gauge(
      "wgedge_relay_target_healthy",
      "Health check result: 1 target reachable, 0 marked down after HEALTH_CHECK_RETRIES failures (absent when unchecked).",
      L,
    );
    const active = m.gauge("wgedge_relay_connections_active", "Open TCP connections or UDP flows.", L);
    const total = m.counter(
      "wgedge_relay_connections_total",
      "TCP connections accepted or UDP flows created.",
      L,
    );
    const failed = m.counter(
      "wgedge_relay_connect_failures_total",
      "Dials to the target that failed (refused, timeout, resolve, proxy).",
      L,
    );
    const bytes = m.counter("wgedge_relay_bytes_total", "Payload bytes relayed, by direction.", [
      ...L,
      "direction",
    ]);
    const packets = m.counter("wgedge_relay_udp_packets_total", "UDP datagrams relayed, by direction.", [
      ...L,
      "direction",
    ]);
    const flows = m.gauge("wgedge_relay_udp_flows", "UDP flows in the flow table.", L);
    const evicted = m.counter(
      "wgedge_relay_udp_flows_evicted_total",
      "UDP flows evicted because the flow table was full.",
      L,
    );
    const expired = m.counter(
      "wgedge_relay_udp_flows_expired_total",
      "UDP flows closed after udp_timeout idle.",
      L,
    );
    const dropped = m.counter("wgedge_relay_udp_dropped_total", "UDP datagrams dropped.", L);
    const all = [up, healthy, active, total, failed, bytes, packets, flows, evicted, expired, dropped];
    this.#unregister.push(m.addCollector(() => {
      for (const x of all) x.reset();
      for (const s of this.status()) {
        const l = { relay: s.id, protocol: s.protocol, listen: s.listen, target: s.target };
        up.set(l, s.state === "listening" ? 1 : 0);
        if (s.health !== "unknown") healthy.set(l, s.health === "up" ? 1 : 0);
        active.set(l, s.active);
        total.set(l, s.total);
        failed.set(l, s.failed);
        bytes.set({ ...l, direction: "to_target" }, s.bytesToTarget);
        bytes.set({ ...l, direction: "to_client" }, s.bytesToClient);
        if (s.protocol === "udp") {
          packets.set({ ...l, direction: "to_target" }, s.packetsToTarget ?? 0);
          packets.set({ ...l, direction: "to_client" }, s.packetsToClient ?? 0);
          flows.set(l, s.active);
          evicted.set(l, s.flowsEvicted ?? 0);
          expired.set(l, s.flowsExpired ?? 0);
          dropped.set(l, s.packetsDropped ?? 0);
        }
      }
    }));
  }

  /** Stops every relay and unregisters from the admin registry. */
  async stop(): Promise<void> {
    await this.#applying;
    for (const r of this.#running.values()) await this.#stopOne(r);
    this.#running.clear();
    this.#failed.clear();
    for (const u of this.#unregister) u();
    this.#unregister = [];
  }
}
