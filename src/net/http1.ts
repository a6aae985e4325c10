/**
 * A small, strict HTTP/1.1 server and client over a `Conn` (RFC 9110/9112), because Deno.serve and fetch
 * cannot use the userspace sockets of a tunnel `Net`.
 *
 * Server: request line + headers under size limits, Content-Length or chunked request bodies, optional
 * keep-alive, a head-read timeout against slow clients; any handler (a Hono app via `honoHandler`) sees a
 * standard `Request` and the connection's addresses. Responses are buffered and sent with Content-Length:
 * the services behind it (the rp API, a hello page) answer small JSON/HTML bodies.
 *
 * Client: one request per connection (`Connection: close`), response bodies by Content-Length, chunked or
 * read-until-close, all under a size limit.
 *
 * Strictness (request smuggling and parser confusion): both Content-Length and Transfer-Encoding, a
 * Transfer-Encoding other than `chunked`, differing Content-Length values, whitespace before a header colon,
 * obsolete line folding, bare LF-only garbage and control characters are all refused with 400.
 */
import type { Conn, Listener, Net, NetAddr } from "./types.ts";
import { type Clock, systemClock, type TimerHandle } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import { writeAll } from "./pipe.ts";
import type { SourceRateLimiter } from "./rate_limit.ts";
import { joinHostPort } from "../util/host_port.ts";

const log = logger("http1");

export interface Http1Limits {
  /** Request/status line plus all header lines, bytes. */
  maxHeadBytes: number;
  maxHeaderCount: number;
  /** Largest accepted body (request body on the server, response body on the client). */
  maxBodyBytes: number;
  /** Milliseconds to receive a complete request (head and body) once the connection or next request starts. */
  headTimeoutMs: number;
  /** Milliseconds an idle keep-alive connection is kept. */
  idleTimeoutMs: number;
  /** Requests served on one connection before it is closed. */
  maxRequestsPerConn: number;
  /**
   * Milliseconds for the handler and the writing of its response together; past it the connection (HTTP/2:
   * the stream) is closed, so a hung handler or a client that stops reading cannot hold its slot.
   */
  responseTimeoutMs: number;
}

export const DEFAULT_HTTP1_LIMITS: Http1Limits = {
  maxHeadBytes: 16 * 1024,
  maxHeaderCount: 100,
  maxBodyBytes: 1024 * 1024,
  headTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxRequestsPerConn: 1000,
  responseTimeoutMs: 30_000,
};

/** What a handler learns about the connection besides the request. */
export interface ConnInfo {
  remoteAddr: NetAddr;
  localAddr: NetAddr;
}

export type Http1Handler = (req: Request, info: ConnInfo) => Response | Promise<Response>;

/** A protocol violation: the server answers `status` and closes. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** The handler or the writing of its response outlived `responseTimeoutMs`. */
class ResponseDeadline extends Error {}

const CR = 13, LF = 10;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, SP and HTAB; no CTLs (CR/LF/NUL in a value would split headers).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Buffered reads over a Conn: lines for the head, exact counts for bodies. */
export class ConnReader {
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;

  constructor(readonly conn: Conn, size = 16 * 1024) {
    this.#buf = new Uint8Array(size);
  }

