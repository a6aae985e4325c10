/**
 * Congestion control: NewReno (RFC 5681/6582) and CUBIC (RFC 9438). Windows are in bytes. The connection
 * owns loss detection and recovery (RFC 6675); these classes only decide window sizes.
 */

export type CongestionControlName = "cubic" | "newreno";

export interface CongestionControl {
  readonly name: CongestionControlName;
  cwnd: number;
  ssthresh: number;
  /** New data acknowledged outside recovery. `appLimited` when the sender did not fill the window. */
  onAck(acked: number, mss: number, now: number, srttMs: number | undefined, appLimited: boolean): void;
  /** Loss detected by dupacks/SACK: entering fast recovery with `flight` bytes outstanding. */
  onLoss(flight: number, mss: number, now: number): void;
  /** Retransmission timeout (RFC 5681 eq. 4: ssthresh = max(flight/2, 2*SMSS), cwnd = 1 SMSS). */
  onTimeout(flight: number, mss: number, now: number): void;
}

/** RFC 6928 initial window: min(10*MSS, max(2*MSS, 14600)). */
export function initialWindow(mss: number): number {
  return Math.min(10 * mss, Math.max(2 * mss, 14600));
}

/** An upper bound so an application-limited sender cannot inflate cwnd without limit. */
const MAX_CWND = 64 * 1024 * 1024;

export class NewReno implements CongestionControl {
  readonly name = "newreno";
  cwnd: number;
  ssthresh = Number.MAX_SAFE_INTEGER;
  #bytesAcked = 0;

  constructor(mss: number) {
    this.cwnd = initialWindow(mss);
  }

  onAck(acked: number, mss: number, _now: number, _srtt: number | undefined, appLimited: boolean): void {
    if (appLimited) return; // RFC 7661: do not grow a window that was not used.
    if (this.cwnd < this.ssthresh) {
      // RFC 3465 appropriate byte counting with L = 2*SMSS.
      this.cwnd += Math.min(acked, 2 * mss);
    } else {
      this.#bytesAcked += acked;
      if (this.#bytesAcked >= this.cwnd) {
        this.#bytesAcked -= this.cwnd;
        this.cwnd += mss;
      }
    }
    if (this.cwnd > MAX_CWND) this.cwnd = MAX_CWND;
  }

  onLoss(flight: number, mss: number): void {
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * mss);
    this.cwnd = this.ssthresh;
    this.#bytesAcked = 0;
  }

  onTimeout(flight: number, mss: number): void {
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * mss);
    this.cwnd = mss;
    this.#bytesAcked = 0;
  }
}

/** RFC 9438 constants. */
const CUBIC_C = 0.4;
const CUBIC_BETA = 0.7;

export class Cubic implements CongestionControl {
  readonly name = "cubic";
  cwnd: number;
  ssthresh = Number.MAX_SAFE_INTEGER;
  /** W_max in segments: the window before the last reduction. */
  #wMax = 0;
  #k = 0;
  /** Start of the current congestion-avoidance epoch (ms), or -1 when none. */
  #epochStart = -1;
  /** W_est of the Reno-friendly region, in segments (RFC 9438 section 4.3). */
  #wEst = 0;
  #cwndAtEpoch = 0;

  constructor(mss: number) {
    this.cwnd = initialWindow(mss);
  }

  onAck(acked: number, mss: number, now: number, srttMs: number | undefined, appLimited: boolean): void {
    if (appLimited) return;
    if (this.cwnd < this.ssthresh) {
      this.cwnd = Math.min(MAX_CWND, this.cwnd + Math.min(acked, 2 * mss));
      return;
    }
    const segs = this.cwnd / mss;
    if (this.#epochStart < 0) {
      this.#epochStart = now;
      this.#cwndAtEpoch = segs;
      this.#wEst = segs;
      if (this.#wMax <= segs) {
        this.#k = 0;
        this.#wMax = segs;
      } else {
        this.#k = Math.cbrt((this.#wMax - segs) / CUBIC_C);
      }
    }
    const rtt = (srttMs ?? 100) / 1000;
    const t = (now - this.#epochStart) / 1000;
    // Section 4.2: the target is W_cubic one RTT ahead, bounded to [cwnd, 1.5*cwnd].
    const wCubic = CUBIC_C * (t + rtt - this.#k) ** 3 + this.#wMax;
    const target = Math.min(Math.max(wCubic, segs), 1.5 * segs);
    // Section 4.3: Reno-friendly estimate, alpha = 3*(1-beta)/(1+beta) below W_max.
    const alpha = this.#wEst < this.#wMax ? (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA) : 1;
    this.#wEst += (alpha * acked) / this.cwnd;
    let next: number;
    if (wCubic < this.#wEst) next = this.#wEst;
    else next = segs + ((target - segs) / segs) * (acked / mss);
    this.cwnd = Math.min(MAX_CWND, Math.max(this.cwnd, Math.floor(next * mss)));
  }

  #reduce(mss: number): void {
    const segs = this.cwnd / mss;
    // Section 4.7 fast convergence.
    this.#wMax = segs < this.#wMax ? (segs * (1 + CUBIC_BETA)) / 2 : segs;
    this.#epochStart = -1;
  }

  onLoss(flight: number, mss: number): void {
    this.#reduce(mss);
    this.ssthresh = Math.max(Math.floor(Math.max(flight, this.cwnd) * CUBIC_BETA), 2 * mss);
    this.cwnd = this.ssthresh;
  }

  onTimeout(flight: number, mss: number): void {
    this.#reduce(mss);
    this.ssthresh = Math.max(Math.floor(flight * CUBIC_BETA), 2 * mss);
    this.cwnd = mss;
  }
}

export function createCongestionControl(name: CongestionControlName, mss: number): CongestionControl {
  return name === "newreno" ? new NewReno(mss) : new Cubic(mss);
}
