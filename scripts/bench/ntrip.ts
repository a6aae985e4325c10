/**
 * NTRIP relay, N stations (default 300) in ONE `wgedge ntrip relay` process, each station with its own
 * WireGuard tunnel, sources at their real rate (issue 10, shared/spec/ntrip.md).
 *
 *   deno run -A scripts/bench/ntrip.ts [--stations 300] [--seconds 60] [--settle-seconds 10]
 *     [--running-timeout 300] [--down-seconds 0] [--burst] [--quick] [--relay-deno-flags="FLAGS"] [--relay-output FILE]
 *
 * --quick is for development: 10 stations, 15 s windows, 3 s settle (flags given explicitly win).
 * --relay-deno-flags adds `deno run` flags to the relay under test, for profiling: e.g.
 * "--inspect=127.0.0.1:9229" (heap snapshots or a CPU profile of one window over CDP, from inside the relay
 * namespace) or "--cpu-prof --cpu-prof-dir=DIR" (the whole run); their cost is in the figures then.
 * --relay-output FILE keeps the relay's whole stdout and stderr there (with "--v8-flags=--trace-gc": the heap
 * at every collection); otherwise the run only summarizes its log.
 *
 * Topology (two network namespaces created here; nothing is configured on the host):
 *   relay namespace: one wireguard-go, the hub (UDP 51820 on this namespace's loopback, N peers by
 *     `wg setconf`, one /32 each: 10.78.1.1 .. 10.78.1.200, 10.78.2.1 ...); the relay under test,
 *     `wgedge ntrip relay -c stations.json --admin-listen 127.0.0.1:18081`; the destination, a wgedge caster
 *     (`wgedge ntrip caster --listen 127.0.0.1:2102`, N open mounts, admin 127.0.0.1:18082).
 *   source namespace: the hub's TUN interface, moved here (wireguard-go follows its TUN across namespaces)
 *     with 10.78.0.1/16; the source caster, a wgedge caster bound to 10.78.0.1:2101 (N mounts, each with a
 *     user and a source password, admin 127.0.0.1:18083 in this namespace); the pusher, this script in
 *     --pusher-worker mode: ONE process that opens N NTRIP v1 `SOURCE` pushes, one per mount, and feeds each
 *     a real recording at its real rate, one epoch per second (lighter than N str2str processes).
 *   Station i: source 10.78.0.1:2101/Mxxxx (rover login, src_ntrip_version auto) through its own tunnel,
 *   `wg_config` in seed 000's pipe form `PrivateKey|PublicKey|127.0.0.1:51820|10.78.a.b`; destination
 *   127.0.0.1:2102/Mxxxx (v1 SOURCE) with `dst_via: "direct"`; lat/lon, GGA every 10 s. The relay namespace
 *   has no route to 10.78.0.0/16: the source caster is reachable only through the tunnels.
 *
 * Recordings (tests/fixtures/rtcm3/, all 1 Hz): f9t.rtcm3 (7 frames, ~946 bytes an epoch), GMSD7_20121014.rtcm3
 * (MSM7, ~4.4 frames, ~1 KiB), testglo.rtcm3 (legacy 1004/1012, ~2.3 frames, ~311 bytes), station i gets
 * recording i mod 3 from its own starting epoch and loops it. An epoch is a run of frames from one frame of
 * the recording's first observation type to the next (the frames carry their epoch times; each advances by
 * 1 s). The N pushes send at phases spread evenly over each second; --burst sends them all at the top of the
 * second, as a GNSS network's GPS-synchronised receivers do.
 *
 * Measured, for the relay process (from /proc/PID; the admin API is not polled inside CPU windows):
 *   - time from spawning the relay until /api/v1/ntrip shows all N stations RUNNING (the relay's own dial
 *     limit and start spread apply; `dials.peak` is reported);
 *   - after settle-seconds, a steady window of --seconds: CPU (utime + stime, % of one core), RSS (VmRSS) at
 *     its start and end, PSS (smaps_rollup), RssAnon / RssFile and peak RSS (VmHWM) at its end, the frames of
 *     every station over the window, and the 1-minute load average every 5 s; the CPU of the hub, both
 *     casters and the pusher over the same window, for context (they share the machine's cores);
 *   - the source caster killed (SIGKILL): time until no station is RUNNING; restarted (after --down-seconds):
 *     time until all N are RUNNING again with a new source session each; then settle and a second window with
 *     the same measures.
 * Frames: at each window edge the pusher holds its next epochs ("pause"), the three processes' counters are
 * read once a second until two reads agree (nothing in flight any more), and the pusher resumes; so the
 * window's frames are exact, with no allowance for frames in flight. Per station the deltas of five counters
 * must be equal: the pusher's frames written, the source caster's mount frames, the relay station's frames
 * received and frames written out, and the destination caster's mount frames.
 *
 * Needs root, ip netns, wireguard-go, wg, curl. Traffic stays inside the two namespaces; every process
 * started here is stopped by its pid, the namespaces, /var/run/wireguard/<ifc>.sock (the name carries this
 * process's pid) and the temp directory removed, on success, on error and on Ctrl-C. One wireguard-go is one
 * inotify instance, so fs.inotify limits are not touched. Not a test: nothing is asserted; the goals from the
 * issue are printed beside the figures.
 */
import { parseArgs } from "node:util";
import { DENO_JSON, interopUnavailable, MAIN_TS } from "../../tests/helpers/interop.ts";
import {
  cleanupOnSignals,
  cpuSeconds,
  denoRun,
  execedInto,
  loadAverage,
  logText,
  memKiB,
  MiB,
  numberFlag,
  type Proc,
  Resources,
  run,
  sleep,
  stopProc,
  waitUntil,
} from "./lib/proc.ts";
import { genKeys, hubConf, type KeyPair, PID36, startHub, tunnelIps, upWithAddress } from "./lib/hub.ts";
import { checkout, firstLine, logSummary as summarize, machineLine, topCounts } from "./lib/report.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    stations: { type: "string" },
    seconds: { type: "string" },
    "settle-seconds": { type: "string" },
    "running-timeout": { type: "string", default: "300" },
    "down-seconds": { type: "string", default: "0" },
    burst: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
    // Extra `deno run` flags for the relay under test (profiling: "--cpu-prof --cpu-prof-dir=DIR", "--inspect").
    "relay-deno-flags": { type: "string", default: "" },
    // Where to keep the relay's whole output (e.g. a --v8-flags=--trace-gc trace); otherwise only summarized.
    "relay-output": { type: "string" },
    // Internal: the pacing pusher run inside the source namespace.
    "pusher-worker": { type: "boolean", default: false },
    target: { type: "string", default: "10.78.0.1:2101" },
    mounts: { type: "string", default: "1" },
    password: { type: "string", default: "" },
    "max-seconds": { type: "string", default: "7200" },
  },
});

