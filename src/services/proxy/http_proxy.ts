/**
 * The HTTP proxy side of one client connection (RFC 9110 §9.3.6 CONNECT, RFC 9112 §3.2.2 absolute-form):
 * - `CONNECT host:port` dials the target through the tunnel, answers 200 and then carries bytes both ways;
 * - `GET http://host/path` (any method) is forwarded in origin-form with the request-target's host as Host,
 *   hop-by-hop headers removed (RFC 9110 §7.6.1: Connection and the fields it names, Keep-Alive, TE, Upgrade,
 *   Proxy-Connection, Proxy-Authorization) and `Connection: close`; the body keeps its framing and is copied
 *   exactly (Content-Length bytes or the chunks), the response head is cleaned the same way and its body
 *   copied until the target closes. One request per client connection (every answer says Connection: close).
 * - With credentials, a request without a matching `Proxy-Authorization: Basic` gets 407 with
 *   `Proxy-Authenticate: Basic realm="wgedge"`. Malformed requests get 400 (from http1.ts's strict head
 *   parser), dials that fail 502 (504 on timeout).
 */
import {
  type BodyFraming,
  bodyFraming,
  ConnReader,
  DEFAULT_HTTP1_LIMITS,
  type HeaderList,
  headerValues,
  HttpError,
  readHeaders,
} from "../../net/http1.ts";
import { type PipeCounters, writeAll } from "../../net/pipe.ts";
import { unbracket } from "../../net/resolve.ts";
import type { Conn } from "../../net/types.ts";
import type { Credentials } from "./auth.ts";
import { DialFailure, dialTarget } from "./dial.ts";
import { noteProxyError } from "./report.ts";
import type { ProxySession } from "./server.ts";

const LIMITS = DEFAULT_HTTP1_LIMITS;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/;
const STATUS_LINE = /^HTTP\/1\.\d (\d{3})(?: .*)?$/;
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
]);
/** Never removed because Connection names them: they frame the message or route it. */
const FRAMING = new Set(["content-length", "transfer-encoding", "host"]);
const REASONS: Record<number, string> = {
  200: "Connection established",
  400: "Bad Request",
  407: "Proxy Authentication Required",
  413: "Content Too Large",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};
const encoder = new TextEncoder();

/** The headers without hop-by-hop fields (and without those the Connection header names). */
export function endToEnd(headers: HeaderList): HeaderList {
  const named = new Set(
    headerValues(headers, "connection").join(",").split(",").map((t) => t.trim().toLowerCase()),
  );
  return headers.filter(([n]) => !HOP_BY_HOP.has(n) && (FRAMING.has(n) || !named.has(n)));
}

function head(startLine: string, headers: HeaderList): Uint8Array {
  let text = `${startLine}\r\n`;
  for (const [k, v] of headers) text += `${k}: ${v}\r\n`;
  return encoder.encode(`${text}\r\n`);
}

async function respond(conn: Conn, status: number, message: string, extra: HeaderList = []): Promise<void> {
  const body = encoder.encode(`${message}\n`);
  const h = head(`HTTP/1.1 ${status} ${REASONS[status] ?? ""}`.trimEnd(), [
    ["content-type", "text/plain; charset=utf-8"],
    ["content-length", String(body.length)],
    ["connection", "close"],
    ...extra,
  ]);
  const out = new Uint8Array(h.length + body.length);
  out.set(h);
  out.set(body, h.length);
  await writeAll(conn, out).catch(() => {});
}

/** `Proxy-Authorization: Basic base64(user:password)` matching the proxy's credentials. */
export function authorized(headers: HeaderList, credentials: Credentials): boolean {
  const values = headerValues(headers, "proxy-authorization");
  if (values.length !== 1) return false;
  const m = /^Basic +([A-Za-z0-9+/]+={0,2})$/i.exec(values[0].trim());
  if (!m) return false;
  let raw: string;
  try {
    raw = atob(m[1]);
  } catch {
    return false;
  }
  const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  const colon = bytes.indexOf(0x3a);
  if (colon < 0) return false;
  return credentials.check(bytes.subarray(0, colon), bytes.subarray(colon + 1));
}

