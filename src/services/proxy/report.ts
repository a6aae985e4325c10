/**
 * What a proxy reports: live counters (plain numbers bumped on the hot path), its status row and the
 * `wgedge_proxy_*` metrics, copied from the counters just before each scrape. Never a password: the status
 * says whether auth is required and which user, nothing more.
 */
import type { ProxySpec } from "../../config/proxy.ts";
import type { PipeCounters } from "../../net/pipe.ts";
import type { ServiceRegistry } from "../registry.ts";

/** Why a UDP datagram was not relayed (RFC 1928 §7 and the association's own rules). */
export type UdpDropReason =
  | "fragment"
  | "foreign_source"
  | "malformed"
  | "unresolved"
  | "unsolicited"
  | "send_failed";
export const UDP_DROP_REASONS: readonly UdpDropReason[] = [
  "fragment",
  "foreign_source",
  "malformed",
  "unresolved",
  "unsolicited",
  "send_failed",
];

export interface ProxyStats {
  state: "listening" | "error" | "stopped";
  /** Client connections open now (TCP control connections of UDP associations included). */
  open: number;
  /** Client connections accepted since start. */
  total: number;
  /** Connections closed at accept because maxConnections were open. */
  refused: number;
  /** Missing or wrong user/password (named so that admin redaction, which hides "auth" fields, keeps it). */
  loginFailures: number;
  /** Malformed or unsupported requests (answered with the protocol's error reply). */
  badRequests: number;
  /** Handshakes not finished within handshakeTimeoutMs. */
  handshakeTimeouts: number;
  /** Dials through the tunnel that failed (resolve, refused, unreachable, timeout). */
  dialFailures: number;
  /** TCP bytes client -> target (aToB) and target -> client (bToA); UDP payloads are in the udp counters. */
  bytes: PipeCounters;
  udpAssociations: number;
  udpDatagramsToTarget: number;
  udpDatagramsToClient: number;
  udpBytesToTarget: number;
  udpBytesToClient: number;
  udpDropped: Record<UdpDropReason, number>;
  lastError?: string;
  /** Wall-clock ms of lastError (status shows it as lastErrorAt). */
  lastErrorMs?: number;
  /** Wall-clock ms of the last dial (or UDP datagram) to a target that succeeded: an older error is past. */
  lastSuccessMs?: number;
}

/** Records an error with when it happened (the dashboard shows its age, and drops it from problems after a success). */
export function noteProxyError(stats: ProxyStats, message: string, wallMs: number): void {
  stats.lastError = message;
  stats.lastErrorMs = wallMs;
}

export function newProxyStats(): ProxyStats {
  return {
    state: "listening",
    open: 0,
    total: 0,
    refused: 0,
    loginFailures: 0,
    badRequests: 0,
    handshakeTimeouts: 0,
    dialFailures: 0,
    bytes: { aToB: 0, bToA: 0 },
    udpAssociations: 0,
    udpDatagramsToTarget: 0,
    udpDatagramsToClient: 0,
    udpBytesToTarget: 0,
    udpBytesToClient: 0,
    udpDropped: Object.fromEntries(UDP_DROP_REASONS.map((r) => [r, 0])) as Record<UdpDropReason, number>,
  };
}

export interface ProxyStatusRow extends Omit<ProxyStats, "bytes" | "lastErrorMs" | "lastSuccessMs"> {
  id: string;
  protocol: string;
  listen: string;
  via: string;
  userRequired: boolean;
  user?: string;
  maxConnections: number;
  bytesToTarget: number;
  bytesToClient: number;
  /** When lastError happened (ISO, as relays and ntrip give it). */
  lastErrorAt?: string;
  /** When a dial through the proxy last succeeded (ISO). */
  lastSuccessAt?: string;
}

