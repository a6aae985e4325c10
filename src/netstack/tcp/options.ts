/** Tunables of the TCP layer and its counters. Defaults follow Linux where the spec does not say otherwise. */
import type { CongestionControlName } from "./congestion.ts";

export interface TcpOptions {
  /** Bytes the application may queue per connection before write() waits. */
  sendBufferSize: number;
  /** Bytes of unread + out-of-order data per connection; the advertised window never exceeds it. */
  receiveBufferSize: number;
  /** Nagle's algorithm off (true) by default: relays are latency-sensitive. */
  noDelay: boolean;
  /** Keepalive on new connections (setKeepAlive toggles it per connection). */
  keepAlive: boolean;
  keepAliveIdleMs: number;
  keepAliveIntervalMs: number;
  keepAliveCount: number;
  /** 2MSL: how long TIME_WAIT (and an orphaned FIN_WAIT_2) lasts. */
  timeWaitMs: number;
  /** SYN retransmissions before connect() fails (Linux tcp_syn_retries). */
  synRetries: number;
  /** SYN-ACK retransmissions before a half-open passive connection is dropped (tcp_synack_retries). */
  synAckRetries: number;
  /** Data retransmissions before the connection is aborted (tcp_retries2). */
  maxRetries: number;
  /** Upper bound of any listener's accept queue. */
  maxBacklog: number;
  /** Half-open connections per listener (the SYN queue). */
  maxSynBacklog: number;
  /** Answer SYNs with SYN cookies once the SYN queue is full, instead of dropping them. */
  synCookies: boolean;
  delayedAckMs: number;
  minRtoMs: number;
  maxRtoMs: number;
  congestionControl: CongestionControlName;
  sack: boolean;
  timestamps: boolean;
  windowScaling: boolean;
}

export const DEFAULT_TCP_OPTIONS: TcpOptions = {
  sendBufferSize: 1 << 20,
  receiveBufferSize: 1 << 20,
  noDelay: true,
  keepAlive: false,
  keepAliveIdleMs: 7_200_000,
  keepAliveIntervalMs: 75_000,
  keepAliveCount: 9,
  timeWaitMs: 60_000,
  synRetries: 6,
  synAckRetries: 5,
  maxRetries: 15,
  maxBacklog: 4096,
  maxSynBacklog: 256,
  synCookies: true,
  delayedAckMs: 40,
  minRtoMs: 200,
  maxRtoMs: 120_000,
  congestionControl: "cubic",
  sack: true,
  timestamps: true,
  windowScaling: true,
};

const LIMITS: Partial<Record<keyof TcpOptions, [number, number]>> = {
  sendBufferSize: [4096, 1 << 30],
  receiveBufferSize: [4096, 1 << 30],
  keepAliveIdleMs: [1, 2 ** 31],
  keepAliveIntervalMs: [1, 2 ** 31],
  keepAliveCount: [1, 1000],
  timeWaitMs: [0, 2 ** 31],
  synRetries: [0, 100],
  synAckRetries: [0, 100],
  maxRetries: [1, 100],
  maxBacklog: [1, 1 << 20],
  maxSynBacklog: [1, 1 << 20],
  delayedAckMs: [1, 500],
  minRtoMs: [1, 60_000],
  maxRtoMs: [1, 3_600_000],
};

/** Throws a RangeError naming the option and what was expected (a bad config must fail at start-up). */
export function validateTcpOptions(o: TcpOptions): void {
  for (const [key, [lo, hi]] of Object.entries(LIMITS) as [keyof TcpOptions, [number, number]][]) {
    const v = o[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
      throw new RangeError(`tcp option ${key}: expected an integer in ${lo}..${hi}, got ${String(v)}`);
    }
  }
  if (o.minRtoMs > o.maxRtoMs) throw new RangeError("tcp option minRtoMs: must not exceed maxRtoMs");
  if (o.congestionControl !== "cubic" && o.congestionControl !== "newreno") {
    throw new RangeError(
      `tcp option congestionControl: expected "cubic" or "newreno", got ${String(o.congestionControl)}`,
    );
  }
}

export interface TcpStats {
  activeOpens: number;
  passiveOpens: number;
  /** Connections currently in any state but CLOSED (including half-open and TIME_WAIT). */
  connections: number;
  segmentsIn: number;
  segmentsOut: number;
  retransmittedSegments: number;
  fastRecoveries: number;
  timeouts: number;
  /** Timeouts found spurious by the timestamp echo (Eifel) and undone. */
  spuriousTimeouts: number;
  /** Segments that failed to parse (short header, bad data offset, malformed options). */
  malformed: number;
  /** Segments for no connection and no listener (answered with RST unless they were RSTs). */
  noConnection: number;
  resetsSent: number;
  resetsReceived: number;
  challengeAcks: number;
  /** SYNs dropped because the SYN queue or accept queue was full. */
  synDropped: number;
  synCookiesSent: number;
  synCookiesAccepted: number;
  pawsRejected: number;
  outOfWindow: number;
  keepaliveTimeouts: number;
}

export function newTcpStats(): TcpStats {
  return {
    activeOpens: 0,
    passiveOpens: 0,
    connections: 0,
    segmentsIn: 0,
    segmentsOut: 0,
    retransmittedSegments: 0,
    fastRecoveries: 0,
    timeouts: 0,
    spuriousTimeouts: 0,
    malformed: 0,
    noConnection: 0,
    resetsSent: 0,
    resetsReceived: 0,
    challengeAcks: 0,
    synDropped: 0,
    synCookiesSent: 0,
    synCookiesAccepted: 0,
    pawsRejected: 0,
    outOfWindow: 0,
    keepaliveTimeouts: 0,
  };
}
