/**
 * How `serve` (and the rps/rpc commands) run the reverse proxy: RPS_CONFIG and/or RPC_CONFIG. Their tunnels
 * are leases from the pool (named "rps" and "rpc"), so they show in the tunnel status and metrics and are
 * shared with any other service given the same tunnel configuration.
 *
 * Reload applies what changed and keeps the rest:
 *   rps: RPS_ALLOW_PORTS, RPS_CLIENT_PORTS, RPS_MAX_MAPPINGS and RPS_CLIENT_EXPIRY apply in place (a mapping on a port no
 *        longer allowed is removed); a changed tunnel, bind address, API port, buffer, sweep interval, UDP
 *        timeout or RPS_API_* bound restarts the server (clients see a new server_startup_time and register again).
 *   rpc: routes are diffed (removed ones deleted on the server, new ones registered, unchanged ones keep
 *        their live connections); a changed tunnel, server API, client IP, heartbeat, buffer or UDP timeout
 *        restarts the client.
 */
import type { Config } from "../../config/mod.ts";
import type { RpcConfig, RpsConfig } from "../../config/rp.ts";
import { logger } from "../../util/log.ts";
import type { RunningService, ServiceContext, ServiceStarter } from "../service.ts";
import { RpcService, RpsService, type RpTunnel } from "./service.ts";

const log = logger("rp");

async function leaseRpTunnel(ctx: ServiceContext, cfg: RpsConfig | RpcConfig, name: "rps" | "rpc") {
  const lease = await ctx.tunnels.acquire(cfg.tunnel, name, name);
  const tunnel: RpTunnel = {
    net: lease.tunnel.net,
    addresses: cfg.tunnel.iface.addresses.map((a) => a.address),
    close: lease.release,
  };
  return tunnel;
}

/** What only a restart can change, as a comparable string (holds a key derived from secrets: never shown). */
function rpsRestartKey(ctx: ServiceContext, c: RpsConfig): string {
  return JSON.stringify([
    ctx.tunnels.keyOf(c.tunnel),
    c.publicBind,
    c.bufferKb,
    c.apiPort,
    c.sweepIntervalSec,
    c.udpTimeoutSec,
    c.apiConnectionsPerClient,
    c.apiRequestsPerSec,
    c.apiRequestBurst,
    c.apiTimeoutSec,
  ]);
}

function rpcRestartKey(ctx: ServiceContext, c: RpcConfig): string {
  return JSON.stringify([
    ctx.tunnels.keyOf(c.tunnel),
    c.serverApi,
    c.clientIp ?? null,
    c.bufferKb,
    c.heartbeatSec,
    c.udpTimeoutSec,
  ]);
}

async function startRps(ctx: ServiceContext, cfg: RpsConfig): Promise<RpsService> {
  const tunnel = await leaseRpTunnel(ctx, cfg, "rps");
  try {
    return RpsService.start({
      tunnel,
      hostNet: ctx.host,
      allowPorts: cfg.allowPorts,
      ownPorts: cfg.ownPorts,
      clientPorts: cfg.clientPorts,
      maxMappingsPerClient: cfg.maxMappingsPerClient,
      publicBind: cfg.publicBind,
      bufferKb: cfg.bufferKb,
      apiPort: cfg.apiPort,
      clientExpirySec: cfg.clientExpirySec,
      sweepIntervalSec: cfg.sweepIntervalSec,
      udpTimeoutSec: cfg.udpTimeoutSec,
      apiLimits: {
        connectionsPerClient: cfg.apiConnectionsPerClient,
        requestsPerSecond: cfg.apiRequestsPerSec,
        requestBurst: cfg.apiRequestBurst,
        responseTimeoutMs: cfg.apiTimeoutSec * 1000,
      },
      registry: ctx.registry,
    });
  } catch (e) {
    await tunnel.close();
    throw e;
  }
}

async function startRpc(ctx: ServiceContext, cfg: RpcConfig): Promise<RpcService> {
  const tunnel = await leaseRpTunnel(ctx, cfg, "rpc");
  return await RpcService.start({
    tunnel,
    hostNet: ctx.host,
    routes: cfg.routes,
    serverApi: cfg.serverApi,
    clientIp: cfg.clientIp,
    bufferKb: cfg.bufferKb,
    heartbeatSec: cfg.heartbeatSec,
    startTimeoutSec: cfg.startTimeoutSec,
    udpTimeoutSec: cfg.udpTimeoutSec,
    registry: ctx.registry,
  });
}

/**
 * A starter for a service that applies some settings in place and restarts for the rest: `restartKey`
 * holds what only a restart can change; when it is unchanged, `applyInPlace` takes the new section.
 */
function restartable<C, S extends { stop(): Promise<void> }>(spec: {
  name: string;
  section(config: Config): C | undefined;
  restartKey(ctx: ServiceContext, c: C): string;
  start(ctx: ServiceContext, c: C): Promise<S>;
  applyInPlace(svc: S, c: C): Promise<string[]>;
}): ServiceStarter {
  return {
    name: spec.name,
    configured: (config) => spec.section(config) !== undefined,
    async start(ctx) {
      const first = spec.section(ctx.config)!;
      let svc: S | undefined = await spec.start(ctx, first);
      let restartKey = spec.restartKey(ctx, first);
      const running: RunningService = {
        name: spec.name,
        async reload(next) {
          const cfg = spec.section(next.config)!;
          const key = spec.restartKey(next, cfg);
          if (svc && key === restartKey) return await spec.applyInPlace(svc, cfg);
          log.info("settings changed; restarting", { service: spec.name });
          await svc?.stop();
          svc = undefined; // a failed start leaves none: the next reload starts it
          svc = await spec.start(next, cfg);
          restartKey = key;
          return [];
        },
        stop: async () => {
          await svc?.stop();
          svc = undefined;
        },
      };
      return running;
    },
  };
}

export const rpsStarter: ServiceStarter = restartable({
  name: "rps",
  section: (config) => config.rps,
  restartKey: rpsRestartKey,
  start: startRps,
  async applyInPlace(svc, cfg) {
    const removed = await svc.server.setPolicy({
      allowPorts: cfg.allowPorts,
      ownPorts: cfg.ownPorts,
      clientPorts: cfg.clientPorts,
      maxMappingsPerClient: cfg.maxMappingsPerClient,
      clientExpiryMs: cfg.clientExpirySec * 1000,
    });
    if (removed > 0) log.info("mappings removed: their ports are no longer allowed", { removed });
    return [];
  },
});

export const rpcStarter: ServiceStarter = restartable({
  name: "rpc",
  section: (config) => config.rpc,
  restartKey: rpcRestartKey,
  start: startRpc,
  applyInPlace: (svc, cfg) => svc.client.setRoutes(cfg.routes),
});
