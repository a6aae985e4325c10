/**
 * The proxy section: SOCKS5 and HTTP proxies whose dials go through a tunnel.
 *
 *   PROXY_<N>="socks5|http;[ADDR:]PORT[;via=wg:NAME][;user=NAME][;max_conns=N][;handshake_timeout=SEC][;udp=on|off]"
 *   PROXY_<N>_PASSWORD=...      the password of PROXY_<N>'s user (its own variable: never inline, so the
 *                               PROXY_<N> value, which errors quote, holds no secret)
 *   WGEDGE_SOCKS5       --socks5       [ADDR:]PORT of a SOCKS5 proxy into the main tunnel (`up`, `serve`)
 *   WGEDGE_HTTP_PROXY   --http-proxy   [ADDR:]PORT of an HTTP proxy into the main tunnel
 *   WGEDGE_PROXY_USER   --proxy-user   the user both of those require
 *   WGEDGE_PROXY_PASSWORD (no flag: argv is visible in ps)  its password
 *
 * A bare port listens on 127.0.0.1. A listen address that is not loopback requires a user and password:
 * anyone who reaches an open proxy dials into the tunnel as wgedge. `via=` names the tunnel (`wg:main`, the
 * default, or `wg:NAME` of WG_TUNNEL_<NAME>). The names PROXY_ and WGEDGE_ cannot be mistaken for a tunnel:
 * tunnel variables start with WG_TUNNEL_.
 */
import type { LoadContext, Setting } from "./context.ts";
import { formatHostPort, parseHostPort, parseIp } from "./ip.ts";
import { isLoopbackHost } from "./admin.ts";

export type ProxyProtocol = "socks5" | "http";

export interface ProxySpec {
  /** `PROXY_3`, `--socks5` or `--http-proxy` (the variable when set from the environment: WGEDGE_SOCKS5). */
  id: string;
  protocol: ProxyProtocol;
  /** Listen address as shown (`127.0.0.1:1080`, `[::1]:1080`). */
  listen: string;
  hostname: string;
  port: number;
  /** The tunnel dials go through: `wg:main` or `wg:NAME`. */
  via: string;
  user?: string;
  /** The user's password (a secret: redacted by its field name). */
  password?: string;
  /** Connections served at once; more are refused (counted). */
  maxConnections: number;
  /** Milliseconds from accept until the request is through (auth, target, dial). */
  handshakeTimeoutMs: number;
  /** SOCKS5 UDP ASSOCIATE offered (SOCKS5 only; default on). */
  udp: boolean;
}

export interface ProxySection {
  proxies?: ProxySpec[];
}

export const PROXY_DEFAULTS = { maxConnections: 256, handshakeTimeoutSec: 10 } as const;

const PROXY_VAR = /^PROXY_(\d+)$/;
const PASSWORD_VAR = /^PROXY_(\d+)_PASSWORD$/;
const FORMAT =
  "socks5|http;[ADDR:]PORT[;via=wg:NAME][;user=NAME][;max_conns=N][;handshake_timeout=SEC][;udp=on|off]";
const KEYS = ["via", "user", "max_conns", "handshake_timeout", "udp"];

/** `[ADDR:]PORT`: a bare port means 127.0.0.1; the address must be an IP literal or localhost. */
export function parseProxyListen(text: string): { hostname: string; port: number } | { expected: string } {
  const t = text.trim();
  if (/^\d{1,5}$/.test(t)) {
    const port = Number(t);
    return port >= 1 && port <= 65535 ? { hostname: "127.0.0.1", port } : { expected: "a port 1..65535" };
  }
  const r = parseHostPort(t);
  if (!r.ok) return { expected: `[ADDR:]PORT (${r.expected})` };
  const host = r.value.host === "localhost" ? "127.0.0.1" : r.value.host;
  if (!parseIp(host)) {
    return { expected: "a listen address that is an IP address (or localhost), not a name" };
  }
  return { hostname: host, port: r.value.port };
}

interface Draft {
  id: string;
  setting: Setting;
  protocol: ProxyProtocol;
  listenText: string;
  via?: string;
  user?: string;
  password?: Setting;
  maxConnections?: number;
  handshakeTimeoutSec?: number;
  udp?: boolean;
}

