/**
 * One push to a station's destination mountpoint (the station as an NTRIP server): handshake (v1 SOURCE or
 * v2 POST), then the data it is given, whole frames only, from the first one after acceptance (a session
 * starts on a frame boundary; nothing sent before acceptance is kept). NTRIP 2 wraps each write in a chunk.
 *
 * The backlog is what was handed over and not yet written to the connection: more than 64 KiB, or its
 * oldest byte waiting 5 s, ends the session ("backlog"): a destination that cannot keep up is dropped rather
 * than fed stale corrections. Anything the caster sends back is read and ignored; its close ends the session.
 */
import type { Conn, Net } from "../../net/types.ts";
import { writeAll } from "../../net/pipe.ts";
import type { Clock, TimerHandle } from "../../util/clock.ts";
import type { StationConfig } from "../../config/ntrip_stations.ts";
import { chunkOverhead, writeChunk } from "../../wire/chunked.ts";
import {
  buildPushRequest,
  type NtripReplyHead,
  NtripReplyReader,
  type NtripVersion,
} from "../../wire/ntrip_client.ts";
import type { DialLimiter } from "./dial_limiter.ts";
import { refusal, SessionEnd, sideHandshake } from "./handshake.ts";
import { DESTINATION_BACKLOG_MAX_AGE_MS, DESTINATION_BACKLOG_MAX_BYTES } from "./timing.ts";

export interface DestinationSessionOptions {
  station: StationConfig;
  version: NtripVersion;
  net: Net;
  clock: Clock;
  limiter: DialLimiter;
  agent: string;
  onAccepted(head: NtripReplyHead): void;
  /** Payload bytes written to the connection (chunk framing not counted). */
  onBytesOut(n: number): void;
}

interface Pending {
  wire: Uint8Array;
  payload: number;
  atMs: number;
}

/** What the caster sends back is read and ignored (real casters send nothing after the reply head). */
const READ_SIZE = 1024;

export class DestinationSession {
  readonly ended: Promise<SessionEnd>;
  #end!: (reason: SessionEnd) => void;
  #done = false;
  readonly #abort = new AbortController();
  readonly #o: DestinationSessionOptions;
  #conn?: Conn;
  #chunked = false;
  #acceptedAt?: number;
  readonly #queue: Pending[] = [];
  #queuedBytes = 0;
  #writing = false;
  #ageTimer?: TimerHandle;

  constructor(o: DestinationSessionOptions) {
    this.#o = o;
    this.ended = new Promise((resolve) => (this.#end = resolve));
    this.#run().catch((e) => this.#finish(e));
  }

  get acceptedAt(): number | undefined {
    return this.#acceptedAt;
  }

  /** Bytes handed over and not yet written. */
  get backlogBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Queues whole frames for the caster; ignored before acceptance and after the end. `data` is copied (once,
   * straight into its chunk on NTRIP 2), so the caller may reuse it.
   */
  send(data: Uint8Array): void {
    if (this.#done || this.#acceptedAt === undefined || data.length === 0) return;
    let wire: Uint8Array;
    if (this.#chunked) {
      wire = new Uint8Array(chunkOverhead(data.length) + data.length);
      writeChunk(wire, 0, data.length, data);
    } else wire = data.slice();
    this.#queue.push({ wire, payload: data.length, atMs: this.#o.clock.now() });
    this.#queuedBytes += wire.length;
    if (this.#queuedBytes > DESTINATION_BACKLOG_MAX_BYTES) {
      this.#finish(
        new SessionEnd(
          "backlog",
          `the caster is not keeping up: more than 64 KiB waiting (${this.#queuedBytes} B)`,
        ),
      );
      return;
    }
    if (this.#ageTimer === undefined) this.#armAgeTimer(DESTINATION_BACKLOG_MAX_AGE_MS);
    if (!this.#writing) this.#pump();
  }

  close(): void {
    this.#finish(new SessionEnd("stopped", "stopped"));
  }

  #finish(e: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#abort.abort();
    this.#o.clock.clearTimer(this.#ageTimer);
    this.#conn?.close();
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#end(e instanceof SessionEnd ? e : new SessionEnd("io", (e as Error).message ?? String(e)));
  }

  async #run(): Promise<void> {
    const o = this.#o;
    const dst = o.station.destination;
    const request = buildPushRequest({
      version: o.version,
      host: dst.host,
      port: dst.port,
      mount: dst.mount,
      user: dst.user,
      password: dst.password ?? "",
      agent: o.agent,
    });
    const reader = new NtripReplyReader({ kind: "push", version: o.version });
    const { conn, head } = await sideHandshake(dst, request, reader, { ...o, signal: this.#abort.signal });
    this.#conn = conn;
    if (this.#done) return conn.close();
    if (head.outcome !== "accepted") throw refusal(head);
    this.#chunked = o.version === 2;
    this.#acceptedAt = o.clock.now();
    o.onAccepted(head);
    const buf = new Uint8Array(READ_SIZE);
    try {
      while (!this.#done) {
        if ((await conn.read(buf)) === null) {
          throw new SessionEnd("closed", "the caster closed the connection");
        }
      }
    } catch (e) {
      if (e instanceof SessionEnd || this.#done) throw e;
      throw new SessionEnd("io", `connection to the caster: ${(e as Error).message ?? e}`);
    }
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#done) {
        const head = this.#queue[0];
        await writeAll(this.#conn!, head.wire);
        if (this.#done) return;
        this.#queue.shift();
        this.#queuedBytes -= head.wire.length;
        this.#o.onBytesOut(head.payload);
      }
    } catch (e) {
      this.#finish(new SessionEnd("io", `writing to the caster: ${(e as Error).message ?? e}`));
    } finally {
      this.#writing = false;
    }
  }

  /** Fires when the oldest waiting bytes could reach the age limit; re-armed from the new oldest. */
  #armAgeTimer(ms: number): void {
    this.#ageTimer = this.#o.clock.setTimer(() => {
      this.#ageTimer = undefined;
      const oldest = this.#queue[0];
      if (!oldest || this.#done) return;
      const age = this.#o.clock.now() - oldest.atMs;
      if (age >= DESTINATION_BACKLOG_MAX_AGE_MS) {
        this.#finish(
          new SessionEnd("backlog", `the caster is not keeping up: data waiting ${Math.round(age / 1000)} s`),
        );
      } else this.#armAgeTimer(DESTINATION_BACKLOG_MAX_AGE_MS - age);
    }, ms);
  }
}
