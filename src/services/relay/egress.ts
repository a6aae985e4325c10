/**
 * Maps a relay's `via=` to the Net it dials through: none -> host, `socks5://` -> a SOCKS5 Net over the
 * host, `wg:NAME` -> a named tunnel supplied by the caller (serve owns the tunnel pool). SOCKS5 Nets are
 * cached per URL so relays sharing a proxy share one Net object.
 */
import type { Net } from "../../net/types.ts";
import { createSocks5Net, parseSocks5Url } from "../../net/socks5.ts";

export type EgressLookup = (via: string | undefined) => Promise<Net>;
export type TunnelLookup = (name: string) => Promise<Net>;

export function createEgressLookup(host: Net, tunnels?: TunnelLookup): EgressLookup {
  const socks = new Map<string, Net>();
  return (via) => {
    if (via === undefined || via === "") return Promise.resolve(host);
    if (/^socks5h?:\/\//i.test(via)) {
      let n = socks.get(via);
      if (!n) {
        n = createSocks5Net(parseSocks5Url(via), { base: host });
        socks.set(via, n);
      }
      return Promise.resolve(n);
    }
    if (via.startsWith("wg:")) {
      const name = via.slice(3);
      if (!tunnels) {
        return Promise.reject(new Error(`via=${via}: no tunnel named "${name}" (set WG_TUNNEL_${name})`));
      }
      return tunnels(name);
    }
    return Promise.reject(new Error(`via=${via}: expected wg:NAME or socks5://host:port`));
  };
}

/** The egress as shown in status and logs: never with credentials. */
export function viaDisplay(via: string | undefined): string {
  if (!via) return "host";
  return via.replace(/^(socks5h?:\/\/)[^@/]*@/i, "$1");
}
