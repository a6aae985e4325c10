/**
 * The relay stations of one process: one worker per station, one dial limiter for all of them, and the
 * diff a reload applies. A station's key is its whole configuration with the tunnel replaced by its pool key
 * (`TunnelProvider.keyOf`), so a reload restarts exactly the stations whose configuration or tunnel
 * changed; the others keep streaming. Stations started together (the start, or a reload that changes many)
 * are spread over up to 30 s instead of all dialling in the same second.
 */
import type { NtripStationsConfig, StationConfig } from "../../config/ntrip_stations.ts";
import type { WgConfig } from "../../wireguard/config.ts";
import type { Clock } from "../../util/clock.ts";
import type { RandomFill } from "../../util/random.ts";
import type { Logger } from "../../util/log.ts";
import { DialLimiter } from "./dial_limiter.ts";
import type { PathOpener, StationPaths } from "./egress.ts";
import { startSpreadMs } from "./timing.ts";
import { StationWorker } from "./worker.ts";

export interface NtripRelayDeps {
  clock: Clock;
  random: RandomFill;
  agent: string;
  log: Logger;
  limiter?: DialLimiter;
}

/** What apply() needs from the configuration it applies: the tunnels' pool keys and how to open paths. */
export interface ApplyContext {
  keyOf(cfg: WgConfig): string;
  openPaths: PathOpener;
}

export interface ApplyResult {
  started: string[];
  restarted: string[];
  stopped: string[];
  unchanged: number;
}

interface Entry {
  worker: StationWorker;
  key: string;
}

/** Everything that makes a station what it is, with the tunnel as its pool key (derived from secrets: compare, never show). */
export function stationKey(s: StationConfig, keyOf: (cfg: WgConfig) => string): string {
  const { origin: _origin, wgConfig, ...rest } = s;
  return JSON.stringify({ ...rest, tunnel: wgConfig ? keyOf(wgConfig) : null });
}

export class NtripRelayService {
  readonly limiter: DialLimiter;
  readonly #deps: NtripRelayDeps;
  readonly #entries = new Map<string, Entry>();
  #config?: NtripStationsConfig;

  constructor(deps: NtripRelayDeps) {
    this.#deps = deps;
    this.limiter = deps.limiter ?? new DialLimiter();
  }

  /** Workers in the order of the stations file. */
  get workers(): StationWorker[] {
    return [...this.#entries.values()].map((e) => e.worker);
  }

  get config(): NtripStationsConfig | undefined {
    return this.#config;
  }

  worker(id: string): StationWorker | undefined {
    return this.#entries.get(id)?.worker;
  }

  /** Applies a station list: new stations start, removed ones stop, changed ones restart alone. */
  async apply(config: NtripStationsConfig, ctx: ApplyContext): Promise<ApplyResult> {
    this.#config = config;
    const result: ApplyResult = { started: [], restarted: [], stopped: [], unchanged: 0 };
    const wanted = new Map(config.stations.map((s) => [s.id, s]));
    for (const [id, e] of [...this.#entries]) {
      if (wanted.has(id)) continue;
      this.#entries.delete(id);
      await e.worker.stop();
      result.stopped.push(id);
    }
    const next = new Map<string, Entry>();
    const toStart: { worker: StationWorker; paths?: StationPaths }[] = [];
    for (const station of config.stations) {
      const key = stationKey(station, ctx.keyOf);
      const old = this.#entries.get(station.id);
      if (old && old.key === key) {
        next.set(station.id, old);
        result.unchanged++;
        continue;
      }
      const worker = new StationWorker(station, {
        ...this.#deps,
        limiter: this.limiter,
        openPaths: ctx.openPaths,
      });
      let paths: StationPaths | undefined;
      if (old) {
        // The new paths are opened before the old worker lets go, so a tunnel both use stays up.
        if (station.enable && old.worker.paths) paths = await ctx.openPaths(station).catch(() => undefined);
        await old.worker.stop();
        result.restarted.push(station.id);
      } else result.started.push(station.id);
      next.set(station.id, { worker, key });
      toStart.push({ worker, paths });
    }
    this.#entries.clear();
    for (const [id, e] of next) this.#entries.set(id, e);
    const enabled = toStart.filter((s) => s.worker.station.enable);
    enabled.forEach((s, i) => s.worker.start(startSpreadMs(i, enabled.length), s.paths));
    return result;
  }

  async stop(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(all.map((e) => e.worker.stop()));
  }
}
