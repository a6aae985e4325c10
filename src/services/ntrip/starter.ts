/**
 * How `serve` (and `wgedge ntrip relay`) run the relay stations: NTRIP_STATIONS / --ntrip-stations. Each
 * station takes its tunnel from the pool through `ctx.tunnels` (one lease per station while it runs). On
 * reload (SIGHUP, or the stations file saved: it is watched) the stations file is read again: a changed station restarts alone (a changed tunnel counts
 * as a change), removed ones stop, new ones start, and the others keep streaming.
 */
import { hostNet } from "../../net/host.ts";
import { cryptoRandom } from "../../util/random.ts";
import { logger } from "../../util/log.ts";
import { ntripAgent } from "../../wire/ntrip_client.ts";
import type { RunningService, ServiceContext, ServiceStarter } from "../service.ts";
import { poolPathOpener } from "./egress.ts";
import { type ApplyContext, type ApplyResult, NtripRelayService } from "./service.ts";
import { reportStations } from "./report.ts";
import { type FileWatch, watchFile } from "../file_watch.ts";

const log = logger("ntrip");

function applyContext(ctx: ServiceContext): ApplyContext {
  return {
    keyOf: (cfg) => ctx.tunnels.keyOf(cfg),
    openPaths: poolPathOpener(ctx.host ?? hostNet, ctx.tunnels),
  };
}

function summary(r: ApplyResult): Record<string, unknown> {
  return {
    started: r.started.length,
    restarted: r.restarted.join(",") || "-",
    stopped: r.stopped.join(",") || "-",
    unchanged: r.unchanged,
  };
}

export const ntripStarter: ServiceStarter = {
  name: "ntrip",
  configured: (config) => config.ntripStations !== undefined,
  async start(ctx) {
    const config = ctx.config.ntripStations!;
    const svc = new NtripRelayService({
      clock: ctx.clock,
      random: cryptoRandom,
      agent: ntripAgent(ctx.version ?? "dev"),
      log,
    });
    const unreport = reportStations(svc, ctx.registry, ctx.clock);
    const r = await svc.apply(config, applyContext(ctx));
    const enabled = config.stations.filter((s) => s.enable).length;
    log.info("relay stations started", {
      stations: config.stations.length,
      enabled,
      source: config.source,
      ...(config.shard ? { shard: `${config.shard.index}/${config.shard.count}` } : {}),
      ...summary(r),
    });
    // The stations file is watched: saving it reloads like SIGHUP does.
    let watched: { file?: string; watch?: FileWatch } = {};
    const watch = (file: string | undefined) => {
      if (file === watched.file) return;
      watched.watch?.close();
      watched = {
        file,
        watch: file && ctx.requestReload
          ? watchFile(file, () => ctx.requestReload!(`${file} changed`), ctx.clock)
          : undefined,
      };
    };
    watch(config.file);
    const running: RunningService = {
      name: "ntrip",
      async reload(next: ServiceContext) {
        const r = await svc.apply(next.config.ntripStations!, applyContext(next));
        watch(next.config.ntripStations!.file);
        log.info("relay stations reloaded", summary(r));
        return [];
      },
      async stop() {
        watch(undefined);
        await svc.stop();
        unreport();
      },
    };
    return running;
  },
};
