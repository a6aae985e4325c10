/**
 * The rp section: the reverse-proxy server (RPS_*) and client (RPC_*). Every `wgedge rps` / `wgedge rpc` flag
 * has its variable, so `wgedge serve` starts either side from the environment alone.
 *
 *   RPS_CONFIG          wg-quick config of the server tunnel (path or inline)        rps -c
 *   RPS_ALLOW_PORTS     public ports clients may map: "10000-20000,8080"             --allow-ports
 *                       (default 1024-65535 minus the ports wgedge itself listens on: ownListenPorts())
 *   RPS_CLIENT_PORTS    per tunnel client: "10.0.0.2=10000-10099,10.0.0.3=8080" (on top of ALLOW_PORTS)
 *   RPS_MAX_MAPPINGS    mappings per client (default 64)                              --max-mappings
 *   RPS_BIND            address public listeners bind (default 0.0.0.0)              --bind
 *   RPS_BUFFER_KB       copy buffer per direction, KiB (default 32)                   -b
 *   RPS_API_PORT        API port on the tunnel addresses (default 80)                 --api-port
 *   RPS_CLIENT_EXPIRY   seconds without heartbeat before a client is expired (60)    --client-expiry
 *   RPS_SWEEP_INTERVAL  seconds between expiry sweeps (30)                            --sweep-interval
 *   RPS_UDP_TIMEOUT     UDP flow idle timeout, seconds (60)                           --udp-timeout
 *   RPS_API_CONNECTIONS API connections per tunnel client at once (8)
 *   RPS_API_RATE        API requests per second per tunnel client, sustained (10)
 *   RPS_API_BURST       API requests a tunnel client may send at once (max(100, RPS_MAX_MAPPINGS + 20))
 *   RPS_API_TIMEOUT     seconds for an API handler and the write of its answer (10)
 *
 *   RPC_CONFIG          wg-quick config of the client tunnel                          rpc -c
 *   RPC_ROUTES          routes "HOST:PORT-REMOTE[/udp]", comma or space separated     -r (repeatable)
 *   RPC_SERVER_API      the server's API inside the tunnel, ADDR or ADDR:PORT         --server-api
 *   RPC_BUFFER_KB       copy buffer per direction, KiB (default 32)                   -b
 *   RPC_HEARTBEAT       heartbeat interval, seconds (default 20)                      --heartbeat
 *   RPC_START_TIMEOUT   seconds to wait for the server at start before failing (30)  --start-timeout
 *   RPC_UDP_TIMEOUT     UDP flow idle timeout, seconds (60)                           --udp-timeout
 */
import type { LoadContext, Setting } from "./context.ts";
import type { Config } from "./mod.ts";
import { ownListenPorts, type OwnPort } from "./listen_ports.ts";
import type { WgConfig } from "../wireguard/config.ts";
import { formatIp, parseIp, parseIpv4, parseIpv6 } from "./ip.ts";
import { parseRoutes, type PortRange, ROUTE_EXPECTED, RouteError, type RpRoute } from "./rp_route.ts";

export type { OwnPort } from "./listen_ports.ts";

export interface RpsConfig {
  tunnel: WgConfig;
  allowPorts: PortRange[];
  /** RPS_ALLOW_PORTS was not set: allowPorts is 1024-65535 minus `ownPorts` (filled in by mod.ts). */
  allowPortsDefault: boolean;
  /** The ports wgedge itself listens on, from the whole Config (what a refusal names). */
  ownPorts: OwnPort[];
  /** RPS_CLIENT_PORTS: tunnel client address (canonical) -> the public ports it may map. */
  clientPorts: Map<string, PortRange[]>;
  maxMappingsPerClient: number;
  publicBind: string;
  bufferKb: number;
  apiPort: number;
  clientExpirySec: number;
  sweepIntervalSec: number;
  udpTimeoutSec: number;
  /** The API's fairness bounds per tunnel client (src/services/rp/server.ts RpApiLimits). */
  apiConnectionsPerClient: number;
  apiRequestsPerSec: number;
  apiRequestBurst: number;
  apiTimeoutSec: number;
}

