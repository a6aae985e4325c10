/** Retransmission timeout (RFC 6298): SRTT/RTTVAR smoothing, clamped RTO and exponential backoff. */

/** RFC 6298 section 2.1: the RTO before any sample. */
export const INITIAL_RTO_MS = 1000;
/** Clock granularity G of RFC 6298 section 2 (the Clock is in milliseconds). */
const CLOCK_GRANULARITY_MS = 1;
const ALPHA = 1 / 8;
const BETA = 1 / 4;
const K = 4;

export class RttEstimator {
  srtt: number | undefined = undefined;
  rttvar = 0;
  #rto: number;
  /** Number of consecutive timeouts; the RTO doubles for each (section 5.5). */
  backoff = 0;

  constructor(readonly minRto: number, readonly maxRto: number, initialRto = INITIAL_RTO_MS) {
    this.#rto = Math.min(Math.max(initialRto, minRto), maxRto);
  }

  /** Feeds one RTT measurement taken per Karn's rule (never from a retransmitted segment, unless timestamped). */
  sample(rttMs: number): void {
    const r = Math.max(rttMs, 0);
    if (this.srtt === undefined) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = (1 - BETA) * this.rttvar + BETA * Math.abs(this.srtt - r);
      this.srtt = (1 - ALPHA) * this.srtt + ALPHA * r;
    }
    this.#rto = Math.min(
      this.maxRto,
      Math.max(this.minRto, this.srtt + Math.max(CLOCK_GRANULARITY_MS, K * this.rttvar)),
    );
    // Section 5.7: a new sample after backoff collapses the backed-off value.
    this.backoff = 0;
  }

  /** The RTO to arm now, including backoff. */
  get rto(): number {
    return Math.min(this.maxRto, this.#rto * 2 ** this.backoff);
  }

  /** Section 5.5: double the timer after each expiry. */
  onTimeout(): void {
    if (this.#rto * 2 ** this.backoff < this.maxRto) this.backoff++;
  }
}
