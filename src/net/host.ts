/**
 * The host Net: plain OS sockets (Deno.connect / Deno.listen / Deno.listenDatagram; UDP sockets move
 * datagrams in recvmmsg/sendmmsg batches where libc is reachable, see host_udp.ts).
 *
 * Dials honour a connect timeout through an AbortSignal, set TCP_NODELAY (relays forward interactive
 * protocols: stratum, SSH, SMTP) and SO_KEEPALIVE (dead peers behind NAT are found by the kernel). Names are
 * resolved on every dial: by the OS inside Deno.connect (Happy Eyeballs) unless a Resolver is injected, in
 * which case each returned address is tried in order within the same deadline.
 */
import type { Conn, DatagramConn, DialOptions, Listener, ListenOptions, Net, NetAddr } from "./types.ts";
import { type Resolver, unbracket } from "./resolve.ts";
import { listenHostUdp } from "./host_udp.ts";
import { setListenerNoDelayKeepAlive } from "../sys/tcp_listener.ts";
import { joinHostPort } from "../util/host_port.ts";

export interface HostNetOptions {
  /** Resolve names with this instead of the OS (tests, fixed tables). */
  resolver?: Resolver;
  /** TCP_NODELAY on dialled and accepted connections (default true). */
  noDelay?: boolean;
  /** SO_KEEPALIVE on dialled and accepted connections (default true). */
  keepAlive?: boolean;
}

export class DialError extends Error {
  constructor(
    readonly target: string,
    readonly reason: "timeout" | "refused" | "resolve" | "other",
    cause?: unknown,
  ) {
    super(
      `connect ${target}: ${
        reason === "timeout" ? "timed out" : cause instanceof Error ? cause.message : String(cause ?? reason)
      }`,
    );
    this.name = "DialError";
  }
}

function formatTarget(host: string, port: number): string {
  return joinHostPort(host, port);
}

function toNetAddr(a: Deno.Addr, transport: "tcp" | "udp"): NetAddr {
  if (a.transport === "tcp" || a.transport === "udp") {
    return { transport, hostname: a.hostname, port: a.port };
  }
  return { transport, hostname: "", port: 0 };
}

let keepaliveTunedCount = 0;

/**
 * How many host sockets have had SO_KEEPALIVE switched on so far (a change counter): HostKeepalive walks the
 * process's descriptors only when this moved, not every second while nothing new was opened.
 */
export function keepaliveSocketsTuned(): number {
  return keepaliveTunedCount;
}

function tune(c: Deno.TcpConn, opts: HostNetOptions): void {
  try {
    if (opts.noDelay !== false) c.setNoDelay(true);
    if (opts.keepAlive !== false) {
      c.setKeepAlive(true);
      keepaliveTunedCount++;
    }
  } catch {
    // The socket may already be reset by the peer; the first read/write reports it.
  }
}

function classify(e: unknown): "timeout" | "refused" | "other" {
  if (e instanceof Deno.errors.ConnectionRefused) return "refused";
  if (e instanceof Deno.errors.TimedOut) return "timeout";
  return "other";
}

class HostListener implements Listener {
  readonly addr: NetAddr;
  /**
   * True when the listening socket itself has TCP_NODELAY and SO_KEEPALIVE (set through libc), which Linux
   * copies to every accepted socket: accept() then skips two setsockopt ops per connection.
   */
  readonly #inherits: boolean;
  constructor(private inner: Deno.TcpListener, private opts: HostNetOptions) {
    this.addr = toNetAddr(inner.addr, "tcp");
    this.#inherits = opts.noDelay !== false && opts.keepAlive !== false &&
      setListenerNoDelayKeepAlive(this.addr.port);
  }
  async accept(): Promise<Conn> {
    const c = await this.inner.accept();
    if (this.#inherits) keepaliveTunedCount++; // a new keepalive socket, for the timings sweep
    else tune(c, this.opts);
    return c;
  }
  close(): void {
    try {
      this.inner.close();
    } catch {
      // already closed
    }
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Conn> {
    for (;;) {
      let c: Conn;
      try {
        c = await this.accept();
      } catch (e) {
        if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        throw e;
      }
      yield c;
    }
  }
}

export function createHostNet(opts: HostNetOptions = {}): Net {
  async function connectOnce(
    hostname: string,
    port: number,
    signal: AbortSignal | undefined,
  ): Promise<Deno.TcpConn> {
    return await Deno.connect({ hostname, port, transport: "tcp", signal });
  }

  async function dialAll(
    host: string,
    port: number,
    target: string,
    signal: AbortSignal,
    timedOut: () => boolean,
  ): Promise<Conn> {
    let addrs: string[] = [host];
    if (opts.resolver) {
      try {
        addrs = await opts.resolver.resolve(host);
      } catch (e) {
        throw new DialError(target, "resolve", e);
      }
    }
    let last: unknown;
    for (const addr of addrs) {
      if (signal.aborted) break;
      try {
        const c = await connectOnce(addr, port, signal);
        tune(c, opts);
        return c;
      } catch (e) {
        last = e;
      }
    }
    if (timedOut()) throw new DialError(target, "timeout");
    if (signal.aborted) throw new DialError(target, "other", new Error("aborted"));
    throw new DialError(target, classify(last), last);
  }

  const plain = opts.noDelay !== false && opts.keepAlive !== false && !opts.resolver;
  return {
    name: "host",
    ...(plain ? { kernelSockets: true as const } : {}),
    async dialTcp(hostname: string, port: number, dial: DialOptions = {}): Promise<Conn> {
      const host = unbracket(hostname);
      const target = formatTarget(host, port);
      // One controller per dial, aborted by the timeout or the caller's signal. (AbortSignal.any would tie
      // every dial to a relay-lifetime signal; this keeps nothing registered once the dial is over.)
      const ac = new AbortController();
      let timedOutFlag = false;
      const timer = dial.timeoutMs && dial.timeoutMs > 0
        ? setTimeout(() => {
          timedOutFlag = true;
          ac.abort();
        }, dial.timeoutMs)
        : undefined;
      const onAbort = () => ac.abort();
      if (dial.signal?.aborted) ac.abort();
      dial.signal?.addEventListener("abort", onAbort, { once: true });
      const signal = ac.signal;
      const timedOut = () => timedOutFlag;
      try {
        return await dialAll(host, port, target, signal, timedOut);
      } finally {
        if (timer !== undefined) clearTimeout(timer);
        dial.signal?.removeEventListener("abort", onAbort);
      }
    },
    listenTcp(l: ListenOptions): Listener {
      const hostname = unbracket(l.hostname ?? "0.0.0.0");
      return new HostListener(Deno.listen({ hostname, port: l.port, transport: "tcp" }), opts);
    },
    listenUdp(l: ListenOptions): DatagramConn {
      return listenHostUdp(unbracket(l.hostname ?? "0.0.0.0"), l.port);
    },
  };
}

/** The default host Net (OS resolver, nodelay + keepalive). */
export const hostNet: Net = createHostNet();
