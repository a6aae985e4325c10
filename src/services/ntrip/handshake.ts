/**
 * The part both sides of a station share: take a dial slot, connect (10 s), on a TLS side run the TLS
 * handshake over that connection (10 s; src/net/tls.ts, whatever the Net: host, SOCKS5 or tunnel), send the
 * request head, read the caster's reply head (10 s), give the slot back. Time comes from the injected clock,
 * so tests drive the timeouts without sleeping; the hostname is passed to the Net on every attempt, so DNS is
 * re-resolved each time (by the OS, the tunnel's resolver or the proxy).
 */
import type { Conn, Net } from "../../net/types.ts";
import { writeAll } from "../../net/pipe.ts";
import { connectTls, TlsError } from "../../net/tls.ts";
import type { Clock } from "../../util/clock.ts";
import type { NtripReplyHead, NtripReplyOutcome, NtripReplyReader } from "../../wire/ntrip_client.ts";
import type { DialLimiter } from "./dial_limiter.ts";
import type { StationSide } from "../../config/ntrip_stations.ts";
import {
  CONNECT_TIMEOUT_MS,
  type FailureClass,
  REPLY_HEAD_TIMEOUT_MS,
  TLS_HANDSHAKE_TIMEOUT_MS,
} from "./timing.ts";
import { joinHostPort } from "../../util/host_port.ts";

/** Why a session ended (or never started). */
export type SessionEndKind =
  | "connect"
  | "tls"
  | "reply-timeout"
  | "closed"
  | "protocol"
  | Exclude<NtripReplyOutcome, "accepted">
  | "no-data"
  | "stale"
  | "backlog"
  | "io"
  | "stopped";

export class SessionEnd extends Error {
  override name = "SessionEnd";
  constructor(readonly kind: SessionEndKind, message: string, readonly replyLine?: string) {
    super(message);
  }

  /** How the backoff treats it. */
  get failureClass(): FailureClass {
    if (this.kind === "unauthorized" || this.kind === "not-found" || this.kind === "mount-taken") {
      return this.kind;
    }
    return "failure";
  }
}

export interface HandshakeOptions {
  net: Net;
  host: string;
  port: number;
  request: Uint8Array;
  reader: NtripReplyReader;
  clock: Clock;
  limiter: DialLimiter;
  /** Set on a TLS side: the session runs over TLS to `host` (extra CA certificates besides the roots). */
  tls?: { caCerts?: string[] };
  /** Aborts everything (the station stops); the connection is closed. */
  signal: AbortSignal;
  /** Read size. */
  bufferSize?: number;
}

export interface Handshake {
  conn: Conn;
  head: NtripReplyHead;
}

/** Reply heads are a few hundred bytes; the reader keeps what a read splits. */
const READ_SIZE = 2 * 1024;

function stopped(): SessionEnd {
  return new SessionEnd("stopped", "stopped");
}

/** Resolves `p`, or rejects with `onTimeout()` when the clock passes `ms` first. */
function deadline<T>(p: Promise<T>, ms: number, clock: Clock, onTimeout: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimer(() => reject(onTimeout()), ms);
    p.then((v) => {
      clock.clearTimer(timer);
      resolve(v);
    }, (e) => {
      clock.clearTimer(timer);
      reject(e);
    });
  });
}

function targetOf(o: HandshakeOptions): string {
  return joinHostPort(o.host, o.port);
}

async function dial(o: HandshakeOptions): Promise<Conn> {
  const target = targetOf(o);
  const abort = new AbortController();
  const onStop = () => abort.abort();
  o.signal.addEventListener("abort", onStop, { once: true });
  const dialing = o.net.dialTcp(o.host, o.port, { timeoutMs: CONNECT_TIMEOUT_MS, signal: abort.signal });
  try {
    return await deadline(dialing, CONNECT_TIMEOUT_MS, o.clock, () => {
      abort.abort();
      return new SessionEnd("connect", `connect ${target} via ${o.net.name}: timed out after 10 s`);
    });
  } catch (e) {
    dialing.then((late) => late.close(), () => {}); // a connection that arrives after the timeout is dropped
    if (o.signal.aborted) throw stopped();
    if (e instanceof SessionEnd) throw e;
    const why = (e as Error).message ?? String(e);
    throw new SessionEnd(
      "connect",
      why.includes(target) ? why : `connect ${target} via ${o.net.name}: ${why}`,
    );
  } finally {
    o.signal.removeEventListener("abort", onStop);
  }
}

