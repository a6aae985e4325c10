/**
 * The named tunnels `serve` holds: `main` (WG_CONFIG / -c) and every WG_TUNNEL_<NAME>. Each is a lease on the
 * pool held for as long as it is configured, so the tunnel is up (answers ping on its addresses, handshakes,
 * shows in status) whether or not a service uses it yet, and services that name it share the same device.
 *
 * On reload a tunnel whose configuration changed is acquired anew before the old lease is released; the
 * services on the old device restart on the new one by their own reload (their keys include the tunnel's),
 * and the old device closes when the last of them lets go. A removed tunnel is released the same way.
 */
import { namedTunnels, type RunningService, type ServiceContext, type ServiceStarter } from "../service.ts";
import type { TunnelLease } from "./pool.ts";
import { logger } from "../../util/log.ts";

const log = logger("tunnel");
const USER = "serve";

export const tunnelStarter: ServiceStarter = {
  name: "tunnel",
  configured: (config) => namedTunnels(config).size > 0,
  async start(ctx) {
    const held = new Map<string, TunnelLease>();
    const releaseAll = () => {
      for (const l of held.values()) l.release();
      held.clear();
    };

    /** Brings the held set in line with ctx; resolves the problems (a tunnel that could not come up). */
    const apply = async (ctx: ServiceContext, strict: boolean): Promise<string[]> => {
      const problems: string[] = [];
      const wanted = namedTunnels(ctx.config);
      for (const [name, cfg] of wanted) {
        const cur = held.get(name);
        const key = ctx.tunnels.keyOf(cfg);
        if (cur?.key === key) continue;
        try {
          held.set(name, await ctx.tunnels.acquire(cfg, name, USER));
          if (cur) log.info("tunnel configuration changed; replaced", { tunnel: name });
          cur?.release();
        } catch (e) {
          const msg = `tunnel ${name}: ${(e as Error).message}`;
          if (strict) throw new Error(msg);
          problems.push(cur ? `${msg} (keeping the running tunnel)` : msg);
        }
      }
      for (const [name, lease] of [...held]) {
        if (wanted.has(name)) continue;
        log.info("tunnel removed from the configuration; released", { tunnel: name });
        held.delete(name);
        lease.release();
      }
      return problems;
    };

    try {
      await apply(ctx, true);
    } catch (e) {
      releaseAll();
      throw e;
    }
    const running: RunningService = {
      name: "tunnel",
      reload: (next) => apply(next, false),
      stop() {
        releaseAll();
        return Promise.resolve();
      },
    };
    return running;
  },
};
