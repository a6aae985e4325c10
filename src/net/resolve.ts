/**
 * Name resolution for dials. Relays re-resolve the target on every dial (targets move: seed 002 points at
 * pool hostnames), so the resolver is called per connection and per new UDP flow, never cached here.
 *
 * The default follows the OS (getaddrinfo via node:dns, so /etc/hosts and nsswitch apply, like socat);
 * tests inject a MapResolver whose answers they change mid-test.
 */
import { lookup } from "node:dns/promises";

export interface Resolver {
  /** Literal IP addresses for hostname (IPv6 without brackets), in preference order; rejects if none. */
  resolve(hostname: string): Promise<string[]>;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4Literal(host: string): boolean {
  return IPV4.test(host);
}

export function isIpv6Literal(host: string): boolean {
  if (!host.includes(":")) return false;
  try {
    new URL(`http://[${host}]/`);
    return true;
  } catch {
    return false;
  }
}

export function isIpLiteral(host: string): boolean {
  return isIpv4Literal(host) || isIpv6Literal(host);
}

/** Strips the brackets of "[::1]". */
export function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

export class ResolveError extends Error {
  constructor(readonly hostname: string, cause?: unknown) {
    super(`cannot resolve "${hostname}"${cause ? `: ${(cause as Error).message ?? cause}` : ""}`);
    this.name = "ResolveError";
  }
}

/** The OS resolver (getaddrinfo): honours /etc/hosts, search domains and the system's address ordering. */
export const osResolver: Resolver = {
  async resolve(hostname: string): Promise<string[]> {
    const host = unbracket(hostname);
    if (isIpLiteral(host)) return [host];
    try {
      const addrs = await lookup(host, { all: true, verbatim: true });
      const out = addrs.map((a) => a.address);
      if (out.length === 0) throw new ResolveError(host);
      return out;
    } catch (e) {
      if (e instanceof ResolveError) throw e;
      throw new ResolveError(host, e);
    }
  },
};

/** A resolver backed by a table the caller edits; for tests and fixed deployments. */
export class MapResolver implements Resolver {
  readonly table = new Map<string, string[]>();
  /** How many times each name was asked for (tests check re-resolution). */
  readonly lookups = new Map<string, number>();

  constructor(entries: Record<string, string | string[]> = {}) {
    for (const [k, v] of Object.entries(entries)) this.set(k, v);
  }

  set(hostname: string, addrs: string | string[]): void {
    this.table.set(hostname.toLowerCase(), Array.isArray(addrs) ? addrs : [addrs]);
  }

  resolve(hostname: string): Promise<string[]> {
    const host = unbracket(hostname);
    if (isIpLiteral(host)) return Promise.resolve([host]);
    const key = host.toLowerCase();
    this.lookups.set(key, (this.lookups.get(key) ?? 0) + 1);
    const addrs = this.table.get(key);
    if (!addrs || addrs.length === 0) return Promise.reject(new ResolveError(host));
    return Promise.resolve([...addrs]);
  }
}