const QUICK = values.quick;
const N = numberFlag("stations", values.stations, QUICK ? 10 : 300, 1, 1000);
if (!Number.isInteger(N)) {
  console.error(`--stations: expected a whole number, got "${values.stations}"`);
  Deno.exit(2);
}
const WINDOW_SECONDS = numberFlag("seconds", values.seconds, QUICK ? 15 : 60, 5, 3600);
const SETTLE_SECONDS = numberFlag("settle-seconds", values["settle-seconds"], QUICK ? 3 : 10, 0, 600);
const RUNNING_TIMEOUT = numberFlag("running-timeout", values["running-timeout"], 300, 10, 3600);
const DOWN_SECONDS = numberFlag("down-seconds", values["down-seconds"], 0, 0, 600);
const BURST = values.burst;

const SCRIPT = new URL(import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname;
const FIXTURES = new URL("../../tests/fixtures/rtcm3/", import.meta.url).pathname;
const RECORDINGS = ["f9t.rtcm3", "GMSD7_20121014.rtcm3", "testglo.rtcm3"];
const DENO = Deno.execPath();
const HUB_IP = "10.78.0.1";
const HUB_PORT = 51820;
const SRC_PORT = 2101;
const DST_PORT = 2102;
const RELAY_ADMIN = 18081;
const DST_ADMIN = 18082;
const SRC_ADMIN = 18083;
const ROVER = "rover";
const ROVER_PW = "bench-rover-pw";
const SRC_SOURCE_PW = "bench-source-pw";
const DST_SOURCE_PW = "bench-dst-pw";

const mountName = (i: number) => `M${String(i + 1).padStart(4, "0")}`;
const stationId = (i: number) => `S${String(i + 1).padStart(4, "0")}`;
/** The inner address of tunnel i (0-based): 10.78.1.1 .. 10.78.1.200, 10.78.2.1, ... */
const tunnelIp = tunnelIps("10.78");

// ---------------------------------------------------------------------------------------------------------
// RTCM3 framing of our own (not the code under test): CRC-24Q, epochs

function crc24q(b: Uint8Array, n: number): number {
  let crc = 0;
  for (let i = 0; i < n; i++) {
    crc ^= b[i] << 16;
    for (let j = 0; j < 8; j++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

/** The CRC-valid frames of a recording, in order (a truncated tail is left out). */
function framesOf(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i + 6 <= b.length) {
    if (b[i] !== 0xd3 || (b[i + 1] & 0xfc) !== 0) {
      i++;
      continue;
    }
    const len = ((b[i + 1] & 3) << 8) | b[i + 2];
    if (i + 6 + len > b.length) break;
    const crc = (b[i + 3 + len] << 16) | (b[i + 4 + len] << 8) | b[i + 5 + len];
    if (crc24q(b.subarray(i), 3 + len) === crc) {
      out.push(b.subarray(i, i + 6 + len));
      i += 6 + len;
    } else i++;
  }
  return out;
}

const frameType = (f: Uint8Array) => (f[3] << 4) | (f[4] >> 4);
const isObservation = (t: number) =>
  (t >= 1001 && t <= 1004) || (t >= 1009 && t <= 1012) || (t >= 1071 && t <= 1137);

interface Epoch {
  bytes: Uint8Array;
  frames: number;
}

/** Epochs: from one frame of the first observation type to the next (frames before the first join it). */
function epochsOf(bytes: Uint8Array): Epoch[] {
  const frames = framesOf(bytes);
  const lead = frames.map(frameType).find(isObservation);
  const groups: Uint8Array[][] = [];
  let cur: Uint8Array[] = [];
  for (const f of frames) {
    if (frameType(f) === lead && cur.some((g) => frameType(g) === lead)) {
      groups.push(cur);
      cur = [];
    }
    cur.push(f);
  }
  if (cur.length) groups.push(cur);
  return groups.map((g) => {
    const out = new Uint8Array(g.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of g) {
      out.set(f, at);
      at += f.length;
    }
    return { bytes: out, frames: g.length };
  });
}

// ---------------------------------------------------------------------------------------------------------
// --pusher-worker: N NTRIP v1 SOURCE pushes, each a recording at one epoch per second. Commands on stdin
// (one per line): "pause" (hold the next epochs; answered once no write is in progress), "resume", "counts".
// Answers and events are JSON lines on stdout. It exits when stdin closes or after --max-seconds.

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`${what}: timed out`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function closeQuietly(c: Deno.Conn | undefined): void {
  try {
    c?.close();
  } catch { /* closed */ }
}

async function pusherWorker(): Promise<void> {
  const target = values.target;
  const host = target.slice(0, target.lastIndexOf(":"));
  const port = Number(target.slice(target.lastIndexOf(":") + 1));
  const n = Number(values.mounts);
  const password = values.password;
  const maxSeconds = Number(values["max-seconds"]);
  // Bounded lifetime: the parent closes stdin (or kills this process); this is the backstop.
  setTimeout(() => Deno.exit(0), maxSeconds * 1000);
  const recordings = RECORDINGS.map((f) => epochsOf(Deno.readFileSync(FIXTURES + f)));
  const enc = new TextEncoder();
  const out = (o: unknown) => console.log(JSON.stringify(o));
  const sent = new Array<number>(n).fill(0);
  const conns = new Array<Deno.Conn | undefined>(n).fill(undefined);
  const logins = new Array<number>(n).fill(0);
  const errors = new Map<string, number>();
  const error = (e: unknown) => {
    const m = (e as Error).message?.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, "ADDR").slice(0, 120) ?? String(e);
    errors.set(m, (errors.get(m) ?? 0) + 1);
  };
  let paused = false;
  let writing = 0;
  let stopping = false;
  let readySent = false;
  const base = performance.now();

  /** One v1 SOURCE login; resolves with the connection once the caster answered a line with OK. */
  const login = async (i: number): Promise<Deno.Conn> => {
    const conn = await withTimeout(
      Deno.connect({ hostname: host, port }).then((c) => {
        if (stopping) closeQuietly(c);
        return c;
      }),
      10_000,
      "connect",
    );
    try {
      await withTimeout(
        conn.write(enc.encode(
          `SOURCE ${password} /${mountName(i)}\r\nSource-Agent: NTRIP wgedge-bench-pusher\r\n\r\n`,
        )),
        10_000,
        "write head",
      );
      const buf = new Uint8Array(512);
      let head = "";
      for (let k = 0; k < 16 && !head.includes("\n"); k++) {
        const r = await withTimeout(conn.read(buf), 10_000, "reply");
        if (r === null) break;
        head += new TextDecoder().decode(buf.subarray(0, r));
      }
      const line = head.split("\r\n")[0];
      if (!line.includes("OK")) throw new Error(`refused: ${line.slice(0, 80) || "(closed)"}`);
      // The caster sends nothing after OK; a pending read notices when it closes the connection. It ends
      // at the latest when this process does (stdin closed, or --max-seconds), which closes every conn.
      (async () => {
        for (let k = 0; k < 1_000_000; k++) if ((await conn.read(buf)) === null) break;
      })().catch(() => {}).finally(() => {
        if (conns[i] === conn) conns[i] = undefined;
        closeQuietly(conn);
      });
      return conn;
    } catch (e) {
      closeQuietly(conn);
      throw e;
    }
  };

  const mountLoop = async (i: number) => {
    const epochs = recordings[i % recordings.length];
    let e = (i * 7) % epochs.length;
    const phase = BURST ? 0 : (i * 1000) / n;
    // The tick (whole seconds after base + phase) this mount sends at next: at most one epoch per tick, even
    // when a timer fires a little early.
    let tick = 0;
    // Each pass waits for this mount's next tick or 1 s after a failed login: bounded.
    for (let k = 0; k < maxSeconds * 2 + 100 && !stopping; k++) {
      if (!conns[i]) {
        try {
          conns[i] = await login(i);
          logins[i]++;
        } catch (err) {
          error(err);
          await sleep(1000);
          continue;
        }
      }
      if (!readySent && conns.every(Boolean)) {
        readySent = true;
        out({ ready: true, seconds: (performance.now() - base) / 1000 });
      }
      const now = performance.now();
      tick = Math.max(tick + 1, Math.floor((now - base - phase) / 1000) + 1);
      await sleep(base + phase + tick * 1000 - now);
      const conn = conns[i];
      if (paused || !conn || stopping) continue;
      writing++;
      try {
        const epoch = epochs[e];
        let at = 0;
        for (let w = 0; w < 1000 && at < epoch.bytes.length; w++) {
          at += await withTimeout(conn.write(epoch.bytes.subarray(at)), 5000, "write");
        }
        sent[i] += epoch.frames;
        e = (e + 1) % epochs.length;
      } catch (err) {
        error(err);
        if (conns[i] === conn) conns[i] = undefined;
        closeQuietly(conn);
      } finally {
        writing--;
      }
    }
  };

  const counts = () => ({
    sent,
    connected: conns.filter(Boolean).length,
    logins: logins.reduce((a, b) => a + b, 0),
    errors: Object.fromEntries(errors),
  });

  const loops = Array.from({ length: n }, (_, i) => mountLoop(i));
  // Commands from the parent; stdin closing means the parent is gone.
  const dec = new TextDecoder();
  let pending = "";
  for await (const chunk of Deno.stdin.readable) {
    pending += dec.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const cmd of lines.map((l) => l.trim())) {
      if (cmd === "pause") {
        paused = true;
        for (let k = 0; k < 200 && writing > 0; k++) await sleep(50);
        out({ paused: true, writing, ...counts() });
      } else if (cmd === "resume") {
        paused = false;
        out({ resumed: true });
      } else if (cmd === "counts") {
        out({ counts: true, ...counts() });
      }
    }
  }
  stopping = true;
  for (const c of conns) closeQuietly(c);
  await Promise.race([Promise.all(loops), sleep(3000)]);
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// /proc readings

interface Mem {
  rssMiB: number;
  pssMiB: number;
  hwmMiB: number;
  /** RssAnon (heap, stacks) and RssFile (mapped files: the deno binary) of /proc/PID/status. */
  anonMiB: number;
  fileMiB: number;
}

function memOf(pid: number): Mem {
  try {
    const m = memKiB(pid);
    return {
      rssMiB: MiB(m.rss),
      hwmMiB: MiB(m.hwm),
      pssMiB: MiB(m.pss),
      anonMiB: MiB(m.anon),
      fileMiB: MiB(m.file),
    };
  } catch {
    return { rssMiB: NaN, pssMiB: NaN, hwmMiB: NaN, anonMiB: NaN, fileMiB: NaN };
  }
}

/** The 1-minute load average every 5 s while running; stop() gives min / mean / max. */
function loadSampler(): { stop: () => { min: number; mean: number; max: number; samples: number } } {
  const xs: number[] = [];
  const take = () => xs.push(Number(loadAverage().split(" ")[0]));
  take();
  const timer = setInterval(take, 5000);
  return {
    stop() {
      clearInterval(timer);
      take();
      return {
        min: Math.min(...xs),
        mean: xs.reduce((a, b) => a + b, 0) / xs.length,
        max: Math.max(...xs),
        samples: xs.length,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Keys, configs

function stationsJson(keys: KeyPair[], hub: KeyPair): string {
  return JSON.stringify(
    keys.map((k, i) => ({
      id: stationId(i),
      enable: true,
      src_host: HUB_IP,
      src_port: SRC_PORT,
      src_mount: mountName(i),
      src_user: ROVER,
      src_pass: ROVER_PW,
      src_ntrip_version: "auto",
      dst_host: "127.0.0.1",
      dst_port: DST_PORT,
      dst_mount: mountName(i),
      dst_pass: DST_SOURCE_PW,
      dst_via: "direct",
      wg_config: `${k.privateKey}|${hub.publicKey}|127.0.0.1:${HUB_PORT}|${tunnelIp(i)}`,
      lat: 44.06 + i * 0.001,
      lon: -121.32,
      alt: 1100,
      gga_interval: 10,
    })),
    null,
    1,
  );
}

// ---------------------------------------------------------------------------------------------------------
// The admin API (inside the namespaces: curl there)

async function getJson<T>(ns: string, port: number, path: string): Promise<T> {
  const r = await run(
    ["ip", "netns", "exec", ns, "curl", "-sS", "-m", "10", `http://127.0.0.1:${port}${path}`],
    { check: false, timeoutMs: 20_000 },
  );
  if (r.code !== 0) throw new Error(`GET ${path} on :${port}: curl exited ${r.code}: ${r.stderr.trim()}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`GET ${path} on :${port}: not JSON: ${r.stdout.slice(0, 200)}`);
  }
}

interface StationView {
  id: string;
  state: string;
  lastError: { side: string; kind: string; message: string } | null;
  source: { phase: string; path: string | null; attempts: number; lastReply: string | null };
  destination: { phase: string; path: string | null; attempts: number; lastReply: string | null };
  frames: number;
  framesOut: number;
  crcErrors: number;
  bytesIn: number;
  bytesOut: number;
  backlogBytes: number;
}

interface NtripView {
  stations: StationView[];
  dials: { inFlight: number; waiting: number; peak: number };
}

interface MountView {
  mount: string;
  source: unknown | null;
  clients: unknown[];
  frames: number;
  crcErrors: number;
  skippedBytes: number;
  sourcesAccepted: number;
  sourcesDroppedIdle: number;
  clientsDroppedSlow: number;
}

interface CasterView {
  mounts: MountView[];
  rejected: Record<string, number>;
}

interface Ctx {
  relayNs: string;
  srcNs: string;
  hubIfc: string;
}

const relayView = (c: Ctx) => getJson<NtripView>(c.relayNs, RELAY_ADMIN, "/api/v1/ntrip");
const casterView = async (ns: string, port: number) =>
  (await getJson<{ ntrip_caster?: CasterView }>(ns, port, "/api/v1/status")).ntrip_caster ??
    { mounts: [], rejected: {} };

function stateCounts(v: NtripView): string {
  const m = new Map<string, number>();
  for (const s of v.stations) m.set(s.state, (m.get(s.state) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ");
}

/** The warn/error lines of a wgedge JSON log, counted by level and message. */
function logSummary(text: string): string {
  return summarize(
    text,
    (j, line) =>
      `${j.level}: ${j.msg ?? line.slice(0, 120)}${j.error ? ` (${String(j.error).slice(0, 100)})` : ""}`,
    160,
  );
}

/** The info lines of a wgedge JSON log, counted by message (the most frequent ones). */
function infoSummary(text: string): string {
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    try {
      const j = JSON.parse(line) as { level?: string; msg?: string };
      if (j.level === "info" && j.msg) counts.set(j.msg, (counts.get(j.msg) ?? 0) + 1);
    } catch { /* not JSON */ }
  }
  return topCounts(counts, 10) || "none";
}

// ---------------------------------------------------------------------------------------------------------
// The pusher, seen from the parent

class Pusher {
  #seen = 0;
  constructor(readonly proc: Proc) {}

  #lines(): Record<string, unknown>[] {
    return this.proc.stdout.text().split("\n").filter((l) => l.startsWith("{")).map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
  }

  /** Waits (bounded) for the first line with `key` after the ones already consumed. */
  async next(key: string, timeoutMs: number): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await waitUntil(
      () => {
        if (this.proc.exited()) {
          throw new Error(
            `the pusher exited (${this.proc.how}): ${this.proc.stderr.text()}`,
          );
        }
        const lines = this.#lines();
        for (let i = this.#seen; i < lines.length; i++) {
          if (key in lines[i]) {
            found = lines[i];
            this.#seen = i + 1;
            return true;
          }
        }
        return false;
      },
      `the pusher's "${key}"`,
      timeoutMs,
      20,
    );
    return found!;
  }

  async command(cmd: string, key: string): Promise<Record<string, unknown>> {
    await withTimeout(this.proc.stdin!.write(new TextEncoder().encode(cmd + "\n")), 10_000, `pusher ${cmd}`);
    return await this.next(key, 20_000);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Window edges: exact frame counts

interface Edge {
  /** When the pusher was told to pause, and when it resumed (performance.now()). */
  at: number;
  resumedAt: number;
  /** Per station (index), the five counters. */
  pushed: number[];
  srcCaster: number[];
  relayIn: number[];
  relayOut: number[];
  dstCaster: number[];
  /** Seconds from the pause until the counters stood still; NaN if they never did. */
  quietAfter: number;
  relay: NtripView;
  src: CasterView;
  dst: CasterView;
}

function byMount(v: CasterView): number[] {
  const m = new Map(v.mounts.map((x) => [x.mount, x.frames]));
  return Array.from({ length: N }, (_, i) => m.get(mountName(i)) ?? NaN);
}

function byStation(v: NtripView, key: "frames" | "framesOut"): number[] {
  const m = new Map(v.stations.map((s) => [s.id, s[key]]));
  return Array.from({ length: N }, (_, i) => m.get(stationId(i)) ?? NaN);
}

/** Pauses the pusher, reads every counter until two reads a second apart agree, resumes the pusher. */
async function edge(c: Ctx, pusher: Pusher): Promise<Edge> {
  const ack = await pusher.command("pause", "paused");
  const t0 = performance.now();
  let prev = "";
  let quietAfter = NaN;
  let snap: { src: CasterView; dst: CasterView; relay: NtripView } | undefined;
  for (let k = 0; k < 20; k++) {
    await sleep(1000);
    snap = {
      src: await casterView(c.srcNs, SRC_ADMIN),
      dst: await casterView(c.relayNs, DST_ADMIN),
      relay: await relayView(c),
    };
    const key = JSON.stringify([
      byMount(snap.src),
      byMount(snap.dst),
      byStation(snap.relay, "frames"),
      byStation(snap.relay, "framesOut"),
    ]);
    if (key === prev) {
      quietAfter = (performance.now() - t0) / 1000;
      break;
    }
    prev = key;
  }
  await pusher.command("resume", "resumed");
  return {
    at: t0,
    resumedAt: performance.now(),
    pushed: ack.sent as number[],
    srcCaster: byMount(snap!.src),
    relayIn: byStation(snap!.relay, "frames"),
    relayOut: byStation(snap!.relay, "framesOut"),
    dstCaster: byMount(snap!.dst),
    quietAfter,
    relay: snap!.relay,
    src: snap!.src,
    dst: snap!.dst,
  };
}

interface FrameCheck {
  equal: number;
  total: number;
  minPerStation: number;
  mismatches: string[];
}

function compareFrames(a: Edge, b: Edge): FrameCheck {
  const stages = ["pusher wrote", "source caster", "relay in", "relay out", "destination caster"] as const;
  const d = (k: keyof Pick<Edge, "pushed" | "srcCaster" | "relayIn" | "relayOut" | "dstCaster">) =>
    b[k].map((x, i) => x - a[k][i]);
  const deltas = [d("pushed"), d("srcCaster"), d("relayIn"), d("relayOut"), d("dstCaster")];
  let equal = 0, total = 0, minPer = Infinity;
  const mismatches: string[] = [];
  for (let i = 0; i < N; i++) {
    const row = deltas.map((x) => x[i]);
    total += row[0];
    minPer = Math.min(minPer, row[0]);
    if (row.every((x) => x === row[0]) && row[0] > 0) equal++;
    else mismatches.push(`${stationId(i)}: ${row.map((x, k) => `${stages[k]} ${x}`).join(", ")}`);
  }
  return { equal, total, minPerStation: minPer, mismatches };
}

interface WindowResult {
  label: string;
  cpuPct: number;
  seconds: number;
  memStart: Mem;
  memEnd: Mem;
  frames: FrameCheck;
  /** Seconds the pusher sent between the two edges, and the relay's bytes in over them. */
  sendSeconds: number;
  bytesIn: number;
  quiet: [number, number];
  load: { min: number; mean: number; max: number; samples: number };
  others: Record<string, number>;
  backlogMax: number;
}

/** settle, edge, CPU window (nothing polls the relay), edge. */
async function measureWindow(
  c: Ctx,
  label: string,
  relayPid: number,
  pusher: Pusher,
  others: Record<string, number>,
): Promise<WindowResult> {
  console.error(
    `  ${label}: settle ${SETTLE_SECONDS} s, then a ${WINDOW_SECONDS} s window (load ${loadAverage()})`,
  );
  await sleep(SETTLE_SECONDS * 1000);
  const a = await edge(c, pusher);
  const load = loadSampler();
  const memStart = memOf(relayPid);
  const c0 = cpuSeconds(relayPid);
  const o0 = Object.fromEntries(Object.entries(others).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const w0 = performance.now();
  await sleep(WINDOW_SECONDS * 1000);
  const wall = (performance.now() - w0) / 1000;
  const cpuPct = (cpuSeconds(relayPid) - c0) / wall * 100;
  const o1 = Object.fromEntries(
    Object.entries(others).map(([k, pid]) => [k, (cpuSeconds(pid) - o0[k]) / wall * 100]),
  );
  const memEnd = memOf(relayPid);
  const loadStats = load.stop();
  const b = await edge(c, pusher);
  const frames = compareFrames(a, b);
  console.error(
    `  ${label}: CPU ${cpuPct.toFixed(2)} %, RSS ${memEnd.rssMiB.toFixed(1)} MiB, frames equal for ` +
      `${frames.equal}/${N} stations (${frames.total} frames)`,
  );
  return {
    label,
    cpuPct,
    seconds: (b.at - a.at) / 1000,
    sendSeconds: (b.at - a.resumedAt) / 1000,
    bytesIn: b.relay.stations.reduce((sum, s) => sum + s.bytesIn, 0) -
      a.relay.stations.reduce((sum, s) => sum + s.bytesIn, 0),
    memStart,
    memEnd,
    frames,
    quiet: [a.quietAfter, b.quietAfter],
    load: loadStats,
    others: o1,
    backlogMax: Math.max(...b.relay.stations.map((s) => s.backlogBytes ?? 0)),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The run

interface Result {
  startedAt: Date;
  allRunningSeconds: number;
  firstRunningSeconds: number;
  adminUpSeconds: number;
  dialPeak: number;
  running: number;
  steady?: WindowResult;
  killNoticedSeconds: number;
  noticed: number;
  sourcesBackSeconds: number;
  againSeconds: number;
  againRunning: number;
  recoveryErrors: string;
  after?: WindowResult;
  notes: string[];
}

function emptyResult(): Result {
  return {
    startedAt: new Date(),
    allRunningSeconds: NaN,
    firstRunningSeconds: NaN,
    adminUpSeconds: NaN,
    dialPeak: NaN,
    running: 0,
    killNoticedSeconds: NaN,
    noticed: 0,
    sourcesBackSeconds: NaN,
    againSeconds: NaN,
    againRunning: 0,
    recoveryErrors: "",
    notes: [],
  };
}

function casterArgs(listen: string, mounts: string, admin: number): string[] {
  return denoRun(
    MAIN_TS,
    "ntrip",
    "caster",
    "--listen",
    listen,
    "--mounts",
    mounts,
    "--admin-listen",
    `127.0.0.1:${admin}`,
  );
}

const LOG_ENV = { WGEDGE_LOG_FORMAT: "json" };

async function waitAdmin(ns: string, port: number, p: Proc, what: string): Promise<void> {
  await waitUntil(
    async () => {
      if (p.exited()) throw new Error(`${what} exited (${p.how}): ${p.stderr.text().slice(-2000)}`);
      return (await run([
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "2",
        `http://127.0.0.1:${port}/`,
      ], {
        check: false,
        timeoutMs: 10_000,
      })).code === 0;
    },
    `${what}'s admin API`,
    120_000,
    250,
  );
}

async function startSourceCaster(res: Resources, c: Ctx, dir: string, n: number): Promise<Proc> {
  const p = res.spawnIn(
    c.srcNs,
    `source caster #${n}`,
    casterArgs(`${HUB_IP}:${SRC_PORT}`, `${dir}/src-mounts.json`, SRC_ADMIN),
    LOG_ENV,
  );
  await waitAdmin(c.srcNs, SRC_ADMIN, p, "the source caster");
  return p;
}

async function benchmark(res: Resources, r: Result): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-bench-ntrip-" });
  res.dir = dir;
  const c: Ctx = { relayNs: `nbr-${Deno.pid}`, srcNs: `nbs-${Deno.pid}`, hubIfc: `nb${PID36}h` };

  console.error(`generating ${N + 1} key pairs with wg genkey/pubkey`);
  const keys = await genKeys(N + 1);
  const hubKey = keys.pop()!;

  // Namespaces and the hub
  for (const ns of [c.relayNs, c.srcNs]) await res.addNetns(ns);
  const hub = await startHub(
    res,
    c.relayNs,
    c.hubIfc,
    `${dir}/hub.conf`,
    hubConf(hubKey, keys, HUB_PORT, tunnelIp),
  );
  await run(["ip", "-n", c.relayNs, "link", "set", c.hubIfc, "netns", c.srcNs]);
  await upWithAddress(c.srcNs, c.hubIfc, `${HUB_IP}/16`);

  // The casters and the pusher
  const mounts = (pw: string, users: boolean) =>
    JSON.stringify(Array.from({ length: N }, (_, i) => ({
      mount: mountName(i),
      source_password: pw,
      ...(users && { users: [`${ROVER}:${ROVER_PW}`] }),
    })));
  await Deno.writeTextFile(`${dir}/src-mounts.json`, mounts(SRC_SOURCE_PW, true), { mode: 0o600 });
  await Deno.writeTextFile(`${dir}/dst-mounts.json`, mounts(DST_SOURCE_PW, false), { mode: 0o600 });
  const casters: Proc[] = [await startSourceCaster(res, c, dir, 1)];
  const dst = res.spawnIn(
    c.relayNs,
    "destination caster",
    casterArgs(`127.0.0.1:${DST_PORT}`, `${dir}/dst-mounts.json`, DST_ADMIN),
    LOG_ENV,
  );
  await waitAdmin(c.relayNs, DST_ADMIN, dst, "the destination caster");
  const pusher = new Pusher(res.spawnIn(
    c.srcNs,
    "pusher",
    denoRun(
      SCRIPT,
      "--pusher-worker",
      "--target",
      `${HUB_IP}:${SRC_PORT}`,
      "--mounts",
      String(N),
      "--password",
      SRC_SOURCE_PW,
      ...(BURST ? ["--burst"] : []),
    ),
    {},
    true,
  ));
  const ready = await pusher.next("ready", 180_000);
  console.error(`pusher: ${N} SOURCE pushes logged in after ${(ready.seconds as number).toFixed(1)} s`);

  // The relay under test
  await Deno.writeTextFile(`${dir}/stations.json`, stationsJson(keys, hubKey), { mode: 0o600 });
  console.error(`starting the relay with ${N} stations (load ${loadAverage()})`);
  const t0 = performance.now();
  const relay = res.spawnIn(c.relayNs, "relay", [
    DENO,
    "run",
    "-A",
    ...(values["relay-deno-flags"] ? values["relay-deno-flags"].split(/\s+/) : []),
    "--config",
    DENO_JSON,
    MAIN_TS,
    "ntrip",
    "relay",
    "-c",
    `${dir}/stations.json`,
    "--admin-listen",
    `127.0.0.1:${RELAY_ADMIN}`,
  ], LOG_ENV);
  await execedInto(relay, "deno", "the relay pid to be deno");
  const alive = () => {
    for (const p of [relay, hub, dst, casters[casters.length - 1], pusher.proc]) {
      if (p.exited()) throw new Error(`${p.name} exited (${p.how}): ${p.stderr.text().slice(-3000)}`);
    }
  };

  // 1. all N RUNNING
  let view: NtripView | undefined;
  const deadline = t0 + RUNNING_TIMEOUT * 1000;
  for (let k = 0; k < RUNNING_TIMEOUT * 2 + 10 && performance.now() < deadline; k++) {
    alive();
    view = await relayView(c).catch(() => undefined);
    const now = (performance.now() - t0) / 1000;
    if (view) {
      if (Number.isNaN(r.adminUpSeconds)) r.adminUpSeconds = now;
      r.running = view.stations.filter((s) => s.state === "RUNNING").length;
      if (r.running > 0 && Number.isNaN(r.firstRunningSeconds)) r.firstRunningSeconds = now;
      r.dialPeak = view.dials.peak;
      if (r.running === N && view.stations.length === N) {
        r.allRunningSeconds = now;
        break;
      }
    }
    await sleep(500);
  }
  console.error(
    `  ${r.running}/${N} RUNNING after ${((performance.now() - t0) / 1000).toFixed(1)} s` +
      (view ? ` (${stateCounts(view)}; dials peak ${view.dials.peak})` : ""),
  );
  if (r.running < N) {
    const bad = view?.stations.filter((s) => s.state !== "RUNNING") ?? [];
    r.notes.push(
      `only ${r.running}/${N} RUNNING after ${RUNNING_TIMEOUT} s; e.g. ${
        bad.slice(0, 5).map((s) => `${s.id} ${s.state} ${JSON.stringify(s.lastError)}`).join(" | ")
      }`,
    );
    throw new Error(`not all stations RUNNING after ${RUNNING_TIMEOUT} s`);
  }
  if (view) {
    const paths = new Map<string, number>();
    for (const s of view.stations) {
      const k = `source ${s.source.path}, destination ${s.destination.path}`;
      paths.set(k, (paths.get(k) ?? 0) + 1);
    }
    r.notes.push(`paths: ${[...paths.entries()].map(([k, n]) => `${n} x ${k}`).join("; ")}`);
  }
  const others = () => ({
    "hub wireguard-go": hub.pid,
    "source caster": casters[casters.length - 1].pid,
    "destination caster": dst.pid,
    pusher: pusher.proc.pid,
  });

  // 2. steady window
  r.steady = await measureWindow(c, "steady", relay.pid, pusher, others());
  alive();

  // 3. kill the source caster, restart it
  const before = await relayView(c);
  const attemptsBefore = new Map(before.stations.map((s) => [s.id, s.source.attempts]));
  console.error(`killing the source caster (SIGKILL, pid ${casters[0].pid})`);
  const tk = performance.now();
  await stopProc(casters[casters.length - 1], 5000, "SIGKILL");
  for (let k = 0; k < 120; k++) {
    const v = await relayView(c);
    r.noticed = v.stations.filter((s) => s.state !== "RUNNING").length;
    if (r.noticed === N) {
      r.killNoticedSeconds = (performance.now() - tk) / 1000;
      break;
    }
    await sleep(250);
  }
  if (r.noticed < N) r.notes.push(`only ${r.noticed}/${N} stations left RUNNING within 30 s of the kill`);
  await sleep(DOWN_SECONDS * 1000);
  const tr = performance.now();
  casters.push(await startSourceCaster(res, c, dir, 2));
  const errorsSeen = new Map<string, Set<string>>();
  for (let k = 0; k < RUNNING_TIMEOUT * 2 + 10; k++) {
    alive();
    const now = (performance.now() - tr) / 1000;
    if (Number.isNaN(r.sourcesBackSeconds)) {
      const sv = await casterView(c.srcNs, SRC_ADMIN).catch(() => undefined);
      if (sv && sv.mounts.filter((m) => m.source).length === N) r.sourcesBackSeconds = now;
    }
    const v = await relayView(c);
    for (const s of v.stations) {
      if (s.lastError && (s.source.attempts > (attemptsBefore.get(s.id) ?? 0))) {
        const k = `${s.lastError.side} ${s.lastError.kind}`;
        if (!errorsSeen.has(k)) errorsSeen.set(k, new Set());
        errorsSeen.get(k)!.add(s.id);
      }
    }
    r.againRunning = v.stations.filter((s) =>
      s.state === "RUNNING" && s.source.attempts > (attemptsBefore.get(s.id) ?? 0)
    ).length;
    if (r.againRunning === N) {
      r.againSeconds = now;
      break;
    }
    if (now > RUNNING_TIMEOUT) break;
    await sleep(500);
  }
  r.recoveryErrors = [...errorsSeen.entries()].map(([k, ids]) => `${k}: ${ids.size} stations`).join("; ");
  console.error(
    `  ${r.againRunning}/${N} RUNNING again ${
      ((performance.now() - tr) / 1000).toFixed(1)
    } s after the restart` +
      ` (sources back after ${r.sourcesBackSeconds.toFixed(1)} s; last errors seen: ${
        r.recoveryErrors || "none"
      })`,
  );
  if (r.againRunning < N) {
    const v = await relayView(c);
    const bad = v.stations.filter((s) => s.state !== "RUNNING");
    r.notes.push(
      `only ${r.againRunning}/${N} RUNNING again after ${RUNNING_TIMEOUT} s (${stateCounts(v)}); e.g. ${
        bad.slice(0, 5).map((s) => `${s.id} ${s.state} ${JSON.stringify(s.lastError)}`).join(" | ")
      }`,
    );
  }

  // 4. the window after the restart
  r.after = await measureWindow(c, "after the restart", relay.pid, pusher, others());
  alive();

  // 5. what else the processes show
  const st = await getJson<
    { tunnels?: { refs?: number; peers?: { lastHandshake?: string | null; handshakes?: number }[] }[] }
  >(
    c.relayNs,
    RELAY_ADMIN,
    "/api/v1/status",
  );
  const tunnels = st.tunnels ?? [];
  const peers = tunnels.flatMap((t) => t.peers ?? []);
  r.notes.push(
    `relay /api/v1/status: ${tunnels.length} tunnels, refs ${
      tunnels.reduce((a, t) => a + (t.refs ?? 0), 0)
    }, ` +
      `${peers.filter((p) => p.lastHandshake).length}/${peers.length} peers handshaken, ` +
      `${peers.reduce((a, p) => a + (p.handshakes ?? 0), 0)} handshakes in all`,
  );
  const transfer = await run(["wg", "show", c.hubIfc, "transfer"], { check: false, timeoutMs: 20_000 });
  const tr2 = transfer.stdout.trim().split("\n").filter(Boolean).map((l) =>
    l.split("\t").slice(1).map(Number)
  );
  r.notes.push(
    `hub wg show transfer: ${
      tr2.filter(([rx, tx]) => rx > 0 && tx > 0).length
    }/${N} peers moved bytes both ways, ` +
      `${(tr2.reduce((a, [, tx]) => a + tx, 0) / 1048576).toFixed(1)} MiB to the stations in all`,
  );
  const fin = await relayView(c);
  const crc = fin.stations.reduce((a, s) => a + s.crcErrors, 0);
  r.notes.push(
    `relay: ${crc} CRC errors, destination attempts ${
      [...new Set(fin.stations.map((s) => s.destination.attempts))].join("/")
    } (1 = the destination session was kept through the source caster's restart), source attempts ${
      [...new Set(fin.stations.map((s) => s.source.attempts))].join("/")
    }`,
  );
  const pc = await pusher.command("counts", "counts");
  r.notes.push(
    `pusher: ${pc.logins} SOURCE logins for ${N} mounts, errors ${JSON.stringify(pc.errors)}`,
  );
  const dv = await casterView(c.relayNs, DST_ADMIN);
  const sv = await casterView(c.srcNs, SRC_ADMIN);
  const casterNote = (name: string, v: CasterView) =>
    `${name}: sources ${v.mounts.filter((m) => m.source).length}/${N}, clients ${
      v.mounts.reduce((a, m) => a + m.clients.length, 0)
    }, crc errors ${v.mounts.reduce((a, m) => a + m.crcErrors, 0)}, skipped bytes ${
      v.mounts.reduce((a, m) => a + m.skippedBytes, 0)
    }, sources dropped idle ${v.mounts.reduce((a, m) => a + m.sourcesDroppedIdle, 0)}, clients dropped slow ${
      v.mounts.reduce((a, m) => a + m.clientsDroppedSlow, 0)
    }, rejected ${JSON.stringify(Object.fromEntries(Object.entries(v.rejected).filter(([, n]) => n > 0)))}`;
  r.notes.push(casterNote("destination caster", dv), casterNote("source caster (restarted)", sv));
  r.notes.push(`relay info log: ${infoSummary(logText(relay))}`);

  await stopProc(relay, 10_000);
  if (values["relay-output"]) {
    await Deno.writeTextFile(values["relay-output"], relay.stdout.text() + relay.stderr.text());
    r.notes.push(`relay output kept in ${values["relay-output"]}`);
  }
  r.notes.push(
    `relay log: ${logSummary(logText(relay))} (exit: ${relay.how})`,
  );
  r.notes.push(`destination caster log: ${logSummary(logText(dst))}`);
  for (const p of casters) {
    r.notes.push(`${p.name} log: ${logSummary(logText(p))}`);
  }
  const hubOut = (hub.stdout.text() + hub.stderr.text()).split("\n").filter((l) =>
    l.trim() && !/^\s*[┌│└]/.test(l)
  );
  if (hubOut.length) r.notes.push(`hub wireguard-go output: ${hubOut.join(" | ").slice(0, 300)}`);
  if (pusher.proc.stderr.text().trim()) {
    r.notes.push(`pusher stderr: ${pusher.proc.stderr.text().slice(0, 300)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Output

const fixed = (x: number, d: number) => Number.isFinite(x) ? x.toFixed(d) : "-";

function table(r: Result): string {
  const rows: string[][] = [];
  const met = (ok: boolean) => ok ? "met" : "NOT met";
  const add = (what: string, figure: string, goal = "", verdict = "") =>
    rows.push([what, figure, goal, verdict]);
  add("stations (tunnels), one relay process", String(N));
  add(
    "all RUNNING after the relay's start, s",
    `${fixed(r.allRunningSeconds, 1)} (admin up ${fixed(r.adminUpSeconds, 1)}, first RUNNING ${
      fixed(r.firstRunningSeconds, 1)
    }, dial peak ${r.dialPeak})`,
  );
  for (const w of [r.steady, r.after]) {
    if (!w) continue;
    const l = w.label;
    add(
      `${l}: CPU, % of one core (${WINDOW_SECONDS} s)`,
      fixed(w.cpuPct, 2),
      "<= 10 %",
      Number.isFinite(w.cpuPct) ? met(w.cpuPct <= 10) : "",
    );
    add(
      `${l}: RSS at start / end of window, MiB`,
      `${fixed(w.memStart.rssMiB, 1)} / ${fixed(w.memEnd.rssMiB, 1)}`,
      "<= 200 MiB",
      Number.isFinite(w.memEnd.rssMiB) ? met(Math.max(w.memStart.rssMiB, w.memEnd.rssMiB) <= 200) : "",
    );
    add(
      `${l}: PSS at end, MiB (RSS anon / file)`,
      `${fixed(w.memEnd.pssMiB, 1)} (${fixed(w.memEnd.anonMiB, 1)} / ${fixed(w.memEnd.fileMiB, 1)})`,
    );
    add(`${l}: peak RSS so far (VmHWM), MiB`, fixed(w.memEnd.hwmMiB, 1));
    add(
      `${l}: frames delivered = sent, stations`,
      `${w.frames.equal}/${N} (${w.frames.total} frames over ${
        fixed(w.seconds, 1)
      } s, >= ${w.frames.minPerStation} each)`,
      `${N}/${N}`,
      met(w.frames.equal === N),
    );
    add(
      `${l}: offered load into the relay`,
      `${fixed(w.frames.total / w.sendSeconds, 0)} frames/s, ${
        fixed(w.bytesIn / 1024 / w.sendSeconds, 1)
      } KiB/s (${fixed(w.frames.total / w.sendSeconds / N, 2)} frames/s a station)`,
    );
    add(`${l}: counters quiet after a pause, s`, `${fixed(w.quiet[0], 1)} / ${fixed(w.quiet[1], 1)}`);
    add(
      `${l}: load average (1 min) min / mean / max`,
      `${fixed(w.load.min, 2)} / ${fixed(w.load.mean, 2)} / ${fixed(w.load.max, 2)}`,
    );
    add(
      `${l}: others' CPU, % of one core`,
      Object.entries(w.others).map(([k, v]) => `${k} ${fixed(v, 1)}`).join(", "),
    );
    if (w === r.steady) {
      add(
        "source caster killed: all stations left RUNNING after, s",
        `${fixed(r.killNoticedSeconds, 1)} (${r.noticed}/${N})`,
      );
      add(
        "restarted: all RUNNING again after, s",
        `${fixed(r.againSeconds, 1)} (${r.againRunning}/${N}; its sources back after ${
          fixed(r.sourcesBackSeconds, 1)
        })`,
        `${N}/${N}`,
        met(r.againRunning === N),
      );
    }
  }
  const header = ["measure (relay process)", "figure", "goal", "verdict"];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((l) => l[c].length)));
  const fmt = (l: string[]) => `| ${l.map((x, c) => x.padEnd(widths[c])).join(" | ")} |`;
  return [fmt(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(fmt)].join("\n");
}

async function header(): Promise<string[]> {
  const { head, dirty } = await checkout(REPO);
  return [
    await machineLine(),
    `Deno ${Deno.version.deno}; ${await firstLine(["wireguard-go", "--version"])}`,
    `commit ${head || "unknown (not a git checkout)"}${
      dirty.length ? ` (+ uncommitted under src/ or main.ts: ${dirty.map((l) => l.slice(3)).join(", ")})` : ""
    }`,
  ];
}

async function main(): Promise<void> {
  const why = await interopUnavailable(["curl"]);
  if (why) {
    console.error(`ntrip benchmark: cannot run here: ${why}`);
    Deno.exit(1);
  }
  const res = new Resources({ env: { NO_COLOR: "1" } });
  const r = emptyResult();
  const loadBefore = loadAverage();
  const signals = cleanupOnSignals(() => res.cleanup());
  let error: string | undefined;
  try {
    await benchmark(res, r);
  } catch (e) {
    error = (e as Error).stack ?? String(e);
    const gone = res.procs.filter((p) => p.exited() && p.name !== "source caster #1");
    if (gone.length) {
      error += `\n(processes that had exited: ${
        gone.map((p) => `${p.name} (${p.how}): ${p.stderr.text().slice(-500)}`).join("; ")
      })`;
    }
    console.error(`benchmark failed: ${error.slice(0, 3000)}`);
  } finally {
    await res.cleanup();
    signals.remove();
  }
  console.log(
    `\nNTRIP relay, ${N} stations, started ${r.startedAt.toISOString()}, ${
      Deno.args.join(" ") || "(defaults)"
    }`,
  );
  for (const l of await header()) console.log(l);
  console.log(`load average before: ${loadBefore}; after: ${loadAverage()}`);
  console.log(
    `recordings ${RECORDINGS.join(", ")} (station i: i mod 3), one epoch a second, ${
      BURST ? "all mounts at the top of each second" : "phases spread over the second"
    }; settle ${SETTLE_SECONDS} s before each window; source caster down ${DOWN_SECONDS} s after every station noticed\n`,
  );
  console.log(table(r));
  console.log("\nnotes:");
  if (error) console.log(`- FAILED: ${error.slice(0, 1500)}`);
  for (const note of r.notes) console.log(`- ${note}`);
  for (const w of [r.steady, r.after]) {
    if (w && w.frames.mismatches.length) {
      console.log(
        `- ${w.label}: frame mismatches (${w.frames.mismatches.length}): ${
          w.frames.mismatches.slice(0, 10).join(" | ")
        }`,
      );
    }
    if (w) console.log(`- ${w.label}: largest destination backlog at the window's end ${w.backlogMax} bytes`);
  }
  if (error || r.steady?.frames.equal !== N || r.after?.frames.equal !== N) Deno.exitCode = 1;
}

if (import.meta.main) {
  if (values["pusher-worker"]) await pusherWorker();
  else await main();
}