/** `host:port` or `[v6]:port` of a CONNECT request (RFC 9110 §9.3.6: authority-form, port required). */
export function parseAuthority(target: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(target);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2], port };
}

export async function serveHttpProxy(conn: Conn, s: ProxySession): Promise<void> {
  const reader = new ConnReader(conn);
  let method: string, target: string, headers: HeaderList;
  try {
    const line = await reader.readLine(LIMITS.maxHeadBytes, 414);
    if (line === null) return;
    const m = REQUEST_LINE.exec(line);
    if (!m) throw new HttpError(400, "malformed request line");
    if (m[3] !== "1") throw new HttpError(505, "only HTTP/1.x is supported");
    [method, target] = [m[1], m[2]];
    headers = await readHeaders(reader, LIMITS, line.length + 2);
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    s.stats.badRequests++;
    return await respond(conn, e.status, e.message);
  }
  if (s.credentials && !authorized(headers, s.credentials)) {
    s.stats.loginFailures++;
    s.log.info("HTTP proxy authentication failed", { proxy: s.spec.id, from: conn.remoteAddr.hostname });
    return await respond(conn, 407, "proxy authentication required", [
      ["proxy-authenticate", 'Basic realm="wgedge"'],
    ]);
  }
  if (method === "CONNECT") return await tunnelConnect(conn, reader, target, s);
  return await forward(conn, reader, method, target, headers, s);
}

async function dialOrAnswer(
  conn: Conn,
  host: string,
  port: number,
  s: ProxySession,
): Promise<Conn | undefined> {
  try {
    const target = await dialTarget(s.egress, host, port, s.signal);
    s.stats.lastSuccessMs = s.clock.wallMs();
    return target;
  } catch (e) {
    s.stats.dialFailures++;
    const f = e instanceof DialFailure ? e : new DialFailure("other", String(e));
    noteProxyError(s.stats, f.message, s.clock.wallMs());
    await respond(conn, f.kind === "timeout" ? 504 : 502, `cannot reach ${host}:${port}: ${f.message}`);
    return undefined;
  }
}

async function tunnelConnect(conn: Conn, reader: ConnReader, target: string, s: ProxySession): Promise<void> {
  const t = parseAuthority(target);
  if (!t) {
    s.stats.badRequests++;
    return await respond(conn, 400, "CONNECT needs host:port");
  }
  const upstream = await dialOrAnswer(conn, t.host, t.port, s);
  if (!upstream) return;
  try {
    await writeAll(conn, encoder.encode("HTTP/1.1 200 Connection established\r\n\r\n"));
    await s.splice(conn, reader, upstream);
  } finally {
    upstream.close();
  }
}