function onOff(ctx: LoadContext, s: Setting, key: string, v: string): boolean | undefined {
  const t = v.trim().toLowerCase();
  if (["on", "true", "1", "yes"].includes(t)) return true;
  if (["off", "false", "0", "no"].includes(t)) return false;
  ctx.error(s, `${key}=on or ${key}=off`, v);
  return undefined;
}

function intIn(ctx: LoadContext, s: Setting, key: string, v: string, min: number, max: number) {
  if (/^\d{1,9}$/.test(v.trim())) {
    const n = Number(v.trim());
    if (n >= min && n <= max) return n;
  }
  ctx.error(s, `${key}=${min}..${max}`, v);
  return undefined;
}

/** One PROXY_<N> value; undefined (with errors recorded) when it is not valid. */
function parseLine(ctx: LoadContext, s: Setting): Draft | undefined {
  const fields = s.value.split(";").map((f) => f.trim());
  const protocol = fields[0].toLowerCase();
  if (protocol !== "socks5" && protocol !== "http") {
    ctx.error(s, `${FORMAT} (the first field is socks5 or http)`, fields[0]);
    return undefined;
  }
  if (fields.length < 2 || fields[1] === "") {
    ctx.error(s, `${FORMAT} (a listen [ADDR:]PORT after the protocol)`);
    return undefined;
  }
  const d: Draft = { id: s.name, setting: s, protocol, listenText: fields[1] };
  let ok = true;
  for (const f of fields.slice(2)) {
    if (f === "") continue;
    const eq = f.indexOf("=");
    const key = eq < 0 ? f.toLowerCase() : f.slice(0, eq).trim().toLowerCase();
    const v = eq < 0 ? "" : f.slice(eq + 1).trim();
    if (key === "password" || key === "pass") {
      // Never quoted back: it is a secret put where it does not belong.
      ctx.error(s, `the password in its own variable ${s.name}_PASSWORD, not inline`);
      ok = false;
    } else if (key === "via") d.via = v;
    else if (key === "user") {
      if (v === "" || new TextEncoder().encode(v).length > 255 || v.includes(":")) {
        ctx.error(s, "user=NAME of 1..255 bytes without ':'", v);
        ok = false;
      } else d.user = v;
    } else if (key === "max_conns") d.maxConnections = intIn(ctx, s, key, v, 1, 100_000);
    else if (key === "handshake_timeout") d.handshakeTimeoutSec = intIn(ctx, s, key, v, 1, 3600);
    else if (key === "udp") d.udp = onOff(ctx, s, key, v);
    else {
      // Only the key is quoted back: a mistyped option may hold a secret.
      ctx.error(s, `one of the options ${KEYS.join(", ")} (key=value)`, key);
      ok = false;
    }
  }
  return ok ? d : undefined;
}

function finish(ctx: LoadContext, d: Draft): ProxySpec | undefined {
  const s = d.setting;
  const l = parseProxyListen(d.listenText);
  if ("expected" in l) {
    ctx.error(s, l.expected, d.listenText);
    return undefined;
  }
  const via = d.via ?? "wg:main";
  const m = /^wg:([A-Za-z0-9_]{1,64})$/.exec(via);
  if (!m) {
    ctx.error(s, "via=wg:NAME (the tunnel the proxy dials through: wg:main or a WG_TUNNEL_<NAME>)", via);
    return undefined;
  }
  const listen = formatHostPort({ host: l.hostname, port: l.port });
  const password = d.password?.value;
  if (d.user !== undefined && password === undefined) {
    ctx.error(s, `a password for user ${d.user} in ${passwordVar(d)}`);
    return undefined;
  }
  if (d.user === undefined && d.password !== undefined) {
    ctx.error(d.password, `a user to go with the password (${userHint(d)})`);
    return undefined;
  }
  if (password !== undefined && new TextEncoder().encode(password).length > 255) {
    ctx.error(d.password!, "a password of at most 255 bytes (RFC 1929)");
    return undefined;
  }
  if (d.user === undefined && !isLoopbackHost(l.hostname)) {
    ctx.error(
      s,
      `a user and password (${
        userHint(d)
      }), because the proxy listens on ${listen}, which is not loopback: ` +
        "anyone who reaches it could dial into the tunnel",
    );
    return undefined;
  }
  if (d.protocol === "http" && d.udp !== undefined) {
    ctx.error(s, "udp= only on a socks5 proxy (HTTP proxies carry TCP only)");
    return undefined;
  }
  return {
    id: d.id,
    protocol: d.protocol,
    listen,
    hostname: l.hostname,
    port: l.port,
    via: `wg:${m[1].toLowerCase()}`,
    user: d.user,
    password,
    maxConnections: d.maxConnections ?? PROXY_DEFAULTS.maxConnections,
    handshakeTimeoutMs: (d.handshakeTimeoutSec ?? PROXY_DEFAULTS.handshakeTimeoutSec) * 1000,
    udp: d.protocol === "socks5" && d.udp !== false,
  };
}

