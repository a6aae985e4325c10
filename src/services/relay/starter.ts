/**
 * How `serve` (and `wgedge relay`) run the port relays: RELAY_N / `-r`. On reload the RelayService diffs the
 * new definitions against the running ones; a relay whose egress tunnel changed counts as changed, so it
 * restarts on the new tunnel. A relay that cannot start (its port is busy) fails alone: it is reported in
 * status as state "error" and in the reload outcome, and the others keep running.
 */
import type { RelayOptions } from "../../config/relay.ts";
import { keepaliveSocketsTuned } from "../../net/host.ts";
import { HostKeepalive, type KeepaliveTimings } from "../../net/keepalive.ts";
import { logger } from "../../util/log.ts";
import type { RunningService, ServiceContext, ServiceStarter } from "../service.ts";
import { createEgress } from "./egress.ts";
import { type ApplyResult, RelayService } from "./service.ts";

const log = logger("relay");

function keepaliveTimings(o: RelayOptions): KeepaliveTimings {
  return { idleSec: o.keepAliveIdleSec, intervalSec: o.keepAliveIntervalSec, count: o.keepAliveCount };
}

function problems(r: ApplyResult): string[] {
  // A relay's own errors usually start with its id already ("RELAY_2: listen ..."): say it once.
  return Object.entries(r.failed).map(([id, msg]) =>
    msg.startsWith(`${id}:`) ? `relay ${msg}` : `relay ${id}: ${msg}`
  );
}

export const relayStarter: ServiceStarter = {
  name: "relay",
  configured: (config) => config.relay !== undefined && config.relay.relays.length > 0,
  async start(ctx) {
    const relay = ctx.config.relay!;
    const svc = new RelayService({
      listenNet: ctx.host,
      egress: createEgress(ctx.host, ctx.tunnels),
      registry: ctx.registry,
      clock: ctx.clock,
    });
    try {
      await svc.apply(relay, true);
    } catch (e) {
      await svc.stop();
      throw e;
    }
    // KEEPALIVE_IDLE/INTVL/CNT for the relay's host sockets (see src/net/keepalive.ts).
    const keepalive = new HostKeepalive(keepaliveTimings(relay.options), 1000, keepaliveSocketsTuned);
    if (!keepalive.start()) {
      log.warn("KEEPALIVE_IDLE/INTVL/CNT cannot be applied here; kernel defaults apply");
    }
    const running: RunningService = {
      name: "relay",
      async reload(next: ServiceContext) {
        const cfg = next.config.relay!;
        const r = await svc.apply(cfg, false, createEgress(next.host, next.tunnels));
        keepalive.update(keepaliveTimings(cfg.options));
        log.info("relays reloaded", {
          started: r.started.join(",") || "-",
          stopped: r.stopped.join(",") || "-",
          unchanged: r.unchanged.length,
          failed: Object.keys(r.failed).join(",") || "-",
        });
        return problems(r);
      },
      stop() {
        keepalive.stop();
        return svc.stop();
      },
    };
    return running;
  },
};
