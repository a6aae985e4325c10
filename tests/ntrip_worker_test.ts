/**
 * The relay station worker on a ManualClock and an in-memory Net: every state transition, timeout, backoff
 * and limit of shared/spec/ntrip.md ("Worker states and timing"), with no sleeping. Casters are scripted
 * peers that read the request head and answer the way real ones do.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging, logger } from "../src/util/log.ts";
import type { RandomFill } from "../src/util/random.ts";
import type { StationConfig } from "../src/config/ntrip_stations.ts";
import { StationWorker } from "../src/services/ntrip/worker.ts";
import { DialLimiter } from "../src/services/ntrip/dial_limiter.ts";
import type { StationPaths } from "../src/services/ntrip/egress.ts";
import {
  Backoff,
  BACKOFF_MAX_MS,
  CREDENTIALS_RETRY_MS,
  startSpreadMs,
} from "../src/services/ntrip/timing.ts";
import { MemoryNet } from "./helpers/memory_net.ts";
import {
  advance,
  answering,
  Caster,
  concat,
  NO_JITTER,
  rtcmFrame,
  settle,
  stationConfig,
} from "./helpers/ntrip_fakes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const quietLog = logger("test.ntrip");
/** The log's default sink, put back after a test that captured the lines. */
const stderrLines = { write: (l: string) => Deno.stderr.writeSync(new TextEncoder().encode(l + "\n")) };

const station = stationConfig;

interface Harness {
  clock: ManualClock;
  net: MemoryNet;
  limiter: DialLimiter;
  released: number;
  worker: StationWorker;
}

function harness(
  cfg: StationConfig,
  opts: { limiter?: DialLimiter; net?: MemoryNet; clock?: ManualClock } = {},
) {
  const clock = opts.clock ?? new ManualClock();
  const net = opts.net ?? new MemoryNet();
  const limiter = opts.limiter ?? new DialLimiter();
  const h = { clock, net, limiter, released: 0 } as Harness;
  h.worker = new StationWorker(cfg, {
    clock,
    random: NO_JITTER,
    limiter,
    agent: "NTRIP wgedge/test",
    log: quietLog,
    openPaths: () =>
      Promise.resolve<StationPaths>({
        source: { net, kind: "direct" },
        destination: { net, kind: "direct" },
        release: () => h.released++,
      }),
  });
  return h;
}

/** start() with no delay: the first attempt runs at the next clock tick. */
async function begin(h: Harness): Promise<void> {
  h.worker.start();
  h.clock.advance(0);
  await settle();
}

const ICY = "ICY 200 OK\r\n";

/** Source and destination casters that accept; returns them. */
function acceptingCasters(net: MemoryNet) {
  const src = answering(net, "src.example", 2101, ICY);
  const dst = answering(net, "dst.example", 2102, ICY);
  return { src, dst };
}

/** Brings a worker to RUNNING: start, source accepts, one frame flows, destination accepts. */
async function toRunning(h: Harness, casters: ReturnType<typeof acceptingCasters>): Promise<void> {
  await begin(h);
  assertEquals(h.worker.state, "WAITING_DATA");
  casters.src.send(rtcmFrame(1005, 19));
  await settle();
  assertEquals(h.worker.state, "RUNNING");
}

/** A worker for cfg with accepting casters, brought to RUNNING. */
async function running(cfg = station()) {
  const h = harness(cfg);
  const c = acceptingCasters(h.net);
  await toRunning(h, c);
  return { h, c };
}

