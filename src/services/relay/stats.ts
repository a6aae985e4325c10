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
  lastHealthCheckMs?: number;
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
