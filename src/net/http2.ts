/**
 * HTTP/1.1 and HTTP/2 cleartext with prior knowledge (h2c, RFC 9113 §3.3) on one port, over any `Conn`.
 *
 * The first bytes of a connection decide: the client connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`
 * means HTTP/2, anything else is HTTP/1.x (http1.ts), with the bytes already read replayed to whichever
 * side takes the connection. HTTP/2 itself (framing, HPACK, flow control, SETTINGS) is Deno's `node:http2`
 * running over a `node:stream` Duplex of the Conn (tls.ts's connDuplex), started with
 * `http2.performServerHandshake`; this file only turns each stream into a standard `Request` for the same
 * handler the HTTP/1.1 side calls, and bounds what a client may hold.
 *
 * Bounds, as for HTTP/1.1: the preface and every request (headers and body) within `headTimeoutMs`, bodies
 * up to `maxBodyBytes`, header lists up to `maxHeadBytes`, at most `maxStreamsPerConn` concurrent streams
 * (advertised in SETTINGS and enforced: a stream past it is refused) and `maxRequestsPerConn` streams in
 * all (then GOAWAY), an idle connection closed after `idleTimeoutMs`; connections per client address
 * (both protocols) bounded by `maxConnectionsPerClient`, all connections by `maxConnections`.
 */
import * as http2 from "node:http2";
import type { Conn, Listener, NetAddr } from "./types.ts";
import {
  callHandler,
  type ConnInfo,
  DEFAULT_HTTP1_LIMITS,
  type Http1Handler,
  type Http1Limits,
  type Http1Server,
  jsonError,
  rateLimited,
  requestUrl,
  serveConn,
  serveConnections,
  type ServeOptions,
} from "./http1.ts";
import { connDuplex } from "./tls.ts";
import { type Clock, systemClock, type TimerHandle } from "../util/clock.ts";
import { logger } from "../util/log.ts";

const log = logger("http2");

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface HttpServeOptions extends ServeOptions {
  /** Concurrent HTTP/2 streams on one connection (default 32). */
  maxStreamsPerConn?: number;
  /** Concurrent connections from one client address, HTTP/1.1 and HTTP/2 together (default 16). */
  maxConnectionsPerClient?: number;
}

export const DEFAULT_MAX_STREAMS_PER_CONN = 32;
export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 16;

/** A Conn whose first reads return `prefix` (bytes already taken off the wire), then the Conn's own. */
class ReplayConn implements Conn {
  #prefix: Uint8Array;

  constructor(readonly inner: Conn, prefix: Uint8Array) {
    this.#prefix = prefix;
  }

  get localAddr(): NetAddr {
    return this.inner.localAddr;
  }

  get remoteAddr(): NetAddr {
    return this.inner.remoteAddr;
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.#prefix.length > 0) {
      const n = Math.min(p.length, this.#prefix.length);
      p.set(this.#prefix.subarray(0, n));
      this.#prefix = this.#prefix.subarray(n);
      return Promise.resolve(n);
    }
    return this.inner.read(p);
  }

  write(p: Uint8Array): Promise<number> {
    return this.inner.write(p);
  }

  closeWrite(): Promise<void> {
    return this.inner.closeWrite();
  }

  close(): void {
    this.inner.close();
  }

  setNoDelay(noDelay?: boolean): void {
    this.inner.setNoDelay?.(noDelay);
  }

  setKeepAlive(keepAlive?: boolean): void {
    this.inner.setKeepAlive?.(keepAlive);
  }
}

/**
 * Reads until the bytes either are the whole h2 preface or stop matching it (or the stream ends). Resolves
 * what was read and whether it is HTTP/2. The caller bounds the wait (it closes the Conn on timeout).
 */
export async function sniffPreface(conn: Conn): Promise<{ h2: boolean; head: Uint8Array }> {
  const buf = new Uint8Array(H2_PREFACE.length);
  let got = 0;
  while (got < H2_PREFACE.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) break;
    for (let i = got; i < got + n; i++) {
      if (buf[i] !== H2_PREFACE[i]) return { h2: false, head: buf.slice(0, got + n) };
    }
    got += n;
  }
  return { h2: got === H2_PREFACE.length, head: buf.slice(0, got) };
}

/** Headers a handler's Response may carry that mean nothing (or are forbidden) in HTTP/2. */
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);

/**
 * Serves HTTP/2 (the preface already read and replayed in `conn`) until the client goes away, a bound is
 * hit, or `signal` aborts. Never rejects.
 */
