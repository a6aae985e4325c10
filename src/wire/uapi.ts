/**
 * The WireGuard cross-platform configuration protocol (https://www.wireguard.com/xplatform/), the text that
 * `wg` and wireguard-go exchange over `<name>.sock`: a request is `get=1\n\n`, or `set=1\n` followed by
 * `key=value\n` lines and a blank line; a reply is `key=value\n` lines (for get), then `errno=N\n\n`.
 *
 * UapiReader takes bytes as they arrive and hands out whole requests; it checks before it stores (a line may
 * not exceed UAPI_MAX_LINE, as wireguard-go's bufio.Scanner refuses longer tokens) so a client cannot make it
 * grow without bound. Values are not interpreted here (src/wireguard/uapi.ts applies them).
 */

/** errno values of the replies, as wireguard-go's ipc/uapi_unix.go defines them (negated Linux errnos). */
export const UAPI_ERRNO = {
  ok: 0,
  /** -EIO: reading or writing the socket failed. */
  io: -5,
  /** -EPROTO: a line without `=`. */
  protocol: -71,
  /** -EINVAL: an unknown key or a bad value. */
  invalid: -22,
  /** -EADDRINUSE: the new listen_port could not be bound. */
  portInUse: -98,
  /** -ENOANO: anything else (wireguard-go IpcErrorUnknown). */
  unknown: -55,
  /** -EOPNOTSUPP: a setting wgedge does not have (a nonzero fwmark: a userspace socket sets no mark). */
  notSupported: -95,
} as const;

/** bufio.Scanner's default limit: wireguard-go fails a longer line with EIO. */
export const UAPI_MAX_LINE = 64 * 1024;

export interface UapiLine {
  key: string;
  value: string;
}

/** A set request's lines, in order; `bad` is the first line that has no `=` (the lines after it are lost). */
export interface UapiSet {
  op: "set";
  lines: UapiLine[];
  bad?: string;
}

export type UapiRequest =
  | UapiSet
  | { op: "get" }
  /** `get=1` followed by something other than the blank line: answered with -EINVAL, as wireguard-go does. */
  | { op: "bad-get" };

/** The reason a connection must be closed: an unknown operation, or a line over the limit. */
export class UapiProtocolError extends Error {}

/** Splits `key=value` at the first `=`; null when there is none (wireguard-go strings.Cut). */
export function parseUapiLine(line: string): UapiLine | null {
  const eq = line.indexOf("=");
  return eq < 0 ? null : { key: line.slice(0, eq), value: line.slice(eq + 1) };
}

/** A reply: the lines, then `errno=N` and the blank line that ends it. */
export function formatUapiReply(lines: readonly UapiLine[], errno: number): string {
  let out = "";
  for (const l of lines) out += `${l.key}=${l.value}\n`;
  return `${out}errno=${errno}\n\n`;
}

/** Lower-case hex of a 32-byte key, as wireguard-go writes keys. */
export function keyToHex(key: Uint8Array): string {
  let s = "";
  for (const b of key) s += b.toString(16).padStart(2, "0");
  return s;
}

/** 64 hex digits (either case) -> 32 bytes; null otherwise (Go hex.DecodeString + the length check). */
export function keyFromHex(hex: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Decimal without sign, at most `max` (Go strconv.ParseUint with a bit size); null otherwise. */
export function parseUapiUint(value: string, max: number): number | null {
  if (!/^[0-9]{1,10}$/.test(value)) return null;
  const n = Number(value);
  return n <= max ? n : null;
}

/** Incremental request reader for one connection. */
export class UapiReader {
  #buf = "";
  readonly #decoder = new TextDecoder();

  /** Adds received bytes. Throws UapiProtocolError when a line grows past UAPI_MAX_LINE. */
  push(bytes: Uint8Array): void {
    this.#buf += this.#decoder.decode(bytes, { stream: true });
    const lastBreak = this.#buf.lastIndexOf("\n");
    if (this.#buf.length - lastBreak - 1 > UAPI_MAX_LINE) throw new UapiProtocolError("line too long");
  }

  /**
   * The next whole request, or null when more bytes are needed. Throws UapiProtocolError for an operation
   * other than get=1/set=1 (wireguard-go then closes the connection).
   */
  next(): UapiRequest | null {
    const opEnd = this.#buf.indexOf("\n");
    if (opEnd < 0) return null;
    const op = this.#buf.slice(0, opEnd);
    if (op === "get=1") {
      if (this.#buf.length < opEnd + 2) return null;
      const blank = this.#buf[opEnd + 1] === "\n";
      // Like wireguard-go: the byte after get=1\n is consumed either way.
      this.#buf = this.#buf.slice(opEnd + 2);
      return blank ? { op: "get" } : { op: "bad-get" };
    }
    if (op !== "set=1") throw new UapiProtocolError("invalid UAPI operation");
    // The blank line ends the set; searching from the op's own newline also finds `set=1\n\n` (empty set).
    const end = this.#buf.indexOf("\n\n", opEnd);
    if (end < 0) return null;
    const body = this.#buf.slice(opEnd + 1, end);
    this.#buf = this.#buf.slice(end + 2);
    const req: UapiSet = { op: "set", lines: [] };
    if (body === "") return req;
    for (const raw of body.split("\n")) {
      const line = parseUapiLine(raw);
      if (!line) {
        req.bad = raw;
        break;
      }
      req.lines.push(line);
    }
    return req;
  }
}
