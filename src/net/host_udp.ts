/**
 * The host Net's UDP sockets. Where libc can be reached through FFI (Linux x86_64/aarch64, --allow-ffi) a
 * socket moves datagrams in recvmmsg/sendmmsg batches (BatchedDatagramConn, on the core shared with the
 * WireGuard device's bind, src/sys/udp_batch.ts); elsewhere, or with WGEDGE_UDP=deno, it is Deno's socket
 * with one async op per datagram (HostDatagramConn).
 *
 * DatagramConn is pull-based (`receive()`), the batch core push-based, so a BatchedDatagramConn keeps a
 * receive queue like a socket buffer: each drained batch is copied out of the shared arena, one array per
 * datagram, and handed out in arrival order. The queue is bounded in datagrams and bytes; beyond that,
 * datagrams are dropped and counted (`receiveQueueDrops`), so a consumer that stops reading cannot grow
 * memory. A `send()` is staged for the next sendmmsg and resolves at once: what the kernel refuses later
 * (a full send buffer, an unreachable network) is counted in `sendErrors`, as a router counts its drops.
 * What is known to fail before (wrong address family, too long, closed socket) rejects as Deno's send does.
 *
 * A forwarder (mwgp) uses the push form instead: `listen(handler)` calls the handler synchronously for each
 * datagram with a view that is valid only during the call (no copy, no promise per datagram), and
 * `sendNow()` stages a datagram without a promise; its destination's sockaddr is cached by the address
 * object, so a forwarder that keeps one address object per peer encodes it once.
 */
import { logger } from "../util/log.ts";
import { formatIpv4, parseIpv4 } from "../wire/ipv4.ts";
import { formatIpv6, parseIpv6 } from "../wire/ipv6.ts";
import type { DatagramConn, NetAddr } from "./types.ts";
import {
  AF_INET6,
  attachBatchIo,
  batchLibc,
  type BatchReceiver,
  encodeSockaddr,
  ENDPOINT_CACHE_MAX,
  isV4Mapped,
  LastSource,
  lowestFreeFd,
  type MmsgVector,
  SLOT_SIZE,
  SOCKADDR_IN6_SIZE,
  SockaddrView,
  UDP_MODE_ENV,
  UdpBatchCounters,
  type UdpBatchIo,
  udpBatchMode,
  udpBatchUnavailable,
} from "../sys/udp_batch.ts";
import { EpollLoop } from "../sys/epoll.ts";

const log = logger("net.udp");

/** Largest UDP payload over IPv4 (65535 - 20 - 8). */
export const MAX_DATAGRAM_V4 = 65507;
/** Largest UDP payload over IPv6 without jumbograms (65535 - 8). */
export const MAX_DATAGRAM_V6 = 65527;
/** Receive queue bound in datagrams (about what a 4 MiB socket buffer holds of 1 KiB datagrams). */
export const RECEIVE_QUEUE_DATAGRAMS = 4096;
/**
 * Receive queue bound in payload bytes (the socket buffer asked for), so 4096 datagrams of 64 KiB cannot pin
 * 256 MiB.
 */
export const RECEIVE_QUEUE_BYTES = 4 << 20;
/** With nothing found behind the first datagram, a drain is tried again after this many wake-ups. */
const DRAIN_PROBE_EVERY = 8;

/** A destination for sendNow(): an address literal and a port. Treated as immutable (its sockaddr is cached). */
export interface UdpDestination {
  readonly hostname: string;
  readonly port: number;
}

/**
 * The push-mode receiver: `data` is a view into a receive buffer, valid only until the handler returns (the
 * handler may rewrite it in place and pass it to sendNow(), which copies). `from` is the same object for
 * the same source while the socket's source cache holds it.
 */
export type DatagramHandler = (data: Uint8Array, from: NetAddr) => void;

/** Sends in flight on Deno's socket before listen() stops reading for one to finish (back-pressure). */
export const MAX_INFLIGHT_SENDS = 32;

