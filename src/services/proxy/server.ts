/**
 * One proxy: a listener on the host, the accept loop with its connection limit, and per connection the
 * handshake bound and the session (stats, credentials, the tunnel to dial) handed to the protocol: SOCKS5
 * (socks5.ts) or HTTP (http_proxy.ts). `up` runs these directly on its tunnel; `serve` through starter.ts.
 */
import type { ProxySpec } from "../../config/proxy.ts";
import type { Conn, Listener, Net } from "../../net/types.ts";
import { countersAddingTo, pipe, type PipeCounters, writeAll } from "../../net/pipe.ts";
import type { ConnReader } from "../../net/http1.ts";
import type { Clock, TimerHandle } from "../../util/clock.ts";
import { type Logger, logger } from "../../util/log.ts";
import { joinHostPort } from "../../util/host_port.ts";
import { Credentials } from "./auth.ts";
import { newProxyStats, noteProxyError, type ProxyStats } from "./report.ts";
import { serveSocks5 } from "./socks5.ts";
import { serveHttpProxy } from "./http_proxy.ts";

export interface ProxyDeps {
  /** The Net the proxy listens on, and opens SOCKS5 UDP relay sockets on (the host). */
  host: Net;
  /** The Net every dial goes through (the tunnel; its resolver asks the tunnel's `DNS =` servers). */
  egress: Net;
  clock: Clock;
  log?: Logger;
}

/** What a protocol handler gets for one client connection. */
export interface ProxySession {
  readonly spec: ProxySpec;
  readonly credentials?: Credentials;
  readonly stats: ProxyStats;
  readonly host: Net;
  readonly egress: Net;
  readonly clock: Clock;
  readonly log: Logger;
  /** Aborted when the proxy stops: pipes and associations end. */
  readonly signal: AbortSignal;
  /** The request is through (authenticated, target dialled): the handshake bound no longer applies. */
  handshakeDone(): void;
  /** Counters for pipe() that add to the proxy's byte counts live (a = client, b = target). */
  byteCounters(): PipeCounters;
  /**
   * The request is through and `target` dialled (its reply already written): ends the handshake bound, sends
   * what the client wrote after its request (already in `reader`), then carries bytes both ways to the end.
   */
  splice(client: Conn, reader: ConnReader, target: Conn): Promise<void>;
}

export class ProxyServer {
  readonly stats: ProxyStats = newProxyStats();
  readonly #abort = new AbortController();
  readonly #live = new Set<Promise<void>>();
  readonly #credentials?: Credentials;
  readonly #log: Logger;
  #listener?: Listener;
  #acceptLoop?: Promise<void>;

  constructor(readonly spec: ProxySpec, readonly deps: ProxyDeps) {
    this.#credentials = Credentials.of(spec);
    this.#log = deps.log ?? logger("proxy");
  }

  /** The bound address (the port when 0 was asked in tests). */
  get addr() {
    return this.#listener?.addr;
  }

  /** Listens (throws when the address is busy) and accepts until stop(). */
  start(listener?: Listener): void {
    try {
      this.#listener = listener ??
        this.deps.host.listenTcp({ hostname: this.spec.hostname, port: this.spec.port });
    } catch (e) {
      this.stats.state = "error";
      noteProxyError(
        this.stats,
        `listen ${this.spec.listen}: ${(e as Error).message}`,
        this.deps.clock.wallMs(),
      );
      throw new Error(`${this.spec.id}: ${this.stats.lastError}`);
    }
    this.#acceptLoop = this.#accept(this.#listener);
  }

  async #accept(listener: Listener): Promise<void> {
    for (;;) {
      let conn: Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (!this.#abort.signal.aborted) {
          this.#log.debug("listener stopped", { proxy: this.spec.id, error: e });
        }
        return;
      }
      if (this.stats.open >= this.spec.maxConnections) {
        this.stats.refused++;
        this.#log.debug("connection limit reached; closing", { proxy: this.spec.id, open: this.stats.open });
        conn.close();
        continue;
      }
      const p = this.serveConn(conn).finally(() => this.#live.delete(p));
      this.#live.add(p);
    }
  }

  /** Serves one client connection to the end (the accept loop's body; tests call it with in-memory conns). */
  async serveConn(conn: Conn): Promise<void> {
    const { stats, spec, deps } = this;
    stats.open++;
    stats.total++;
    const clock = deps.clock;
    let timer: TimerHandle | undefined = clock.setTimer(() => {
      timer = undefined;
      stats.handshakeTimeouts++;
      conn.close();
    }, spec.handshakeTimeoutMs);
    const onAbort = () => conn.close();
    this.#abort.signal.addEventListener("abort", onAbort, { once: true });
    const session: ProxySession = {
      spec,
      credentials: this.#credentials,
      stats,
      host: deps.host,
      egress: deps.egress,
      clock,
      log: this.#log,
      signal: this.#abort.signal,
      handshakeDone() {
        clock.clearTimer(timer);
        timer = undefined;
      },
      byteCounters: () => countersAddingTo(stats.bytes),
      async splice(client, reader, target) {
        this.handshakeDone();
        const counters = this.byteCounters();
        if (reader.buffered > 0) {
          const early = await reader.readExact(reader.buffered);
          await writeAll(target, early);
          counters.aToB += early.length;
        }
        await pipe(client, target, { counters, signal: this.signal });
      },
    };
    try {
      if (spec.protocol === "socks5") await serveSocks5(conn, session);
      else await serveHttpProxy(conn, session);
    } catch (e) {
      this.#log.debug("client connection ended", { proxy: spec.id, error: e });
    } finally {
      clock.clearTimer(timer);
      this.#abort.signal.removeEventListener("abort", onAbort);
      try {
        conn.close();
      } catch { /* already closed */ }
      stats.open--;
    }
  }

  /** Stops accepting and closes every connection (and UDP association); resolves when all are done. */
  async stop(): Promise<void> {
    this.#abort.abort();
    try {
      this.#listener?.close();
    } catch { /* already closed */ }
    await this.#acceptLoop;
    await Promise.allSettled([...this.#live]);
    this.stats.state = "stopped";
  }
}

/**
 * `up`'s proxies: each on the one tunnel it brought up (`via=wg:main`; another tunnel is serve's business).
 * Started in order; throws (after stopping those already started) when one cannot listen.
 */
export function startProxies(specs: readonly ProxySpec[], deps: ProxyDeps): ProxyServer[] {
  const log = deps.log ?? logger("proxy");
  const started: ProxyServer[] = [];
  try {
    for (const spec of specs) {
      if (spec.via !== "wg:main") {
        throw new Error(
          `${spec.id}: via=${spec.via}: up runs proxies on its own tunnel only (wg:main); use serve`,
        );
      }
      const server = new ProxyServer(spec, { ...deps, log });
      server.start();
      started.push(server);
      log.info("proxy listening", {
        proxy: spec.id,
        protocol: spec.protocol,
        listen: server.addr ? joinHostPort(server.addr.hostname, server.addr.port) : spec.listen,
        userRequired: spec.user !== undefined,
      });
    }
  } catch (e) {
    for (const s of started) s.stop();
    throw e;
  }
  return started;
}
