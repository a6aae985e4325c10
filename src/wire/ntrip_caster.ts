/**
 * NTRIP heads on the caster side (NTRIP 1.0 and 2.0, as RTKLIB str2str and real casters speak them): the
 * request head a caster receives, parsed from a bounded buffer into a typed request, and the replies it sends.
 *
 * Requests:
 *   v1 client  GET /MOUNT HTTP/1.0, [Authorization: Basic], User-Agent, blank line
 *   v2 client  GET /MOUNT HTTP/1.1, Ntrip-Version: Ntrip/2.0, [Authorization: Basic], [Ntrip-GGA], blank line
 *   v1 source  SOURCE <password> /MOUNT or SOURCE <password> MOUNT (str2str omits the slash), Source-Agent,
 *              [STR: ...], blank line; the data follows
 *   v2 source  POST /MOUNT HTTP/1.1, Ntrip-Version: Ntrip/2.0, Authorization: Basic, [Ntrip-STR],
 *              Transfer-Encoding: chunked or Content-Length or neither (data until close), blank line
 *   `GET /` asks for the sourcetable.
 *
 * Replies:
 *   v1 client accepted   ICY 200 OK, then data at once (no headers, no blank line: what str2str sends)
 *   v2 client accepted   HTTP/1.1 200 OK, Ntrip-Version, Content-Type: gnss/data, Transfer-Encoding: chunked
 *   source accepted      v1: ICY 200 OK; v2: HTTP/1.1 200 OK with Ntrip-Version
 *   sourcetable          v1: SOURCETABLE 200 OK; v2: HTTP/1.1 200 OK; Content-Type: gnss/sourcetable,
 *                        Content-Length, STR lines, ENDSOURCETABLE
 *   refused              v1 source: ERROR - Bad Password, ERROR - Mount Point Taken or Invalid;
 *                        HTTP: 401 with WWW-Authenticate, 409 Conflict (mount taken), 404 (v2 source, no
 *                        such mount), 503 (mount full), 400 Bad Request
 *
 * Heads are read as Latin-1 (a stray byte cannot throw); credentials are decoded from Basic as UTF-8. A parse
 * error never quotes a request line that may hold a password.
 */
import type { NtripVersion } from "./ntrip_client.ts";

/** Longest request head accepted (request line and headers). */
export const NTRIP_REQUEST_HEAD_MAX = 8 * 1024;
/** Most header lines accepted in one head. */
export const NTRIP_REQUEST_MAX_HEADERS = 64;

export type { NtripVersion };

export interface Credentials {
  user: string;
  password: string;
}

/** A rover asking for a mountpoint's data (mount "" = the sourcetable). */
export interface ClientRequest {
  kind: "client";
  version: NtripVersion;
  /** Without its leading slash; "" for `GET /`. */
  mount: string;
  credentials?: Credentials;
  agent?: string;
  /** Ntrip-GGA header (v2): the rover's position, sent before data for VRS mounts. */
  gga?: string;
}

/** A base station pushing its data to a mountpoint. */
export interface SourceRequest {
  kind: "source";
  version: NtripVersion;
  mount: string;
  /** v1: the password of the SOURCE line (user ""); v2: Basic credentials, when given. */
  credentials?: Credentials;
  agent?: string;
  /** The `STR:` (v1) or `Ntrip-STR:` (v2) header: the sourcetable line the source describes itself with. */
  str?: string;
  /** How the body is framed: v1 is always raw bytes until close. */
  body: "raw" | "chunked" | "length";
  contentLength?: number;
}

export type CasterRequest = ClientRequest | SourceRequest;

export type CasterHeadResult =
  | { status: "incomplete" }
  /** headLength: bytes of the head, blank line included; what follows is data. */
  | { status: "ok"; request: CasterRequest; headLength: number }
  | { status: "error"; message: string; version: NtripVersion };

const CR = 0x0d;
const LF = 0x0a;
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

/**
 * Where the head ends in buf[0, len): the index after its blank line (CRLFCRLF, or bare LFLF from a sloppy
 * sender), or -1 when no blank line was received yet.
 */
