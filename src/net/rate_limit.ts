/**
 * Requests per second per source address: one token bucket per source on an injected Clock, so a server
 * shared by several clients (the rps API inside a tunnel) answers a flooding client "429" while the others'
 * requests (their heartbeats) still pass. Buckets refill continuously at `perSecond` up to `burst`.
 */
import type { Clock } from "../util/clock.ts";

export interface RateLimit {
  /** Tokens added per second (sustained requests per second). */
  perSecond: number;
  /** Bucket size: requests a quiet source may send at once. */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class SourceRateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  /** `maxSources` bounds the table: full (idle) buckets are dropped first, then the oldest. */
  constructor(readonly limit: RateLimit, readonly clock: Clock, readonly maxSources = 4096) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) {
      throw new Error(
        `rate limit needs perSecond > 0 and burst >= 1 (got ${limit.perSecond}, ${limit.burst})`,
      );
    }
  }

  /** Takes one token for `source`: 0 when the request may go on, else milliseconds until a token is back. */
  take(source: string): number {
    const now = this.clock.now();
    let b = this.#buckets.get(source);
    if (!b) {
      if (this.#buckets.size >= this.maxSources) this.#prune(now);
      b = { tokens: this.limit.burst, at: now };
      this.#buckets.set(source, b);
    } else this.#refill(b, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) * 1000 / this.limit.perSecond));
  }

  /** Sources with a bucket (for tests and status). */
  get sources(): number {
    return this.#buckets.size;
  }

  #refill(b: Bucket, now: number): void {
    const elapsed = Math.max(0, now - b.at);
    b.tokens = Math.min(this.limit.burst, b.tokens + elapsed * this.limit.perSecond / 1000);
    b.at = now;
  }

  #prune(now: number): void {
    for (const [k, b] of this.#buckets) {
      this.#refill(b, now);
      if (b.tokens >= this.limit.burst) this.#buckets.delete(k);
    }
    while (this.#buckets.size >= this.maxSources) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
    }
  }

  /** The refusal text of both HTTP versions. */
  refusal(source: string, retryMs: number): string {
    return `too many requests from ${source} (at most ${this.limit.perSecond}/s, burst ${this.limit.burst}); ` +
      `retry in ${retryMs} ms`;
  }
}