Deno.test("start: WAITING_START for initial_delay + spread, then source, data, destination, RUNNING", async () => {
  const h = harness(station({ initialDelaySec: 2 }));
  const c = acceptingCasters(h.net);
  assertEquals(h.worker.state, "WAITING_START");
  h.worker.start(300);
  await advance(h.clock, 2200);
  assertEquals(h.worker.state, "WAITING_START");
  assertEquals(h.net.dials.length, 0);
  await advance(h.clock, 100);
  assertEquals(h.worker.state, "WAITING_DATA");
  assertEquals(
    c.src.requests[0],
    `GET /SRC HTTP/1.0\r\nUser-Agent: NTRIP wgedge/test\r\nAuthorization: Basic ${
      btoa("rover:roverpw")
    }\r\n\r\n`,
  );
  assertEquals(h.net.dials.map((d) => d.host), ["src.example"], "no destination before data flows");
  const f1 = rtcmFrame(1077, 40, 1), f2 = rtcmFrame(1087, 30, 2), f3 = rtcmFrame(1005, 19, 3);
  c.src.send(f1);
  await settle();
  assertEquals(h.worker.state, "RUNNING");
  assertEquals(c.dst.requests[0], "SOURCE dstpw /DST\r\nSource-Agent: NTRIP wgedge/test\r\n\r\n");
  c.src.send(concat([f2, f3.subarray(0, 10)]));
  await settle();
  c.src.send(f3.subarray(10));
  await settle();
  assertEquals(c.dst.after[0], String.fromCharCode(...f2, ...f3), "whole frames after acceptance only");
  assertEquals(h.worker.framesOut, 2);
  assertEquals(h.worker.scanner.stats.frames, 3);
  assertEquals(h.worker.bytesOut, f2.length + f3.length);
  await h.worker.stop();
  assertEquals(h.released, 1);
  assertEquals(h.clock.pendingTimers, 0);
});

Deno.test("GGA right after acceptance and every gga_interval; position and talker as configured", async () => {
  const h = harness(station({ position: { latDeg: 44.06, lonDeg: -121.32, altM: 1100 }, ggaIntervalSec: 5 }));
  const c = acceptingCasters(h.net);
  h.worker.start();
  await advance(h.clock, 100);
  assertEquals(h.worker.ggaSent, 1);
  assert(c.src.after[0].startsWith("$GPGGA,"), c.src.after[0]);
  assert(c.src.after[0].includes(",4403.6000,N,12119.2000,W,1,12,1.0,1100.000,M,0.0,M,,*"));
  await advance(h.clock, 10_000);
  assertEquals(h.worker.ggaSent, 3);
  assertEquals(c.src.after[0].split("\r\n").filter((l) => l.startsWith("$GPGGA")).length, 3);
  await h.worker.stop();
});

