/**
 * A relay station (seed 000's worker): pulls its source mountpoint and pushes it to its destination
 * mountpoint. The two sides are two small machines that the station's state is read from:
 *
 *   source       idle -> connecting -> waiting_data -> streaming -> backoff -> connecting ...  | error
 *   destination  idle -> connecting -> streaming -> backoff -> (connecting once data flows)   | error
 *
 *   station state   DISABLED                 enable = false
 *                   WAITING_START            initial_delay + start spread not over yet
 *                   ERROR                    a side was refused its credentials (401, Bad Password): both
 *                                            sides close, the station retries after 30 min (or on a
 *                                            config change, which restarts it)
 *                   CONNECTING_SOURCE        source idle or connecting
 *                   WAITING_DATA             source accepted, no valid frame yet (30 s)
 *                   BACKOFF                  the source, or (source streaming) the destination, waits
 *                   CONNECTING_DESTINATION   source streaming, destination connecting
 *                   RUNNING                  both streaming
 *
 * The destination connects only once data flows. If only the destination fails, the source stays
 * connected (frames are dropped until a new destination session is accepted, which starts on a frame
 * boundary). If the source fails, a live destination session is kept. Time and randomness are injected.
 */
import type { StationConfig } from "../../config/ntrip_stations.ts";
import type { Clock, TimerHandle } from "../../util/clock.ts";
import type { RandomFill } from "../../util/random.ts";
import type { Logger } from "../../util/log.ts";
import { Rtcm3Scanner } from "../../wire/rtcm3.ts";
import type { NtripVersion } from "../../wire/ntrip_client.ts";
import type { DialLimiter } from "./dial_limiter.ts";
import type { PathOpener, StationPaths } from "./egress.ts";
import type { SessionEnd } from "./handshake.ts";
import { SourceSession } from "./source_session.ts";
import { DestinationSession } from "./destination_session.ts";
import { Backoff, CREDENTIALS_RETRY_MS, DESTINATION_MIN_BACKOFF_MS } from "./timing.ts";

export type StationState =
  | "DISABLED"
  | "WAITING_START"
  | "CONNECTING_SOURCE"
  | "WAITING_DATA"
  | "CONNECTING_DESTINATION"
  | "RUNNING"
  | "BACKOFF"
  | "ERROR";

export const STATION_STATES: readonly StationState[] = [
  "DISABLED",
  "WAITING_START",
  "CONNECTING_SOURCE",
  "WAITING_DATA",
  "CONNECTING_DESTINATION",
  "RUNNING",
  "BACKOFF",
  "ERROR",
];

export type SourcePhase = "idle" | "connecting" | "waiting_data" | "streaming" | "backoff" | "error";
export type DestinationPhase = "idle" | "connecting" | "streaming" | "backoff" | "error";
export type Side = "source" | "destination";

export interface WorkerDeps {
  clock: Clock;
  random: RandomFill;
  limiter: DialLimiter;
  openPaths: PathOpener;
  /** `NTRIP wgedge/<version>`. */
  agent: string;
  log: Logger;
}

export interface LastError {
  side: Side;
  kind: string;
  message: string;
  /** Wall-clock ms. */
  atMs: number;
}

/** What one side has seen; the worker keeps it across sessions. */
export interface SideCounters {
  /** Connection attempts (handshakes started). */
  attempts: number;
  /** Sessions the caster accepted. */
  accepted: number;
  /** Attempts and sessions that ended in a failure. */
  failures: number;
  /** The caster's last reply line (status line), if any. */
  lastReply?: string;
  /** The version asked last. */
  version?: NtripVersion;
  /** Clock ms the current session was accepted. */
  sessionSince?: number;
  /** Clock ms of the next attempt when waiting. */
  retryAt?: number;
}

export class StationWorker {
  readonly scanner = new Rtcm3Scanner();
  readonly source: SideCounters = { attempts: 0, accepted: 0, failures: 0 };
  readonly destination: SideCounters = { attempts: 0, accepted: 0, failures: 0 };
  bytesIn = 0;
  bytesOut = 0;
  /** Frames forwarded (rtcm3) or data chunks (raw) given to a destination session. */
  framesOut = 0;
  ggaSent = 0;
  /** Wall-clock ms of the last data forwarded from the source (a valid frame, or raw bytes). */
  lastDataWallMs?: number;
  lastError?: LastError;
  paths?: StationPaths;

