/**
 * Giving the malloc heap's free pages back to the kernel once a burst is over.
 *
 * Deno allocates ArrayBuffer backing stores with glibc's malloc. A burst through hundreds of tunnels (TCP
 * buffers growing, decryption slabs, packets) grows the heap by a hundred MiB or more; once the garbage
 * collector has freed those buffers, glibc keeps the free pages: by itself it gives memory back only from the
 * top of the heap, and the live allocations scattered through it pin the rest. Measured (docs/memory.md): 300
 * tunnels after a 1 MiB download each sat at 192 MiB RSS, 110 MiB of it free in the malloc heap;
 * malloc_trim(0), which releases free pages anywhere in the heap, brought the process to 90 MiB.
 *
 * HeapTrimmer looks every `intervalMs` (on an injected clock) and trims when the heap's free bytes rose by at
 * least `minFreeBytes` above their lowest point since the last trim (memory that was in use, so resident, and
 * is free now: there is something to give back that was not given already) and the heap's use moved by less
 * than `quietBytes` over the last interval (the burst is over; trimming during one would only return pages it
 * faults in again). The trim runs off the main thread (a nonblocking FFI call): releasing 100 MiB takes about
 * 100 ms, which the event loop must not wait for.
 *
 * glibc only (mallinfo2 needs 2.33); elsewhere `glibcMalloc()` gives the reason and nothing trims.
 */
import { type Clock, systemClock, type TimerHandle } from "../util/clock.ts";
import { type Logger, logger } from "../util/log.ts";
import { loadLibc } from "./libc.ts";

/** What the trimmer reads and does; glibcMalloc() in production, a fake in tests. */
export interface MallocControl {
  /** Bytes of the malloc heap in use and free (mallinfo2 uordblks and fordblks, every arena). */
  stats(): { usedBytes: number; freeBytes: number };
  /** The process's resident set size (for the log line). */
  rssBytes(): number;
  /** malloc_trim(0), resolved when done. */
  trim(): Promise<void>;
}

export interface HeapTrimmerOptions {
  /** How often the heap is looked at (default 10 s). */
  intervalMs?: number;
  /** Growth of the heap's free bytes since the last trim below which trimming is not worth it (default 16 MiB). */
  minFreeBytes?: number;
  /** Change of the heap's use over one interval below which it counts as quiet (default 4 MiB). */
  quietBytes?: number;
}

const MiB = 1 << 20;

export class HeapTrimmer {
  readonly intervalMs: number;
  readonly minFreeBytes: number;
  readonly quietBytes: number;
  /** Trims done (status, tests). */
  trims = 0;
  #users = 0;
  #timer: TimerHandle | undefined;
  #lastUsed: number | undefined;
  /** The heap's free bytes at their lowest since the last trim (after a trim: what it left free). */
  #freeMark = Infinity;
  #trimming = false;

  constructor(
    private readonly ctl: MallocControl,
    private readonly clock: Clock,
    opts: HeapTrimmerOptions = {},
    private readonly log: Logger = logger("sys.malloc"),
  ) {
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.minFreeBytes = opts.minFreeBytes ?? 16 * MiB;
    this.quietBytes = opts.quietBytes ?? 4 * MiB;
  }

  /** Users of the trimmer (open tunnels); it looks at the heap only while there is one. */
  get users(): number {
    return this.#users;
  }

  retain(): this {
    if (this.#users++ === 0) {
      this.#lastUsed = undefined;
      this.#arm();
    }
    return this;
  }

  release(): void {
    if (this.#users === 0 || --this.#users > 0) return;
    this.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#users > 0 && !this.#timer && !this.#trimming) {
      this.#timer = this.clock.setTimer(() => this.#tick(), this.intervalMs);
    }
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#users === 0) return;
    let stats: { usedBytes: number; freeBytes: number };
    try {
      stats = this.ctl.stats();
    } catch (e) {
      this.log.debug("cannot read malloc statistics", { error: (e as Error).message });
      return this.#arm();
    }
    // Free bytes that were reused and freed again are resident again: the mark follows them down.
    if (stats.freeBytes < this.#freeMark) this.#freeMark = stats.freeBytes;
    const quiet = this.#lastUsed !== undefined &&
      Math.abs(stats.usedBytes - this.#lastUsed) < this.quietBytes;
    this.#lastUsed = stats.usedBytes;
    if (!quiet || stats.freeBytes - this.#freeMark < this.minFreeBytes) return this.#arm();
    this.#trimming = true;
    const started = this.clock.now(), rss = this.ctl.rssBytes();
    this.ctl.trim().then(
      () => {
        this.trims++;
        this.#freeMark = this.ctl.stats().freeBytes;
        this.log.debug("free malloc heap pages returned to the kernel", {
          freeMiB: Math.round(stats.freeBytes / MiB),
          rssMiB: Math.round(rss / MiB),
          afterMiB: Math.round(this.ctl.rssBytes() / MiB),
          ms: Math.round(this.clock.now() - started),
        });
      },
      (e) => this.log.warn("malloc_trim failed", { error: (e as Error).message }),
    ).finally(() => {
      this.#trimming = false;
      this.#arm();
    });
  }
}

/** glibc's malloc statistics and trim through libc (sys/libc.ts), or why not. */
export function glibcMalloc(): MallocControl | { reason: string } {
  const libc = loadLibc();
  if ("reason" in libc) return libc;
  const { mallinfo2, malloc_trim } = libc.lib;
  if (!mallinfo2 || !malloc_trim) return { reason: "no mallinfo2/malloc_trim (not glibc 2.33 or later)" };
  return {
    stats() {
      const raw = mallinfo2();
      const f = new BigUint64Array(raw.buffer, raw.byteOffset, 10);
      return { usedBytes: Number(f[7]), freeBytes: Number(f[8]) };
    },
    rssBytes: () => Deno.memoryUsage().rss,
    trim: () => malloc_trim(0n).then(() => {}),
  };
}

let processTrimmer: HeapTrimmer | null | undefined;

/**
 * The process's trimmer on the system clock, or undefined where malloc cannot be trimmed. Each open tunnel
 * bind retains it (LinuxUdpBind), so it runs exactly while the process carries tunnels.
 */
export function processHeapTrimmer(): HeapTrimmer | undefined {
  if (processTrimmer === undefined) {
    const ctl = glibcMalloc();
    processTrimmer = "reason" in ctl ? null : new HeapTrimmer(ctl, systemClock);
  }
  return processTrimmer ?? undefined;
}
