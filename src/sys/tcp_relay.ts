/**
 * The TCP relay core on kernel sockets wgedge opens itself (libc through FFI), for a relay that listens on
 * the host and dials an IP address on the host: no Deno resource, promise or buffer per connection.
 *
 * A Deno relay pays, per connection, an accept op, a connect op, a read op pending on each socket and a
 * resource table entry for each; at 32 parallel connect+echo+close clients that alone stayed below HAProxy
 * (docs/benchmarks.md, "deno-floor"), and every idle connection held ~16 KiB of Deno state. Here a connection
 * is one small object: its two descriptors sit in the process's epoll loop (epoll.ts), edge-triggered for
 * input, output and peer shutdown, and each event reads into one shared 64 KiB buffer and writes straight on.
 *
 * Per connection: accept4, socket, TCP_NODELAY, a non-blocking connect, two epoll_ctl, then reads and writes
 * (the accepted side inherits TCP_NODELAY and keepalive with its timings from the listener). The target side
 * gets keepalive and its timings from the once-a-second sweep, only if it lives that long: most connections
 * of a busy relay are short, and four setsockopt calls were a tenth of their cost, while a keepalive probe is
 * due only after KEEPALIVE_IDLE (30 s by default) anyway.
 *
 * One connection is a RelayPair (tcp_relay_pair.ts): when the other side cannot take everything (EAGAIN),
 * what is left is kept for that direction and its source is not read again until the destination is
 * writable, so memory per connection stays bounded by one 64 KiB remainder per direction. EOF on one side
 * becomes shutdown(SHUT_WR) on the other once its remainder is written (half-close carried, as pipe() does
 * for Deno sockets); the pair is closed when both directions ended, or at once on an error (reset, refused).
 *
 * Dials that do not complete within the connect timeout are failed by a sweep on the injected clock. A write
 * to a peer that is gone returns EPIPE rather than killing the process: Deno, like every Rust program,
 * ignores SIGPIPE.
 *
 * This file sits with libc in src/sys (imports only src/sys and src/util): addresses cross it as bytes
 * (4 for IPv4, 16 for IPv6); the relay service formats them.
 */
import { describeErrno, encodeSockaddr, SOCKADDR_IN6_SIZE, SockaddrView } from "./udp_batch.ts";
import { ffiModeFromEnv, type Libc, loadLibc, setIntOption } from "./libc.ts";
import { EPOLLET, type EpollHandler, EPOLLIN, EpollLoop, EPOLLOUT, EPOLLRDHUP } from "./epoll.ts";
import {
  type PairOwner,
  prepareRelayBuffers,
  RELAY_BUFFER_SIZE,
  type RelayedConnection,
  RelayPair as Pair,
  type SocketAddress,
} from "./tcp_relay_pair.ts";
import type { Clock, TimerHandle } from "../util/clock.ts";
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  ECONNABORTED,
  EINPROGRESS,
  EINTR,
  EMFILE,
  ENFILE,
  ENOBUFS,
  ENOMEM,
  EPROTO,
  IPPROTO_TCP,
  SO_KEEPALIVE,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  TCP_KEEPCNT,
  TCP_KEEPIDLE,
  TCP_KEEPINTVL,
  TCP_NODELAY,
} from "./constants.ts";

/** What the kernel may queue before accept (capped by net.core.somaxconn). */
const LISTEN_BACKLOG = 4096;
/** Accepts per listener event, so one busy listener leaves the others (and the loop) a turn. */
const ACCEPTS_PER_EVENT = 64;
/** After EMFILE/ENFILE the listener rests, doubling up to the maximum, as the Deno relay does. */
const ACCEPT_BACKOFF_MS = 100;
const ACCEPT_BACKOFF_MAX_MS = 1000;
/** How often pending dials are checked against the connect timeout, and new target sockets get keepalive. */
const SWEEP_MS = 1000;

