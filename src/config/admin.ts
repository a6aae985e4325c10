/**
 * The admin section: the Hono API on the host network.
 *
 *   WGEDGE_ADMIN_LISTEN  --admin-listen  host:port, default 127.0.0.1:8081 (":8081" = every address)
 *   WGEDGE_ADMIN_TOKEN   (no flag)       bearer token; required when the listen address is not loopback
 *
 * Requiring the token here, at start-up, means an operator who exposes the API learns it before anything
 * listens unauthenticated on a public address.
 */
import type { LoadContext } from "./context.ts";
import { formatHostPort, parseHostPort, parseIp } from "./ip.ts";

export const DEFAULT_ADMIN_LISTEN = "127.0.0.1:8081";
/** Shorter tokens are guessable by a patient scanner; warned, not refused. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

export interface AdminConfig {
  /** Normalized `host:port` (IPv6 in brackets). */
  listen: string;
  /** Host part: an IP literal, a host name, or "0.0.0.0" for ":port". */
  hostname: string;
  port: number;
  /** Bearer token (a secret). */
  token?: string;
}

export interface AdminSection {
  admin: AdminConfig;
}

/** Loopback addresses and the name that means them. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  const b = parseIp(host);
  if (!b) return false;
  if (b.length === 4) return b[0] === 127;
  return b.every((x, i) => (i === 15 ? x === 1 : x === 0));
}

export function loadAdminSection(ctx: LoadContext): AdminSection {
  const listenSetting = ctx.setting("WGEDGE_ADMIN_LISTEN", "admin-listen");
  let hostname = "127.0.0.1", port = 8081;
  if (listenSetting) {
    const r = parseHostPort(listenSetting.value.trim(), { allowEmptyHost: true, allowPortZero: true });
    if (!r.ok) ctx.error(listenSetting, r.expected, listenSetting.value);
    else {
      hostname = r.value.host === "" ? "0.0.0.0" : r.value.host;
      port = r.value.port;
    }
  }
  const admin: AdminConfig = { listen: formatHostPort({ host: hostname, port }), hostname, port };
  const tokenSetting = ctx.envSetting("WGEDGE_ADMIN_TOKEN");
  if (tokenSetting) {
    const token = tokenSetting.value.trim();
    if (/\s/.test(token)) {
      ctx.error(tokenSetting, "a token without blanks (it is sent as `Authorization: Bearer <token>`)");
    } else {
      admin.token = token;
      if (token.length < MIN_ADMIN_TOKEN_LENGTH) {
        ctx.warn(tokenSetting, `shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters; use a long random token`);
      }
    }
  } else if (!isLoopbackHost(hostname)) {
    ctx.errorAt({
      source: "WGEDGE_ADMIN_TOKEN",
      expected: `a bearer token, because the admin API listens on ${admin.listen}, which is not loopback`,
    });
  }
  return { admin };
}
