/**
 * A TCP port relay: listen on one Net, and for every accepted client dial the target on the egress Net
 * (resolving the name again each time), then pipe() both ways with half-close carried. A failed dial closes
 * the client at once (it sees EOF rather than hanging) and is counted.
 *
 * A relay from the host to an IP address on the host runs on the kernel-socket core instead
 * (sys/tcp_relay.ts: its own sockets in one epoll loop, no Deno op or promise per connection) where libc is
 * reachable; WGEDGE_TCP=deno keeps Deno's sockets, WGEDGE_TCP=ffi makes an unusable core an error. Relays
 * through a tunnel or a SOCKS5 proxy, or to a name, always take the Deno path.
 */
import type { Conn, Listener, Net, NetAddr } from "../../net/types.ts";
import { countersAddingTo, pipe } from "../../net/pipe.ts";
import type { RelayOptions, RelaySpec } from "../../config/relay.ts";
import type { Logger } from "../../util/log.ts";
import { newRelayStats, noteError, type RelayStats } from "./stats.ts";
import { type Clock, systemClock } from "../../util/clock.ts";
import { proxyV1Header, proxyV2Header } from "./proxy_protocol.ts";
import { joinHostPort } from "../../util/host_port.ts";
import {
  type SocketAddress,
  TCP_MODE_ENV,
  TcpRelayCore,
  tcpRelayCoreUnavailable,
  tcpRelayMode,
} from "../../sys/tcp_relay.ts";
import { formatIp, parseIp } from "../../netstack/addr.ts";
import { unbracket } from "../../net/resolve.ts";

export interface RelayDeps {
  /** Where the relay listens (host network). */
  listenNet: Net;
  /** Where the relay dials (host, socks5 or a tunnel). */
  egress: Net;
  log: Logger;
  /** When errors and successes happened (status shows their age); the system clock if not given. */
  clock?: Clock;
}

/** After an accept error other than "listener closed" (EMFILE...), wait before accepting again. */
const ACCEPT_BACKOFF_MS = 100;
const ACCEPT_BACKOFF_MAX_MS = 1000;

export class TcpRelay {
  readonly stats: RelayStats = newRelayStats();
  #listener?: Listener;
  /** Set when the relay runs on the kernel-socket core instead of #listener. */
  #core?: TcpRelayCore;
  readonly #conns = new Set<Conn>();
  readonly #abort = new AbortController();
  #acceptLoop?: Promise<void>;
  /** Connections being handled, and what stop() waits on until the last one is done. */
  #handling = 0;
  #allHandled?: () => void;
  /** Bytes of every connection, live: pipe() adds to them; stats.bytesToTarget/bytesToClient read them. */
  readonly #bytes = { aToB: 0, bToA: 0 };

  readonly #clock: Clock;

  constructor(readonly spec: RelaySpec, readonly options: RelayOptions, private deps: RelayDeps) {
    this.#clock = deps.clock ?? systemClock;
    const bytes = this.#bytes;
    Object.defineProperties(this.stats, {
      bytesToTarget: { get: () => bytes.aToB, enumerable: true },
      bytesToClient: { get: () => bytes.bToA, enumerable: true },
    });
  }

  /** "kernel" when the relay runs on the kernel-socket core, "deno" on Deno's sockets. */
  get engine(): "kernel" | "deno" {
    return this.#core ? "kernel" : "deno";
  }