export function serveH2Conn(
  conn: Conn,
  handler: Http1Handler,
  opts: HttpServeOptions = {},
  signal?: AbortSignal,
): Promise<void> {
  const limits: Http1Limits = { ...DEFAULT_HTTP1_LIMITS, ...opts.limits };
  const clock: Clock = opts.clock ?? systemClock;
  const maxStreams = opts.maxStreamsPerConn ?? DEFAULT_MAX_STREAMS_PER_CONN;
  const info: ConnInfo = { remoteAddr: conn.remoteAddr, localAddr: conn.localAddr };
  const duplex = connDuplex(conn);
  duplex.on("error", () => {}); // the session reports it; the Conn is closed with the duplex
  const session = http2.performServerHandshake(duplex, {
    settings: {
      maxConcurrentStreams: maxStreams,
      maxHeaderListSize: limits.maxHeadBytes,
      enablePush: false,
    },
    maxSessionMemory: 4, // MB, node's own bound on what one session may buffer
    maxHeaderListPairs: limits.maxHeaderCount,
    peerMaxConcurrentStreams: maxStreams,
  } as http2.ServerOptions);
  let active = 0;
  let started = 0;
  let idleTimer: TimerHandle | undefined;
  const armIdle = () => {
    clock.clearTimer(idleTimer);
    idleTimer = clock.setTimer(() => {
      log.debug("idle connection closed", { from: info.remoteAddr.hostname });
      session.close();
      session.destroy();
    }, started === 0 ? limits.headTimeoutMs : limits.idleTimeoutMs);
  };
  armIdle();
  // The client closed its side: no more frames can come. Streams still running answer (GOAWAY first); those
  // waiting for a body end at their timer.
  duplex.once("end", () => {
    if (active === 0) session.destroy();
    else session.close();
  });

  session.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on("error", () => {}); // a reset stream: nothing to answer
    started++;
    if (active >= maxStreams) {
      log.debug("stream refused: concurrent streams limit", {
        from: info.remoteAddr.hostname,
        limit: maxStreams,
      });
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const limited = rateLimited(opts.rateLimiter, info.remoteAddr.hostname);
    if (limited) {
      respondError(stream, limited.status, limited.message, limited.headers);
      return;
    }
    active++;
    clock.clearTimer(idleTimer);
    idleTimer = undefined;
    if (started >= limits.maxRequestsPerConn) session.close(); // GOAWAY: this stream finishes, no new ones
    // Headers and body within the head timeout (no slow-body hold), as on HTTP/1.1.
    const bodyTimer = clock.setTimer(
      () => stream.close(http2.constants.NGHTTP2_CANCEL),
      limits.headTimeoutMs,
    );
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clock.clearTimer(bodyTimer);
      active--;
      if (active === 0 && !session.closed && !session.destroyed) armIdle();
    };
    stream.on("close", finish);
    void handleStream(stream, headers, handler, info, limits, bodyTimer, clock).finally(finish);
  });

  return new Promise<void>((resolve) => {
    const onAbort = () => session.destroy();
    signal?.addEventListener("abort", onAbort);
    if (signal?.aborted) session.destroy();
    session.on("error", (e: Error) => log.debug("HTTP/2 session error", { error: e }));
    session.on("close", () => {
      clock.clearTimer(idleTimer);
      signal?.removeEventListener("abort", onAbort);
      try {
        conn.close();
      } catch { /* already closed */ }
      resolve();
    });
  });
}

