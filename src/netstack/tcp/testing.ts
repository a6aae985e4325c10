/**
 * A fake IP layer for unit tests and benchmarks of the TCP layer alone: two endpoints joined by a queue with
 * injectable loss, reordering, duplication and delay, driven by a ManualClock so runs are deterministic. It
 * copies every segment (the sender may reuse its buffer) and never delivers re-entrantly.
 */
import type { IpSender, TransportHandler } from "../types.ts";
import type { ManualClock } from "../../util/clock.ts";
import { seededRandom } from "../../util/random.ts";

export interface LinkFaults {
  /** Probability a segment is dropped. */
  loss?: number;
  /** Probability a segment is held back behind later ones. */
  reorder?: number;
  /** Probability a segment is delivered twice. */
  duplicate?: number;
  /** One-way delay in ms (default 1). */
  delayMs?: number;
  mtu?: number;
  seed?: number;
}

interface InFlight {
  at: number;
  order: number;
  to: 0 | 1;
  src: Uint8Array;
  dst: Uint8Array;
  segment: Uint8Array;
}

/** Inspects a segment in flight; return false to drop it. side is the sender (0 = A, 1 = B). */
export type LinkTap = (side: 0 | 1, segment: Uint8Array) => boolean;

export class FakeIpLink {
  readonly addrs: [Uint8Array, Uint8Array];
  readonly senders: [IpSender, IpSender];
  readonly #handlers: [TransportHandler | undefined, TransportHandler | undefined] = [undefined, undefined];
  #queue: InFlight[] = [];
  #order = 0;
  #rand: () => number;
  faults: LinkFaults;
  tap: LinkTap | undefined;
  delivered = 0;
  dropped = 0;

  constructor(readonly clock: ManualClock, faults: LinkFaults = {}, v6 = false) {
    this.faults = faults;
    this.addrs = v6
      ? [
        Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
        Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2),
      ]
      : [Uint8Array.of(10, 0, 0, 1), Uint8Array.of(10, 0, 0, 2)];
    const fill = seededRandom(faults.seed ?? 1);
    const word = new Uint8Array(4);
    this.#rand = () => {
      fill(word);
      return (((word[0] << 24) | (word[1] << 16) | (word[2] << 8) | word[3]) >>> 0) / 2 ** 32;
    };
    const mk = (side: 0 | 1): IpSender => ({
      mtuFor: () => this.faults.mtu ?? 1500,
      isLocal: (a) => a.length === this.addrs[side].length && a.every((x, i) => x === this.addrs[side][i]),
      sourceFor: (dst) => dst.length === this.addrs[side].length ? this.addrs[side] : undefined,
      sendSegment: (_proto, src, dst, segment) => this.#send(side, src, dst, segment),
    });
    this.senders = [mk(0), mk(1)];
  }

  attach(side: 0 | 1, h: TransportHandler): void {
    this.#handlers[side] = h;
  }

  /** Injects a segment as if `fromSide` had sent it (forged segments in tests). */
  inject(fromSide: 0 | 1, segment: Uint8Array): void {
    this.#push(fromSide, this.addrs[fromSide], this.addrs[1 - fromSide], segment.slice(), 0);
  }

  #send(side: 0 | 1, src: Uint8Array, dst: Uint8Array, segment: Uint8Array): void {
    if (this.tap && !this.tap(side, segment)) {
      this.dropped++;
      return;
    }
    const f = this.faults;
    if (f.loss && this.#rand() < f.loss) {
      this.dropped++;
      return;
    }
    const copy = segment.slice();
    const extra = f.reorder && this.#rand() < f.reorder ? 1 + Math.floor(this.#rand() * 3) : 0;
    this.#push(side, src, dst, copy, extra);
    if (f.duplicate && this.#rand() < f.duplicate) this.#push(side, src, dst, copy.slice(), 1);
  }

  #push(side: 0 | 1, src: Uint8Array, dst: Uint8Array, segment: Uint8Array, extraDelay: number): void {
    this.#queue.push({
      at: this.clock.now() + (this.faults.delayMs ?? 1) + extraDelay,
      order: this.#order++,
      to: side === 0 ? 1 : 0,
      src: src.slice(),
      dst: dst.slice(),
      segment,
    });
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** Delivers every segment due now (in time order). Returns how many were delivered. */
  deliverDue(): number {
    const now = this.clock.now();
    const due: InFlight[] = [];
    const keep: InFlight[] = [];
    for (const p of this.#queue) (p.at <= now ? due : keep).push(p);
    if (due.length === 0) return 0;
    this.#queue = keep;
    due.sort((a, b) => a.at - b.at || a.order - b.order);
    for (const p of due) {
      this.delivered++;
      this.#handlers[p.to]?.deliver(p.src, p.dst, p.segment);
    }
    return due.length;
  }

  /** Time of the earliest queued segment, or undefined. */
  nextAt(): number | undefined {
    let m: number | undefined;
    for (const p of this.#queue) if (m === undefined || p.at < m) m = p.at;
    return m;
  }
}

/** A macrotask yield much cheaper than setTimeout(0) (which costs milliseconds on a loaded machine). */
function yielder(): { next: () => Promise<void>; close: () => void } {
  const ch = new MessageChannel();
  let resolve: (() => void) | undefined;
  ch.port1.onmessage = () => resolve?.();
  return {
    next: () =>
      new Promise<void>((r) => {
        resolve = r;
        ch.port2.postMessage(0);
      }),
    close: () => {
      ch.port1.close();
      ch.port2.close();
    },
  };
}

/**
 * Runs the link and clock until `done()` or `maxVirtualMs` of virtual time pass: delivers due segments, lets
 * application promises run, and advances time 1 ms at a time when nothing is due (timers fire at their exact
 * virtual times). Returns true when done() held.
 */
export async function drive(link: FakeIpLink, done: () => boolean, maxVirtualMs = 60_000): Promise<boolean> {
  const clock = link.clock;
  const end = clock.now() + maxVirtualMs;
  const y = yielder();
  try {
    while (clock.now() <= end) {
      await y.next();
      if (done()) return true;
      if (link.deliverDue() > 0) continue;
      // Idle: step time without yielding until something is sent (at most 20 ms between checks of done()).
      for (let i = 0; i < 20 && clock.now() <= end; i++) {
        clock.advance(1);
        const next = link.nextAt();
        if (next !== undefined && next <= clock.now()) break;
      }
    }
    await y.next();
    return done();
  } finally {
    y.close();
  }
}
/** Advances virtual time by ms while running the link (for tests that wait on timers). */
export async function elapse(link: FakeIpLink, ms: number): Promise<void> {
  const end = link.clock.now() + ms;
  await drive(link, () => link.clock.now() >= end, ms + 1);
}