  #sourcePhase: SourcePhase = "idle";
  #destinationPhase: DestinationPhase = "idle";
  #begun = false;
  #stopped = false;
  #state: StationState;
  #stateSince: number;
  #src?: SourceSession;
  #dst?: DestinationSession;
  #sourceTimer?: TimerHandle;
  #destinationTimer?: TimerHandle;
  /** Source version chosen by "auto" after a fallback: 1 for the rest of this worker's life. */
  #sourceFellBack = false;
  /**
   * When a streaming source was lost (clock ms) and the source attempts made by then. The loss is logged as a
   * warning; its return, once frames flow again, as info (the destination session was kept through it, so
   * no `connected` line says so).
   */
  #sourceLost?: { atMs: number; attempts: number };
  #destinationFellBack = false;
  readonly #sourceBackoff: Backoff;
  readonly #destinationBackoff: Backoff;
  readonly #running: Promise<unknown>[] = [];

  constructor(readonly station: StationConfig, private readonly deps: WorkerDeps) {
    this.#sourceBackoff = new Backoff(deps.random);
    this.#destinationBackoff = new Backoff(deps.random, DESTINATION_MIN_BACKOFF_MS);
    this.#state = station.enable ? "WAITING_START" : "DISABLED";
    this.#stateSince = deps.clock.now();
  }

  get id(): string {
    return this.station.id;
  }

  get state(): StationState {
    return this.#state;
  }

  /** Clock ms the current state began. */
  get stateSince(): number {
    return this.#stateSince;
  }

  get sourcePhase(): SourcePhase {
    return this.#sourcePhase;
  }

  get destinationPhase(): DestinationPhase {
    return this.#destinationPhase;
  }

