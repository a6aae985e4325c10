/**
 * NTRIP heads on the client side of a caster (NTRIP 1.0 and 2.0, as real casters and RTKLIB str2str speak
 * them): the request a rover sends to pull a mountpoint (GET), the request a base sends to push one (v1
 * SOURCE, v2 POST), and the caster's reply head, read incrementally with a bounded size and classified.
 *
 * Requests:
 *   v1 pull   GET /MOUNT HTTP/1.0, User-Agent, [Authorization: Basic], blank line
 *   v2 pull   GET /MOUNT HTTP/1.1, Host, Ntrip-Version: Ntrip/2.0, User-Agent, [Authorization], [Ntrip-GGA],
 *             Connection: close, blank line
 *   v1 push   SOURCE <password> /MOUNT, Source-Agent, [STR: ...], blank line
 *   v2 push   POST /MOUNT HTTP/1.1, Host, Ntrip-Version: Ntrip/2.0, Authorization: Basic, User-Agent,
 *             [Ntrip-STR], Transfer-Encoding: chunked, Connection: close, blank line (the body is chunked)
 *
 * Replies (the status line decides; HTTP replies are read to their blank line first):
 *   ICY 200 OK                       data follows at once: no headers, no blank line (str2str, even to v2);
 *                                    a blank line right after it (some old casters) is skipped when present
 *   HTTP/1.x 200 + headers           data after the blank line; Transfer-Encoding: chunked = chunked body
 *   SOURCETABLE 200 OK, Content-Type: gnss/sourcetable, 404        the mountpoint does not exist
 *   HTTP/1.x 401, ERROR - Bad Password                            bad credentials
 *   HTTP/1.x 409, ERROR - Mount Point Taken or Invalid            mount taken (push)
 *   push v1: a line containing OK = accepted; push v2: no Ntrip-Version header = the caster speaks v1 only
 *
 * Requests are written as UTF-8 (a password may not be ASCII); replies are read as Latin-1, so a stray byte
 * cannot throw.
 */

/** Longest reply head read before giving up (status line and headers; a sourcetable body is not read). */
export const NTRIP_REPLY_HEAD_MAX = 16 * 1024;
/** Longest status line kept for display (status, logs). */
export const NTRIP_REPLY_LINE_SHOWN = 200;

export type NtripVersion = 1 | 2;

/** What was asked; it decides how a reply is read (a push reply "OK" is not a pull reply). */
export type NtripRequestKind = "pull" | "push";

/** `NTRIP wgedge/<version>`: products identify themselves; never a receiver brand. */
export function ntripAgent(version: string): string {
  return `NTRIP wgedge/${version}`;
}

/** `/MOUNT` for a mount given with or without its slash. */
export function mountPath(mount: string): string {
  return mount.startsWith("/") ? mount : `/${mount}`;
}

/** `host` or `host:port` for the Host header (IPv6 literals bracketed; port 80 left out). */
export function hostHeader(host: string, port: number): string {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return port === 80 ? h : `${h}:${port}`;
}

