/**
 * A listening socket: a bounded SYN queue (half-open children) and a bounded accept queue. A SYN that finds
 * either full is dropped and counted, so a SYN flood costs at most maxSynBacklog small objects per listener
 * (half-open connections allocate no buffer memory) and legitimate clients retry their SYN.
 */
import type { Conn, Listener, NetAddr } from "../conn.ts";
import type { TcpConnection } from "./connection.ts";

export class TcpListener implements Listener {
  readonly #embryos = new Set<TcpConnection>();
  readonly #queue: TcpConnection[] = [];
  readonly #waiters: { resolve: (c: Conn) => void; reject: (e: Error) => void }[] = [];
  #closed = false;

  constructor(
    readonly addr: NetAddr,
    /** Bound address, or undefined for any address of the stack. */
    readonly local: Uint8Array | undefined,
    readonly backlog: number,
    readonly synBacklog: number,
    private onClose: (l: TcpListener) => void,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  get halfOpen(): number {
    return this.#embryos.size;
  }

  get queued(): number {
    return this.#queue.length;
  }

  canAcceptSyn(): boolean {
    return !this.#closed && this.#embryos.size < this.synBacklog && this.#queue.length < this.backlog;
  }

  adopt(c: TcpConnection): void {
    this.#embryos.add(c);
    c.listenerRef = this;
  }

  /** Called by the layer when a child completes its handshake. Returns false when it had to be refused. */
  established(c: TcpConnection): boolean {
    this.#embryos.delete(c);
    const w = this.#waiters.shift();
    if (w) {
      c.listenerRef = undefined;
      w.resolve(c);
      return true;
    }
    if (this.#queue.length >= this.backlog || this.#closed) {
      c.listenerRef = undefined;
      c.reset();
      return false;
    }
    this.#queue.push(c);
    return true;
  }

  /** A child died before accept(). */
  onChildGone(c: TcpConnection): void {
    if (this.#embryos.delete(c)) return;
    const i = this.#queue.indexOf(c);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  accept(): Promise<Conn> {
    const c = this.#queue.shift();
    if (c) {
      c.listenerRef = undefined;
      return Promise.resolve(c);
    }
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("listener closed"));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    while (!this.#closed || this.#queue.length > 0) {
      try {
        yield await this.accept();
      } catch (e) {
        if (this.#closed) return;
        throw e;
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(this);
    for (const w of this.#waiters.splice(0)) w.reject(new Deno.errors.BadResource("listener closed"));
    for (const c of this.#queue.splice(0)) {
      c.listenerRef = undefined;
      c.reset();
    }
    for (const c of [...this.#embryos]) c.reset();
    this.#embryos.clear();
  }
}
