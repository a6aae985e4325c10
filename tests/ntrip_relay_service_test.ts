/**
 * The relay stations as a service, without sockets: reload by station key (a changed station restarts alone,
 * the others keep their sessions; a changed tunnel counts as a change), the start spread, the tunnel lease per
 * station from the pool path opener, and the monitor: /api/v1/ntrip, the status section, the metrics and the
 * dashboard through the admin app's request handler, with no secret in any of them.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging, logger } from "../src/util/log.ts";
import type { NtripStationsConfig, StationConfig } from "../src/config/ntrip_stations.ts";
import type { WgConfig } from "../src/wireguard/config.ts";
import { NtripRelayService } from "../src/services/ntrip/service.ts";
import { type PathOpener, poolPathOpener, type StationTunnels } from "../src/services/ntrip/egress.ts";
import { reportStations } from "../src/services/ntrip/report.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { createAdminApp } from "../src/services/admin/app.ts";
import { renderStations, sortStations } from "../src/services/admin/ntrip_view.ts";
import type { TunnelLease } from "../src/services/tunnel/pool.ts";
import type { Tunnel } from "../src/net/tunnels.ts";
import { MemoryNet } from "./helpers/memory_net.ts";
import {
  advance,
  answering,
  type Caster,
  NO_JITTER,
  rtcmFrame,
  settle,
  stationConfig,
} from "./helpers/ntrip_fakes.ts";

configureLogging({ level: "error" });

const WALL = 1_700_000_000_000;

function wg(tag: number): WgConfig {
  return {
    source: "test",
    iface: {
      privateKey: new Uint8Array(32).fill(tag),
      addresses: [{ address: "10.0.0.2", prefix: 32 }],
      mtu: 1420,
      dns: [],
    },
    peers: [{
      publicKey: new Uint8Array(32).fill(99),
      allowedIps: [],
      endpoint: { host: "198.51.100.7", port: 2408 },
    }],
  };
}

function station(id: string, extra: Partial<StationConfig> = {}): StationConfig {
  return stationConfig({ id, ...extra }, {
    source: { host: `src-${id}`, password: "SRC-SECRET" },
    destination: { host: "dst", mount: id, password: "DST-SECRET" },
  });
}

function cfg(stations: StationConfig[]): NtripStationsConfig {
  return { stations, source: "stations.json", otherShards: 0 };
}

interface World {
  clock: ManualClock;
  net: MemoryNet;
  svc: NtripRelayService;
  opened: string[];
  released: string[];
  open: PathOpener;
  keyOf: (c: WgConfig) => string;
  sources: Map<string, Caster>;
  dst: Caster;
}

function world(ids: string[]): World {
  const clock = new ManualClock(1_000_000, WALL);
  const net = new MemoryNet();
  const w: World = {
    clock,
    net,
    svc: new NtripRelayService({ clock, random: NO_JITTER, agent: "NTRIP wgedge/test", log: logger("t") }),
    opened: [],
    released: [],
    open: (s) => {
      w.opened.push(s.id);
      return Promise.resolve({
        source: {
          net,
          kind: s.wgConfig ? "tunnel" : "direct",
          endpoint: s.wgConfig ? "198.51.100.7:2408" : undefined,
        },
        destination: { net, kind: "direct" },
        release: () => w.released.push(s.id),
      });
    },
    keyOf: (c) => `key-${c.iface.privateKey[0]}`,
    sources: new Map(),
    dst: answering(net, "dst", 2102, "ICY 200 OK\r\n"),
  };
  for (const id of ids) {
    w.sources.set(
      id,
      answering(net, `src-${id}`, 2101, "ICY 200 OK\r\n"),
    );
  }
  return w;
}

/** Every station of the world to RUNNING: spread start, one frame each. */
async function runAll(w: World): Promise<void> {
  await advance(w.clock, 1_000, 100);
  for (const c of w.sources.values()) if (c.conns.length > 0) c.send(rtcmFrame(1005, 19));
  await settle();
}

Deno.test("stations started together are spread; each holds its paths until it stops", async () => {
  const w = world(["A", "B", "C"]);
  await w.svc.apply(cfg([station("A"), station("B"), station("C")]), { keyOf: w.keyOf, openPaths: w.open });
  w.clock.advance(0);
  await settle();
  assertEquals(w.net.dials.map((d) => d.host), ["src-A"]);
  await advance(w.clock, 200, 200);
  assertEquals(w.net.dials.map((d) => d.host), ["src-A", "src-B"]);
  await advance(w.clock, 200, 200);
  assertEquals(w.net.dials.length, 3);
  await runAll(w);
  assert(w.svc.workers.every((x) => x.state === "RUNNING"));
  await w.svc.stop();
  assertEquals(w.released.sort(), ["A", "B", "C"]);
  assertEquals(w.clock.pendingTimers, 0);
});

