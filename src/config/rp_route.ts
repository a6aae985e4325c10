/**
 * The rp option models the config loader produces and the rp services consume: a client route
 * (`HOST:PORT-REMOTE[/tcp|/udp]`) with its parser, and the server's allowed public port ranges. They live in
 * config because config owns option types and may not import from the service layer; the rp client and
 * server import them from here.
 */

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
  "HOST:PORT-REMOTE_PORT[/tcp|/udp], e.g. localhost:8080-8080 or [::1]:53-5353/udp";

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
 * Parses `HOST:PORT-REMOTE[/tcp|/udp]`. The split is at the LAST `-`, so host names with hyphens work;
 * IPv6 hosts are bracketed: `[::1]:8080-8080`.
 */
export function parseRoute(spec: string): RpRoute {
  let text = spec.trim();
  let protocol: RpProtocol = "tcp";
  const slash = text.lastIndexOf("/");
  if (slash >= 0) {
    const p = text.slice(slash + 1).toLowerCase();
    if (p !== "tcp" && p !== "udp") throw new RouteError(spec, `unknown protocol "${p}"`);
    protocol = p;
    text = text.slice(0, slash);
  }
  const dash = text.lastIndexOf("-");
  if (dash <= 0) throw new RouteError(spec, `no "-REMOTE_PORT"`);
  const remotePort = parsePort(text.slice(dash + 1), "remote port", spec);
  const local = text.slice(0, dash);
  let host: string, portText: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(local);
  if (v6) [host, portText] = [v6[1], v6[2]];
  else {
    const colon = local.lastIndexOf(":");
    if (colon <= 0 || local.slice(0, colon).includes(":")) {
      throw new RouteError(spec, `local address "${local}" is not HOST:PORT`);
    }
    [host, portText] = [local.slice(0, colon), local.slice(colon + 1)];
    if (!/^[A-Za-z0-9.\-_]+$/.test(host)) {
      throw new RouteError(spec, `invalid host "${host}"`);
    }
  }
  return { spec, localHost: host, localPort: parsePort(portText, "local port", spec), remotePort, protocol };
}