Deno.test("connect timeout 10 s, then backoff 5 s doubling to 300 s", async () => {
  const h = harness(station());
  h.net.on("src.example", 2101, "hang");
  await begin(h);
  assertEquals(h.worker.state, "CONNECTING_SOURCE");
  const waits: number[] = [];
  for (let i = 0; i < 9; i++) {
    await advance(h.clock, 10_000, 2500);
    assertEquals(h.worker.state, "BACKOFF");
    assertEquals(h.worker.lastError?.kind, "connect");
    waits.push(h.worker.source.retryAt! - h.clock.now());
    await advance(h.clock, waits[i], 5000);
    assertEquals(h.worker.state, "CONNECTING_SOURCE");
  }
  assertEquals(waits, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
  assertEquals(h.net.dials.length, 10);
  assert(h.net.dials.every((d) => d.host === "src.example"), "the name is given to the Net on every attempt");
  await h.worker.stop();
  assertEquals(h.limiter.inFlight, 0);
});

Deno.test("backoff: +-20 % jitter; a session of 60 s or more restarts the doubling, a shorter one does not", () => {
  let fill = 0;
  const rnd: RandomFill = (b) => b.fill(fill);
  const b = new Backoff(rnd);
  fill = 0x00;
  assertEquals(b.next("failure"), 4_000, "u = 0: -20 %");
  fill = 0xff;
  assert(Math.abs(b.next("failure") - 12_000) < 1, "u ~ 1: +20 %");
  fill = 0x00;
  assertEquals(b.next("failure", 59_000), 16_000, "a 59 s session counts as a failure: 20 s - 20 %");
  assertEquals(b.next("failure", 60_000), 4_000, "a 60 s session was a success: back to 5 s");
  const d = new Backoff(NO_JITTER, 15_000);
  assertEquals(d.next("failure"), 15_000, "destination: at least 15 s");
  assertEquals(d.next("mount-taken"), 20_000);
  assertEquals(d.next("unauthorized"), CREDENTIALS_RETRY_MS);
  const n = new Backoff(NO_JITTER);
  assertEquals([1, 2, 3, 4, 5, 6].map(() => n.next("not-found")), [
    60_000,
    120_000,
    240_000,
    480_000,
    600_000,
    600_000,
  ]);
  assertEquals(
    Math.min(...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(() => new Backoff(NO_JITTER).next("failure"))),
    5000,
  );
  assert(BACKOFF_MAX_MS === 300_000);
});

Deno.test("reply head timeout 10 s: a caster that accepts TCP and says nothing", async () => {
  const h = harness(station());
  new Caster(h.net, "src.example", 2101); // never answers
  await begin(h);
  await advance(h.clock, 9_900, 1000);
  assertEquals(h.worker.state, "CONNECTING_SOURCE");
  await advance(h.clock, 200);
  assertEquals(h.worker.state, "BACKOFF");
  assertEquals(h.worker.lastError?.kind, "reply-timeout");
  await h.worker.stop();
});

Deno.test("WAITING_DATA: no valid frame within 30 s of acceptance -> BACKOFF; garbage is not data", async () => {
  const h = harness(station());
  const c = acceptingCasters(h.net);
  h.worker.start();
  await advance(h.clock, 100);
  assertEquals(h.worker.state, "WAITING_DATA");
  c.src.send(new Uint8Array([0xd3, 0x00, 0x04, 1, 2, 3, 4, 0, 0, 0, 9, 9, 9])); // bad CRC
  await advance(h.clock, 29_800, 1000);
  assertEquals(h.worker.state, "WAITING_DATA");
  await advance(h.clock, 200);
  assertEquals(h.worker.state, "BACKOFF");
  assertEquals(h.worker.lastError?.kind, "no-data");
  assertEquals(h.worker.scanner.stats.crcErrors, 1);
  assertEquals(h.net.dials.filter((d) => d.host === "dst.example").length, 0);
  await h.worker.stop();
});

Deno.test("stale: RUNNING without a valid frame for 30 s (GGA does not count); the destination stays", async () => {
  const { h, c } = await running(station({ position: { latDeg: 1, lonDeg: 2, altM: 3 }, ggaIntervalSec: 5 }));
  const dstConn = c.dst.last;
  await advance(h.clock, 20_000, 1000);
  c.src.send(rtcmFrame(1077));
  await settle();
  await advance(h.clock, 29_000, 1000);
  assertEquals(h.worker.state, "RUNNING", "30 s counted from the last frame");
  await advance(h.clock, 1_100, 100);
  assertEquals(h.worker.lastError?.kind, "stale");
  assertEquals(h.worker.state, "BACKOFF");
  assertEquals(h.worker.sourcePhase, "backoff");
  assertEquals(h.worker.destinationPhase, "streaming");
  assert(!dstConn.peer.closed, "the destination session is kept");
  assert(h.worker.ggaSent >= 10);
  await h.worker.stop();
});

Deno.test("source killed mid-stream: reconnect with backoff while the destination session is kept", async () => {
  const { h, c } = await running();
  const dstConn = c.dst.last;
  c.src.last.close();
  await settle();
  assertEquals(h.worker.state, "BACKOFF");
  assertEquals(h.worker.lastError?.kind, "closed");
  assertEquals(h.worker.source.retryAt! - h.clock.now(), 5_000);
  await advance(h.clock, 5_000, 500);
  assertEquals(h.worker.state, "WAITING_DATA");
  const f = rtcmFrame(1230, 12, 7);
  c.src.send(f);
  await settle();
  assertEquals(h.worker.state, "RUNNING");
  assertEquals(c.dst.conns.length, 1, "no new destination session");
  assert(c.dst.after[0].endsWith(String.fromCharCode(...f)));
  assert(!dstConn.peer.closed);
  assertEquals(h.worker.source.attempts, 2);
  await h.worker.stop();
});

Deno.test("a source lost mid-stream is logged when lost and again when frames flow: down time and attempts", async () => {
  const lines: string[] = [];
  configureLogging({ sink: { write: (l) => lines.push(l) }, json: true, level: "info" });
  try {
    const { h, c } = await running();
    const lostAt = h.clock.now();
    c.src.last.close();
    await settle();
    // The first reconnect (after 5 s) is refused; the second (10 s later) reaches a caster that streams.
    h.net.on("src.example", 2101, "refuse");
    await advance(h.clock, 5_000, 500);
    assertEquals(h.worker.state, "BACKOFF");
    const again = answering(h.net, "src.example", 2101, ICY);
    await advance(h.clock, 10_000, 500);
    assertEquals(h.worker.state, "WAITING_DATA");
    const mine = () => lines.map((l) => JSON.parse(l)).filter((e) => e.station === h.worker.id);
    assertEquals(mine().filter((e) => e.msg === "source back"), [], "not back before a frame flows");
    again.send(rtcmFrame(1230, 12, 7));
    await settle();
    assertEquals(h.worker.state, "RUNNING");
    const back = mine().filter((e) => e.msg === "source back");
    assertEquals(back.length, 1);
    assertEquals(back[0].level, "info");
    assertEquals(back[0].from, "SRC");
    assertEquals(back[0].attempts, 2);
    assertEquals(back[0].down_ms, h.clock.now() - lostAt);
    assertEquals(mine().filter((e) => e.level === "warn").map((e) => e.msg), [
      "source closed",
      "source connect",
    ]);
    await h.worker.stop();
  } finally {
    configureLogging({ sink: stderrLines, json: false });
  }
});

Deno.test("destination killed: the source stays connected; a new destination after >= 15 s starts on a frame boundary", async () => {
  const { h, c } = await running();
  const srcConn = c.src.last;
  c.dst.last.close();
  await settle();
  assertEquals(h.worker.state, "BACKOFF");
  assertEquals(h.worker.sourcePhase, "streaming");
  assertEquals(
    h.worker.destination.retryAt! - h.clock.now(),
    15_000,
    "at least 15 s after a destination drop",
  );
  const f1 = rtcmFrame(1077, 20, 1);
  c.src.send(concat([f1, rtcmFrame(1087).subarray(0, 5)])); // a frame, then half of one
  await advance(h.clock, 15_000, 1000);
  assertEquals(h.worker.state, "RUNNING", "data flowed during the backoff, so the destination reconnects");
  assertEquals(c.dst.conns.length, 2);
  const f2 = rtcmFrame(1097, 16, 2);
  c.src.send(concat([rtcmFrame(1087).subarray(5), f2]));
  await settle();
  assertEquals(
    c.dst.after[1],
    String.fromCharCode(...rtcmFrame(1087), ...f2),
    "whole frames only, nothing stale",
  );
  assert(!srcConn.peer.closed, "the source session was never closed");
  assertEquals(c.src.conns.length, 1);
  await h.worker.stop();
});

Deno.test("destination backlog over 64 KiB drops the destination only", async () => {
  const { h, c } = await running();
  const clientEnd = c.dst.last.peer;
  clientEnd.stalled = true; // the caster stops reading: writes do not complete
  for (let i = 0; i < 70; i++) c.src.send(rtcmFrame(1077, 1000, i));
  await settle();
  assertEquals(h.worker.lastError?.kind, "backlog");
  assertEquals(h.worker.destinationPhase, "backoff");
  assertEquals(h.worker.sourcePhase, "streaming");
  assert(clientEnd.closed);
  await h.worker.stop();
});

Deno.test("destination backlog older than 5 s drops the destination only", async () => {
  const { h, c } = await running();
  c.dst.last.peer.stalled = true;
  c.src.send(rtcmFrame(1077, 100));
  await advance(h.clock, 4_900, 100);
  assertEquals(h.worker.state, "RUNNING");
  assert(h.worker.destinationBacklog > 0);
  await advance(h.clock, 200, 100);
  assertEquals(h.worker.lastError?.kind, "backlog");
  assertEquals(h.worker.sourcePhase, "streaming");
  assertEquals(h.worker.state, "BACKOFF");
  await h.worker.stop();
});

Deno.test("401 on the source -> ERROR with the caster's line; retried after 30 min, not before", async () => {
  const h = harness(station());
  answering(h.net, "src.example", 2101, "HTTP/1.1 401 Unauthorized\r\n\r\n");
  await begin(h);
  assertEquals(h.worker.state, "ERROR");
  assertEquals(h.worker.source.lastReply, "HTTP/1.1 401 Unauthorized");
  assertEquals(h.worker.lastError?.kind, "unauthorized");
  assertEquals(h.worker.nextRetryAt! - h.clock.now(), 30 * 60_000);
  await advance(h.clock, 30 * 60_000 - 1000, 60_000);
  assertEquals(h.net.dials.length, 1);
  await advance(h.clock, 1000, 500);
  assertEquals(h.net.dials.length, 2);
  assertEquals(h.worker.state, "ERROR");
  await h.worker.stop();
});

Deno.test("str2str's 401 (status line, no blank line, then close) is bad credentials too", async () => {
  const h = harness(station());
  answering(h.net, "src.example", 2101, "HTTP/1.0 401 Unauthorized\r\n", true);
  await begin(h);
  assertEquals(h.worker.state, "ERROR");
  assertEquals(h.worker.source.lastReply, "HTTP/1.0 401 Unauthorized");
  await h.worker.stop();
});

Deno.test("a session of 60 s or more restarts the source backoff at 5 s; a shorter one keeps doubling", async () => {
  const { h, c } = await running();
  const waits: number[] = [];
  for (const lived of [10_000, 10_000, 61_000]) {
    for (let t = 0; t < lived; t += 10_000) {
      c.src.send(rtcmFrame(1077));
      await advance(h.clock, Math.min(10_000, lived - t), 1000);
    }
    c.src.last.close();
    await settle();
    waits.push(h.worker.source.retryAt! - h.clock.now());
    await advance(h.clock, waits[waits.length - 1], 1000);
    assertEquals(h.worker.state, "WAITING_DATA");
  }
  assertEquals(waits, [5_000, 10_000, 5_000]);
  await h.worker.stop();
});

Deno.test("ERROR - Bad Password on the destination -> ERROR, both sides closed, whole station retried after 30 min", async () => {
  const h = harness(station());
  const src = answering(h.net, "src.example", 2101, ICY);
  answering(h.net, "dst.example", 2102, "ERROR - Bad Password\r\n");
  await begin(h);
  src.send(rtcmFrame(1005, 19));
  await settle();
  assertEquals(h.worker.state, "ERROR");
  assertEquals(h.worker.destination.lastReply, "ERROR - Bad Password");
  assert(src.last.peer.closed, "the source is not pulled for nothing for 30 min");
  await advance(h.clock, 30 * 60_000, 60_000);
  assertEquals(src.conns.length, 2);
  assertEquals(h.worker.state, "WAITING_DATA");
  await h.worker.stop();
});

Deno.test("unknown mount: SOURCETABLE -> not-found backoff 60 s doubling to 10 min", async () => {
  const h = harness(station());
  answering(
    h.net,
    "src.example",
    2101,
    "SOURCETABLE 200 OK\r\nContent-Type: text/plain\r\n\r\nSTR;X;\r\nENDSOURCETABLE\r\n",
    true,
  );
  await begin(h);
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    await settle();
    assertEquals(h.worker.state, "BACKOFF");
    assertEquals(h.worker.lastError?.kind, "not-found");
    waits.push(h.worker.source.retryAt! - h.clock.now());
    await advance(h.clock, waits[i], 10_000);
  }
  assertEquals(waits, [60_000, 120_000, 240_000, 480_000, 600_000, 600_000]);
  assertEquals(h.worker.source.lastReply, "SOURCETABLE 200 OK");
  await h.worker.stop();
});

