/**
 * One TCP connection: the RFC 9293 state machine with RFC 5961 hardening, RFC 7323 window scaling, timestamps
 * and PAWS, RFC 2018 SACK with RFC 6675 loss recovery, RFC 6298 retransmission timing, pluggable congestion
 * control, delayed ACKs, Nagle, keepalive and the persist timer. The connection is also the application's
 * Conn (read/write/closeWrite/close shaped like Deno.Conn).
 */
import type { Conn, NetAddr } from "../conn.ts";
import type { IpSender } from "../types.ts";
import { IPPROTO_TCP } from "../types.ts";
import type { Clock } from "../../util/clock.ts";
import {
  TCP_ACK,
  TCP_FIN,
  TCP_MAX_WINDOW_SHIFT,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpHeaderOptions,
  tcpOptionsLength,
  type TcpOptionsToWrite,
  type TcpSegmentView,
  writeTcpHeader,
} from "../../wire/tcp.ts";
import { ByteRing } from "./ring.ts";
import { ReceiveBuffer } from "./recvbuffer.ts";
import { RttEstimator } from "./rtt.ts";
import { type CongestionControl, createCongestionControl } from "./congestion.ts";
import { DUP_THRESH, SackScoreboard } from "./sack.ts";
import { Deadline } from "./timer.ts";
import type { TcpOptions, TcpStats } from "./options.ts";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax, seqMin } from "./seq.ts";

export enum TcpState {
  Closed,
  SynSent,
  SynReceived,
  Established,
  FinWait1,
  FinWait2,
  CloseWait,
  Closing,
  LastAck,
  TimeWait,
}

/** RFC 9293 section 3.7.1 default send MSS when the peer sends no MSS option. */
const DEFAULT_MSS_V4 = 536;
const DEFAULT_MSS_V6 = 1220;
const TIMESTAMP_OPTION_LEN = 12;
/** Timestamps older than 24 days are not trusted for PAWS (RFC 7323 section 5.5). */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;
/** Like Linux's TCP_PAWS_WINDOW: one tick of slack so segments sent in the same millisecond are not dropped. */
const PAWS_WINDOW = 1;
/** Buffers that stayed empty this long give their storage back (it is reallocated on demand). */
const BUFFER_RELEASE_IDLE_MS = 5_000;

/** What a connection needs from the layer that owns it. */
export interface ConnectionHost {
  readonly ip: IpSender;
  readonly clock: Clock;
  readonly stats: TcpStats;
  readonly options: TcpOptions;
  /** Shared output buffer: a segment is built here and copied by the IP layer. */
  readonly scratch: Uint8Array;
  /** Called once when the connection reaches CLOSED; the host forgets it. */
  detach(c: TcpConnection): void;
  /** A passive connection finished its handshake. */
  established(c: TcpConnection): void;
  /** RFC 5961 section 7: a global limit on challenge ACKs. */
  allowChallengeAck(): boolean;
}

export interface ConnectionParams {
  localAddr: Uint8Array;
  localPort: number;
  remoteAddr: Uint8Array;
  remotePort: number;
  iss: number;
  tsOffset: number;
  noDelay?: boolean;
}

function addrString(a: Uint8Array): string {
  if (a.length === 4) return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((a[i] << 8) | a[i + 1]).toString(16));
  // RFC 5952: compress the longest run of zero groups.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return groups.slice(0, best).join(":") + "::" + groups.slice(best + bestLen).join(":");
}

export { addrString };

/** The smallest shift that lets the whole receive buffer be advertised (RFC 7323 section 2.3). */
export function receiveWindowShift(o: TcpOptions): number {
  if (!o.windowScaling) return 0;
  let shift = 0;
  while (shift < TCP_MAX_WINDOW_SHIFT && (o.receiveBufferSize >> shift) > 65535) shift++;
  return shift;
}

export class TcpConnection implements Conn {
  state: TcpState = TcpState.Closed;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly local: Uint8Array;
  readonly remote: Uint8Array;
  readonly localPort: number;
  readonly remotePort: number;
  /** Set by the layer: the bucket key of the 4-tuple. */
  hashKey = 0;
  /** The listener that spawned this connection while it is half-open or queued. */
  listenerRef: { onChildGone(c: TcpConnection): void } | undefined;

  // Send sequence space.
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  /** Highest sequence number sent (SND.NXT is rewound after an RTO; SND.MAX is not). */
  sndMax: number;
  sndWnd = 0;
  #maxSndWnd = 0;
  #sndWl1 = 0;
  #sndWl2 = 0;
  #sndShift = 0;
  /** Window scaling is in effect only when both SYNs carried the option (RFC 7323 section 2.2). */
  #wsOk = false;
  readonly sendBuffer: ByteRing;
  /** Sequence number of sendBuffer's first byte. */
  #sndBufSeq: number;
  #finQueued = false;
  #finSeq = 0;
  #finAcked = false;

  // Receive sequence space.
  #irs = 0;
  rcvNxt = 0;
  /** Right edge of the window last advertised; never moves left (RFC 9293 section 3.8.6.2.2). */
  #rcvAdv = 0;
  #rcvShift = 0;
  readonly recvBuffer: ReceiveBuffer;
  #finReceived = false;
  /** Sequence number of a FIN that arrived out of order (-1 when none). */
  #pendingFin = -1;
  #lastAckSent = 0;

  // Options negotiated on the handshake.
  #ourMss: number;
  #peerMss: number;
  /** Lowered by ICMP packet-too-big (path MTU discovery, RFC 1191/8201). */
  #pathMss = Infinity;
  #sackOk = false;
  #tsOk = false;
  #tsRecent = 0;
  #tsRecentAt = 0;
  readonly #tsOffset: number;

  // Loss recovery and congestion control.
  readonly rtt: RttEstimator;
  cc: CongestionControl;
  readonly scoreboard = new SackScoreboard();
  #dupAcks = 0;
  inRecovery = false;
  #recoveryPoint = 0;
  #highRxt = 0;
  /** RFC 6582 "recover": no new fast recovery until this is acknowledged (set on RTO). */
  #recover: number;
  #rttSeq = -1;
  #rttStart = 0;
  #retries = 0;
  #persistMode = false;
  #newRenoRetransmit = false;
  #lastFinSent = false;
  #swsOverride = false;
  #persistProbes = 0;
  #rtoUndo: { cwnd: number; ssthresh: number; tsVal: number } | undefined;

  // ACK scheduling.
  #segmentsSinceAck = 0;
  #ackNow = false;

  // Timers.
  readonly #rtxTimer: Deadline;
  /** Tail loss probe (RFC 8985 section 7). */
  readonly #tlpTimer: Deadline;
  /** Frees idle buffer storage a while after both buffers drained. */
  readonly #releaseTimer: Deadline;
  #tlpOutstanding = false;
  readonly #ackTimer: Deadline;
  /** Keepalive, TIME_WAIT and orphaned FIN_WAIT_2, one at a time. */
  readonly #idleTimer: Deadline;
  #lastRecvAt: number;
  #keepAlive: boolean;
  #keepAliveProbes = 0;
  noDelay: boolean;

  // Application side.
  #appClosed = false;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;
  #error: Error | undefined;
  #readWaiter: { promise: Promise<void>; resolve: () => void } | undefined;
  #writeWaiter: { promise: Promise<void>; resolve: () => void } | undefined;
  #connectWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #connectTimeoutTimer: Deadline | undefined;
  readonly #sackOut: number[] = [];
  readonly #optsOut: TcpOptionsToWrite = {};
  readonly #tsOut = { val: 0, ecr: 0 };

