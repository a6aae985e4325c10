/**
 * HTTP/1.1 chunked transfer coding (RFC 9112, section 7.1), both ways:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *
 * The decoder is incremental (any split of the input gives the same output, down to one byte per push), never
 * passes chunk headers on, ignores chunk extensions and consumes trailer fields.
 */

/** The last chunk with an empty trailer section. */
export const CHUNKED_END: Uint8Array = new TextEncoder().encode("0\r\n\r\n");

/** Longest chunk-size line (with extensions) or trailer line accepted; real ones are a few bytes. */
export const CHUNKED_MAX_LINE = 1024;
/** Chunk sizes above this are refused (a stream sends small chunks; a huge size is garbage or an attack). */
export const CHUNKED_MAX_CHUNK = 0x7fffffff;

const CR = 0x0d;
const LF = 0x0a;
/** Lower-case hex digits, as bytes. */
const HEX = new TextEncoder().encode("0123456789abcdef");

export class ChunkedError extends Error {
  override name = "ChunkedError";
}

/** Bytes of a chunk's framing around `len` bytes of data: hex size, CRLF, and the CRLF after the data. */
export function chunkOverhead(len: number): number {
  let digits = 1;
  while (len >= 16 ** digits) digits++;
  return digits + 4;
}

/**
 * Writes one chunk of `len` data bytes into `out` at `at`: size line, then the data (copied from `data` when
 * given; otherwise the caller writes it at the returned offset), then CRLF. `out` must hold
 * `chunkOverhead(len) + len` bytes from `at`. Returns where the data goes. No allocation.
 */
export function writeChunk(out: Uint8Array, at: number, len: number, data?: Uint8Array): number {
  const digits = chunkOverhead(len) - 4;
  for (let i = digits - 1, v = len; i >= 0; i--, v = Math.floor(v / 16)) out[at + i] = HEX[v % 16];
  out[at + digits] = CR;
  out[at + digits + 1] = LF;
  const dataAt = at + digits + 2;
  if (data) out.set(data.subarray(0, len), dataAt);
  out[dataAt + len] = CR;
  out[dataAt + len + 1] = LF;
  return dataAt;
}

/** One chunk: size in hex, CRLF, data, CRLF. Empty data would be the last chunk, so it gives no bytes. */
export function encodeChunk(data: Uint8Array): Uint8Array {
  if (data.length === 0) return new Uint8Array(0);
  const out = new Uint8Array(chunkOverhead(data.length) + data.length);
  writeChunk(out, 0, data.length, data);
  return out;
}

enum State {
  SizeLine,
  Data,
  DataCr,
  DataLf,
  Trailer,
  Done,
}

export class ChunkedDecoder {
  #state = State.SizeLine;
  /** Bytes of the line being read (size line or trailer line), without its LF; `#lineLen` of them are used. */
  #line = new Uint8Array(16);
  #lineLen = 0;
  #remaining = 0;

  /** True once the last chunk and the trailer section were read; later bytes are not part of the body. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /**
   * Decodes chunk; calls onData with each run of chunk-data (a view into `chunk`, valid only during the call).
   * Throws ChunkedError on a malformed size line, an over-long line or data not followed by CRLF. Bytes after
   * the end of the body are ignored.
   */
  push(chunk: Uint8Array, onData: (data: Uint8Array) => void): void {
    let i = 0;
    while (i < chunk.length && this.#state !== State.Done) {
      switch (this.#state) {
        case State.SizeLine:
        case State.Trailer: {
          const lf = chunk.indexOf(LF, i);
          const end = lf < 0 ? chunk.length : lf;
          if (this.#lineLen + (end - i) > CHUNKED_MAX_LINE) {
            throw new ChunkedError(
              `chunked: ${this.#state === State.Trailer ? "trailer" : "chunk-size"} line longer than ` +
                `${CHUNKED_MAX_LINE} bytes`,
            );
          }
          this.#appendLine(chunk, i, end);
          i = end;
          if (lf < 0) break;
          i++; // the LF
          const len = this.#lineLen > 0 && this.#line[this.#lineLen - 1] === CR
            ? this.#lineLen - 1
            : this.#lineLen;
          this.#lineLen = 0;
          if (this.#state === State.Trailer) {
            if (len === 0) this.#state = State.Done;
          } else {
            this.#remaining = chunkSizeOf(this.#line, len);
            this.#state = this.#remaining === 0 ? State.Trailer : State.Data;
          }
          break;
        }
        case State.Data: {
          const n = Math.min(this.#remaining, chunk.length - i);
          onData(chunk.subarray(i, i + n));
          i += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = State.DataCr;
          break;
        }
        case State.DataCr:
          if (chunk[i++] !== CR) throw new ChunkedError("chunked: chunk data not followed by CRLF");
          this.#state = State.DataLf;
          break;
        case State.DataLf:
          if (chunk[i++] !== LF) throw new ChunkedError("chunked: chunk data not followed by CRLF");
          this.#state = State.SizeLine;
          break;
      }
    }
  }

  #appendLine(chunk: Uint8Array, from: number, to: number): void {
    const need = this.#lineLen + (to - from);
    if (need > this.#line.length) {
      const bigger = new Uint8Array(Math.min(CHUNKED_MAX_LINE, Math.max(need, this.#line.length * 2)));
      bigger.set(this.#line.subarray(0, this.#lineLen));
      this.#line = bigger;
    }
    this.#line.set(chunk.subarray(from, to), this.#lineLen);
    this.#lineLen = need;
  }
}

/** Value of a hex digit byte, or -1. */
function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/**
 * The chunk size of the size line `line[0, len)` (its CR already off), read from the bytes without building a
 * string; anything unusual (no digits, more than 8 significant digits, a bad byte before or inside the
 * extension) goes through `parseChunkSize`, which accepts or refuses it the same way and names the line.
 */
function chunkSizeOf(line: Uint8Array, len: number): number {
  let i = 0, size = 0, significant = 0;
  for (; i < len; i++) {
    const v = hexValue(line[i]);
    if (v < 0) break;
    if (size > 0 || v > 0) significant++;
    size = size * 16 + v;
  }
  let ok = i > 0 && significant <= 8 && size <= CHUNKED_MAX_CHUNK;
  while (ok && i < len && (line[i] === 0x20 || line[i] === 0x09)) i++;
  if (ok && i < len) {
    if (line[i] !== 0x3b) ok = false; // ';'
    for (let k = i + 1; ok && k < len; k++) if (line[k] === CR) ok = false; // `.` does not match CR
  }
  return ok ? size : parseChunkSize(String.fromCharCode(...line.subarray(0, len)));
}

/** chunk-size [ chunk-ext ]: hex digits, then optional whitespace and `;name[=value]` extensions (ignored). */
function parseChunkSize(line: string): number {
  const m = /^([0-9A-Fa-f]+)[ \t]*(;.*)?$/.exec(line);
  if (!m) throw new ChunkedError(`chunked: bad chunk-size line ${JSON.stringify(line.slice(0, 40))}`);
  const digits = m[1].replace(/^0+(?=.)/, "");
  if (digits.length > 8 || parseInt(digits, 16) > CHUNKED_MAX_CHUNK) {
    throw new ChunkedError(`chunked: chunk size 0x${digits.slice(0, 16)} too large`);
  }
  return parseInt(digits, 16);
}
