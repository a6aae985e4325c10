/**
 * A UDP port relay with a flow table, like conntrack: the first datagram from a client address creates a flow
 * with its own upstream socket (so the target sees one stable source per client and replies can be told
 * apart); replies from the target go back to that client from the relay's own port. Flows expire after
 * `udp_timeout` seconds without traffic (timers from an injected Clock), and the table is bounded: when full,
 * the least recently active flow is evicted (counted) so a flood of new source ports cannot exhaust sockets.
 *
 * On the host's sockets (net/host_udp.ts) the relay runs in their push form: a datagram is handed over as a
 * view into the receive batch and forwarded by a staged send, with no promise per datagram, and its flow is
 * found by the source's address object (the socket hands out one per source) rather than a key string. On
 * any other Net (a tunnel's) it reads and sends through the DatagramConn promises.
 */
import type { DatagramConn, Net, NetAddr } from "../../net/types.ts";
import type { RelayOptions, RelaySpec } from "../../config/relay.ts";
import type { Logger } from "../../util/log.ts";
import type { Clock, TimerHandle } from "../../util/clock.ts";
import { isIpv6Literal, type Resolver } from "../../net/resolve.ts";
import { newRelayStats, noteError, type RelayStats } from "./stats.ts";
import { joinHostPort } from "../../util/host_port.ts";
import type { HostUdpConn } from "../../net/host_udp.ts";

export interface UdpRelayDeps {
  listenNet: Net;
  egress: Net;
  resolver: Resolver;
  clock: Clock;
  log: Logger;
}

/** Datagrams held for a flow while its target name resolves; more are dropped (and counted). */
export const MAX_PENDING_DATAGRAMS = 16;
/** Activity refreshes a flow's place in the eviction order at most this often (saves a Map delete+set per packet). */
const LRU_REFRESH_MS = 1000;

interface Flow {
  key: string;
  client: NetAddr;
  upstream?: DatagramConn;
  /** The upstream socket's push form, when it has one and the relay's socket has one too. */
  upstreamPush?: HostUdpConn;
  target?: NetAddr;
  pending: Uint8Array[] | null;
  lastActive: number;
  lastRefreshed: number;
  createdMs: number;
  bytesToTarget: number;
  bytesToClient: number;
  closed: boolean;
}

function flowKey(a: NetAddr): string {
  return `${a.hostname}|${a.port}`;
}

/** A host socket's push form (listen/sendNow), or undefined for a socket that has only the promises. */
function pushForm(conn: DatagramConn): HostUdpConn | undefined {
  return "listen" in conn && "sendNow" in conn ? conn as HostUdpConn : undefined;
}

export class UdpRelay {
  readonly stats: RelayStats = newRelayStats();
  /** Map order = least recently active first (refreshed at most every LRU_REFRESH_MS). */
  readonly #flows = new Map<string, Flow>();
  #socket?: DatagramConn;
  #socketPush?: HostUdpConn;
  /** Push form: flows by the source's address object (the socket hands out one object per source). */
  #flowOf = new WeakMap<NetAddr, Flow>();
  #sweepTimer?: TimerHandle;
  #stopped = false;
  #receiveLoop?: Promise<void>;
  readonly #upstreamLoops = new Set<Promise<void>>();
  /** Socket-level drops of flows already closed (see DatagramConn.dropped). */
  #closedFlowDrops = 0;

  constructor(readonly spec: RelaySpec, readonly options: RelayOptions, private deps: UdpRelayDeps) {}

  /**
   * Every datagram this relay dropped: what it counted itself (full pending queue, failed sends, no flow) plus
   * what its sockets dropped after accepting (batched sockets queue sends and bound their receive queues).
   */
  packetsDropped(): number {
    let n = this.stats.packetsDropped + this.#closedFlowDrops + (this.#socket?.dropped ?? 0);
    for (const f of this.#flows.values()) n += f.upstream?.dropped ?? 0;
    return n;
  }

  get listenAddr(): string {
    const a = this.#socket?.addr;
    if (!a) return joinHostPort(this.spec.bind ?? "0.0.0.0", this.spec.inPort);
    return joinHostPort(a.hostname, a.port);
  }

  get flowCount(): number {
    return this.#flows.size;
  }

  get #timeoutMs(): number {
    return this.spec.udpTimeoutSec * 1000;
  }

  start(): void {
    try {
      this.#socket = this.deps.listenNet.listenUdp({ hostname: this.spec.bind, port: this.spec.inPort });
    } catch (e) {
      this.stats.state = "error";
      noteError(
        this.stats,
        `listen ${this.listenAddr}/udp: ${(e as Error).message}`,
        this.deps.clock.wallMs(),
      );
      throw new Error(`${this.spec.id}: ${this.stats.lastError}`);
    }
    this.stats.state = "listening";
    this.#armSweep();
    this.#socketPush = pushForm(this.#socket);
    this.#receiveLoop = this.#socketPush
      ? this.#socketPush.listen((data, from) => this.#fromClientView(data, from))
      : this.#receive(this.#socket);
  }

