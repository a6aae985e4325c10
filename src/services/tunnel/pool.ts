/**
 * The tunnel pool: the one owner of every WireGuard tunnel in a process (seed 000's "cache & refcount").
 *
 * Tunnels are keyed by their normalized configuration (config/canonical.ts: the pipe form and the same
 * tunnel written as wg-quick INI give one key) plus the TCP options of their stack. `acquire()` hands out a
 * lease; a second acquire of the same configuration reuses the open tunnel, and the last `release()` closes
 * it. Concurrent acquires of a configuration that is still opening wait for the same device, so one
 * configuration never opens two devices (they would fight over the ListenPort and the peer's sessions).
 *
 * Every user (serve's named tunnels, relays with `via=wg:NAME`, rps, rpc, NTRIP stations) gets its tunnel
 * here, so status, metrics and the dashboard list every tunnel with its names and reference count.
 */
import type { WgConfig } from "../../wireguard/config.ts";
import type { TcpOptions } from "../../netstack/tcp/options.ts";
import { openTunnel, type Tunnel } from "../../net/tunnels.ts";
import { wgConfigFingerprint } from "../../config/canonical.ts";
import { formatHostPort } from "../../config/ip.ts";
import { type Logger, logger } from "../../util/log.ts";

export interface TunnelOpenOptions {
  /** The name the device logs and reports under (the first name the tunnel was acquired with). */
  name: string;
  tcp?: Partial<TcpOptions>;
}

/** Brings a tunnel up; the default opens a userspace device and stack (net/tunnels.ts). */
export type TunnelOpener = (cfg: WgConfig, opts: TunnelOpenOptions) => Promise<Tunnel>;

export const defaultTunnelOpener: TunnelOpener = (cfg, opts) =>
  openTunnel(cfg, { name: opts.name, stack: opts.tcp ? { tcp: opts.tcp } : undefined });

/** Who asks for a tunnel: `name` is what the holder calls it (main, office, rps), `user` who holds it. */
export interface LeaseHolder {
  name: string;
  user: string;
}

/** One reference to a pooled tunnel. `release()` is idempotent; the last one closes the tunnel. */
export interface TunnelLease {
  readonly tunnel: Tunnel;
  /** The pool key of the tunnel (changes when its configuration does); derived from secrets: never show it. */
  readonly key: string;
  release(): void;
}

/** What status and metrics show about one pooled tunnel. */
export interface PooledTunnelView {
  /** The first name it was acquired with (labels metrics, names the device). */
  name: string;
  /** Every name it is held under, in order of first use. */
  names: string[];
  refs: number;
  /** Holders, e.g. "serve", "relay RELAY_2", "rps". */
  users: string[];
  tunnel: Tunnel;
}

interface Entry {
  key: string;
  name: string;
  holders: LeaseHolder[];
  opening: Promise<Tunnel>;
  tunnel?: Tunnel;
}

export interface TunnelPoolOptions {
  open?: TunnelOpener;
  log?: Logger;
}

/** The pool key of a configuration with the given stack options. */
export function tunnelKey(cfg: WgConfig, tcp?: Partial<TcpOptions>): string {
  return tcp ? `${wgConfigFingerprint(cfg)}/${JSON.stringify(tcp)}` : wgConfigFingerprint(cfg);
}

/** `10.0.0.2 -> 162.159.192.1:2408`: the tunnel's first address and its first peer's endpoint, as seed 000 logs. */
function describe(cfg: WgConfig): { address: string; endpoint: string } {
  const address = cfg.iface.addresses[0]?.address ?? "(no address)";
  const ep = cfg.peers.find((p) => p.endpoint)?.endpoint;
  return { address, endpoint: ep ? formatHostPort(ep) : "(no endpoint: waits to be contacted)" };
}

export class TunnelPool {
  readonly #entries = new Map<string, Entry>();
  readonly #open: TunnelOpener;
  readonly #log: Logger;

  constructor(opts: TunnelPoolOptions = {}) {
    this.#open = opts.open ?? defaultTunnelOpener;
    this.#log = opts.log ?? logger("tunnel");
  }

  /**
   * A lease on the tunnel for `cfg` (opened now, or shared when one with the same key is open or opening).
   * Rejects when the tunnel cannot be brought up; no reference is then held.
   */
  async acquire(cfg: WgConfig, holder: LeaseHolder, tcp?: Partial<TcpOptions>): Promise<TunnelLease> {
    const key = tunnelKey(cfg, tcp);
    let entry = this.#entries.get(key);
    if (entry) {
      entry.holders.push(holder);
      this.#log.info("reusing cached tunnel", {
        tunnel: entry.name,
        as: holder.name,
        user: holder.user,
        refs: entry.holders.length,
      });
    } else {
      const opening = this.#open(cfg, { name: holder.name, tcp });
      entry = { key, name: holder.name, holders: [holder], opening };
      this.#entries.set(key, entry);
      opening.then((t) => {
        if (this.#entries.get(key) !== entry) {
          t.close(); // every lease was released (or closeAll ran) while it was coming up
          return;
        }
        entry!.tunnel = t;
        this.#log.info("tunnel up", {
          tunnel: holder.name,
          ...describe(cfg),
          listenPort: t.device.listenPort,
        });
      }, (e) => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
        this.#log.error("tunnel failed to come up", { tunnel: holder.name, error: (e as Error).message });
      });
    }
    const e = entry;
    let tunnel: Tunnel;
    try {
      tunnel = await e.opening;
    } catch (err) {
      const i = e.holders.indexOf(holder);
      if (i >= 0) e.holders.splice(i, 1);
      throw err;
    }
    let released = false;
    return {
      tunnel,
      key,
      release: () => {
        if (released) return;
        released = true;
        this.#release(e, holder);
      },
    };
  }

  #release(entry: Entry, holder: LeaseHolder): void {
    const i = entry.holders.indexOf(holder);
    if (i >= 0) entry.holders.splice(i, 1);
    const refs = entry.holders.length;
    this.#log.info("released tunnel", { tunnel: entry.name, by: holder.user, refs });
    if (refs > 0) return;
    this.#log.info("closing tunnel (zero refs)", { tunnel: entry.name });
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
    entry.tunnel?.close();
  }

  /** Open tunnels (those still coming up are left out), in order of opening. */
  list(): PooledTunnelView[] {
    const out: PooledTunnelView[] = [];
    for (const e of this.#entries.values()) {
      if (!e.tunnel) continue;
      out.push({
        name: e.name,
        names: [...new Set(e.holders.map((h) => h.name))],
        refs: e.holders.length,
        users: e.holders.map((h) => h.user),
        tunnel: e.tunnel,
      });
    }
    return out;
  }

  /** Tunnels open or opening. */
  get size(): number {
    return this.#entries.size;
  }

  /** Closes every tunnel whatever its references (process shutdown, after the services stopped). */
  closeAll(): void {
    for (const e of [...this.#entries.values()]) {
      if (e.holders.length > 0) {
        this.#log.warn("closing tunnel still referenced at shutdown", {
          tunnel: e.name,
          refs: e.holders.length,
          users: e.holders.map((h) => h.user).join(","),
        });
      }
      e.holders.length = 0;
      this.#entries.delete(e.key);
      e.tunnel?.close(); // one still opening is closed by acquire's handler: it is no longer in the map
    }
  }
}