/** A host UDP socket: a DatagramConn whose receive may also copy into the caller's buffer (as Deno's). */
export interface HostUdpConn extends DatagramConn {
  /** With `buf`, the datagram is copied into it (cut to its length) and a subarray of it is returned. */
  receive(buf?: Uint8Array): Promise<[Uint8Array, NetAddr]>;
  /**
   * Push mode instead of receive(): `handler` runs for every datagram until close(); resolves then. A handler
   * that throws costs that datagram only (counted in receiveHandlerErrors). `onWake`, if given, runs once per
   * wake-up before that wake-up's datagrams (a batch), e.g. to read the clock once for all of them.
   */
  listen(handler: DatagramHandler, onWake?: () => void): Promise<void>;
  /**
   * Sends without a promise: staged for the next batched send (or handed to Deno's socket). False when it
   * cannot leave (closed socket, wrong family, too long), counted in sendErrors.
   */
  sendNow(data: Uint8Array, to: UdpDestination): boolean;
  /** Datagrams whose listen() handler threw. */
  readonly receiveHandlerErrors: number;
  /** True when datagrams move in recvmmsg/sendmmsg batches. */
  readonly batched: boolean;
}

function toNetAddr(a: Deno.Addr): NetAddr {
  if (a.transport === "udp" || a.transport === "tcp") {
    return { transport: "udp", hostname: a.hostname, port: a.port };
  }
  return { transport: "udp", hostname: "", port: 0 };
}

function copyOut(data: Uint8Array, buf: Uint8Array | undefined): Uint8Array {
  if (!buf) return data.slice();
  const n = Math.min(data.length, buf.length);
  buf.set(n === data.length ? data : data.subarray(0, n));
  return buf.subarray(0, n);
}