export interface TcpRelayCoreOptions {
  /** Listening address (4 or 16 bytes; all zeros for any) and port (0: the kernel picks). */
  bind: Uint8Array;
  port: number;
  target: Uint8Array;
  targetPort: number;
  connectTimeoutMs: number;
  keepalive?: { idleSec: number; intervalSec: number; count: number };
  clock: Clock;
  /** Relay-wide byte counters, added to as bytes are written. */
  counters: { aToB: number; bToA: number };
  /** Bytes the target receives before the client's (a PROXY protocol header). */
  header?: (client: SocketAddress, local: SocketAddress) => Uint8Array;
  /** Called for every dial that succeeded (a connection now relays). */
  onDialed?: (c: RelayedConnection) => void;
  /** Called for every dial that failed, with the reason ("Connection refused (ECONNREFUSED)", "timed out"). */
  onDialFailed: (message: string, client: SocketAddress) => void;
  /** Called when a relayed connection ended (error: why it was cut, if it was). */
  onClosed?: (c: RelayedConnection, error?: string) => void;
  /** Called when accept fails for another reason than an empty queue (EMFILE...). */
  onAcceptError: (message: string) => void;
  /** Client addresses are read only when something needs them (logging, a PROXY header). */
  wantClientAddress: boolean;
}

/** libc and the epoll loop, or why the core cannot run here. */
export function tcpRelayCoreUnavailable(): string | undefined {
  const loop = EpollLoop.shared();
  return "reason" in loop ? loop.reason : undefined;
}

const NO_ADDRESS: SocketAddress = { address: new Uint8Array(4), port: 0 };

export type { RelayedConnection, SocketAddress };
export { RELAY_BUFFER_SIZE };

export class TcpRelayCore implements EpollHandler, PairOwner {
  readonly #libc: Libc;
  readonly #loop: EpollLoop;
  readonly #opts: TcpRelayCoreOptions;
  readonly #listenFd: number;
  readonly #targetName: Uint8Array;
  readonly #targetFamily: number;
  readonly #conns = new Set<Pair>();
  readonly #connecting = new Set<Pair>();
  /**
   * Open pairs whose target socket has no keepalive yet. The pairs carry the mark themselves: a queue of them
   * kept every short connection alive for a second, so each young-generation GC copied thousands of closed
   * pairs (pauses of 2 to 11 ms under load: the relay's p99).
   */
  #untunedCount = 0;
  #sweep?: TimerHandle;
  #backoffTimer?: TimerHandle;
  #backoffMs = ACCEPT_BACKOFF_MS;
  #stopped = false;
  /** The port actually bound (the option's, or the kernel's pick for 0). */
  readonly port: number;
  readonly #nameBuf = new Uint8Array(SOCKADDR_IN6_SIZE);
  readonly #nameLen = new Uint32Array(1);
  readonly #nameLenBytes = new Uint8Array(this.#nameLen.buffer);
  /** Connections relaying now (dialled or dialling). */
  active = 0;
  /** Connections accepted since start. */
  accepted = 0;

