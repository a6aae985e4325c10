/**
 * Every timer, timeout, backoff and limit of a relay station (shared/spec/ntrip.md, "Worker states and
 * timing"), in one place, and the backoff policy that turns a failure into the wait before the next attempt.
 *
 * Backoff per side: 5 s doubling to 300 s, +-20 % jitter; a session shorter than 60 s counts as a failure (it
 * does not reset the doubling); at least 15 s after a destination failure (public casters ban addresses that
 * reconnect every second); 401 / Bad Password -> ERROR, retried every 30 min (or at once on a config change);
 * 404 / SOURCETABLE -> 60 s doubling to 10 min; mount taken -> every 20 s.
 */
import { type RandomFill, randomU32 } from "../../util/random.ts";

export const CONNECT_TIMEOUT_MS = 10_000;
export const REPLY_HEAD_TIMEOUT_MS = 10_000;
/** A TLS side's handshake, after the connect and before the request. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** The first valid frame (raw: the first bytes) must arrive this soon after the caster accepted. */
export const FIRST_DATA_TIMEOUT_MS = 30_000;
/** RUNNING without a valid frame this long = a stale source (GGA sent does not count). */
export const STALE_AFTER_MS = 30_000;
/** A destination whose unsent data exceeds this, or whose oldest unsent byte is this old, is dropped. */
export const DESTINATION_BACKLOG_MAX_BYTES = 64 * 1024;
export const DESTINATION_BACKLOG_MAX_AGE_MS = 5_000;

export const BACKOFF_INITIAL_MS = 5_000;
export const BACKOFF_MAX_MS = 300_000;
export const BACKOFF_JITTER = 0.2;
/** A session that lasted at least this long was a success: the next failure starts the doubling over. */
export const SESSION_SUCCESS_MS = 60_000;
export const DESTINATION_MIN_BACKOFF_MS = 15_000;
export const CREDENTIALS_RETRY_MS = 30 * 60_000;
export const NOT_FOUND_INITIAL_MS = 60_000;
export const NOT_FOUND_MAX_MS = 10 * 60_000;
export const MOUNT_TAKEN_RETRY_MS = 20_000;

/** Dials (TCP connect and NTRIP reply head) in flight at once, process-wide. */
export const MAX_DIALS_IN_FLIGHT = 50;
/** After a (re)start the stations' first connections are spread over at most this window... */
export const START_SPREAD_WINDOW_MS = 30_000;
/** ...and at most this far apart (a few stations do not wait 30 s). */
export const START_SPREAD_MAX_STEP_MS = 200;

/** Why a side's attempt ended, as far as the wait before the next one is concerned. */
export type FailureClass = "failure" | "unauthorized" | "not-found" | "mount-taken";

/** The start offsets of `count` stations started together: evenly apart, within the spread window. */
export function startSpreadMs(index: number, count: number): number {
  if (count <= 1) return 0;
  const step = Math.min(START_SPREAD_MAX_STEP_MS, Math.floor(START_SPREAD_WINDOW_MS / count));
  return index * step;
}

/** The backoff of one side of one station. */
export class Backoff {
  #failures = 0;
  #notFound = 0;

  constructor(private readonly random: RandomFill, private readonly minMs = 0) {}

  /** Consecutive failures counted so far (0 after a long enough session). */
  get failures(): number {
    return this.#failures;
  }

  /**
   * The wait after an attempt that ended as `cls`; `sessionMs` is how long the caster had accepted the
   * session (undefined when it never did). A session of SESSION_SUCCESS_MS or more restarts the doubling.
   */
  next(cls: FailureClass, sessionMs?: number): number {
    if (sessionMs !== undefined && sessionMs >= SESSION_SUCCESS_MS) {
      this.#failures = 0;
      this.#notFound = 0;
    }
    switch (cls) {
      case "unauthorized":
        return CREDENTIALS_RETRY_MS;
      case "mount-taken":
        return Math.max(this.minMs, this.#jitter(MOUNT_TAKEN_RETRY_MS));
      case "not-found": {
        const base = Math.min(NOT_FOUND_MAX_MS, NOT_FOUND_INITIAL_MS * 2 ** this.#notFound);
        this.#notFound = Math.min(this.#notFound + 1, 16);
        return Math.max(this.minMs, this.#jitter(base));
      }
      case "failure": {
        const base = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** this.#failures);
        this.#failures = Math.min(this.#failures + 1, 16);
        return Math.max(this.minMs, this.#jitter(base));
      }
    }
  }

  /** Forgets the failures (a configuration change). */
  reset(): void {
    this.#failures = 0;
    this.#notFound = 0;
  }

  /** base * (1 + u), u uniform in [-20 %, +20 %]. */
  #jitter(base: number): number {
    const u = randomU32(this.random) / 2 ** 32; // [0, 1)
    return Math.round(base * (1 + BACKOFF_JITTER * (2 * u - 1)));
  }
}
