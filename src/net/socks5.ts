/**
 * A Net that dials TCP through a SOCKS5 proxy: RFC 1928 (CONNECT) with RFC 1929 username/password auth.
 *
 * `socks5://[user:pass@]host:port` lets the proxy resolve names (like curl's socks5h, what egress through a
 * proxy normally wants: the proxy's view of DNS); `socks5h://` is accepted as a synonym. Only CONNECT is
 * implemented: BIND and UDP ASSOCIATE are not, so listen* throw. Credentials never appear in `name`. The byte
 * layouts are src/wire/socks5.ts's, shared with wgedge's own SOCKS5 server (src/services/proxy/).
 */
import type { Conn, DatagramConn, DialOptions, Listener, Net } from "./types.ts";
import { unbracket } from "./resolve.ts";
import { hostNet } from "./host.ts";
import { readExactly, writeAll } from "./pipe.ts";
import { joinHostPort } from "../util/host_port.ts";

import {
  encodeGreeting,
  encodeRequest,
  encodeUserPass,
  parseRequest,
  requestNeeded,
  SOCKS_CMD_CONNECT,
  SOCKS_METHOD_NO_ACCEPTABLE,
  SOCKS_METHOD_NO_AUTH,
  SOCKS_METHOD_USERPASS,
  SOCKS_REP_SUCCEEDED,
  SOCKS_REPLY_TEXT,
  SOCKS_VERSION,
} from "../wire/socks5.ts";

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

/** Reads one reply (VER REP RSV ATYP BND.ADDR BND.PORT), its length taken from the bytes seen so far. */
async function readReply(c: Conn): Promise<Uint8Array> {
  let buf = await readExact(c, requestNeeded(new Uint8Array(0)));
  for (let need = requestNeeded(buf); need > buf.length; need = requestNeeded(buf)) {
    const more = new Uint8Array(need);
    more.set(buf);
    more.set(await readExact(c, need - buf.length), buf.length);
    buf = more;
  }
  return buf;
}

/** Runs the RFC 1928/1929 handshake on an open connection to the proxy; resolves once CONNECT succeeded. */
export async function socks5Handshake(c: Conn, cfg: Socks5Config, host: string, port: number): Promise<void> {
  const wantAuth = cfg.username !== undefined;
  const methods = wantAuth ? [SOCKS_METHOD_NO_AUTH, SOCKS_METHOD_USERPASS] : [SOCKS_METHOD_NO_AUTH];
  await writeAll(c, encodeGreeting(methods));
  const sel = await readExact(c, 2);
  if (sel[0] !== SOCKS_VERSION) throw new Socks5Error(`proxy answered with version ${sel[0]}, expected 5`);
  if (sel[1] === SOCKS_METHOD_USERPASS && wantAuth) {
    await writeAll(c, encodeUserPass(cfg.username!, cfg.password ?? ""));
    const st = await readExact(c, 2);
    if (st[1] !== 0x00) throw new Socks5Error("proxy rejected the username/password");
  } else if (sel[1] === SOCKS_METHOD_NO_ACCEPTABLE) {
    throw new Socks5Error(
      wantAuth ? "proxy accepts none of our auth methods" : "proxy requires authentication",
    );
  } else if (sel[1] !== SOCKS_METHOD_NO_AUTH) {
    throw new Socks5Error(`proxy selected unsupported auth method ${sel[1]}`);
  }

  let req: Uint8Array;
  try {
    req = encodeRequest(SOCKS_CMD_CONNECT, unbracket(host), port);
  } catch (e) {
    throw new Socks5Error((e as Error).message);
  }
  await writeAll(c, req);

  const raw = await readReply(c);
  if (raw[0] !== SOCKS_VERSION) throw new Socks5Error(`proxy reply has version ${raw[0]}, expected 5`);
  if (raw[1] !== SOCKS_REP_SUCCEEDED) {
    throw new Socks5Error(`proxy: ${SOCKS_REPLY_TEXT[raw[1]] ?? `reply code ${raw[1]}`}`, raw[1]);
  }
  // BND.ADDR/BND.PORT are not needed for CONNECT, but a reply we cannot parse is a broken proxy.
  if (!parseRequest(raw)) throw new Socks5Error(`proxy reply has unknown address type ${raw[3]}`);
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