  constructor(private host: ConnectionHost, p: ConnectionParams) {
    const o = host.options;
    this.local = p.localAddr;
    this.remote = p.remoteAddr;
    this.localPort = p.localPort;
    this.remotePort = p.remotePort;
    this.localAddr = { transport: "tcp", hostname: addrString(p.localAddr), port: p.localPort };
    this.remoteAddr = { transport: "tcp", hostname: addrString(p.remoteAddr), port: p.remotePort };
    this.iss = p.iss;
    this.sndUna = this.sndNxt = this.sndMax = p.iss;
    this.#recover = p.iss;
    this.#sndBufSeq = seqAdd(p.iss, 1);
    this.#tsOffset = p.tsOffset;
    this.sendBuffer = new ByteRing(o.sendBufferSize);
    this.recvBuffer = new ReceiveBuffer(o.receiveBufferSize);
    const hdr = p.remoteAddr.length === 4 ? 40 : 60;
    this.#ourMss = Math.max(64, host.ip.mtuFor(p.remoteAddr) - hdr);
    this.#peerMss = p.remoteAddr.length === 4 ? DEFAULT_MSS_V4 : DEFAULT_MSS_V6;
    this.rtt = new RttEstimator(o.minRtoMs, o.maxRtoMs);
    this.cc = createCongestionControl(o.congestionControl, this.#ourMss);
    this.noDelay = p.noDelay ?? o.noDelay;
    this.#keepAlive = o.keepAlive;
    this.#rtxTimer = new Deadline(host.clock, () => this.#onRtxTimer(), true);
    this.#tlpTimer = new Deadline(host.clock, () => this.#onTlpTimer(), true);
    this.#releaseTimer = new Deadline(host.clock, () => this.#releaseIdleBuffers());
    this.#ackTimer = new Deadline(host.clock, () => this.#onAckTimer());
    this.#idleTimer = new Deadline(host.clock, () => this.#onIdleTimer());
    this.#lastRecvAt = host.clock.now();
    this.#rcvShift = receiveWindowShift(o);
  }

  // ---------------------------------------------------------------- derived values

  /** Largest payload of a segment carrying only the timestamp option (the "full-sized" segment). */
  get mss(): number {
    return Math.min(this.#peerMss, this.#ourMss, this.#pathMss) - (this.#tsOk ? TIMESTAMP_OPTION_LEN : 0);
  }

  get isClosed(): boolean {
    return this.state === TcpState.Closed;
  }

  get #synchronized(): boolean {
    return this.state >= TcpState.Established;
  }

  #tsNow(): number {
    return (Math.floor(this.host.clock.now()) + this.#tsOffset) >>> 0;
  }

  /** Bytes in flight as the sender sees them (RFC 6675 pipe during recovery). */
  #flight(): number {
    if (this.inRecovery) {
      if (this.#sackOk) return this.scoreboard.pipe(this.sndUna, this.sndMax, this.mss);
      const out = seqDiff(this.sndMax, this.sndUna) - this.#dupAcks * this.mss;
      return Math.max(0, out) + Math.max(0, seqDiff(this.#highRxt, this.sndUna));
    }
    const out = seqDiff(this.sndNxt, this.sndUna);
    // SACKed segments have left the network (packet conservation, as Linux counts in_flight): each one lets
    // a new segment out, which subsumes Limited Transmit (RFC 3042) and keeps the ACK clock running.
    if (this.#sackOk && !this.scoreboard.empty && this.sndNxt === this.sndMax) {
      return Math.max(0, out - this.scoreboard.sackedBytes);
    }
    return out;
  }

  /** Memory held by this connection's buffers (for bounded-memory checks). */
  get bufferedBytes(): { send: number; receive: number; allocated: number } {
    return {
      send: this.sendBuffer.length,
      receive: this.recvBuffer.unread + this.recvBuffer.outOfOrderBytes,
      allocated: this.sendBuffer.allocated + this.recvBuffer.ring.allocated,
    };
  }

  get negotiated(): { mss: number; sack: boolean; timestamps: boolean; sndShift: number; rcvShift: number } {
    return {
      mss: this.mss,
      sack: this.#sackOk,
      timestamps: this.#tsOk,
      sndShift: this.#sndShift,
      rcvShift: this.#rcvShift,
    };
  }

  // ---------------------------------------------------------------- opening

  /** Active open: sends SYN; resolves when ESTABLISHED. */
  connect(timeoutMs?: number): Promise<void> {
    this.state = TcpState.SynSent;
    this.#sendSyn();
    return new Promise<void>((resolve, reject) => {
      this.#connectWaiter = { resolve, reject };
      if (timeoutMs !== undefined && timeoutMs > 0) {
        this.#connectTimeoutTimer = new Deadline(this.host.clock, () => {
          if (this.state === TcpState.SynSent || this.state === TcpState.SynReceived) {
            this.#abort(new Deno.errors.TimedOut("connection timed out"), false);
          }
        });
        this.#connectTimeoutTimer.set(this.host.clock.now() + timeoutMs);
      }
    });
  }

  /** Passive open from a SYN the listener accepted. */
  acceptSyn(seg: TcpSegmentView, o: TcpHeaderOptions): void {
    this.state = TcpState.SynReceived;
    this.#irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.#negotiate(o);
    this.sndWnd = seg.window; // never scaled in a SYN (RFC 7323 section 2.2)
    this.#maxSndWnd = this.sndWnd;
    this.#sndWl1 = seg.seq;
    this.#sndWl2 = this.iss;
    this.#sendSyn();
  }

  /**
   * Passive open completed statelessly: our SYN-ACK carried a SYN cookie (iss) and `seg` is the client's
   * final ACK. The options come from the cookie; then the ACK is processed as in SYN-RECEIVED.
   */
  acceptCookie(
    seg: TcpSegmentView,
    o: TcpHeaderOptions,
    peerMss: number,
    peerShift: number | undefined,
    sackPermitted: boolean,
  ): void {
    const opts = this.host.options;
    this.state = TcpState.SynReceived;
    this.#irs = seqAdd(seg.seq, -1);
    this.rcvNxt = seg.seq;
    this.#lastAckSent = this.rcvNxt;
    this.#peerMss = peerMss;
    this.#tsOk = opts.timestamps && o.hasTimestamp;
    if (this.#tsOk) {
      this.#tsRecent = o.tsVal;
      this.#tsRecentAt = this.host.clock.now();
    }
    this.#wsOk = this.#tsOk && opts.windowScaling && peerShift !== undefined;
    if (this.#wsOk) this.#sndShift = peerShift!;
    else this.#rcvShift = 0;
    this.#sackOk = this.#tsOk && opts.sack && sackPermitted;
    this.cc = createCongestionControl(opts.congestionControl, this.mss);
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.#rcvAdv = seqAdd(this.rcvNxt, Math.min(opts.receiveBufferSize, 65535));
    this.#sndWl1 = seg.seq;
    this.#sndWl2 = this.iss;
    this.input(seg, o);
  }

  #negotiate(o: TcpHeaderOptions): void {
    const opts = this.host.options;
    if (o.mss !== undefined && o.mss > 0) this.#peerMss = Math.max(o.mss, 64);
    this.#wsOk = opts.windowScaling && o.windowShift !== undefined;
    if (this.#wsOk) this.#sndShift = o.windowShift!;
    else this.#rcvShift = 0;
    this.#sackOk = opts.sack && o.sackPermitted;
    if (opts.timestamps && o.hasTimestamp) {
      this.#tsOk = true;
      this.#tsRecent = o.tsVal;
      this.#tsRecentAt = this.host.clock.now();
    }
    this.cc = createCongestionControl(opts.congestionControl, this.mss);
  }

  #sendSyn(): void {
    const opts = this.host.options;
    const o = this.#optsOut;
    o.mss = this.#ourMss;
    o.sackBlocks = undefined;
    let flags = TCP_SYN;
    if (this.state === TcpState.SynSent) {
      // Offer everything we support; the SYN-ACK decides.
      o.windowShift = opts.windowScaling ? this.#rcvShift : undefined;
      o.sackPermitted = opts.sack;
      if (opts.timestamps) {
        this.#tsOut.val = this.#tsNow();
        this.#tsOut.ecr = 0;
        o.timestamp = this.#tsOut;
      } else o.timestamp = undefined;
    } else {
      flags |= TCP_ACK;
      o.windowShift = this.#wsOk ? this.#rcvShift : undefined;
      o.sackPermitted = this.#sackOk;
      if (this.#tsOk) {
        this.#tsOut.val = this.#tsNow();
        this.#tsOut.ecr = this.#tsRecent;
        o.timestamp = this.#tsOut;
      } else o.timestamp = undefined;
    }
    const window = Math.min(this.host.options.receiveBufferSize, 65535);
    this.#rcvAdv = seqAdd(this.rcvNxt, window);
    this.#emit(this.iss, flags, window, o);
    this.sndNxt = seqAdd(this.iss, 1);
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    if (!this.#rtxTimer.armed) this.#rtxTimer.set(this.host.clock.now() + this.rtt.rto);
    if (this.#retries === 0 && this.#rttSeq === -1) {
      this.#rttSeq = this.iss;
      this.#rttStart = this.host.clock.now();
    }
  }

  // ---------------------------------------------------------------- input

  /** One segment for this connection (checksum verified, header checked, options parsed into o). */
  input(seg: TcpSegmentView, o: TcpHeaderOptions): void {
    if (this.state === TcpState.Closed) return;
    if (this.state === TcpState.SynSent) {
      this.#inputSynSent(seg, o);
      return;
    }
    const flags = seg.flags;
    const seq = seg.seq;
    const now = this.host.clock.now();
    const payloadLen = seg.payloadLength;
    const segLen = payloadLen + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0);

    // RFC 7323 section 5.3: PAWS.
    if (
      this.#tsOk && o.hasTimestamp && !(flags & TCP_RST) && seqDiff(this.#tsRecent, o.tsVal) > PAWS_WINDOW &&
      now - this.#tsRecentAt < PAWS_IDLE_MS
    ) {
      this.host.stats.pawsRejected++;
      this.#sendAck();
      return;
    }

    // RFC 5961 section 4.2: a SYN in a synchronized state, whatever its sequence number, gets a challenge ACK.
    if ((flags & (TCP_SYN | TCP_RST)) === TCP_SYN && this.state !== TcpState.SynReceived) {
      this.#challengeAck();
      return;
    }

    // Sequence acceptability (RFC 9293 section 3.10.7.4, in Linux's lenient form so a FIN or probe at the
    // edge of a zero window is still seen).
    const acceptable = seqGe(seqAdd(seq, segLen), this.rcvNxt) &&
      (seqLe(seq, this.#rcvAdv) || (segLen === 0 && seq === this.rcvNxt));
    const simultaneousSynAck = this.state === TcpState.SynReceived && (flags & (TCP_SYN | TCP_ACK)) ===
        (TCP_SYN | TCP_ACK) &&
      seq === this.#irs && !this.listenerRef;
    if (!acceptable) {
      if (simultaneousSynAck) {
        // Simultaneous open: the peer's SYN-ACK acknowledges our SYN (RFC 9293 figure 8).
        this.#completeSimultaneousOpen(seg);
        return;
      }
      if (!(flags & TCP_RST)) {
        // Keepalive and window probes (seq = RCV.NXT-1) land here too: the ACK is their answer.
        if (segLen > 0 || seq !== seqAdd(this.rcvNxt, -1)) this.host.stats.outOfWindow++;
        this.#lastRecvAt = now;
        this.#sendAck();
      }
      return;
    }
    this.#lastRecvAt = now;
    this.#keepAliveProbes = 0;
    this.#persistProbes = 0;

    // RFC 5961 section 3.2: RST.
    if (flags & TCP_RST) {
      if (seq === this.rcvNxt) {
        this.host.stats.resetsReceived++;
        if (this.state === TcpState.SynReceived && this.listenerRef) this.#abort(undefined, false);
        else if (this.state === TcpState.TimeWait) return; // RFC 1337: no TIME_WAIT assassination
        else this.#abort(new Deno.errors.ConnectionReset("connection reset by peer"), false);
      } else this.#challengeAck();
      return;
    }

    // RFC 5961 section 4.2: SYN in a synchronized state.
    if (flags & TCP_SYN) {
      if (simultaneousSynAck) {
        this.#completeSimultaneousOpen(seg);
        return;
      }
      if (this.state === TcpState.SynReceived && this.listenerRef && seq === this.#irs) {
        this.#sendSyn(); // retransmitted SYN: repeat the SYN-ACK
        return;
      }
      this.#challengeAck();
      return;
    }

    if (!(flags & TCP_ACK)) return;
    const ack = seg.ack;

    if (this.state === TcpState.SynReceived) {
      if (seqGt(ack, this.sndUna) && seqLe(ack, this.sndMax)) {
        this.#establish(seg);
        if (this.isClosed) return; // refused by a full accept queue
      } else {
        this.#sendRst(ack);
        return;
      }
    }

    // RFC 5961 section 5.2: ACK validation.
    if (seqGt(ack, this.sndMax)) {
      this.#sendAck();
      return;
    }
    if (seqLt(ack, seqAdd(this.sndUna, -Math.max(this.#maxSndWnd, 1)))) {
      this.#challengeAck();
      return;
    }

    this.#processAck(seg, o, ack, payloadLen, flags);
    if (this.isClosed) return;
    if (this.#finAcked) {
      if (this.state === TcpState.FinWait1) {
        this.state = TcpState.FinWait2;
        if (this.#appClosed) this.#idleTimer.set(now + this.host.options.timeWaitMs);
      } else if (this.state === TcpState.Closing) {
        this.#enterTimeWait();
      } else if (this.state === TcpState.LastAck) {
        this.#destroy();
        return;
      }
    }

    // RFC 7323 section 4.3: TS.Recent from a segment that covers Last.ACK.sent.
    if (this.#tsOk && o.hasTimestamp && seqLe(seq, this.#lastAckSent) && seqGe(o.tsVal, this.#tsRecent)) {
      this.#tsRecent = o.tsVal;
      this.#tsRecentAt = now;
    }

    const canReceive = this.state === TcpState.Established || this.state === TcpState.FinWait1 ||
      this.state === TcpState.FinWait2;
    if (payloadLen > 0) {
      if (!canReceive) {
        // Data after the peer's FIN is a protocol error on its side; acknowledge what we have.
        this.#ackNow = true;
      } else if (this.#appClosed) {
        // Nobody will read it: tell the peer its data is lost (RFC 9293 section 3.10.4, Linux behaviour).
        this.#sendRst(this.sndNxt);
        this.#abort(undefined, false);
        return;
      } else {
        this.#receiveData(seq, seg.payload);
      }
    }

    if (flags & TCP_FIN) {
      const finSeq = seqAdd(seq, payloadLen);
      if (seqLe(finSeq, this.#rcvAdv)) {
        if (finSeq === this.rcvNxt) this.#receiveFin();
        else if (seqGt(finSeq, this.rcvNxt)) {
          this.#pendingFin = finSeq;
          this.#ackNow = true;
        } else {
          this.#ackNow = true; // a retransmitted FIN: our ACK was lost
          if (this.state === TcpState.TimeWait) this.#enterTimeWait();
        }
      }
    }

    if (this.isClosed) return;
    this.output();
    if (this.#ackNow) this.#sendAck();
  }

  #completeSimultaneousOpen(seg: TcpSegmentView): void {
    const ack = seg.ack;
    if (seqGt(ack, this.sndUna) && seqLe(ack, this.sndMax)) {
      this.#establish(seg);
      this.#sendAck();
      this.output();
    } else this.#sendSyn();
  }

  #establish(seg: TcpSegmentView): void {
    this.state = TcpState.Established;
    this.sndWnd = seg.window << this.#sndShift;
    this.#maxSndWnd = Math.max(this.#maxSndWnd, this.sndWnd);
    this.#sndWl1 = seg.seq;
    this.#sndWl2 = seg.ack;
    this.#connectTimeoutTimer?.dispose();
    this.#retries = 0;
    this.rtt.backoff = 0;
    if (this.listenerRef) this.host.established(this);
    else {
      const w = this.#connectWaiter;
      this.#connectWaiter = undefined;
      w?.resolve();
    }
    this.#armKeepAlive();
  }

  #inputSynSent(seg: TcpSegmentView, o: TcpHeaderOptions): void {
    const flags = seg.flags;
    const ack = seg.ack;
    if (flags & TCP_ACK) {
      if (seqLe(ack, this.iss) || seqGt(ack, this.sndMax)) {
        if (!(flags & TCP_RST)) this.#sendRst(ack);
        return;
      }
    }
    if (flags & TCP_RST) {
      if (flags & TCP_ACK) {
        this.host.stats.resetsReceived++;
        this.#abort(new Deno.errors.ConnectionRefused("connection refused"), false);
      }
      return;
    }
    if (!(flags & TCP_SYN)) return;
    this.#irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.#lastAckSent = this.rcvNxt;
    this.#negotiate(o);
    this.#rcvAdv = seqAdd(this.rcvNxt, Math.min(this.host.options.receiveBufferSize, 65535));
    this.#lastRecvAt = this.host.clock.now();
    if (flags & TCP_ACK) {
      this.#takeRttSample(o, ack);
      this.sndUna = ack;
      this.#rtxTimer.clear();
      // The SYN-ACK's window is not scaled; #establish scales, so undo that for this one segment.
      this.state = TcpState.Established;
      this.sndWnd = seg.window;
      this.#maxSndWnd = this.sndWnd;
      this.#sndWl1 = seg.seq;
      this.#sndWl2 = ack;
      this.#connectTimeoutTimer?.dispose();
      this.#retries = 0;
      this.rtt.backoff = 0;
      this.#sendAck();
      const w = this.#connectWaiter;
      this.#connectWaiter = undefined;
      w?.resolve();
      this.#armKeepAlive();
      this.output();
    } else {
      // Simultaneous open.
      this.state = TcpState.SynReceived;
      this.sndWnd = seg.window;
      this.#maxSndWnd = this.sndWnd;
      this.#sndWl1 = seg.seq;
      this.#sendSyn();
    }
  }

  #takeRttSample(o: TcpHeaderOptions, ack: number): void {
    if (this.#tsOk && o.hasTimestamp && o.tsEcr !== 0) {
      const r = seqDiff(this.#tsNow(), o.tsEcr);
      if (r >= 0 && r < 600_000) this.rtt.sample(r);
      this.#rttSeq = -1;
      return;
    }
    if (this.#rttSeq !== -1 && seqGt(ack, this.#rttSeq)) {
      this.rtt.sample(this.host.clock.now() - this.#rttStart);
      this.#rttSeq = -1;
    }
  }

  #processAck(
    seg: TcpSegmentView,
    o: TcpHeaderOptions,
    ack: number,
    payloadLen: number,
    flags: number,
  ): void {
    const now = this.host.clock.now();
    const seq = seg.seq;
    const wnd = seg.window << this.#sndShift;
    const mss = this.mss;
    let sackGrew = false;
    if (this.#sackOk && o.sackBlocks.length > 0) {
      sackGrew = this.scoreboard.update(o.sackBlocks, seqMax(ack, this.sndUna), this.sndMax);
      if (sackGrew && this.inRecovery) this.scoreboard.detectLostRetransmits();
    }

    if (seqGt(ack, this.sndUna)) {
      const flightBefore = seqDiff(this.sndMax, this.sndUna);
      const undo = this.#rtoUndo;
      if (undo) {
        this.#rtoUndo = undefined;
        if (o.hasTimestamp && o.tsEcr !== 0 && seqLt(o.tsEcr, undo.tsVal)) {
          // The ACK echoes the original transmission: the RTO was spurious (a delayed path or a stalled event
          // loop, not loss). Restore the window and stop resending what is still in flight.
          this.host.stats.spuriousTimeouts++;
          this.cc.cwnd = Math.max(this.cc.cwnd, undo.cwnd);
          this.cc.ssthresh = undo.ssthresh;
          this.sndNxt = this.sndMax;
          this.#recover = this.sndUna;
        }
      }
      this.#takeRttSample(o, ack);
      let acked = seqDiff(ack, this.sndUna);
      if (this.sndUna === this.iss) acked--; // our SYN
      const dataAcked = Math.min(this.sendBuffer.length, Math.max(0, seqDiff(ack, this.#sndBufSeq)));
      this.sendBuffer.discard(dataAcked);
      this.#sndBufSeq = seqAdd(this.#sndBufSeq, dataAcked);
      if (this.sendBuffer.length === 0 && this.sendBuffer.allocated > 0) this.#scheduleRelease(now);
      if (this.#finQueued && seqGt(ack, this.#finSeq)) this.#finAcked = true;
      this.sndUna = ack;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      if (seqLt(this.#highRxt, ack)) this.#highRxt = ack;
      this.scoreboard.onCumulativeAck(ack);
      this.#dupAcks = 0;
      this.#retries = 0;
      this.rtt.backoff = 0;
      this.#persistMode = false;
      if (this.inRecovery) {
        if (seqGe(ack, this.#recoveryPoint)) {
          this.inRecovery = false;
          this.scoreboard.clearRetransmits();
          this.cc.cwnd = Math.max(Math.min(this.cc.ssthresh, this.#flight() + mss), mss);
        } else if (!this.#sackOk) {
          // RFC 6582 partial ACK: retransmit the next unacknowledged segment.
          this.#newRenoRetransmit = true;
        }
      } else {
        // RFC 7661: a window the sender did not use is not evidence the path can take more.
        const appLimited = 2 * flightBefore < this.cc.cwnd;
        this.cc.onAck(Math.max(acked, 0), mss, now, this.rtt.srtt, appLimited);
      }
      this.#tlpOutstanding = false;
      if (this.sndUna === this.sndMax) {
        this.#rtxTimer.clear();
        this.#tlpTimer.clear();
      } else {
        this.#rtxTimer.set(now + this.rtt.rto);
        this.#armTlp(now);
      }
      this.#wakeWriter();
    } else if (
      ack === this.sndUna && seqLt(this.sndUna, this.sndMax) && payloadLen === 0 && !(flags & TCP_FIN) &&
      (wnd === this.sndWnd || sackGrew)
    ) {
      this.#dupAcks++;
    }

    // RFC 9293 section 3.10.7.4: window update from the newest segment only.
    if (seqLt(this.#sndWl1, seq) || (this.#sndWl1 === seq && seqLe(this.#sndWl2, ack))) {
      const grew = wnd > this.sndWnd;
      this.sndWnd = wnd;
      this.#sndWl1 = seq;
      this.#sndWl2 = ack;
      if (wnd > this.#maxSndWnd) this.#maxSndWnd = wnd;
      if (grew && this.#persistMode) {
        this.#persistMode = false;
        this.#rtxTimer.clear();
      }
    }

    if (!this.inRecovery && seqLt(this.sndUna, this.sndMax) && seqGe(this.sndUna, this.#recover)) {
      let sackLoss = false;
      if (this.#sackOk && !this.scoreboard.empty) {
        sackLoss = this.scoreboard.isLost(this.sndUna, this.sndUna, mss);
        if (!sackLoss && this.#unsent() === 0) {
          // Early Retransmit (RFC 5827): with fewer than four segments outstanding and nothing new to send,
          // DupThresh ACKs can never arrive; lower the threshold to outstanding - 1.
          const outstanding = Math.ceil(seqDiff(this.sndMax, this.sndUna) / mss);
          const sackedSegs = Math.ceil(this.scoreboard.sackedBytes / mss);
          sackLoss = outstanding < 4 && sackedSegs >= Math.max(1, outstanding - 1);
        }
      }
      if (this.#dupAcks >= DUP_THRESH || sackLoss) this.#enterRecovery();
    }
  }

  #enterRecovery(): void {
    this.host.stats.fastRecoveries++;
    this.inRecovery = true;
    this.#recoveryPoint = this.sndMax;
    this.#highRxt = this.sndUna;
    this.scoreboard.clearRetransmits();
    this.cc.onLoss(seqDiff(this.sndMax, this.sndUna), this.mss, this.host.clock.now());
    this.#rttSeq = -1; // Karn: the timed segment may be retransmitted
    // RFC 6675 section 5 step 4.3 / RFC 6582: retransmit the first unacknowledged segment regardless of pipe.
    this.#retransmitFirst();
  }

  #retransmitFirst(): void {
    const end = seqMin(seqAdd(this.sndUna, this.mss), this.sndMax);
    const len = this.#sendData(this.sndUna, seqDiff(end, this.sndUna), true);
    if (len > 0) {
      if (seqLt(this.#highRxt, seqAdd(this.sndUna, len))) this.#highRxt = seqAdd(this.sndUna, len);
      if (this.#sackOk) this.scoreboard.noteRetransmit(this.sndUna, seqAdd(this.sndUna, len), this.sndMax);
    }
  }

  #receiveData(seq: number, payload: Uint8Array): void {
    let start = seq;
    let data = payload;
    if (seqLt(start, this.rcvNxt)) {
      const cut = seqDiff(this.rcvNxt, start);
      if (cut >= data.length) {
        this.#ackNow = true; // a complete duplicate: the peer lost our ACK
        return;
      }
      data = data.subarray(cut);
      start = this.rcvNxt;
    }
    const room = seqDiff(this.#rcvAdv, start);
    if (room <= 0) {
      this.#ackNow = true;
      return;
    }
    if (data.length > room) data = data.subarray(0, room);
    const hadHoles = this.recvBuffer.hasOutOfOrder;
    const advance = this.recvBuffer.insert(start, data, this.rcvNxt);
    if (advance > 0) {
      this.rcvNxt = seqAdd(this.rcvNxt, advance);
      if (this.#pendingFin !== -1 && this.#pendingFin === this.rcvNxt) this.#receiveFin();
      this.#wakeReader();
      if (hadHoles) this.#ackNow = true; // RFC 5681 section 4.2: a segment that fills a hole is ACKed at once
      else this.#scheduleDelayedAck();
    } else {
      this.#ackNow = true; // out of order: duplicate ACK with SACK now
    }
  }

  #scheduleDelayedAck(): void {
    if (++this.#segmentsSinceAck >= 2) this.#ackNow = true;
    else if (!this.#ackTimer.armed) {
      this.#ackTimer.set(this.host.clock.now() + this.host.options.delayedAckMs);
    }
  }

  #receiveFin(): void {
    this.#pendingFin = -1;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.#finReceived = true;
    this.#ackNow = true;
    this.#wakeReader();
    switch (this.state) {
      case TcpState.SynReceived:
      case TcpState.Established:
        this.state = TcpState.CloseWait;
        break;
      case TcpState.FinWait1:
        if (this.#finAcked) this.#enterTimeWait();
        else this.state = TcpState.Closing;
        break;
      case TcpState.FinWait2:
        this.#enterTimeWait();
        break;
    }
  }

  // ---------------------------------------------------------------- output

  /** Sends whatever the windows allow: retransmissions in recovery, new data, FIN. */
  output(): void {
    const st = this.state;
    if (
      st !== TcpState.Established && st !== TcpState.CloseWait && st !== TcpState.FinWait1 &&
      st !== TcpState.Closing && st !== TcpState.LastAck
    ) return;
    const now = this.host.clock.now();
    const mss = this.mss;
    if (this.#newRenoRetransmit) {
      this.#newRenoRetransmit = false;
      this.#retransmitFirst();
    }
    for (let guard = 0; guard < 4096; guard++) {
      const room = this.cc.cwnd - this.#flight();
      if (this.inRecovery && this.#sackOk) {
        // RFC 6675: transmit only while cwnd - pipe >= 1 SMSS.
        if (room < mss) break;
        // NextSeg rule 1: a lost hole not yet retransmitted.
        const hole = this.scoreboard.nextToRetransmit(this.sndUna, mss, true);
        if (hole) {
          const sent = this.#sendData(hole[0], Math.min(mss, seqDiff(hole[1], hole[0])), true);
          if (sent === 0) break;
          this.scoreboard.noteRetransmit(hole[0], seqAdd(hole[0], sent), this.sndMax);
          continue;
        }
      }
      // After an RTO SND.NXT walks back over data the peer may already hold: skip what it SACKed.
      let limitEnd = -1;
      if (seqLt(this.sndNxt, this.sndMax) && !this.scoreboard.empty) {
        const skipTo = this.scoreboard.sackedEndAt(this.sndNxt);
        if (skipTo !== undefined) {
          this.sndNxt = seqMin(skipTo, this.sndMax);
          continue;
        }
        const next = this.scoreboard.nextSackedStart(this.sndNxt);
        if (next !== undefined) limitEnd = next;
      }
      // NextSeg rule 2: new data (or the go-back-N resend after an RTO).
      const unsent = this.#unsent();
      const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
      let len = Math.min(mss, unsent, Math.max(0, wndRoom));
      if (limitEnd !== -1) len = Math.min(len, seqDiff(limitEnd, this.sndNxt));
      const finHere = this.#finQueued && len === unsent && seqAdd(this.sndNxt, len) === this.#finSeq;
      if (len === 0 && !finHere) {
        if (this.inRecovery && this.#sackOk) {
          // NextSeg rule 3: an unSACKed octet not yet deemed lost.
          const hole = this.scoreboard.nextToRetransmit(this.sndUna, mss, false);
          if (hole) {
            const sent = this.#sendData(hole[0], Math.min(mss, seqDiff(hole[1], hole[0])), true);
            if (sent > 0) {
              this.scoreboard.noteRetransmit(hole[0], seqAdd(hole[0], sent), this.sndMax);
              continue;
            }
          }
        }
        if (unsent > 0 && wndRoom <= 0 && this.sndNxt === this.sndUna) this.#armPersist(now);
        break;
      }
      if (len < mss && !finHere) {
        // Nagle (RFC 896): hold a small segment while data is unacknowledged.
        if (!this.noDelay && seqGt(this.sndNxt, this.sndUna)) break;
        // Sender silly-window avoidance (RFC 9293 section 3.8.6.2.1): wait for a useful window, unless the
        // override (persist) timer fired.
        if (len < unsent && len < (this.#maxSndWnd >> 1) && limitEnd === -1 && !this.#swsOverride) {
          if (this.sndNxt === this.sndUna) this.#armPersist(now);
          break;
        }
      }
      if (len > room || (len === 0 && room < 0)) break;
      const seq = this.sndNxt;
      const retransmit = seqLt(seq, this.sndMax);
      const sent = this.#sendData(seq, len, retransmit, finHere);
      const finSent = this.#lastFinSent;
      if (sent === 0 && !finSent) break;
      this.sndNxt = seqAdd(seq, sent + (finSent ? 1 : 0));
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (!retransmit && this.#rttSeq === -1 && !this.#tsOk) {
        this.#rttSeq = seq;
        this.#rttStart = now;
      }
      if (this.#persistMode) {
        this.#persistMode = false;
        this.#rtxTimer.clear();
      }
      if (!this.#rtxTimer.armed) this.#rtxTimer.set(now + this.rtt.rto);
      if (!retransmit) this.#armTlp(now);
      if (finSent) break;
    }
  }

  /**
   * RFC 8985 section 7.2: after new data, a probe timeout of 2*SRTT (plus a worst-case delayed ACK when one
   * segment is in flight) turns a lost tail - which no SACK can reveal - into SACK recovery instead of an RTO.
   */
  #armTlp(now: number): void {
    if (!this.#sackOk || this.inRecovery || this.#tlpOutstanding || this.rtt.srtt === undefined) return;
    if (this.sndUna === this.sndMax) return;
    let pto = 2 * this.rtt.srtt;
    if (seqDiff(this.sndMax, this.sndUna) <= this.mss) pto = Math.max(pto, 1.5 * this.rtt.srtt + 200);
    pto = Math.max(pto, 10);
    let at = now + pto;
    // Probe just before the RTO rather than never: a probe does not collapse the window (Linux does the same).
    if (this.#rtxTimer.armed && at >= this.#rtxTimer.at) at = this.#rtxTimer.at - 1;
    if (at <= now) return;
    this.#tlpTimer.set(at);
  }

  #onTlpTimer(): void {
    const st = this.state;
    if (
      this.inRecovery || this.#tlpOutstanding || this.sndUna === this.sndMax ||
      (st !== TcpState.Established && st !== TcpState.CloseWait && st !== TcpState.FinWait1 &&
        st !== TcpState.Closing && st !== TcpState.LastAck)
    ) return;
    const now = this.host.clock.now();
    this.#tlpOutstanding = true;
    const unsent = this.#unsent();
    const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    if (unsent > 0 && wndRoom > 0 && this.sndNxt === this.sndMax) {
      // Probe with new data: it is useful either way.
      const len = Math.min(this.mss, unsent, wndRoom);
      const finHere = this.#finQueued && len === unsent && seqAdd(this.sndNxt, len) === this.#finSeq;
      const sent = this.#sendData(this.sndNxt, len, false, finHere);
      this.sndNxt = seqAdd(this.sndNxt, sent + (this.#lastFinSent ? 1 : 0));
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    } else {
      // Retransmit the last segment (with the FIN when that is what ends the flight).
      const finSent = this.#finQueued && seqGt(this.sndMax, this.#finSeq);
      const dataEnd = finSent ? this.#finSeq : this.sndMax;
      const start = seqMax(this.sndUna, seqAdd(dataEnd, -this.mss));
      this.#sendData(start, seqDiff(dataEnd, start), true, finSent);
    }
    this.#rtxTimer.set(now + this.rtt.rto);
  }

  /** Bytes in the send buffer at or after SND.NXT. */
  #unsent(): number {
    return Math.max(0, this.sendBuffer.length - seqDiff(this.sndNxt, this.#sndBufSeq));
  }

  /**
   * Emits one segment carrying len bytes of the send buffer from seq (plus FIN when asked). Returns the payload
   * length sent (0 when there is nothing there). Retransmissions are counted.
   */
  #sendData(seq: number, len: number, retransmit: boolean, fin = false): number {
    this.#lastFinSent = false;
    const off = seqDiff(seq, this.#sndBufSeq);
    if (off < 0 || off > this.sendBuffer.length) return 0;
    len = Math.min(len, this.sendBuffer.length - off);
    if (len <= 0 && !fin) return 0;
    const o = this.#ackOptions();
    // A SACK-laden segment still must not exceed the peer's MSS: trim the payload by the extra option bytes.
    const extra = tcpOptionsLength(o) - (this.#tsOk ? TIMESTAMP_OPTION_LEN : 0);
    if (extra > 0 && len > this.mss - extra) {
      len = this.mss - extra;
      fin = false;
    }
    let flags = TCP_ACK;
    if (fin) flags |= TCP_FIN;
    if (len > 0 && off + len === this.sendBuffer.length) flags |= TCP_PSH;
    if (retransmit) {
      this.host.stats.retransmittedSegments++;
      if (!this.#tsOk && this.#rttSeq !== -1 && seqLe(seq, this.#rttSeq)) this.#rttSeq = -1; // Karn
    }
    this.#emitFromBuffer(seq, flags, off, len, o);
    this.#lastFinSent = fin;
    return len;
  }

  #ackOptions(): TcpOptionsToWrite {
    const o = this.#optsOut;
    o.mss = undefined;
    o.windowShift = undefined;
    o.sackPermitted = undefined;
    o.timestamp = undefined;
    o.sackBlocks = undefined;
    if (this.#tsOk) {
      this.#tsOut.val = this.#tsNow();
      this.#tsOut.ecr = this.#tsRecent;
      o.timestamp = this.#tsOut;
    }
    if (this.#sackOk && this.recvBuffer.hasOutOfOrder) {
      this.recvBuffer.sackBlocks(this.#tsOk ? 3 : 4, this.#sackOut);
      o.sackBlocks = this.#sackOut;
    }
    return o;
  }

  /** The window field to send now; moves the advertised right edge (never left). */
  #windowField(): number {
    const limit = this.recvBuffer.limit;
    const free = limit - this.recvBuffer.unread;
    const current = seqDiff(this.#rcvAdv, this.rcvNxt);
    let win = current;
    // Receiver silly-window avoidance (RFC 9293 section 3.8.6.2.2): open in steps of min(buffer/2, MSS).
    if (free - current >= Math.min(limit >> 1, this.#ourMss)) win = free;
    if (win < 0) win = 0;
    let field = win >>> this.#rcvShift;
    if (field > 65535) field = 65535;
    const edge = seqAdd(this.rcvNxt, field << this.#rcvShift);
    if (seqGt(edge, this.#rcvAdv)) this.#rcvAdv = edge;
    return field;
  }

  #emitFromBuffer(seq: number, flags: number, off: number, len: number, o: TcpOptionsToWrite): void {
    const buf = this.host.scratch;
    const window = this.#windowField();
    const hlen = writeTcpHeader(buf, 0, {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: this.rcvNxt,
      flags,
      window,
    }, o);
    if (len > 0) this.sendBuffer.peek(off, buf, hlen, len);
    this.#afterAckSent();
    this.host.stats.segmentsOut++;
    this.host.ip.sendSegment(IPPROTO_TCP, this.local, this.remote, buf.subarray(0, hlen + len));
  }

  /** Header-only segment (SYN, SYN-ACK, ACK, RST, probes). `window` overrides the computed field (SYNs). */
  #emit(
    seq: number,
    flags: number,
    window: number | undefined,
    o?: TcpOptionsToWrite,
  ): void {
    const buf = this.host.scratch;
    const w = window ?? this.#windowField();
    const hlen = writeTcpHeader(buf, 0, {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: flags & TCP_ACK ? this.rcvNxt : 0,
      flags,
      window: w,
    }, o);
    if (flags & TCP_ACK) this.#afterAckSent();
    this.host.stats.segmentsOut++;
    this.host.ip.sendSegment(IPPROTO_TCP, this.local, this.remote, buf.subarray(0, hlen));
  }

  #afterAckSent(): void {
    this.#lastAckSent = this.rcvNxt;
    this.#ackNow = false;
    this.#segmentsSinceAck = 0;
    if (this.#ackTimer.armed) this.#ackTimer.clear();
  }

  #sendAck(): void {
    if (this.state === TcpState.SynReceived) {
      this.#sendSyn();
      return;
    }
    if (this.state === TcpState.SynSent || this.state === TcpState.Closed) return;
    this.#emit(this.sndNxt, TCP_ACK, undefined, this.#ackOptions());
  }

  #challengeAck(): void {
    if (!this.host.allowChallengeAck()) return;
    this.host.stats.challengeAcks++;
    this.#sendAck();
  }

  #sendRst(seq: number): void {
    this.host.stats.resetsSent++;
    this.#emit(seq, TCP_RST, 0);
  }

  // ---------------------------------------------------------------- timers

  #scheduleRelease(now: number): void {
    this.#releaseTimer.set(now + BUFFER_RELEASE_IDLE_MS);
  }

  #releaseIdleBuffers(): void {
    if (this.sendBuffer.length === 0) this.sendBuffer.release();
    if (this.recvBuffer.unread === 0 && !this.recvBuffer.hasOutOfOrder) this.recvBuffer.ring.release();
  }

  #onAckTimer(): void {
    if (this.#synchronized && this.state !== TcpState.TimeWait) this.#sendAck();
  }

  #armPersist(now: number): void {
    if (this.#persistMode && this.#rtxTimer.armed) return;
    this.#persistMode = true;
    this.#rtxTimer.set(now + this.rtt.rto);
  }

  #onRtxTimer(): void {
    const now = this.host.clock.now();
    const opts = this.host.options;
    if (this.state === TcpState.SynSent || this.state === TcpState.SynReceived) {
      const limit = this.state === TcpState.SynSent || !this.listenerRef
        ? opts.synRetries
        : opts.synAckRetries;
      if (this.#retries >= limit) {
        this.host.stats.timeouts++;
        this.#abort(this.listenerRef ? undefined : new Deno.errors.TimedOut("connection timed out"), false);
        return;
      }
      this.#retries++;
      this.rtt.onTimeout();
      this.#rttSeq = -1;
      this.host.stats.retransmittedSegments++;
      this.#sendSyn();
      this.#rtxTimer.set(now + this.rtt.rto);
      return;
    }
    if (this.state === TcpState.Closed || this.state === TcpState.TimeWait) return;
    if (this.#persistMode) {
      // Zero-window probe: an old sequence number forces the peer to answer with its current window.
      // A peer that keeps answering may hold its window shut forever (RFC 9293 section 3.8.6.1); one that
      // stops answering is dead, as with unanswered retransmissions.
      if (this.#persistProbes >= opts.maxRetries) {
        this.host.stats.timeouts++;
        this.#sendRst(this.sndNxt);
        this.#abort(new Deno.errors.TimedOut("connection timed out (zero-window probes unanswered)"), false);
        return;
      }
      this.#persistProbes++;
      const usable = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
      if (usable > 0 && this.#unsent() > 0) {
        // The SWS override: a small window that never grows is used rather than waited on forever.
        this.#persistMode = false;
        this.#swsOverride = true;
        this.output();
        this.#swsOverride = false;
        if (this.#rtxTimer.armed) return;
      } else this.#emit(seqAdd(this.sndUna, -1), TCP_ACK, undefined, this.#ackOptions());
      this.#persistMode = true;
      this.rtt.onTimeout();
      this.#rtxTimer.set(now + this.rtt.rto);
      return;
    }
    if (this.sndUna === this.sndMax) return;
    if (this.#retries >= opts.maxRetries) {
      this.host.stats.timeouts++;
      this.#sendRst(this.sndNxt);
      this.#abort(new Deno.errors.TimedOut("connection timed out"), false);
      return;
    }
    this.#retries++;
    this.host.stats.timeouts++;
    if (this.#retries === 1 && this.#tsOk) {
      // Remember what to restore if the timeout turns out spurious (Eifel, RFC 3522 / RFC 4015); an ACK that
      // echoes a timestamp older than this first retransmission proves every backed-off one spurious too.
      this.#rtoUndo = { cwnd: this.cc.cwnd, ssthresh: this.cc.ssthresh, tsVal: this.#tsNow() };
    }
    // RFC 6298 section 5.5-5.7 and RFC 5681 section 3.1: back off, collapse cwnd, go back to SND.UNA.
    this.cc.onTimeout(this.#flight(), this.mss, now);
    this.rtt.onTimeout();
    this.#rttSeq = -1;
    this.#recover = this.sndMax;
    this.inRecovery = false;
    this.#dupAcks = 0;
    // Keep the SACK information across the first timeout so the resend skips what the peer holds; a second
    // timeout in a row suggests the receiver reneged (RFC 2018 section 8), so then forget it.
    if (this.#retries > 1) this.scoreboard.clear();
    this.sndNxt = this.sndUna;
    this.#highRxt = this.sndUna;
    this.scoreboard.clearRetransmits();
    this.output();
    this.#rtxTimer.set(now + this.rtt.rto);
  }

  #armKeepAlive(): void {
    if (!this.#keepAlive || !this.#synchronized || this.state === TcpState.TimeWait) return;
    this.#idleTimer.set(this.#lastRecvAt + this.host.options.keepAliveIdleMs);
  }

  #onIdleTimer(): void {
    const now = this.host.clock.now();
    const opts = this.host.options;
    if (this.state === TcpState.TimeWait || (this.state === TcpState.FinWait2 && this.#appClosed)) {
      this.#destroy();
      return;
    }
    if (!this.#keepAlive || !this.#synchronized) return;
    const idle = now - this.#lastRecvAt;
    if (idle < opts.keepAliveIdleMs) {
      // Heard from the peer since (or never went idle): count from the last segment received.
      this.#keepAliveProbes = 0;
      this.#idleTimer.set(this.#lastRecvAt + opts.keepAliveIdleMs);
      return;
    }
    if (this.#keepAliveProbes >= opts.keepAliveCount) {
      this.host.stats.keepaliveTimeouts++;
      this.#sendRst(this.sndNxt);
      this.#abort(new Deno.errors.TimedOut("connection timed out (keepalive)"), false);
      return;
    }
    this.#keepAliveProbes++;
    this.#emit(seqAdd(this.sndUna, -1), TCP_ACK, undefined, this.#ackOptions());
    this.#idleTimer.set(now + opts.keepAliveIntervalMs);
  }

  #enterTimeWait(): void {
    this.state = TcpState.TimeWait;
    this.#rtxTimer.dispose();
    this.#tlpTimer.dispose();
    this.#releaseTimer.dispose();
    this.#ackTimer.dispose();
    this.#idleTimer.set(this.host.clock.now() + this.host.options.timeWaitMs);
    this.#releaseIdleBuffers(); // a TIME_WAIT connection needs no buffer storage (unless unread data remains)
    this.#wakeReader();
    this.#wakeWriter();
  }

  get timeWaitRecvNext(): number {
    return this.rcvNxt;
  }

  get lastTsRecent(): number | undefined {
    return this.#tsOk ? this.#tsRecent : undefined;
  }

  // ---------------------------------------------------------------- teardown

  /** Removes the connection; wakes waiters. `error` is what pending and future calls see. */
  #abort(error: Error | undefined, sendRst: boolean): void {
    if (this.state === TcpState.Closed) return;
    if (sendRst && this.#synchronized) this.#sendRst(this.sndNxt);
    this.#error ??= error ?? new Deno.errors.ConnectionReset("connection reset");
    const w = this.#connectWaiter;
    this.#connectWaiter = undefined;
    this.#destroy();
    if (w) w.reject(this.#error);
  }

  #destroy(): void {
    if (this.state === TcpState.Closed) return;
    this.state = TcpState.Closed;
    this.#rtxTimer.dispose();
    this.#tlpTimer.dispose();
    this.#releaseTimer.dispose();
    this.#ackTimer.dispose();
    this.#idleTimer.dispose();
    this.#connectTimeoutTimer?.dispose();
    if (this.listenerRef) {
      this.listenerRef.onChildGone(this);
      this.listenerRef = undefined;
    }
    // Nothing is sent any more; unread data stays readable until the application reads or closes. The
    // storage goes now rather than when the application drops its last reference to this object.
    this.sendBuffer.drop();
    if (this.recvBuffer.unread === 0 || this.#appClosed) this.recvBuffer.ring.drop();
    this.host.detach(this);
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** ICMP packet-too-big about a segment of ours: shrink segments to the path MTU. */
  icmpTooBig(mtu: number): void {
    const hdr = this.remote.length === 4 ? 40 : 60;
    const mss = Math.max(mtu - hdr, this.remote.length === 4 ? 536 - 40 : 1280 - 60);
    if (mss >= this.#pathMss) return;
    this.#pathMss = mss;
    // Everything in flight was too big: resend it at the new size now rather than after an RTO.
    if (seqLt(this.sndUna, this.sndMax) && this.#synchronized) {
      this.sndNxt = this.sndUna;
      this.output();
    }
  }

  /** ICMP unreachable: fatal only while connecting (RFC 1122 section 4.2.3.9 treats the rest as soft). */
  icmpUnreachable(kind: "unreachable" | "port-unreachable"): void {
    if (this.state !== TcpState.SynSent) return;
    this.#abort(
      kind === "port-unreachable"
        ? new Deno.errors.ConnectionRefused("connection refused (ICMP port unreachable)")
        : new Deno.errors.TimedOut("host unreachable"),
      false,
    );
  }

  /** A new SYN may reuse the 4-tuple of a connection in TIME_WAIT (RFC 6191): forget the old one. */
  releaseTimeWait(): void {
    if (this.state === TcpState.TimeWait) this.#destroy();
  }

  /** Abort with RST (layer shutdown, listener close, accept-queue overflow). */
  reset(error?: Error): void {
    this.#abort(error ?? new Deno.errors.ConnectionAborted("connection aborted"), true);
  }

  // ---------------------------------------------------------------- Conn

  #wakeReader(): void {
    const w = this.#readWaiter;
    if (w) {
      this.#readWaiter = undefined;
      w.resolve();
    }
  }

  #wakeWriter(): void {
    const w = this.#writeWaiter;
    if (w) {
      this.#writeWaiter = undefined;
      w.resolve();
    }
  }

  #waitReadable(): Promise<void> {
    if (!this.#readWaiter) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      this.#readWaiter = { promise, resolve };
    }
    return this.#readWaiter.promise;
  }

  #waitWritable(): Promise<void> {
    if (!this.#writeWaiter) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      this.#writeWaiter = { promise, resolve };
    }
    return this.#writeWaiter.promise;
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#appClosed) throw new Deno.errors.BadResource("connection closed");
      if (this.recvBuffer.unread > 0) {
        if (p.length === 0) return 0;
        const n = this.recvBuffer.read(p);
        if (this.recvBuffer.unread === 0) {
          if (this.state === TcpState.Closed) this.recvBuffer.ring.drop();
          else this.#scheduleRelease(this.host.clock.now());
        }
        this.#afterRead();
        return n;
      }
      if (this.#finReceived) return null;
      if (this.#error) throw this.#error;
      if (this.state === TcpState.Closed) return null;
      if (p.length === 0) return 0;
      await this.#waitReadable();
    }
  }

  /** After the application consumed data: tell a blocked peer the window reopened. */
  #afterRead(): void {
    if (!this.#synchronized || this.state === TcpState.TimeWait || this.#finReceived) return;
    const limit = this.recvBuffer.limit;
    const free = limit - this.recvBuffer.unread;
    const current = seqDiff(this.#rcvAdv, this.rcvNxt);
    const step = Math.min(limit >> 1, 2 * this.#ourMss);
    if (free - current >= step && current < (limit >> 1)) this.#sendAck();
  }

  async write(p: Uint8Array): Promise<number> {
    if (p.length === 0) return 0;
    for (;;) {
      if (this.#appClosed) throw new Deno.errors.BadResource("connection closed");
      if (this.#error) throw this.#error;
      if (this.#finQueued) throw new Deno.errors.BrokenPipe("write after closeWrite");
      if (this.state === TcpState.Closed) throw new Deno.errors.NotConnected("connection closed");
      const free = this.sendBuffer.free;
      if (free > 0 && this.state !== TcpState.SynSent && this.state !== TcpState.SynReceived) {
        const n = Math.min(free, p.length);
        this.sendBuffer.push(n === p.length ? p : p.subarray(0, n));
        this.output();
        return n;
      }
      await this.#waitWritable();
    }
  }

  closeWrite(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    this.#queueFin();
    return Promise.resolve();
  }

  #queueFin(): void {
    if (this.#finQueued) return;
    if (this.state === TcpState.Established) this.state = TcpState.FinWait1;
    else if (this.state === TcpState.CloseWait) this.state = TcpState.LastAck;
    else return;
    this.#finQueued = true;
    this.#finSeq = seqAdd(this.#sndBufSeq, this.sendBuffer.length);
    this.output();
    this.#wakeWriter();
  }

  close(): void {
    if (this.#appClosed) return;
    this.#appClosed = true;
    if (this.state === TcpState.Closed || this.state === TcpState.TimeWait) {
      this.#wakeReader();
      this.#wakeWriter();
      return;
    }
    if (this.state === TcpState.SynSent) {
      this.#abort(new Deno.errors.BadResource("connection closed"), false);
      return;
    }
    if (this.recvBuffer.unread > 0 || this.state === TcpState.SynReceived) {
      // Unread data is lost: say so with RST instead of a FIN (RFC 2525 section 2.17).
      this.#abort(new Deno.errors.BadResource("connection closed"), true);
      return;
    }
    this.#queueFin();
    if (this.state === TcpState.FinWait2) {
      this.#idleTimer.set(this.host.clock.now() + this.host.options.timeWaitMs);
    }
    this.#wakeReader();
    this.#wakeWriter();
  }

  /** The receive side as a stream (like Deno.Conn.readable); cancelling it closes the connection. */
  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (ctrl) => {
        const buf = new Uint8Array(65536);
        const n = await this.read(buf);
        if (n === null) ctrl.close();
        else ctrl.enqueue(buf.subarray(0, n));
      },
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  /** The send side as a stream (like Deno.Conn.writable); closing it sends FIN, aborting it closes. */
  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      write: async (chunk) => {
        for (let o = 0; o < chunk.length;) o += await this.write(chunk.subarray(o));
      },
      close: () => this.closeWrite(),
      abort: () => this.close(),
    });
    return this.#writable;
  }

  setNoDelay(noDelay = true): void {
    this.noDelay = noDelay;
    if (noDelay) this.output();
  }

  setKeepAlive(keepAlive = true): void {
    this.#keepAlive = keepAlive;
    if (keepAlive) this.#armKeepAlive();
    else if (
      this.#synchronized && this.state !== TcpState.TimeWait &&
      !(this.state === TcpState.FinWait2 && this.#appClosed)
    ) {
      this.#idleTimer.clear();
    }
  }
}