Deno.test("mount taken on the destination -> retried every 20 s while the source stays connected", async () => {
  const h = harness(station());
  const src = answering(h.net, "src.example", 2101, ICY);
  const dst = new Caster(
    h.net,
    "dst.example",
    2102,
    (_, c) => c.write(enc.encode("ERROR - Mount Point Taken or Invalid\r\n")),
  );
  await begin(h);
  src.send(rtcmFrame(1005, 19));
  await settle();
  assertEquals(h.worker.lastError?.kind, "mount-taken");
  assertEquals(h.worker.state, "BACKOFF");
  assertEquals(h.worker.destination.retryAt! - h.clock.now(), 20_000);
  await advance(h.clock, 20_000, 1000);
  assertEquals(dst.conns.length, 2);
  assertEquals(src.conns.length, 1);
  assert(!src.last.peer.closed);
  await h.worker.stop();
});

Deno.test("NTRIP 2 push answered without Ntrip-Version: falls back to a v1 SOURCE at once", async () => {
  const h = harness(station({
    destination: {
      host: "dst.example",
      port: 2102,
      mount: "DST",
      user: "u",
      password: "p",
      version: 2,
      tls: false,
      via: "auto",
    },
  }));
  const src = answering(h.net, "src.example", 2101, ICY);
  const dst = new Caster(h.net, "dst.example", 2102, (req, c) => {
    c.write(enc.encode(req.startsWith("POST") ? "HTTP/1.0 200 OK\r\nServer: old\r\n\r\n" : ICY));
  });
  await begin(h);
  src.send(rtcmFrame(1005, 19));
  await settle();
  assert(dst.requests[0].startsWith("POST /DST HTTP/1.1\r\n"), dst.requests[0]);
  assert(dst.requests[0].includes("Transfer-Encoding: chunked"));
  await advance(h.clock, 0, 1);
  assert(dst.requests[1].startsWith("SOURCE p /DST\r\n"), dst.requests[1]);
  assertEquals(h.worker.state, "RUNNING");
  await h.worker.stop();
});

