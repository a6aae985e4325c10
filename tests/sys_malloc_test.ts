/**
 * The malloc heap trimmer (src/sys/malloc.ts) on a ManualClock with a scripted heap: when it trims, when it
 * leaves the heap alone, and that it looks at the heap only while someone holds it. Then glibc's own
 * statistics and trim on this machine, where they exist.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { Logger, type LogLevel } from "../src/util/log.ts";
import { capabilityTest } from "./helpers/interop.ts";
import { glibcMalloc, HeapTrimmer, type MallocControl } from "../src/sys/malloc.ts";

const MiB = 1 << 20;

/** A heap whose figures the test sets; trim() resolves when the test says so (or at once). */
class FakeHeap implements MallocControl {
  usedBytes = 10 * MiB;
  freeBytes = 1 * MiB;
  rss = 100 * MiB;
  trims = 0;
  reads = 0;
  holdTrim = false;
  #release: (() => void) | undefined;

  stats() {
    this.reads++;
    return { usedBytes: this.usedBytes, freeBytes: this.freeBytes };
  }
  rssBytes() {
    return this.rss;
  }
  trim(): Promise<void> {
    this.trims++;
    if (!this.holdTrim) return Promise.resolve();
    return new Promise((r) => this.#release = r);
  }
  finishTrim(): void {
    this.#release?.();
    this.#release = undefined;
  }
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

/** A logger that keeps its lines instead of printing them. */
class KeptLog extends Logger {
  lines: string[] = [];
  constructor() {
    super("test");
  }
  override log(level: LogLevel, msg: string): void {
    this.lines.push(`${level} ${msg}`);
  }
}

function setup(opts = {}) {
  const clock = new ManualClock();
  const heap = new FakeHeap();
  const log = new KeptLog();
  const trimmer = new HeapTrimmer(heap, clock, { intervalMs: 10_000, minFreeBytes: 16 * MiB, ...opts }, log);
  /** One interval, then the trim's promise settles. */
  const tick = async () => {
    clock.advance(10_000);
    await flush();
  };
  return { clock, heap, trimmer, tick, log };
}

Deno.test("malloc: a burst that is over is trimmed once, after a quiet interval", async () => {
  const { heap, trimmer, tick } = setup();
  trimmer.retain();
  await tick(); // first look: the low mark (1 MiB free)
  // A burst: the heap's use jumps, then the collector frees it (use falls, free rises).
  heap.usedBytes = 150 * MiB;
  await tick();
  heap.usedBytes = 12 * MiB;
  heap.freeBytes = 140 * MiB;
  await tick();
  assertEquals(heap.trims, 0, "use just moved by 138 MiB: not quiet yet");
  await tick();
  assertEquals(heap.trims, 1, "quiet, and 139 MiB more free than at the low mark");
  assertEquals(trimmer.trims, 1);
  // Trimmed pages still count as free in mallinfo: the same figures never trim again.
  for (let i = 0; i < 5; i++) await tick();
  assertEquals(heap.trims, 1);
  trimmer.release();
});

Deno.test("malloc: free memory reused and freed again is trimmed again; small changes are not", async () => {
  const { heap, trimmer, tick } = setup();
  trimmer.retain();
  heap.freeBytes = 100 * MiB;
  await tick();
  await tick();
  assertEquals(heap.trims, 0, "free since the first look: nothing known to be resident");
  // A second burst reuses the free memory (free falls to 20 MiB), then frees it again.
  heap.usedBytes = 90 * MiB;
  heap.freeBytes = 20 * MiB;
  await tick();
  heap.usedBytes = 10 * MiB;
  heap.freeBytes = 100 * MiB;
  await tick();
  await tick();
  assertEquals(heap.trims, 1, "80 MiB went from free to used to free: resident again");
  // Use wandering by less than quietBytes and free growing by less than minFreeBytes: left alone.
  heap.usedBytes = 12 * MiB;
  heap.freeBytes = 110 * MiB;
  await tick();
  heap.usedBytes = 11 * MiB;
  await tick();
  assertEquals(heap.trims, 1);
  trimmer.release();
});

Deno.test("malloc: no trim while the heap is busy, however much is free", async () => {
  const { heap, trimmer, tick } = setup();
  trimmer.retain();
  await tick();
  for (let i = 0; i < 10; i++) {
    heap.usedBytes = i % 2 ? 60 * MiB : 20 * MiB;
    heap.freeBytes = i % 2 ? 20 * MiB : 60 * MiB;
    await tick();
  }
  assertEquals(heap.trims, 0);
  trimmer.release();
});

Deno.test("malloc: the heap is looked at only while the trimmer is held; one trim at a time", async () => {
  const { clock, heap, trimmer, tick } = setup();
  assertEquals(clock.pendingTimers, 0, "nobody holds it: no timer");
  await tick();
  assertEquals(heap.reads, 0);
  trimmer.retain();
  trimmer.retain();
  assertEquals([trimmer.users, clock.pendingTimers], [2, 1], "one timer for any number of users");
  trimmer.release();
  assertEquals(clock.pendingTimers, 1, "still held once");
  await tick();
  heap.freeBytes = 50 * MiB;
  heap.holdTrim = true;
  await tick();
  assertEquals(heap.trims, 1);
  const reads = heap.reads;
  await tick();
  await tick();
  assertEquals([heap.trims, heap.reads], [1, reads], "nothing is read while a trim runs");
  assertEquals(clock.pendingTimers, 0);
  heap.finishTrim();
  await flush();
  assertEquals(clock.pendingTimers, 1, "looking again once the trim is done");
  trimmer.release();
  assertEquals([trimmer.users, clock.pendingTimers], [0, 0]);
  trimmer.release(); // one release too many changes nothing
  assertEquals(trimmer.users, 0);
});

Deno.test("malloc: released during a trim, the trimmer stops once it is done", async () => {
  const { clock, heap, trimmer, tick } = setup();
  trimmer.retain();
  await tick();
  heap.freeBytes = 50 * MiB;
  heap.holdTrim = true;
  await tick();
  assertEquals(heap.trims, 1);
  trimmer.release();
  heap.finishTrim();
  await flush();
  assertEquals(clock.pendingTimers, 0);
});

Deno.test("malloc: a failing trim or unreadable statistics do not stop the trimmer", async () => {
  const { clock, heap, trimmer, tick, log } = setup();
  let fail: "stats" | "trim" | undefined = "stats";
  const stats = heap.stats.bind(heap), trim = heap.trim.bind(heap);
  heap.stats = () => {
    if (fail === "stats") throw new Error("no statistics");
    return stats();
  };
  heap.trim = () => fail === "trim" ? (heap.trims++, Promise.reject(new Error("no trim"))) : trim();
  trimmer.retain();
  await tick();
  assertEquals(clock.pendingTimers, 1);
  fail = "trim";
  await tick(); // the low mark
  heap.freeBytes = 50 * MiB;
  await tick();
  assertEquals([heap.trims, trimmer.trims, clock.pendingTimers], [1, 0, 1]);
  assertEquals(log.lines.filter((l) => l.startsWith("warn")), ["warn malloc_trim failed"]);
  fail = undefined;
  await tick();
  assertEquals([heap.trims, trimmer.trims], [2, 1], "tried again at the next look");
  assert(log.lines.includes("debug free malloc heap pages returned to the kernel"), log.lines.join("\n"));
  trimmer.release();
});

const glibc = glibcMalloc();

capabilityTest({
  name: "malloc: glibc's statistics and trim work here (where glibc has them)",
  async fn() {
    const ctl = glibc as MallocControl;
    const s = ctl.stats();
    assert(s.usedBytes > 0 && s.freeBytes >= 0, JSON.stringify(s));
    assert(ctl.rssBytes() > s.usedBytes / 2);
    await ctl.trim();
  },
}, "reason" in glibc ? `glibc malloc: ${glibc.reason}` : null);
