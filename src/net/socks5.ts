/**
 * A Net that dials TCP through a SOCKS5 proxy: RFC 1928 (CONNECT) with RFC 1929 username/password auth.
 *
 * `socks5://[user:pass@]host:port` lets the proxy resolve names (like curl's socks5h, what egress through a
 * proxy normally wants: the proxy's view of DNS); `socks5h://` is accepted as a synonym. Only CONNECT is
 * implemented: BIND and UDP ASSOCIATE are not, so listen* throw. Credentials never appear in `name`.
 */
import type { Conn, DatagramConn, DialOptions, Listener, Net } from "./types.ts";
import { isIpv4Literal, isIpv6Literal, unbracket } from "./resolve.ts";
import { hostNet } from "./host.ts";
import { readExactly, writeAll } from "./pipe.ts";
import { joinHostPort } from "../util/host_port.ts";

// RFC 1928 section 3/4/6 and RFC 1929 section 2.
export const SOCKS_VERSION = 0x05;
export const SOCKS_METHOD_NO_AUTH = 0x00;
export const SOCKS_METHOD_USERPASS = 0x02;
export const SOCKS_METHOD_NO_ACCEPTABLE = 0xff;
export const SOCKS_CMD_CONNECT = 0x01;
export const SOCKS_ATYP_IPV4 = 0x01;
export const SOCKS_ATYP_DOMAIN = 0x03;
export const SOCKS_ATYP_IPV6 = 0x04;
export const SOCKS_USERPASS_VERSION = 0x01;

const REPLY_TEXT: Record<number, string> = {
  0x01: "general SOCKS server failure",
  0x02: "connection not allowed by ruleset",
  0x03: "network unreachable",
  0x04: "host unreachable",
  0x05: "connection refused",
  0x06: "TTL expired",
  0x07: "command not supported",
  0x08: "address type not supported",
};

export interface Socks5Config {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

export class Socks5Error extends Error {
  constructor(message: string, readonly reply?: number) {
    super(message);
    this.name = "Socks5Error";
  }
}

/** Parses `socks5://[user:pass@]host:port` (percent-encoded credentials allowed). Throws with what was expected. */
export function parseSocks5Url(url: string): Socks5Config {
  const m = /^socks5h?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\[[0-9a-fA-F:.]+\]|[^:/@\[\]]+):(\d{1,5})\/?$/.exec(
    url.trim(),
  );
  if (!m) throw new Error(`expected socks5://[user:pass@]host:port`);
  const port = Number(m[4]);
  if (port < 1 || port > 65535) throw new Error(`expected a proxy port 1..65535, got ${m[4]}`);
  const cfg: Socks5Config = { host: unbracket(m[3]), port };
  try {
    if (m[1] !== undefined && m[1] !== "") cfg.username = decodeURIComponent(m[1]);
    if (m[2] !== undefined) cfg.password = decodeURIComponent(m[2]);
  } catch {
    throw new Error("expected percent-encoded credentials in the proxy URL");
  }
  if (cfg.username !== undefined && cfg.password === undefined) cfg.password = "";
  const enc = new TextEncoder();
  if (
    cfg.username !== undefined &&
    (enc.encode(cfg.username).length > 255 || enc.encode(cfg.password!).length > 255)
  ) {
    throw new Error("expected proxy username and password of at most 255 bytes (RFC 1929)");
  }
  return cfg;
}

/** The proxy's display name: never the credentials. */
export function socks5Name(cfg: Socks5Config): string {
  return `socks5://${joinHostPort(cfg.host, cfg.port)}`;
}

async function readExact(c: Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  if (!(await readExactly(c, out))) throw new Socks5Error("proxy closed the connection during the handshake");
  return out;
}

function encodeAddress(host: string): Uint8Array {
  if (isIpv4Literal(host)) return new Uint8Array([SOCKS_ATYP_IPV4, ...host.split(".").map(Number)]);
  if (isIpv6Literal(host)) {
    // Expand via URL normalisation-free parsing: split on "::" and fill zero groups.
    const [head, tail] = host.includes("::") ? host.split("::") : [host, undefined];
    const parseGroups = (s: string) => (s === "" ? [] : s.split(":"));
    let groups = parseGroups(head);
    let tailGroups = tail === undefined ? [] : parseGroups(tail);
    const v4 = (g: string[]) => {
      const last = g[g.length - 1];
      if (last && last.includes(".")) {
        const o = last.split(".").map(Number);
        g.splice(g.length - 1, 1, ((o[0] << 8) | o[1]).toString(16), ((o[2] << 8) | o[3]).toString(16));
      }
      return g;
    };
    if (tail === undefined) groups = v4(groups);
    else tailGroups = v4(tailGroups);
    const fill = tail === undefined ? [] : new Array(8 - groups.length - tailGroups.length).fill("0");
    const all = [...groups, ...fill, ...tailGroups];
    const out = new Uint8Array(17);
    out[0] = SOCKS_ATYP_IPV6;
    all.forEach((g, i) => {
      const v = parseInt(g, 16);
      out[1 + 2 * i] = v >> 8;
      out[2 + 2 * i] = v & 0xff;
    });
    return out;
  }
  const name = new TextEncoder().encode(host);
  if (name.length === 0 || name.length > 255) {
    throw new Socks5Error(`host name must be 1..255 bytes for SOCKS5`);
  }
  const out = new Uint8Array(2 + name.length);
  out[0] = SOCKS_ATYP_DOMAIN;
  out[1] = name.length;
  out.set(name, 2);
  return out;
}