export interface RpcConfig {
  tunnel: WgConfig;
  routes: RpRoute[];
  serverApi: { host: string; port: number };
  bufferKb: number;
  heartbeatSec: number;
  startTimeoutSec: number;
  udpTimeoutSec: number;
  /** The client's tunnel address of the API's family, sent as client_ip and bound by internal listeners. */
  clientIp?: string;
}

export interface RpSection {
  rps?: RpsConfig;
  rpc?: RpcConfig;
}

/** Parses "10000-20000,8080" into ranges, or returns the expectation text naming the bad part. */
export function parsePortRanges(text: string): PortRange[] | string {
  const expected = `port ranges like "10000-20000,8080" (ports 1..65535, low-high)`;
  const out: PortRange[] = [];
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) return `${expected}; "${part}" is not a port or a low-high range`;
    const from = Number(m[1]), to = Number(m[2] ?? m[1]);
    if (from < 1 || to > 65535) return `${expected}; "${part}" is outside 1..65535`;
    if (from > to) return `${expected}; "${part}" has its low port above its high port`;
    out.push({ from, to });
  }
  return out.length > 0 ? out : expected;
}

/** "1024-8080,8082-65535"; no ranges means every port. */
export function formatPortRanges(ranges: PortRange[] | undefined): string {
  if (!ranges || ranges.length === 0) return "1-65535";
  return ranges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(",");
}

/**
 * The rps port policy as check-config prints it: the allowed ports (saying when they are the default and
 * which of wgedge's own ports it leaves out) and RPS_CLIENT_PORTS per client.
 */
export function describeRpsPorts(
  rps: RpsConfig,
): { allowPorts: string; clientPorts: Record<string, string> } {
  // Consecutive ports of one listener (a RELAY_N port range) as one "first-last" entry, not one per port.
  const groups: { from: number; to: number; what: string }[] = [];
  for (const o of rps.ownPorts) {
    const last = groups.at(-1);
    if (last && last.what === o.what && last.to + 1 === o.port) last.to = o.port;
    else groups.push({ from: o.port, to: o.port, what: o.what });
  }
  const own = groups.map((g) => `${g.from === g.to ? g.from : `${g.from}-${g.to}`} ${g.what}`).join(", ");
  const allowPorts = rps.allowPortsDefault
    ? `${formatPortRanges(rps.allowPorts)} (default: ${DEFAULT_ALLOW_FROM}-65535 without wgedge's own ports${
      own ? `: ${own}` : ""
    }; set RPS_ALLOW_PORTS to change)`
    : formatPortRanges(rps.allowPorts);
  const clientPorts = Object.fromEntries([...rps.clientPorts].map(([ip, r]) => [ip, formatPortRanges(r)]));
  return { allowPorts, clientPorts };
}

/** The lowest port of the default RPS_ALLOW_PORTS: below it are the system's services (and need root). */
export const DEFAULT_ALLOW_FROM = 1024;

/** `ranges` without `ports`. */
export function subtractPorts(ranges: PortRange[], ports: number[]): PortRange[] {
  const cut = [...new Set(ports)].sort((a, b) => a - b);
  const out: PortRange[] = [];
  for (const r of ranges) {
    let from = r.from;
    for (const p of cut) {
      if (p < from || p > r.to) continue;
      if (p > from) out.push({ from, to: p - 1 });
      from = p + 1;
    }
    if (from <= r.to) out.push({ from, to: r.to });
  }
  return out;
}

