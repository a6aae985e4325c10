/**
 * A raw TCP peer for NTRIP tests: writes a request head (or data) and collects everything the other side
 * sends, so a test can wait for bytes, split an HTTP head from its body and decode chunks. Every wait is
 * bounded.
 */
import { concatBytes } from "../../src/util/bytes.ts";
import { ChunkedDecoder } from "../../src/wire/chunked.ts";
import { Rtcm3Scanner } from "../../src/wire/rtcm3.ts";
import { waitFor } from "./interop.ts";
import { connect, within } from "./tcp.ts";

const enc = new TextEncoder();

export class NtripPeer {
  #parts: Uint8Array[] = [];
  #size = 0;
  #ended = false;
  readonly done: Promise<void>;

  private constructor(readonly conn: Deno.Conn) {
    this.done = (async () => {
      const buf = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          this.#parts.push(buf.slice(0, n));
          this.#size += n;
        }
      } catch {
        // reset: counts as the end
      }
      this.#ended = true;
    })();
  }

  static async open(port: number, head?: string): Promise<NtripPeer> {
    const peer = new NtripPeer(await connect(port));
    if (head !== undefined) await peer.write(head);
    return peer;
  }

  /** Everything received so far. */
  get bytes(): Uint8Array {
    if (this.#parts.length > 1) this.#parts = [concatBytes(...this.#parts)];
    return this.#parts[0] ?? new Uint8Array(0);
  }

  get size(): number {
    return this.#size;
  }

  get text(): string {
    return new TextDecoder("latin1").decode(this.bytes);
  }

  /** True once the other side closed (or reset) the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) {
      off += await within(this.conn.write(bytes.subarray(off)), "write to the caster");
    }
  }

  waitSize(n: number, what = `${n} bytes`, pollMs = 50): Promise<void> {
    return waitFor(() => this.#size >= n || this.#ended, what, 200, pollMs).then(() => {
      if (this.#size < n) throw new Error(`connection ended before ${what} (got ${this.#size})`);
    });
  }

  waitText(text: string): Promise<void> {
    return waitFor(() => this.text.includes(text) || this.#ended, JSON.stringify(text)).then(() => {
      if (!this.text.includes(text)) {
        throw new Error(`connection ended without ${JSON.stringify(text)}: ${this.text}`);
      }
    });
  }

  waitEnd(what = "the caster to close the connection"): Promise<void> {
    return within(this.done, what);
  }

  /** The HTTP/ICY head (through its blank line, or the ICY line alone) and the bytes after it. */
  split(): { head: string; body: Uint8Array } {
    const text = this.text;
    if (text.startsWith("ICY 200 OK\r\n")) return { head: "ICY 200 OK\r\n", body: this.bytes.subarray(12) };
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) return { head: text, body: new Uint8Array(0) };
    return { head: text.slice(0, end + 4), body: this.bytes.subarray(end + 4) };
  }

  /** The body with the chunked coding removed. */
  dechunked(): Uint8Array {
    return concatBytes(...this.chunks());
  }

  /** The body's chunks, each one's data (the writes of a v2 caster: one chunk per write). */
  chunks(): Uint8Array[] {
    const out: Uint8Array[] = [];
    new ChunkedDecoder().push(this.split().body, (d) => out.push(d.slice()));
    return out;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }
}

/** The whole frames in bytes (copies), in order. */
export function framesOf(bytes: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  new Rtcm3Scanner().push(bytes, (f) => frames.push(f.slice()));
  return frames;
}

/** Offsets at which the frames of a clean recording start. */
export function frameOffsets(bytes: Uint8Array): number[] {
  const out: number[] = [];
  let off = 0;
  for (const f of framesOf(bytes)) {
    out.push(off);
    off += f.length;
  }
  return out;
}

export function basic(user: string, password: string): string {
  return `Authorization: Basic ${btoa(`${user}:${password}`)}\r\n`;
}