export function findHeadEnd(buf: Uint8Array, len = buf.length): number {
  for (let i = buf.indexOf(LF); i >= 0 && i < len; i = buf.indexOf(LF, i + 1)) {
    if (i + 1 < len && buf[i + 1] === LF) return i + 2;
    if (i + 2 < len && buf[i + 1] === CR && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

/**
 * Parses the request head at the start of buf[0, len). "incomplete" until the blank line arrived; an error
 * once the head exceeds NTRIP_REQUEST_HEAD_MAX or is malformed.
 */
export function parseCasterRequest(buf: Uint8Array, len = buf.length): CasterHeadResult {
  const end = findHeadEnd(buf, Math.min(len, NTRIP_REQUEST_HEAD_MAX));
  if (end < 0) {
    return len >= NTRIP_REQUEST_HEAD_MAX
      ? { status: "error", message: `request head longer than ${NTRIP_REQUEST_HEAD_MAX} bytes`, version: 1 }
      : { status: "incomplete" };
  }
  const lines = latin1.decode(buf.subarray(0, end)).split(/\r?\n/);
  lines.length -= 2; // the blank line and what follows its LF
  const requestLine = lines[0];
  const headers = parseHeaders(lines.slice(1));
  if (typeof headers === "string") return { status: "error", message: headers, version: 1 };
  const request = parseRequestLine(requestLine, headers);
  if (typeof request === "string") {
    return { status: "error", message: request, version: /HTTP\/1\.1$/.test(requestLine) ? 2 : 1 };
  }
  return { status: "ok", request, headLength: end };
}

/** Header names lowercased; a repeated header keeps its first value. */
function parseHeaders(lines: string[]): Map<string, string> | string {
  if (lines.length > NTRIP_REQUEST_MAX_HEADERS) return `more than ${NTRIP_REQUEST_MAX_HEADERS} header lines`;
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) return "malformed header line";
    const name = line.slice(0, colon).toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return headers;
}

function parseRequestLine(line: string, headers: Map<string, string>): CasterRequest | string {
  const words = line.split(" ");
  switch (words[0]) {
    case "GET":
      return parseGet(words, headers);
    case "POST":
      return parsePost(words, headers);
    case "SOURCE":
      return parseSource(words, headers);
    default:
      return "unsupported request method (expected GET, POST or SOURCE)";
  }
}

/** GET /MOUNT HTTP/1.x */
function parseGet(words: string[], headers: Map<string, string>): ClientRequest | string {
  if (words.length !== 3 || !/^HTTP\/1\.[01]$/.test(words[2])) return "malformed GET request line";
  const mount = mountOfPath(words[1]);
  if (mount === undefined) return "malformed mountpoint in GET request";
  const credentials = basicCredentials(headers.get("authorization"));
  return {
    kind: "client",
    version: isNtrip2(headers) ? 2 : 1,
    mount,
    ...(credentials && { credentials }),
    ...(headers.has("user-agent") && { agent: headers.get("user-agent") }),
    ...(headers.has("ntrip-gga") && { gga: headers.get("ntrip-gga") }),
  };
}

/** POST /MOUNT HTTP/1.1 (NTRIP 2.0 push). */
function parsePost(words: string[], headers: Map<string, string>): SourceRequest | string {
  if (words.length !== 3 || !/^HTTP\/1\.[01]$/.test(words[2])) return "malformed POST request line";
  const mount = mountOfPath(words[1]);
  if (!mount) return "malformed mountpoint in POST request";
  const te = headers.get("transfer-encoding")?.toLowerCase();
  const cl = headers.get("content-length");
  if (te !== undefined && te !== "chunked") return "unsupported Transfer-Encoding (only chunked)";
  if (te !== undefined && cl !== undefined) return "both Transfer-Encoding and Content-Length";
  if (cl !== undefined && !/^[0-9]{1,15}$/.test(cl)) return "malformed Content-Length";
  const credentials = basicCredentials(headers.get("authorization"));
  return {
    kind: "source",
    version: 2,
    mount,
    ...(credentials && { credentials }),
    ...(headers.has("user-agent") && { agent: headers.get("user-agent") }),
    ...(headers.has("ntrip-str") && { str: headers.get("ntrip-str") }),
    body: te ? "chunked" : cl !== undefined ? "length" : "raw",
    ...(cl !== undefined && { contentLength: Number(cl) }),
  };
}

/** SOURCE <password> [/]MOUNT [HTTP/1.x] (NTRIP 1.0 push; some servers append a protocol word). */
function parseSource(words: string[], headers: Map<string, string>): SourceRequest | string {
  const withProtocol = words.length === 4 && /^(HTTP\/1\.[01]|ICY)$/.test(words[3]);
  if (words.length !== 3 && !withProtocol) return "malformed SOURCE request line";
  const mount = mountOfPath(words[2].startsWith("/") ? words[2] : `/${words[2]}`);
  if (!mount) return "malformed mountpoint in SOURCE request";
  return {
    kind: "source",
    version: 1,
    mount,
    credentials: { user: "", password: words[1] },
    ...(headers.has("source-agent") && { agent: headers.get("source-agent") }),
    ...(headers.has("str") && { str: headers.get("str") }),
    body: "raw",
  };
}

/** The mount of `/MOUNT` (or of an absolute `http://host/MOUNT`), "" for `/`; undefined when malformed. */
function mountOfPath(target: string): string | undefined {
  const path = target.replace(/^https?:\/\/[^/]*/i, "");
  if (!path.startsWith("/")) return undefined;
  const mount = path.slice(1).replace(/\?.*$/, "");
  return /^[\x21-\x7e]{0,100}$/.test(mount) && !mount.includes("/") ? mount : undefined;
}

function isNtrip2(headers: Map<string, string>): boolean {
  return /^ntrip\/2(\.|$)/i.test(headers.get("ntrip-version") ?? "");
}

/** RFC 7617 Basic: base64 of UTF-8 `user:password`; undefined when absent or malformed. */
function basicCredentials(value: string | undefined): Credentials | undefined {
  const m = /^basic\s+([A-Za-z0-9+/]+=*)\s*$/i.exec(value ?? "");
  if (!m) return undefined;
  let text: string;
  try {
    text = utf8.decode(Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

// ---- replies ----

const ntrip2Headers = (server: string) => `Ntrip-Version: Ntrip/2.0\r\nServer: ${server}\r\n`;

/** v1 client and v1 source accepted: data follows directly (no headers, no blank line). */
export const ICY_200_OK: Uint8Array = encoder.encode("ICY 200 OK\r\n");

/** v2 client accepted: the data follows in chunks. */
export function clientOkV2(server: string): Uint8Array {
  return encoder.encode(
    "HTTP/1.1 200 OK\r\n" + ntrip2Headers(server) +
      "Content-Type: gnss/data\r\nCache-Control: no-store, no-cache, max-age=0\r\n" +
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
  );
}

/** v2 source accepted: the caster reads its body from here on. */
export function sourceOkV2(server: string): Uint8Array {
  return encoder.encode("HTTP/1.1 200 OK\r\n" + ntrip2Headers(server) + "Connection: close\r\n\r\n");
}

/** The sourcetable: `STR;...` lines (without line ends), then ENDSOURCETABLE, sized by Content-Length. */
export function sourcetableReply(version: NtripVersion, server: string, strLines: string[]): Uint8Array {
  const body = encoder.encode(strLines.map((l) => l + "\r\n").join("") + "ENDSOURCETABLE\r\n");
  const status = version === 2 ? "HTTP/1.1 200 OK\r\n" + ntrip2Headers(server) : `SOURCETABLE 200 OK\r\n` +
    `Server: ${server}\r\n`;
  const head = encoder.encode(
    status + `Content-Type: gnss/sourcetable\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
  );
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** v1 source with a wrong password. */
export const BAD_PASSWORD: Uint8Array = encoder.encode("ERROR - Bad Password\r\n");
/** v1 source on a mount that has a source already or is not configured. */
export const MOUNT_TAKEN: Uint8Array = encoder.encode("ERROR - Mount Point Taken or Invalid\r\n");

function httpError(version: NtripVersion, server: string, status: string, extra: string): Uint8Array {
  const body = `${status}\r\n`;
  return encoder.encode(
    `HTTP/1.${version === 2 ? 1 : 0} ${status}\r\n` + (version === 2 ? ntrip2Headers(server) : "") + extra +
      `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Bad or missing credentials (client, or v2 source); realm is the mountpoint. */
export function unauthorizedReply(version: NtripVersion, server: string, mount: string): Uint8Array {
  return httpError(version, server, "401 Unauthorized", `WWW-Authenticate: Basic realm="/${mount}"\r\n`);
}

/** v2 source on a mount that has a source already or is not configured. */
export function conflictReply(server: string): Uint8Array {
  return httpError(2, server, "409 Conflict", "");
}

/** v2 source pushing to a mountpoint the caster does not have. */
export function notFoundReply(server: string): Uint8Array {
  return httpError(2, server, "404 Not Found", "");
}

/** A mountpoint that has all the clients it may serve. */
export function unavailableReply(version: NtripVersion, server: string): Uint8Array {
  return httpError(version, server, "503 Service Unavailable", "");
}

/** A head that could not be parsed. */
export function badRequestReply(version: NtripVersion, server: string): Uint8Array {
  return httpError(version, server, "400 Bad Request", "");
}