/** Fills in the default RPS_ALLOW_PORTS once every section is loaded (called by mod.ts). */
export function applyRpsPortDefaults(config: Partial<Config>): void {
  const rps = config.rps;
  if (!rps) return;
  // One entry per port (the first setting that asks for it), sorted: what a refusal names.
  rps.ownPorts = ownListenPorts(config).filter((o, i, all) => all.findIndex((x) => x.port === o.port) === i)
    .sort((a, b) => a.port - b.port);
  if (rps.allowPortsDefault) {
    rps.allowPorts = subtractPorts(
      [{ from: DEFAULT_ALLOW_FROM, to: 65535 }],
      rps.ownPorts.map((o) => o.port),
    );
  }
}

const CLIENT_PORTS_EXPECTED =
  `tunnel client addresses with their ports, like "10.0.0.2=10000-10099,10.0.0.3=8080"` +
  ` (an entry without "=" adds ports to the client before it: "10.0.0.2=8080,9000-9009")`;

/** Parses RPS_CLIENT_PORTS; each bad entry is reported with the variable and the entry. */
function parseClientPorts(ctx: LoadContext, s: Setting): Map<string, PortRange[]> {
  const out = new Map<string, PortRange[]>();
  let current: string | undefined;
  for (const entry of s.value.split(/[\s,;]+/).filter(Boolean)) {
    const eq = entry.indexOf("=");
    let portsText = entry;
    if (eq >= 0) {
      const ipText = entry.slice(0, eq).replace(/^\[|\]$/g, "");
      const ip = parseIp(ipText);
      if (!ip) {
        ctx.error(s, `${CLIENT_PORTS_EXPECTED}; "${ipText}" is not an IP address`, entry);
        current = undefined;
        continue;
      }
      const text = formatIp(ip);
      if (text.startsWith("::ffff:") && text.includes(".")) {
        ctx.error(s, `${CLIENT_PORTS_EXPECTED}; write the IPv4 form of an IPv4-mapped address`, entry);
        current = undefined;
        continue;
      }
      current = text;
      portsText = entry.slice(eq + 1);
    } else if (current === undefined) {
      ctx.error(s, `${CLIENT_PORTS_EXPECTED}; ports without a client address before them`, entry);
      continue;
    }
    const ranges = parsePortRanges(portsText);
    if (typeof ranges === "string") {
      ctx.error(s, `${CLIENT_PORTS_EXPECTED}; ${ranges}`, entry);
      continue;
    }
    out.set(current, [...(out.get(current) ?? []), ...ranges]);
  }
  return out;
}

/**
 * The default API address for a client tunnel (wg-rp's rule): the first IPv4 tunnel address with its last
 * octet set to 1 (same /24), else the first IPv6 address with the host part set to ::1.
 */
export function defaultServerApi(tunnel: WgConfig): string | undefined {
  const v4 = tunnel.iface.addresses.find((a) => !a.address.includes(":"));
  if (v4) {
    const b = parseIpv4(v4.address)!;
    return `${b[0]}.${b[1]}.${b[2]}.1`;
  }
  const v6 = tunnel.iface.addresses.find((a) => a.address.includes(":"));
  if (v6) {
    const b = parseIpv6(v6.address)!;
    b.fill(0, 8);
    b[15] = 1;
    return formatIp(b);
  }
  return undefined;
}

function parseApiAddress(ctx: LoadContext, s: Setting): { host: string; port: number } | undefined {
  const text = s.value.trim();
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const ip = parseIp(bare);
  if (ip) return { host: formatIp(ip), port: 80 };
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  const hostBytes = m ? parseIp(m[1]) : undefined;
  const port = m ? Number(m[2]) : 0;
  if (!hostBytes || port < 1 || port > 65535) {
    ctx.error(
      s,
      "the server's tunnel IP address, optionally with :PORT (e.g. 10.0.0.1 or [fd00::1]:80)",
      s.value,
    );
    return undefined;
  }
  return { host: formatIp(hostBytes), port };
}

/** The rps/rpc commands pass their `-c` as --rps-config/--rpc-config; messages name what the user typed. */
function asDashC(s: Setting | undefined): Setting | undefined {
  return s && s.from === "flag" ? { ...s, source: "-c/--config" } : s;
}

