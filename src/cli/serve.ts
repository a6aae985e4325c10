/**
 * `wgedge serve`: the one entry point a VPS needs. Loads the whole configuration (flags > env > env file),
 * starts every service whose configuration is present, serves the admin API, reloads on SIGHUP and stops
 * cleanly on SIGINT/SIGTERM.
 *
 * Services plug in through SERVICE_STARTERS: a starter looks at the loaded Config and returns a running
 * service (or undefined when its configuration is absent). Named tunnels (`WG_TUNNEL_<NAME>`) are opened
 * lazily, on first use by a service (`via=wg:NAME`), in this process (userspace WireGuard + netstack), shared
 * by every user, and reported as the "tunnels" status section and wgedge_tunnel_* metrics;
 * setTunnelNetFactory() swaps the opener (tests).
 */
import { type Command, defineCommand, UsageError, waitForShutdownSignal } from "./command.ts";
import {
  ADMIN_LISTEN_FLAG,
  ENV_FILE_FLAG,
  RELAY_FLAG,
  RELAY_OPTION_FLAGS,
  WG_CONFIG_FLAG,
} from "./config_flags.ts";
import { type Config, ConfigErrors, isConfigError, loadConfig } from "../config/mod.ts";
import type { WgConfig } from "../wireguard/config.ts";
import type { Net } from "../net/types.ts";
import { hostNet, keepaliveSocketsTuned } from "../net/host.ts";
import { ServiceRegistry } from "../services/registry.ts";
import { type AdminServer, startAdminServer } from "../services/admin/server.ts";
import { RelayService } from "../services/relay/service.ts";
import { createEgressLookup, type TunnelLookup } from "../services/relay/egress.ts";
import { RELAY_DEFAULTS, type RelayOptions } from "../config/relay.ts";
import { VERSION } from "./version.ts";
import { logger } from "../util/log.ts";
import { openTunnel, type Tunnel } from "../net/tunnels.ts";
import { HostKeepalive, type KeepaliveTimings } from "../net/keepalive.ts";
import type { TcpOptions } from "../netstack/tcp/options.ts";
import { formatWgQuick } from "../config/canonical.ts";
import { rpcStarter, rpsStarter } from "../services/rp/starter.ts";
import { mwgpStarter } from "../services/mwgp/starter.ts";

const log = logger("serve");

/** A Net inside a named tunnel, plus what the admin API shows about it. */
export interface TunnelNetHandle {
  net: Net;
  close(): void | Promise<void>;
}

export type TunnelNetFactory = (
  name: string,
  cfg: WgConfig,
  registry: ServiceRegistry,
  tcp?: Partial<TcpOptions>,
) => Promise<TunnelNetHandle>;

/**
 * KEEPALIVE_IDLE/INTVL/CNT for TCP inside tunnels. Host sockets cannot take them (Deno only switches
 * SO_KEEPALIVE on; the kernel's tcp_keepalive_* apply there), but the userspace stack can, so relays that
 * egress through a tunnel get exactly the configured probing.
 */
export function tunnelTcpOptions(config: Config): Partial<TcpOptions> | undefined {
  const o = config.relay?.options;
  if (!o) return undefined;
  return {
    keepAlive: true,
    keepAliveIdleMs: o.keepAliveIdleSec * 1000,
    keepAliveIntervalMs: o.keepAliveIntervalSec * 1000,
    keepAliveCount: o.keepAliveCount,
  };
}

/** Open named tunnels, for the "tunnels" status section and wgedge_tunnel_* metrics (one registry per serve). */
const openTunnels = new WeakMap<ServiceRegistry, Map<string, Tunnel>>();