/** RFC 7617 Basic credentials of user:password, UTF-8. */
export function basicAuth(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

function head(lines: string[]): Uint8Array {
  for (const l of lines) {
    if (/[\r\n]/.test(l)) throw new RangeError("a request head line may not contain CR or LF");
  }
  return new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
}

export interface PullRequest {
  version: NtripVersion;
  host: string;
  port: number;
  mount: string;
  /** Absent = no Authorization header (open mountpoint). */
  user?: string;
  password?: string;
  agent: string;
  /** v2 only: a GGA sentence for the Ntrip-GGA header (without CR LF). */
  gga?: string;
}

/** The GET a rover sends to pull a mountpoint. */
export function buildPullRequest(r: PullRequest): Uint8Array {
  const auth = r.user !== undefined ? [`Authorization: ${basicAuth(r.user, r.password ?? "")}`] : [];
  if (r.version === 1) {
    return head([`GET ${mountPath(r.mount)} HTTP/1.0`, `User-Agent: ${r.agent}`, ...auth]);
  }
  return head([
    `GET ${mountPath(r.mount)} HTTP/1.1`,
    `Host: ${hostHeader(r.host, r.port)}`,
    "Ntrip-Version: Ntrip/2.0",
    `User-Agent: ${r.agent}`,
    ...auth,
    ...(r.gga !== undefined ? [`Ntrip-GGA: ${r.gga.trim()}`] : []),
    "Connection: close",
  ]);
}

export interface PushRequest {
  version: NtripVersion;
  host: string;
  port: number;
  mount: string;
  /** v2 only (v1 SOURCE carries only the password). */
  user?: string;
  password: string;
  agent: string;
  /** A sourcetable STR record for the caster (v1 `STR:`, v2 `Ntrip-STR:`). */
  str?: string;
}

/** The request a base sends to push a mountpoint (v1 SOURCE or v2 POST with a chunked body). */
export function buildPushRequest(r: PushRequest): Uint8Array {
  if (r.version === 1) {
    return head([
      `SOURCE ${r.password} ${mountPath(r.mount)}`,
      `Source-Agent: ${r.agent}`,
      ...(r.str !== undefined ? [`STR: ${r.str}`] : []),
    ]);
  }
  return head([
    `POST ${mountPath(r.mount)} HTTP/1.1`,
    `Host: ${hostHeader(r.host, r.port)}`,
    "Ntrip-Version: Ntrip/2.0",
    `Authorization: ${basicAuth(r.user ?? "", r.password)}`,
    `User-Agent: ${r.agent}`,
    ...(r.str !== undefined ? [`Ntrip-STR: ${r.str}`] : []),
    "Transfer-Encoding: chunked",
    "Connection: close",
  ]);
}

/**
 * What a reply means to the side that asked:
 *   accepted      data flows (pull) / data may be sent (push)
 *   not-found     the mountpoint does not exist (sourcetable or 404)
 *   unauthorized  bad credentials (401, ERROR - Bad Password)
 *   mount-taken   another source holds the mountpoint (409, ERROR - Mount Point Taken or Invalid)
 *   fallback-v1   a v2 request answered without Ntrip-Version: the caster speaks only v1
 *   rejected      anything else (another status, garbage)
 */
export type NtripReplyOutcome =
  | "accepted"
  | "not-found"
  | "unauthorized"
  | "mount-taken"
  | "fallback-v1"
  | "rejected";

export interface NtripReplyHead {
  outcome: NtripReplyOutcome;
  /** The status line as received (CR LF cut, control characters replaced, at most 200 characters). */
  line: string;
  /** HTTP status code, when the reply was HTTP. */
  statusCode?: number;
  /** Header fields, names lowercased (HTTP replies only). */
  headers: Map<string, string>;
  /** The body uses the chunked transfer coding. */
  chunked: boolean;
  /** The reply's Ntrip-Version header, when present. */
  ntripVersion?: string;
  /** Bytes received after the head: the start of the body. */
  body: Uint8Array;
  /**
   * ICY reply whose body had not started yet: if the first body bytes are a blank line, they belong to the
   * head (see `skipBlankLine`).
   */
  blankLineMayFollow: boolean;
}

export class NtripReplyError extends Error {
  override name = "NtripReplyError";
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * Reads a caster's reply head from the bytes of a connection, pushed as they come. `push` returns the head
 * once it is complete (and the body bytes that came with it), null while more is needed, and throws
 * NtripReplyError when the head grows past `maxLength` without ending.
 */
export class NtripReplyReader {
  #buf = new Uint8Array(0);

  constructor(
    readonly request: { kind: NtripRequestKind; version: NtripVersion },
    readonly maxLength = NTRIP_REPLY_HEAD_MAX,
  ) {}

  push(chunk: Uint8Array): NtripReplyHead | null {
    const buf = new Uint8Array(this.#buf.length + chunk.length);
    buf.set(this.#buf);
    buf.set(chunk, this.#buf.length);
    this.#buf = buf;
    const lineEnd = buf.indexOf(LF);
    if (lineEnd < 0) return this.#needMore();
    const line = lineText(buf.subarray(0, lineEnd));
    if (!/^HTTP\/1\.[01] /i.test(line)) return this.#statusOnly(line, lineEnd + 1);
    const end = findHeadEnd(buf);
    if (end === undefined) return this.#needMore();
    return this.#http(line, buf.subarray(lineEnd + 1, end.headersEnd), end.bodyStart);
  }

  /**
   * The connection ended: classify what arrived, if it holds a status line (str2str answers a bad password
   * with `HTTP/1.0 401 Unauthorized` and closes without a blank line). Null when nothing usable arrived.
   */
  finish(): NtripReplyHead | null {
    const buf = this.#buf;
    if (buf.length === 0) return null;
    let lineEnd = buf.indexOf(LF);
    if (lineEnd < 0) lineEnd = buf.length;
    const line = lineText(buf.subarray(0, lineEnd));
    if (line.trim() === "") return null;
    if (!/^HTTP\/1\.[01] /i.test(line)) return this.#statusOnly(line, Math.min(lineEnd + 1, buf.length));
    return this.#http(line, buf.subarray(Math.min(lineEnd + 1, buf.length)), buf.length);
  }

  #needMore(): null {
    if (this.#buf.length > this.maxLength) {
      throw new NtripReplyError(`reply head longer than ${this.maxLength} bytes without ending`);
    }
    return null;
  }

  /** Replies that are one status line: ICY, SOURCETABLE, ERROR - ..., and anything that is not HTTP. */
  #statusOnly(line: string, after: number): NtripReplyHead {
    let body: Uint8Array = this.#buf.subarray(after);
    let blankLineMayFollow = false;
    let outcome: NtripReplyOutcome;
    if (/^SOURCETABLE 200/i.test(line)) outcome = "not-found";
    else if (/^ERROR - Bad Password/i.test(line)) outcome = "unauthorized";
    else if (/^ERROR - Mount Point Taken or Invalid/i.test(line)) outcome = "mount-taken";
    else if (/^ICY 200/i.test(line)) {
      outcome = this.request.kind === "push" && this.request.version === 2 ? "fallback-v1" : "accepted";
      const skipped = skipBlankLine(body);
      blankLineMayFollow = body.length === 0;
      body = skipped;
    } else if (this.request.kind === "push" && /OK/.test(line) && !/^ERROR/i.test(line)) {
      outcome = this.request.version === 2 ? "fallback-v1" : "accepted";
    } else outcome = this.request.kind === "push" && this.request.version === 2 ? "fallback-v1" : "rejected";
    return {
      outcome,
      line: shown(line),
      headers: new Map(),
      chunked: false,
      body: body.slice(),
      blankLineMayFollow,
    };
  }

  #http(line: string, headerBytes: Uint8Array, bodyStart: number): NtripReplyHead {
    const statusCode = Number(/^HTTP\/1\.[01] +(\d{3})/i.exec(line)?.[1] ?? 0);
    const headers = parseHeaders(headerBytes);
    const ntripVersion = headers.get("ntrip-version");
    const contentType = (headers.get("content-type") ?? "").toLowerCase();
    const chunked = /(^|,)\s*chunked\s*$/i.test(headers.get("transfer-encoding") ?? "");
    let outcome: NtripReplyOutcome;
    if (statusCode === 401) outcome = "unauthorized";
    else if (statusCode === 409) outcome = "mount-taken";
    else if (statusCode === 404 || contentType.startsWith("gnss/sourcetable")) outcome = "not-found";
    else if (this.request.kind === "push" && this.request.version === 2 && ntripVersion === undefined) {
      outcome = "fallback-v1";
    } else if (statusCode >= 200 && statusCode < 300) outcome = "accepted";
    else outcome = "rejected";
    return {
      outcome,
      line: shown(line),
      statusCode,
      headers,
      chunked,
      ntripVersion,
      body: this.#buf.slice(bodyStart),
      blankLineMayFollow: false,
    };
  }
}

/** Drops one leading blank line (CR LF or LF) from `body`; returns the rest (the same bytes when none). */
export function skipBlankLine(body: Uint8Array): Uint8Array {
  if (body[0] === LF) return body.subarray(1);
  if (body[0] === CR && body[1] === LF) return body.subarray(2);
  return body;
}

/** The blank line that ends an HTTP head: where the header lines end and the body starts; undefined if none yet. */
function findHeadEnd(buf: Uint8Array): { headersEnd: number; bodyStart: number } | undefined {
  for (let i = buf.indexOf(LF); i >= 0; i = buf.indexOf(LF, i + 1)) {
    if (buf[i + 1] === LF) return { headersEnd: i + 1, bodyStart: i + 2 };
    if (buf[i + 1] === CR && buf[i + 2] === LF) return { headersEnd: i + 1, bodyStart: i + 3 };
  }
  return undefined;
}

function parseHeaders(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of latin1Text(bytes).split("\n")) {
    const l = raw.replace(/\r$/, "");
    const colon = l.indexOf(":");
    if (colon <= 0) continue;
    const name = l.slice(0, colon).trim().toLowerCase();
    const value = l.slice(colon + 1).trim();
    const prev = out.get(name);
    out.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  return out;
}

function lineText(bytes: Uint8Array): string {
  return latin1Text(bytes).replace(/\r$/, "");
}

function shown(line: string): string {
  // deno-lint-ignore no-control-regex
  const clean = line.replace(/[\x00-\x1f\x7f-\xff]/g, "?");
  return clean.length > NTRIP_REPLY_LINE_SHOWN ? clean.slice(0, NTRIP_REPLY_LINE_SHOWN) + "…" : clean;
}

function latin1Text(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(bytes.length, i + 4096)));
  }
  return s;
}
