/**
 * One struct iovec (LP64 Linux: base pointer, then length) for readv/writev with a single segment: the byte
 * count travels in memory instead of as a size_t argument (libc.ts says why).
 */
export class IoVec {
  readonly bytes = new Uint8Array(16);
  readonly #view = new DataView(this.bytes.buffer);
  /** The buffer pointed at, held so it stays alive (and its address valid) while this points at it. */
  #target?: Uint8Array;

  /** Points at `buf[0, len)` and returns the iovec to pass. ArrayBuffer backing stores never move. */
  at(buf: Uint8Array, len: number = buf.length): Uint8Array {
    if (this.#target !== buf) {
      this.#target = buf;
      const base = buf.length === 0 ? 0n : BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
      this.#view.setBigUint64(0, base, true);
    }
    this.#view.setUint32(8, len, true);
    this.#view.setUint32(12, 0, true);
    return this.bytes;
  }
}