export function statusRow(spec: ProxySpec, stats: ProxyStats): ProxyStatusRow {
  const { bytes, lastErrorMs, lastSuccessMs, ...rest } = stats;
  const row: ProxyStatusRow = {
    id: spec.id,
    protocol: spec.protocol,
    listen: spec.listen,
    via: spec.via,
    userRequired: spec.user !== undefined,
    user: spec.user,
    maxConnections: spec.maxConnections,
    ...rest,
    bytesToTarget: bytes.aToB,
    bytesToClient: bytes.bToA,
    udpDropped: { ...stats.udpDropped },
  };
  if (rest.lastError && lastErrorMs !== undefined) row.lastErrorAt = new Date(lastErrorMs).toISOString();
  if (lastSuccessMs !== undefined) row.lastSuccessAt = new Date(lastSuccessMs).toISOString();
  return row;
}

/** Registers the `proxies` status section and the metrics over `rows`; returns the unregistration. */
export function registerProxyReport(registry: ServiceRegistry, rows: () => ProxyStatusRow[]): () => void {
  const unStatus = registry.registerStatus("proxies", rows);
  const m = registry.metrics;
  const L = ["proxy", "protocol", "listen", "via"];
  const up = m.gauge("wgedge_proxy_up", "1 while the proxy is listening, 0 when it failed to start.", L);
  const open = m.gauge("wgedge_proxy_connections_open", "Client connections open now.", L);
  const total = m.counter("wgedge_proxy_connections_total", "Client connections accepted.", L);
  const refused = m.counter(
    "wgedge_proxy_refused_total",
    "Client connections refused or requests rejected, by reason (limit, auth, bad_request, handshake_timeout).",
    [...L, "reason"],
  );
  const dialFailures = m.counter(
    "wgedge_proxy_dial_failures_total",
    "Dials through the tunnel that failed (resolve, refused, unreachable, timeout).",
    L,
  );
  const bytes = m.counter("wgedge_proxy_bytes_total", "TCP payload bytes relayed, by direction.", [
    ...L,
    "direction",
  ]);
  const udpAssoc = m.gauge("wgedge_proxy_udp_associations", "SOCKS5 UDP associations open now.", L);
  const udpDatagrams = m.counter("wgedge_proxy_udp_datagrams_total", "UDP datagrams relayed, by direction.", [
    ...L,
    "direction",
  ]);
  const udpBytes = m.counter("wgedge_proxy_udp_bytes_total", "UDP payload bytes relayed, by direction.", [
    ...L,
    "direction",
  ]);
  const udpDropped = m.counter("wgedge_proxy_udp_dropped_total", "UDP datagrams dropped, by reason.", [
    ...L,
    "reason",
  ]);
  const all = [up, open, total, refused, dialFailures, bytes, udpAssoc, udpDatagrams, udpBytes, udpDropped];
  const unCollect = m.addCollector(() => {
    for (const x of all) x.reset();
    for (const r of rows()) {
      const l = { proxy: r.id, protocol: r.protocol, listen: r.listen, via: r.via };
      up.set(l, r.state === "listening" ? 1 : 0);
      open.set(l, r.open);
      total.set(l, r.total);
      refused.set({ ...l, reason: "limit" }, r.refused);
      refused.set({ ...l, reason: "auth" }, r.loginFailures);
      refused.set({ ...l, reason: "bad_request" }, r.badRequests);
      refused.set({ ...l, reason: "handshake_timeout" }, r.handshakeTimeouts);
      dialFailures.set(l, r.dialFailures);
      bytes.set({ ...l, direction: "to_target" }, r.bytesToTarget);
      bytes.set({ ...l, direction: "to_client" }, r.bytesToClient);
      if (r.protocol !== "socks5") continue;
      udpAssoc.set(l, r.udpAssociations);
      udpDatagrams.set({ ...l, direction: "to_target" }, r.udpDatagramsToTarget);
      udpDatagrams.set({ ...l, direction: "to_client" }, r.udpDatagramsToClient);
      udpBytes.set({ ...l, direction: "to_target" }, r.udpBytesToTarget);
      udpBytes.set({ ...l, direction: "to_client" }, r.udpBytesToClient);
      for (const reason of UDP_DROP_REASONS) udpDropped.set({ ...l, reason }, r.udpDropped[reason]);
    }
  });
  return () => {
    unStatus();
    unCollect();
    for (const x of all) x.reset();
  };
}