function tunnelsOf(registry: ServiceRegistry): Map<string, Tunnel> {
  let m = openTunnels.get(registry);
  if (m) return m;
  m = new Map();
  openTunnels.set(registry, m);
  const tunnels = m;
  registry.registerStatus("tunnels", () =>
    [...tunnels.values()].map((t) => {
      const st = t.device.status();
      return { name: t.name, publicKey: st.publicKey, listenPort: st.listenPort, peers: st.peers };
    }));
  const labels = ["tunnel", "peer"];
  const handshakes = registry.metrics.counter(
    "wgedge_tunnel_handshakes_total",
    "Completed WireGuard handshakes per peer.",
    labels,
  );
  const bytes = registry.metrics.counter("wgedge_tunnel_bytes_total", "Tunnel payload bytes per peer.", [
    ...labels,
    "direction",
  ]);
  const last = registry.metrics.gauge(
    "wgedge_tunnel_last_handshake_seconds",
    "Unix time of the peer's last handshake (absent before the first).",
    labels,
  );
  registry.metrics.addCollector(() => {
    handshakes.reset();
    bytes.reset();
    last.reset();
    for (const t of tunnels.values()) {
      for (const p of t.device.status().peers) {
        const l = { tunnel: t.name, peer: p.publicKey };
        handshakes.set(l, p.handshakes);
        bytes.set({ ...l, direction: "rx" }, p.rxBytes);
        bytes.set({ ...l, direction: "tx" }, p.txBytes);
        if (p.lastHandshake) last.set(l, Date.parse(p.lastHandshake) / 1000);
      }
    }
  });
  return tunnels;
}

/** The default: bring the tunnel up in this process (userspace WireGuard + netstack) and use its Net. */
const openTunnelNet: TunnelNetFactory = async (name, cfg, registry, tcp) => {
  const tunnel = await openTunnel(cfg, { name, stack: tcp ? { tcp } : undefined });
  const tunnels = tunnelsOf(registry);
  tunnels.set(name, tunnel);
  log.info("tunnel up", { tunnel: name, publicKey: tunnel.device.publicKey });
  return {
    net: tunnel.net,
    close() {
      tunnels.delete(name);
      tunnel.close();
    },
  };
};

let tunnelNetFactory: TunnelNetFactory = openTunnelNet;

/** Installed by the tunnel module: how `serve` turns a WG_TUNNEL_<NAME> config into a Net. */
export function setTunnelNetFactory(factory: TunnelNetFactory): void {
  tunnelNetFactory = factory;
}

export interface RunningService {
  name: string;
  /** Applies a reloaded config (SIGHUP); keeps what did not change. */
  reload?(config: Config): Promise<void>;
  stop(): Promise<void>;
}

export interface ServeContext {
  config: Config;
  registry: ServiceRegistry;
  host: Net;
  /** The Net of tunnel WG_TUNNEL_<NAME> (opened on first use, shared afterwards). */
  tunnel: TunnelLookup;
}

export interface ServiceStarter {
  name: string;
  /** Starts the service when `ctx.config` configures it; resolves undefined otherwise. */
  start(ctx: ServeContext): Promise<RunningService | undefined>;
}

function keepaliveTimings(o: RelayOptions): KeepaliveTimings {
  return { idleSec: o.keepAliveIdleSec, intervalSec: o.keepAliveIntervalSec, count: o.keepAliveCount };
}

export const relayStarter: ServiceStarter = {
  name: "relay",
  async start(ctx) {
    if (!ctx.config.relay) return undefined;
    const svc = new RelayService({
      listenNet: ctx.host,
      egress: createEgressLookup(ctx.host, ctx.tunnel),
      registry: ctx.registry,
    });
    try {
      await svc.apply(ctx.config.relay, true);
    } catch (e) {
      await svc.stop();
      throw e;
    }
    // KEEPALIVE_IDLE/INTVL/CNT for the relay's host sockets (see src/net/keepalive.ts).
    const keepalive = new HostKeepalive(
      keepaliveTimings(ctx.config.relay.options),
      1000,
      keepaliveSocketsTuned,
    );
    if (!keepalive.start()) {
      log.warn("KEEPALIVE_IDLE/INTVL/CNT cannot be applied here; kernel defaults apply");
    }
    return {
      name: "relay",
      async reload(config) {
        const r = await svc.apply(config.relay ?? { relays: [], options: RELAY_DEFAULTS });
        keepalive.update(keepaliveTimings(config.relay?.options ?? RELAY_DEFAULTS));
        log.info("relays reloaded", {
          started: r.started.join(",") || "-",
          stopped: r.stopped.join(",") || "-",
          unchanged: r.unchanged.length,
          failed: Object.keys(r.failed).join(",") || "-",
        });
      },
      stop: () => {
        keepalive.stop();
        return svc.stop();
      },
    };
  },
};

