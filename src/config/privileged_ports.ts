/**
 * Ports below 1024 need CAP_NET_BIND_SERVICE on Linux (or root). The shipped systemd unit
 * (config/wgedge.service) runs wgedge without any capability, so a configured listen port < 1024 would only
 * fail at bind time; this turns it into a warning at load time (`check-config` and `serve` print it) that says
 * which setting asks for it and how to grant the capability.
 */
import type { Config } from "./mod.ts";
import { relayPorts } from "./relay.ts";

/** Linux's default net.ipv4.ip_unprivileged_port_start. */
export const FIRST_UNPRIVILEGED_PORT = 1024;

const HOW = "needs CAP_NET_BIND_SERVICE: under systemd add AmbientCapabilities=CAP_NET_BIND_SERVICE and " +
  "CapabilityBoundingSet=CAP_NET_BIND_SERVICE in a drop-in (`systemctl edit wgedge`, see config/wgedge.service)";

function portOf(hostPort: string): number | undefined {
  const m = /:(\d{1,5})$/.exec(hostPort);
  return m ? Number(m[1]) : undefined;
}

/** One warning per setting that makes wgedge listen on a host port < 1024. */
export function privilegedPortWarnings(config: Partial<Config>): string[] {
  const found: [string, number][] = [];
  const low = (p: number | undefined) => p !== undefined && p > 0 && p < FIRST_UNPRIVILEGED_PORT;
  const admin = config.admin && portOf(config.admin.listen);
  if (low(admin)) found.push(["WGEDGE_ADMIN_LISTEN", admin!]);
  if (low(config.tunnel?.iface.listenPort)) {
    found.push(["WG_CONFIG ListenPort", config.tunnel!.iface.listenPort!]);
  }
  for (const [name, t] of config.tunnels ?? []) {
    if (low(t.iface.listenPort)) {
      found.push([`WG_TUNNEL_${name.toUpperCase()} ListenPort`, t.iface.listenPort!]);
    }
  }
  for (const r of config.relay?.relays ?? []) {
    const p = relayPorts(r).find(low);
    if (p !== undefined) found.push([r.id, p]);
  }
  const rps = config.rps;
  if (rps && low(rps.tunnel.iface.listenPort)) {
    found.push(["RPS_CONFIG ListenPort", rps.tunnel.iface.listenPort!]);
  }
  const allowLow = rps?.allowPorts.find((r) => r.from < FIRST_UNPRIVILEGED_PORT);
  if (allowLow) found.push(["RPS_ALLOW_PORTS", allowLow.from]);
  if (low(config.mwgp?.server?.listen.port)) {
    found.push(["MWGP_SERVER_CONFIG listen", config.mwgp!.server!.listen.port]);
  }
  if (low(config.mwgp?.client?.listen.port)) {
    found.push(["MWGP_CLIENT_CONFIG listen", config.mwgp!.client!.listen.port]);
  }
  if (low(config.ntripCaster?.port)) found.push(["NTRIP_CASTER_LISTEN", config.ntripCaster!.port]);
  for (const p of config.proxies ?? []) if (low(p.port)) found.push([p.id, p.port]);
  return found.map(([what, port]) =>
    `${what}: listens on port ${port} (< ${FIRST_UNPRIVILEGED_PORT}), which ${HOW}`
  );
}