/** Runs the RFC 1928/1929 handshake on an open connection to the proxy; resolves once CONNECT succeeded. */
export async function socks5Handshake(c: Conn, cfg: Socks5Config, host: string, port: number): Promise<void> {
  const wantAuth = cfg.username !== undefined;
  const methods = wantAuth ? [SOCKS_METHOD_NO_AUTH, SOCKS_METHOD_USERPASS] : [SOCKS_METHOD_NO_AUTH];
  await writeAll(c, new Uint8Array([SOCKS_VERSION, methods.length, ...methods]));
  const sel = await readExact(c, 2);
  if (sel[0] !== SOCKS_VERSION) throw new Socks5Error(`proxy answered with version ${sel[0]}, expected 5`);
  if (sel[1] === SOCKS_METHOD_USERPASS && wantAuth) {
    const enc = new TextEncoder();
    const u = enc.encode(cfg.username!);
    const p = enc.encode(cfg.password ?? "");
    const msg = new Uint8Array(3 + u.length + p.length);
    msg[0] = SOCKS_USERPASS_VERSION;
    msg[1] = u.length;
    msg.set(u, 2);
    msg[2 + u.length] = p.length;
    msg.set(p, 3 + u.length);
    await writeAll(c, msg);
    const st = await readExact(c, 2);
    if (st[1] !== 0x00) throw new Socks5Error("proxy rejected the username/password");
  } else if (sel[1] === SOCKS_METHOD_NO_ACCEPTABLE) {
    throw new Socks5Error(
      wantAuth ? "proxy accepts none of our auth methods" : "proxy requires authentication",
    );
  } else if (sel[1] !== SOCKS_METHOD_NO_AUTH) {
    throw new Socks5Error(`proxy selected unsupported auth method ${sel[1]}`);
  }

  const addr = encodeAddress(unbracket(host));
  const req = new Uint8Array(3 + addr.length + 2);
  req.set([SOCKS_VERSION, SOCKS_CMD_CONNECT, 0x00]);
  req.set(addr, 3);
  req[3 + addr.length] = port >> 8;
  req[4 + addr.length] = port & 0xff;
  await writeAll(c, req);

  const head = await readExact(c, 4);
  if (head[0] !== SOCKS_VERSION) throw new Socks5Error(`proxy reply has version ${head[0]}, expected 5`);
  if (head[1] !== 0x00) {
    throw new Socks5Error(`proxy: ${REPLY_TEXT[head[1]] ?? `reply code ${head[1]}`}`, head[1]);
  }
  // Skip BND.ADDR and BND.PORT.
  let rest: number;
  if (head[3] === SOCKS_ATYP_IPV4) rest = 4 + 2;
  else if (head[3] === SOCKS_ATYP_IPV6) rest = 16 + 2;
  else if (head[3] === SOCKS_ATYP_DOMAIN) rest = (await readExact(c, 1))[0] + 2;
  else throw new Socks5Error(`proxy reply has unknown address type ${head[3]}`);
  await readExact(c, rest);
}

export interface Socks5NetOptions {
  /** The Net used to reach the proxy (default: host). */
  base?: Net;
}

export function createSocks5Net(cfg: Socks5Config, opts: Socks5NetOptions = {}): Net {
  const base = opts.base ?? hostNet;
  const name = socks5Name(cfg);
  return {
    name,
    async dialTcp(hostname: string, port: number, dial: DialOptions = {}): Promise<Conn> {
      const deadline = dial.timeoutMs && dial.timeoutMs > 0 ? Date.now() + dial.timeoutMs : undefined;
      const c = await base.dialTcp(cfg.host, cfg.port, dial);
      let timer: ReturnType<typeof setTimeout> | undefined;
      let timedOut = false;
      if (deadline !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          c.close();
        }, Math.max(0, deadline - Date.now()));
      }
      const onAbort = () => c.close();
      dial.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        await socks5Handshake(c, cfg, hostname, port);
        return c;
      } catch (e) {
        c.close();
        if (timedOut) throw new Socks5Error(`${name}: handshake with proxy timed out`);
        if (e instanceof Socks5Error) throw new Socks5Error(`${name}: ${e.message}`, e.reply);
        throw new Socks5Error(`${name}: ${(e as Error).message ?? e}`);
      } finally {
        if (timer !== undefined) clearTimeout(timer);
        dial.signal?.removeEventListener("abort", onAbort);
      }
    },
    listenTcp(): Listener {
      throw new Error(`${name}: listening through SOCKS5 (BIND) is not supported`);
    },
    listenUdp(): DatagramConn {
      throw new Error(`${name}: UDP through SOCKS5 (UDP ASSOCIATE) is not supported`);
    },
  };
}
