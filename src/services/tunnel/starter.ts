/**
 * The named tunnels `serve` holds: `main` (WG_CONFIG / -c) and every WG_TUNNEL_<NAME>. Each is a lease on the
 * pool held for as long as it is configured, so the tunnel is up (answers ping on its addresses, handshakes,
 * shows in status) whether or not a service uses it yet, and services that name it share the same device.
 *
 * Each name also serves its WireGuard UAPI socket `<WG_UAPI_DIR>/<name>.sock` for `wg show` / `wg set`
 * (src/net/uapi_server.ts); a name held by another process is a problem of that tunnel, a name longer than
 * 15 characters (wg refuses it) or a directory we may not write leaves the tunnel without a socket (warned).
 *
 * On reload a tunnel whose configuration changed is acquired anew before the old lease is released; the
 * services on the old device restart on the new one by their own reload (their keys include the tunnel's),
 * and the old device closes when the last of them lets go. A removed tunnel is released the same way.
 */
import { namedTunnels, type RunningService, type ServiceContext, type ServiceStarter } from "../service.ts";
import type { TunnelLease } from "./pool.ts";
import { logger } from "../../util/log.ts";
import {
  serveUapi,
  UapiNameInUse,
  uapiNameProblem,
  type UapiServer,
  UapiUnavailable,
} from "../../net/uapi_server.ts";

const log = logger("tunnel");
const USER = "serve";

/** A named tunnel serve holds: its lease and, when it has one, its UAPI socket (`wg show <name>`). */
interface Held {
  lease: TunnelLease;
  uapi?: UapiServer;
  /** The directory the socket is in (a changed WG_UAPI_DIR moves it). */
  uapiDir?: string;
}

export const tunnelStarter: ServiceStarter = {
  name: "tunnel",
  configured: (config) => namedTunnels(config).size > 0,
  async start(ctx) {
    const held = new Map<string, Held>();
    const drop = (h: Held) => {
      h.uapi?.close();
      h.lease.release();
    };
    const releaseAll = () => {
      for (const h of held.values()) drop(h);
      held.clear();
    };

    /**
     * Serves `name`'s UAPI socket on its current device. Two names of one pooled tunnel get a socket each on
     * the same device. A name wg cannot use, or a directory we may not write, leaves the tunnel without one (a
     * warning); a socket path another process serves is a problem of that tunnel.
     */
    const openUapi = async (name: string, h: Held, dir: string | undefined): Promise<string | undefined> => {
      h.uapi?.close();
      h.uapi = undefined;
      h.uapiDir = dir;
      if (dir === undefined) return;
      const problem = uapiNameProblem(name);
      if (problem) {
        log.warn("tunnel has no UAPI socket: its name cannot be an interface name", {
          tunnel: name,
          problem,
        });
        return;
      }
      try {
        h.uapi = await serveUapi(h.lease.tunnel.device, { name, dir });
      } catch (e) {
        if (e instanceof UapiUnavailable) {
          log.warn("tunnel has no UAPI socket", { tunnel: name, reason: e.message });
          return;
        }
        if (e instanceof UapiNameInUse) return `tunnel ${name}: UAPI socket: ${e.message}`;
        throw e;
      }
    };

    /** Brings the held set in line with ctx; resolves the problems (a tunnel that could not come up). */
    const apply = async (ctx: ServiceContext, strict: boolean): Promise<string[]> => {
      const problems: string[] = [];
      const wanted = namedTunnels(ctx.config);
      const dir = ctx.config.uapi?.dir;
      for (const [name, cfg] of wanted) {
        const cur = held.get(name);
        const key = ctx.tunnels.keyOf(cfg);
        if (cur?.lease.key === key) {
          if (cur.uapiDir !== dir) {
            const p = await openUapi(name, cur, dir);
            if (p) problems.push(p);
          }
          continue;
        }
        let lease: TunnelLease;
        try {
          lease = await ctx.tunnels.acquire(cfg, name, USER);
        } catch (e) {
          const msg = `tunnel ${name}: ${(e as Error).message}`;
          if (strict) throw new Error(msg);
          problems.push(cur ? `${msg} (keeping the running tunnel)` : msg);
          continue;
        }
        // The name's socket moves to the new device: the old one closes first (the path is the name's).
        cur?.uapi?.close();
        const next: Held = { lease };
        const p = await openUapi(name, next, dir);
        if (p && strict) {
          lease.release();
          throw new Error(p);
        }
        if (p) problems.push(p);
        held.set(name, next);
        if (cur) log.info("tunnel configuration changed; replaced", { tunnel: name });
        cur?.lease.release();
      }
      for (const [name, h] of [...held]) {
        if (wanted.has(name)) continue;
        log.info("tunnel removed from the configuration; released", { tunnel: name });
        held.delete(name);
        drop(h);
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