async function handleStream(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  handler: Http1Handler,
  info: ConnInfo,
  limits: Http1Limits,
  bodyTimer: TimerHandle,
  clock: Clock,
): Promise<void> {
  const method = String(headers[":method"] ?? "GET");
  const path = String(headers[":path"] ?? "");
  let res: Response;
  try {
    const declared = Number(headers["content-length"] ?? 0);
    if (declared > limits.maxBodyBytes) {
      throw new StreamError(413, `body larger than ${limits.maxBodyBytes} bytes`);
    }
    const body = await readStreamBody(stream, limits.maxBodyBytes);
    clock.clearTimer(bodyTimer);
    // From here the response deadline: the handler and the sending of its answer (a client that stops
    // reading keeps the stream's data queued; cancelling the stream frees it and the slot).
    const responseTimer = clock.setTimer(
      () => stream.close(http2.constants.NGHTTP2_CANCEL),
      limits.responseTimeoutMs,
    );
    stream.once("close", () => clock.clearTimer(responseTimer));
    const authority = headers[":authority"] ?? headers.host;
    // HTTP/2's :path is origin-form only (RFC 9113 8.3.1); http1's requestUrl would also take absolute-form.
    if (!path.startsWith("/")) throw new StreamError(400, "invalid request target");
    let url: string;
    try {
      url = requestUrl(path, typeof authority === "string" ? authority : undefined, info.localAddr);
    } catch {
      throw new StreamError(400, "invalid request target");
    }
    const reqHeaders = new Headers();
    for (const [k, v] of Object.entries(headers)) {
      if (k.startsWith(":") || v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) reqHeaders.append(k, String(one));
    }
    res = await callHandler(handler, method, url, reqHeaders, body, info);
  } catch (e) {
    if (!(e instanceof StreamError)) return; // the stream went away
    res = jsonError(e.status, e.message);
  }
  if (stream.destroyed || stream.closed) return;
  const body = res.body ? new Uint8Array(await res.arrayBuffer()) : new Uint8Array(0);
  const out: http2.OutgoingHttpHeaders = { ":status": res.status };
  for (const [k, v] of res.headers) {
    if (CONNECTION_SPECIFIC.has(k)) continue;
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
  }
  const noBody = method === "HEAD" || res.status === 204 || res.status === 304 || res.status < 200;
  if (!noBody) out["content-length"] = String(body.length);
  if (stream.destroyed || stream.closed) return;
  try {
    stream.respond(out, { endStream: noBody || body.length === 0 });
    if (!noBody && body.length > 0) stream.end(body);
  } catch (e) {
    log.debug("response not sent", { error: e });
  }
}

/** A JSON error answered on a stream without calling the handler. */
function respondError(
  stream: http2.ServerHttp2Stream,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = new TextEncoder().encode(JSON.stringify({ success: false, message }));
  try {
    stream.respond({
      ":status": status,
      "content-type": "application/json",
      "content-length": String(body.length),
      ...headers,
    });
    stream.end(body);
  } catch (e) {
    log.debug("response not sent", { error: e });
  }
}

class StreamError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function readStreamBody(stream: http2.ServerHttp2Stream, max: number): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    let total = 0;
    const cleanup = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onClose);
    };
    const onData = (c: Uint8Array) => {
      total += c.length;
      if (total > max) {
        cleanup();
        stream.pause();
        reject(new StreamError(413, `body larger than ${max} bytes`));
        return;
      }
      parts.push(c);
    };
    const onEnd = () => {
      cleanup();
      const out = new Uint8Array(total);
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      resolve(out);
    };
    const onClose = () => {
      cleanup();
      reject(new Error("stream closed"));
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("close", onClose);
  });
}

/**
 * Serves one connection: HTTP/2 when it opens with the preface, else HTTP/1.1. The preface must arrive
 * within the head timeout. Never rejects.
 */
export async function serveHttpConn(
  conn: Conn,
  handler: Http1Handler,
  opts: HttpServeOptions = {},
  signal?: AbortSignal,
): Promise<void> {
  const clock = opts.clock ?? systemClock;
  const timer = clock.setTimer(
    () => conn.close(),
    opts.limits?.headTimeoutMs ?? DEFAULT_HTTP1_LIMITS.headTimeoutMs,
  );
  const onAbort = () => conn.close();
  signal?.addEventListener("abort", onAbort);
  let sniffed: { h2: boolean; head: Uint8Array };
  try {
    sniffed = await sniffPreface(conn);
  } catch (e) {
    log.debug("connection ended before a request", { error: e });
    try {
      conn.close();
    } catch { /* closed */ }
    return;
  } finally {
    clock.clearTimer(timer);
    signal?.removeEventListener("abort", onAbort);
  }
  const replay = new ReplayConn(conn, sniffed.head);
  if (sniffed.h2) await serveH2Conn(replay, handler, opts, signal);
  else await serveConn(replay, handler, opts, signal);
}

/**
 * Accepts connections from `listener` and serves each with `handler` over HTTP/1.1 or h2c prior knowledge,
 * until close(). Connections past `maxConnections` in all or `maxConnectionsPerClient` from one address
 * are closed at accept.
 */
export function serveHttp(
  listener: Listener,
  handler: Http1Handler,
  opts: HttpServeOptions = {},
): Http1Server {
  return serveConnections(listener, (conn, signal) => serveHttpConn(conn, handler, opts, signal), {
    maxConnections: opts.maxConnections,
    maxConnectionsPerClient: opts.maxConnectionsPerClient ?? DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
  });
}
