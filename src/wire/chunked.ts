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

export class ChunkedError extends Error {
  override name = "ChunkedError";
}

/** One chunk: size in hex, CRLF, data, CRLF. Empty data would be the last chunk, so it gives no bytes. */
export function encodeChunk(data: Uint8Array): Uint8Array {
  if (data.length === 0) return new Uint8Array(0);
  const size = new TextEncoder().encode(data.length.toString(16) + "\r\n");
  const out = new Uint8Array(size.length + data.length + 2);
  out.set(size);
  out.set(data, size.length);
  out[out.length - 2] = CR;
  out[out.length - 1] = LF;
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
  /** Bytes of the line being read (size line or trailer line), without its CRLF. */
  #line: number[] = [];
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
          if (this.#line.length + (end - i) > CHUNKED_MAX_LINE) {
            throw new ChunkedError(
              `chunked: ${this.#state === State.Trailer ? "trailer" : "chunk-size"} line longer than ` +
                `${CHUNKED_MAX_LINE} bytes`,
            );
          }
          for (let k = i; k < end; k++) this.#line.push(chunk[k]);
          i = end;
          if (lf < 0) break;
          i++; // the LF
          const line = this.#takeLine();
          if (this.#state === State.Trailer) {
            if (line === "") this.#state = State.Done;
          } else {
            this.#remaining = parseChunkSize(line);
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

  /** The line read so far without a trailing CR, as Latin-1 text; clears it. */
  #takeLine(): string {
    const bytes = this.#line;
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes.pop();
    this.#line = [];
    return String.fromCharCode(...bytes);
  }
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
