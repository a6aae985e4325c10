/**
 * One epoll instance for the whole process, for sockets wgedge opens itself through libc (the TCP relay core,
 * tcp_relay.ts) rather than through Deno.
 *
 * Deno's own event loop cannot watch a descriptor it did not open, so the wait runs as a `nonblocking` FFI
 * call (`epoll_wait` on one thread of Deno's blocking pool) whose promise resolves with the batch of ready
 * descriptors. That hand-off between the pool thread and the main thread costs tens of microseconds per
 * wake-up, so after every batch the main thread waits for the next one itself, for LINGER_NS at most
 * (`epoll_pwait2`, which sleeps rather than spins; `epoll_wait(…, 0)` where glibc lacks it), and goes on doing
 * so while batches keep coming, up to MAIN_THREAD_BUDGET_MS before Deno's own events get their turn: under
 * load most events are picked up there, without a hand-off.
 *
 * Every registration carries a generation number beside its descriptor (the 64-bit epoll data: descriptor low,
 * generation high): an event queued for a socket that was closed, and whose number was reused by a new socket
 * within the same batch, is recognised as stale and dropped instead of reaching the new owner.
 *
 * The loop runs while anyone holds it (`acquire()`); the last `release()` wakes the pending wait through an
 * eventfd and resolves once it returned, so no FFI call is left pending (Deno's test sanitizer checks that).
 *
 * Sockets Deno opened and waits on itself (the batched UDP sockets in push mode, net/host_udp.ts) are added
 * without acquire(): Deno's receive stays their wait after a quiet spell, with no hand-off, and the socket
 * calls `linger()` when it has handled that wake-up, so the main thread waits here for what comes next on any
 * watched socket, as the loop does after a batch. Their events are handled wherever they show up: in a
 * linger, in the synchronous rounds of the loop, or in the pool thread's batch when the loop runs.
 *
 * Linux on x86_64 (packed 12-byte struct epoll_event) and aarch64 (16 bytes, data at offset 8).
 */
import { type Libc, loadLibc } from "./libc.ts";
import { IoVec } from "./iovec.ts";

export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLLRDHUP = 0x2000;
/** Edge-triggered: one event per change of readiness (the handler reads or writes until EAGAIN). */
export const EPOLLET = 0x80000000;

const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLL_CLOEXEC = 0o2000000;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

/** Events taken per epoll_wait call. */
export const MAX_EVENTS = 256;
/**
 * After a batch the main thread waits this long for the next one itself (epoll_pwait2; a sleep, not a spin)
 * before handing the wait back to the pool thread.
 */
export const LINGER_NS = 100_000;
/** The most the loop keeps the main thread before Deno's own events get a turn. */
export const MAIN_THREAD_BUDGET_MS = 2;

/** Receives the events of the descriptors it registered. */
export interface EpollHandler {
  onEvents(fd: number, events: number): void;
}

/** struct epoll_event's size and data offset on this architecture. */
function eventLayout(): { size: number; dataOffset: number } | undefined {
  if (Deno.build.arch === "x86_64") return { size: 12, dataOffset: 4 };
  if (Deno.build.arch === "aarch64") return { size: 16, dataOffset: 8 };
  return undefined;
}

export class EpollLoop {
  readonly #libc: Libc;
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #size: number;
  readonly #dataOffset: number;
  /**
   * Registrations by descriptor number (descriptors are small integers): the handler and its generation in
   * two arrays rather than an object per registration, since a relay registers two sockets per connection.
   */
  readonly #handlers: (EpollHandler | undefined)[] = [];
  readonly #generations: number[] = [];
  #generation = 0;
  /** One event for epoll_ctl; two batches (the pool thread's and the synchronous rounds'). */
  readonly #one: Uint8Array;
  readonly #oneView: DataView;
  readonly #asyncEvents: Uint8Array;
  readonly #asyncView: DataView;
  readonly #syncEvents: Uint8Array;
  readonly #syncView: DataView;
  /** The eventfd's 8-byte counter: 1 to add on release(), and room to read it back (held by the IoVecs). */
  readonly #wakeVec = new IoVec();
  readonly #drainVec = new IoVec();
  #holders = 0;
  #running?: Promise<void>;
  /** True during the synchronous rounds: a handler's linger() then returns at once. */
  #inRounds = false;
  /** True while the pool thread waits: the wake-up eventfd is then its to read. */
  #poolWaiting = false;
  readonly #lingerTimeout = new Uint8Array(new BigInt64Array([0n, BigInt(LINGER_NS)]).buffer); // timespec

