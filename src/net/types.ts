/**
 * The one abstraction every service talks to. A relay is "listen on Net A, dial on Net B, pipe"; the host
 * provider wraps Deno sockets, the tunnel provider wraps the userspace TCP/IP stack on a WireGuard device,
 * the socks5 provider dials through a proxy. Connections are shaped like Deno.Conn so one pipe() serves all.
 */
import type { Resolver } from "./resolve.ts";

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

export interface Net {
  /** "host", "socks5://host:port", "wg:NAME" — shown in status and logs (never with credentials). */
  readonly name: string;
  dialTcp(hostname: string, port: number, opts?: DialOptions): Promise<Conn>;
  listenTcp(opts: ListenOptions): Listener;
  /** A UDP socket bound to hostname:port (port 0 = ephemeral). */
  listenUdp(opts: ListenOptions): DatagramConn;
  /**
   * Set when names must be resolved the Net's own way (a tunnel with `DNS =` servers asks them inside the
   * tunnel). dialTcp already uses it; code that sends datagrams to a name resolves with it first.
   */
  readonly resolver?: Resolver;
}
