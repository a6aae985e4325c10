/**
 * How `wgedge serve` runs mwgp: MWGP_SERVER_CONFIG and/or MWGP_CLIENT_CONFIG (plus MWGP_CACHE_FILE,
 * MWGP_NO_CACHE and MWGP_SKIP_LOAD_CACHE, read as the mwgp binary reads them). On
 * SIGHUP, an instance whose configuration changed is restarted. The table is written to the cache file on
 * close and read back on start, so established sessions carry over without new handshakes.
 */
import type { RunningService, ServiceContext, ServiceStarter } from "../service.ts";
import type { MwgpClientConfig, MwgpSection, MwgpServerConfig } from "../../config/mwgp.ts";
import { toBase64 } from "../../util/bytes.ts";
import { logger } from "../../util/log.ts";
import { MwgpService } from "./service.ts";

const log = logger("mwgp");

type InstanceConfig = MwgpServerConfig | MwgpClientConfig;

/** A comparable rendering of one instance's settings (kept in memory only; it contains keys). */
function fingerprint(cfg: InstanceConfig | undefined, section: MwgpSection | undefined): string {
  if (!cfg) return "";
  const { cacheFile, noCache, skipLoadCache } = section ?? {};
  return JSON.stringify(
    { cfg, cacheFile, noCache, skipLoadCache },
    (_k, v) => (v instanceof Uint8Array ? toBase64(v) : v),
  );
}

export const mwgpStarter: ServiceStarter = {
  name: "mwgp",
  configured: (config) => !!config.mwgp && (!!config.mwgp.server || !!config.mwgp.client),
  async start(ctx: ServiceContext) {
    const section = ctx.config.mwgp;
    const running = new Map<"server" | "client", { svc: MwgpService; print: string }>();

    const apply = async (next: MwgpSection | undefined) => {
      for (const mode of ["server", "client"] as const) {
        const cfg = next?.[mode];
        const print = fingerprint(cfg, next);
        const cur = running.get(mode);
        if (cur && cur.print === print) continue;
        if (cur) {
          await cur.svc.close();
          running.delete(mode);
          log.info(cfg ? "configuration changed; restarting" : "configuration removed; stopped", { mode });
        }
        if (!cfg) continue;
        const svc = await MwgpService.start(cfg, {
          cacheFile: next?.cacheFile,
          noCache: next?.noCache,
          skipLoadCache: next?.skipLoadCache,
          registry: ctx.registry,
          name: `mwgp_${mode}`,
        });
        running.set(mode, { svc, print });
      }
    };

    try {
      await apply(section);
    } catch (e) {
      for (const r of running.values()) await r.svc.close();
      throw e;
    }
    const svc: RunningService = {
      name: "mwgp",
      reload: (next) => apply(next.config.mwgp).then(() => []),
      async stop() {
        for (const r of running.values()) await r.svc.close();
        running.clear();
      },
    };
    return svc;
  },
};