  /** Clock ms of the next attempt of whatever is waiting (start, backoff, error retry), if any. */
  get nextRetryAt(): number | undefined {
    if (this.#sourcePhase === "backoff" || this.#sourcePhase === "error") return this.source.retryAt;
    if (this.#destinationPhase === "backoff" || this.#destinationPhase === "error") {
      return this.destination.retryAt;
    }
    if (!this.#begun) return this.source.retryAt;
    return undefined;
  }

  /** Backlog of the destination session, bytes. */
  get destinationBacklog(): number {
    return this.#dst?.backlogBytes ?? 0;
  }

  /**
   * Starts after `delayMs` (the start spread) plus the station's initial_delay. `paths` may be given already
   * open (a restarted station keeps its tunnel up across the restart); the worker then owns them.
   */
  start(delayMs = 0, paths?: StationPaths): void {
    if (this.#stopped) return paths?.release();
    if (!this.station.enable) return paths?.release();
    this.paths = paths;
    const wait = delayMs + this.station.initialDelaySec * 1000;
    this.source.retryAt = this.deps.clock.now() + wait;
    this.#sourceTimer = this.deps.clock.setTimer(() => {
      this.#begun = true;
      this.#track(this.#connectSource());
    }, wait);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const { clock } = this.deps;
    clock.clearTimer(this.#sourceTimer);
    clock.clearTimer(this.#destinationTimer);
    this.#src?.close();
    this.#dst?.close();
    await Promise.allSettled(this.#running);
    this.paths?.release();
    this.paths = undefined;
  }

  // --- source side ---------------------------------------------------------------------------------------

  #sourceVersion(): NtripVersion {
    const v = this.station.source.version;
    if (v === "auto") return this.#sourceFellBack ? 1 : 2;
    return v;
  }

  async #connectSource(): Promise<void> {
    if (this.#stopped) return;
    this.source.retryAt = undefined;
    this.#setSource("connecting");
    if (!this.paths) {
      let paths: StationPaths;
      try {
        paths = await this.deps.openPaths(this.station);
      } catch (e) {
        if (this.#stopped) return;
        this.#recordError("source", "tunnel", (e as Error).message ?? String(e));
        this.source.failures++;
        this.#waitSource(this.#sourceBackoff.next("failure"));
        return;
      }
      if (this.#stopped) return paths.release();
      this.paths = paths;
    }
    const version = this.#sourceVersion();
    this.source.attempts++;
    this.source.version = version;
    const session = new SourceSession({
      station: this.station,
      version,
      net: this.paths.source.net,
      clock: this.deps.clock,
      limiter: this.deps.limiter,
      agent: this.deps.agent,
      scanner: this.scanner,
      onAccepted: (head) => {
        this.source.accepted++;
        this.source.lastReply = head.line;
        this.source.sessionSince = this.deps.clock.now();
        this.#setSource("waiting_data");
      },
      onData: (data, frames) => this.#sourceData(session, data, frames),
      onBytesIn: (n) => (this.bytesIn += n),
      onGgaSent: () => this.ggaSent++,
    });
    this.#src = session;
    this.#track(session.ended.then((end) => this.#sourceEnded(session, end)));
  }

  #sourceData(session: SourceSession, data: Uint8Array, frames: number): void {
    if (this.#src !== session) return;
    this.lastDataWallMs = this.deps.clock.wallMs();
    if (this.#sourcePhase === "waiting_data") {
      this.#setSource("streaming");
      if (this.#sourceLost) this.#logSourceBack(this.#sourceLost);
    }
    if (this.#destinationPhase === "idle") this.#connectDestination();
    else if (this.#destinationPhase === "streaming" && this.#dst) {
      this.#dst.send(data);
      this.framesOut += frames || 1;
    }
  }

  #logSourceBack(lost: { atMs: number; attempts: number }): void {
    this.#sourceLost = undefined;
    this.deps.log.info("source back", {
      station: this.id,
      from: this.station.source.mount,
      down_ms: Math.round(this.deps.clock.now() - lost.atMs),
      attempts: this.source.attempts - lost.attempts,
    });
  }

  #sourceEnded(session: SourceSession, end: SessionEnd): void {
    if (this.#src !== session) return;
    this.#src = undefined;
    const sessionMs = session.acceptedAt !== undefined
      ? this.deps.clock.now() - session.acceptedAt
      : undefined;
    this.source.sessionSince = undefined;
    if (this.#stopped || end.kind === "stopped") return;
    if (this.#sourcePhase === "streaming") {
      this.#sourceLost = { atMs: this.deps.clock.now(), attempts: this.source.attempts };
    }
    if (end.replyLine !== undefined) this.source.lastReply = end.replyLine;
    this.source.failures++;
    this.#recordError("source", end.kind, end.message);
    // "auto": a caster that does not understand the NTRIP 2 request is asked again at once in NTRIP 1.
    const v2Misunderstood = end.kind === "rejected" || end.kind === "closed" || end.kind === "protocol" ||
      end.kind === "fallback-v1";
    if (
      this.station.source.version === "auto" && !this.#sourceFellBack && sessionMs === undefined &&
      v2Misunderstood
    ) {
      this.#sourceFellBack = true;
      this.deps.log.info("source caster did not take NTRIP 2; falling back to NTRIP 1", { station: this.id });
      this.#waitSource(0);
      return;
    }
    if (end.failureClass === "unauthorized") return this.#enterError("source", end);
    this.#waitSource(this.#sourceBackoff.next(end.failureClass, sessionMs));
  }

  #waitSource(ms: number): void {
    this.#setSource("backoff");
    this.source.retryAt = this.deps.clock.now() + ms;
    this.deps.clock.clearTimer(this.#sourceTimer);
    this.#sourceTimer = this.deps.clock.setTimer(() => this.#track(this.#connectSource()), ms);
  }

  // --- destination side ----------------------------------------------------------------------------------

  #destinationVersion(): NtripVersion {
    return this.#destinationFellBack ? 1 : this.station.destination.version === 2 ? 2 : 1;
  }

  #connectDestination(): void {
    if (this.#stopped || !this.paths) return;
    this.destination.retryAt = undefined;
    this.#setDestination("connecting");
    const version = this.#destinationVersion();
    this.destination.attempts++;
    this.destination.version = version;
    const session = new DestinationSession({
      station: this.station,
      version,
      net: this.paths.destination.net,
      clock: this.deps.clock,
      limiter: this.deps.limiter,
      agent: this.deps.agent,
      onAccepted: (head) => {
        if (this.#dst !== session) return;
        this.destination.accepted++;
        this.destination.lastReply = head.line;
        this.destination.sessionSince = this.deps.clock.now();
        this.#setDestination("streaming");
        this.deps.log.info("connected", {
          station: this.id,
          from: this.station.source.mount,
          to: this.station.destination.mount,
        });
      },
      onBytesOut: (n) => (this.bytesOut += n),
    });
    this.#dst = session;
    this.#track(session.ended.then((end) => this.#destinationEnded(session, end)));
  }

  #destinationEnded(session: DestinationSession, end: SessionEnd): void {
    if (this.#dst !== session) return;
    this.#dst = undefined;
    const sessionMs = session.acceptedAt !== undefined
      ? this.deps.clock.now() - session.acceptedAt
      : undefined;
    this.destination.sessionSince = undefined;
    if (this.#stopped || end.kind === "stopped") return;
    if (end.replyLine !== undefined) this.destination.lastReply = end.replyLine;
    this.destination.failures++;
    this.#recordError("destination", end.kind, end.message);
    if (end.kind === "fallback-v1" && !this.#destinationFellBack) {
      this.#destinationFellBack = true;
      this.deps.log.info("destination caster does not take NTRIP 2; falling back to NTRIP 1", {
        station: this.id,
      });
      this.#retryDestination(0);
      return;
    }
    if (end.failureClass === "unauthorized") return this.#enterError("destination", end);
    this.#retryDestination(this.#destinationBackoff.next(end.failureClass, sessionMs));
  }

  /** The destination waits `ms`, then connects if data flows (else it waits, idle, for data). */
  #retryDestination(ms: number): void {
    this.#setDestination("backoff");
    this.destination.retryAt = this.deps.clock.now() + ms;
    this.deps.clock.clearTimer(this.#destinationTimer);
    this.#destinationTimer = this.deps.clock.setTimer(() => {
      if (this.#sourcePhase === "streaming") this.#connectDestination();
      else {
        this.destination.retryAt = undefined;
        this.#setDestination("idle");
      }
    }, ms);
  }

  // --- both ------------------------------------------------------------------------------------------------

  /** Bad credentials on either side: close both, retry the whole station after 30 min. */
  #enterError(side: Side, end: SessionEnd): void {
    const { clock, log } = this.deps;
    log.error("caster refused the credentials; retrying in 30 min", {
      station: this.id,
      side,
      reply: end.replyLine ?? end.message,
    });
    clock.clearTimer(this.#sourceTimer);
    clock.clearTimer(this.#destinationTimer);
    const src = this.#src, dst = this.#dst;
    this.#src = undefined;
    this.#dst = undefined;
    src?.close();
    dst?.close();
    this.source.sessionSince = undefined;
    this.destination.sessionSince = undefined;
    const retryAt = clock.now() + CREDENTIALS_RETRY_MS;
    this.#sourcePhase = side === "source" ? "error" : "idle";
    this.#destinationPhase = side === "destination" ? "error" : "idle";
    this.source.retryAt = side === "source" ? retryAt : undefined;
    this.destination.retryAt = side === "destination" ? retryAt : undefined;
    this.#update();
    this.#sourceTimer = clock.setTimer(() => {
      this.#destinationPhase = "idle";
      this.destination.retryAt = undefined;
      this.#track(this.#connectSource());
    }, CREDENTIALS_RETRY_MS);
  }

  #recordError(side: Side, kind: string, message: string): void {
    this.lastError = { side, kind, message, atMs: this.deps.clock.wallMs() };
    this.deps.log.warn(`${side} ${kind}`, { station: this.id, error: message });
  }

  #setSource(p: SourcePhase): void {
    this.#sourcePhase = p;
    this.#update();
  }

  #setDestination(p: DestinationPhase): void {
    this.#destinationPhase = p;
    this.#update();
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch((e) =>
      this.deps.log.error("station worker", { station: this.id, error: String(e) })
    );
    this.#running.push(tracked);
    tracked.finally(() => {
      const i = this.#running.indexOf(tracked);
      if (i >= 0) this.#running.splice(i, 1);
    });
  }

  /** The station state from the two sides (see the table at the top). */
  #derive(): StationState {
    if (!this.station.enable) return "DISABLED";
    if (!this.#begun) return "WAITING_START";
    if (this.#sourcePhase === "error" || this.#destinationPhase === "error") return "ERROR";
    switch (this.#sourcePhase) {
      case "idle":
      case "connecting":
        return "CONNECTING_SOURCE";
      case "waiting_data":
        return "WAITING_DATA";
      case "backoff":
        return "BACKOFF";
    }
    if (this.#destinationPhase === "streaming") return "RUNNING";
    if (this.#destinationPhase === "backoff") return "BACKOFF";
    return "CONNECTING_DESTINATION";
  }

  #update(): void {
    const next = this.#derive();
    if (next === this.#state) return;
    this.deps.log.debug("state", { station: this.id, from: this.#state, to: next });
    this.#state = next;
    this.#stateSince = this.deps.clock.now();
  }
}