Deno.test("reload: a changed station restarts alone, a removed one stops, a new one starts, the rest keep streaming", async () => {
  const w = world(["A", "B", "C", "D"]);
  const tunnelled = station("C", { wgConfig: wg(1) });
  await w.svc.apply(cfg([station("A"), station("B"), tunnelled]), { keyOf: w.keyOf, openPaths: w.open });
  await runAll(w);
  const a = w.svc.worker("A")!, aConn = w.sources.get("A")!.last;
  const r = await w.svc.apply(
    cfg([station("A"), station("B", { ggaIntervalSec: 5 }), station("D")]),
    { keyOf: w.keyOf, openPaths: w.open },
  );
  assertEquals(r, { started: ["D"], restarted: ["B"], stopped: ["C"], unchanged: 1 });
  assertEquals(w.svc.worker("A"), a, "the unchanged station is the same worker");
  assert(!aConn.peer.closed, "and its source session was not touched");
  assert(w.sources.get("B")!.conns[0].peer.closed, "the changed station's old session closed");
  assertEquals(w.released.sort(), ["B", "C"]);
  await runAll(w);
  assertEquals(w.svc.worker("B")!.state, "RUNNING");
  assertEquals(w.svc.worker("D")!.state, "RUNNING");
  assertEquals(w.svc.workers.map((x) => x.id), ["A", "B", "D"], "in the order of the file");
  await w.svc.stop();
});

Deno.test("reload: the station key includes the tunnel's pool key; the new paths open before the old let go", async () => {
  const w = world(["T"]);
  await w.svc.apply(cfg([station("T", { wgConfig: wg(1) })]), { keyOf: w.keyOf, openPaths: w.open });
  await runAll(w);
  const same = await w.svc.apply(cfg([station("T", { wgConfig: wg(1), origin: "moved:9" })]), {
    keyOf: w.keyOf,
    openPaths: w.open,
  });
  assertEquals(same.unchanged, 1, "where the station is written does not matter");
  const events: string[] = [];
  const r = await w.svc.apply(cfg([station("T", { wgConfig: wg(2) })]), {
    keyOf: w.keyOf,
    openPaths: (s) => (events.push("open new"), w.open(s)),
  });
  assertEquals(r.restarted, ["T"]);
  assertEquals(events, ["open new"]);
  assertEquals(w.opened, ["T", "T"]);
  assertEquals(w.released, ["T"], "the old lease went after the new one was taken");
  await w.svc.stop();
  assertEquals(w.released, ["T", "T"]);
});

Deno.test("pool paths: one tunnel lease per station for both sides; *_via pins a side; release once", async () => {
  const host = new MemoryNet("host");
  const tunnelNet = new MemoryNet("wg:st");
  const acquired: string[] = [];
  let releases = 0;
  const tunnels: StationTunnels = {
    acquire(_cfg, name, user) {
      acquired.push(`${name}/${user}`);
      return Promise.resolve({
        tunnel: { net: tunnelNet } as unknown as Tunnel,
        key: "k",
        release: () => releases++,
      } as TunnelLease);
    },
  };
  const open = poolPathOpener(host, tunnels);
  const both = await open(station("W", { wgConfig: wg(3) }));
  assertEquals([both.source.kind, both.destination.kind], ["tunnel", "tunnel"]);
  assertEquals(both.source.net, tunnelNet);
  assertEquals(both.source.endpoint, "198.51.100.7:2408");
  both.release();
  const split = await open(station("X", {
    wgConfig: wg(3),
    destination: {
      host: "dst",
      port: 2102,
      mount: "X",
      password: "p",
      version: 1,
      tls: false,
      via: "proxy",
      proxy: { host: "127.0.0.1", port: 1080, username: "u", password: "PROXY-SECRET" },
    },
  }));
  assertEquals([split.source.kind, split.destination.kind], ["tunnel", "socks5"]);
  assertEquals(split.destination.endpoint, "127.0.0.1:1080");
  assertEquals(split.destination.net.name, "socks5://127.0.0.1:1080");
  split.release();
  const direct = await open(
    station("Y", { wgConfig: wg(3), source: { ...station("Y").source, via: "direct" } }),
  );
  assertEquals([direct.source.kind, direct.destination.kind], ["direct", "tunnel"]);
  direct.release();
  const none = await open(station("Z"));
  assertEquals([none.source.kind, none.destination.kind], ["direct", "direct"]);
  none.release();
  assertEquals(acquired, ["W/ntrip station W", "X/ntrip station X", "Y/ntrip station Y"]);
  assertEquals(releases, 3);
});

