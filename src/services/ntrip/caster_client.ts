/**
 * One client of a caster mount: the frames the source sent since it joined, queued and written by a single
 * writer (one HTTP chunk per write for v2 clients). The backlog is bounded in bytes and in age: `offer()`
 * refuses a frame once the client is too far behind, and the caster drops it, so one slow rover can never hold
 * memory or delay the others.
 */
import type { Conn } from "../../net/types.ts";
import { writeAll } from "../../net/pipe.ts";
import { concatBytes } from "../../util/bytes.ts";
import type { Clock } from "../../util/clock.ts";
import { encodeChunk } from "../../wire/chunked.ts";
import type { ClientRequest } from "../../wire/ntrip_caster.ts";

/** Bytes of queued frames written to a client in one write (one chunk for v2). */
const WRITE_BATCH_BYTES = 16 * 1024;

export interface BacklogBounds {
  /** Most bytes queued or being written. */
  bytes: number;
  /** Oldest unwritten frame's age. */
  ms: number;
}

export class CasterClient {
  readonly #queue: { bytes: Uint8Array; at: number }[] = [];
  #queuedBytes = 0;
  /** Enqueue time of the frames being written now, while a write is in flight. */
  #inflightAt: number | undefined;
  #inflightBytes = 0;
  #finishing = false;
  #closed = false;
  /** A microtask will start the writer. */
  #drainQueued = false;
  bytesOut = 0;
  readonly connectedAt: string;

  constructor(
    readonly conn: Conn,
    readonly request: ClientRequest,
    private readonly clock: Clock,
    private readonly bounds: BacklogBounds,
    /** Called once when the client is closed, for whatever reason. */
    private readonly onClosed: (client: CasterClient) => void,
    /** Called with the frame bytes of each completed write. */
    private readonly onWritten: (bytes: number) => void,
  ) {
    this.connectedAt = new Date(clock.wallMs()).toISOString();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes queued or being written. */
  get backlogBytes(): number {
    return this.#queuedBytes + this.#inflightBytes;
  }

  /**
   * Queues a frame (shared between clients: not copied, never modified). False when the client is too far
   * behind to take it (the caller drops the client); frames offered after `finish()` are ignored.
   */
  offer(frame: Uint8Array): boolean {
    if (this.#closed || this.#finishing) return true;
    const now = this.clock.now();
    const behindSince = this.#inflightAt ?? this.#queue[0]?.at;
    if (
      this.backlogBytes + frame.length > this.bounds.bytes ||
      (behindSince !== undefined && now - behindSince > this.bounds.ms)
    ) return false;
    this.#queue.push({ bytes: frame, at: now });
    this.#queuedBytes += frame.length;
    if (this.#inflightAt === undefined && !this.#drainQueued) {
      // The frames of one read from the source are offered in one synchronous run: starting the writer after
      // it sends them as one write (one TCP segment, one chunk) instead of the first alone and the rest after.
      this.#drainQueued = true;
      queueMicrotask(() => {
        this.#drainQueued = false;
        if (this.#inflightAt === undefined) this.#drain();
      });
    }
    return true;
  }

  /** The source left: write what is queued, then close (within the backlog age bound). */
  finish(): void {
    if (this.#closed) return;
    this.#finishing = true;
    if (this.#queue.length === 0 && this.#inflightAt === undefined) this.close();
    else this.clock.setTimer(() => this.close(), this.bounds.ms);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    this.onClosed(this);
  }

  /**
   * Reads what the client sends (GGA sentences, discarded) until it leaves, then closes it unless it is being
   * finished (a client may half-close and still want the rest).
   */
  async serve(): Promise<void> {
    const sink = new Uint8Array(1024);
    try {
      while (!this.#closed && (await this.conn.read(sink)) !== null) { /* discarded */ }
    } catch {
      // reset by the peer or closed by us
    }
    if (!this.#finishing) this.close();
  }

  /** Writes the queue in batches until it is empty; the only writer of the connection. */
  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        this.#inflightAt = this.#queue[0].at;
        const parts: Uint8Array[] = [];
        let size = 0;
        while (
          this.#queue.length > 0 && (size === 0 || size + this.#queue[0].bytes.length <= WRITE_BATCH_BYTES)
        ) {
          const item = this.#queue.shift()!;
          parts.push(item.bytes);
          size += item.bytes.length;
        }
        this.#queuedBytes -= size;
        this.#inflightBytes = size;
        const batch = parts.length === 1 ? parts[0] : concatBytes(...parts);
        await writeAll(this.conn, this.request.version === 2 ? encodeChunk(batch) : batch);
        this.#inflightBytes = 0;
        this.bytesOut += size;
        this.onWritten(size);
      }
    } catch {
      this.close();
    } finally {
      this.#inflightAt = undefined;
      this.#inflightBytes = 0;
    }
    if (this.#finishing && this.#queue.length === 0) this.close();
  }
}