  #armSweep(): void {
    // Sweep often enough that a flow lives at most ~1.25x its timeout, and not more than once a second.
    const every = Math.max(1000, Math.floor(this.#timeoutMs / 4));
    this.#sweepTimer = this.deps.clock.setTimer(() => {
      this.sweep();
      if (!this.#stopped) this.#armSweep();
    }, every);
  }

  /** Expires idle flows now (also run by the periodic timer). */
  sweep(): void {
    const now = this.deps.clock.now();
    for (const f of [...this.#flows.values()]) {
      if (now - f.lastActive >= this.#timeoutMs) {
        this.stats.flowsExpired++;
        this.#closeFlow(f, "idle");
      }
    }
  }

  async #receive(sock: DatagramConn): Promise<void> {
    while (!this.#stopped) {
      let data: Uint8Array, from: NetAddr;
      try {
        [data, from] = await sock.receive();
      } catch (e) {
        if (this.#stopped) break;
        // ICMP port unreachable from an earlier send surfaces here on Linux; the socket is still fine.
        if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.ConnectionReset) continue;
        if (e instanceof Deno.errors.BadResource) break;
        noteError(this.stats, `receive: ${(e as Error).message}`, this.deps.clock.wallMs());
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      this.#fromClient(data, from);
    }
  }

  /** Push form: `data` is a view valid during this call only, kept only as a copy (a flow still opening). */
  #fromClientView(data: Uint8Array, from: NetAddr): void {
    let flow = this.#flowOf.get(from);
    if (flow === undefined || flow.closed) {
      flow = this.#flowFor(from, this.deps.clock.now());
      if (!flow) return;
      this.#flowOf.set(from, flow);
    }
    this.#forward(flow, flow.pending ? data.slice() : data);
  }

