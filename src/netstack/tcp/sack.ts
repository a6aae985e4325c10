/**
 * The sender's SACK scoreboard (RFC 6675 section 3): which octets above SND.UNA the peer holds, which holes
 * count as lost (IsLost), and the pipe estimate. Intervals are [start, end) in sequence space.
 */
import { seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from "./seq.ts";

/** RFC 6675 DupThresh. */
export const DUP_THRESH = 3;
/** A peer sending many tiny blocks must not grow the scoreboard without bound. */
const MAX_RANGES = 1024;

export class SackScoreboard {
  /** Sorted, disjoint SACKed intervals, flattened [s0, e0, s1, e1, ...]. */
  ranges: number[] = [];

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  clear(): void {
    this.ranges.length = 0;
    this.rexmits.length = 0;
  }

  get highestSacked(): number | undefined {
    return this.ranges.length ? this.ranges[this.ranges.length - 1] : undefined;
  }

  get sackedBytes(): number {
    let n = 0;
    for (let i = 0; i < this.ranges.length; i += 2) n += seqDiff(this.ranges[i + 1], this.ranges[i]);
    return n;
  }

  /** Merges blocks (flattened) that lie within (una, max]. Returns true when the scoreboard grew. */
  update(blocks: number[], una: number, max: number): boolean {
    let grew = false;
    for (let i = 0; i + 1 < blocks.length; i += 2) {
      let s = blocks[i];
      const e = blocks[i + 1];
      if (!seqLt(s, e)) continue;
      if (seqLe(e, una) || seqGt(e, max)) continue; // D-SACK or bogus: ignore
      s = seqMax(s, una);
      if (this.#add(s, e)) grew = true;
    }
    return grew;
  }

  #add(s: number, e: number): boolean {
    const r = this.ranges;
    let i = 0;
    while (i < r.length && seqLt(r[i + 1], s)) i += 2;
    if (i < r.length && seqLe(r[i], s) && seqGe(r[i + 1], e)) return false; // already known
    let j = i;
    let ns = s, ne = e;
    while (j < r.length && seqLe(r[j], ne)) {
      ns = seqMin(ns, r[j]);
      ne = seqMax(ne, r[j + 1]);
      j += 2;
    }
    if (j === i && r.length >= MAX_RANGES * 2) return false;
    r.splice(i, j - i, ns, ne);
    return true;
  }

  /** Forgets everything below the new SND.UNA. */
  onCumulativeAck(una: number): void {
    const r = this.ranges;
    let drop = 0;
    while (drop < r.length && seqLe(r[drop + 1], una)) drop += 2;
    if (drop) r.splice(0, drop);
    if (r.length && seqLt(r[0], una)) r[0] = una;
    const x = this.rexmits;
    for (let i = 0; i < x.length;) {
      if (seqLe(x[i + 1], una)) x.splice(i, 3);
      else {
        if (seqLt(x[i], una)) x[i] = una;
        i += 3;
      }
    }
  }

  isSacked(seq: number): boolean {
    const r = this.ranges;
    for (let i = 0; i < r.length; i += 2) {
      if (seqLt(seq, r[i])) return false;
      if (seqLt(seq, r[i + 1])) return true;
    }
    return false;
  }

  /**
   * Walks the holes (unSACKed intervals) between una and the highest SACKed octet, from low to high.
   * `lost` follows IsLost: more than (DupThresh-1)*SMSS bytes or DupThresh discontiguous blocks SACKed above.
   */
  forEachHole(
    una: number,
    mss: number,
    fn: (start: number, end: number, lost: boolean) => boolean | void,
  ): void {
    const r = this.ranges;
    const n = r.length >> 1;
    if (n === 0) return;
    // Suffix sums of SACKed bytes so each hole knows what lies above it.
    const above: number[] = new Array(n);
    let acc = 0;
    for (let k = n - 1; k >= 0; k--) {
      acc += seqDiff(r[2 * k + 1], r[2 * k]);
      above[k] = acc;
    }
    let prevEnd = una;
    for (let k = 0; k < n; k++) {
      const hs = prevEnd, he = r[2 * k];
      if (seqLt(hs, he)) {
        const lost = above[k] > (DUP_THRESH - 1) * mss || n - k >= DUP_THRESH;
        if (fn(hs, he, lost) === true) return;
      }
      prevEnd = r[2 * k + 1];
    }
  }

  /** True when the octet at seq is deemed lost (RFC 6675 IsLost). */
  isLost(seq: number, una: number, mss: number): boolean {
    let lost = false;
    this.forEachHole(una, mss, (s, e, l) => {
      if (seqGe(seq, s) && seqLt(seq, e)) {
        lost = l;
        return true;
      }
      if (seqLt(seq, s)) return true;
    });
    return lost;
  }

  /**
   * Retransmissions of the current recovery episode, flattened [start, end, highDataAtSend, ...]. Tracking
   * ranges rather than RFC 6675's single HighRxt lets a retransmission that was itself lost be sent again
   * without waiting for an RTO (the idea of RFC 8985's RACK, keyed on sequence instead of time).
   */
  rexmits: number[] = [];

  noteRetransmit(start: number, end: number, highData: number): void {
    this.rexmits.push(start, end, highData);
  }

  clearRetransmits(): void {
    this.rexmits.length = 0;
  }

  /**
   * A retransmission is deemed lost once the peer SACKs data first sent after it: that data overtook it.
   * Returns how many were forgotten (they become eligible for retransmission again).
   */
  detectLostRetransmits(): number {
    const top = this.highestSacked;
    if (top === undefined) return 0;
    const x = this.rexmits;
    let lost = 0;
    for (let i = 0; i < x.length;) {
      if (seqGt(top, x[i + 2]) && !this.#covered(x[i], x[i + 1])) {
        x.splice(i, 3);
        lost++;
      } else i += 3;
    }
    return lost;
  }

  #covered(s: number, e: number): boolean {
    const r = this.ranges;
    for (let i = 0; i < r.length; i += 2) if (seqLe(r[i], s) && seqGe(r[i + 1], e)) return true;
    return false;
  }

  /** Bytes of [s, e) that were retransmitted in this episode. */
  #rexmitOverlap(s: number, e: number): number {
    const x = this.rexmits;
    let n = 0;
    for (let i = 0; i < x.length; i += 3) {
      const lo = seqMax(s, x[i]), hi = seqMin(e, x[i + 1]);
      if (seqLt(lo, hi)) n += seqDiff(hi, lo);
    }
    return n;
  }

  /** First sub-range of [s, e) not yet retransmitted, or undefined. */
  #firstNotRetransmitted(s: number, e: number): [number, number] | undefined {
    let cur = s;
    for (let guard = 0; guard < 1 + this.rexmits.length / 3 && seqLt(cur, e); guard++) {
      let moved = false;
      let end = e;
      const x = this.rexmits;
      for (let i = 0; i < x.length; i += 3) {
        if (seqLe(x[i], cur) && seqGt(x[i + 1], cur)) {
          cur = x[i + 1];
          moved = true;
          break;
        }
        if (seqGt(x[i], cur) && seqLt(x[i], end)) end = x[i];
      }
      if (!moved) return [cur, end];
    }
    return undefined;
  }

  /**
   * RFC 6675 SetPipe: octets in flight = unSACKed octets not deemed lost, plus unSACKed octets retransmitted in
   * this episode.
   */
  pipe(una: number, max: number, mss: number): number {
    if (this.ranges.length === 0) return seqDiff(max, una) + this.#rexmitOverlap(una, max);
    let pipe = 0;
    this.forEachHole(una, mss, (s, e, lost) => {
      if (!lost) pipe += seqDiff(e, s);
      pipe += this.#rexmitOverlap(s, e);
    });
    const top = this.highestSacked!;
    if (seqLt(top, max)) pipe += seqDiff(max, top) + this.#rexmitOverlap(top, max);
    return pipe;
  }

  /**
   * NextSeg (RFC 6675 section 4): the first hole octets not yet retransmitted in this episode; with lostOnly
   * only holes that IsLost (rule 1), otherwise any hole below the highest SACKed octet (rule 3).
   */
  nextToRetransmit(una: number, mss: number, lostOnly: boolean): [number, number] | undefined {
    let found: [number, number] | undefined;
    this.forEachHole(una, mss, (s, e, lost) => {
      if (lostOnly && !lost) return;
      const piece = this.#firstNotRetransmitted(s, e);
      if (piece) {
        found = piece;
        return true;
      }
    });
    return found;
  }

  /** End of the SACKed interval containing seq, or undefined when seq is not SACKed. */
  sackedEndAt(seq: number): number | undefined {
    const r = this.ranges;
    for (let i = 0; i < r.length; i += 2) {
      if (seqLt(seq, r[i])) return undefined;
      if (seqLt(seq, r[i + 1])) return r[i + 1];
    }
    return undefined;
  }

  /** Start of the first SACKed interval above seq. */
  nextSackedStart(seq: number): number | undefined {
    const r = this.ranges;
    for (let i = 0; i < r.length; i += 2) if (seqGt(r[i], seq)) return r[i];
    return undefined;
  }
}