  /** Binds and listens at once (throws with the reason); events flow after start(). */
  constructor(opts: TcpRelayCoreOptions) {
    const loop = EpollLoop.shared();
    if ("reason" in loop) throw new Error(loop.reason);
    const libc = loadLibc();
    if ("reason" in libc) throw new Error(libc.reason);
    this.#libc = libc;
    this.#loop = loop;
    this.#opts = opts;
    prepareRelayBuffers();
    this.#targetFamily = opts.target.length === 16 ? AF_INET6 : AF_INET;
    const target = encodeSockaddr(this.#targetFamily, opts.target, opts.targetPort);
    if (!target) throw new Error("target: expected an IPv4 or IPv6 address and a port");
    this.#targetName = target;
    const family = opts.bind.length === 16 ? AF_INET6 : AF_INET;
    const name = encodeSockaddr(family, opts.bind, opts.port);
    if (!name) throw new Error("listen: expected an IPv4 or IPv6 address and a port");
    const lib = libc.lib;
    const fd = lib.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket: ${this.#errno()}`);
    try {
      setIntOption(libc, fd, SOL_SOCKET, SO_REUSEADDR, 1);
      if (lib.bind(fd, name, name.length) !== 0) throw new Error(this.#errno());
      if (lib.listen(fd, LISTEN_BACKLOG) !== 0) throw new Error(this.#errno());
      // Accepted sockets inherit these from the listener: no setsockopt per accepted connection.
      this.#tune(fd);
      this.#tuneKeepalive(fd);
      this.#nameLen[0] = this.#nameBuf.length;
      if (lib.getsockname(fd, this.#nameBuf, this.#nameLen) !== 0) throw new Error(this.#errno());
      this.port = new SockaddrView(this.#nameBuf).port;
    } catch (e) {
      lib.close(fd);
      throw e;
    }
    this.#listenFd = fd;
  }

  /** Starts accepting. */
  start(): void {
    this.#loop.acquire();
    if (!this.#loop.add(this.#listenFd, EPOLLIN, this)) {
      const why = this.#errno();
      this.#libc.lib.close(this.#listenFd);
      void this.#loop.release();
      throw new Error(`epoll: ${why}`);
    }
  }

  /** Closes the listener and every connection; resolves when the loop no longer needs this relay. */
  stop(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#stopped = true;
    this.#opts.clock.clearTimer(this.#sweep);
    this.#opts.clock.clearTimer(this.#backoffTimer);
    this.#loop.forget(this.#listenFd);
    this.#libc.lib.close(this.#listenFd);
    for (const p of this.#conns) this.#close(p, "relay stopped");
    return this.#loop.release();
  }

  onEvents(fd: number, _events: number): void {
    if (fd === this.#listenFd) this.#accept();
  }

  #accept(): void {
    const lib = this.#libc.lib;
    const wantName = this.#opts.wantClientAddress;
    for (let i = 0; i < ACCEPTS_PER_EVENT && !this.#stopped; i++) {
      this.#nameLen[0] = this.#nameBuf.length;
      const c = wantName
        ? lib.accept4(this.#listenFd, this.#nameBuf, this.#nameLenBytes, SOCK_NONBLOCK | SOCK_CLOEXEC)
        : lib.accept4(this.#listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) {
        const err = this.#libc.errno.getInt32(0);
        if (err === EAGAIN || err === EINTR) return;
        // A client that gave up (reset) before it was accepted: nothing wrong with the listener.
        if (err === ECONNABORTED || err === EPROTO) continue;
        this.#opts.onAcceptError(`accept: ${describeErrno(lib, err)}`);
        if (err === EMFILE || err === ENFILE || err === ENOBUFS || err === ENOMEM) this.#restListener();
        return;
      }
      this.#backoffMs = ACCEPT_BACKOFF_MS;
      this.#dial(c, wantName ? readAddress(this.#nameBuf, this.#nameLen[0]) : NO_ADDRESS);
    }
  }

  /** Out of descriptors or memory: stop watching the listener for a while instead of spinning on it. */
  #restListener(): void {
    this.#loop.modify(this.#listenFd, 0);
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, ACCEPT_BACKOFF_MAX_MS);
    this.#backoffTimer = this.#opts.clock.setTimer(() => {
      this.#backoffTimer = undefined;
      if (!this.#stopped) this.#loop.modify(this.#listenFd, EPOLLIN);
    }, wait);
  }

  #dial(c: number, client: SocketAddress): void {
    const lib = this.#libc.lib;
    const opts = this.#opts;
    const u = lib.socket(this.#targetFamily, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u < 0) {
      this.accepted++;
      const why = this.#errno();
      lib.close(c);
      opts.onDialFailed(why, client);
      return;
    }
    this.accepted++;
    this.#tune(u);
    const p = new Pair(this, c, u, client, opts.clock.now());
    this.active++;
    if (lib.connect(u, this.#targetName, this.#targetName.length) !== 0) {
      const err = this.#libc.errno.getInt32(0);
      if (err !== EINPROGRESS && err !== EINTR) {
        this.active--;
        lib.close(u);
        lib.close(c);
        opts.onDialFailed(describeErrno(lib, err), client);
        return;
      }
    }
    const events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    if (!this.#loop.add(u, events, p) || !this.#loop.add(c, events, p)) {
      const why = this.#errno();
      this.#loop.forget(u);
      this.active--;
      lib.close(u);
      lib.close(c);
      opts.onDialFailed(`epoll: ${why}`, client);
      return;
    }
    this.#conns.add(p);
    this.#connecting.add(p);
    if (opts.keepalive) {
      p.untuned = true;
      this.#untunedCount++;
    }
    if (this.#sweep === undefined) this.#scheduleSweep();
  }

  /** Fails dials past the connect timeout and gives target sockets that lived a sweep their keepalive. */
  #scheduleSweep(): void {
    this.#sweep = this.#opts.clock.setTimer(() => {
      this.#sweep = undefined;
      const now = this.#opts.clock.now();
      const deadline = now - this.#opts.connectTimeoutMs;
      for (const p of this.#connecting) {
        if (p.openedMs <= deadline) this.dialFailed(p, "timed out");
      }
      if (this.#untunedCount > 0) this.#tuneLivedOnes(now - SWEEP_MS);
      const waiting = this.#connecting.size > 0 || this.#untunedCount > 0;
      if (waiting && !this.#stopped) this.#scheduleSweep();
    }, Math.min(SWEEP_MS, this.#opts.connectTimeoutMs));
  }

  /** Keepalive for the target socket of every open pair opened at `openedBy` or before. */
  #tuneLivedOnes(openedBy: number): void {
    for (const p of this.#conns) {
      if (!p.untuned || p.openedMs > openedBy) continue;
      p.untuned = false;
      this.#tuneKeepalive(p.u);
      if (--this.#untunedCount === 0) return;
    }
  }

  /** The target accepted: the pair relays from now on. */
  dialed(p: Pair): void {
    this.#connecting.delete(p);
    this.#opts.onDialed?.(p);
    const header = this.#opts.header;
    if (header) {
      this.#nameLen[0] = this.#nameBuf.length;
      const local = this.#libc.lib.getsockname(p.c, this.#nameBuf, this.#nameLenBytes) === 0
        ? readAddress(this.#nameBuf, this.#nameLen[0])
        : NO_ADDRESS;
      p.queue(header(p.client, local));
    }
  }

  dialFailed(p: Pair, reason: string): void {
    this.#connecting.delete(p);
    this.#opts.onDialFailed(reason, p.client);
    this.#drop(p);
  }

  /** Ends a pair that relayed (EOF both ways, or an error). */
  #close(p: Pair, error?: string): void {
    if (p.closed) return;
    this.#connecting.delete(p);
    this.#drop(p);
    this.#opts.onClosed?.(p, error);
  }

  closePair(p: Pair, error?: string): void {
    this.#close(p, error);
  }

  #drop(p: Pair): void {
    if (p.closed) return;
    p.closed = true;
    if (p.untuned) {
      p.untuned = false;
      this.#untunedCount--;
    }
    this.active--;
    this.#conns.delete(p);
    this.#loop.forget(p.c);
    this.#loop.forget(p.u);
    this.#libc.lib.close(p.c);
    this.#libc.lib.close(p.u);
  }

  /** Connection error text for the errno just set, or for a socket's pending error. */
  errnoText(code?: number): string {
    return describeErrno(this.#libc.lib, code ?? this.#libc.errno.getInt32(0));
  }

  get libc(): Libc {
    return this.#libc;
  }

  get counters(): { aToB: number; bToA: number } {
    return this.#opts.counters;
  }

  #errno(): string {
    return this.errnoText();
  }

  #tune(fd: number): void {
    setIntOption(this.#libc, fd, IPPROTO_TCP, TCP_NODELAY, 1);
  }

  #tuneKeepalive(fd: number): void {
    const libc = this.#libc;
    const k = this.#opts.keepalive;
    if (!k) return;
    setIntOption(libc, fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    setIntOption(libc, fd, IPPROTO_TCP, TCP_KEEPIDLE, k.idleSec);
    setIntOption(libc, fd, IPPROTO_TCP, TCP_KEEPINTVL, k.intervalSec);
    setIntOption(libc, fd, IPPROTO_TCP, TCP_KEEPCNT, k.count);
  }
}

function readAddress(buf: Uint8Array, len: number): SocketAddress {
  const v = new SockaddrView(buf);
  const family = v.family(len);
  if (family === AF_INET6) return { address: v.bytesV6().slice(), port: v.port };
  if (family === AF_INET) return { address: buf.slice(4, 8), port: v.port };
  return NO_ADDRESS;
}

/** Env variable that overrides the choice: "deno" (Deno's sockets) or "ffi" (this core; an error if unusable). */
export const TCP_MODE_ENV = "WGEDGE_TCP";

/** WGEDGE_TCP: "deno", "ffi" or "auto" (unset, or no env permission). Throws on any other value. */
export function tcpRelayMode(): "deno" | "ffi" | "auto" {
  return ffiModeFromEnv(TCP_MODE_ENV);
}
