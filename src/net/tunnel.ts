/**
 * The tunnel Net: TCP and UDP inside a WireGuard tunnel, through the userspace stack. Services use it like
 * the host Net. Names are resolved by the tunnel's resolver: its `DNS =` servers asked inside the tunnel
 * (net/dns.ts), or the OS resolver when the configuration names none.
 */
import type { Conn, DatagramConn, DialOptions, Listener, ListenOptions, Net } from "./types.ts";
import type { Stack } from "../netstack/stack.ts";
import { parseIp } from "../netstack/addr.ts";
import { osResolver, type Resolver, unbracket } from "./resolve.ts";
import { joinHostPort } from "../util/host_port.ts";

export class TunnelDialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TunnelDialError";
  }
}

export class TunnelNet implements Net {
  readonly name: string;
  resolver: Resolver = osResolver;

  constructor(readonly stack: Stack, tunnelName: string) {
    this.name = `wg:${tunnelName}`;
  }

  async dialTcp(hostname: string, port: number, opts: DialOptions = {}): Promise<Conn> {
    const host = unbracket(hostname);
    const addr = parseIp(host);
    if (!addr) return await this.#dialName(host, port, opts);
    const signal = opts.signal;
    if (signal?.aborted) {
      throw new TunnelDialError(`${this.name}: dial ${joinHostPort(hostname, port)} aborted`);
    }
    const dial = this.stack.dialTcp(addr, port, { timeoutMs: opts.timeoutMs });
    if (!signal) return await this.#named(dial, hostname, port);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () =>
        reject(new TunnelDialError(`${this.name}: dial ${joinHostPort(hostname, port)} aborted`));
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([this.#named(dial, hostname, port), aborted]);
    } catch (e) {
      // The handshake may still complete after an abort: close what it produces.
      dial.then((c) => c.close(), () => {});
      throw e;
    } finally {
      signal.removeEventListener("abort", onAbort!);
    }
  }

  /** Resolves, then dials each address in order (v4 answers first) until one connects. */
  async #dialName(host: string, port: number, opts: DialOptions): Promise<Conn> {
    let addrs: string[];
    try {
      addrs = await this.resolver.resolve(host);
    } catch (e) {
      throw new TunnelDialError(`${this.name}: ${(e as Error).message}`);
    }
    let first: unknown;
    for (const a of addrs) {
      if (opts.signal?.aborted) break;
      try {
        return await this.dialTcp(a, port, opts);
      } catch (e) {
        first ??= e;
      }
    }
    const why = first instanceof Error ? first.message : "dial aborted";
    throw new TunnelDialError(`${this.name}: ${host} (${addrs.join(", ")}): ${why}`);
  }

  async #named(dial: Promise<Conn>, hostname: string, port: number): Promise<Conn> {
    try {
      return await dial;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new TunnelDialError(`${this.name}: connect ${joinHostPort(hostname, port)}: ${msg}`);
    }
  }

  listenTcp(opts: ListenOptions): Listener {
    return this.stack.listenTcp(opts.hostname, opts.port);
  }

  listenUdp(opts: ListenOptions): DatagramConn {
    return this.stack.listenUdp(opts.hostname, opts.port);
  }
}