  get listenAddr(): string {
    if (this.#core) return joinHostPort(this.spec.bind ?? "0.0.0.0", this.#core.port);
    const a = this.#listener?.addr;
    if (!a) return joinHostPort(this.spec.bind ?? "0.0.0.0", this.spec.inPort);
    return joinHostPort(a.hostname, a.port);
  }

  /** Binds the port (throws if it cannot) and starts accepting. */
  start(): void {
    if (this.#startCore()) return;
    try {
      this.#listener = this.deps.listenNet.listenTcp({ hostname: this.spec.bind, port: this.spec.inPort });
    } catch (e) {
      this.stats.state = "error";
      noteError(this.stats, `listen ${this.listenAddr}: ${(e as Error).message}`, this.#clock.wallMs());
      throw new Error(`${this.spec.id}: ${this.stats.lastError}`);
    }
    this.stats.state = "listening";
    this.#acceptLoop = this.#accept(this.#listener);
  }

  async #accept(listener: Listener): Promise<void> {
    let backoff = ACCEPT_BACKOFF_MS;
    while (!this.#abort.signal.aborted) {
      let client: Conn;
      try {
        client = await listener.accept();
        backoff = ACCEPT_BACKOFF_MS;
      } catch (e) {
        if (this.#abort.signal.aborted || e instanceof Deno.errors.BadResource) break;
        noteError(this.stats, `accept: ${(e as Error).message}`, this.#clock.wallMs());
        this.deps.log.warn("accept failed", { relay: this.spec.id, error: (e as Error).message });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS);
        continue;
      }
      this.#handling++;
      this.#handle(client);
    }
  }

  /**
   * One connection: dial, pipe, done. Kept cheap because it runs per connection (issue 14): no per-connection
   * log fields or strings unless logging is on, no abort listener (stop() closes the connections itself), one
   * close per socket (pipe() closes both once it has them; closing again only builds a BadResource error).
   */
  async #handle(client: Conn): Promise<void> {
    const { spec, options, deps } = this;
    const logging = options.logging;
    const started = logging ? Date.now() : 0;
    const stats = this.stats;
    stats.total++;
    stats.active++;
    this.#conns.add(client);
    let upstream: Conn | undefined;
    let piped = false;
    try {
      try {
        upstream = await deps.egress.dialTcp(spec.outHost, spec.outPort, {
          timeoutMs: options.connectTimeoutMs,
          signal: this.#abort.signal,
        });
      } catch (e) {
        stats.failed++;
        noteError(stats, (e as Error).message, this.#clock.wallMs());
        if (logging) {
          deps.log.warn("connect failed", {
            relay: spec.id,
            client: peerOf(client),
            error: (e as Error).message,
          });
        }
        return;
      }
      stats.lastSuccessMs = this.#clock.wallMs();
      this.#conns.add(upstream);
      if (this.#abort.signal.aborted) return;
      if (spec.proxyProtocol) {
        const header = spec.proxyProtocol === "v1"
          ? proxyV1Header(client.remoteAddr, client.localAddr)
          : proxyV2Header(client.remoteAddr, client.localAddr);
        let off = 0;
        while (off < header.length) off += await upstream.write(header.subarray(off));
      }
      if (logging) {
        deps.log.info("open", {
          relay: spec.id,
          client: peerOf(client),
          target: joinHostPort(spec.outHost, spec.outPort),
        });
      }
      piped = true;
      // pipe() adds to the relay-wide counters directly; only the close log needs this connection's own.
      const res = await pipe(client, upstream, {
        counters: logging ? countersAddingTo(this.#bytes) : this.#bytes,
      });
      if (logging) {
        deps.log.info("close", {
          relay: spec.id,
          client: peerOf(client),
          bytes_to_target: res.aToB,
          bytes_to_client: res.bToA,
          duration_ms: Date.now() - started,
          ...(res.error ? { error: (res.error as Error).message ?? String(res.error) } : {}),
        });
      }
    } catch (e) {
      noteError(stats, (e as Error).message, this.#clock.wallMs());
      if (logging) {
        deps.log.warn("connection error", { relay: spec.id, client: peerOf(client), error: String(e) });
      }
    } finally {
      stats.active--;
      this.#conns.delete(client);
      if (upstream) this.#conns.delete(upstream);
      if (!piped) {
        closeQuietly(client);
        if (upstream) closeQuietly(upstream);
      }
      if (--this.#handling === 0) this.#allHandled?.();
    }
  }

  /**
   * Runs the relay on the kernel-socket core when it can: host to an IP address on the host, libc reachable,
   * WGEDGE_TCP not "deno". False means the Deno path; a bind failure throws as it does there.
   */
  #startCore(): boolean {
    const { spec, options, deps } = this;
    const mode = tcpRelayMode();
    if (mode === "deno") return false;
    const target = ipBytes(spec.outHost);
    const bind = spec.bind === undefined ? new Uint8Array(4) : ipBytes(spec.bind);
    if (!deps.listenNet.kernelSockets || !deps.egress.kernelSockets || !target || !bind) return false;
    const unavailable = tcpRelayCoreUnavailable();
    if (unavailable) {
      if (mode === "ffi") throw new Error(`${spec.id}: ${TCP_MODE_ENV}=ffi: ${unavailable}`);
      return false;
    }
    const stats = this.stats;
    const clock = this.#clock;
    const logging = options.logging;
    const log = deps.log;
    const targetText = joinHostPort(spec.outHost, spec.outPort);
    const proxy = spec.proxyProtocol;
    let core: TcpRelayCore;
    try {
      core = new TcpRelayCore({
        bind,
        port: spec.inPort,
        target,
        targetPort: spec.outPort,
        connectTimeoutMs: options.connectTimeoutMs,
        keepalive: {
          idleSec: options.keepAliveIdleSec,
          intervalSec: options.keepAliveIntervalSec,
          count: options.keepAliveCount,
        },
        clock,
        counters: this.#bytes,
        wantClientAddress: logging || proxy !== undefined,
        header: proxy
          ? (client, local) =>
            proxy === "v1"
              ? proxyV1Header(netAddr(client), netAddr(local))
              : proxyV2Header(netAddr(client), netAddr(local))
          : undefined,
        onDialed: logging
          ? (c) => {
            stats.lastSuccessMs = clock.wallMs();
            log.info("open", { relay: spec.id, client: addressText(c.client), target: targetText });
          }
          : () => {
            stats.lastSuccessMs = clock.wallMs();
          },
        onDialFailed: (message, client) => {
          stats.failed++;
          noteError(stats, `connect ${targetText}: ${message}`, clock.wallMs());
          if (logging) {
            log.warn("connect failed", {
              relay: spec.id,
              client: addressText(client),
              error: stats.lastError,
            });
          }
        },
        onClosed: logging
          ? (c, error) =>
            log.info("close", {
              relay: spec.id,
              client: addressText(c.client),
              bytes_to_target: c.bytesToTarget,
              bytes_to_client: c.bytesToClient,
              duration_ms: Math.round(clock.now() - c.openedMs),
              ...(error ? { error } : {}),
            })
          : undefined,
        onAcceptError: (message) => {
          noteError(stats, message, clock.wallMs());
          log.warn("accept failed", { relay: spec.id, error: message });
        },
      });
    } catch (e) {
      stats.state = "error";
      noteError(stats, `listen ${this.listenAddr}: ${(e as Error).message}`, clock.wallMs());
      throw new Error(`${spec.id}: ${stats.lastError}`);
    }
    Object.defineProperties(stats, {
      active: { get: () => core.active, enumerable: true, configurable: true },
      total: { get: () => core.accepted, enumerable: true, configurable: true },
    });
    core.start();
    this.#core = core;
    stats.state = "listening";
    return true;
  }

  /** Stops listening and closes every connection of this relay. */
  async stop(): Promise<void> {
    if (this.#core) {
      await this.#core.stop();
      this.stats.state = "stopped";
      return;
    }
    this.#abort.abort();
    this.#listener?.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#acceptLoop;
    if (this.#handling > 0) await new Promise<void>((r) => this.#allHandled = r);
    this.stats.state = "stopped";
  }
}

function closeQuietly(c: Conn): void {
  try {
    c.close();
  } catch { /* closed */ }
}

/** The client's address as logs show it. */
function peerOf(c: Conn): string {
  const a = c.remoteAddr;
  return joinHostPort(a.hostname, a.port);
}

/** The 4 or 16 bytes of an IP literal (brackets allowed), or undefined for a name. */
function ipBytes(host: string): Uint8Array | undefined {
  return parseIp(unbracket(host)) ?? undefined;
}

/** A kernel-socket address as logs show it. */
function addressText(a: SocketAddress): string {
  return joinHostPort(formatIp(a.address), a.port);
}

function netAddr(a: SocketAddress): NetAddr {
  return { transport: "tcp", hostname: formatIp(a.address), port: a.port };
}
