/**
 * What a service is to the supervisor: a starter that looks at the loaded Config, and the running service it
 * returns, which applies a reloaded Config itself (keeping whatever did not change) and stops cleanly.
 *
 * Services get tunnels only through `ctx.tunnels` (the process's TunnelPool), so every tunnel is shared by
 * configuration, reference-counted, and visible in status and metrics.
 */
import type { Config } from "../config/mod.ts";
import type { WgConfig } from "../wireguard/config.ts";
import type { TcpOptions } from "../netstack/tcp/options.ts";
import type { Net } from "../net/types.ts";
import type { ServiceRegistry } from "./registry.ts";
import type { Clock } from "../util/clock.ts";
import { tunnelKey, type TunnelLease, type TunnelPool } from "./tunnel/pool.ts";

export interface ServiceContext {
  readonly config: Config;
  readonly registry: ServiceRegistry;
  readonly host: Net;
  readonly tunnels: TunnelProvider;
  readonly clock: Clock;
  /** wgedge's version (protocols that name their software, like NTRIP's User-Agent, use it). */
  readonly version?: string;
  /**
   * Asks for a reload of the whole configuration, as SIGHUP does (a service that watches its own file calls
   * it when the file changes). Reloads queue; the outcome is reported like any other.
   */
  readonly requestReload?: (why: string) => void;
}

export interface RunningService {
  readonly name: string;
  /**
   * Applies a reloaded configuration, keeping what did not change (live connections included). Resolves the
   * problems that left part of it unapplied (e.g. a relay whose port is busy), empty when all was applied;
   * throws when nothing could be applied (the old state is then kept).
   */
  reload?(ctx: ServiceContext): Promise<string[]>;
  stop(): Promise<void>;
}

export interface ServiceStarter {
  readonly name: string;
  /** True when `config` asks for this service. */
  configured(config: Config): boolean;
  /** Starts the service (called only when configured). */
  start(ctx: ServiceContext): Promise<RunningService>;
}

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

/** The configuration of the named tunnel `name` (WG_TUNNEL_<NAME>; `main` is WG_CONFIG unless overridden). */
export function namedTunnelConfig(config: Config, name: string): WgConfig | undefined {
  const key = name.toLowerCase();
  return config.tunnels.get(key) ?? (key === "main" ? config.tunnel : undefined);
}

/** Every configured named tunnel: `main` first when WG_CONFIG is set, then WG_TUNNEL_<NAME> in order. */
export function namedTunnels(config: Config): Map<string, WgConfig> {
  const out = new Map<string, WgConfig>();
  if (config.tunnel && !config.tunnels.has("main")) out.set("main", config.tunnel);
  for (const [name, cfg] of config.tunnels) out.set(name, cfg);
  return out;
}

/** Tunnels as one configuration sees them: leases from the pool, with that configuration's stack options. */
export class TunnelProvider {
  readonly #tcp: Partial<TcpOptions> | undefined;

  constructor(readonly pool: TunnelPool, readonly config: Config) {
    this.#tcp = tunnelTcpOptions(config);
  }

  /** The pool key `cfg` has under this configuration (a tunnel is replaced when its key changes). */
  keyOf(cfg: WgConfig): string {
    return tunnelKey(cfg, this.#tcp);
  }

  /** The key of the named tunnel, or undefined when the configuration has no tunnel of that name. */
  namedKey(name: string): string | undefined {
    const cfg = namedTunnelConfig(this.config, name);
    return cfg ? this.keyOf(cfg) : undefined;
  }

  acquire(cfg: WgConfig, name: string, user: string): Promise<TunnelLease> {
    return this.pool.acquire(cfg, { name, user }, this.#tcp);
  }

  /** A lease on the named tunnel; rejects naming the variable to set when there is none. */
  acquireNamed(name: string, user: string): Promise<TunnelLease> {
    const cfg = namedTunnelConfig(this.config, name);
    if (!cfg) {
      return Promise.reject(
        new Error(`wg:${name}: no tunnel configured (set WG_TUNNEL_${name.toUpperCase()})`),
      );
    }
    return this.acquire(cfg, name.toLowerCase(), user);
  }
}
