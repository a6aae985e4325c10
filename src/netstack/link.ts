/**
 * An in-memory point-to-point link: two PacketInterfaces joined back to back, with injectable loss,
 * duplication, reordering, one-way delay and a rate limit with a bounded queue. Every impairment is decided
 * by the injected RandomFill and every delay by the injected Clock, so a test with seededRandom and a
 * ManualClock replays exactly; a benchmark passes systemClock.
 *
 * Delivery is always asynchronous (a microtask for packets already due, one clock timer for the earliest
 * future packet), so a stack that answers inside its receive callback never recurses into the other stack.
 */
import type { PacketInterface } from "./types.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { cryptoRandom, type RandomFill } from "../util/random.ts";

export interface LinkImpairments {
  /** Probability (0..1) that a packet is lost. */
  loss?: number;
  /** Probability (0..1) that a delivered packet is delivered twice. */
  duplicate?: number;
  /** Probability (0..1) that a packet is held back by `reorderDelayMs` so later packets overtake it. */
  reorder?: number;
  /** Extra delay of a reordered packet; default 1 ms. */
  reorderDelayMs?: number;
  /** One-way delay in ms; default 0. */
  delayMs?: number;
  /** Bottleneck rate in bytes per second; default unlimited. */
  rateBytesPerSec?: number;
  /** Bytes that may wait for the bottleneck before tail drop; default 256 KiB. */
  queueLimitBytes?: number;
}

export interface LinkPairOptions extends LinkImpairments {
  /** Default 1420 (the WireGuard default). */
  mtu?: number;
  clock?: Clock;
  random?: RandomFill;
  /** Impairments for b -> a when they differ from a -> b (the top-level ones). */
  reverse?: LinkImpairments;
}

export interface LinkDirectionStats {
  sent: number;
  delivered: number;
  lost: number;
  queueDropped: number;
  oversizeDropped: number;
  duplicated: number;
  reordered: number;
  bytesDelivered: number;
}

export interface LinkEnd extends PacketInterface {
  /** Counters for packets this end sent. */
  readonly stats: LinkDirectionStats;
  /** Changes this end's outbound impairments (e.g. cut the link mid-test with loss 1). */
  impair(opts: LinkImpairments): void;
  /** Stops delivering in both directions; queued packets are discarded. */
  close(): void;
}

/** Delivery time of a packet with no time-based impairment: due at once, before any timed packet. */
const IMMEDIATE = -Infinity;

interface Queued {
  at: number;
  packet: Uint8Array;
}

class Direction {
  stats: LinkDirectionStats = {
    sent: 0,
    delivered: 0,
    lost: 0,
    queueDropped: 0,
    oversizeDropped: 0,
    duplicated: 0,
    reordered: 0,
    bytesDelivered: 0,
  };
  receiver: ((p: Uint8Array) => void) | undefined;
  #queue: Queued[] = [];
  #head = 0;
  #nextFree = 0;
  #queuedBytes = 0;
  #timer: ReturnType<Clock["setTimer"]> | undefined;
  #timerAt = Infinity;
  #microtask = false;
  #closed = false;
  #rnd = new Uint8Array(4);

  constructor(
    public imp: LinkImpairments,
    readonly mtu: number,
    readonly clock: Clock,
    readonly random: RandomFill,
  ) {}

