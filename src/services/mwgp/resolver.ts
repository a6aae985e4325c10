/**
 * Target name resolution for mwgp. forward_to hosts may be names and are re-resolved (answers cached for
 * TARGET_CACHE_MS so a handshake burst does not become a DNS burst); the client may use a custom DNS server
 * (`dns`), queried directly with Deno.resolveDns instead of the system resolver.
 */
import { isIpLiteral, osResolver, type Resolver } from "../../net/resolve.ts";
import type { HostPort } from "../../config/mwgp.ts";
import type { UdpAddr } from "./table.ts";

export const TARGET_CACHE_MS = 30_000;

export interface TargetResolver {
  /** The address to send to, or null when the name does not resolve. */
  resolve(target: HostPort): Promise<UdpAddr | null>;
}

/**
 * A Resolver that asks one DNS server (A then AAAA) directly. The server may be named by a host name (as mwgp
 * allows); that name is resolved by `system` first.
 */
export function dnsServerResolver(dns: HostPort, system: Resolver = osResolver): Resolver {
  return {
    async resolve(hostname: string): Promise<string[]> {
      if (isIpLiteral(hostname)) return [hostname];
      const ipAddr = isIpLiteral(dns.host) ? dns.host : (await system.resolve(dns.host))[0];
      if (!ipAddr) throw new Error(`cannot resolve the DNS server "${dns.host}"`);
      const nameServer = { ipAddr, port: dns.port };
      const out: string[] = [];
      for (const type of ["A", "AAAA"] as const) {
        try {
          out.push(...await Deno.resolveDns(hostname, type, { nameServer }));
        } catch { /* try the other family */ }
      }
      if (out.length === 0) throw new Error(`cannot resolve "${hostname}" via ${dns.host}:${dns.port}`);
      return out;
    },
  };
}

export class CachingTargetResolver implements TargetResolver {
  readonly #cache = new Map<string, { addr: string; at: number }>();

  constructor(
    private readonly resolver: Resolver = osResolver,
    private readonly now: () => number = () => performance.now(),
    private readonly ttlMs = TARGET_CACHE_MS,
  ) {}

  async resolve(target: HostPort): Promise<UdpAddr | null> {
    if (isIpLiteral(target.host)) return { hostname: target.host, port: target.port };
    const hit = this.#cache.get(target.host);
    if (hit && this.now() - hit.at < this.ttlMs) return { hostname: hit.addr, port: target.port };
    try {
      const addrs = await this.resolver.resolve(target.host);
      if (addrs.length === 0) return null;
      this.#cache.set(target.host, { addr: addrs[0], at: this.now() });
      return { hostname: addrs[0], port: target.port };
    } catch {
      // Keep using the last good answer while the name server is down.
      return hit ? { hostname: hit.addr, port: target.port } : null;
    }
  }
}
