/**
 * The tunnel Net: TCP and UDP inside a WireGuard tunnel, through the userspace stack. Services use it like
 * the host Net; only literal IP addresses inside the tunnel can be dialled (no DNS over the tunnel yet).
 */
import type { Conn, DatagramConn, DialOptions, Listener, ListenOptions, Net } from "./types.ts";
import type { Stack } from "../netstack/stack.ts";
import { parseIp } from "../netstack/addr.ts";

export class TunnelDialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TunnelDialError";
  }
}

function unbracket(h: string): string {
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

export class TunnelNet implements Net {
  readonly name: string;

  constructor(readonly stack: Stack, tunnelName: string) {
    this.name = `wg:${tunnelName}`;
  }

  async dialTcp(hostname: string, port: number, opts: DialOptions = {}): Promise<Conn> {
    const host = unbracket(hostname);
    const addr = parseIp(host);
    if (!addr) {
      throw new TunnelDialError(
        `${this.name}: cannot dial "${hostname}": inside a tunnel only literal IP addresses can be dialled ` +
          `(name resolution through the tunnel is not supported)`,
      );
    }
    const signal = opts.signal;
    if (signal?.aborted) throw new TunnelDialError(`${this.name}: dial ${hostname}:${port} aborted`);
    const dial = this.stack.dialTcp(addr, port, { timeoutMs: opts.timeoutMs });
    if (!signal) return await this.#named(dial, hostname, port);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new TunnelDialError(`${this.name}: dial ${hostname}:${port} aborted`));
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

  async #named(dial: Promise<Conn>, hostname: string, port: number): Promise<Conn> {
    try {
      return await dial;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new TunnelDialError(`${this.name}: connect ${hostname}:${port}: ${msg}`);
    }
  }

  listenTcp(opts: ListenOptions): Listener {
    return this.stack.listenTcp(opts.hostname, opts.port);
  }

  listenUdp(opts: ListenOptions): DatagramConn {
    return this.stack.listenUdp(opts.hostname, opts.port);
  }
}
