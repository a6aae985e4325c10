/** How `wgedge serve` (and the rps/rpc commands) run the reverse proxy: RPS_CONFIG and/or RPC_CONFIG. */
import type { RunningService, ServiceStarter } from "../../cli/serve.ts";
import { openRpTunnel, RpcService, RpsService } from "./service.ts";

export const rpsStarter: ServiceStarter = {
  name: "rps",
  async start(ctx) {
    const cfg = ctx.config.rps;
    if (!cfg) return undefined;
    const tunnel = await openRpTunnel(cfg.tunnel, "rps");
    let svc: RpsService;
    try {
      svc = RpsService.start({
        tunnel,
        hostNet: ctx.host,
        allowPorts: cfg.allowPorts,
        maxMappingsPerClient: cfg.maxMappingsPerClient,
        publicBind: cfg.publicBind,
        bufferKb: cfg.bufferKb,
        apiPort: cfg.apiPort,
        clientExpirySec: cfg.clientExpirySec,
        sweepIntervalSec: cfg.sweepIntervalSec,
        udpTimeoutSec: cfg.udpTimeoutSec,
        registry: ctx.registry,
      });
    } catch (e) {
      await tunnel.close();
      throw e;
    }
    const running: RunningService = { name: "rps", stop: () => svc.stop() };
    return running;
  },
};

export const rpcStarter: ServiceStarter = {
  name: "rpc",
  async start(ctx) {
    const cfg = ctx.config.rpc;
    if (!cfg) return undefined;
    const tunnel = await openRpTunnel(cfg.tunnel, "rpc");
    const svc = await RpcService.start({
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
    const running: RunningService = { name: "rpc", stop: () => svc.stop() };
    return running;
  },
};
