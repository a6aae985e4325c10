/**
 * Bringing a tunnel up: WgConfig -> WireGuard Device (UDP bind, obfuscation) -> userspace Stack on it.
 * TunnelPool shares tunnels between users of the same configuration and closes one when its last user
 * releases it (seed 000's "cache & refcount").
 */
import { Device, type DeviceOptions } from "../wireguard/device.ts";
import type { WgConfig } from "../wireguard/config.ts";
import { obfuscationTransform } from "../wireguard/obfs.ts";
import { Stack, type StackOptions } from "../netstack/stack.ts";
import { TunnelDialError, TunnelNet } from "./tunnel.ts";
import type { Conn, DialOptions } from "./types.ts";
import { parseIp } from "../netstack/addr.ts";
import { unbracket } from "./resolve.ts";
import { encodeKey } from "../crypto/x25519.ts";
import { logger } from "../util/log.ts";

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
  return {
    name,
    config: cfg,
    device,
    stack,
    net: new RoutedTunnelNet(stack, name, device),
    close() {
      stack.close();
      device.close();
    },
  };
}

/** A stable key for "the same tunnel": private key, addresses and peers (order-insensitive). */
export function tunnelKey(cfg: WgConfig): string {
  const peers = cfg.peers.map((p) =>
    [
      encodeKey(p.publicKey),
      p.endpoint ? `${p.endpoint.host}:${p.endpoint.port}` : "",
      p.allowedIps.map((a) => `${a.address}/${a.prefix}`).sort().join(","),
      p.presharedKey ? encodeKey(p.presharedKey) : "",
      p.persistentKeepalive ?? 0,
    ].join("|")
  ).sort();
  return JSON.stringify([
    encodeKey(cfg.iface.privateKey),
    cfg.iface.addresses.map((a) => `${a.address}/${a.prefix}`).sort(),
    cfg.iface.listenPort ?? 0,
    cfg.iface.mtu,
    cfg.iface.obfs ?? "",
    peers,
  ]);
}

interface PoolEntry {
  tunnel: Promise<Tunnel>;
  refs: number;
}

export class TunnelPool {
  readonly #entries = new Map<string, PoolEntry>();
  readonly #log = logger("tunnels");
  #seq = 0;

  constructor(
    private readonly open: (cfg: WgConfig, name: string) => Promise<Tunnel> = (cfg, name) =>
      openTunnel(cfg, { name }),
  ) {}

  /** A shared tunnel for cfg; pair every acquire with one release. */
  acquire(cfg: WgConfig, name?: string): Promise<Tunnel> {
    const key = tunnelKey(cfg);
    let entry = this.#entries.get(key);
    if (!entry) {
      const tunnel = this.open(cfg, name ?? `wg${this.#seq++}`);
      entry = { tunnel, refs: 0 };
      this.#entries.set(key, entry);
      tunnel.catch(() => this.#entries.delete(key));
    }
    entry.refs++;
    return entry.tunnel;
  }

  async release(cfg: WgConfig): Promise<void> {
    const key = tunnelKey(cfg);
    const entry = this.#entries.get(key);
    if (!entry) return;
    if (--entry.refs > 0) return;
    this.#entries.delete(key);
    try {
      const t = await entry.tunnel;
      t.close();
      this.#log.info("tunnel closed (no more users)", { tunnel: t.name });
    } catch { /* it never opened */ }
  }

  get size(): number {
    return this.#entries.size;
  }

  async closeAll(): Promise<void> {
    for (const e of this.#entries.values()) {
      try {
        (await e.tunnel).close();
      } catch { /* never opened */ }
    }
    this.#entries.clear();
  }
}