  #fromClient(data: Uint8Array, from: NetAddr): void {
    const flow = this.#flowFor(from, this.deps.clock.now());
    if (flow) this.#forward(flow, data);
  }

  #flowFor(from: NetAddr, now: number): Flow | undefined {
    const key = flowKey(from);
    return this.#flows.get(key) ?? this.#newFlow(key, from, now);
  }

  #forward(flow: Flow, data: Uint8Array): void {
    const now = this.deps.clock.now();
    const key = flow.key;
    flow.lastActive = now;
    if (now - flow.lastRefreshed >= LRU_REFRESH_MS) {
      flow.lastRefreshed = now;
      this.#flows.delete(key);
      this.#flows.set(key, flow);
    }
    if (flow.pending) {
      if (flow.pending.length >= MAX_PENDING_DATAGRAMS) this.stats.packetsDropped++;
      else flow.pending.push(data);
      return;
    }
    this.#sendUpstream(flow, data);
  }

  #sendUpstream(flow: Flow, data: Uint8Array): void {
    if (flow.upstreamPush) {
      // A datagram sendNow() refuses is counted by the socket (its `dropped`, summed in packetsDropped()).
      if (flow.upstreamPush.sendNow(data, flow.target!)) {
        this.stats.packetsToTarget++;
        this.stats.bytesToTarget += data.length;
        flow.bytesToTarget += data.length;
      }
      return;
    }
    flow.upstream!.send(data, flow.target!).then(() => {
      this.stats.packetsToTarget++;
      this.stats.bytesToTarget += data.length;
      flow.bytesToTarget += data.length;
    }, () => {
      this.stats.packetsDropped++;
    });
  }

  #newFlow(key: string, client: NetAddr, now: number): Flow | undefined {
    while (this.#flows.size >= this.spec.maxFlows) {
      const oldest = this.#flows.values().next().value as Flow | undefined;
      if (!oldest) break;
      this.stats.flowsEvicted++;
      this.#closeFlow(oldest, "evicted");
    }
    const flow: Flow = {
      key,
      client,
      pending: [],
      lastActive: now,
      lastRefreshed: now,
      createdMs: now,
      bytesToTarget: 0,
      bytesToClient: 0,
      closed: false,
    };
    this.#flows.set(key, flow);
    this.stats.total++;
    this.stats.active = this.#flows.size;
    this.#openFlow(flow);
    return flow;
  }

  async #openFlow(flow: Flow): Promise<void> {
    const { spec, deps } = this;
    try {
      // Resolve per flow: a target that moved is picked up by the next new client.
      const addrs = await (deps.egress.resolver ?? deps.resolver).resolve(spec.outHost);
      if (flow.closed) return;
      const host = addrs[0];
      flow.target = { transport: "udp", hostname: host, port: spec.outPort };
      flow.upstream = deps.egress.listenUdp({ hostname: isIpv6Literal(host) ? "::" : "0.0.0.0", port: 0 });
    } catch (e) {
      this.stats.failed++;
      noteError(this.stats, (e as Error).message, this.deps.clock.wallMs());
      this.stats.packetsDropped += flow.pending?.length ?? 0;
      flow.pending = null;
      if (this.options.logging) {
        deps.log.warn("udp flow failed", {
          relay: spec.id,
          client: this.#peer(flow.client),
          error: (e as Error).message,
        });
      }
      this.#closeFlow(flow, "error");
      return;
    }
    this.stats.lastSuccessMs = deps.clock.wallMs();
    if (flow.closed) {
      flow.upstream.close();
      return;
    }
    if (this.options.logging) {
      deps.log.info("udp flow open", {
        relay: spec.id,
        client: this.#peer(flow.client),
        target: joinHostPort(spec.outHost, spec.outPort),
      });
    }
    const queued = flow.pending ?? [];
    flow.pending = null;
    const socketPush = this.#socketPush;
    if (socketPush) flow.upstreamPush = pushForm(flow.upstream);
    for (const d of queued) this.#sendUpstream(flow, d);
    const loop = flow.upstreamPush && socketPush
      ? flow.upstreamPush.listen((data, from) => this.#fromTargetView(flow, socketPush, data, from))
      : this.#fromTarget(flow);
    this.#upstreamLoops.add(loop);
    loop.finally(() => this.#upstreamLoops.delete(loop));
  }

  async #fromTarget(flow: Flow): Promise<void> {
    const up = flow.upstream!;
    const target = flow.target!;
    while (!flow.closed) {
      let data: Uint8Array, from: NetAddr;
      try {
        [data, from] = await up.receive();
      } catch (e) {
        if (flow.closed) return;
        if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.ConnectionReset) continue;
        this.#closeFlow(flow, "error");
        return;
      }
      // Only the target may answer through this flow: anything else is a spoof or a stray and is dropped.
      if (from.port !== target.port || !sameHost(from.hostname, target.hostname)) {
        this.stats.packetsDropped++;
        continue;
      }
      flow.lastActive = this.deps.clock.now();
      try {
        await this.#socket!.send(data, flow.client);
        this.stats.packetsToClient++;
        this.stats.bytesToClient += data.length;
        flow.bytesToClient += data.length;
      } catch {
        this.stats.packetsDropped++;
      }
    }
  }

  /** Push form of #fromTarget: `data` is a view, copied by the staged send. */
  #fromTargetView(flow: Flow, socket: HostUdpConn, data: Uint8Array, from: NetAddr): void {
    if (flow.closed) return;
    const target = flow.target!;
    if (from.port !== target.port || !sameHost(from.hostname, target.hostname)) {
      this.stats.packetsDropped++;
      return;
    }
    flow.lastActive = this.deps.clock.now();
    if (socket.sendNow(data, flow.client)) {
      this.stats.packetsToClient++;
      this.stats.bytesToClient += data.length;
      flow.bytesToClient += data.length;
    } // else counted by the socket, as above
  }

  #peer(a: NetAddr): string {
    return joinHostPort(a.hostname, a.port);
  }

  #closeFlow(flow: Flow, why: string): void {
    if (flow.closed) return;
    flow.closed = true;
    if (this.#flows.get(flow.key) === flow) this.#flows.delete(flow.key);
    this.stats.active = this.#flows.size;
    this.#closedFlowDrops += flow.upstream?.dropped ?? 0;
    try {
      flow.upstream?.close();
    } catch { /* closed */ }
    if (this.options.logging && why !== "stop") {
      this.deps.log.info("udp flow close", {
        relay: this.spec.id,
        client: this.#peer(flow.client),
        reason: why,
        bytes_to_target: flow.bytesToTarget,
        bytes_to_client: flow.bytesToClient,
        duration_ms: Math.round(this.deps.clock.now() - flow.createdMs),
      });
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.deps.clock.clearTimer(this.#sweepTimer);
    try {
      this.#socket?.close();
    } catch { /* closed */ }
    for (const f of [...this.#flows.values()]) this.#closeFlow(f, "stop");
    await this.#receiveLoop;
    await Promise.allSettled([...this.#upstreamLoops]);
    this.stats.state = "stopped";
  }
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  const strip = (s: string) => s.replace(/^::ffff:/i, "").toLowerCase();
  return strip(a) === strip(b);
}