  private constructor(
    libc: Libc,
    epfd: number,
    wakeFd: number,
    layout: { size: number; dataOffset: number },
  ) {
    this.#libc = libc;
    this.#epfd = epfd;
    this.#wakeFd = wakeFd;
    this.#size = layout.size;
    this.#dataOffset = layout.dataOffset;
    this.#one = new Uint8Array(layout.size);
    this.#oneView = new DataView(this.#one.buffer);
    this.#asyncEvents = new Uint8Array(layout.size * MAX_EVENTS);
    this.#asyncView = new DataView(this.#asyncEvents.buffer);
    this.#syncEvents = new Uint8Array(layout.size * MAX_EVENTS);
    this.#syncView = new DataView(this.#syncEvents.buffer);
    this.#wakeVec.at(new Uint8Array(new BigUint64Array([1n]).buffer));
    this.#drainVec.at(new Uint8Array(8));
    this.#ctl(EPOLL_CTL_ADD, wakeFd, EPOLLIN, 0);
  }

  static #instance?: EpollLoop | { reason: string };

  /** The process's loop, created on first use; `{ reason }` where it cannot run. */
  static shared(): EpollLoop | { reason: string } {
    if (EpollLoop.#instance) return EpollLoop.#instance;
    const layout = eventLayout();
    if (!layout) {
      return EpollLoop.#instance = { reason: `struct epoll_event not known for ${Deno.build.arch}` };
    }
    const libc = loadLibc();
    if ("reason" in libc) return EpollLoop.#instance = libc;
    const epfd = libc.lib.epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
      return EpollLoop.#instance = { reason: `epoll_create1 failed (errno ${libc.errno.getInt32(0)})` };
    }
    const wakeFd = libc.lib.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakeFd < 0) {
      libc.lib.close(epfd);
      return EpollLoop.#instance = { reason: `eventfd failed (errno ${libc.errno.getInt32(0)})` };
    }
    return EpollLoop.#instance = new EpollLoop(libc, epfd, wakeFd, layout);
  }

  /** Keeps the loop running until the matching release(). */
  acquire(): void {
    this.#holders++;
    this.#running ??= this.#run();
  }

  /** The last release stops the loop; resolves when its pending wait has returned. */
  release(): Promise<void> {
    if (this.#holders > 0) this.#holders--;
    if (this.#holders > 0 || !this.#running) return Promise.resolve();
    this.#libc.lib.writev(this.#wakeFd, this.#wakeVec.bytes, 1);
    return this.#running;
  }

  /** Watches `fd` for `events`; false (with errno set) when epoll refuses it. */
  add(fd: number, events: number, handler: EpollHandler): boolean {
    // Generation 0 marks the wake-up eventfd.
    const generation = this.#generation = ((this.#generation + 1) >>> 0) || 1;
    if (this.#ctl(EPOLL_CTL_ADD, fd, events, generation) !== 0) return false;
    this.#handlers[fd] = handler;
    this.#generations[fd] = generation;
    return true;
  }

  /** Changes the events watched on a registered descriptor. */
  modify(fd: number, events: number): boolean {
    return this.#handlers[fd] !== undefined &&
      this.#ctl(EPOLL_CTL_MOD, fd, events, this.#generations[fd]) === 0;
  }

  /** Forgets `fd` without a syscall: for a descriptor about to be closed (close removes it from epoll). */
  forget(fd: number): void {
    this.#handlers[fd] = undefined;
  }

  /**
   * Stops watching `fd` now: for a descriptor someone else closes later (a Deno socket: Deno closes it after
   * this, and its number may then go to a new descriptor at once).
   */
  remove(fd: number): void {
    this.#handlers[fd] = undefined;
    this.#libc.lib.epoll_ctl(this.#epfd, EPOLL_CTL_DEL, fd, this.#one);
  }

  /**
   * The main thread waits for the next events itself and handles them, for as long as they keep coming
   * within LINGER_NS of each other and MAIN_THREAD_BUDGET_MS in all: called by a socket whose wake-up came
   * through Deno, when it has handled it (see the header). Synchronous; handlers run inside it.
   */
  linger(): void {
    this.#rounds(performance.now() + MAIN_THREAD_BUDGET_MS);
  }

  #ctl(op: number, fd: number, events: number, generation: number): number {
    const v = this.#oneView;
    v.setUint32(0, events, true);
    v.setUint32(this.#dataOffset, fd, true);
    v.setUint32(this.#dataOffset + 4, generation, true);
    return this.#libc.lib.epoll_ctl(this.#epfd, op, fd, this.#one);
  }

  async #run(): Promise<void> {
    const lib = this.#libc.lib;
    try {
      while (this.#holders > 0) {
        this.#poolWaiting = true;
        const n = await lib.epoll_wait_blocking(this.#epfd, this.#asyncEvents, MAX_EVENTS, -1);
        this.#poolWaiting = false;
        if (n > 0) this.#dispatch(this.#asyncView, n);
        this.#rounds(performance.now() + MAIN_THREAD_BUDGET_MS);
      }
    } finally {
      this.#running = undefined;
      // Holders that arrived while the last wait was returning start a new loop.
      if (this.#holders > 0) this.#running = this.#run();
    }
  }

  /**
   * Synchronous rounds on the main thread until `until`, a wait of LINGER_NS without events, or the wake-up
   * eventfd (see #dispatch). A linger() from inside the rounds returns at once.
   */
  #rounds(until: number): void {
    if (this.#inRounds) return;
    this.#inRounds = true;
    const lib = this.#libc.lib;
    const pwait2 = lib.epoll_pwait2;
    try {
      while (performance.now() < until) {
        const m = pwait2
          ? pwait2(this.#epfd, this.#syncEvents, MAX_EVENTS, this.#lingerTimeout, null)
          : lib.epoll_wait(this.#epfd, this.#syncEvents, MAX_EVENTS, 0);
        if (m <= 0 || !this.#dispatch(this.#syncView, m)) break;
      }
    } finally {
      this.#inRounds = false;
    }
  }

  /**
   * Hands each event to its registration's handler; false when the wake-up eventfd was among them. While the
   * pool thread waits (a linger can run then) the eventfd is left readable for that wait, which is what it
   * is there to end; otherwise it is read here.
   */
  #dispatch(view: DataView, n: number): boolean {
    const size = this.#size;
    const data = this.#dataOffset;
    let woken = false;
    for (let i = 0; i < n; i++) {
      const at = i * size;
      const events = view.getUint32(at, true);
      const fd = view.getUint32(at + data, true);
      const generation = view.getUint32(at + data + 4, true);
      if (fd === this.#wakeFd && generation === 0) {
        woken = true;
        if (!this.#poolWaiting) this.#libc.lib.readv(this.#wakeFd, this.#drainVec.bytes, 1);
        continue;
      }
      const handler = this.#handlers[fd];
      if (handler === undefined || this.#generations[fd] !== generation) continue; // closed, or reused since
      try {
        handler.onEvents(fd, events);
      } catch (e) {
        // A bug in one socket's handler must not stop the loop for every other: it is thrown again on its
        // own, where the process's safety net (util/safety_net.ts) logs and counts it as unexpected.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    return !woken;
  }
}
