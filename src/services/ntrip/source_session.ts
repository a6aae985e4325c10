/**
 * One pull of a station's source mountpoint (the station as an NTRIP client): handshake, GGA right after
 * acceptance and every gga_interval, the body decoded (chunked or not) and cut into whole CRC-valid RTCM3
 * frames (format rtcm3) or passed as it comes (raw). The first data must come within 30 s of acceptance, and
 * then a valid frame at least every 30 s (GGA sent does not count). The session ends exactly once, with the
 * reason (`ended`); closing it ends it with "stopped".
 */
import type { Conn, Net } from "../../net/types.ts";
import { writeAll } from "../../net/pipe.ts";
import type { Clock, TimerHandle } from "../../util/clock.ts";
import type { StationConfig } from "../../config/ntrip_stations.ts";
import { ChunkedDecoder } from "../../wire/chunked.ts";
import type { Rtcm3Scanner } from "../../wire/rtcm3.ts";
import { buildGga } from "../../wire/gga.ts";
import { AdaptiveReadBuffer, ByteStage } from "../../util/read_buffer.ts";
import {
  buildPullRequest,
  type NtripReplyHead,
  NtripReplyReader,
  type NtripVersion,
  skipBlankLine,
} from "../../wire/ntrip_client.ts";
import type { DialLimiter } from "./dial_limiter.ts";
import { refusal, SessionEnd, sideHandshake } from "./handshake.ts";
import { FIRST_DATA_TIMEOUT_MS, STALE_AFTER_MS } from "./timing.ts";

export interface SourceSessionOptions {
  station: StationConfig;
  /** The version asked this time (auto is resolved by the worker). */
  version: NtripVersion;
  net: Net;
  clock: Clock;
  limiter: DialLimiter;
  agent: string;
  /** The worker's scanner: its statistics add up over sessions; a partial frame is dropped at the start. */
  scanner: Rtcm3Scanner;
  onAccepted(head: NtripReplyHead): void;
  /**
   * Data to forward: whole frames (rtcm3) or the bytes as they came (raw). A view valid only during the call
   * (the session reuses its buffers): copy it to keep it.
   */
  onData(data: Uint8Array, frames: number): void;
  /** Body bytes received (before framing). */
  onBytesIn(n: number): void;
  onGgaSent(): void;
}

/**
 * Reads start at 2 KiB (a second of corrections is about 1 KiB) and grow to 16 KiB while reads fill the
 * buffer; hundreds of stations share a process.
 */
const READ_MIN = 2 * 1024;
const READ_MAX = 16 * 1024;

