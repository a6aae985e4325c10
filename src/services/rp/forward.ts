/**
 * The data path shared by rps and rpc: a TCP forwarder (accept on one Net, dial on another, pipe with
 * half-close) and a UDP forwarder (one upstream socket per remote address, like conntrack, with idle expiry).
 *
 * rps: public host listener -> tunnel dial to the client's internal port.
 * rpc: tunnel listener -> host dial to the local service.
 */
import type { Conn, DatagramConn, Listener, NetAddr } from "../../net/types.ts";
import { pipe } from "../../net/pipe.ts";
import { type Clock, systemClock, type TimerHandle } from "../../util/clock.ts";
import type { Logger } from "../../util/log.ts";
import { joinHostPort } from "../../util/host_port.ts";

/** Live counters of one mapping/route; read by status, metrics and the operator API. */
export interface ForwardStats {
  /** TCP connections accepted (or UDP flows created) since start. */
  connectionsTotal: number;
  /** TCP connections (or UDP flows) open now. */
  connectionsActive: number;
  /** Bytes from the accepting side towards the dialled side (public -> client on rps). */
  bytesIn: number;
  /** Bytes from the dialled side back (client -> public on rps). */
  bytesOut: number;
  /** Dials (or upstream socket opens) that failed. */
  dialFailures: number;
  /** UDP datagrams dropped (flow table full, send failed). */
  datagramsDropped: number;
  /** Errors receiving on the front UDP socket (the forwarder rests briefly and goes on). */
  receiveErrors: number;
}

export function newForwardStats(): ForwardStats {
  return {
    connectionsTotal: 0,
    connectionsActive: 0,
    bytesIn: 0,
    bytesOut: 0,
    dialFailures: 0,
    datagramsDropped: 0,
    receiveErrors: 0,
  };
}

export interface TcpForwarderOptions {
  listener: Listener;
  /** Dials the far side for one accepted connection; re-read per connection so a replaced mapping applies. */
  dial: (accepted: Conn) => Promise<Conn>;
  stats: ForwardStats;
  bufferSize: number;
  log: Logger;
  /** Most concurrent connections; more are closed at once (counted as dial failures). */
  maxConnections?: number;
}

/** Accepts on a listener and pipes each connection to a freshly dialled one until close(). */
export class TcpForwarder {
  readonly #abort = new AbortController();
  readonly #live = new Set<Promise<void>>();
  /** Byte-counter flushers of open connections: pipe() counts live, stats get the deltas when read. */
  readonly #flushers = new Set<() => void>();
  readonly #loop: Promise<void>;

  constructor(private readonly opts: TcpForwarderOptions) {
    this.#loop = this.#acceptLoop();
  }

  get addr(): NetAddr {
    return this.opts.listener.addr;
  }