  #chance(p: number | undefined): boolean {
    if (!p || p <= 0) return false;
    if (p >= 1) return true;
    const b = this.random(this.#rnd);
    return ((b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0) / 4294967296 < p;
  }

  send(packet: Uint8Array): void {
    if (this.#closed) return;
    this.stats.sent++;
    if (packet.length > this.mtu) {
      this.stats.oversizeDropped++;
      return;
    }
    if (this.#chance(this.imp.loss)) {
      this.stats.lost++;
      return;
    }
    const rate = this.imp.rateBytesPerSec ?? 0;
    const delay = this.imp.delayMs ?? 0;
    // Reading the clock costs an op call per packet; an unimpaired link never needs it.
    let at = IMMEDIATE;
    if (rate > 0 || delay > 0) {
      const now = this.clock.now();
      let departs = now;
      if (rate > 0) {
        // Serialise behind the bottleneck; what is waiting for it is bounded like a router queue.
        const start = Math.max(now, this.#nextFree);
        const waiting = (start - now) * rate / 1000;
        if (waiting + packet.length > (this.imp.queueLimitBytes ?? 256 * 1024)) {
          this.stats.queueDropped++;
          return;
        }
        departs = start + packet.length * 1000 / rate;
        this.#nextFree = departs;
      }
      at = departs + delay;
    }
    if (this.#chance(this.imp.reorder)) {
      this.stats.reordered++;
      at = (at === IMMEDIATE ? this.clock.now() : at) + (this.imp.reorderDelayMs ?? 1);
    }
    // The link owns what it carries: the sender may reuse its buffer once send() returns.
    const copy = packet.slice();
    this.#enqueue(at, copy);
    if (this.#chance(this.imp.duplicate)) {
      this.stats.duplicated++;
      this.#enqueue(at, copy);
    }
  }

  #enqueue(at: number, packet: Uint8Array): void {
    const q = this.#queue;
    // Usually appended (times are monotonic); a reordered packet is inserted by a short backwards scan.
    let i = q.length;
    while (i > this.#head && q[i - 1].at > at) i--;
    if (i === q.length) q.push({ at, packet });
    else q.splice(i, 0, { at, packet });
    this.#queuedBytes += packet.length;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#head >= this.#queue.length) return;
    const at = this.#queue[this.#head].at;
    if (at !== IMMEDIATE) {
      const now = this.clock.now();
      if (at > now) {
        if (this.#timer && this.#timerAt <= at) return;
        this.clock.clearTimer(this.#timer);
        this.#timerAt = at;
        this.#timer = this.clock.setTimer(() => {
          this.#timer = undefined;
          this.#timerAt = Infinity;
          this.#pump();
        }, at - now);
        return;
      }
    }
    if (!this.#microtask) {
      this.#microtask = true;
      queueMicrotask(() => {
        this.#microtask = false;
        this.#pump();
      });
    }
  }

  #pump(): void {
    const q = this.#queue;
    let now = IMMEDIATE;
    let haveNow = false;
    // Bounded by the queue length at entry: packets enqueued by receivers wait for the next pump.
    const limit = q.length;
    while (!this.#closed && this.#head < limit) {
      const item = q[this.#head];
      if (item.at > now) {
        if (haveNow) break;
        now = this.clock.now();
        haveNow = true;
        if (item.at > now) break;
      }
      q[this.#head++] = undefined as unknown as Queued;
      this.#queuedBytes -= item.packet.length;
      this.stats.delivered++;
      this.stats.bytesDelivered += item.packet.length;
      try {
        this.receiver?.(item.packet);
      } catch {
        // A receiver must not throw; if one does, the link keeps running.
      }
    }
    if (this.#head > 1024 && this.#head * 2 > q.length) {
      q.splice(0, this.#head);
      this.#head = 0;
    }
    this.#schedule();
  }

  close(): void {
    this.#closed = true;
    this.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }
}

/** Two connected link ends: what a sends, b receives, and the reverse. */
export function createLinkPair(opts: LinkPairOptions = {}): [LinkEnd, LinkEnd] {
  const mtu = opts.mtu ?? 1420;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? cryptoRandom;
  const { reverse, ...forward } = opts;
  const ab = new Direction({ ...forward }, mtu, clock, random);
  const ba = new Direction({ ...(reverse ?? forward) }, mtu, clock, random);
  const end = (out: Direction, inbound: Direction): LinkEnd => ({
    mtu,
    get stats() {
      return out.stats;
    },
    send: (p) => out.send(p),
    setReceiver: (r) => {
      inbound.receiver = r;
    },
    impair: (imp) => {
      out.imp = { ...out.imp, ...imp };
    },
    close: () => {
      ab.close();
      ba.close();
    },
  });
  return [end(ab, ba), end(ba, ab)];
}
