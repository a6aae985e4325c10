/**
 * An in-memory Net for state-machine tests: dials reach handlers registered per host:port (or are refused,
 * or hang until aborted), connections are byte queues in both directions, and a test can stall a side's
 * writes (a caster that stops reading) or close either end. No sockets, no timers: a ManualClock drives time.
 */
import type {
  Conn,
  DatagramConn,
  DialOptions,
  Listener,
  ListenOptions,
  Net,
  NetAddr,
} from "../../src/net/types.ts";

/** One end of an in-memory connection. */
export class MemoryConn implements Conn {
  peer!: MemoryConn;
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  #chunks: Uint8Array[] = [];
  #readers: ((v: number | null) => void)[] = [];
  #pendingRead?: Uint8Array;
  #eof = false;
  closed = false;
  /** While true, write() does not resolve (the other side is not reading). */
  stalled = false;
  #stalledWrites: (() => void)[] = [];
  /** Everything ever written by this end. */
  written: Uint8Array[] = [];

  constructor(local: NetAddr, remote: NetAddr) {
    this.localAddr = local;
    this.remoteAddr = remote;
  }

  /** Bytes that arrived and were not read yet. */
  get buffered(): number {
    return this.#chunks.reduce((n, c) => n + c.length, 0);
  }

  #deliver(data: Uint8Array): void {
    if (this.closed) return;
    this.#chunks.push(data.slice());
    this.#serve();
  }

  #serve(): void {
    while (this.#readers.length > 0 && (this.#chunks.length > 0 || this.#eof || this.closed)) {
      const resolve = this.#readers.shift()!;
      const p = this.#pendingRead!;
      this.#pendingRead = undefined;
      if (this.#chunks.length === 0) {
        resolve(null);
        continue;
      }
      const c = this.#chunks[0];
      const n = Math.min(p.length, c.length);
      p.set(c.subarray(0, n));
      if (n === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(n);
      resolve(n);
    }
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.closed && this.#chunks.length === 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#readers.push(resolve);
      this.#pendingRead = p;
      this.#serve();
    });
  }

  write(p: Uint8Array): Promise<number> {
    if (this.closed || this.peer.closed) return Promise.reject(new Error("connection closed"));
    const send = () => {
      this.written.push(p.slice());
      this.peer.#deliver(p);
    };
    if (!this.stalled) {
      send();
      return Promise.resolve(p.length);
    }
    return new Promise((resolve, reject) => {
      this.#stalledWrites.push(() => {
        if (this.closed || this.peer.closed) return reject(new Error("connection closed"));
        send();
        resolve(p.length);
      });
    });
  }

  /** Lets stalled writes through. */
  unstall(): void {
    this.stalled = false;
    for (const w of this.#stalledWrites.splice(0)) w();
  }

  closeWrite(): Promise<void> {
    this.peer.#eof = true;
    this.peer.#serve();
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#serve();
    for (const w of this.#stalledWrites.splice(0)) w();
    this.peer.#eof = true;
    this.peer.#serve();
    for (const w of this.peer.#stalledWrites.splice(0)) w();
  }

  /** Everything written by this end, as one array. */
  writtenBytes(): Uint8Array {
    const n = this.written.reduce((a, c) => a + c.length, 0);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.written) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

export function memoryConnPair(client: NetAddr, server: NetAddr): [MemoryConn, MemoryConn] {
  const a = new MemoryConn(client, server);
  const b = new MemoryConn(server, client);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** What a dial to an address does: hand the server end to a handler, refuse, or never complete. */
export type DialBehaviour = ((server: MemoryConn) => void) | "refuse" | "hang";

export class MemoryNet implements Net {
  readonly #targets = new Map<string, DialBehaviour>();
  /** Every dial, in order: host and port as asked (a name is "resolved" per dial). */
  readonly dials: { host: string; port: number }[] = [];
  #nextPort = 40000;

  constructor(readonly name = "memory") {}

  /** Sets what dialling host:port does. */
  on(host: string, port: number, behaviour: DialBehaviour): void {
    this.#targets.set(`${host}:${port}`, behaviour);
  }

  dialTcp(hostname: string, port: number, opts?: DialOptions): Promise<Conn> {
    this.dials.push({ host: hostname, port });
    const b = this.#targets.get(`${hostname}:${port}`) ?? "refuse";
    if (b === "refuse") return Promise.reject(new Error(`connection refused (${hostname}:${port})`));
    if (b === "hang") {
      return new Promise((_, reject) => {
        opts?.signal?.addEventListener("abort", () => reject(new Error("dial aborted")), { once: true });
      });
    }
    const [client, server] = memoryConnPair(
      { transport: "tcp", hostname: "127.0.0.1", port: this.#nextPort++ },
      { transport: "tcp", hostname, port },
    );
    b(server);
    return Promise.resolve(client);
  }

  listenTcp(_opts: ListenOptions): Listener {
    throw new Error("MemoryNet: listen not supported");
  }

  listenUdp(_opts: ListenOptions): DatagramConn {
    throw new Error("MemoryNet: UDP not supported");
  }
}
