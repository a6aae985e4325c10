/**
 * The one abstraction every service talks to. A relay is "listen on Net A, dial on Net B, pipe"; the host
 * provider wraps Deno sockets, the tunnel provider wraps the userspace TCP/IP stack on a WireGuard device,
 * the socks5 provider dials through a proxy. The connection types live in src/netstack/conn.ts (the stack
 * implements them and sits below net/) and are re-exported here, so importers take everything from this file.
 */
import type { Resolver } from "./resolve.ts";
import type { Conn, DatagramConn, DialOptions, Listener, ListenOptions } from "../netstack/conn.ts";

export type { Conn, DatagramConn, DialOptions, Listener, ListenOptions, NetAddr } from "../netstack/conn.ts";

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
  /**
   * Set only by the default host Net (plain kernel sockets, TCP_NODELAY and keepalive, the OS resolver): a
   * relay from the host to an IP address on the host may then open its sockets itself (sys/tcp_relay.ts).
   */
  readonly kernelSockets?: true;
}
