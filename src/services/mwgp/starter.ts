/** How `wgedge serve` runs mwgp: MWGP_SERVER_CONFIG and/or MWGP_CLIENT_CONFIG (plus MWGP_CACHE_FILE). */
import type { RunningService, ServiceStarter } from "../../cli/serve.ts";
import { MwgpService } from "./service.ts";

export const mwgpStarter: ServiceStarter = {
  name: "mwgp",
  async start(ctx) {
    const section = ctx.config.mwgp;
    if (!section || (!section.server && !section.client)) return undefined;
    const running: MwgpService[] = [];
    try {
      for (const cfg of [section.server, section.client]) {
        if (!cfg) continue;
        running.push(
          await MwgpService.start(cfg, {
            cacheFile: section.cacheFile,
            registry: ctx.registry,
            name: `mwgp_${cfg.mode}`,
          }),
        );
      }
    } catch (e) {
      for (const s of running) await s.close();
      throw e;
    }
    const svc: RunningService = {
      name: "mwgp",
      async stop() {
        for (const s of running) await s.close();
      },
    };
    return svc;
  },
};
