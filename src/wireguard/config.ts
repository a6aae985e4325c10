/**
 * The wg-quick configuration model: what a WireGuard device needs. src/config parses text (INI, pipe form)
 * into this; the device never sees text. Keys are raw 32-byte arrays.
 */

export interface IpPrefix {
  /** Literal address, IPv4 dotted or IPv6 (no brackets, no zone). */
  address: string;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  prefix: number;
}

export interface Endpoint {
  /** Hostname or literal IP (IPv6 without brackets). Resolved when the device starts and on re-resolve. */
  host: string;
  port: number;
}

export interface WgPeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  allowedIps: IpPrefix[];
  endpoint?: Endpoint;
  /** Seconds; 0 or undefined = off. */
  persistentKeepalive?: number;
  /**
   * Three bytes written at offsets 1..3 of every message sent to this peer (Cloudflare WARP's client id,
   * `Reserved =`); undefined = zeros as the whitepaper says. Never all-zero (the parsers normalize that away).
   */
  reserved?: Uint8Array;
}

export interface WgInterfaceConfig {
  privateKey: Uint8Array;
  /** Tunnel addresses of this side (wg-quick Address), several allowed, v4 and v6. */
  addresses: IpPrefix[];
  /** UDP port to listen on; undefined = ephemeral. */
  listenPort?: number;
  /** Default 1420. */
  mtu: number;
  dns: string[];
  /** Obfuscation password (mwgp wire format); undefined = vanilla WireGuard. */
  obfs?: string;
}

export interface WgConfig {
  /** Where it came from, for messages: a file path or an environment variable name. Never the content. */
  source: string;
  iface: WgInterfaceConfig;
  peers: WgPeerConfig[];
}

export const DEFAULT_MTU = 1420;

export interface LoopbackPeerOptions {
  source: string;
  privateKey: Uint8Array;
  peerPublicKey: Uint8Array;
  /** This side's IPv4 and IPv6 tunnel addresses. */
  addresses: [IpPrefix, IpPrefix];
  /** The peer's IPv4 and IPv6 tunnel addresses (its AllowedIPs, as /32 and /128). */
  peerAddresses: [string, string];
  /** The peer's UDP port on 127.0.0.1; undefined for the side that waits to be contacted. */
  endpointPort?: number;
  persistentKeepalive?: number;
}

/** A one-peer configuration for two devices in one process on loopback (the demos). */
export function loopbackPeerConfig(o: LoopbackPeerOptions): WgConfig {
  return {
    source: o.source,
    iface: { privateKey: o.privateKey, addresses: [...o.addresses], mtu: DEFAULT_MTU, dns: [] },
    peers: [{
      publicKey: o.peerPublicKey,
      allowedIps: [{ address: o.peerAddresses[0], prefix: 32 }, { address: o.peerAddresses[1], prefix: 128 }],
      endpoint: o.endpointPort ? { host: "127.0.0.1", port: o.endpointPort } : undefined,
      persistentKeepalive: o.persistentKeepalive,
    }],
  };
}
