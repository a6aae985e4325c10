/** Live counters of one relay; plain numbers updated on the hot path and read by status/metrics collectors. */
export type RelayHealth = "up" | "down" | "unknown";
export type RelayState = "starting" | "listening" | "error" | "stopped";

export interface RelayStats {
  state: RelayState;
  health: RelayHealth;
  /** TCP connections (or UDP flows) currently open. */
  active: number;
  /** TCP connections accepted (or UDP flows created) since start. */
  total: number;
  /** Dials to the target that failed (refused, timeout, resolve, proxy). */
  failed: number;
  /** Bytes from clients to the target. */
  bytesToTarget: number;
  /** Bytes from the target to clients. */
  bytesToClient: number;
  /** UDP only. */
  packetsToTarget: number;
  packetsToClient: number;
  flowsEvicted: number;
  flowsExpired: number;
  /** Datagrams dropped (from an unexpected source, send failures, queue full while a flow resolves). */
  packetsDropped: number;
  healthChecks: number;
  healthFailures: number;
  lastError?: string;
  /** Wall-clock ms of lastError: with lastSuccessMs it tells a past error from a current one. */
  lastErrorMs?: number;
  /** Wall-clock ms of the last dial (TCP) or flow (UDP) to the target that succeeded. */
  lastSuccessMs?: number;
  lastHealthCheckMs?: number;
}

/** Records an error with when it happened (the dashboard shows its age, and drops it from problems after a success). */
export function noteError(stats: RelayStats, message: string, wallMs: number): void {
  stats.lastError = message;
  stats.lastErrorMs = wallMs;
}

export function newRelayStats(): RelayStats {
  return {
    state: "starting",
    health: "unknown",
    active: 0,
    total: 0,
    failed: 0,
    bytesToTarget: 0,
    bytesToClient: 0,
    packetsToTarget: 0,
    packetsToClient: 0,
    flowsEvicted: 0,
    flowsExpired: 0,
    packetsDropped: 0,
    healthChecks: 0,
    healthFailures: 0,
  };
}
