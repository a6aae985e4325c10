/**
 * A re-armable deadline on an injected Clock. Moving the deadline later (every ACK restarts the RTO) does not
 * touch the clock: the armed timer fires, sees the deadline moved and re-arms, so the hot path costs no
 * setTimeout/clearTimeout per segment.
 */
import type { Clock, TimerHandle } from "../../util/clock.ts";

const LATE_MS = 5;

export class Deadline {
  #at = -1;
  #armedAt = -1;
  #handle: TimerHandle | undefined;

  #deferred = false;

  /**
   * `deferIfLate`: when the timer runs more than LATE_MS after its deadline the event loop was stalled, and
   * the segments that would have stopped it (ACKs) may be waiting in the socket behind this timer. One more
   * zero-delay turn lets them in first, so a busy process does not retransmit what was already acknowledged.
   */
  constructor(private clock: Clock, private fire: () => void, private deferIfLate = false) {}

  get armed(): boolean {
    return this.#at >= 0;
  }

  get at(): number {
    return this.#at;
  }

  set(at: number): void {
    this.#at = at;
    if (this.#handle && this.#armedAt <= at) return;
    if (this.#handle) this.clock.clearTimer(this.#handle);
    this.#arm(at);
  }

  clear(): void {
    this.#at = -1;
    this.#deferred = false;
    // The armed clock timer is left to fire and find nothing to do, unless it is far away.
    if (this.#handle && this.#armedAt - this.clock.now() > 1000) {
      this.clock.clearTimer(this.#handle);
      this.#handle = undefined;
    }
  }

  #arm(at: number): void {
    this.#armedAt = at;
    this.#handle = this.clock.setTimer(() => this.#onTimer(), Math.max(0, at - this.clock.now()));
  }

  #onTimer(): void {
    this.#handle = undefined;
    if (this.#at < 0) return;
    if (this.clock.now() < this.#at) {
      this.#deferred = false;
      this.#arm(this.#at);
      return;
    }
    if (this.deferIfLate && !this.#deferred && this.clock.now() - this.#at > LATE_MS) {
      this.#deferred = true;
      this.#armedAt = this.#at;
      this.#handle = this.clock.setTimer(() => this.#onTimer(), 0);
      return;
    }
    this.#deferred = false;
    this.#at = -1;
    this.fire();
  }

  /** Cancels the clock timer too (connection teardown). */
  dispose(): void {
    this.#at = -1;
    if (this.#handle) this.clock.clearTimer(this.#handle);
    this.#handle = undefined;
  }
}
