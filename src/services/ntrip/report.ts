/**
 * What the relay stations show the operator: the `ntrip_stations` status section, `GET /api/v1/ntrip` (the
 * stations plus the caster's section when one runs), and Prometheus series per station. Everything is built
 * from named fields of the workers: no password, proxy credential or key can reach it.
 */
import type { Clock } from "../../util/clock.ts";
import type { ServiceRegistry } from "../registry.ts";
import { redactDeep } from "../../util/secret.ts";
import type { NtripRelayService } from "./service.ts";
import type { SideCounters, StationWorker } from "./worker.ts";
import { STATION_STATES } from "./worker.ts";
import type { SidePath } from "./egress.ts";
import type { StationSide } from "../../config/ntrip_stations.ts";

export const STATUS_SECTION = "ntrip_stations";
export const CASTER_STATUS_SECTION = "ntrip_caster";

export interface SideStatus {
  host: string;
  port: number;
  mount: string;
  phase: string;
  /** The NTRIP version asked last (1 or 2), or the configured choice before the first attempt. */
  version: number | string;
  /** tunnel, socks5 or direct (null before the paths are open). */
  path: string | null;
  /** The session runs over TLS (src_tls / dst_tls). */
  tls: boolean;
  /** The tunnel's peer endpoint or the proxy's address. */
  endpoint: string | null;
  lastReply: string | null;
  attempts: number;
  reconnects: number;
  failures: number;
  uptimeSeconds: number | null;
  nextRetryAt: string | null;
}

export interface StationStatus {
  id: string;
  state: string;
  stateSeconds: number;
  format: string;
  lastError: { side: string; kind: string; message: string; at: string } | null;
  nextRetryAt: string | null;
  source: SideStatus;
  destination: SideStatus;
  bytesIn: number;
  bytesOut: number;
  frames: number;
  framesOut: number;
  framesByType: Record<string, number>;
  crcErrors: number;
  skippedBytes: number;
  lastFrameAgeSeconds: number | null;
  stationId: number | null;
  ecef: { x: number; y: number; z: number } | null;
  ggaSent: number;
  backlogBytes: number;
}

/** Clock (monotonic) ms to an ISO wall time. */
function isoAt(clock: Clock, atMs: number | undefined): string | null {
  if (atMs === undefined) return null;
  return new Date(clock.wallMs() + (atMs - clock.now())).toISOString();
}

function sideStatus(
  clock: Clock,
  cfg: StationSide,
  c: SideCounters,
  phase: string,
  path: SidePath | undefined,
): SideStatus {
  return {
    host: cfg.host,
    port: cfg.port,
    mount: cfg.mount,
    phase,
    version: c.version ?? cfg.version,
    path: path?.kind ?? null,
    tls: cfg.tls,
    endpoint: path?.endpoint ?? null,
    lastReply: c.lastReply ?? null,
    attempts: c.attempts,
    reconnects: Math.max(0, c.attempts - 1),
    failures: c.failures,
    uptimeSeconds: c.sessionSince !== undefined ? Math.floor((clock.now() - c.sessionSince) / 1000) : null,
    nextRetryAt: isoAt(clock, c.retryAt),
  };
}

export function stationStatus(w: StationWorker, clock: Clock): StationStatus {
  const stats = w.scanner.stats;
  const byType: Record<string, number> = {};
  for (const [t, n] of [...stats.byType].sort((a, b) => a[0] - b[0])) byType[String(t)] = n;
  return {
    id: w.id,
    state: w.state,
    stateSeconds: Math.floor((clock.now() - w.stateSince) / 1000),
    format: w.station.format,
    lastError: w.lastError
      ? {
        side: w.lastError.side,
        kind: w.lastError.kind,
        message: w.lastError.message,
        at: new Date(w.lastError.atMs).toISOString(),
      }
      : null,
    nextRetryAt: isoAt(clock, w.nextRetryAt),
    source: sideStatus(clock, w.station.source, w.source, w.sourcePhase, w.paths?.source),
    destination: sideStatus(
      clock,
      w.station.destination,
      w.destination,
      w.destinationPhase,
      w.paths?.destination,
    ),
    bytesIn: w.bytesIn,
    bytesOut: w.bytesOut,
    frames: stats.frames,
    framesOut: w.framesOut,
    framesByType: byType,
    crcErrors: stats.crcErrors,
    skippedBytes: stats.skippedBytes,
    lastFrameAgeSeconds: w.lastDataWallMs !== undefined
      ? Math.max(0, Math.floor((clock.wallMs() - w.lastDataWallMs) / 1000))
      : null,
    stationId: stats.stationId ?? null,
    ecef: stats.ecef ?? null,
    ggaSent: w.ggaSent,
    backlogBytes: w.destinationBacklog,
  };
}