async function forward(
  conn: Conn,
  reader: ConnReader,
  method: string,
  target: string,
  headers: HeaderList,
  s: ProxySession,
): Promise<void> {
  let url: URL | undefined;
  let framing: BodyFraming | undefined;
  let problem: HttpError | undefined;
  if (/^https:\/\//i.test(target)) problem = new HttpError(400, "use CONNECT for https:// targets");
  else if (!/^http:\/\//i.test(target)) {
    problem = new HttpError(400, "a proxy request needs an absolute http:// URL (or CONNECT host:port)");
  } else {
    try {
      url = new URL(target);
      framing = bodyFraming(headers);
    } catch (e) {
      problem = e instanceof HttpError ? e : new HttpError(400, "invalid request target");
    }
  }
  if (problem || !url || !framing) {
    s.stats.badRequests++;
    return await respond(conn, problem?.status ?? 400, problem?.message ?? "bad request");
  }
  const host = unbracket(url.hostname);
  const port = url.port === "" ? 80 : Number(url.port);
  const upstream = await dialOrAnswer(conn, host, port, s);
  if (!upstream) return;
  s.handshakeDone();
  const counters = s.byteCounters();
  // RFC 9112 §3.2.2: the request-target's authority replaces any Host the client sent.
  const out: HeaderList = [["host", url.host], ...endToEnd(headers).filter(([n]) => n !== "host")];
  out.push(["connection", "close"]);
  let answered = false;
  const fail = () => {
    conn.close();
    upstream.close();
  };
  try {
    const h = head(`${method} ${url.pathname}${url.search} HTTP/1.1`, out);
    await writeAll(upstream, h);
    counters.aToB += h.length;
    await Promise.all([
      copyBody(reader, upstream, framing, counters).catch((e) => {
        fail();
        throw e;
      }),
      relayResponse(upstream, conn, counters, () => answered = true).catch((e) => {
        if (!answered && e instanceof HttpError) {
          s.stats.dialFailures++;
          noteProxyError(s.stats, `${url!.host}: ${e.message}`, s.clock.wallMs());
          return respond(conn, 502, e.message).then(fail);
        }
        fail();
        throw e;
      }),
    ]);
  } finally {
    upstream.close();
  }
}

/** Copies n bytes from the reader to dst. */
async function copyExact(reader: ConnReader, dst: Conn, n: number, counters: PipeCounters): Promise<void> {
  for (let left = n; left > 0;) {
    const part = await reader.readExact(Math.min(left, 32 * 1024));
    await writeAll(dst, part);
    counters.aToB += part.length;
    left -= part.length;
  }
}

/** The request body with its framing unchanged: Content-Length bytes, or each chunk and the trailers. */
async function copyBody(reader: ConnReader, dst: Conn, framing: BodyFraming, counters: PipeCounters) {
  if (framing.kind === "none") return;
  if (framing.kind === "length") return await copyExact(reader, dst, framing.length, counters);
  const line = async (budget: number) => {
    const l = await reader.readLine(budget, 400);
    if (l === null) throw new HttpError(400, "connection closed inside a chunked body");
    const bytes = encoder.encode(`${l}\r\n`);
    await writeAll(dst, bytes);
    counters.aToB += bytes.length;
    return l;
  };
  for (;;) {
    const sizeText = (await line(1024)).split(";", 1)[0].trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new HttpError(400, "invalid chunk size");
    const size = parseInt(sizeText, 16);
    if (size === 0) break;
    await copyExact(reader, dst, size, counters);
    if ((await line(2)) !== "") throw new HttpError(400, "chunk not followed by CRLF");
  }
  for (let budget = LIMITS.maxHeadBytes; budget > 0;) {
    const l = await line(budget);
    if (l === "") return;
    budget -= l.length + 2;
  }
  throw new HttpError(400, "chunked trailers too large");
}

/** The target's response: interim 1xx heads as they come, the final head cleaned, then the body to EOF. */
async function relayResponse(upstream: Conn, client: Conn, counters: PipeCounters, onHead: () => void) {
  const reader = new ConnReader(upstream);
  for (let interim = 0;; interim++) {
    if (interim > 10) throw new HttpError(502, "too many interim responses from the target");
    const status = await reader.readLine(LIMITS.maxHeadBytes, 502);
    if (status === null) throw new HttpError(502, "the target closed without a response");
    const m = STATUS_LINE.exec(status);
    if (!m) throw new HttpError(502, "the target answered with a malformed status line");
    const headers = await readHeaders(reader, LIMITS, status.length + 2);
    const code = Number(m[1]);
    const isInterim = code >= 100 && code < 200 && code !== 101;
    const cleaned = endToEnd(headers);
    if (!isInterim) cleaned.push(["connection", "close"]);
    const h = head(status, cleaned);
    onHead();
    await writeAll(client, h);
    counters.bToA += h.length;
    if (!isInterim) break;
  }
  if (reader.buffered > 0) {
    const early = await reader.readExact(reader.buffered);
    await writeAll(client, early);
    counters.bToA += early.length;
  }
  const buf = new Uint8Array(32 * 1024);
  for (;;) {
    const n = await upstream.read(buf);
    if (n === null) break;
    await writeAll(client, buf.subarray(0, n));
    counters.bToA += n;
  }
  await client.closeWrite().catch(() => {});
}
