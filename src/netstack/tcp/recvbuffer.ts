/**
 * The receive side's reassembly. Unread in-order bytes and out-of-order segments share one ByteRing: a segment
 * at SEQ is written at (unread + SEQ - RCV.NXT), so reassembly never copies twice and is bounded by the receive
 * buffer, not by a count of gaps. Out-of-order ranges are remembered as sequence intervals for SACK (RFC 2018).
 */
import { ByteRing } from "./ring.ts";
import { seqAdd, seqDiff, seqGt, seqLe, seqLt, seqMax } from "./seq.ts";

export class ReceiveBuffer {
  readonly ring: ByteRing;
  /** Out-of-order intervals [start, end) in sequence space, sorted, disjoint, all above RCV.NXT. */
  #ranges: number[] = [];
  /** The interval that holds the most recently received out-of-order segment (reported first, RFC 2018). */
  #recentStart = -1;

  constructor(limit: number) {
    this.ring = new ByteRing(limit);
  }

  get unread(): number {
    return this.ring.length;
  }

  get limit(): number {
    return this.ring.limit;
  }

  get outOfOrderBytes(): number {
    let n = 0;
    for (let i = 0; i < this.#ranges.length; i += 2) n += seqDiff(this.#ranges[i + 1], this.#ranges[i]);
    return n;
  }

  get hasOutOfOrder(): boolean {
    return this.#ranges.length > 0;
  }

  /** Highest sequence number held out of order (or undefined). */
  get outOfOrderEnd(): number | undefined {
    return this.#ranges.length ? this.#ranges[this.#ranges.length - 1] : undefined;
  }

  /**
   * Stores data at seq (already trimmed to [rcvNxt, right window edge)). Returns how far RCV.NXT advances:
   * the segment itself plus any out-of-order ranges it made contiguous.
   */
  insert(seq: number, data: Uint8Array, rcvNxt: number): number {
    const rel = seqDiff(seq, rcvNxt);
    this.ring.writeAt(this.ring.length + rel, data);
    const end = seqAdd(seq, data.length);
    if (rel > 0) {
      this.#addRange(seq, end);
      return 0;
    }
    let newNxt = end;
    const r = this.#ranges;
    let drop = 0;
    while (drop < r.length && seqLe(r[drop], newNxt)) {
      newNxt = seqMax(newNxt, r[drop + 1]);
      drop += 2;
    }
    if (drop) r.splice(0, drop);
    const advance = seqDiff(newNxt, rcvNxt);
    this.ring.commit(advance);
    return advance;
  }

  #addRange(start: number, end: number): void {
    const r = this.#ranges;
    // Find the first interval that ends at or after start, then swallow every interval that touches [start, end).
    let i = 0;
    while (i < r.length && seqLt(r[i + 1], start)) i += 2;
    let j = i;
    let s = start, e = end;
    while (j < r.length && seqLe(r[j], e)) {
      if (seqLt(r[j], s)) s = r[j];
      if (seqGt(r[j + 1], e)) e = r[j + 1];
      j += 2;
    }
    r.splice(i, j - i, s, e);
    this.#recentStart = s;
  }

  /** Fills `out` (flattened [l, r, ...]) with up to max SACK blocks, the most recent first. */
  sackBlocks(max: number, out: number[]): void {
    out.length = 0;
    const r = this.#ranges;
    if (r.length === 0) return;
    let first = -1;
    for (let i = 0; i < r.length; i += 2) {
      if (r[i] === this.#recentStart) {
        first = i;
        break;
      }
    }
    if (first >= 0) out.push(r[first], r[first + 1]);
    for (let i = 0; i < r.length && out.length < max * 2; i += 2) {
      if (i !== first) out.push(r[i], r[i + 1]);
    }
  }

  /** Copies unread bytes into p and consumes them. */
  read(p: Uint8Array): number {
    return this.ring.read(p);
  }
}
