/**
 * One connection of the TCP relay core (tcp_relay.ts): the client's socket `c` and the target's `u`, and
 * what moves between them. Both sockets are registered edge-triggered for input, output and peer shutdown, so
 * every event is handled to its end here: read until EAGAIN (or a short read), write what was read, keep what
 * the destination could not take and stop reading its source until the destination is writable again, and
 * carry EOF as shutdown(SHUT_WR) once the remainder is written. One 64 KiB read buffer serves every
 * connection of the process, since reads are synchronous and one at a time.
 */
import type { Libc } from "./libc.ts";
import { EPOLLERR, type EpollHandler, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP } from "./epoll.ts";
import { IoVec } from "./iovec.ts";
import { EAGAIN, EINTR, SHUT_WR, SO_ERROR, SOL_SOCKET } from "./constants.ts";

/** Bytes moved per read; also the most a direction keeps while its destination is full. */
export const RELAY_BUFFER_SIZE = 65536;

/** An address as bytes (4 or 16) and a port. */
export interface SocketAddress {
  address: Uint8Array;
  port: number;
}

/** One relayed connection as the hooks see it. */
export interface RelayedConnection {
  readonly client: SocketAddress;
  readonly bytesToTarget: number;
  readonly bytesToClient: number;
  readonly openedMs: number;
}

/** What a pair needs from the relay that owns it. */
export interface PairOwner {
  readonly libc: Libc;
  /** Relay-wide byte counters. */
  readonly counters: { aToB: number; bToA: number };
  /** The target accepted the dial. */
  dialed(p: RelayPair): void;
  dialFailed(p: RelayPair, reason: string): void;
  closePair(p: RelayPair, error?: string): void;
  errnoText(code?: number): string;
}

/** The one read buffer of every relayed connection (reads are synchronous, one at a time). */
const buffer = new Uint8Array(RELAY_BUFFER_SIZE);
/** iovecs onto that buffer (reads: always all of it) and onto whatever is written. */
const readIoVec = new IoVec();
/** Set by the first TcpRelayCore (taking a pointer needs the FFI permission, which importing must not). */
let readVec: Uint8Array = new Uint8Array(0);

/** Points the read iovec at the shared buffer; called by the first relay (needs the FFI permission). */
export function prepareRelayBuffers(): void {
  if (readVec.length === 0) readVec = readIoVec.at(buffer);
}
const writeVec = new IoVec();
const soError = new Int32Array(1);
const soErrorLen = new Uint32Array(1);

/** One relayed connection: the client's socket `c` and the target's `u`. */
export class RelayPair implements EpollHandler, RelayedConnection {
  connected = false;
  closed = false;
  /** The target socket has no keepalive yet (the relay's once-a-second sweep gives it one). */
  untuned = false;
  /** The client sent something (or closed) before the target accepted: read it once connected. */
  clientWaiting = false;
  /** Bytes a full destination could not take yet, per direction. */
  toTarget: Uint8Array | null = null;
  toClient: Uint8Array | null = null;
  /** A direction's source reached EOF; `…Shut` once the destination got its shutdown(SHUT_WR). */
  clientEof = false;
  targetEof = false;
  targetShut = false;
  clientShut = false;
  bytesToTarget = 0;
  bytesToClient = 0;

  constructor(
    readonly core: PairOwner,
    readonly c: number,
    readonly u: number,
    readonly client: SocketAddress,
    readonly openedMs: number,
  ) {}

  onEvents(fd: number, events: number): void {
    if (this.closed) return;
    if (!this.connected) {
      if (fd !== this.u) {
        this.clientWaiting = true;
        return;
      }
      if (events & (EPOLLERR | EPOLLHUP)) {
        this.core.dialFailed(this, this.#pendingError());
        return;
      }
      if (!(events & EPOLLOUT)) return;
      this.connected = true;
      this.core.dialed(this);
      if (this.closed) return;
      if (this.clientWaiting) this.#pump(true, true);
      if (this.closed) return;
    }
    const fromClient = fd === this.c;
    // Writable again: what waited goes first, then the source that was held back is read again.
    if (events & EPOLLOUT) this.#flush(!fromClient);
    if (this.closed) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      this.#pump(fromClient, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0);
    }
  }

