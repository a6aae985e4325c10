/**
 * A port-range relay (`RELAY_N="50000-50099;60000-60099;host;TCP"`): one TcpRelay/UdpRelay per port, each
 * mapping in_port+i to out_port+i, shown as ONE relay in status and metrics (counters summed), started and
 * stopped as a unit so a reload restarts the whole range or none of it. If any port cannot bind, the ports
 * already bound are released and the range fails as a whole.
 */
import type { RelaySpec } from "../../config/relay.ts";
import { relayPortsText } from "../../config/relay.ts";
import { newRelayStats, type RelayStats } from "./stats.ts";
import type { TcpRelay } from "./tcp.ts";
import type { UdpRelay } from "./udp.ts";

export type PortRelay = TcpRelay | UdpRelay;

/** The single-port spec of port `i` of a range. */
export function memberSpec(spec: RelaySpec, i: number): RelaySpec {
  const { portCount: _, ...single } = spec;
  return { ...single, inPort: spec.inPort + i, outPort: spec.outPort + i };
}

const STATE_ORDER: RelayStats["state"][] = ["error", "starting", "stopped", "listening"];

export class RangeRelay {
  readonly members: PortRelay[];
  /** What the HealthChecker writes (it probes the first target port): merged into `stats`. */
  readonly health: RelayStats = newRelayStats();

  constructor(readonly spec: RelaySpec, make: (single: RelaySpec) => PortRelay) {
    this.members = Array.from({ length: spec.portCount ?? 1 }, (_, i) => make(memberSpec(spec, i)));
  }

  /** `0.0.0.0:50000-50099` (`[::]:...` for IPv6). */
  get listenAddr(): string {
    const first = this.members[0].listenAddr;
    return `${first.slice(0, first.lastIndexOf(":"))}:${relayPortsText(this.spec)}`;
  }

  /** The members' counters summed; the worst state; the health check's result. */
  get stats(): RelayStats {
    const s = newRelayStats();
    const sum = [
      "active",
      "total",
      "failed",
      "bytesToTarget",
      "bytesToClient",
      "packetsToTarget",
      "packetsToClient",
      "flowsEvicted",
      "flowsExpired",
      "packetsDropped",
    ] as const;
    s.state = "listening";
    for (const m of this.members) {
      const ms = m.stats;
      for (const k of sum) s[k] += ms[k];
      if (STATE_ORDER.indexOf(ms.state) < STATE_ORDER.indexOf(s.state)) s.state = ms.state;
      // The most recent error and success of any port (a range is one relay to its operator).
      if (ms.lastError && !((s.lastErrorMs ?? -Infinity) > (ms.lastErrorMs ?? -Infinity))) {
        s.lastError = ms.lastError;
        s.lastErrorMs = ms.lastErrorMs;
      }
      if (ms.lastSuccessMs !== undefined && !(ms.lastSuccessMs <= (s.lastSuccessMs ?? -Infinity))) {
        s.lastSuccessMs = ms.lastSuccessMs;
      }
    }
    s.health = this.health.health;
    s.healthChecks = this.health.healthChecks;
    s.healthFailures = this.health.healthFailures;
    s.lastHealthCheckMs = this.health.lastHealthCheckMs;
    if (s.lastError === undefined && this.health.lastError !== undefined) {
      s.lastError = this.health.lastError;
      s.lastErrorMs = this.health.lastErrorMs;
    }
    return s;
  }

  /** UDP: datagrams dropped by every member (TCP members count none). */
  packetsDropped(): number {
    let n = 0;
    for (const m of this.members) n += "packetsDropped" in m ? m.packetsDropped() : 0;
    return n;
  }

  /** Binds every port; throws the first port's error (the caller then stop()s the whole range). */
  start(): void {
    for (const m of this.members) m.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
  }
}
