/**
 * The TCP layer of the userspace stack: demultiplexes verified segments to connections (by a numeric hash of
 * the 4-tuple) or listeners, answers segments for nobody with RST (RFC 9293 section 3.10.7.1), opens
 * connections and allocates ephemeral ports. The IP layer wires it in as the TransportHandler for protocol 6.
 */
import type { Conn, Listener } from "../conn.ts";
import type { IpSender, TransportHandler } from "../types.ts";
import { IPPROTO_TCP } from "../types.ts";
import { type Clock, systemClock } from "../../util/clock.ts";
import { cryptoRandom, type RandomFill } from "../../util/random.ts";
import { logger } from "../../util/log.ts";
import {
  checkTcpSegment,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  TcpHeaderOptions,
  TcpSegmentView,
  writeTcpHeader,
} from "../../wire/tcp.ts";
import {
  addrString,
  type ConnectionHost,
  receiveWindowShift,
  TcpConnection,
  TcpState,
} from "./connection.ts";
import { TcpListener } from "./listener.ts";
import { IsnGenerator } from "./isn.ts";
import { SynCookies } from "./syncookie.ts";
import {
  DEFAULT_TCP_OPTIONS,
  newTcpStats,
  type TcpOptions,
  type TcpStats,
  validateTcpOptions,
} from "./options.ts";
import { seqAdd, seqGt, seqLt } from "./seq.ts";

export { TcpConnection, TcpState } from "./connection.ts";
export { TcpListener } from "./listener.ts";
export { DEFAULT_TCP_OPTIONS, type TcpOptions, type TcpStats } from "./options.ts";

const log = logger("tcp");

const EPHEMERAL_FIRST = 49152;
const EPHEMERAL_COUNT = 65536 - EPHEMERAL_FIRST;
/** RFC 5961 section 7: at most this many challenge ACKs per second, stack-wide. */
const CHALLENGE_ACKS_PER_SECOND = 1000;

