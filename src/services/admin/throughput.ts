/**
 * Throughput history for the dashboard's sparklines: every `intervalMs` (10 s) the sampler reads the byte
 * counters of each relay, proxy, tunnel, port mapping, rpc route, mwgp instance and caster mount from the status
 * sections, and keeps the rate of the last interval in a fixed ring per item (90 points = 15 minutes).
 *
 * Bounded by construction: a ring is a Float32Array of `points`; an item missing from one sample (relay
 * removed, mapping expired, tunnel closed) loses its history at once; at most `maxSeries` items are tracked.
 * Nothing is kept in the status JSON (its contract stays as it is): the history lives only here, and only the
 * dashboard reads it. Time comes from the injected Clock, so tests step it with a ManualClock.
 */
import type { Clock, TimerHandle } from "../../util/clock.ts";

/** Two byte counters of one item (e.g. to target / to client), both only growing while the item lives. */
export type CounterPair = readonly [number, number];

/** What the dashboard reads for one item. */
export interface SeriesView {
  /** Bytes per second of each past interval, oldest first (at most `points`). */
  rates: number[];
  /** The last interval's rate of each counter, bytes per second. */
  last: CounterPair;
}

/** The part of the sampler the dashboard needs (tests give a fake). */
export interface ThroughputHistory {
  readonly points: number;
  readonly intervalMs: number;
  series(key: string): SeriesView | undefined;
}

interface Series {
  ring: Float32Array;
  /** Index the next rate is written at. */
  head: number;
  filled: number;
  counters: CounterPair;
  last: CounterPair;
}

export interface SamplerOptions {
  intervalMs?: number;
  points?: number;
  maxSeries?: number;
}

export class ThroughputSampler implements ThroughputHistory {
  readonly intervalMs: number;
  readonly points: number;
  readonly maxSeries: number;
  readonly #series = new Map<string, Series>();
  #lastAt: number | undefined;
  #timer: TimerHandle | undefined;
  #running = false;

  constructor(
    private readonly source: () => Map<string, CounterPair>,
    private readonly clock: Clock,
    opts: SamplerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.points = opts.points ?? 90;
    this.maxSeries = opts.maxSeries ?? 5_000;
  }

  /** Takes the first reading now (the baseline) and one every interval until stop(). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.sample();
  }

  stop(): void {
    this.#running = false;
    this.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  /** Number of items tracked (tests check that vanished items are dropped). */
  get size(): number {
    return this.#series.size;
  }

  /** One reading: a rate per item that was there last time, a baseline for new ones, vanished ones dropped. */
  sample(): void {
    const now = this.clock.now();
    let current: Map<string, CounterPair>;
    try {
      current = this.source();
    } catch {
      current = new Map(); // a failing section must not stop the sampling of the others
    }
    const seconds = this.#lastAt === undefined ? 0 : (now - this.#lastAt) / 1000;
    this.#lastAt = now;
    for (const key of this.#series.keys()) if (!current.has(key)) this.#series.delete(key);
    for (const [key, counters] of current) {
      const s = this.#series.get(key);
      if (!s) {
        if (this.#series.size >= this.maxSeries) continue;
        this.#series.set(key, {
          ring: new Float32Array(this.points),
          head: 0,
          filled: 0,
          counters,
          last: [0, 0],
        });
        continue;
      }
      // A counter that went down belongs to a restarted item: that interval counts from zero.
      const delta = (i: 0 | 1) => counters[i] >= s.counters[i] ? counters[i] - s.counters[i] : counters[i];
      const a = seconds > 0 ? delta(0) / seconds : 0, b = seconds > 0 ? delta(1) / seconds : 0;
      s.ring[s.head] = a + b;
      s.head = (s.head + 1) % this.points;
      s.filled = Math.min(this.points, s.filled + 1);
      s.counters = counters;
      s.last = [a, b];
    }
    if (this.#running) this.#timer = this.clock.setTimer(() => this.sample(), this.intervalMs);
  }

  series(key: string): SeriesView | undefined {
    const s = this.#series.get(key);
    if (!s) return undefined;
    const rates: number[] = [];
    for (let i = s.filled; i > 0; i--) rates.push(s.ring[(s.head - i + this.points) % this.points]);
    return { rates, last: s.last };
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.filter(isObject) : [];
}

/** The sampler key of each item the dashboard draws a sparkline for (one place, used by both sides). */
export const seriesKey = {
  relay: (id: unknown) => `relay:${id}`,
  proxy: (id: unknown) => `proxy:${id}`,
  tunnel: (name: unknown) => `tunnel:${name}`,
  mapping: (protocol: unknown, port: unknown) => `mapping:${protocol}/${port}`,
  route: (route: unknown) => `route:${route}`,
  mwgp: (section: string) => `mwgp:${section}`,
  mount: (mount: unknown) => `mount:${mount}`,
};

/**
 * The byte counters of every item in a status object (the shape of /api/v1/status): relays and proxies (to
 * target, to client; a proxy's UDP included), tunnels (received, sent: the sum over peers), rps mappings and rpc routes (in, out), mwgp
 * instances (to server, to client) and caster mounts (in, out).
 */
export function statusCounters(status: Json): Map<string, CounterPair> {
  const out = new Map<string, CounterPair>();
  for (const r of list(status.relays)) {
    out.set(seriesKey.relay(r.id), [num(r.bytesToTarget), num(r.bytesToClient)]);
  }
  for (const p of list(status.proxies)) {
    out.set(seriesKey.proxy(p.id), [
      num(p.bytesToTarget) + num(p.udpBytesToTarget),
      num(p.bytesToClient) + num(p.udpBytesToClient),
    ]);
  }
  for (const t of list(status.tunnels)) {
    let rx = 0, tx = 0;
    for (const p of list(t.peers)) {
      rx += num(p.rxBytes);
      tx += num(p.txBytes);
    }
    out.set(seriesKey.tunnel(t.name), [rx, tx]);
  }
  for (const m of list(status.port_mappings)) {
    out.set(seriesKey.mapping(m.protocol, m.remote_port), [num(m.bytes_in), num(m.bytes_out)]);
  }
  for (const r of list(status.rp_routes)) {
    out.set(seriesKey.route(r.route), [num(r.bytes_in), num(r.bytes_out)]);
  }
  for (const [name, v] of Object.entries(status)) {
    if (name.startsWith("mwgp") && isObject(v) && isObject(v.stats)) {
      out.set(seriesKey.mwgp(name), [num(v.stats.bytesToServer), num(v.stats.bytesToClient)]);
    }
  }
  if (isObject(status.ntrip_caster)) {
    for (const m of list(status.ntrip_caster.mounts)) {
      out.set(seriesKey.mount(m.mount), [num(m.bytesIn), num(m.bytesOut)]);
    }
  }
  return out;
}
