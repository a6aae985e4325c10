/**
 * How a station's two sides leave the machine, in seed 000's priority: the station's own WireGuard tunnel
 * (`wg_config`, leased from the process's tunnel pool, one lease per station for as long as it runs), else
 * the side's SOCKS5 proxy, else directly. `src_via`/`dst_via` pin one side to wg, proxy or direct.
 */
import type { Net } from "../../net/types.ts";
import { createSocks5Net } from "../../net/socks5.ts";
import { formatHostPort } from "../../config/ip.ts";
import type { StationConfig, StationSide } from "../../config/ntrip_stations.ts";
import type { WgConfig } from "../../wireguard/config.ts";
import type { TunnelLease } from "../tunnel/pool.ts";

export type PathKind = "tunnel" | "socks5" | "direct";

/** One side's way out: the Net to dial on and what status shows about it (never a credential). */
export interface SidePath {
  net: Net;
  kind: PathKind;
  /** The tunnel's peer endpoint or the proxy's host:port; absent for direct. */
  endpoint?: string;
}

export interface StationPaths {
  source: SidePath;
  destination: SidePath;
  /** Gives back the tunnel lease (idempotent). */
  release(): void;
}

/** Opens a station's paths; a tunnel that cannot be brought up rejects. */
export type PathOpener = (station: StationConfig) => Promise<StationPaths>;

/** The part of the supervisor's TunnelProvider a station uses. */
export interface StationTunnels {
  acquire(cfg: WgConfig, name: string, user: string): Promise<TunnelLease>;
}

/** True when the side goes through the station's tunnel. */
export function usesTunnel(station: StationConfig, side: StationSide): boolean {
  return station.wgConfig !== undefined && (side.via === "wg" || side.via === "auto");
}

function tunnelEndpoint(cfg: WgConfig): string | undefined {
  const ep = cfg.peers.find((p) => p.endpoint)?.endpoint;
  return ep ? formatHostPort(ep) : undefined;
}

function sidePath(station: StationConfig, side: StationSide, host: Net, tunnel: Net | undefined): SidePath {
  if (tunnel && usesTunnel(station, side)) {
    return { net: tunnel, kind: "tunnel", endpoint: tunnelEndpoint(station.wgConfig!) };
  }
  if (side.proxy && side.via !== "direct") {
    const p = side.proxy;
    return {
      net: createSocks5Net({ host: p.host, port: p.port, username: p.username, password: p.password }, {
        base: host,
      }),
      kind: "socks5",
      endpoint: formatHostPort({ host: p.host, port: p.port }),
    };
  }
  return { net: host, kind: "direct" };
}

/** The production opener: tunnels from the pool, proxies and direct over `host`. */
export function poolPathOpener(host: Net, tunnels: StationTunnels): PathOpener {
  return async (station) => {
    const needsTunnel = usesTunnel(station, station.source) || usesTunnel(station, station.destination);
    let lease: TunnelLease | undefined;
    if (needsTunnel) {
      try {
        lease = await tunnels.acquire(station.wgConfig!, station.id, `ntrip station ${station.id}`);
      } catch (e) {
        throw new Error(`tunnel: ${(e as Error).message ?? e}`);
      }
    }
    const net = lease?.tunnel.net;
    return {
      source: sidePath(station, station.source, host, net),
      destination: sidePath(station, station.destination, host, net),
      release: () => lease?.release(),
    };
  };
}
