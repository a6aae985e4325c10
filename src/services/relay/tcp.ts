/**
 * A TCP port relay: listen on one Net, and for every accepted client dial the target on the egress Net
 * (resolving the name again each time), then pipe() both ways with half-close carried. A failed dial closes
 * the client at once (it sees EOF rather than hanging) and is counted.
 */
import type { Conn, Listener, Net } from "../../net/types.ts";
import { pipe } from "../../net/pipe.ts";
import type { RelayOptions, RelaySpec } from "../../config/relay.ts";
import type { Logger } from "../../util/log.ts";
import { newRelayStats, type RelayStats } from "./stats.ts";
import { proxyV1Header, proxyV2Header } from "./proxy_protocol.ts";

export interface RelayDeps {
  /** Where the relay listens (host network). */
  listenNet: Net;
  /** Where the relay dials (host, socks5 or a tunnel). */
  egress: Net;
  log: Logger;
}

/** After an accept error other than "listener closed" (EMFILE...), wait before accepting again. */
const ACCEPT_BACKOFF_MS = 100;
const ACCEPT_BACKOFF_MAX_MS = 1000;

export class TcpRelay {
  readonly stats: RelayStats = newRelayStats();
  #listener?: Listener;
  readonly #conns = new Set<Conn>();
  readonly #abort = new AbortController();
  #acceptLoop?: Promise<void>;
  readonly #handlers = new Set<Promise<void>>();

  constructor(readonly spec: RelaySpec, readonly options: RelayOptions, private deps: RelayDeps) {}

  get listenAddr(): string {
    const a = this.#listener?.addr;
    if (!a) return `${this.spec.bind ?? "0.0.0.0"}:${this.spec.inPort}`;
    return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
  }

  /** Binds the port (throws if it cannot) and starts accepting. */
  start(): void {
    try {
      this.#listener = this.deps.listenNet.listenTcp({ hostname: this.spec.bind, port: this.spec.inPort });
    } catch (e) {
      this.stats.state = "error";
      this.stats.lastError = `listen ${this.listenAddr}: ${(e as Error).message}`;
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
        this.stats.lastError = `accept: ${(e as Error).message}`;
        this.deps.log.warn("accept failed", { relay: this.spec.id, error: (e as Error).message });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS);
        continue;
      }
      const h = this.#handle(client);
      this.#handlers.add(h);
      h.finally(() => this.#handlers.delete(h));
    }
  }

  async #handle(client: Conn): Promise<void> {
    const { spec, options, deps } = this;
    const started = Date.now();
    const clientAddr = client.remoteAddr;
    const peer = clientAddr.hostname.includes(":")
      ? `[${clientAddr.hostname}]:${clientAddr.port}`
      : `${clientAddr.hostname}:${clientAddr.port}`;
    this.stats.total++;
    this.stats.active++;
    this.#conns.add(client);
    let upstream: Conn | undefined;
    try {
      try {
        upstream = await deps.egress.dialTcp(spec.outHost, spec.outPort, {
          timeoutMs: options.connectTimeoutMs,
          signal: this.#abort.signal,
        });
      } catch (e) {
        this.stats.failed++;
        this.stats.lastError = (e as Error).message;
        if (options.logging) {
          deps.log.warn("connect failed", { relay: spec.id, client: peer, error: (e as Error).message });
        }
        return;
      }
      this.#conns.add(upstream);
      if (this.#abort.signal.aborted) return;
      if (spec.proxyProtocol) {
        const header = spec.proxyProtocol === "v1"
          ? proxyV1Header(clientAddr, client.localAddr)
          : proxyV2Header(clientAddr, client.localAddr);
        let off = 0;
        while (off < header.length) off += await upstream.write(header.subarray(off));
      }
      if (options.logging) {
        deps.log.info("open", { relay: spec.id, client: peer, target: `${spec.outHost}:${spec.outPort}` });
      }
      const counters = { aToB: 0, bToA: 0 };
      // Live totals: add the deltas to the relay's counters as they happen via a getter-backed object.
      const stats = this.stats;
      const live = {
        get aToB() {
          return counters.aToB;
        },
        set aToB(v: number) {
          stats.bytesToTarget += v - counters.aToB;
          counters.aToB = v;
        },
        get bToA() {
          return counters.bToA;
        },
        set bToA(v: number) {
          stats.bytesToClient += v - counters.bToA;
          counters.bToA = v;
        },
      };
      const res = await pipe(client, upstream, { counters: live, signal: this.#abort.signal });
      if (options.logging) {
        deps.log.info("close", {
          relay: spec.id,
          client: peer,
          bytes_to_target: res.aToB,
          bytes_to_client: res.bToA,
          duration_ms: Date.now() - started,
          ...(res.error ? { error: (res.error as Error).message ?? String(res.error) } : {}),
        });
      }
    } catch (e) {
      this.stats.lastError = (e as Error).message;
      if (options.logging) {
        deps.log.warn("connection error", { relay: spec.id, client: peer, error: String(e) });
      }
    } finally {
      this.stats.active--;
      this.#conns.delete(client);
      try {
        client.close();
      } catch { /* closed */ }
      if (upstream) {
        this.#conns.delete(upstream);
        try {
          upstream.close();
        } catch { /* closed */ }
      }
    }
  }

  /** Stops listening and closes every connection of this relay. */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#listener?.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#acceptLoop;
    await Promise.allSettled([...this.#handlers]);
    this.stats.state = "stopped";
  }
}