/**
 * The main tunnel (`WG_CONFIG` / `-c`): brought up like `wgedge up` (answers ping on its addresses) and
 * reported with the named tunnels. A changed WG_CONFIG on SIGHUP restarts it.
 */
export const tunnelStarter: ServiceStarter = {
  name: "tunnel",
  async start(ctx) {
    if (!ctx.config.tunnel) return undefined;
    const tunnels = tunnelsOf(ctx.registry);
    let current = ctx.config.tunnel;
    const tcp = tunnelTcpOptions(ctx.config);
    let tunnel = await openTunnel(current, { name: "main", stack: tcp ? { tcp } : undefined });
    tunnels.set("main", tunnel);
    log.info("tunnel up", {
      tunnel: "main",
      publicKey: tunnel.device.publicKey,
      listenPort: tunnel.device.listenPort,
    });
    return {
      name: "tunnel",
      async reload(config) {
        if (config.tunnel && formatWgQuick(config.tunnel) === formatWgQuick(current)) return;
        tunnel.close();
        tunnels.delete("main");
        if (!config.tunnel) return;
        current = config.tunnel;
        const tcpNow = tunnelTcpOptions(config);
        tunnel = await openTunnel(current, { name: "main", stack: tcpNow ? { tcp: tcpNow } : undefined });
        tunnels.set("main", tunnel);
        log.info("tunnel restarted with its new configuration", { tunnel: "main" });
      },
      stop() {
        tunnels.delete("main");
        tunnel.close();
        return Promise.resolve();
      },
    };
  },
};

/** Every service `serve` knows, in start order. Later services add their starter here. */
export const SERVICE_STARTERS: ServiceStarter[] = [
  tunnelStarter,
  relayStarter,
  mwgpStarter,
  rpsStarter,
  rpcStarter,
];

export interface ServeOptions {
  /** Flags by long name, as the config loader takes them. */
  flags: Record<string, string | boolean | string[] | undefined>;
  envFile?: string;
  /** Only these services (the `relay` command passes ["relay"]). */
  only?: string[];
  /** Serve the admin API (default true). */
  admin?: boolean;
  env?: Record<string, string | undefined>;
}

function printConfigErrors(e: unknown): void {
  const errs = e instanceof ConfigErrors ? e.errors : [e as Error];
  for (const x of errs) console.error(x.message);
}

/** A running `serve`: its services, admin server and reload; `stop()` tears everything down. */
export class Server {
  readonly registry = new ServiceRegistry();
  #services: RunningService[] = [];
  #admin?: AdminServer;
  #tunnels = new Map<string, Promise<TunnelNetHandle>>();
  #config!: Config;

  constructor(private opts: ServeOptions) {}

  get adminAddr(): { hostname: string; port: number } | undefined {
    return this.#admin?.addr;
  }

