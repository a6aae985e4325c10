/**
 * Buffers sized by what passes through them, for connections that carry a trickle most of the time (an NTRIP
 * station: about 1 KiB a second) but must not be slow on a burst. Many such connections live in one process,
 * so a buffer allocated at its maximum for each of them is memory held for nothing.
 */

/**
 * A read buffer that starts small, doubles (up to `max`) each time a read fills it, and goes back to the small
 * one when a read fits in it again. Use `buf` for the next read and call `filled(n)` with what it returned.
 */
export class AdaptiveReadBuffer {
  readonly #small: Uint8Array;
  #buf: Uint8Array;

  constructor(readonly min: number, readonly max: number) {
    if (!(min > 0 && max >= min)) throw new RangeError(`read buffer: need 0 < min <= max (${min}, ${max})`);
    this.#small = new Uint8Array(min);
    this.#buf = this.#small;
  }

  /** The buffer to read into next. */
  get buf(): Uint8Array {
    return this.#buf;
  }

  /**
   * Records that the last read returned `n` bytes (the data stays valid in the returned view until the next
   * `filled`); the next `buf` may be another buffer.
   */
  filled(n: number): Uint8Array {
    const data = this.#buf.subarray(0, n);
    if (n === this.#buf.length && n < this.max) this.#buf = new Uint8Array(Math.min(this.max, n * 2));
    else if (n < this.min && this.#buf !== this.#small) this.#buf = this.#small;
    return data;
  }
}

/**
 * Bytes appended into one reused buffer (no allocation per append once it is large enough); it grows to the
 * next power of two that holds what is appended between two `clear()`s, and never shrinks. `bytes` is a view,
 * valid until the next append or clear.
 */
export class ByteStage {
  #buf: Uint8Array;
  #len = 0;

  constructor(initial = 1024) {
    this.#buf = new Uint8Array(initial);
  }

  get length(): number {
    return this.#len;
  }

  /** Storage held, bytes. */
  get capacity(): number {
    return this.#buf.length;
  }

  get bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  append(data: Uint8Array): void {
    const need = this.#len + data.length;
    if (need > this.#buf.length) {
      let cap = Math.max(this.#buf.length, 1);
      while (cap < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    this.#buf.set(data, this.#len);
    this.#len = need;
  }

  clear(): void {
    this.#len = 0;
  }
}