  /** Bytes received but not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
    }
    const n = await this.conn.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }

  /**
   * The next line without its CRLF, or null at a clean end of stream before any byte of it. `budget` is the
   * most bytes the line (with CRLF) may take; exceeding it throws HttpError(tooLong).
   */
  async readLine(budget: number, tooLong = 431): Promise<string | null> {
    // Bytes already searched, relative to #start: #fill may move the window, so no absolute offsets.
    let scanned = 0;
    for (;;) {
      const lfAt = this.#buf.subarray(this.#start + scanned, this.#end).indexOf(LF);
      if (lfAt >= 0) {
        const lf = this.#start + scanned + lfAt;
        if (lf + 1 - this.#start > budget) throw new HttpError(tooLong, "header section too large");
        if (lf === this.#start || this.#buf[lf - 1] !== CR) {
          throw new HttpError(400, "line not terminated by CRLF");
        }
        const line = latin1.decode(this.#buf.subarray(this.#start, lf - 1));
        this.#start = lf + 1;
        return line;
      }
      if (this.#end - this.#start > budget) throw new HttpError(tooLong, "header section too large");
      scanned = this.#end - this.#start;
      if (!(await this.#fill())) {
        if (this.#end === this.#start) return null;
        throw new HttpError(400, "connection closed inside a header line");
      }
    }
  }

  /** Exactly n bytes, or throws when the stream ends first. */
  async readExact(n: number): Promise<Uint8Array<ArrayBuffer>> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.#end === this.#start && !(await this.#fill())) {
        throw new HttpError(400, "connection closed inside a body");
      }
      const take = Math.min(n - got, this.#end - this.#start);
      out.set(this.#buf.subarray(this.#start, this.#start + take), got);
      this.#start += take;
      got += take;
    }
    return out;
  }

  /** Everything until end of stream, refusing more than max bytes. */
  async readToEnd(max: number): Promise<Uint8Array<ArrayBuffer>> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      if (this.#end === this.#start && !(await this.#fill())) break;
      const chunk = this.#buf.slice(this.#start, this.#end);
      this.#start = this.#end;
      total += chunk.length;
      if (total > max) throw new HttpError(413, `body larger than ${max} bytes`);
      parts.push(chunk);
    }
    return concatChunks(parts, total);
  }
}

function concatChunks(parts: Uint8Array[], total: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Parsed header lines (names lower-cased, order kept, duplicates kept); the HTTP proxy reads heads with these too. */
export type HeaderList = [string, string][];

/** Reads header lines up to the empty line; `used` is what the start line already consumed of the budget. */
export async function readHeaders(
  reader: ConnReader,
  limits: Http1Limits,
  used: number,
): Promise<HeaderList> {
  const headers: HeaderList = [];
  let budget = limits.maxHeadBytes - used;
  for (;;) {
    const line = await reader.readLine(budget);
    if (line === null) throw new HttpError(400, "connection closed inside the header section");
    budget -= line.length + 2;
    if (line === "") return headers;
    if (line[0] === " " || line[0] === "\t") throw new HttpError(400, "obsolete header line folding");
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpError(400, "header line without a name");
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpError(400, "invalid header name");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (!FIELD_VALUE.test(value)) throw new HttpError(400, "invalid character in a header value");
    if (headers.length >= limits.maxHeaderCount) throw new HttpError(431, "too many header fields");
    headers.push([name.toLowerCase(), value]);
  }
}

export function headerValues(headers: HeaderList, name: string): string[] {
  return headers.filter(([n]) => n === name).map(([, v]) => v);
}

export type BodyFraming = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" };

/** Decides how the body is delimited (RFC 9112 §6.3), refusing every ambiguous combination. */
export function bodyFraming(headers: HeaderList): BodyFraming {
  const te = headerValues(headers, "transfer-encoding");
  const cl = headerValues(headers, "content-length");
  if (te.length > 0) {
    if (cl.length > 0) throw new HttpError(400, "both Transfer-Encoding and Content-Length");
    const codings = te.join(",").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new HttpError(501, "only Transfer-Encoding: chunked is supported");
    }
    return { kind: "chunked" };
  }
  if (cl.length > 0) {
    const values = new Set(cl.join(",").split(",").map((s) => s.trim()));
    if (values.size !== 1) throw new HttpError(400, "conflicting Content-Length values");
    const v = [...values][0];
    if (!/^\d{1,15}$/.test(v)) throw new HttpError(400, "invalid Content-Length");
    return { kind: "length", length: Number(v) };
  }
  return { kind: "none" };
}

async function readChunkedBody(reader: ConnReader, limits: Http1Limits): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let i = 0;; i++) {
    if (i > 1_000_000) throw new HttpError(400, "too many chunks");
    const sizeLine = await reader.readLine(1024, 400);
    if (sizeLine === null) throw new HttpError(400, "connection closed inside a chunked body");
    const sizeText = sizeLine.split(";", 1)[0].trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new HttpError(400, "invalid chunk size");
    const size = parseInt(sizeText, 16);
    if (size === 0) break;
    total += size;
    if (total > limits.maxBodyBytes) {
      throw new HttpError(413, `body larger than ${limits.maxBodyBytes} bytes`);
    }
    parts.push(await reader.readExact(size));
    const end = await reader.readLine(2, 400);
    if (end !== "") throw new HttpError(400, "chunk not followed by CRLF");
  }
  // Trailer section: read and ignore, bounded by the head limit.
  let budget = limits.maxHeadBytes;
  for (;;) {
    const line = await reader.readLine(budget);
    if (line === null) throw new HttpError(400, "connection closed inside chunked trailers");
    if (line === "") break;
    budget -= line.length + 2;
  }
  return concatChunks(parts, total);
}

async function readBody(
  reader: ConnReader,
  framing: BodyFraming,
  limits: Http1Limits,
): Promise<Uint8Array<ArrayBuffer>> {
  if (framing.kind === "none") return new Uint8Array(0);
  if (framing.kind === "chunked") return await readChunkedBody(reader, limits);
  if (framing.length > limits.maxBodyBytes) {
    throw new HttpError(413, `body larger than ${limits.maxBodyBytes} bytes`);
  }
  return await reader.readExact(framing.length);
}

const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

function serializeHead(startLine: string, headers: [string, string][]): Uint8Array {
  let head = startLine + "\r\n";
  for (const [k, v] of headers) {
    // A handler may put anything in a Headers object's values only through Headers, which already refuses
    // CR/LF; checked again because the head is security-relevant.
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) continue;
    head += `${k}: ${v}\r\n`;
  }
  return encoder.encode(head + "\r\n");
}

