/**
 * The rp option models the config loader produces and the rp services consume: a client route
 * (`HOST:PORT-REMOTE[/tcp|/udp]`, or a port range) with its parser, and the server's allowed public port ranges. They live in
 * config because config owns option types and may not import from the service layer; the rp client and
 * server import them from here.
 */
import { parsePortSpan } from "./port_range.ts";

export type RpProtocol = "tcp" | "udp";

/** Inclusive public port range. */
export interface PortRange {
  from: number;
  to: number;
}

export interface RpRoute {
  /** The route as written, for messages. */
  spec: string;
  localHost: string;
  localPort: number;
  remotePort: number;
  protocol: RpProtocol;
}

export const ROUTE_EXPECTED =
  "HOST:PORT-REMOTE_PORT[/tcp|/udp] or HOST:FIRST-LAST-REMOTE_FIRST-REMOTE_LAST[/tcp|/udp], " +
  "e.g. localhost:8080-8080, [::1]:53-5353/udp or localhost:8000-8009-18000-18009";

/** A route that does not parse: `problem` says what is wrong, the message also what was expected. */
export class RouteError extends Error {
  constructor(readonly spec: string, readonly problem: string) {
    super(`route "${spec}": ${problem}; expected ${ROUTE_EXPECTED}`);
  }
}

function parsePort(text: string, what: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new RouteError(spec, `${what} "${text}" is not a port 1..65535`);
  }
  return Number(text);
}

/**
 * Parses `HOST:PORT-REMOTE[/tcp|/udp]`, or a range `HOST:FIRST-LAST-RFIRST-RLAST` that maps local port
 * FIRST+i to public port RFIRST+i (equal lengths, at most MAX_PORT_RANGE ports): one route per port, since
 * the rps API maps one public port per request. The host ends at the LAST `:` (a host name has none; IPv6
 * is bracketed, `[::1]:8080-8080`), so host names with hyphens work.
 */
export function parseRoutes(spec: string): RpRoute[] {
  let text = spec.trim();
  let protocol: RpProtocol = "tcp";
  const slash = text.lastIndexOf("/");
  if (slash >= 0) {
    const p = text.slice(slash + 1).toLowerCase();
    if (p !== "tcp" && p !== "udp") throw new RouteError(spec, `unknown protocol "${p}"`);
    protocol = p;
    text = text.slice(0, slash);
  }
  let host: string, portsText: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:([^:]*)$/.exec(text);
  if (v6) [host, portsText] = [v6[1], v6[2]];
  else {
    const colon = text.lastIndexOf(":");
    if (colon <= 0) throw new RouteError(spec, `"${text}" is not HOST:PORT-REMOTE_PORT`);
    [host, portsText] = [text.slice(0, colon), text.slice(colon + 1)];
    if (!/^[A-Za-z0-9.\-_]+$/.test(host)) throw new RouteError(spec, `invalid host "${host}"`);
  }
  const ports = portsText.split("-");
  if (ports.length === 2) {
    const localPort = parsePort(ports[0], "local port", spec);
    const remotePort = parsePort(ports[1], "remote port", spec);
    return [{ spec, localHost: host, localPort, remotePort, protocol }];
  }
  if (ports.length !== 4) {
    throw new RouteError(
      spec,
      `"${portsText}" is neither PORT-REMOTE_PORT nor FIRST-LAST-REMOTE_FIRST-REMOTE_LAST`,
    );
  }
  const span = (a: string, b: string, what: string) => {
    const r = parsePortSpan(`${a}-${b}`);
    if ("problem" in r) throw new RouteError(spec, `${what} "${a}-${b}": expected ${r.problem}`);
    return r;
  };
  const local = span(ports[0], ports[1], "local range");
  const remote = span(ports[2], ports[3], "remote range");
  if (local.count !== remote.count) {
    throw new RouteError(
      spec,
      `remote range "${ports[2]}-${ports[3]}" has ${remote.count} ports, the local range ${local.count}`,
    );
  }
  const suffix = protocol === "udp" ? "/udp" : "";
  return Array.from({ length: local.count }, (_, i) => ({
    // Each port's own route, as the single form writes it: what messages and status show.
    spec: `${v6 ? `[${host}]` : host}:${local.first + i}-${remote.first + i}${suffix}`,
    localHost: host,
    localPort: local.first + i,
    remotePort: remote.first + i,
    protocol,
  }));
}

/** Parses one single-port route (`HOST:PORT-REMOTE[/tcp|/udp]`); a range is an error here. */
export function parseRoute(spec: string): RpRoute {
  const routes = parseRoutes(spec);
  if (routes.length !== 1) throw new RouteError(spec, "a port range where one port was expected");
  return routes[0];
}
