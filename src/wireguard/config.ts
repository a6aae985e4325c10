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