/** Writes a Response (buffered) as HTTP/1.1; HEAD and 1xx/204/304 carry no body. */
async function writeResponse(conn: Conn, res: Response, method: string, keepAlive: boolean): Promise<void> {
  const noBody = method === "HEAD" || res.status === 204 || res.status === 304 || res.status < 200;
  const body = res.body ? new Uint8Array(await res.arrayBuffer()) : new Uint8Array(0);
  const headers: [string, string][] = [];
  for (const [k, v] of res.headers) {
    if (k === "content-length" || k === "transfer-encoding" || k === "connection") continue;
    headers.push([k, v]);
  }
  const lengthFromHandler = res.headers.get("content-length");
  if (method === "HEAD" && res.body === null) {
    // A HEAD answer without a body (Hono strips it) keeps the length the handler declared, if any.
    if (lengthFromHandler !== null && /^\d+$/.test(lengthFromHandler)) {
      headers.push(["content-length", lengthFromHandler]);
    }
  } else if (!(res.status === 204 || res.status === 304 || res.status < 200)) {
    headers.push(["content-length", String(body.length)]);
  }
  headers.push(["connection", keepAlive ? "keep-alive" : "close"]);
  const reason = REASONS[res.status] ?? res.statusText ?? "";
  await writeAll(conn, serializeHead(`HTTP/1.1 ${res.status} ${reason}`.trimEnd(), headers));
  if (!noBody && body.length > 0) await writeAll(conn, body);
}

/** The JSON error answer of both HTTP versions (`{success: false, message}`). */
export function jsonError(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ success: false, message }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function errorResponse(e: HttpError): Response {
  return jsonError(e.status, e.message, e.headers);
}

/**
 * The 429 of both HTTP versions when `source` has no token left, else null. Retry-After in whole seconds.
 */
export function rateLimited(limiter: SourceRateLimiter | undefined, source: string): HttpError | null {
  const waitMs = limiter?.take(source) ?? 0;
  if (waitMs === 0) return null;
  return new HttpError(429, limiter!.refusal(source, waitMs), {
    "retry-after": String(Math.ceil(waitMs / 1000)),
  });
}

/**
 * Builds the Request (no body for GET/HEAD or an empty one) and runs the handler; a handler that throws is
 * logged and answered 500, for HTTP/1.1 and HTTP/2 alike.
 */
export async function callHandler(
  handler: Http1Handler,
  method: string,
  url: string,
  headers: Headers,
  body: Uint8Array<ArrayBuffer>,
  info: ConnInfo,
): Promise<Response> {
  const req = new Request(url, {
    method,
    headers,
    body: method === "GET" || method === "HEAD" || body.length === 0 ? null : body,
  });
  try {
    return await handler(req, info);
  } catch (e) {
    log.warn("handler failed", { error: e, path: new URL(url).pathname });
    return jsonError(500, "internal error");
  }
}

