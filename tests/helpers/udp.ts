/** UDP test helpers shared by the relay, rp and tunnel tests. */
import { within } from "./wait.ts";

/**
 * One datagram, or a failure naming `what` after ms (default 30 s): a datagram lost on a loaded machine fails
 * the test with a reason instead of hanging the suite. The receive left pending is absorbed if the socket is
 * closed afterwards.
 */
export function receiveWithin<A>(
  sock: { receive(): Promise<[Uint8Array, A]> },
  what: string,
  ms?: number,
): Promise<[Uint8Array, A]> {
  const r = sock.receive();
  r.catch(() => {});
  return within(r, what, ms);
}

interface EchoSocket<A> {
  send(data: Uint8Array, to: A): Promise<number>;
  receive(): Promise<[Uint8Array, unknown]>;
}

export interface EchoRetry {
  /** Datagrams sent at most (default 30). */
  attempts?: number;
  /** Wait after the first send before sending again; doubles per attempt up to `maxWaitMs` (default 250). */
  firstWaitMs?: number;
  maxWaitMs?: number;
}

/**
 * Sends `msg` until a datagram equal to it comes back, and returns the number of sends it took.
 *
 * One receive stays pending across the retries. A fresh `receive()` per attempt would queue behind the
 * abandoned one: after a single lost datagram every later reply would be handed to a receive nobody awaits
 * any more, and the test would fail although the path works.
 */
export async function echoWithRetry<A>(
  sock: EchoSocket<A>,
  to: A,
  msg: string,
  retry: EchoRetry = {},
): Promise<number> {
  const attempts = retry.attempts ?? 30;
  let wait = retry.firstWaitMs ?? 250;
  const maxWait = retry.maxWaitMs ?? 2000;
  const payload = new TextEncoder().encode(msg);
  let pending = sock.receive();
  for (let attempt = 1; attempt <= attempts; attempt++) {
    await sock.send(payload, to);
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const got = await Promise.race([
        pending.then(([d]) => new TextDecoder().decode(d)),
        new Promise<null>((r) => timer = setTimeout(() => r(null), wait)),
      ]);
      clearTimeout(timer);
      if (got === null) break; // keep `pending` for the next attempt
      if (got === msg) return attempt;
      // A duplicate of an earlier message of another test phase: read on.
      pending = sock.receive();
    }
    wait = Math.min(wait * 2, maxWait);
  }
  throw new Error(`no echo of "${msg}" after ${attempts} datagrams`);
}

/** What a RecordingUdpEcho saw of one payload. */
export interface EchoRecord {
  /** Sources (host:port) it came from: more than one means its flow was recreated on the way. */
  sources: Set<string>;
  received: number;
  answered: number;
  /** Milliseconds after the echo started when it first and last came in. */
  firstMs: number;
  lastMs: number;
}

/**
 * A UDP echo on a kernel socket in the test process (in place of `socat UDP4-RECVFROM,fork PIPE`, which forks a
 * process per datagram) that answers every datagram to its source and records, per payload (read as text),
 * where it came from and how often it was answered. A test that misses an echo can then say whether the
 * datagram reached the target and which flow brought it. Bounded: at most `maxPayloads` distinct payloads are
 * recorded (later ones are still answered and counted in `unrecorded`), and the loop ends with close().
 */
export class RecordingUdpEcho {
  readonly #sock: Deno.DatagramConn;
  readonly #loop: Promise<void>;
  readonly #started = performance.now();
  readonly seen = new Map<string, EchoRecord>();
  received = 0;
  bytesReceived = 0;
  answered = 0;
  bytesAnswered = 0;
  sendErrors = 0;
  unrecorded = 0;

  constructor(hostname = "127.0.0.1", readonly maxPayloads = 1024) {
    this.#sock = Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
    this.#loop = this.#serve();
  }

  get port(): number {
    return (this.#sock.addr as Deno.NetAddr).port;
  }

  async #serve(): Promise<void> {
    const decoder = new TextDecoder();
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.#sock.receive();
      } catch {
        return; // closed
      }
      const src = from as Deno.NetAddr;
      const ms = Math.round(performance.now() - this.#started);
      this.received++;
      this.bytesReceived += data.length;
      const key = decoder.decode(data);
      let rec = this.seen.get(key);
      if (!rec && this.seen.size < this.maxPayloads) {
        rec = { sources: new Set(), received: 0, answered: 0, firstMs: ms, lastMs: ms };
        this.seen.set(key, rec);
      }
      if (rec) {
        rec.sources.add(`${src.hostname}:${src.port}`);
        rec.received++;
        rec.lastMs = ms;
      } else this.unrecorded++;
      try {
        await this.#sock.send(data, src);
        this.answered++;
        this.bytesAnswered += data.length;
        if (rec) rec.answered++;
      } catch {
        this.sendErrors++;
      }
    }
  }

  /** One line on what the echo saw of `payload`. */
  describe(payload: string): string {
    const r = this.seen.get(payload);
    if (!r) return `the echo never received "${payload}"`;
    return `the echo received "${payload}" ${r.received} time(s) from ${[...r.sources].join(", ")} ` +
      `(first at ${r.firstMs} ms, last at ${r.lastMs} ms) and answered ${r.answered}`;
  }

  /** Totals, for a failure message. */
  summary(): string {
    return `echo: ${this.received} datagrams (${this.bytesReceived} B) received, ${this.answered} ` +
      `(${this.bytesAnswered} B) answered, ${this.sendErrors} send errors, ${this.seen.size} distinct payloads` +
      (this.unrecorded ? `, ${this.unrecorded} datagrams beyond the record` : "");
  }

  async close(): Promise<void> {
    try {
      this.#sock.close();
    } catch { /* closed */ }
    await this.#loop;
  }
}