Deno.test("NTRIP 2 both ways: chunked source reply decoded, chunked push encoded", async () => {
  const h = harness(station({
    source: { host: "src.example", port: 2101, mount: "SRC", version: 2, tls: false, via: "auto" },
    destination: {
      host: "dst.example",
      port: 2102,
      mount: "DST",
      user: "u",
      password: "p",
      version: 2,
      tls: false,
      via: "auto",
    },
  }));
  const src = new Caster(h.net, "src.example", 2101, (_, c) => {
    c.write(enc.encode("HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\nTransfer-Encoding: chunked\r\n\r\n"));
  });
  const dst = new Caster(h.net, "dst.example", 2102, (_, c) => {
    c.write(enc.encode("HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\n\r\n"));
  });
  await begin(h);
  assert(
    src.requests[0].startsWith("GET /SRC HTTP/1.1\r\nHost: src.example:2101\r\nNtrip-Version: Ntrip/2.0\r\n"),
  );
  assert(!src.requests[0].includes("Authorization"), "an open mount gets no credentials");
  const f1 = rtcmFrame(1005, 19), f2 = rtcmFrame(1077, 33);
  const chunk = (b: Uint8Array) =>
    concat([enc.encode(b.length.toString(16) + "\r\n"), b, enc.encode("\r\n")]);
  src.send(chunk(f1));
  await settle();
  assertEquals(h.worker.state, "RUNNING");
  const both = chunk(concat([f2, f1]));
  src.send(both.subarray(0, 7));
  await settle();
  src.send(both.subarray(7));
  await settle();
  assertEquals(dst.after[0], String.fromCharCode(...chunk(concat([f2, f1]))));
  assertEquals(h.worker.source.version, 2);
  await h.worker.stop();
});

