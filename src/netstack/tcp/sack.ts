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
   * RFC 6675 SetPipe: octets in flight = unSACKed octets not deemed lost, plus octets retransmitted (below
   * highRxt) that are not SACKed.
   */
  pipe(una: number, max: number, highRxt: number, mss: number): number {
    if (this.ranges.length === 0) {
      return seqDiff(max, una) + Math.max(0, seqDiff(seqMin(highRxt, max), una));
    }
    let pipe = 0;
    this.forEachHole(una, mss, (s, e, lost) => {
      const len = seqDiff(e, s);
      if (!lost) pipe += len;
      if (seqGt(highRxt, s)) pipe += Math.min(len, seqDiff(highRxt, s));
    });
    const top = this.highestSacked!;
    if (seqLt(top, max)) pipe += seqDiff(max, top);
    return pipe;
  }

  /** First lost hole octet at or above `from` (RFC 6675 NextSeg rule 1), as [start, end) or undefined. */
  nextLost(from: number, una: number, mss: number): [number, number] | undefined {
    let found: [number, number] | undefined;
    this.forEachHole(una, mss, (s, e, lost) => {
      if (!lost || seqLe(e, from)) return;
      found = [seqMax(s, from), e];
      return true;
    });
    return found;
  }

  /** First unSACKed octet at or above `from` below the highest SACKed octet (NextSeg rule 3). */
  nextUnsacked(from: number, una: number, mss: number): [number, number] | undefined {
    let found: [number, number] | undefined;
    this.forEachHole(una, mss, (s, e) => {
      if (seqLe(e, from)) return;
      found = [seqMax(s, from), e];
      return true;
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
