/**
 * How `serve` (and `wgedge ntrip caster`) run the NTRIP caster: NTRIP_CASTER_MOUNTS (+ NTRIP_CASTER_LISTEN).
 * Reload applies the mount list in place (a removed mount drops its source and clients, unchanged mounts keep
 * their sessions; see NtripCaster.setMounts) and moves the listener when its address changed.
 */
import { ntripAgent } from "../../wire/ntrip_client.ts";
import type { RunningService, ServiceStarter } from "../service.ts";
import { NtripCaster } from "./caster.ts";

export const ntripCasterStarter: ServiceStarter = {
  name: "ntrip_caster",
  configured: (config) => config.ntripCaster !== undefined,
  start(ctx) {
    const cfg = ctx.config.ntripCaster!;
    const caster = new NtripCaster({
      net: ctx.host,
      hostname: cfg.hostname,
      port: cfg.port,
      mounts: cfg.mounts,
      server: ntripAgent(ctx.version ?? "dev"),
      clock: ctx.clock,
      registry: ctx.registry,
    });
    let listen = cfg.listen;
    const running: RunningService = {
      name: "ntrip_caster",
      reload(next) {
        const c = next.config.ntripCaster!;
        const problems: string[] = [];
        if (c.listen !== listen) {
          try {
            caster.relisten(c.hostname, c.port);
            listen = c.listen;
          } catch (e) {
            problems.push(
              `ntrip_caster: cannot listen on ${c.listen} (${(e as Error).message}); still on ${listen}`,
            );
          }
        }
        caster.setMounts(c.mounts);
        return Promise.resolve(problems);
      },
      stop: () => caster.stop(),
    };
    return Promise.resolve(running);
  },
};
