/**
 * A byte ring that grows on demand up to a fixed limit. Both directions of a connection use one: the send
 * buffer keeps bytes from SND.UNA on, the receive buffer keeps unread in-order bytes followed by the window
 * into which out-of-order segments are written in place. Storage starts small so idle connections stay cheap.
 */
/** Smallest storage once used: an idle or trickling connection (hundreds per process) holds no more. */
const INITIAL_CAPACITY = 4 * 1024;

export class ByteRing {
  #buf: Uint8Array;
  #head = 0;
  #len = 0;

  constructor(readonly limit: number) {
    // Storage is allocated on first use: half-open connections in a SYN flood must cost no buffer memory.
    this.#buf = new Uint8Array(0);
  }

  /** Committed bytes (readable in the receive buffer, unacknowledged+unsent in the send buffer). */
  get length(): number {
    return this.#len;
  }

  /** Bytes that can still be committed before reaching the limit. */
  get free(): number {
    return this.limit - this.#len;
  }

  /** Bytes of storage currently allocated (memory accounting in tests and stats). */
  get allocated(): number {
    return this.#buf.length;
  }

  #ensure(end: number): void {
    if (end <= this.#buf.length) return;
    if (end > this.limit) throw new RangeError("ring limit exceeded");
    let cap = Math.max(this.#buf.length, INITIAL_CAPACITY);
    while (cap < end) cap *= 2;
    cap = Math.min(cap, this.limit);
    const next = new Uint8Array(cap);
    // Linearize everything up to the old capacity so in-place out-of-order data keeps its offsets.
    const old = this.#buf;
    const first = old.subarray(this.#head);
    next.set(first, 0);
    next.set(old.subarray(0, this.#head), first.length);
    this.#buf = next;
    this.#head = 0;
  }

  /** Writes data at logical offset off from the head (off may be past length; bytes stay uncommitted). */
  writeAt(off: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const end = off + data.length;
    this.#ensure(end);
    const cap = this.#buf.length;
    let pos = (this.#head + off) % cap;
    const firstLen = Math.min(data.length, cap - pos);
    this.#buf.set(firstLen === data.length ? data : data.subarray(0, firstLen), pos);
    if (firstLen < data.length) {
      pos = 0;
      this.#buf.set(data.subarray(firstLen), pos);
    }
  }

  /** Appends data and commits it. The caller checks `free` first. */
  push(data: Uint8Array): void {
    this.writeAt(this.#len, data);
    this.#len += data.length;
  }

  /** Marks n more bytes (already written with writeAt) as committed. */
  commit(n: number): void {
    this.#len += n;
  }

  /** Copies n bytes at logical offset off into out[outOff]. off + n must be <= length. */
  peek(off: number, out: Uint8Array, outOff: number, n: number): void {
    if (n === 0) return;
    const cap = this.#buf.length;
    const pos = (this.#head + off) % cap;
    const firstLen = Math.min(n, cap - pos);
    out.set(this.#buf.subarray(pos, pos + firstLen), outOff);
    if (firstLen < n) out.set(this.#buf.subarray(0, n - firstLen), outOff + firstLen);
  }

  /** Copies up to out.length committed bytes out and consumes them. */
  read(out: Uint8Array): number {
    const n = Math.min(out.length, this.#len);
    if (n === 0) return 0;
    this.peek(0, out, 0, n);
    this.discard(n);
    return n;
  }

  /**
   * Frees the storage when nothing is held (the caller guarantees no uncommitted out-of-order bytes either),
   * so a long-lived idle connection does not keep the memory of its busiest moment.
   */
  release(): void {
    if (this.#len !== 0 || this.#buf.length === 0) return;
    this.#buf = new Uint8Array(0);
    this.#head = 0;
  }

  /** Forgets every byte, committed or not, and frees the storage (the connection is gone). */
  drop(): void {
    this.#buf = new Uint8Array(0);
    this.#head = 0;
    this.#len = 0;
  }

  /** Drops n committed bytes from the head. */
  discard(n: number): void {
    if (n === 0) return;
    this.#len -= n;
    // The head is not reset when empty: out-of-order bytes may sit past it in the receive buffer.
    this.#head = (this.#head + n) % this.#buf.length;
  }
}