Deno.test("src_ntrip_version auto: NTRIP 2 first; a caster that refuses it is asked in NTRIP 1 at once", async () => {
  const h = harness(station({
    source: { host: "src.example", port: 2101, mount: "SRC", version: "auto", tls: false, via: "auto" },
  }));
  const src = new Caster(h.net, "src.example", 2101, (req, c) => {
    c.write(enc.encode(req.includes("HTTP/1.1") ? "HTTP/1.0 400 Bad Request\r\n\r\n" : ICY));
  });
  await begin(h);
  await advance(h.clock, 100);
  assertEquals(src.requests.length, 2);
  assert(src.requests[1].startsWith("GET /SRC HTTP/1.0"));
  assertEquals(h.worker.state, "WAITING_DATA");
  assertEquals(h.worker.source.version, 1);
  await h.worker.stop();
});

Deno.test("format raw: bytes forwarded as they come (RTCM 2 / CMR sources)", async () => {
  const h = harness(station({ format: "raw" }));
  const c = acceptingCasters(h.net);
  await begin(h);
  c.src.send("Y]h|bk\\_dHpa}pK@@@");
  await settle();
  assertEquals(h.worker.state, "RUNNING");
  c.src.send("hFXCB`d");
  await settle();
  assertEquals(c.dst.after[0], "hFXCB`d");
  assertEquals(h.worker.bytesIn, 25);
  await h.worker.stop();
});