Deno.test("monitor: /api/v1/ntrip (with the caster's section), status, metrics and dashboard; no secret anywhere", async () => {
  const w = world(["OK", "BAD"]);
  w.sources.set(
    "BAD",
    answering(w.net, "src-BAD", 2101, "HTTP/1.1 401 Unauthorized\r\n\r\n"),
  );
  const registry = new ServiceRegistry(WALL);
  const unreport = reportStations(w.svc, registry, w.clock);
  registry.registerStatus("ntrip_caster", () => ({ mounts: [{ mount: "OK", clients: [] }] }));
  await w.svc.apply(
    cfg([station("OK", { wgConfig: wg(4) }), station("BAD")]),
    { keyOf: w.keyOf, openPaths: w.open },
  );
  await runAll(w);
  w.sources.get("OK")!.send(rtcmFrame(1077, 40));
  await settle();
  await advance(w.clock, 3_000, 1000);
  const app = createAdminApp({ registry, version: "test", clock: w.clock });

  const api = await (await app.request("/api/v1/ntrip")).json();
  assertEquals(api.caster, { mounts: [{ mount: "OK", clients: [] }] });
  const ok = api.stations.find((s: { id: string }) => s.id === "OK");
  assertEquals(ok.state, "RUNNING");
  assertEquals(ok.frames, 2);
  assertEquals(ok.framesByType, { "1005": 1, "1077": 1 });
  assertEquals([ok.source.path, ok.source.endpoint], ["tunnel", "198.51.100.7:2408"]);
  assertEquals(ok.source.lastReply, "ICY 200 OK");
  assertEquals(ok.lastFrameAgeSeconds, 3);
  assertEquals(ok.source.uptimeSeconds, 3, "accepted at 0.1 s, now 4 s");
  const bad = api.stations.find((s: { id: string }) => s.id === "BAD");
  assertEquals(bad.state, "ERROR");
  assertEquals(bad.source.lastReply, "HTTP/1.1 401 Unauthorized");
  assertEquals(
    bad.nextRetryAt,
    new Date(WALL + 200 + 30 * 60_000).toISOString(),
    "refused at 0.2 s (second in the spread)",
  );

  const status = await (await app.request("/api/v1/status")).json();
  assertEquals(status.ntrip_stations.length, 2);

  const metrics = await (await app.request("/metrics")).text();
  assertStringIncludes(metrics, 'wgedge_ntrip_station_state{station="OK",state="RUNNING"} 1');
  assertStringIncludes(metrics, 'wgedge_ntrip_station_state{station="OK",state="ERROR"} 0');
  assertStringIncludes(metrics, 'wgedge_ntrip_station_state{station="BAD",state="ERROR"} 1');
  assertStringIncludes(metrics, 'wgedge_ntrip_station_frames_total{station="OK"} 2');
  assertStringIncludes(metrics, 'wgedge_ntrip_station_bytes_total{station="OK",direction="in"}');
  assertStringIncludes(metrics, 'wgedge_ntrip_station_reconnects_total{station="OK",side="source"} 0');
  assertStringIncludes(metrics, 'wgedge_ntrip_station_last_frame_age_seconds{station="OK"} 3');

  const html = await (await app.request("/")).text();
  assertStringIncludes(html, 'id="ntrip-stations"');
  assert(html.indexOf(">BAD<") < html.indexOf(">OK<"), "the station with a problem comes first");
  assertStringIncludes(html, "ERROR 1");

  for (const text of [JSON.stringify(api), JSON.stringify(status), metrics, html]) {
    for (const secret of ["SRC-SECRET", "DST-SECRET", "rover:"]) assert(!text.includes(secret), secret);
  }
  await w.svc.stop();
  unreport();
  assertEquals((await app.request("/api/v1/ntrip")).status, 404, "the route goes with the service");
});

Deno.test("dashboard: 300 stations in one compact table, problems first, human units", () => {
  const states = ["RUNNING", "ERROR", "BACKOFF", "DISABLED", "WAITING_DATA"];
  const stations = Array.from({ length: 300 }, (_, i) => ({
    id: `ST${String(i).padStart(3, "0")}`,
    state: states[i % states.length],
    stateSeconds: i * 37,
    source: {
      host: "caster.example.com",
      port: 2101,
      mount: `M${i}`,
      path: "tunnel",
      version: 1,
      reconnects: 2,
    },
    destination: { host: "127.0.0.1", port: 2102, mount: `D${i}`, path: "direct", version: 1, reconnects: 0 },
    bytesIn: i * 1_000_000,
    bytesOut: i * 999_000,
    frames: i * 10,
    lastFrameAgeSeconds: i % 7,
    crcErrors: 0,
    ggaSent: 3,
    lastError: i % 5 === 1 ? { side: "source", kind: "unauthorized", message: "bad credentials" } : null,
    nextRetryAt: i % 5 === 1 ? new Date(WALL + 1_800_000).toISOString() : null,
  }));
  const html = renderStations(stations, WALL);
  assertEquals(html.split("<tr").length - 2, 300, "one row per station (plus the heading)");
  const order = sortStations(stations).map((s) => s.state);
  assertEquals(order.indexOf("RUNNING") > order.lastIndexOf("ERROR"), true);
  assertEquals(order[order.length - 1], "DISABLED");
  assertStringIncludes(html, "RUNNING 60");
  assertStringIncludes(html, " MiB<");
  assertStringIncludes(html, "in 30 min");
  assert(html.length < 300 * 2500, `compact: ${html.length} bytes for 300 rows`);
});