/** Registers the status section, the API route and the metrics; returns the removal of all three. */
export function reportStations(svc: NtripRelayService, registry: ServiceRegistry, clock: Clock): () => void {
  const list = () => svc.workers.map((w) => stationStatus(w, clock));
  const unStatus = registry.registerStatus(STATUS_SECTION, list);
  const unRoutes = registry.addRoutes((app) => {
    app.get("/api/v1/ntrip", (c) => {
      const caster = registry.status()[CASTER_STATUS_SECTION] ?? null;
      return c.json(redactDeep({
        stations: list(),
        dials: { inFlight: svc.limiter.inFlight, waiting: svc.limiter.waiting, peak: svc.limiter.peak },
        shard: svc.config?.shard ?? null,
        otherShards: svc.config?.otherShards ?? 0,
        caster,
      }));
    });
  });
  const m = registry.metrics;
  const state = m.gauge(
    "wgedge_ntrip_station_state",
    "1 for the state a relay station is in, 0 for the others.",
    ["station", "state"],
  );
  const bytes = m.counter(
    "wgedge_ntrip_station_bytes_total",
    "Bytes a station received from its source (in) and wrote to its destination (out).",
    ["station", "direction"],
  );
  const frames = m.counter("wgedge_ntrip_station_frames_total", "Valid RTCM3 frames received.", ["station"]);
  const crc = m.counter("wgedge_ntrip_station_crc_errors_total", "RTCM3 frames that failed CRC-24Q.", [
    "station",
  ]);
  const reconnects = m.counter(
    "wgedge_ntrip_station_reconnects_total",
    "Connection attempts after the first, per side.",
    ["station", "side"],
  );
  const age = m.gauge(
    "wgedge_ntrip_station_last_frame_age_seconds",
    "Seconds since the station's last valid frame (absent before the first).",
    ["station"],
  );
  const gga = m.counter("wgedge_ntrip_station_gga_sent_total", "GGA sentences sent to the source.", [
    "station",
  ]);
  const dials = m.gauge("wgedge_ntrip_dials_in_flight", "Caster dials in flight (limit 50).");
  const all = [state, bytes, frames, crc, reconnects, age, gga];
  const unCollect = m.addCollector(() => {
    for (const x of all) x.reset();
    for (const w of svc.workers) {
      const station = w.id;
      for (const s of STATION_STATES) state.set({ station, state: s }, w.state === s ? 1 : 0);
      bytes.set({ station, direction: "in" }, w.bytesIn);
      bytes.set({ station, direction: "out" }, w.bytesOut);
      frames.set({ station }, w.scanner.stats.frames);
      crc.set({ station }, w.scanner.stats.crcErrors);
      reconnects.set({ station, side: "source" }, Math.max(0, w.source.attempts - 1));
      reconnects.set({ station, side: "destination" }, Math.max(0, w.destination.attempts - 1));
      if (w.lastDataWallMs !== undefined) age.set({ station }, (clock.wallMs() - w.lastDataWallMs) / 1000);
      gga.set({ station }, w.ggaSent);
    }
    dials.set({}, svc.limiter.inFlight);
  });
  return () => {
    unStatus();
    unRoutes();
    unCollect();
    for (const x of all) x.reset();
  };
}
