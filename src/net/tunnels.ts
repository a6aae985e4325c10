/** Bringing a tunnel up: WgConfig -> WireGuard Device (UDP bind, obfuscation) -> userspace Stack on it. */
import { Device, type DeviceOptions } from "../wireguard/device.ts";
import type { WgConfig } from "../wireguard/config.ts";
import { obfuscationTransform } from "../wireguard/obfs.ts";
import { Stack, type StackOptions } from "../netstack/stack.ts";
import { TunnelDialError, TunnelNet } from "./tunnel.ts";
import type { Conn, DialOptions } from "./types.ts";
import { parseIp } from "../netstack/addr.ts";
import { isIpLiteral, unbracket } from "./resolve.ts";
import { DnsResolver } from "./dns.ts";

/**
 * A TunnelNet that refuses at once to dial outside every peer's AllowedIPs (as Linux answers "Required key
 * not available"), instead of letting the SYN be dropped and the dial time out.
 */
export class RoutedTunnelNet extends TunnelNet {
  constructor(stack: Stack, tunnelName: string, private readonly device: Device) {
    super(stack, tunnelName);
  }

  override dialTcp(hostname: string, port: number, opts?: DialOptions): Promise<Conn> {
    const addr = parseIp(unbracket(hostname));
    if (addr && !this.device.hasRoute(addr)) {
      return Promise.reject(
        new TunnelDialError(`${this.name}: no route to ${hostname}: not inside any peer's AllowedIPs`),
      );
    }
    return super.dialTcp(hostname, port, opts);
  }
}

export interface Tunnel {
  readonly name: string;
  readonly config: WgConfig;
  readonly device: Device;
  readonly stack: Stack;
  /** TCP/UDP inside the tunnel, for services. */
  readonly net: RoutedTunnelNet;
  close(): void;
}

export interface OpenTunnelOptions {
  name?: string;
  device?: Partial<DeviceOptions>;
  stack?: Partial<StackOptions>;
}

export async function openTunnel(cfg: WgConfig, opts: OpenTunnelOptions = {}): Promise<Tunnel> {
  const name = opts.name ?? "wg0";
  const device = new Device({
    name,
    privateKey: cfg.iface.privateKey,
    listenPort: cfg.iface.listenPort,
    mtu: cfg.iface.mtu,
    peers: cfg.peers,
    transform: cfg.iface.obfs ? obfuscationTransform(cfg.iface.obfs) : undefined,
    ...opts.device,
  });
  const stack = new Stack(device, {
    addresses: cfg.iface.addresses,
    clock: device.clock,
    random: device.random,
    ...opts.stack,
  });
  try {
    await device.start();
  } catch (e) {
    stack.close();
    device.close();
    throw e;
  }
  const net = new RoutedTunnelNet(stack, name, device);
  const servers = cfg.iface.dns.filter((d) => isIpLiteral(d));
  if (servers.length > 0) {
    net.resolver = new DnsResolver(net, servers, {
      searchDomains: cfg.iface.dns.filter((d) => !isIpLiteral(d)),
      clock: device.clock,
      random: device.random,
    });
  }
  return {
    name,
    config: cfg,
    device,
    stack,
    net,
    close() {
      stack.close();
      device.close();
    },
  };
}