  #load(): Promise<Config> {
    return loadConfig({
      env: this.opts.env ?? Deno.env.toObject(),
      flags: this.opts.flags,
      envFile: this.opts.envFile,
    })
      .then(({ config, warnings }) => {
        for (const w of warnings) log.warn(w);
        return config;
      });
  }

  #tunnelLookup: TunnelLookup = (name) => {
    const key = name.toLowerCase();
    // wg:main is the WG_CONFIG tunnel that tunnelStarter brought up (unless WG_TUNNEL_MAIN names another).
    const main = tunnelsOf(this.registry).get("main");
    if (key === "main" && main && !this.#config.tunnels.has("main")) return Promise.resolve(main.net);
    let h = this.#tunnels.get(key);
    if (!h) {
      const cfg = this.#config.tunnels.get(key);
      if (!cfg) {
        return Promise.reject(
          new Error(`via=wg:${name}: no tunnel configured (set WG_TUNNEL_${name.toUpperCase()})`),
        );
      }
      h = tunnelNetFactory(key, cfg, this.registry, tunnelTcpOptions(this.#config));
      h.catch(() => this.#tunnels.delete(key));
      this.#tunnels.set(key, h);
    }
    return h.then((x) => x.net);
  };

  async start(): Promise<void> {
    this.#config = await this.#load();
    const ctx: ServeContext = {
      config: this.#config,
      registry: this.registry,
      host: hostNet,
      tunnel: this.#tunnelLookup,
    };
    try {
      for (const starter of SERVICE_STARTERS) {
        if (this.opts.only && !this.opts.only.includes(starter.name)) continue;
        const svc = await starter.start(ctx);
        if (svc) {
          this.#services.push(svc);
          log.info("service started", { service: svc.name });
        }
      }
      if (this.opts.admin !== false) {
        const a = this.#config.admin;
        this.#admin = startAdminServer(a.listen, {
          registry: this.registry,
          token: a.token,
          version: VERSION,
        });
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Re-reads the configuration (env file included) and hands it to every service; a bad config is logged and ignored. */
  async reload(): Promise<boolean> {
    let config: Config;
    try {
      config = await this.#load();
    } catch (e) {
      if (!isConfigError(e)) throw e;
      log.error("reload rejected: configuration has errors; keeping the running configuration");
      printConfigErrors(e);
      return false;
    }
    this.#config = config;
    for (const s of this.#services) {
      try {
        await s.reload?.(config);
      } catch (e) {
        log.error("reload failed", { service: s.name, error: (e as Error).message });
      }
    }
    return true;
  }

  async stop(): Promise<void> {
    for (const s of this.#services.reverse()) {
      try {
        await s.stop();
      } catch (e) {
        log.warn("stop failed", { service: s.name, error: (e as Error).message });
      }
    }
    this.#services = [];
    await this.#admin?.shutdown();
    this.#admin = undefined;
    for (const h of this.#tunnels.values()) {
      try {
        await (await h).close();
      } catch { /* never opened */ }
    }
    this.#tunnels.clear();
  }

  get serviceNames(): string[] {
    return this.#services.map((s) => s.name);
  }
}

/** Runs until SIGINT/SIGTERM; SIGHUP reloads. Returns the exit code. */
export async function runServer(opts: ServeOptions, requireService?: string): Promise<number> {
  const server = new Server(opts);
  try {
    await server.start();
  } catch (e) {
    if (isConfigError(e)) {
      printConfigErrors(e);
      return 1;
    }
    throw e;
  }
  if (requireService && !server.serviceNames.includes(requireService)) {
    await server.stop();
    throw new UsageError(`nothing to do: no ${requireService} configured`);
  }
  if (server.serviceNames.length === 0) {
    log.warn("no service configured (set RELAY_N, WG_CONFIG, ...); serving the admin API only");
  }
  let reloading = Promise.resolve();
  const onHup = () => {
    log.info("SIGHUP: reloading configuration");
    reloading = reloading.then(() =>
      server.reload().then(() => {}, (e) => log.error("reload", { error: String(e) }))
    );
  };
  Deno.addSignalListener("SIGHUP", onHup);
  const sig = await waitForShutdownSignal();
  Deno.removeSignalListener("SIGHUP", onHup);
  log.info("shutting down", { signal: sig });
  await reloading;
  await server.stop();
  return 0;
}

export const serveCommand: Command = defineCommand({
  name: "serve",
  summary: "Run every service the environment or env file configures, and the admin API.",
  usage: "serve [--env-file FILE] [-c WG_CONFIG] [-r IN_PORT;OUT_PORT;OUT_HOST;TCP|UDP]... [flags]",
  flags: {
    "env-file": ENV_FILE_FLAG,
    config: WG_CONFIG_FLAG,
    relay: RELAY_FLAG,
    "admin-listen": ADMIN_LISTEN_FLAG,
    ...RELAY_OPTION_FLAGS,
  },
  notes: [
    "Everything else comes from the environment or the env file: WG_TUNNEL_<NAME>, RPS_*/RPC_*, " +
    "MWGP_SERVER_CONFIG/MWGP_CLIENT_CONFIG, WGEDGE_ADMIN_TOKEN, WGEDGE_LOG_LEVEL, ... (README.md lists " +
    "them; `wgedge check-config` shows what they add up to). SIGHUP reloads; SIGINT/SIGTERM stop.",
  ],
  async run(parsed) {
    const { "env-file": envFile, ...flags } = parsed.values as Record<string, string | string[] | undefined>;
    return await runServer({ flags, envFile: envFile as string | undefined });
  },
});