/** Deno's socket, one async op per datagram. */
export class HostDatagramConn implements HostUdpConn {
  readonly addr: NetAddr;
  readonly batched = false;
  readonly #buf = new Uint8Array(MAX_DATAGRAM_V6);
  #receiving = false;
  #closed = false;
  sendErrors = 0;
  receiveHandlerErrors = 0;
  /** See DatagramConn.dropped: sendNow()'s datagrams that could not leave (send() reports its own). */
  get dropped(): number {
    return this.sendErrors;
  }
  #inflight = 0;
  #sendSettled: (() => void) | undefined;
  constructor(private inner: Deno.DatagramConn) {
    this.addr = toNetAddr(inner.addr);
  }
  send(data: Uint8Array, to: NetAddr): Promise<number> {
    return this.inner.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
  }
  /** Deno's send keeps a reference to the bytes until it completes: they are copied (the caller reuses them). */
  sendNow(data: Uint8Array, to: UdpDestination): boolean {
    if (this.#closed) {
      this.sendErrors++;
      return false;
    }
    this.#inflight++;
    this.inner.send(data.slice(), { transport: "udp", hostname: to.hostname, port: to.port }).catch(() => {
      this.sendErrors++;
    }).finally(() => {
      this.#inflight--;
      this.#sendSettled?.();
    });
    return true;
  }
  /** One Deno op per datagram (this is the fallback); reading pauses while MAX_INFLIGHT_SENDS are in flight. */
  async listen(handler: DatagramHandler, onWake?: () => void): Promise<void> {
    while (!this.#closed) {
      while (this.#inflight >= MAX_INFLIGHT_SENDS && !this.#closed) {
        await new Promise<void>((r) => this.#sendSettled = r);
        this.#sendSettled = undefined;
      }
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.inner.receive(this.#buf);
      } catch (e) {
        if (this.#closed || e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) {
          return;
        }
        log.debug("udp receive failed", { error: e }); // a queued ICMP error: reported once by the kernel
        continue;
      }
      try {
        onWake?.();
        handler(data, toNetAddr(from));
      } catch (e) {
        this.receiveHandlerErrors++;
        log.warn("datagram handler failed", { error: e });
      }
    }
  }
  async receive(buf?: Uint8Array): Promise<[Uint8Array, NetAddr]> {
    if (buf) {
      const [data, from] = await this.inner.receive(buf);
      return [data, toNetAddr(from)];
    }
    // Receive into one reused 64 KiB buffer and copy out only the datagram: without a buffer Deno allocates
    // a fresh 64 KiB one per datagram, which dominates the cost of small packets.
    // A second concurrent receive (unusual) gets its own buffer so the two cannot overwrite each other.
    if (this.#receiving) {
      const [data, from] = await this.inner.receive(new Uint8Array(MAX_DATAGRAM_V6));
      return [data.slice(), toNetAddr(from)];
    }
    this.#receiving = true;
    try {
      const [data, from] = await this.inner.receive(this.#buf);
      return [data.slice(), toNetAddr(from)];
    } finally {
      this.#receiving = false;
    }
  }
  close(): void {
    this.#closed = true;
    this.#sendSettled?.();
    try {
      this.inner.close();
    } catch {
      // already closed
    }
  }
}

interface Waiter {
  resolve: (v: [Uint8Array, NetAddr]) => void;
  reject: (e: Error) => void;
  buf: Uint8Array | undefined;
}

/** Encoded destination and the largest payload that can reach it. */
interface Destination {
  sockaddr: Uint8Array;
  maxPayload: number;
}

const NO_SOURCE: NetAddr = Object.freeze({ transport: "udp", hostname: "", port: 0 }) as NetAddr;

/**
 * A host UDP socket moving datagrams in recvmmsg/sendmmsg batches, with a bounded receive queue. The
 * receive pump starts with the first `receive()`, so a socket nobody reads from keeps no op pending.
 */
export class BatchedDatagramConn extends UdpBatchCounters implements HostUdpConn {
  readonly addr: NetAddr;
  readonly batched = true;
  /** Datagrams dropped because the receive queue was full (the consumer fell behind). */
  receiveQueueDrops = 0;
  receiveHandlerErrors = 0;
  /** Push mode (listen()): every datagram goes to it instead of the queue. */
  #handler: DatagramHandler | undefined;
  #onWake: (() => void) | undefined;
  #listening: Promise<void> | undefined;
  /** Push mode: the epoll loop that also watches the socket, for the main thread's linger after a wake-up. */
  #hot: EpollLoop | undefined;
  /** sendNow()'s sockaddr cache by address object (a forwarder keeps one object per peer). */
  #destinationOf = new WeakMap<UdpDestination, Destination | null>();

  /** See DatagramConn.dropped: the receive queue's drops plus sends the kernel refused after queuing. */
  get dropped(): number {
    return this.receiveQueueDrops + this.sendErrors;
  }
  readonly #inner: Deno.DatagramConn;
  readonly #io: UdpBatchIo;
  #closed = false;
  #pumping = false;
  /** Receive queue: payloads (or a receive error to report in order) and sources, from #head on. */
  #queue: (Uint8Array | Error)[] = [];
  #queueFrom: NetAddr[] = [];
  #head = 0;
  #queuedBytes = 0;
  /** Resolved when the consumer takes a queued error: the pump waits for it, as a reader would have. */
  #errorTaken: (() => void) | undefined;
  readonly #waiters: Waiter[] = [];
  /** One frozen NetAddr per source (bounded), so a burst from one peer allocates no addresses. */
  readonly #sources = new Map<string, NetAddr>();
  readonly #lastSource = new LastSource<NetAddr>();
  readonly #destinations = new Map<string, Destination | null>();
  /**
   * Datagrams the last recvmmsg drain found behind Deno's first one, and wake-ups since a drain was tried.
   * Ping-pong traffic (one datagram per wake-up) leaves nothing behind, so the drain after every receive was
   * a system call that only said EAGAIN; it is tried again after DRAIN_PROBE_EVERY wake-ups or as soon as a
   * drain found something, so a burst still leaves in batches.
   */
  #drained = 1;
  #wakesWithoutDrain = 0;
  readonly #batchReceiver: BatchReceiver<NetAddr> = {
    source: (vec, i) => this.#source(vec, i),
    deliver: (data, from) => {
      this.#drained++;
      this.#enqueue(data, from);
      return !this.#closed;
    },
  };
  /** The batch receiver of push mode: the handler sees the arena's view, nothing is copied or queued. */
  readonly #pushReceiver: BatchReceiver<NetAddr> = {
    source: (vec, i) => this.#source(vec, i),
    deliver: (data, from) => {
      this.#push(data, from);
      return !this.#closed;
    },
  };

  /**
   * Use `listenHostUdp()`; this constructor throws when the socket cannot be batched. `fdHint`: the lowest
   * free descriptor just before `inner` was opened (lowestFreeFd), checked first. `gso`: consecutive sends
   * of one size to one destination leave as UDP GSO trains (UdpBatchIo.stage), where the kernel has it.
   */
  constructor(inner: Deno.DatagramConn, fdHint = -1, gso = false) {
    super();
    const local = inner.addr as Deno.NetAddr;
    const address = parseIpv4(local.hostname) ?? parseIpv6(local.hostname);
    const io = address
      ? attachBatchIo({ address, port: local.port }, this, log, { fdHint, gso })
      : { reason: "unparsable local address" };
    if ("reason" in io) throw new Error(`udp: no batched I/O: ${io.reason}`);
    this.#inner = inner;
    this.#io = io;
    this.addr = toNetAddr(inner.addr);
  }

