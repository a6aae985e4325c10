/**
 * Maps a relay's `via=` to the Net it dials through: none -> host, `socks5://` -> a SOCKS5 Net over the
 * host, `wg:NAME` -> a lease on the named tunnel from the pool (serve's TunnelProvider). A relay holds its
 * egress for as long as it runs and releases it when it stops, so a tunnel closes only when its last relay
 * (and serve's own lease) let go. SOCKS5 Nets are cached per URL so relays sharing a proxy share one Net.
 */
import type { Net } from "../../net/types.ts";
import { createSocks5Net, parseSocks5Url } from "../../net/socks5.ts";
import type { TunnelLease } from "../tunnel/pool.ts";

/** A relay's egress: the Net to dial on, and the release of what it holds (a tunnel lease). */
export interface Egress {
  net: Net;
  release(): void;
}

export interface EgressProvider {
  acquire(via: string | undefined, user: string): Promise<Egress>;
  /**
   * What the egress of `via` currently is, as a comparable string: a relay is restarted when it changes (its
   * tunnel's configuration changed on reload). Derived from secrets for tunnels: compare, never show.
   */
  key(via: string | undefined): string;
}

/** The named tunnels an EgressProvider hands out (services/service.ts TunnelProvider). */
export interface NamedTunnels {
  acquireNamed(name: string, user: string): Promise<TunnelLease>;
  namedKey(name: string): string | undefined;
}

const NOTHING_HELD = () => {};

export function createEgress(host: Net, tunnels?: NamedTunnels): EgressProvider {
  const socks = new Map<string, Net>();
  return {
    key(via) {
      if (via?.startsWith("wg:")) return `${via}#${tunnels?.namedKey(via.slice(3)) ?? "none"}`;
      return via ?? "";
    },
    async acquire(via, user) {
      if (via === undefined || via === "") return { net: host, release: NOTHING_HELD };
      if (/^socks5h?:\/\//i.test(via)) {
        let n = socks.get(via);
        if (!n) {
          n = createSocks5Net(parseSocks5Url(via), { base: host });
          socks.set(via, n);
        }
        return { net: n, release: NOTHING_HELD };
      }
      if (via.startsWith("wg:")) {
        const name = via.slice(3);
        if (!tunnels) {
          throw new Error(`via=${via}: no tunnel named "${name}" (set WG_TUNNEL_${name.toUpperCase()})`);
        }
        const lease = await tunnels.acquireNamed(name, user);
        return { net: lease.tunnel.net, release: lease.release };
      }
      throw new Error(`via=${via}: expected wg:NAME or socks5://host:port`);
    },
  };
}

/** The egress as shown in status and logs: never with credentials. */
export function viaDisplay(via: string | undefined): string {
  if (!via) return "host";
  return via.replace(/^(socks5h?:\/\/)[^@/]*@/i, "$1");
}