  async #acceptLoop(): Promise<void> {
    const { listener, log } = this.opts;
    for (;;) {
      let conn: Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (!this.#abort.signal.aborted) log.warn("accept failed; listener stopped", { error: e });
        return;
      }
      if (this.#abort.signal.aborted) {
        conn.close();
        return;
      }
      const p = this.#handle(conn).finally(() => this.#live.delete(p));
      this.#live.add(p);
    }
  }

  async #handle(accepted: Conn): Promise<void> {
    const { stats, log } = this.opts;
    stats.connectionsTotal++;
    if (this.opts.maxConnections !== undefined && stats.connectionsActive >= this.opts.maxConnections) {
      stats.dialFailures++;
      log.warn("connection limit reached; closing", { from: fmtAddr(accepted.remoteAddr) });
      accepted.close();
      return;
    }
    stats.connectionsActive++;
    try {
      let upstream: Conn;
      try {
        upstream = await this.opts.dial(accepted);
      } catch (e) {
        stats.dialFailures++;
        log.warn("dial failed", { from: fmtAddr(accepted.remoteAddr), error: e });
        accepted.close();
        return;
      }
      if (this.#abort.signal.aborted) {
        accepted.close();
        upstream.close();
        return;
      }
      // Counters live in stats (shared per mapping), so pipe gets its own object and we add deltas.
      const counters = { aToB: 0, bToA: 0 };
      let lastIn = 0, lastOut = 0;
      const flush = () => {
        stats.bytesIn += counters.aToB - lastIn;
        stats.bytesOut += counters.bToA - lastOut;
        lastIn = counters.aToB;
        lastOut = counters.bToA;
      };
      this.#flushers.add(flush);
      try {
        const res = await pipe(accepted, upstream, {
          bufferSize: this.opts.bufferSize,
          counters,
          signal: this.#abort.signal,
        });
        log.debug("connection closed", {
          from: fmtAddr(accepted.remoteAddr),
          in: res.aToB,
          out: res.bToA,
          error: res.error,
        });
      } finally {
        this.#flushers.delete(flush);
        flush();
      }
    } finally {
      stats.connectionsActive--;
    }
  }

  /** Brings stats.bytesIn/bytesOut up to date with open connections (call before reading them). */
  flushStats(): void {
    for (const f of this.#flushers) f();
  }

  /** Stops accepting and closes every live connection. */
  async close(): Promise<void> {
    this.#abort.abort();
    try {
      this.opts.listener.close();
    } catch { /* closed */ }
    await this.#loop;
    await Promise.allSettled([...this.#live]);
  }
}

export interface UdpForwarderOptions {
  /** The socket remote peers send to (public UDP port on rps, the internal tunnel port on rpc). */
  front: DatagramConn;
  /** Opens a fresh upstream socket for one new flow. */
  openUpstream: () => DatagramConn;
  /** Where a flow's datagrams go; re-read per datagram so a replaced mapping applies. */
  target: () => NetAddr;
  stats: ForwardStats;
  log: Logger;
  clock?: Clock;
  /** A flow with no datagram either way for this long is closed (default 60 s). */
  idleTimeoutMs?: number;
  /** Flow table bound; the least recently active flow is evicted (default 1024). */
  maxFlows?: number;
}

interface Flow {
  remote: NetAddr;
  upstream: DatagramConn;
  lastActive: number;
}

/** After a receive error on the front socket the loop rests this long before receiving again. */
const RECEIVE_RETRY_MS = 50;
/** Repeated receive errors are logged at most this often (each is counted). */
const RECEIVE_WARN_EVERY_MS = 60_000;

/**
 * Per-remote-address UDP flows: datagrams from a remote go out through that flow's own upstream socket, and
 * replies on that socket go back to the remote from the front socket (so the remote sees one peer).
 */
export class UdpForwarder {
  readonly #flows = new Map<string, Flow>();
  readonly #clock: Clock;
  readonly #idleMs: number;
  readonly #maxFlows: number;
  #closed = false;
  #sweepTimer: TimerHandle | undefined;
  #lastReceiveWarn = 0;
  /** The rest after a receive error, ended early by close(). */
  #rest?: { handle: TimerHandle; resolve: () => void };
  readonly #loop: Promise<void>;

  constructor(private readonly opts: UdpForwarderOptions) {
    this.#clock = opts.clock ?? systemClock;
    this.#idleMs = opts.idleTimeoutMs ?? 60_000;
    this.#maxFlows = opts.maxFlows ?? 1024;
    this.#armSweep();
    this.#loop = this.#frontLoop();
  }

  get addr(): NetAddr {
    return this.opts.front.addr;
  }

  get flowCount(): number {
    return this.#flows.size;
  }

  #armSweep(): void {
    if (this.#closed) return;
    this.#sweepTimer = this.#clock.setTimer(() => {
      this.sweep();
      this.#armSweep();
    }, Math.max(100, Math.floor(this.#idleMs / 2)));
  }

  /** Closes flows idle for longer than the timeout (also run by the timer). */
  sweep(): void {
    const now = this.#clock.now();
    for (const [key, flow] of this.#flows) {
      if (now - flow.lastActive >= this.#idleMs) this.#closeFlow(key, flow, "idle");
    }
  }

  #closeFlow(key: string, flow: Flow, why: string): void {
    if (this.#flows.get(key) !== flow) return;
    this.#flows.delete(key);
    this.opts.stats.connectionsActive--;
    // What the socket itself dropped (a batched socket's full queue, sends refused after queuing).
    this.opts.stats.datagramsDropped += flow.upstream.dropped ?? 0;
    try {
      flow.upstream.close();
    } catch { /* closed */ }
    this.opts.log.debug("udp flow closed", { remote: fmtAddr(flow.remote), why });
  }

  async #frontLoop(): Promise<void> {
    const { front, stats, log } = this.opts;
    for (;;) {
      let data: Uint8Array, from: NetAddr;
      try {
        [data, from] = await front.receive();
      } catch (e) {
        if (this.#closed) return;
        // ICMP errors of earlier sends surface here on some systems; the socket itself is fine.
        if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.ConnectionReset) continue;
        if (e instanceof Deno.errors.BadResource) {
          log.warn("udp socket closed under the forwarder; forwarder stopped", { error: e });
          return;
        }
        // Anything else (ENOBUFS, ENOMEM, a batch-core failure): the mapping stays served. Counted, logged
        // once per burst, and a short rest on the injected clock so a persistent error cannot spin.
        stats.receiveErrors++;
        if (stats.receiveErrors === 1 || this.#clock.now() - this.#lastReceiveWarn >= RECEIVE_WARN_EVERY_MS) {
          this.#lastReceiveWarn = this.#clock.now();
          log.warn("udp receive failed; retrying", { error: e, errors: stats.receiveErrors });
        }
        await new Promise<void>((resolve) => {
          this.#rest = { handle: this.#clock.setTimer(resolve, RECEIVE_RETRY_MS), resolve };
        });
        this.#rest = undefined;
        if (this.#closed) return;
        continue;
      }
      if (this.#closed) return;
      const key = `${from.hostname}|${from.port}`;
      let flow = this.#flows.get(key);
      if (!flow) {
        flow = this.#openFlow(key, from);
        if (!flow) continue;
      }
      flow.lastActive = this.#clock.now();
      try {
        await flow.upstream.send(data, this.opts.target());
        stats.bytesIn += data.length;
      } catch (e) {
        stats.datagramsDropped++;
        log.debug("udp send upstream failed", { error: e });
      }
    }
  }

  #openFlow(key: string, remote: NetAddr): Flow | undefined {
    const { stats, log } = this.opts;
    if (this.#flows.size >= this.#maxFlows) {
      let oldestKey: string | undefined, oldest: Flow | undefined;
      for (const [k, f] of this.#flows) {
        if (!oldest || f.lastActive < oldest.lastActive) [oldestKey, oldest] = [k, f];
      }
      if (oldest && oldestKey) this.#closeFlow(oldestKey, oldest, "evicted");
    }
    let upstream: DatagramConn;
    try {
      upstream = this.opts.openUpstream();
    } catch (e) {
      stats.dialFailures++;
      stats.datagramsDropped++;
      log.warn("udp upstream socket failed", { error: e });
      return undefined;
    }
    const flow: Flow = { remote, upstream, lastActive: this.#clock.now() };
    this.#flows.set(key, flow);
    stats.connectionsTotal++;
    stats.connectionsActive++;
    this.#replyLoop(key, flow);
    return flow;
  }

  async #replyLoop(key: string, flow: Flow): Promise<void> {
    const { front, stats } = this.opts;
    for (;;) {
      let data: Uint8Array;
      try {
        [data] = await flow.upstream.receive();
      } catch {
        this.#closeFlow(key, flow, "upstream closed");
        return;
      }
      if (this.#flows.get(key) !== flow) return;
      flow.lastActive = this.#clock.now();
      try {
        await front.send(data, flow.remote);
        stats.bytesOut += data.length;
      } catch {
        stats.datagramsDropped++;
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimer(this.#sweepTimer);
    if (this.#rest) {
      this.#clock.clearTimer(this.#rest.handle);
      this.#rest.resolve();
    }
    for (const [key, flow] of [...this.#flows]) this.#closeFlow(key, flow, "shutdown");
    this.opts.stats.datagramsDropped += this.opts.front.dropped ?? 0;
    try {
      this.opts.front.close();
    } catch { /* closed */ }
    await this.#loop;
  }
}

export function fmtAddr(a: NetAddr | { hostname: string; port: number }): string {
  return joinHostPort(a.hostname, a.port);
}