  /** Bytes to send to the target before anything from the client (the PROXY header). */
  queue(bytes: Uint8Array): void {
    const lib = this.core.libc.lib;
    const n = lib.writev(this.u, writeVec.at(bytes), 1);
    if (n === bytes.length) return;
    if (n < 0 && this.core.libc.errno.getInt32(0) !== EAGAIN) {
      this.core.closePair(this, this.core.errnoText());
      return;
    }
    this.toTarget = bytes.slice(Math.max(n, 0));
  }

  /**
   * Moves what `fromClient`'s source has to the other side, until EAGAIN, EOF or a full destination. A short
   * read ends the round (the next arrival is a new edge) unless `untilEmpty`: the peer's FIN came with this
   * edge (its data then arrives with no later edge to report the EOF behind it), or the source was not read
   * for a while.
   */
  #pump(fromClient: boolean, untilEmpty: boolean): void {
    const lib = this.core.libc.lib;
    const src = fromClient ? this.c : this.u;
    const dst = fromClient ? this.u : this.c;
    if ((fromClient ? this.toTarget : this.toClient) !== null) return; // waiting for dst to drain
    if (fromClient ? this.clientEof : this.targetEof) return;
    for (;;) {
      const n = lib.readv(src, readVec, 1);
      if (n > 0) {
        const w = lib.writev(dst, writeVec.at(buffer, n), 1);
        const sent = w > 0 ? w : 0;
        this.#count(fromClient, sent);
        if (w === n) {
          if (n < RELAY_BUFFER_SIZE && !untilEmpty) return; // drained: the next arrival is a new edge
          continue;
        }
        if (w < 0 && this.core.libc.errno.getInt32(0) !== EAGAIN) {
          this.core.closePair(this, this.core.errnoText());
          return;
        }
        const rest = buffer.slice(sent, n);
        if (fromClient) this.toTarget = rest;
        else this.toClient = rest;
        return;
      }
      if (n === 0) {
        if (fromClient) this.clientEof = true;
        else this.targetEof = true;
        this.#shutIfDone(fromClient);
        return;
      }
      const err = this.core.libc.errno.getInt32(0);
      if (err === EAGAIN) return;
      if (err === EINTR) continue;
      this.core.closePair(this, this.core.errnoText(err));
      return;
    }
  }

  /** Writes what waited for `toTarget`'s destination; once empty, reads its source again. */
  #flush(toTarget: boolean): void {
    const pending = toTarget ? this.toTarget : this.toClient;
    if (pending === null) return;
    const lib = this.core.libc.lib;
    const w = lib.writev(toTarget ? this.u : this.c, writeVec.at(pending), 1);
    if (w < 0) {
      if (this.core.libc.errno.getInt32(0) !== EAGAIN) this.core.closePair(this, this.core.errnoText());
      return;
    }
    this.#count(toTarget, w);
    if (w < pending.length) {
      if (toTarget) this.toTarget = pending.subarray(w);
      else this.toClient = pending.subarray(w);
      return;
    }
    if (toTarget) this.toTarget = null;
    else this.toClient = null;
    if (toTarget ? this.clientEof : this.targetEof) this.#shutIfDone(toTarget);
    else this.#pump(toTarget, true); // the source was not read while this waited; no new edge will say so
  }

  /** Bytes written towards the target (`toTarget`) or the client, on this connection and relay-wide. */
  #count(toTarget: boolean, n: number): void {
    if (toTarget) {
      this.bytesToTarget += n;
      this.core.counters.aToB += n;
    } else {
      this.bytesToClient += n;
      this.core.counters.bToA += n;
    }
  }

  /** After EOF from one side: half-close the other once its remainder is written; close when both ended. */
  #shutIfDone(fromClient: boolean): void {
    if ((fromClient ? this.toTarget : this.toClient) !== null) return; // #flush comes back here
    // The other direction already ended: closing both sends this FIN too, without a shutdown call.
    if (fromClient ? this.clientShut : this.targetShut) {
      this.core.closePair(this);
      return;
    }
    const lib = this.core.libc.lib;
    if (fromClient) {
      this.targetShut = true;
      lib.shutdown(this.u, SHUT_WR);
    } else {
      this.clientShut = true;
      lib.shutdown(this.c, SHUT_WR);
    }
  }

  #pendingError(): string {
    soErrorLen[0] = 4;
    soError[0] = 0;
    this.core.libc.lib.getsockopt(this.u, SOL_SOCKET, SO_ERROR, soError, soErrorLen);
    return soError[0] ? this.core.errnoText(soError[0]) : "connection failed";
  }
}
