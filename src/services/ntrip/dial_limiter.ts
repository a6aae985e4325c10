/**
 * At most N dials in flight process-wide (a dial = TCP connect plus the caster's reply head): 300 stations
 * restarting together must not open 600 connections in the same second through 300 tunnels. Waiters are
 * served first come, first served; a waiter whose signal aborts leaves the queue.
 */
import { MAX_DIALS_IN_FLIGHT } from "./timing.ts";

interface Waiter {
  grant: () => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class DialLimiter {
  #inFlight = 0;
  #waiters: Waiter[] = [];
  #peak = 0;

  constructor(readonly max = MAX_DIALS_IN_FLIGHT) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** The most dials that were in flight at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Resolves a release function once a slot is free; rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(new Error("dial cancelled"));
    if (this.#inFlight < this.max) return Promise.resolve(this.#take());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { grant: () => resolve(this.#take()), signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(new Error("dial cancelled"));
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
    });
  }

  #take(): () => void {
    this.#inFlight++;
    this.#peak = Math.max(this.#peak, this.#inFlight);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight--;
      const next = this.#waiters.shift();
      if (next) {
        if (next.onAbort) next.signal?.removeEventListener("abort", next.onAbort);
        next.grant();
      }
    };
  }
}