/** The TLS handshake over a dialled connection (10 s on the clock); the connection is closed on failure. */
async function startTls(o: HandshakeOptions, conn: Conn): Promise<Conn> {
  const what = `TLS to ${targetOf(o)} via ${o.net.name}`;
  const abort = new AbortController();
  const onStop = () => abort.abort();
  o.signal.addEventListener("abort", onStop, { once: true });
  const handshaking = connectTls(conn, {
    hostname: o.host,
    caCerts: o.tls?.caCerts,
    timeoutMs: 0, // bounded here, on the injected clock
    signal: abort.signal,
  });
  try {
    return await deadline(handshaking, TLS_HANDSHAKE_TIMEOUT_MS, o.clock, () => {
      abort.abort();
      return new SessionEnd("tls", `${what}: no handshake within 10 s`);
    });
  } catch (e) {
    if (o.signal.aborted) throw stopped();
    if (e instanceof SessionEnd) throw e;
    const why = e instanceof TlsError ? e.detail : (e as Error).message ?? String(e);
    throw new SessionEnd("tls", `${what}: ${why}`);
  } finally {
    o.signal.removeEventListener("abort", onStop);
  }
}

/** Sends the request and reads the reply head; the connection is closed on any failure. */
async function exchange(o: HandshakeOptions, conn: Conn): Promise<NtripReplyHead> {
  let timedOut = false;
  const timer = o.clock.setTimer(() => {
    timedOut = true;
    conn.close();
  }, REPLY_HEAD_TIMEOUT_MS);
  const onStop = () => conn.close();
  o.signal.addEventListener("abort", onStop, { once: true });
  try {
    await writeAll(conn, o.request);
    const buf = new Uint8Array(o.bufferSize ?? READ_SIZE);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        const partial = o.reader.finish();
        if (partial) return partial;
        throw new SessionEnd("closed", "the caster closed the connection before replying");
      }
      const head = o.reader.push(buf.subarray(0, n));
      if (head) return head;
    }
  } catch (e) {
    conn.close();
    if (o.signal.aborted) throw stopped();
    if (timedOut) throw new SessionEnd("reply-timeout", "no reply head from the caster within 10 s");
    if (e instanceof SessionEnd) throw e;
    throw new SessionEnd(
      (e as Error).name === "NtripReplyError" ? "protocol" : "closed",
      `reading the reply: ${(e as Error).message ?? e}`,
    );
  } finally {
    o.clock.clearTimer(timer);
    o.signal.removeEventListener("abort", onStop);
  }
}

/** Connects and exchanges heads within one dial slot. Rejects with SessionEnd. */
export async function handshake(o: HandshakeOptions): Promise<Handshake> {
  let release: () => void;
  try {
    release = await o.limiter.acquire(o.signal);
  } catch {
    throw stopped();
  }
  try {
    const tcp = await dial(o);
    const conn = o.tls ? await startTls(o, tcp) : tcp;
    const head = await exchange(o, conn);
    return { conn, head };
  } finally {
    release();
  }
}

/** The handshake of one side of a station: its caster's host, port and TLS as the station configures them. */
export function sideHandshake(
  side: StationSide,
  request: Uint8Array,
  reader: NtripReplyReader,
  o: { net: Net; clock: Clock; limiter: DialLimiter; signal: AbortSignal },
): Promise<Handshake> {
  return handshake({
    net: o.net,
    host: side.host,
    port: side.port,
    request,
    tls: side.tls ? { caCerts: side.tlsCa?.certs } : undefined,
    reader,
    clock: o.clock,
    limiter: o.limiter,
    signal: o.signal,
  });
}

/** The SessionEnd for a reply that did not accept: its outcome, with the caster's line. */
export function refusal(head: NtripReplyHead): SessionEnd {
  const kind = head.outcome === "accepted" ? "rejected" : head.outcome;
  const what: Record<string, string> = {
    "not-found": "mountpoint not found",
    unauthorized: "bad credentials",
    "mount-taken": "mountpoint taken",
    "fallback-v1": "the caster does not speak NTRIP 2",
    rejected: "refused",
  };
  return new SessionEnd(kind, `${what[kind]} (caster replied "${head.line}")`, head.line);
}
