/**
 * Injectable time. State machines (WireGuard timers, TCP retransmission, NTRIP backoff) take a Clock so tests
 * drive them with a ManualClock instead of sleeping.
 */
export interface TimerHandle {
  readonly id: number;
}

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch (TAI64N timestamps, status JSON). */
  wallMs(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle | undefined): void;
}

/** The real clock: performance.now() and setTimeout. Timers are unref'd so they never hold the process open. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
  setTimer(fn, ms) {
    const id = setTimeout(fn, Math.max(0, ms)) as unknown as number; // node types make it a Timeout
    Deno.unrefTimer(id);
    return { id };
  },
  clearTimer(handle) {
    if (handle) clearTimeout(handle.id);
  },
};

/**
 * The system clock read at most once per task: the first now() of a task reads performance.now() and a
 * microtask forgets it, so every later now() of the same synchronous run (a drained batch of datagrams, the
 * segments one ACK releases) returns that same instant. The tunnel's send and receive paths read the clock
 * several times per packet (key age, timer deadlines, TCP timestamps), each read an op call; a batch takes
 * well under a millisecond, the resolution of every deadline it feeds. Timers are the system clock's.
 */
export const taskClock: Clock = (() => {
  let cached = -1;
  const forget = () => {
    cached = -1;
  };
  return {
    now() {
      if (cached < 0) {
        cached = performance.now();
        queueMicrotask(forget);
      }
      return cached;
    },
    wallMs: systemClock.wallMs,
    setTimer: systemClock.setTimer,
    clearTimer: systemClock.clearTimer,
  };
})();

interface Pending {
  handle: TimerHandle;
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock for tests: time moves only when advance() is called; due timers fire in order. */
export class ManualClock implements Clock {
  #now: number;
  #wallOffset: number;
  #seq = 0;
  #pending = new Map<number, Pending>();

  constructor(startMs = 1_000_000, wallStartMs = 1_700_000_000_000) {
    this.#now = startMs;
    this.#wallOffset = wallStartMs - startMs;
  }

  now(): number {
    return this.#now;
  }

  wallMs(): number {
    return this.#now + this.#wallOffset;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const handle = { id: ++this.#seq };
    this.#pending.set(handle.id, { handle, at: this.#now + Math.max(0, ms), seq: handle.id, fn });
    return handle;
  }

  clearTimer(handle: TimerHandle | undefined): void {
    if (handle) this.#pending.delete(handle.id);
  }

  /** Number of armed timers (tests use it to check nothing leaks). */
  get pendingTimers(): number {
    return this.#pending.size;
  }

  /** Moves time forward by ms, firing every timer that falls due (including ones armed by fired timers). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.#pending.values()) {
        if (p.at <= target && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      }
      if (!next) break;
      this.#pending.delete(next.handle.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = target;
  }
}
