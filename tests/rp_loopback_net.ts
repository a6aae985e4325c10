/**
 * A stand-in "tunnel" for rp tests: real loopback sockets, with tunnel identities 127.0.0.x.
 *
 * rps needs the tunnel source address of each API caller. On loopback every connection comes from 127.0.0.1
 * (Deno.connect cannot pick a source address), so a client node records "my connection from local port P is
 * identity X" in a shared table and the server node's accepted connections report remoteAddr X. Everything
 * else — listeners on 127.0.0.x, dials to 127.0.0.x, UDP — is plain kernel loopback.
 */
import type {
  Conn,
  DatagramConn,
  DialOptions,
  Listener,
  ListenOptions,
  Net,
  NetAddr,
} from "../src/net/types.ts";
import { createHostNet } from "../src/net/host.ts";

export class LoopbackTunnel {
  readonly identities = new Map<number, string>();
  readonly host = createHostNet();

  /** The Net of a tunnel peer whose address is `ip` (a 127.0.0.x address). */
  node(ip: string): Net {
    const host = this.host;
    const identities = this.identities;
    return {
      name: `loop:${ip}`,
      async dialTcp(hostname: string, port: number, opts?: DialOptions): Promise<Conn> {
        const c = await host.dialTcp(hostname, port, opts);
        identities.set(c.localAddr.port, ip);
        const localAddr: NetAddr = { ...c.localAddr, hostname: ip };
        return wrapConn(c, localAddr, () => c.remoteAddr, () => identities.delete(c.localAddr.port));
      },
      listenTcp(opts: ListenOptions): Listener {
        const inner = host.listenTcp({ hostname: opts.hostname ?? ip, port: opts.port });
        const accept = async (): Promise<Conn> => {
          const c = await inner.accept();
          // Looked up when read: the dialler records its identity right after its connect resolves, which
          // may be after this accept.
          const remote = () => ({
            ...c.remoteAddr,
            hostname: identities.get(c.remoteAddr.port) ?? c.remoteAddr.hostname,
          });
          return wrapConn(c, c.localAddr, remote);
        };
        return {
          addr: inner.addr,
          accept,
          close: () => inner.close(),
          async *[Symbol.asyncIterator]() {
            for (;;) yield await accept();
          },
        };
      },
      listenUdp(opts: ListenOptions): DatagramConn {
        return host.listenUdp({ hostname: opts.hostname ?? ip, port: opts.port });
      },
    };
  }
}

function wrapConn(c: Conn, localAddr: NetAddr, remoteAddr: () => NetAddr, onClose?: () => void): Conn {
  return {
    localAddr,
    get remoteAddr() {
      return remoteAddr();
    },
    read: (p) => c.read(p),
    write: (p) => c.write(p),
    closeWrite: () => c.closeWrite(),
    close() {
      onClose?.();
      c.close();
    },
  };
}

/** A free TCP+UDP port, reserved against parallel test files (helpers/ports.ts says why). */
export { freePort } from "./helpers/ports.ts";