/** Internal flag names (unique across sections) -> what the rps/rpc user typed. */
const USER_FLAGS: Record<string, string> = {
  "--rps-buffer": "-b/--buffer",
  "--rpc-buffer": "-b/--buffer",
  "--rps-udp-timeout": "--udp-timeout",
  "--rpc-udp-timeout": "--udp-timeout",
};

function intSetting(
  ctx: LoadContext,
  name: string,
  flag: string,
  dflt: number,
  min: number,
  max: number,
): number {
  let s = ctx.setting(name, flag);
  if (s && USER_FLAGS[s.source]) s = { ...s, source: USER_FLAGS[s.source] };
  if (!s) return dflt;
  return ctx.int(s, min, max) ?? dflt;
}

async function loadRps(ctx: LoadContext): Promise<RpsConfig | undefined> {
  const cfgSetting = asDashC(ctx.setting("RPS_CONFIG", "rps-config"));
  const names = [
    "RPS_ALLOW_PORTS",
    "RPS_CLIENT_PORTS",
    "RPS_MAX_MAPPINGS",
    "RPS_BIND",
    "RPS_BUFFER_KB",
    "RPS_API_PORT",
  ];
  if (!cfgSetting) {
    for (const n of names) {
      const s = ctx.envSetting(n);
      if (s) ctx.warn(s, `${n} is set but RPS_CONFIG is not; the rp server is not started`);
    }
    return undefined;
  }
  const tunnel = await ctx.wgConfig(cfgSetting);
  let allowPorts: PortRange[] = [];
  const ap = ctx.setting("RPS_ALLOW_PORTS", "allow-ports");
  if (ap) {
    const r = parsePortRanges(ap.value);
    if (typeof r === "string") ctx.error(ap, r, ap.value);
    else allowPorts = r;
  }
  const cp = ctx.setting("RPS_CLIENT_PORTS", "client-ports");
  const clientPorts = cp ? parseClientPorts(ctx, cp) : new Map<string, PortRange[]>();
  const bindSetting = ctx.setting("RPS_BIND", "bind");
  let publicBind = "0.0.0.0";
  if (bindSetting) {
    const ip = parseIp(bindSetting.value.trim().replace(/^\[|\]$/g, ""));
    if (!ip) {
      ctx.error(
        bindSetting,
        "an IP address to bind public listeners on (0.0.0.0, ::, 192.0.2.1)",
        bindSetting.value,
      );
    } else publicBind = formatIp(ip);
  }
  const maxMappings = intSetting(ctx, "RPS_MAX_MAPPINGS", "max-mappings", 64, 1, 65535);
  const cfg: Omit<RpsConfig, "tunnel"> = {
    allowPorts,
    allowPortsDefault: !ap,
    ownPorts: [],
    clientPorts,
    maxMappingsPerClient: maxMappings,
    publicBind,
    bufferKb: intSetting(ctx, "RPS_BUFFER_KB", "rps-buffer", 32, 1, 16384),
    apiPort: intSetting(ctx, "RPS_API_PORT", "api-port", 80, 1, 65535),
    clientExpirySec: intSetting(ctx, "RPS_CLIENT_EXPIRY", "client-expiry", 60, 1, 86400),
    sweepIntervalSec: intSetting(ctx, "RPS_SWEEP_INTERVAL", "sweep-interval", 30, 1, 86400),
    udpTimeoutSec: intSetting(ctx, "RPS_UDP_TIMEOUT", "rps-udp-timeout", 60, 1, 86400),
    apiConnectionsPerClient: intSetting(ctx, "RPS_API_CONNECTIONS", "rps-api-connections", 8, 1, 256),
    apiRequestsPerSec: intSetting(ctx, "RPS_API_RATE", "rps-api-rate", 10, 1, 100000),
    // rpc registers every route at once at start: the burst covers a client's full share of mappings.
    apiRequestBurst: intSetting(
      ctx,
      "RPS_API_BURST",
      "rps-api-burst",
      Math.max(100, maxMappings + 20),
      1,
      100000,
    ),
    apiTimeoutSec: intSetting(ctx, "RPS_API_TIMEOUT", "rps-api-timeout", 10, 1, 3600),
  };
  return tunnel ? { tunnel, ...cfg } : undefined;
}