  /** True while sends to one destination may leave as UDP GSO trains. */
  get gso(): boolean {
    return this.#io.gso;
  }

  /** Datagrams waiting in the receive queue. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  send(data: Uint8Array, to: NetAddr): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Socket has been closed"));
    const dest = this.#destination(to.hostname, to.port);
    if (dest === undefined) {
      // A name (or a zone): Deno resolves it. What was staged leaves first, to keep the order.
      this.#io.flush();
      return this.#inner.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
    }
    if (dest === null) {
      return Promise.reject(new Error("Address family not supported by protocol (os error 97)"));
    }
    if (data.length > dest.maxPayload) return Promise.reject(new Error("Message too long (os error 90)"));
    this.#io.stage(data, dest.sockaddr);
    return Promise.resolve(data.length);
  }

  sendNow(data: Uint8Array, to: UdpDestination): boolean {
    if (this.#closed) {
      this.sendErrors++;
      return false;
    }
    let dest = this.#destinationOf.get(to);
    if (dest === undefined) {
      dest = this.#destination(to.hostname, to.port);
      if (dest === undefined) {
        // A name: Deno resolves it (never on a forwarder's path, whose peers are address literals).
        this.send(data.slice(), { transport: "udp", hostname: to.hostname, port: to.port }).catch(() =>
          this.sendErrors++
        );
        return true;
      }
      this.#destinationOf.set(to, dest);
    }
    if (dest === null || data.length > dest.maxPayload) {
      this.sendErrors++;
      return false;
    }
    this.#io.stage(data, dest.sockaddr);
    return true;
  }

  listen(handler: DatagramHandler, onWake?: () => void): Promise<void> {
    if (this.#listening) throw new Error("udp: listen() called twice");
    if (this.#pumping) throw new Error("udp: listen() after receive()");
    this.#handler = handler;
    this.#onWake = onWake;
    this.#pumping = true;
    // Deno's receive stays the wait after a quiet spell; under load the main thread lingers on the epoll
    // loop after each wake-up and drains whichever push-mode socket is ready meanwhile (epoll.ts).
    const loop = EpollLoop.shared();
    if (!("reason" in loop) && this.#io.watch(loop, { onEvents: () => this.#onReady() })) this.#hot = loop;
    this.#listening = this.#pump().catch((e) =>
      log.error("udp receive loop failed", { error: (e as Error).stack ?? String(e) })
    );
    return this.#listening;
  }

  /** A linger of the epoll loop found the socket readable: the same work as a wake-up through Deno. */
  #onReady(): void {
    if (this.#closed) return;
    if (this.#onWake) this.#wake();
    this.#io.drain(this.#pushReceiver);
    this.#io.sendStaged();
  }

  #wake(): void {
    try {
      this.#onWake!();
    } catch (e) {
      this.receiveHandlerErrors++;
      log.warn("datagram handler failed", { error: e });
    }
  }

