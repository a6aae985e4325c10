/**
 * Tunnel sections of the config.
 *
 * `tunnel`: the main WireGuard config from `-c/--config` or `WG_CONFIG` (a path or the content, INI or pipe
 * form), with single settings overridable on top of it, flag > environment > file:
 *
 *   WG_PRIVATE_KEY   (no flag: argv is visible in ps)  the key itself, or a path to a file holding it
 *   WG_ADDRESS       --address      comma list of prefixes; replaces every Address
 *   WG_LISTEN_PORT   --listen-port  0..65535 (0 = any)
 *   WG_MTU           --mtu          576..65535
 *   WG_ENDPOINT      --endpoint     host:port of the first [Peer]
 *   WG_OBFS          (no flag)      obfuscation password
 *
 * An override without a tunnel config to apply to is an error, not silently ignored.
 *
 * `tunnels`: named extra tunnels from every `WG_TUNNEL_<NAME>` variable (name lowercased), each inline or a
 * path, INI or pipe form. Services refer to them by name.
 */
import type { IpPrefix, WgConfig } from "../wireguard/config.ts";
import type { Endpoint } from "../wireguard/config.ts";
import type { LoadContext, Setting } from "./context.ts";
import { parseHostPort, parsePrefix } from "./ip.ts";
import { isWorldAccessible, worldAccessibleWarning } from "./source.ts";
import { readKeyOrKeyFile } from "./keys.ts";
import { MAX_MTU, MIN_IPV6_MTU, MIN_MTU, PREFIX_EXPECTED } from "./wgquick.ts";

export const TUNNEL_PREFIX = "WG_TUNNEL_";
const TUNNEL_NAME = /^[a-z0-9_]{1,64}$/;

export interface TunnelSection {
  tunnel?: WgConfig;
}

export interface TunnelsSection {
  tunnels: Map<string, WgConfig>;
}

interface Overrides {
  privateKey?: Uint8Array;
  addresses?: IpPrefix[];
  listenPort?: number | null;
  mtu?: number;
  endpoint?: { setting: Setting; value: Endpoint };
  obfs?: string;
}

/** A key inline, or a path to a file holding it (like /etc/wireguard/private.key). Never echoed. */
async function keySetting(ctx: LoadContext, s: Setting): Promise<Uint8Array | undefined> {
  const r = await ctx.capture(() => readKeyOrKeyFile(s.value, s));
  if (r?.path !== undefined && await isWorldAccessible(r.path)) {
    ctx.warnings.push(worldAccessibleWarning(r.path));
  }
  return r?.key;
}

async function readOverrides(ctx: LoadContext): Promise<{ overrides: Overrides; given: Setting[] }> {
  const o: Overrides = {};
  const given: Setting[] = [];
  const pk = ctx.envSetting("WG_PRIVATE_KEY");
  if (pk) {
    given.push(pk);
    o.privateKey = await keySetting(ctx, pk);
  }
  const addr = ctx.setting("WG_ADDRESS", "address", true);
  if (addr) {
    given.push(addr);
    const list: IpPrefix[] = [];
    const items = addr.value.split(",").map((x) => x.trim()).filter((x) => x !== "");
    if (items.length === 0) ctx.error(addr, PREFIX_EXPECTED, addr.value);
    for (const item of items) {
      const p = parsePrefix(item);
      if (p) list.push(p);
      else ctx.error(addr, PREFIX_EXPECTED, item);
    }
    o.addresses = list;
  }
  const port = ctx.setting("WG_LISTEN_PORT", "listen-port");
  if (port) {
    given.push(port);
    const n = ctx.int(port, 0, 65535, "a UDP port");
    if (n !== undefined) o.listenPort = n === 0 ? null : n;
  }
  const mtu = ctx.setting("WG_MTU", "mtu");
  if (mtu) {
    given.push(mtu);
    o.mtu = ctx.int(mtu, MIN_MTU, MAX_MTU, "an MTU");
  }
  const ep = ctx.setting("WG_ENDPOINT", "endpoint");
  if (ep) {
    given.push(ep);
    const r = parseHostPort(ep.value.trim());
    if (r.ok) o.endpoint = { setting: ep, value: r.value };
    else ctx.error(ep, r.expected, ep.value);
  }
  const obfs = ctx.envSetting("WG_OBFS");
  if (obfs) {
    given.push(obfs);
    o.obfs = obfs.value;
  }
  return { overrides: o, given };
}

function applyOverrides(ctx: LoadContext, t: WgConfig, o: Overrides): void {
  if (o.privateKey) t.iface.privateKey = o.privateKey;
  if (o.addresses) t.iface.addresses = o.addresses;
  if (o.listenPort === null) delete t.iface.listenPort;
  else if (o.listenPort !== undefined) t.iface.listenPort = o.listenPort;
  if (o.mtu !== undefined) t.iface.mtu = o.mtu;
  if (o.obfs !== undefined) t.iface.obfs = o.obfs;
  if (o.endpoint) {
    if (t.peers.length === 0) {
      ctx.error(o.endpoint.setting, `a [Peer] in ${t.source} to apply the endpoint to`);
    } else t.peers[0].endpoint = o.endpoint.value;
  }
}

function mtu(given: Setting[]): Setting | undefined {
  return given.find((s) => s.name === "WG_MTU") ?? given.find((s) => s.name === "WG_ADDRESS");
}

export async function loadTunnelSection(ctx: LoadContext): Promise<TunnelSection> {
  const base = ctx.setting("WG_CONFIG", "config");
  const tunnel = base ? await ctx.wgConfig(base) : undefined;
  const { overrides, given } = await readOverrides(ctx);
  if (!base) {
    for (const s of given) {
      ctx.error(s, "WG_CONFIG or -c/--config to be set too (it applies on top of a tunnel config)");
    }
    return {};
  }
  if (!tunnel) return {};
  applyOverrides(ctx, tunnel, overrides);
  const i = tunnel.iface;
  if ((overrides.mtu !== undefined || overrides.addresses) && i.mtu < MIN_IPV6_MTU) {
    if (i.addresses.some((a) => a.address.includes(":"))) {
      ctx.warn(mtu(given), `MTU ${i.mtu} is below ${MIN_IPV6_MTU}, the minimum IPv6 needs`);
    }
  }
  return { tunnel };
}

export async function loadTunnelsSection(ctx: LoadContext): Promise<TunnelsSection> {
  const tunnels = new Map<string, WgConfig>();
  const origin = new Map<string, string>();
  for (const s of ctx.envWithPrefix(TUNNEL_PREFIX)) {
    const name = s.name.slice(TUNNEL_PREFIX.length).toLowerCase();
    if (!TUNNEL_NAME.test(name)) {
      ctx.error(s, `a tunnel name after ${TUNNEL_PREFIX} (letters, digits, _; at most 64)`);
      continue;
    }
    const other = origin.get(name);
    if (other !== undefined) {
      ctx.error(s, `a tunnel name unique regardless of case (${other} already names "${name}")`);
      continue;
    }
    origin.set(name, s.name);
    const cfg = await ctx.wgConfig(s);
    if (cfg) tunnels.set(name, cfg);
  }
  return { tunnels };
}
