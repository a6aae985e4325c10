/**
 * Every host port a configuration makes wgedge listen on (TCP or UDP, any address: admin, relays, WireGuard
 * ListenPorts, mwgp, the NTRIP caster, SOCKS5/HTTP proxies), with the setting that asks for it. Two consumers: the default RPS_ALLOW_PORTS leaves these ports out (rp.ts), and a port < 1024 is
 * warned about because it needs CAP_NET_BIND_SERVICE (privileged_ports.ts).
 */
import type { Config } from "./mod.ts";
import { relayPorts } from "./relay.ts";

export interface OwnPort {
  port: number;
  /** What listens there, for people: "admin API", "relay RELAY_1", "WireGuard tunnel main". */
  what: string;
  /** The setting that asks for it: "WGEDGE_ADMIN_LISTEN", "RELAY_1", "WG_CONFIG ListenPort". */
  setting: string;
}

/** In the order of the settings (admin, relays, tunnels, rps/rpc tunnels, mwgp, NTRIP caster, proxies). */
export function ownListenPorts(config: Partial<Config>): OwnPort[] {
  const out: OwnPort[] = [];
  const add = (port: number | undefined, what: string, setting: string) => {
    if (port !== undefined && port > 0) out.push({ port, what, setting });
  };
  if (config.admin) add(config.admin.port, "admin API", "WGEDGE_ADMIN_LISTEN");
  for (const r of config.relay?.relays ?? []) {
    for (const p of relayPorts(r)) add(p, `relay ${r.id}`, r.id);
  }
  add(config.tunnel?.iface.listenPort, "WireGuard tunnel main", "WG_CONFIG ListenPort");
  for (const [name, t] of config.tunnels ?? []) {
    add(t.iface.listenPort, `WireGuard tunnel ${name}`, `WG_TUNNEL_${name.toUpperCase()} ListenPort`);
  }
  add(config.rps?.tunnel.iface.listenPort, "WireGuard tunnel of rps", "RPS_CONFIG ListenPort");
  add(config.rpc?.tunnel.iface.listenPort, "WireGuard tunnel of rpc", "RPC_CONFIG ListenPort");
  add(config.mwgp?.server?.listen.port, "mwgp server", "MWGP_SERVER_CONFIG listen");
  add(config.mwgp?.client?.listen.port, "mwgp client", "MWGP_CLIENT_CONFIG listen");
  add(config.ntripCaster?.port, "NTRIP caster", "NTRIP_CASTER_LISTEN");
  for (const p of config.proxies ?? []) {
    add(p.port, `${p.protocol === "http" ? "HTTP" : "SOCKS5"} proxy ${p.id}`, p.id);
  }
  return out;
}