  #push(data: Uint8Array, from: NetAddr): void {
    try {
      this.#handler!(data, from);
    } catch (e) {
      this.receiveHandlerErrors++;
      log.warn("datagram handler failed", { error: e });
    }
  }

  /** The sockaddr for an address literal (cached); undefined for a name, null for the wrong family. */
  #destination(hostname: string, port: number): Destination | null | undefined {
    const key = `${hostname}|${port}`;
    const cached = this.#destinations.get(key);
    if (cached !== undefined) return cached;
    const bytes = parseIpv4(hostname) ?? parseIpv6(hostname);
    const sa = bytes ? encodeSockaddr(this.#io.family, bytes, port) : undefined;
    if (sa === undefined) return undefined;
    const dest = sa && {
      sockaddr: sa,
      maxPayload: sa.length === SOCKADDR_IN6_SIZE && !isV4Mapped(new SockaddrView(sa).bytesV6())
        ? MAX_DATAGRAM_V6
        : MAX_DATAGRAM_V4,
    };
    if (this.#destinations.size >= ENDPOINT_CACHE_MAX) this.#destinations.clear();
    this.#destinations.set(key, dest);
    return dest;
  }

  receive(buf?: Uint8Array): Promise<[Uint8Array, NetAddr]> {
    if (this.#head < this.#queue.length) {
      const data = this.#take();
      if (data instanceof Error) return Promise.reject(data);
      return Promise.resolve([copyOut(data, buf), this.#lastTakenFrom]);
    }
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Socket has been closed"));
    if (this.#handler) return Promise.reject(new Error("udp: receive() on a socket in listen() mode"));
    if (!this.#pumping) {
      this.#pumping = true;
      this.#pump().catch((e) =>
        log.error("udp receive loop failed", { error: (e as Error).stack ?? String(e) })
      );
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject, buf }));
  }

  #lastTakenFrom: NetAddr = NO_SOURCE;

  /** The queue's head (its source in #lastTakenFrom); the arrays are reset once empty, compacted when long. */
  #take(): Uint8Array | Error {
    const i = this.#head++;
    const data = this.#queue[i];
    this.#lastTakenFrom = this.#queueFrom[i];
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#queueFrom = [];
      this.#head = 0;
    } else if (this.#head >= 1024) {
      this.#queue = this.#queue.slice(this.#head);
      this.#queueFrom = this.#queueFrom.slice(this.#head);
      this.#head = 0;
    }
    if (data instanceof Error) {
      this.#errorTaken?.();
      this.#errorTaken = undefined;
    } else {
      this.#queuedBytes -= data.length;
    }
    return data;
  }

  /** Hands a datagram (a view into an arena or into Deno's buffer) to a waiting receive, or queues a copy. */
  #enqueue(data: Uint8Array, from: NetAddr): void {
    const w = this.#waiters.shift();
    if (w) {
      w.resolve([copyOut(data, w.buf), from]);
      return;
    }
    if (
      this.#queue.length - this.#head >= RECEIVE_QUEUE_DATAGRAMS ||
      this.#queuedBytes + data.length > RECEIVE_QUEUE_BYTES
    ) {
      this.receiveQueueDrops++;
      return;
    }
    this.#queue.push(data.slice());
    this.#queueFrom.push(from);
    this.#queuedBytes += data.length;
  }

  /**
   * Deno's receive is the readiness wait (on the event loop's own epoll); what is queued behind that first
   * datagram is read in recvmmsg batches. Runs until close().
   */
  async #pump(): Promise<void> {
    try {
      await this.#pumpLoop();
    } finally {
      this.#pumping = false;
      // Only now: once Deno's pending receive has ended, the socket is really closed and its port free, so
      // a reader that awaited its rejection can bind the port again (a relay restarted on the same port).
      if (this.#closed) this.#rejectWaiters();
    }
  }

  #rejectWaiters(): void {
    for (const w of this.#waiters.splice(0)) w.reject(new Deno.errors.Interrupted("operation canceled"));
  }

  async #pumpLoop(): Promise<void> {
    const first = new Uint8Array(SLOT_SIZE);
    while (!this.#closed) {
      let data: Uint8Array, addr: Deno.Addr;
      try {
        [data, addr] = await this.#inner.receive(first);
      } catch (e) {
        if (this.#closed) return;
        if (e instanceof Deno.errors.BadResource) {
          this.close();
          return;
        }
        if (this.#handler) {
          // Push mode has no reader to report to: a queued ICMP error is counted (the kernel reports each once).
          this.receiveErrors++;
          continue;
        }
        // A queued ICMP error, reported to the reader in order as Deno's socket did; the pump goes on once
        // it was taken (so a persistent error runs at the reader's pace, not in a tight loop).
        const w = this.#waiters.shift();
        if (w) w.reject(e as Error);
        else {
          this.#queue.push(e as Error);
          this.#queueFrom.push(NO_SOURCE);
          await new Promise<void>((r) => this.#errorTaken = r);
        }
        continue;
      }
      this.rxDatagrams++;
      if (this.#handler) {
        if (this.#onWake) this.#wake();
        this.#push(data, this.#sourceFromDeno(addr as Deno.NetAddr));
        if (!this.#closed) this.#io.drain(this.#pushReceiver);
        // What the handler staged leaves now, before the next receive (a system call that finds EAGAIN,
        // then the wait): the staging's microtask would send the same batch only after that.
        this.#io.sendStaged();
        if (!this.#closed) this.#hot?.linger();
        continue;
      }
      this.#enqueue(data, this.#sourceFromDeno(addr as Deno.NetAddr));
      if (this.#closed) continue;
      if (this.#drained > 0 || ++this.#wakesWithoutDrain >= DRAIN_PROBE_EVERY) {
        this.#drained = 0;
        this.#wakesWithoutDrain = 0;
        this.#io.drain(this.#batchReceiver);
      }
    }
  }

  /** The NetAddr of datagram i's source, formatted as Deno formats it (v4-mapped as ::ffff:a.b.c.d). */
  #source(vec: MmsgVector, i: number): NetAddr | undefined {
    const last = this.#lastSource.match(vec, i);
    if (last) return last;
    const len = vec.nameLength(i);
    const sa = new SockaddrView(vec.name(i, len));
    const family = sa.family(len);
    if (family === 0) return undefined;
    const hostname = family === AF_INET6 ? formatIpv6(sa.bytesV6()) : formatIpv4(sa.bytesV4());
    const from = this.#cachedSource(hostname, sa.port);
    this.#lastSource.remember(vec, i, from);
    return from;
  }

  /**
   * The NetAddr of the datagram Deno's receive handed over (a fresh object every time): the previous one when
   * the source is the same (a bulk transfer's usual case), without building the cache's key string.
   */
  #sourceFromDeno(na: Deno.NetAddr): NetAddr {
    const last = this.#lastDenoSource;
    if (last.port === na.port && last.hostname === na.hostname) return last;
    return this.#lastDenoSource = this.#cachedSource(na.hostname, na.port);
  }
  #lastDenoSource: NetAddr = NO_SOURCE;

  #cachedSource(hostname: string, port: number): NetAddr {
    const key = `${hostname}|${port}`;
    let from = this.#sources.get(key);
    if (!from) {
      if (this.#sources.size >= ENDPOINT_CACHE_MAX) this.#sources.clear();
      from = Object.freeze({ transport: "udp", hostname, port }) as NetAddr;
      this.#sources.set(key, from);
    }
    return from;
  }

  /**
   * Idempotent. What was staged still leaves; pending receives reject as Deno's do (Interrupted, once the
   * socket is really closed), later ones with BadResource; queued datagrams are dropped.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#io.close(); // nothing touches the descriptor after this: Deno may reuse its number
    try {
      this.#inner.close();
    } catch { /* already closed */ }
    if (!this.#pumping) this.#rejectWaiters(); // else once the pump has ended (see #pump)
    this.#queue = [];
    this.#queueFrom = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    this.#errorTaken?.();
  }
}

let fallbackLogged = false;

/**
 * Opens a host UDP socket: batched where libc is reachable and the socket's descriptor is found, Deno's
 * socket otherwise. WGEDGE_UDP=deno forces Deno's socket; WGEDGE_UDP=ffi makes an unusable libc an error.
 * Listen errors are Deno's (AddrInUse...). `gso`: a batched socket sends consecutive datagrams of one size to
 * one destination as one UDP GSO message (a forwarder's bursts; the kernel cuts them apart at the end).
 */
export function listenHostUdp(hostname: string, port: number, opts: { gso?: boolean } = {}): HostUdpConn {
  const mode = udpBatchMode();
  const unavailable = mode === "deno" ? undefined : udpBatchUnavailable();
  if (mode === "ffi" && unavailable) {
    throw new Error(`${UDP_MODE_ENV}=ffi: the libc UDP socket cannot be used: ${unavailable}`);
  }
  const libc = mode === "deno" || unavailable ? undefined : batchLibc();
  const fdHint = libc && !("reason" in libc) ? lowestFreeFd(libc) : -1;
  const inner = Deno.listenDatagram({ hostname, port, transport: "udp" });
  if (mode === "deno") return new HostDatagramConn(inner);
  if (unavailable) {
    if (!fallbackLogged) {
      fallbackLogged = true;
      log.debug("using Deno's UDP socket", { reason: unavailable });
    }
    return new HostDatagramConn(inner);
  }
  try {
    return new BatchedDatagramConn(inner, fdHint, opts.gso);
  } catch (e) {
    log.warn(`${(e as Error).message}; sending and receiving one datagram per Deno op`);
    return new HostDatagramConn(inner);
  }
}
