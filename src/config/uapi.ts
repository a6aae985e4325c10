/**
 * The UAPI section: where tunnels serve their WireGuard UAPI socket (`wg show` / `wg set`).
 *
 *   WG_UAPI_DIR   --uapi-dir   a directory (absolute path), or `off`; default /var/run/wireguard, the only
 *                              directory Debian's `wg` looks in. Another directory serves tools given its
 *                              path (e.g. wireguard-go's own tooling built with another socket directory).
 *
 * Which tunnels get a socket, and under which name, is decided by `up` (its file's base name or --name) and
 * serve's named tunnels (src/services/tunnel/starter.ts).
 */
import type { LoadContext } from "./context.ts";
import { DEFAULT_UAPI_DIR } from "../net/uapi_server.ts";

export interface UapiConfig {
  /** The socket directory; undefined = no UAPI sockets (WG_UAPI_DIR=off). */
  dir?: string;
}

export interface UapiSection {
  uapi: UapiConfig;
}

export function loadUapiSection(ctx: LoadContext): UapiSection {
  const s = ctx.setting("WG_UAPI_DIR", "uapi-dir");
  if (!s) return { uapi: { dir: DEFAULT_UAPI_DIR } };
  const v = s.value.trim();
  if (v.toLowerCase() === "off") return { uapi: {} };
  if (!v.startsWith("/")) {
    ctx.error(s, 'an absolute directory path (like /var/run/wireguard) or "off"', s.value);
    return { uapi: { dir: DEFAULT_UAPI_DIR } };
  }
  return { uapi: { dir: v } };
}