function sameAddr(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A numeric bucket key for (remote address, remote port, local port); the local address is compared in the bucket. */
function tupleKey(remote: Uint8Array, remotePort: number, localPort: number): number {
  let h = ((remotePort << 16) | localPort) >>> 0;
  for (let i = 0; i + 3 < remote.length; i += 4) {
    const w = (remote[i] << 24) | (remote[i + 1] << 16) | (remote[i + 2] << 8) | remote[i + 3];
    h = Math.imul(h ^ w, 0x9e3779b1);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

export interface ConnectOptions {
  srcAddr?: Uint8Array;
  /** A fixed local port instead of an ephemeral one (simultaneous open, tests). */
  srcPort?: number;
  timeoutMs?: number;
  noDelay?: boolean;
}

/**
 * Where segments are built before the IP layer copies them into a packet: one per process, not one per stack,
 * since it is filled and copied within one synchronous call (300 tunnels would otherwise reserve 19 MiB).
 */
let segmentScratch: Uint8Array | undefined;
const NO_BYTES = new Uint8Array(0);

export class TcpLayer implements TransportHandler {
  readonly stats: TcpStats = newTcpStats();
  readonly options: TcpOptions;
  readonly #clock: Clock;
  readonly #isn: IsnGenerator;
  readonly #cookies: SynCookies;
  #lastCookieAt = -1;
  readonly #random: RandomFill;
  readonly #conns = new Map<number, TcpConnection[]>();
  readonly #listeners = new Map<number, TcpListener[]>();
  readonly #view = new TcpSegmentView(NO_BYTES);
  readonly #opts = new TcpHeaderOptions();
  readonly #host: ConnectionHost;
  #challengeSecond = -1;
  #challengeCount = 0;
  #closed = false;
  #nowCache: number | undefined;

  constructor(private ip: IpSender, opts: Partial<TcpOptions> & { clock?: Clock; random?: RandomFill } = {}) {
    const { clock, random, ...rest } = opts;
    this.options = { ...DEFAULT_TCP_OPTIONS };
    for (const [k, v] of Object.entries(rest)) {
      if (v !== undefined) (this.options as unknown as Record<string, unknown>)[k] = v;
    }
    validateTcpOptions(this.options);
    const base = clock ?? systemClock;
    // One clock reading per inbound segment: performance.now() is a measurable share of the per-segment cost,
    // and every timer and timestamp touched while one segment is processed may share it.
    this.#clock = {
      now: () => this.#nowCache ?? base.now(),
      wallMs: () => base.wallMs(),
      setTimer: (fn, ms) => base.setTimer(fn, ms),
      clearTimer: (h) => base.clearTimer(h),
    };
    this.#random = random ?? cryptoRandom;
    this.#isn = new IsnGenerator(this.#random, this.#clock);
    this.#cookies = new SynCookies(this.#random, this.#clock);
    const scratch = segmentScratch ??= new Uint8Array(65536 + 128);
    this.#host = {
      ip,
      clock: this.#clock,
      stats: this.stats,
      options: this.options,
      scratch,
      detach: (c) => this.#detach(c),
      established: (c) => {
        c.listenerRef && (c.listenerRef as TcpListener).established(c);
      },
      allowChallengeAck: () => this.#allowChallengeAck(),
    };
  }

  // ---------------------------------------------------------------- demultiplexing

  deliver(src: Uint8Array, dst: Uint8Array, segment: Uint8Array): void {
    this.stats.segmentsIn++;
    if (this.#closed) return;
    this.#nowCache = undefined;
    this.#nowCache = this.#clock.now();
    try {
      if (checkTcpSegment(segment) !== null) {
        this.stats.malformed++;
        return;
      }
      const view = this.#view;
      view.buf = segment;
      const o = this.#opts;
      if (!view.parseOptions(o)) {
        this.stats.malformed++;
        return;
      }
      const sport = view.srcPort, dport = view.dstPort;
      if (sport === 0 || dport === 0) {
        this.stats.malformed++;
        return;
      }
      const conn = this.#lookup(src, sport, dport, dst);
      if (conn) {
        if (conn.state === TcpState.TimeWait && this.#synReusesTimeWait(conn, view, o)) {
          conn.releaseTimeWait();
        } else {
          conn.input(view, o);
          return;
        }
      }
      const listener = this.#findListener(dst, dport);
      if (listener) this.#inputListen(listener, src, dst, view, o);
      else this.#noConnection(src, dst, view);
    } catch (e) {
      // A bug must not take the stack down with it: count, log, drop.
      this.stats.malformed++;
      log.warn("segment processing failed", { error: e instanceof Error ? e.message : String(e) });
    } finally {
      this.#nowCache = undefined;
      // Let go of the segment: it is a view on a 64 KiB decryption slab, pinned otherwise until the next one.
      this.#view.buf = NO_BYTES;
    }
  }

  /** RFC 6191 / RFC 9293 section 3.6.1: a SYN with a higher sequence number or timestamp may reuse TIME_WAIT. */
  #synReusesTimeWait(conn: TcpConnection, view: TcpSegmentView, o: TcpHeaderOptions): boolean {
    if ((view.flags & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) return false;
    const ts = conn.lastTsRecent;
    if (ts !== undefined && o.hasTimestamp) return seqGt(o.tsVal, ts);
    return seqGt(view.seq, conn.timeWaitRecvNext);
  }

  #inputListen(
    l: TcpListener,
    src: Uint8Array,
    dst: Uint8Array,
    view: TcpSegmentView,
    o: TcpHeaderOptions,
  ): void {
    const flags = view.flags;
    if (flags & TCP_RST) return;
    if (flags & TCP_ACK) {
      if (!(flags & TCP_SYN) && this.#tryCookie(l, src, dst, view, o)) return;
      this.#sendReset(dst, src, view.dstPort, view.srcPort, view.ack, 0, TCP_RST);
      return;
    }
    if (!(flags & TCP_SYN)) return;
    if (!l.canAcceptSyn()) {
      if (this.options.synCookies && !l.closed && l.queued < l.backlog) this.#sendCookie(src, dst, view, o);
      else this.stats.synDropped++;
      return;
    }
    const local = dst.slice(), remote = src.slice();
    const c = new TcpConnection(this.#host, {
      localAddr: local,
      localPort: view.dstPort,
      remoteAddr: remote,
      remotePort: view.srcPort,
      iss: this.#isn.isn(local, view.dstPort, remote, view.srcPort),
      tsOffset: this.#isn.timestampOffset(local, view.dstPort, remote, view.srcPort),
    });
    l.adopt(c);
    this.#register(c);
    this.stats.passiveOpens++;
    c.acceptSyn(view, o);
  }

  /** The SYN queue is full: answer with a SYN-ACK whose ISN is a cookie and keep no state. */
  #sendCookie(src: Uint8Array, dst: Uint8Array, view: TcpSegmentView, o: TcpHeaderOptions): void {
    const opts = this.options;
    const lport = view.dstPort, rport = view.srcPort;
    const peerMss = o.mss ?? (src.length === 4 ? 536 : 1220);
    const iss = this.#cookies.make(dst, lport, src, rport, view.seq, peerMss);
    const ourMss = Math.max(64, this.ip.mtuFor(src) - (src.length === 4 ? 40 : 60));
    const ts = opts.timestamps && o.hasTimestamp;
    // Without timestamps nothing can carry window scaling or SACK back to us, so neither is offered.
    const ws = ts && opts.windowScaling && o.windowShift !== undefined;
    const sack = ts && opts.sack && o.sackPermitted;
    const tsNow = (Math.floor(this.#clock.now()) + this.#isn.timestampOffset(dst, lport, src, rport)) >>> 0;
    const buf = this.#host.scratch;
    const hlen = writeTcpHeader(buf, 0, {
      srcPort: lport,
      dstPort: rport,
      seq: iss,
      ack: seqAdd(view.seq, 1),
      flags: TCP_SYN | TCP_ACK,
      window: Math.min(opts.receiveBufferSize, 65535),
    }, {
      mss: ourMss,
      sackPermitted: sack,
      timestamp: ts
        ? { val: SynCookies.encodeTimestamp(tsNow, ws ? o.windowShift : undefined, sack), ecr: o.tsVal }
        : undefined,
      windowShift: ws ? receiveWindowShift(opts) : undefined,
    });
    this.#lastCookieAt = this.#clock.now();
    this.stats.synCookiesSent++;
    this.stats.segmentsOut++;
    this.ip.sendSegment(IPPROTO_TCP, dst, src, buf.subarray(0, hlen));
  }

  /** An ACK for a listener: the final ACK of a handshake answered with a cookie? */
  #tryCookie(
    l: TcpListener,
    src: Uint8Array,
    dst: Uint8Array,
    view: TcpSegmentView,
    o: TcpHeaderOptions,
  ): boolean {
    // Only while cookies are in use (Linux does the same): otherwise every stray ACK would be a guess.
    if (
      !this.options.synCookies || this.#lastCookieAt < 0 || this.#clock.now() - this.#lastCookieAt > 128_000
    ) {
      return false;
    }
    if (l.closed || l.queued >= l.backlog) return false;
    const lport = view.dstPort, rport = view.srcPort;
    const iss = seqAdd(view.ack, -1);
    const mss = this.#cookies.check(dst, lport, src, rport, seqAdd(view.seq, -1), iss);
    if (mss === undefined) return false;
    const peer = o.hasTimestamp ? SynCookies.decodeTimestamp(o.tsEcr) : { sackPermitted: false };
    const local = dst.slice(), remote = src.slice();
    const c = new TcpConnection(this.#host, {
      localAddr: local,
      localPort: lport,
      remoteAddr: remote,
      remotePort: rport,
      iss,
      tsOffset: this.#isn.timestampOffset(local, lport, remote, rport),
    });
    l.adopt(c);
    this.#register(c);
    this.stats.passiveOpens++;
    this.stats.synCookiesAccepted++;
    c.acceptCookie(view, o, mss, peer.windowShift, peer.sackPermitted);
    return true;
  }

  /** RFC 9293 section 3.10.7.1: a segment for no connection gets a RST unless it is one. */
  #noConnection(src: Uint8Array, dst: Uint8Array, view: TcpSegmentView): void {
    this.stats.noConnection++;
    const flags = view.flags;
    if (flags & TCP_RST) return;
    if (flags & TCP_ACK) {
      this.#sendReset(dst, src, view.dstPort, view.srcPort, view.ack, 0, TCP_RST);
    } else {
      const len = view.payloadLength + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0);
      this.#sendReset(dst, src, view.dstPort, view.srcPort, 0, seqAdd(view.seq, len), TCP_RST | TCP_ACK);
    }
  }

  #sendReset(
    local: Uint8Array,
    remote: Uint8Array,
    localPort: number,
    remotePort: number,
    seq: number,
    ack: number,
    flags: number,
  ): void {
    const buf = this.#host.scratch;
    const hlen = writeTcpHeader(buf, 0, {
      srcPort: localPort,
      dstPort: remotePort,
      seq,
      ack,
      flags,
      window: 0,
    });
    this.stats.resetsSent++;
    this.stats.segmentsOut++;
    this.ip.sendSegment(IPPROTO_TCP, local, remote, buf.subarray(0, hlen));
  }

  deliverIcmpError(
    kind: "unreachable" | "port-unreachable" | "too-big",
    src: Uint8Array,
    dst: Uint8Array,
    quoted: Uint8Array,
    mtu?: number,
  ): void {
    try {
      if (quoted.length < 8) return;
      const sport = (quoted[0] << 8) | quoted[1], dport = (quoted[2] << 8) | quoted[3];
      // The quoted segment is one we sent: its source is us. Accept either argument order.
      const c = this.#lookup(dst, dport, sport, src) ?? this.#lookup(src, dport, sport, dst);
      if (!c) return;
      // RFC 5927 section 4.1: act only on errors quoting a sequence number we actually have in flight, so a
      // blind attacker cannot shrink our segments or abort a connect.
      const qseq = ((quoted[4] << 24) | (quoted[5] << 16) | (quoted[6] << 8) | quoted[7]) >>> 0;
      if (seqLt(qseq, c.sndUna) || seqGt(qseq, c.sndMax)) return;
      if (kind === "too-big") {
        if (mtu !== undefined && mtu > 0) c.icmpTooBig(mtu);
      } else c.icmpUnreachable(kind);
    } catch (e) {
      log.warn("icmp error processing failed", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  // ---------------------------------------------------------------- tables

  #lookup(
    remote: Uint8Array,
    remotePort: number,
    localPort: number,
    local: Uint8Array,
  ): TcpConnection | undefined {
    const bucket = this.#conns.get(tupleKey(remote, remotePort, localPort));
    if (!bucket) return undefined;
    for (let i = 0; i < bucket.length; i++) {
      const c = bucket[i];
      if (
        c.remotePort === remotePort && c.localPort === localPort && sameAddr(c.remote, remote) &&
        sameAddr(c.local, local)
      ) return c;
    }
    return undefined;
  }

  #register(c: TcpConnection): void {
    c.hashKey = tupleKey(c.remote, c.remotePort, c.localPort);
    const bucket = this.#conns.get(c.hashKey);
    if (bucket) bucket.push(c);
    else this.#conns.set(c.hashKey, [c]);
    this.stats.connections++;
  }

  #detach(c: TcpConnection): void {
    const bucket = this.#conns.get(c.hashKey);
    if (!bucket) return;
    const i = bucket.indexOf(c);
    if (i < 0) return;
    bucket.splice(i, 1);
    if (bucket.length === 0) this.#conns.delete(c.hashKey);
    this.stats.connections--;
  }

  #findListener(local: Uint8Array, port: number): TcpListener | undefined {
    const list = this.#listeners.get(port);
    if (!list) return undefined;
    let wildcard: TcpListener | undefined;
    for (const l of list) {
      if (!l.local) wildcard ??= l;
      else if (sameAddr(l.local, local)) return l;
    }
    return wildcard;
  }

  #allowChallengeAck(): boolean {
    const sec = Math.floor(this.#clock.now() / 1000);
    if (sec !== this.#challengeSecond) {
      this.#challengeSecond = sec;
      this.#challengeCount = 0;
    }
    return ++this.#challengeCount <= CHALLENGE_ACKS_PER_SECOND;
  }

  #randomPortStart(): number {
    const b = this.#random(new Uint8Array(2));
    return ((b[0] << 8) | b[1]) % EPHEMERAL_COUNT;
  }

  // ---------------------------------------------------------------- API

  /** Opens a connection; rejects with "connection refused" on RST, "connection timed out" after SYN retries. */
  async connect(
    dstAddr: Uint8Array,
    dstPort: number,
    opts: ConnectOptions = {},
  ): Promise<Conn> {
    if (this.#closed) throw new Deno.errors.BadResource("TCP layer closed");
    if (!(dstPort > 0 && dstPort < 65536)) throw new TypeError(`invalid port ${dstPort}`);
    const local = (opts.srcAddr ?? this.ip.sourceFor(dstAddr))?.slice();
    if (!local) throw new Deno.errors.AddrNotAvailable(`no local address to reach ${addrString(dstAddr)}`);
    const remote = dstAddr.slice();
    const start = this.#randomPortStart();
    let port = -1;
    if (opts.srcPort !== undefined) {
      if (this.#lookup(remote, dstPort, opts.srcPort, local)) {
        throw new Deno.errors.AddrInUse("4-tuple in use");
      }
      port = opts.srcPort;
    }
    for (let i = 0; i < EPHEMERAL_COUNT && port < 0; i++) {
      const p = EPHEMERAL_FIRST + ((start + i) % EPHEMERAL_COUNT);
      if (!this.#lookup(remote, dstPort, p, local) && !this.#listeners.has(p)) {
        port = p;
        break;
      }
    }
    if (port < 0) throw new Deno.errors.AddrInUse("no free ephemeral port");
    const c = new TcpConnection(this.#host, {
      localAddr: local,
      localPort: port,
      remoteAddr: remote,
      remotePort: dstPort,
      iss: this.#isn.isn(local, port, remote, dstPort),
      tsOffset: this.#isn.timestampOffset(local, port, remote, dstPort),
      noDelay: opts.noDelay,
    });
    this.#register(c);
    this.stats.activeOpens++;
    await c.connect(opts.timeoutMs);
    return c;
  }

  /** Listens on addr (undefined = every address of the stack) and port (0 = an ephemeral port). */
  listen(addr: Uint8Array | undefined, port: number, opts: { backlog?: number } = {}): Listener {
    if (this.#closed) throw new Deno.errors.BadResource("TCP layer closed");
    if (port === 0) {
      const start = this.#randomPortStart();
      for (let i = 0; i < EPHEMERAL_COUNT && port === 0; i++) {
        const p = EPHEMERAL_FIRST + ((start + i) % EPHEMERAL_COUNT);
        if (!this.#listeners.has(p)) port = p;
      }
      if (port === 0) throw new Deno.errors.AddrInUse("no free port to listen on");
    }
    if (!(port > 0 && port < 65536)) throw new TypeError(`invalid port ${port}`);
    const list = this.#listeners.get(port) ?? [];
    for (const l of list) {
      if ((!l.local && !addr) || (l.local && addr && sameAddr(l.local, addr))) {
        throw new Deno.errors.AddrInUse(`port ${port} is already listening`);
      }
    }
    const backlog = Math.max(1, Math.min(opts.backlog ?? 128, this.options.maxBacklog));
    const l = new TcpListener(
      { transport: "tcp", hostname: addr ? addrString(addr) : "0.0.0.0", port },
      addr?.slice(),
      backlog,
      Math.max(1, this.options.maxSynBacklog),
      (x) => {
        const arr = this.#listeners.get(port);
        if (!arr) return;
        const i = arr.indexOf(x);
        if (i >= 0) arr.splice(i, 1);
        if (arr.length === 0) this.#listeners.delete(port);
      },
    );
    list.push(l);
    this.#listeners.set(port, list);
    return l;
  }

  /** Number of connections in each state (status pages, tests). */
  connectionStates(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const bucket of this.#conns.values()) {
      for (const c of bucket) out[TcpState[c.state]] = (out[TcpState[c.state]] ?? 0) + 1;
    }
    return out;
  }

  /** Bytes of buffer storage held by all connections. */
  bufferMemory(): number {
    let n = 0;
    for (const bucket of this.#conns.values()) for (const c of bucket) n += c.bufferedBytes.allocated;
    return n;
  }

  /** Resets every connection and closes every listener. */
  close(): void {
    if (this.#closed) return;
    for (const list of [...this.#listeners.values()]) for (const l of [...list]) l.close();
    for (const bucket of [...this.#conns.values()]) {
      for (const c of [...bucket]) c.reset(new Deno.errors.ConnectionAborted("TCP layer closed"));
    }
    this.#closed = true;
  }
}