async function loadRpc(ctx: LoadContext): Promise<RpcConfig | undefined> {
  const cfgSetting = asDashC(ctx.setting("RPC_CONFIG", "rpc-config"));
  const flagRoutes = ctx.flagValues("route");
  const envRoutes = ctx.envSetting("RPC_ROUTES");
  if (!cfgSetting) {
    if (envRoutes) {
      ctx.warn(envRoutes, "RPC_ROUTES is set but RPC_CONFIG is not; the rp client is not started");
    }
    return undefined;
  }
  const tunnel = await ctx.wgConfig(cfgSetting);
  const routes: RpRoute[] = [];
  const routeTexts: [string, Setting | undefined][] = flagRoutes.length > 0
    ? flagRoutes.map((r) => [r, undefined])
    : (envRoutes?.value.split(/[\s,]+/).filter(Boolean) ?? []).map((r) => [r, envRoutes]);
  for (const [text, setting] of routeTexts) {
    try {
      routes.push(...parseRoutes(text));
    } catch (e) {
      const where = setting ??
        { name: "RPC_ROUTES", value: text, from: "flag", source: "-r/--route" } as Setting;
      if (!(e instanceof RouteError)) throw e;
      ctx.error(where, `${ROUTE_EXPECTED} (${e.problem})`, text);
    }
  }
  if (routeTexts.length === 0) {
    ctx.errorAt({
      source: cfgSetting.source,
      line: cfgSetting.line,
      expected: "at least one route (-r HOST:PORT-REMOTE or RPC_ROUTES) for the rp client",
    });
  }
  const seen = new Set<string>();
  for (const r of routes) {
    const key = `${r.protocol}/${r.remotePort}`;
    if (seen.has(key)) {
      ctx.errorAt({
        source: "RPC_ROUTES/-r",
        expected: `each remote port once per protocol (${key} repeats)`,
      });
    }
    seen.add(key);
  }
  const apiSetting = ctx.setting("RPC_SERVER_API", "server-api");
  let serverApi: { host: string; port: number } | undefined;
  if (apiSetting) serverApi = parseApiAddress(ctx, apiSetting);
  else if (tunnel) {
    const host = defaultServerApi(tunnel);
    if (host) serverApi = { host, port: 80 };
    else {
      ctx.errorAt({
        source: tunnel.source,
        expected: "an Address in [Interface] (or --server-api / RPC_SERVER_API) to find the server's API",
      });
    }
  }
  const cfg = {
    bufferKb: intSetting(ctx, "RPC_BUFFER_KB", "rpc-buffer", 32, 1, 16384),
    heartbeatSec: intSetting(ctx, "RPC_HEARTBEAT", "heartbeat", 20, 1, 3600),
    startTimeoutSec: intSetting(ctx, "RPC_START_TIMEOUT", "start-timeout", 30, 1, 86400),
    udpTimeoutSec: intSetting(ctx, "RPC_UDP_TIMEOUT", "rpc-udp-timeout", 60, 1, 86400),
  };
  if (!tunnel || !serverApi) return undefined;
  // The server identifies us by the source address of the API connection: our address of the API's family.
  const v6 = serverApi.host.includes(":");
  const clientIp = tunnel.iface.addresses.find((a) => a.address.includes(":") === v6)?.address;
  return { tunnel, routes, serverApi, clientIp, ...cfg };
}

/** The config-loader section (src/config/mod.ts). */
export async function loadRpSection(ctx: LoadContext): Promise<RpSection> {
  const out: RpSection = {};
  const rps = await loadRps(ctx);
  if (rps) out.rps = rps;
  const rpc = await loadRpc(ctx);
  if (rpc) out.rpc = rpc;
  return out;
}
