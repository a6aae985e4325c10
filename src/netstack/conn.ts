/**
 * The connection types every Net hands out: a byte stream (Conn), a listener of them, an unconnected UDP
 * socket (DatagramConn), their addresses, and the dial/listen options. They live here, in the lowest layer
 * that implements them, because the userspace stack's TCP connections, listeners and UDP sockets are these
 * objects and netstack may not import from net/; `src/net/types.ts` re-exports them beside the `Net`
 * interface, so services keep importing everything from there. Connections are shaped like Deno.Conn so one
 * pipe() serves host sockets and tunnel sockets alike.
 */

export interface NetAddr {
  transport: "tcp" | "udp";
  /** Literal IP address (IPv6 without brackets). */
  hostname: string;
  port: number;
}

/** A byte stream (TCP connection) — the subset of Deno.Conn that services use. */
export interface Conn {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  /** Reads into p; resolves the byte count, or null at end of stream (peer's FIN). */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of p (at least 1 byte unless p is empty); waits while the send buffer is full. */
  write(p: Uint8Array): Promise<number>;
  /** Sends FIN: no more writes, reads continue (half-close). */
  closeWrite(): Promise<void>;
  /** Closes both directions and frees resources. Idempotent. */
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
  setKeepAlive?(keepAlive?: boolean): void;
}

export interface Listener extends AsyncIterable<Conn> {
  readonly addr: NetAddr;
  accept(): Promise<Conn>;
  close(): void;
}

/** An unconnected UDP socket. */
export interface DatagramConn {
  readonly addr: NetAddr;
  send(data: Uint8Array, to: NetAddr): Promise<number>;
  /** Resolves the next datagram and its source; rejects once closed. */
  receive(): Promise<[Uint8Array, NetAddr]>;
  close(): void;
  /**
   * Datagrams this socket dropped after send() resolved or before receive() saw them (a batched socket's full
   * receive queue, a send the kernel refused in a batch); absent where every loss is reported to the caller.
   */
  readonly dropped?: number;
}

export interface DialOptions {
  /** Milliseconds before the dial fails; default: the provider's own (host: OS default). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ListenOptions {
  hostname?: string;
  port: number;
}