Deno.test("ICY with the caster's blank line arriving separately: the blank line is not data", async () => {
  const h = harness(station({ format: "raw" }));
  const src = answering(h.net, "src.example", 2101, ICY);
  const dst = answering(h.net, "dst.example", 2102, ICY);
  await begin(h);
  src.send("\r\n");
  await settle();
  assertEquals(h.worker.state, "WAITING_DATA");
  src.send("AB");
  await settle();
  src.send("CD");
  await settle();
  assertEquals(dst.after[0], "CD");
  assertEquals(h.worker.bytesIn, 4);
  await h.worker.stop();
});

Deno.test("DISABLED stations never dial; stop() leaves no timer and releases the tunnel lease once", async () => {
  const h = harness(station({ enable: false }));
  h.worker.start();
  await advance(h.clock, 60_000, 10_000);
  assertEquals(h.worker.state, "DISABLED");
  assertEquals(h.net.dials.length, 0);
  await h.worker.stop();
  assertEquals(h.released, 0);
  const r = harness(station());
  acceptingCasters(r.net);
  await begin(r);
  await r.worker.stop();
  await r.worker.stop();
  assertEquals(r.released, 1);
  assertEquals(r.clock.pendingTimers, 0);
});

Deno.test("dial limiter: at most 50 dials in flight across 80 stations; the rest wait their turn", async () => {
  const clock = new ManualClock();
  const net = new MemoryNet();
  net.on("src.example", 2101, "hang");
  const limiter = new DialLimiter();
  const workers = Array.from(
    { length: 80 },
    (_, i) => harness(station({ id: `S${i}` }), { clock, net, limiter }).worker,
  );
  for (const w of workers) w.start();
  clock.advance(0);
  await settle();
  assertEquals(limiter.inFlight, 50);
  assertEquals(limiter.waiting, 30);
  assertEquals(net.dials.length, 50);
  await advance(clock, 10_000, 1000); // the first 50 time out; 30 more dial
  assertEquals(limiter.peak, 50);
  assertEquals(net.dials.length, 80);
  await Promise.all(workers.map((w) => w.stop()));
  assertEquals(limiter.inFlight, 0);
  assertEquals(limiter.waiting, 0);
});

Deno.test("dial limiter: FIFO, an aborted waiter leaves the queue, release is idempotent", async () => {
  const l = new DialLimiter(1);
  const r1 = await l.acquire();
  const order: number[] = [];
  const ac = new AbortController();
  const p2 = l.acquire().then((r) => (order.push(2), r));
  const p3 = l.acquire(ac.signal).then(() => order.push(3), () => order.push(-3));
  const p4 = l.acquire().then((r) => (order.push(4), r));
  ac.abort();
  await p3;
  r1();
  r1();
  (await p2)();
  (await p4)();
  assertEquals(order, [-3, 2, 4]);
  assertEquals(l.inFlight, 0);
});

Deno.test("start spread: 300 stations over 30 s, 100 ms apart; a few stations 200 ms apart", () => {
  assertEquals(startSpreadMs(0, 300), 0);
  assertEquals(startSpreadMs(1, 300), 100);
  assertEquals(startSpreadMs(299, 300), 29_900);
  assertEquals(startSpreadMs(2, 3), 400);
  assertEquals(startSpreadMs(0, 1), 0);
});

Deno.test("rtcmFrame helper builds frames the scanner accepts", () => {
  const f = rtcmFrame(1005, 19);
  assertEquals(f.length, 25);
  assertEquals(dec.decode(new Uint8Array([0x41])), "A");
});