function passwordVar(d: Draft): string {
  return d.id.startsWith("PROXY_") ? `${d.id}_PASSWORD` : "WGEDGE_PROXY_PASSWORD";
}

function userHint(d: Draft): string {
  return d.id.startsWith("PROXY_")
    ? `user=NAME in ${d.id} and ${d.id}_PASSWORD`
    : "--proxy-user or WGEDGE_PROXY_USER, and WGEDGE_PROXY_PASSWORD";
}

export function loadProxySection(ctx: LoadContext): ProxySection {
  const drafts: Draft[] = [];
  const passwords = new Map<string, Setting>();
  // Proxies whose line has an error (reported): they still own their password, so no "no proxy" error too.
  const failed = new Set<string>();
  for (const s of ctx.envWithPrefix("PROXY_")) {
    if (PASSWORD_VAR.test(s.name)) passwords.set(s.name, s);
    else if (PROXY_VAR.test(s.name)) {
      const d = parseLine(ctx, s);
      if (d) drafts.push(d);
      else failed.add(s.name);
    } else {
      ctx.error(s, "PROXY_<N> (a proxy) or PROXY_<N>_PASSWORD (its password), N a number");
    }
  }
  for (const d of drafts) {
    d.password = passwords.get(`${d.id}_PASSWORD`);
    passwords.delete(`${d.id}_PASSWORD`);
  }
  for (const p of passwords.values()) {
    if (failed.has(p.name.replace(/_PASSWORD$/, ""))) continue;
    ctx.error(p, `a proxy ${p.name.replace(/_PASSWORD$/, "")} for this password to belong to`);
  }

  // The main tunnel's proxies from flags (`up --socks5`) or their variables.
  const user = ctx.setting("WGEDGE_PROXY_USER", "proxy-user");
  const password = ctx.envSetting("WGEDGE_PROXY_PASSWORD");
  for (
    const [name, flag, protocol] of [["WGEDGE_SOCKS5", "socks5", "socks5"], [
      "WGEDGE_HTTP_PROXY",
      "http-proxy",
      "http",
    ]] as const
  ) {
    const s = ctx.setting(name, flag);
    if (!s) continue;
    drafts.push({
      id: s.from === "flag" ? `--${flag}` : name,
      setting: s,
      protocol,
      listenText: s.value,
      user: user?.value.trim(),
      password,
    });
  }
  if ((user || password) && !drafts.some((d) => !d.id.startsWith("PROXY_"))) {
    ctx.error((user ?? password)!, "--socks5/WGEDGE_SOCKS5 or --http-proxy/WGEDGE_HTTP_PROXY to apply to");
  }

  const out: ProxySpec[] = [];
  const byListen = new Map<string, string>();
  for (const d of drafts) {
    const p = finish(ctx, d);
    if (!p) continue;
    const other = byListen.get(p.listen);
    if (other !== undefined) {
      ctx.error(d.setting, `a listen address not already used by ${other}`, p.listen);
      continue;
    }
    byListen.set(p.listen, p.id);
    out.push(p);
  }
  return out.length > 0 ? { proxies: out } : {};
}