export interface ServeOptions {
  limits?: Partial<Http1Limits>;
  /** Concurrent connections served (default 256); more are closed as soon as they are accepted. */
  maxConnections?: number;
  /** Keep connections open between requests (default true). */
  keepAlive?: boolean;
  clock?: Clock;
  /** Requests per second per client address (shared by all its connections); none when absent. */
  rateLimiter?: SourceRateLimiter;
}

/**
 * Serves HTTP/1.1 on one connection until the client closes, a request says `Connection: close`, a protocol
 * error, a timeout, or `signal` aborts. Never rejects: every failure closes this connection only.
 */
export async function serveConn(
  conn: Conn,
  handler: Http1Handler,
  opts: ServeOptions = {},
  signal?: AbortSignal,
): Promise<void> {
  const limits = { ...DEFAULT_HTTP1_LIMITS, ...opts.limits };
  const clock = opts.clock ?? systemClock;
  const reader = new ConnReader(conn);
  let timer: TimerHandle | undefined;
  let onExpiry: (() => void) | undefined;
  const arm = (ms: number) => {
    clock.clearTimer(timer);
    timer = clock.setTimer(() => {
      conn.close();
      onExpiry?.();
    }, ms);
  };
  const onAbort = () => conn.close();
  signal?.addEventListener("abort", onAbort);
  try {
    for (let served = 0; served < limits.maxRequestsPerConn; served++) {
      onExpiry = undefined;
      arm(served === 0 ? limits.headTimeoutMs : limits.idleTimeoutMs);
      let method = "GET";
      let keepAlive = false;
      let res: Response;
      try {
        const requestLine = await reader.readLine(limits.maxHeadBytes, 414);
        if (requestLine === null) return; // clean close between requests
        if (served > 0) arm(limits.headTimeoutMs);
        const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/.exec(requestLine);
        if (!m) throw new HttpError(400, "malformed request line");
        method = m[1];
        const target = m[2];
        if (m[3] !== "1") throw new HttpError(505, "only HTTP/1.x is supported");
        const minor = Number(m[4]);
        const headers = await readHeaders(reader, limits, requestLine.length + 2);
        const hosts = headerValues(headers, "host");
        if (hosts.length > 1 || (minor >= 1 && hosts.length === 0)) {
          throw new HttpError(400, "exactly one Host header is required");
        }
        const connTokens = headerValues(headers, "connection").join(",").toLowerCase().split(",").map((s) =>
          s.trim()
        );
        keepAlive = opts.keepAlive !== false &&
          (minor >= 1 ? !connTokens.includes("close") : connTokens.includes("keep-alive"));
        const framing = bodyFraming(headers);
        // Counted per request, before the body is read; the connection closes after the 429 (the body, if
        // any, is not read).
        const limited = rateLimited(opts.rateLimiter, conn.remoteAddr.hostname);
        if (limited) throw limited;
        if (framing.kind === "length" && framing.length > limits.maxBodyBytes) {
          throw new HttpError(413, `body larger than ${limits.maxBodyBytes} bytes`);
        }
        // curl and others wait (about a second) for this before sending a large body.
        const expect = headerValues(headers, "expect").join(",").toLowerCase();
        if (minor >= 1 && framing.kind !== "none" && expect.includes("100-continue")) {
          await writeAll(conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
        }
        // The head timer still runs: the body must arrive within it too (no slow-body hold).
        const body = await readBody(reader, framing, limits);
        // From here the response deadline: the handler and the write of its answer.
        const deadline = new Promise<never>((_, reject) => {
          onExpiry = () => reject(new ResponseDeadline(`no response within ${limits.responseTimeoutMs} ms`));
        });
        deadline.catch(() => {});
        arm(limits.responseTimeoutMs);
        const info: ConnInfo = { remoteAddr: conn.remoteAddr, localAddr: conn.localAddr };
        const url = requestUrl(target, hosts[0], info.localAddr);
        const reqHeaders = new Headers();
        for (const [k, v] of headers) reqHeaders.append(k, v);
        res = await Promise.race([callHandler(handler, method, url, reqHeaders, body, info), deadline]);
      } catch (e) {
        if (!(e instanceof HttpError)) throw e; // I/O error: the connection is gone
        res = errorResponse(e);
        keepAlive = false;
        // Within the current timer (head or response): a client that does not read it is cut there.
      }
      if (!keepAlive || served + 1 >= limits.maxRequestsPerConn) {
        await writeResponse(conn, res, method, false);
        return;
      }
      await writeResponse(conn, res, method, true);
    }
  } catch (e) {
    log.debug("connection ended", { error: e });
  } finally {
    clock.clearTimer(timer);
    signal?.removeEventListener("abort", onAbort);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

/**
 * The absolute URL of a request target: origin-form (`/path`, with `host` when it is a plain authority, else
 * the local address) or absolute-form. Throws HttpError 400 for anything else.
 */
export function requestUrl(target: string, host: string | undefined, local: NetAddr): string {
  const fallbackHost = joinHostPort(local.hostname, local.port);
  if (target.startsWith("/")) {
    const authority = host && /^[A-Za-z0-9.\-\[\]:_]+$/.test(host) ? host : fallbackHost;
    try {
      return new URL(`http://${authority}${target}`).href;
    } catch {
      throw new HttpError(400, "invalid request target");
    }
  }
  if (/^https?:\/\//i.test(target)) {
    try {
      return new URL(target).href;
    } catch {
      throw new HttpError(400, "invalid request target");
    }
  }
  throw new HttpError(400, "unsupported request target form");
}

export interface Http1Server {
  readonly addr: NetAddr;
  readonly activeConnections: number;
  /** Stops accepting, closes every connection; resolves when all handlers are done. */
  close(): Promise<void>;
}

/** Accepts connections from `listener` and serves each with `handler` until close(). */
export function serveHttp1(listener: Listener, handler: Http1Handler, opts: ServeOptions = {}): Http1Server {
  return serveConnections(listener, (conn, signal) => serveConn(conn, handler, opts, signal), {
    maxConnections: opts.maxConnections,
  });
}

export interface ConnectionLimits {
  /** Connections served at once (default 256); more are closed at accept. */
  maxConnections?: number;
  /** Connections from one address at once (default: no limit of its own). */
  maxConnectionsPerClient?: number;
}

/**
 * The accept loop of the HTTP servers: serves each connection with `serveOne` until close(), closing at
 * accept the connections past the limits (in all, and per client address).
 */
export function serveConnections(
  listener: Listener,
  serveOne: (conn: Conn, signal: AbortSignal) => Promise<void>,
  limits: ConnectionLimits = {},
): Http1Server {
  const abort = new AbortController();
  const live = new Set<Promise<void>>();
  const perClient = new Map<string, number>();
  const maxTotal = limits.maxConnections ?? 256;
  const maxPerClient = limits.maxConnectionsPerClient ?? Infinity;
  const acceptLoop = (async () => {
    for (;;) {
      let conn: Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (!abort.signal.aborted) log.debug("listener stopped", { error: e });
        return;
      }
      const client = conn.remoteAddr.hostname;
      const held = perClient.get(client) ?? 0;
      if (live.size >= maxTotal || held >= maxPerClient) {
        log.debug("connection limit reached; closing", {
          from: joinHostPort(client, conn.remoteAddr.port),
          fromClient: held,
          total: live.size,
        });
        conn.close();
        continue;
      }
      perClient.set(client, held + 1);
      const p = serveOne(conn, abort.signal).finally(() => {
        live.delete(p);
        const n = (perClient.get(client) ?? 1) - 1;
        if (n <= 0) perClient.delete(client);
        else perClient.set(client, n);
      });
      live.add(p);
    }
  })();
  return {
    addr: listener.addr,
    get activeConnections() {
      return live.size;
    },
    async close() {
      abort.abort();
      try {
        listener.close();
      } catch { /* already closed */ }
      await acceptLoop;
      await Promise.allSettled([...live]);
    },
  };
}

/** The subset of a Hono app the server needs; bindings carry the caller's addresses. */
export interface FetchApp<E> {
  fetch(req: Request, env: E): Response | Promise<Response>;
}

/** Serves a Hono app: `c.env.remoteAddr` / `c.env.localAddr` are the connection's addresses. */
export function honoHandler<E extends ConnInfo>(
  app: FetchApp<E>,
  extra?: Omit<E, keyof ConnInfo>,
): Http1Handler {
  return (req, info) => app.fetch(req, { ...(extra ?? {}), ...info } as E);
}

// ---------------------------------------------------------------------------------------------------------
// Client

export interface Http1Response {
  status: number;
  headers: Headers;
  body: Uint8Array;
  text(): string;
  json(): unknown;
}

export interface Http1RequestInit {
  method?: string;
  /** Origin-form target, e.g. "/api/v1/heartbeat?x=1". */
  path: string;
  /** Host header value. */
  host: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
}

/** Sends one request on conn (`Connection: close`) and reads the whole response. Does not close conn. */
export async function http1Request(
  conn: Conn,
  init: Http1RequestInit,
  limits: Partial<Http1Limits> = {},
): Promise<Http1Response> {
  const lim = { ...DEFAULT_HTTP1_LIMITS, ...limits };
  const method = init.method ?? "GET";
  if (!TOKEN.test(method)) throw new Error(`invalid method ${method}`);
  if (!init.path.startsWith("/") || /[\s]/.test(init.path)) {
    throw new Error(`invalid request path ${init.path}`);
  }
  const body = typeof init.body === "string" ? encoder.encode(init.body) : init.body;
  const headers: [string, string][] = [["host", init.host]];
  for (const [k, v] of Object.entries(init.headers ?? {})) {
    if (!TOKEN.test(k) || !FIELD_VALUE.test(v) || /[\r\n]/.test(v)) throw new Error(`invalid header ${k}`);
    headers.push([k.toLowerCase(), v]);
  }
  if (body !== undefined || method === "POST" || method === "PUT" || method === "PATCH") {
    headers.push(["content-length", String(body?.length ?? 0)]);
  }
  headers.push(["connection", "close"]);
  await writeAll(conn, serializeHead(`${method} ${init.path} HTTP/1.1`, headers));
  if (body && body.length > 0) await writeAll(conn, body);

  const reader = new ConnReader(conn);
  for (let interim = 0;; interim++) {
    if (interim > 10) throw new HttpError(502, "too many interim responses");
    const statusLine = await reader.readLine(lim.maxHeadBytes, 502);
    if (statusLine === null) throw new HttpError(502, "connection closed before a response");
    const m = /^HTTP\/1\.(\d) (\d{3})(?: .*)?$/.exec(statusLine);
    if (!m) throw new HttpError(502, "malformed status line");
    const status = Number(m[2]);
    const headerList = await readHeaders(reader, lim, statusLine.length + 2);
    if (status >= 100 && status < 200) continue;
    const resHeaders = new Headers();
    for (const [k, v] of headerList) resHeaders.append(k, v);
    let resBody: Uint8Array;
    if (method === "HEAD" || status === 204 || status === 304) resBody = new Uint8Array(0);
    else {
      const framing = bodyFraming(headerList);
      resBody = framing.kind === "none"
        ? await reader.readToEnd(lim.maxBodyBytes)
        : await readBody(reader, framing, lim);
    }
    return {
      status,
      headers: resHeaders,
      body: resBody,
      text: () => new TextDecoder().decode(resBody),
      json: () => JSON.parse(new TextDecoder().decode(resBody)),
    };
  }
}

export interface Http1FetchOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Milliseconds for the whole exchange (dial + request + response); default 10 s. */
  timeoutMs?: number;
  limits?: Partial<Http1Limits>;
}

/** Dials hostname:port on net and performs one request; the connection is closed afterwards. */
export async function http1Fetch(
  net: Net,
  hostname: string,
  port: number,
  path: string,
  opts: Http1FetchOptions = {},
): Promise<Http1Response> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const abort = new AbortController();
  let conn: Conn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
    conn?.close();
  }, timeoutMs);
  try {
    conn = await net.dialTcp(hostname, port, { timeoutMs, signal: abort.signal });
    if (timedOut) throw new Error("timed out");
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    return await http1Request(conn, {
      method: opts.method,
      path,
      host: port === 80 ? host : `${host}:${port}`,
      headers: opts.headers,
      body: opts.body,
    }, opts.limits);
  } catch (e) {
    if (timedOut) {
      throw new Error(
        `HTTP ${opts.method ?? "GET"} ${path} to ${
          joinHostPort(hostname, port)
        } timed out after ${timeoutMs} ms`,
      );
    }
    throw e;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}
