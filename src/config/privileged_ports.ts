/**
 * Ports below 1024 need CAP_NET_BIND_SERVICE on Linux (or root). The shipped systemd unit
 * (config/wgedge.service) runs wgedge without any capability, so a configured listen port < 1024 would only
 * fail at bind time; this turns it into a warning at load time (`check-config` and `serve` print it) that says
 * which setting asks for it and how to grant the capability.
 */
import type { Config } from "./mod.ts";
import { ownListenPorts } from "./listen_ports.ts";

/** Linux's default net.ipv4.ip_unprivileged_port_start. */
export const FIRST_UNPRIVILEGED_PORT = 1024;

const HOW = "needs CAP_NET_BIND_SERVICE: under systemd add AmbientCapabilities=CAP_NET_BIND_SERVICE and " +
  "CapabilityBoundingSet=CAP_NET_BIND_SERVICE in a drop-in (`systemctl edit wgedge`, see config/wgedge.service)";

/** One warning per setting that makes wgedge listen on a host port < 1024 (the first such port of it). */
export function privilegedPortWarnings(config: Partial<Config>): string[] {
  const found: [string, number][] = [];
  for (const o of ownListenPorts(config)) {
    if (o.port < FIRST_UNPRIVILEGED_PORT && !found.some(([s]) => s === o.setting)) {
      found.push([o.setting, o.port]);
    }
  }
  const allowLow = config.rps?.allowPorts.find((r) => r.from < FIRST_UNPRIVILEGED_PORT);
  if (allowLow) found.push(["RPS_ALLOW_PORTS", allowLow.from]);
  return found.map(([what, port]) =>
    `${what}: listens on port ${port} (< ${FIRST_UNPRIVILEGED_PORT}), which ${HOW}`
  );
}