export class SourceSession {
  readonly ended: Promise<SessionEnd>;
  #end!: (reason: SessionEnd) => void;
  #done = false;
  readonly #abort = new AbortController();
  readonly #o: SourceSessionOptions;
  #conn?: Conn;
  #watchdog?: TimerHandle;
  #ggaTimer?: TimerHandle;
  #acceptedAt?: number;
  #lastDataAt?: number;
  /** The frames of one push, copied together (reused: no allocation per frame). */
  readonly #frames = new ByteStage(1024);
  #frameCount = 0;
  readonly #onFrame = (frame: Uint8Array): void => {
    this.#frames.append(frame);
    this.#frameCount++;
  };

  constructor(o: SourceSessionOptions) {
    this.#o = o;
    this.ended = new Promise((resolve) => (this.#end = resolve));
    this.#run().catch((e) => this.#finish(e));
  }

  /** When the caster accepted (clock ms), undefined before. */
  get acceptedAt(): number | undefined {
    return this.#acceptedAt;
  }

  close(): void {
    this.#finish(new SessionEnd("stopped", "stopped"));
  }

  #finish(e: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#abort.abort();
    this.#o.clock.clearTimer(this.#watchdog);
    this.#o.clock.clearTimer(this.#ggaTimer);
    this.#conn?.close();
    this.#end(e instanceof SessionEnd ? e : new SessionEnd("io", (e as Error).message ?? String(e)));
  }

  async #run(): Promise<void> {
    const o = this.#o;
    const src = o.station.source;
    const request = buildPullRequest({
      version: o.version,
      host: src.host,
      port: src.port,
      mount: src.mount,
      user: src.user ?? (src.password !== undefined ? "" : undefined),
      password: src.password,
      agent: o.agent,
    });
    const reader = new NtripReplyReader({ kind: "pull", version: o.version });
    const { conn, head } = await sideHandshake(src, request, reader, { ...o, signal: this.#abort.signal });
    this.#conn = conn;
    if (this.#done) return conn.close();
    if (head.outcome !== "accepted") throw refusal(head);
    this.#acceptedAt = o.clock.now();
    o.scanner.discardPending();
    o.onAccepted(head);
    this.#armWatchdog(FIRST_DATA_TIMEOUT_MS);
    this.#startGga(conn);

    const chunked = head.chunked ? new ChunkedDecoder() : undefined;
    let blankLineMayFollow = head.blankLineMayFollow;
    const take = (bytes: Uint8Array) => {
      if (blankLineMayFollow && bytes.length > 0) {
        blankLineMayFollow = false;
        bytes = skipBlankLine(bytes);
      }
      if (!chunked) return this.#body(bytes);
      chunked.push(bytes, (data) => this.#body(data));
      if (chunked.done) throw new SessionEnd("closed", "the caster ended the stream (last chunk)");
    };
    try {
      take(head.body);
      const reads = new AdaptiveReadBuffer(READ_MIN, READ_MAX);
      while (!this.#done) {
        const n = await conn.read(reads.buf);
        if (n === null) throw new SessionEnd("closed", "the caster closed the connection");
        take(reads.filled(n));
      }
    } catch (e) {
      if (e instanceof SessionEnd || this.#done) throw e;
      const kind = (e as Error).name === "ChunkedError" ? "protocol" : "io";
      throw new SessionEnd(kind, `reading the stream: ${(e as Error).message ?? e}`);
    }
  }

  /** Decoded body bytes: framed (rtcm3) or as they are (raw), then forwarded. */
  #body(bytes: Uint8Array): void {
    if (bytes.length === 0 || this.#done) return;
    const o = this.#o;
    o.onBytesIn(bytes.length);
    if (o.station.format === "raw") {
      this.#lastDataAt = o.clock.now();
      o.onData(bytes, 0);
      return;
    }
    const frames = this.#frames;
    frames.clear();
    this.#frameCount = 0;
    o.scanner.push(bytes, this.#onFrame, o.clock.wallMs());
    if (this.#frameCount === 0) return;
    this.#lastDataAt = o.clock.now();
    o.onData(frames.bytes, this.#frameCount);
  }

  /**
   * One timer for "no data yet" and "stale": it fires at the earliest moment either can be true and is re-armed
   * from the last data time (no timer churn per frame).
   */
  #armWatchdog(ms: number): void {
    this.#watchdog = this.#o.clock.setTimer(() => {
      const now = this.#o.clock.now();
      if (this.#lastDataAt === undefined) {
        const what = this.#o.station.format === "raw" ? "data" : "valid RTCM3 frame";
        this.#finish(new SessionEnd("no-data", `no ${what} within 30 s of acceptance`));
        return;
      }
      const idle = now - this.#lastDataAt;
      if (idle >= STALE_AFTER_MS) {
        this.#finish(new SessionEnd("stale", `stale: no valid data for ${Math.round(idle / 1000)} s`));
      } else this.#armWatchdog(STALE_AFTER_MS - idle);
    }, ms);
  }

  #startGga(conn: Conn): void {
    const o = this.#o;
    const pos = o.station.position;
    if (!pos || o.station.ggaIntervalSec <= 0) return;
    const send = () => {
      const sentence = buildGga({ talker: o.station.ggaTalker, timeMs: o.clock.wallMs(), ...pos });
      writeAll(conn, new TextEncoder().encode(sentence)).then(
        () => o.onGgaSent(),
        (e) => this.#finish(new SessionEnd("io", `sending GGA: ${(e as Error).message ?? e}`)),
      );
    };
    const every = () => {
      if (this.#done) return;
      send();
      this.#ggaTimer = o.clock.setTimer(every, o.station.ggaIntervalSec * 1000);
    };
    every();
  }
}
