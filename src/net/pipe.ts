/**
 * pipe(a, b): copies bytes both ways between two connections until both directions are done.
 *
 * Shared by the port relay, the reverse proxy and `up --forward`. Semantics follow socat/frp:
 * - full duplex, one copy loop per direction with its own buffer;
 * - half-close is carried: EOF read from one side becomes closeWrite() (FIN) on the other, and the opposite
 *   direction keeps flowing (SMTP/HTTP/1.0 clients that shut down their write side still get the reply);
 * - when both directions have ended, or either side errors (reset, write to a closed peer), both are closed
 *   (once: a caller need not close them again, which would only build a BadResource error);
 * - byte counters are updated live (so a status page sees long-lived connections move) and returned.
 */
import type { Conn } from "./types.ts";

/** Live byte counts; pipe() adds to these as data moves, so callers may read them at any time. */
export interface PipeCounters {
  /** Bytes read from a and written to b. */
  aToB: number;
  /** Bytes read from b and written to a. */
  bToA: number;
}

export interface PipeOptions {
  /** Largest per-direction copy buffer in bytes (default 32 KiB; socat uses 8 KiB, frp 16 KiB). */
  bufferSize?: number;
  /**
   * Buffer an idle direction waits with (default 1 KiB, at most bufferSize). A read that fills it switches
   * the direction to a bufferSize buffer; a short read switches back and lets the big one be collected. An
   * idle connection (most of them on a relay) so holds 2 x 1 KiB, not 2 x 32 KiB, while bulk transfers still
   * move 32 KiB per read.
   */
  initialBufferSize?: number;
  /** Counters to update live; a fresh object is used when omitted. */
  counters?: PipeCounters;
  /** Aborting closes both connections (relay shutdown, reload of a changed relay). */
  signal?: AbortSignal;
  /**
   * Closes both sides when no byte moved in either direction for this long (ms). 0/undefined: never —
   * TCP keepalive is what detects dead peers; this is for services that want an application idle limit.
   */
  idleTimeoutMs?: number;
}

export interface PipeResult extends PipeCounters {
  /** The first error that ended the pipe early (undefined when both directions ended with EOF). */
  error?: unknown;
  /** Which side reported the first error. */
  errorSide?: "a" | "b";
  /** True when the pipe ended because of the signal or the idle timeout. */
  aborted: boolean;
}

/**
 * Counters for one connection's pipe() that also add every byte to `totals` as it moves (a service's byte
 * counts stay live while its long connections run).
 */
export function countersAddingTo(totals: PipeCounters): PipeCounters {
  let aToB = 0, bToA = 0;
  return {
    get aToB() {
      return aToB;
    },
    set aToB(v: number) {
      totals.aToB += v - aToB;
      aToB = v;
    },
    get bToA() {
      return bToA;
    },
    set bToA(v: number) {
      totals.bToA += v - bToA;
      bToA = v;
    },
  };
}

export const DEFAULT_PIPE_BUFFER = 32 * 1024;
export const DEFAULT_PIPE_INITIAL_BUFFER = 1024;

/** Writes all of p, looping over partial writes. */
export async function writeAll(conn: Conn, p: Uint8Array): Promise<void> {
  let off = 0;
  while (off < p.length) {
    const n = await conn.write(off === 0 ? p : p.subarray(off));
    if (n <= 0) throw new Error("write returned no progress");
    off += n;
  }
}

/**
 * Fills buf from conn, with reads sized to what is missing (so no byte after it is consumed); false if the
 * connection ends first.
 */
export async function readExactly(conn: Conn, buf: Uint8Array): Promise<boolean> {
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

function closeQuietly(c: Conn): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

export function pipe(a: Conn, b: Conn, opts: PipeOptions = {}): Promise<PipeResult> {
  const bufferSize = opts.bufferSize ?? DEFAULT_PIPE_BUFFER;
  if (!(bufferSize >= 1)) throw new RangeError(`pipe: bufferSize must be >= 1, got ${bufferSize}`);
  const smallSize = Math.max(1, Math.min(opts.initialBufferSize ?? DEFAULT_PIPE_INITIAL_BUFFER, bufferSize));
  const counters = opts.counters ?? { aToB: 0, bToA: 0 };
  let closed = false;
  let aborted = false;
  let error: unknown;
  let errorSide: "a" | "b" | undefined;
  const idleMs = opts.idleTimeoutMs && opts.idleTimeoutMs > 0 ? opts.idleTimeoutMs : 0;
  let lastActivity = idleMs ? Date.now() : 0;
  /** Directions that have read EOF. */
  let ended = 0;

  const closeBoth = () => {
    if (closed) return;
    closed = true;
    closeQuietly(a);
    closeQuietly(b);
  };

  const onAbort = () => {
    aborted = true;
    closeBoth();
  };
  if (opts.signal) {
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener("abort", onAbort, { once: true });
  }

  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  if (idleMs) {
    const check = () => {
      const quietFor = Date.now() - lastActivity;
      if (quietFor >= idleMs) {
        aborted = true;
        closeBoth();
        return;
      }
      idleTimer = setTimeout(check, idleMs - quietFor);
    };
    idleTimer = setTimeout(check, idleMs);
  }

  const copy = async (src: Conn, dst: Conn, srcName: "a" | "b", key: keyof PipeCounters): Promise<void> => {
    const small = new Uint8Array(smallSize);
    let buf = small;
    let side: "a" | "b" = srcName;
    try {
      for (;;) {
        side = srcName;
        const n = await src.read(buf);
        if (n === null) break;
        if (n === 0) continue;
        side = srcName === "a" ? "b" : "a";
        await writeAll(dst, n === buf.length ? buf : buf.subarray(0, n));
        counters[key] += n;
        if (idleMs) lastActivity = Date.now();
        // Grow while reads fill the buffer; fall back to the small one when traffic thins out.
        if (n === buf.length && buf.length < bufferSize) buf = new Uint8Array(bufferSize);
        else if (n < smallSize && buf !== small) buf = small;
      }
      // EOF: carry the half-close. The other direction keeps running until it ends too. When it has already
      // ended, closing both sends the same FIN (nothing is left unread) and saves a shutdown() per connection.
      side = srcName === "a" ? "b" : "a";
      if (++ended === 2) closeBoth();
      else if (!closed) await dst.closeWrite();
    } catch (e) {
      if (!closed && error === undefined) {
        error = e;
        errorSide = side;
      }
      closeBoth();
    }
  };

  return Promise.all([copy(a, b, "a", "aToB"), copy(b, a, "b", "bToA")]).then(() => {
    closeBoth();
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    opts.signal?.removeEventListener("abort", onAbort);
    return { aToB: counters.aToB, bToA: counters.bToA, error, errorSide, aborted };
  });
}
