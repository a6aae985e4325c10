/**
 * What the NTRIP caster shows the operator: the `ntrip_caster` status section (per mount: source, clients,
 * bytes, frames per type, station position, drops; refusals by reason) and the `wgedge_ntrip_caster_*`
 * Prometheus series derived from it. Nothing here carries a password.
 */
import type { NtripVersion } from "../../wire/ntrip_caster.ts";
import type { Ecef } from "../../wire/rtcm3.ts";
import type { ServiceRegistry } from "../registry.ts";
import { redactDeep } from "../../util/secret.ts";

export interface CasterSourceStatus {
  address: string;
  agent?: string;
  version: NtripVersion;
  connectedAt: string;
  bytesIn: number;
  frames: number;
}

export interface CasterClientStatus {
  address: string;
  agent?: string;
  version: NtripVersion;
  user?: string;
  connectedAt: string;
  bytesOut: number;
  backlogBytes: number;
}

export interface CasterMountStatus {
  mount: string;
  /** No users configured: anyone may pull. */
  open: boolean;
  source: CasterSourceStatus | null;
  clients: CasterClientStatus[];
  bytesIn: number;
  bytesOut: number;
  frames: number;
  framesByType: Record<string, number>;
  crcErrors: number;
  skippedBytes: number;
  lastFrameAgeMs?: number;
  stationId?: number;
  ecef?: Ecef;
  sourcesAccepted: number;
  /** Sources dropped after sourceIdleTimeoutMs of silence. */
  sourcesDroppedIdle: number;
  clientsAccepted: number;
  /** Clients dropped because their backlog passed the bound. */
  clientsDroppedSlow: number;
}

export interface CasterStatus {
  listen: string;
  mounts: CasterMountStatus[];
  rejected: Record<RejectReason, number>;
}

/** Named without "password"/"token", which the secret rule (src/util/secret.ts) would hide as secrets. */
export type RejectReason =
  | "bad_request"
  | "bad_source_login"
  | "mount_taken"
  | "unknown_mount"
  | "bad_client_login"
  | "mount_full"
  | "head_timeout"
  | "too_many_connections";

/** Registers the status section and the metrics, both read from `status`; returns the removal. */
export function registerCasterReport(registry: ServiceRegistry, status: () => CasterStatus): () => void {
  const removeStatus = registry.registerStatus("ntrip_caster", status);
  // `GET /api/v1/ntrip` for a caster alone; with relay stations in the process, their report answers it
  // (stations and this caster together).
  const removeRoutes = registry.addRoutes((app) => {
    app.get("/api/v1/ntrip", async (c, next) => {
      if (registry.hasSection("ntrip_stations")) return await next();
      return c.json(redactDeep({ stations: [], caster: status() }));
    });
  });
  const m = registry.metrics;
  const L = ["mount"];
  const clients = m.gauge("wgedge_ntrip_caster_clients", "Clients connected to the mount.", L);
  const connected = m.gauge(
    "wgedge_ntrip_caster_source_connected",
    "1 while a source pushes to the mount, else 0.",
    L,
  );
  const bytes = m.counter(
    "wgedge_ntrip_caster_bytes_total",
    "Bytes received from sources (in) and sent to clients (out) as RTCM3 data.",
    [...L, "direction"],
  );
  const frames = m.counter("wgedge_ntrip_caster_frames_total", "CRC-valid RTCM3 frames from sources.", L);
  const slow = m.counter(
    "wgedge_ntrip_caster_clients_dropped_total",
    "Clients dropped because they could not keep up (backlog over its bound).",
    L,
  );
  const idle = m.counter(
    "wgedge_ntrip_caster_sources_dropped_total",
    "Sources dropped after sending nothing for the idle timeout.",
    L,
  );
  const rejected = m.counter(
    "wgedge_ntrip_caster_rejected_total",
    "Requests refused, by reason.",
    ["reason"],
  );
  const all = [clients, connected, bytes, frames, slow, idle, rejected];
  const removeCollector = m.addCollector(() => {
    for (const x of all) x.reset();
    const s = status();
    for (const mount of s.mounts) {
      const l = { mount: mount.mount };
      clients.set(l, mount.clients.length);
      connected.set(l, mount.source ? 1 : 0);
      bytes.set({ ...l, direction: "in" }, mount.bytesIn);
      bytes.set({ ...l, direction: "out" }, mount.bytesOut);
      frames.set(l, mount.frames);
      slow.set(l, mount.clientsDroppedSlow);
      idle.set(l, mount.sourcesDroppedIdle);
    }
    for (const [reason, n] of Object.entries(s.rejected)) rejected.set({ reason }, n);
  });
  return () => {
    removeStatus();
    removeRoutes();
    removeCollector();
  };
}
