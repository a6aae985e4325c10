/**
 * Tunnel throughput benchmark (issue 3). In one invocation, on the same machine:
 *
 *   (a) reference: two wireguard-go instances in two namespaces joined by a veth pair, iperf3 across the tunnel;
 *   (b) wgedge:    iperf3 client -> 127.0.0.1 -> `wgedge up --forward` (host TCP -> userspace stack ->
 *                  WireGuard in wgedge) -> UDP -> wireguard-go -> kernel iperf3 server, in one namespace;
 *   (c) in-memory: two userspace Stacks on createLinkPair (no WireGuard, no crypto), one TCP connection.
 *
 * (a) and (b) run the same matrix (1 and 4 streams, both directions); the cells alternate between the two
 * setups so load from elsewhere on the machine hits both alike. Each (b) cell starts a fresh wgedge process so
 * its CPU (utime + stime from /proc/PID/stat over the iperf3 run, as % of one core) and peak RSS (VmHWM) belong
 * to that cell alone.
 *
 *   deno run -A scripts/bench/tunnel.ts [--seconds 10] [--streams 1,4] [--direction both|forward|reverse]
 *     [--rounds 1] [--baseline DIR] [--no-in-memory] [--cpu-prof DIR] [--perf DIR]
 *   deno run -A scripts/bench/tunnel.ts --summarize-profile FILE.cpuprofile [--top 30]
 *
 * --direction picks the cells (forward: client->server, reverse: -R). --rounds N repeats the matrix and prints
 * the median of each column (a ratio is the median of the per-round ratios, each from one round's paired
 * runs). --baseline DIR measures a second wgedge tree (`git archive COMMIT | tar -x -C DIR`) in the same
 * cells, its run alternating with this tree's (which goes first alternates by round), so an A/B comparison
 * does not depend on the load of a different invocation.
 *
 * --cpu-prof DIR runs every wgedge process with `deno run --cpu-prof --cpu-prof-dir DIR`; summarize a profile
 * with --summarize-profile (busy time by category, function and source file). V8's profile samples wall
 * time, so on a loaded machine the time the process waits for a CPU lands on whatever syscall it was in.
 * --perf DIR samples only on-CPU time, kernel included: each wgedge runs with --perf-basic-prof (JS symbols in
 * /tmp/perf-PID.map) under `perf record -e cpu-clock -g` for its iperf3 run; read DIR/CELL.data with
 * `perf report -i DIR/CELL.data --no-children --sort sym`.
 *
 * Needs root, ip netns, wireguard-go, wg, iperf3 (shared/spec/testing.md). Traffic stays inside network
 * namespaces created here; they are deleted and every process killed at the end, on error and on Ctrl-C.
 */
import { parseArgs } from "node:util";
import {
  collect,
  DENO_JSON,
  interopUnavailable,
  MAIN_TS,
  Netns,
  run,
  waitFor,
  wgKeyPair,
  WireguardGo,
} from "../../tests/helpers/interop.ts";
import { createLinkPair } from "../../src/netstack/link.ts";
import { Stack } from "../../src/netstack/stack.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    streams: { type: "string", default: "1,4" },
    "cpu-prof": { type: "string" },
    perf: { type: "string" },
    "summarize-profile": { type: "string" },
    top: { type: "string", default: "30" },
    direction: { type: "string", default: "both" },
    rounds: { type: "string", default: "1" },
    baseline: { type: "string" },
    "no-in-memory": { type: "boolean", default: false },
    "in-memory-worker": { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);
if (!Number.isFinite(SECONDS) || SECONDS < 1 || SECONDS > 600) {
  console.error(`--seconds: expected a number of seconds in 1..600, got "${values.seconds}"`);
  Deno.exit(2);
}
const STREAMS = values.streams.split(",").map(Number);
if (STREAMS.some((n) => !Number.isInteger(n) || n < 1 || n > 32)) {
  console.error(
    `--streams: expected a comma-separated list of stream counts in 1..32, got "${values.streams}"`,
  );
  Deno.exit(2);
}
const DIRECTIONS: Record<string, boolean[]> = { both: [false, true], forward: [false], reverse: [true] };
if (!(values.direction in DIRECTIONS)) {
  console.error(`--direction: expected both, forward or reverse, got "${values.direction}"`);
  Deno.exit(2);
}
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50) {
  console.error(`--rounds: expected a whole number in 1..50, got "${values.rounds}"`);
  Deno.exit(2);
}
/** Another wgedge tree measured in the same cells (its main.ts with its deno.json). */
const BASELINE = values.baseline
  ? new URL(`${values.baseline.replace(/\/$/, "")}/`, `file://${Deno.cwd()}/`).pathname
  : undefined;
if (BASELINE) {
  for (const f of ["main.ts", "deno.json"]) {
    try {
      Deno.statSync(BASELINE + f);
    } catch {
      console.error(`--baseline: ${BASELINE}${f} not found (expected a wgedge tree, e.g. from git archive)`);
      Deno.exit(2);
    }
  }
}
const SCRIPT = new URL(import.meta.url).pathname;
const DENO = Deno.execPath();
/** USER_HZ: the unit of utime/stime in /proc/PID/stat on every Linux we run on. */
const CLOCK_TICKS_PER_SEC = 100;
const IPERF_PORT = 5201;
const FORWARD_PORT = 15201;

// ---------------------------------------------------------------------------------------------------------
// /proc readings

/** utime + stime of a process in seconds. */
function cpuSeconds(pid: number | "self"): number {
  const { user, sys } = cpuSplit(pid);
  return user + sys;
}

/** utime and stime of a process in seconds (stime: the kernel work of its syscalls, e.g. loopback delivery). */
function cpuSplit(pid: number | "self"): { user: number; sys: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name (which may contain spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / CLOCK_TICKS_PER_SEC, sys: Number(fields[12]) / CLOCK_TICKS_PER_SEC };
}

/** A "Vm..." field of /proc/PID/status in MiB. */
function vmMiB(pid: number | "self", field: "VmHWM" | "VmRSS"): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * `ip netns exec` and `env` exec in place, so a spawned child's pid is the program itself; check it, since a
 * wrapper's pid would read as nearly zero CPU.
 */
function expectProgram(pid: number, name: string): number {
  const comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  if (!comm.startsWith(name)) throw new Error(`pid ${pid} is "${comm}", not ${name}`);
  return pid;
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

/**
 * Datagrams the kernel dropped for a full UDP receive buffer (IPv4 and IPv6) and the kernel TCP's
 * retransmitted segments, in one namespace: a lost tunnel datagram shows as one of the first, and as a
 * retransmission of whichever TCP sends the data.
 */
async function netCounters(ns: Netns): Promise<{ udpDrops: number; tcpRetrans: number }> {
  const text = (await ns.exec(["cat", "/proc/net/snmp", "/proc/net/snmp6"])).stdout;
  const lines = text.split("\n");
  const field = (prefix: string, name: string): number => {
    // /proc/net/snmp: a header line of names, then a line of values, both starting with "Udp:".
    const rows = lines.filter((l) => l.startsWith(prefix + ":"));
    if (rows.length < 2) return 0;
    const i = rows[0].split(/\s+/).indexOf(name);
    return i < 0 ? 0 : Number(rows[1].split(/\s+/)[i]);
  };
  const udp6 = Number(text.match(/^Udp6RcvbufErrors\s+(\d+)/m)?.[1] ?? 0);
  return { udpDrops: field("Udp", "RcvbufErrors") + udp6, tcpRetrans: field("Tcp", "RetransSegs") };
}

// ---------------------------------------------------------------------------------------------------------
// (c) in-memory worker: runs in its own process so its CPU and RSS are its own.

async function inMemoryWorker(seconds: number): Promise<void> {
  const [la, lb] = createLinkPair({ mtu: 1420 });
  const a = new Stack(la, { addresses: [{ address: "10.9.0.2", prefix: 32 }] });
  const b = new Stack(lb, { addresses: [{ address: "10.9.0.1", prefix: 24 }] });
  // The stacks' timers are unref'd; hold the event loop open while the transfer runs.
  const hold = setInterval(() => {}, 1000);
  try {
    const listener = b.listenTcp("10.9.0.1", 7000);
    const accepted = listener.accept();
    const client = await a.dialTcp("10.9.0.1", 7000, { timeoutMs: 5000 });
    const server = await accepted;
    const chunk = crypto.getRandomValues(new Uint8Array(65536));
    const cpu0 = cpuSeconds("self");
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    const send = (async () => {
      // Bounded by time: the writer stops at the deadline whatever the throughput.
      while (performance.now() < deadline) await client.write(chunk);
      await client.closeWrite();
    })();
    const buf = new Uint8Array(65536);
    let received = 0;
    for (;;) {
      const n = await server.read(buf);
      if (n === null) break;
      received += n;
    }
    const elapsed = (performance.now() - t0) / 1000;
    await send;
    const cpu = cpuSeconds("self") - cpu0;
    client.close();
    server.close();
    listener.close();
    console.log(JSON.stringify({
      bitsPerSecond: received * 8 / elapsed,
      cpuFraction: cpu / elapsed,
      hwmMiB: vmMiB("self", "VmHWM"),
      retransmitted: a.stats.tcp?.retransmittedSegments ?? 0,
    }));
  } finally {
    a.close();
    b.close();
    clearInterval(hold);
  }
}

interface Measured {
  bitsPerSecond: number;
  /** CPU of the wgedge process (or the in-memory worker) as a fraction of one core. */
  cpuFraction?: number;
  /** The part of cpuFraction spent in the kernel (stime). */
  sysFraction?: number;
  /** The other CPU on the same path: the wireguard-go that wgedge talks to. */
  peerCpuFraction?: number;
  hwmMiB?: number;
  /** wgedge's RSS once the tunnel is up, before any traffic. */
  startRssMiB?: number;
  /** UDP receive-buffer drops and kernel TCP retransmissions in the setup's namespace(s) during the run. */
  udpDrops?: number;
  tcpRetrans?: number;
}

interface ReferenceMeasured {
  bitsPerSecond: number;
  /** Both wireguard-go processes together, as a fraction of one core. */
  cpuFraction: number;
  udpDrops?: number;
  tcpRetrans?: number;
}

async function inMemory(seconds: number): Promise<Measured> {
  const r = await run([
    DENO,
    "run",
    "-A",
    "--config",
    DENO_JSON,
    SCRIPT,
    "--in-memory-worker",
    "--seconds",
    String(seconds),
  ]);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

// ---------------------------------------------------------------------------------------------------------
// iperf3

interface IperfCell {
  streams: number;
  reverse: boolean;
}

const cellName = (c: IperfCell) =>
  `TCP, ${c.streams} stream${c.streams > 1 ? "s" : ""}, ${
    c.reverse ? "server->client (-R)" : "client->server"
  }`;

/** Runs one iperf3 client; retries (bounded) while the server is still busy with the previous test. */
async function iperf(
  ns: Netns,
  host: string,
  port: number,
  cell: IperfCell,
  seconds: number,
): Promise<number> {
  const args = [
    "iperf3",
    "-c",
    host,
    "-p",
    String(port),
    "-t",
    String(seconds),
    "-P",
    String(cell.streams),
    "-J",
  ];
  if (cell.reverse) args.push("-R");
  let last = "";
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await ns.exec(args, { check: false });
    let j: { error?: string; end?: { sum_received?: { bits_per_second: number } } } = {};
    try {
      j = JSON.parse(r.stdout);
    } catch { /* not JSON: iperf3 failed before its report */ }
    const bps = j.end?.sum_received?.bits_per_second;
    if (r.code === 0 && !j.error && bps !== undefined) return bps;
    last = j.error ?? (r.stderr || r.stdout).slice(0, 300);
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error(`iperf3 ${args.join(" ")} failed: ${last}`);
}

async function listening(ns: Netns, port: number): Promise<void> {
  await waitFor(
    async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes(`:${port} `),
    `a listener on port ${port}`,
    200,
    50,
  );
}

// ---------------------------------------------------------------------------------------------------------
// (a) reference: wireguard-go <-> wireguard-go across a veth pair

interface Reference {
  server: Netns;
  client: Netns;
  serverIp: string;
  wireguardGoPids: number[];
}

async function startReference(namespaces: Netns[]): Promise<Reference> {
  const server = await Netns.create("bref");
  namespaces.push(server);
  const client = await Netns.create("bref");
  namespaces.push(client);
  // Created inside the namespaces, so the names cannot collide with anyone else's interfaces.
  await server.exec([
    "ip",
    "link",
    "add",
    "veths",
    "type",
    "veth",
    "peer",
    "name",
    "vethc",
    "netns",
    client.name,
  ]);
  await server.exec(["ip", "addr", "add", "192.168.250.1/24", "dev", "veths"]);
  await server.exec(["ip", "link", "set", "veths", "up"]);
  await client.exec(["ip", "addr", "add", "192.168.250.2/24", "dev", "vethc"]);
  await client.exec(["ip", "link", "set", "vethc", "up"]);
  const [s, c] = await Promise.all([wgKeyPair(), wgKeyPair()]);
  const wgServer = await WireguardGo.start(server, {
    privateKey: s.privateKey,
    listenPort: 51820,
    addresses: ["10.88.0.1/24"],
    peers: [{ publicKey: c.publicKey, allowedIps: ["10.88.0.2/32"], endpoint: "192.168.250.2:51820" }],
  });
  const wgClient = await WireguardGo.start(client, {
    privateKey: c.privateKey,
    listenPort: 51820,
    addresses: ["10.88.0.2/24"],
    peers: [{ publicKey: s.publicKey, allowedIps: ["10.88.0.1/32"], endpoint: "192.168.250.1:51820" }],
  });
  server.spawn(["iperf3", "-s", "-B", "10.88.0.1", "-p", String(IPERF_PORT)]);
  await listening(server, IPERF_PORT);
  await waitFor(
    async () => (await client.exec(["ping", "-c", "1", "-W", "1", "10.88.0.1"], { check: false })).code === 0,
    "the reference tunnel to pass a ping",
    30,
    100,
  );
  return {
    server,
    client,
    serverIp: "10.88.0.1",
    wireguardGoPids: [wgServer, wgClient].map((w) => expectProgram(w.child.pid, "wireguard-go")),
  };
}

async function measureReference(
  ref: Reference,
  cell: IperfCell,
  seconds: number,
): Promise<ReferenceMeasured> {
  const cpu = () => ref.wireguardGoPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const counters = async () => {
    const [a, b] = await Promise.all([netCounters(ref.server), netCounters(ref.client)]);
    return { udpDrops: a.udpDrops + b.udpDrops, tcpRetrans: a.tcpRetrans + b.tcpRetrans };
  };
  const net0 = await counters();
  const cpu0 = cpu();
  const t0 = performance.now();
  const bitsPerSecond = await iperf(ref.client, ref.serverIp, IPERF_PORT, cell, seconds);
  const cpuFraction = (cpu() - cpu0) / ((performance.now() - t0) / 1000);
  const net1 = await counters();
  return {
    bitsPerSecond,
    cpuFraction,
    udpDrops: net1.udpDrops - net0.udpDrops,
    tcpRetrans: net1.tcpRetrans - net0.tcpRetrans,
  };
}

// ---------------------------------------------------------------------------------------------------------
// (b) wgedge: iperf3 -> up --forward -> wgedge -> wireguard-go -> kernel iperf3 server

interface WgedgeSide {
  ns: Netns;
  conf: string;
  wg: WireguardGo;
}

async function startWgedgeSide(namespaces: Netns[], dir: string): Promise<WgedgeSide> {
  const ns = await Netns.create("bwge");
  namespaces.push(ns);
  const [mine, ref] = await Promise.all([wgKeyPair(), wgKeyPair()]);
  const wg = await WireguardGo.start(ns, {
    privateKey: ref.privateKey,
    listenPort: 51820,
    addresses: ["10.77.0.1/24"],
    peers: [{ publicKey: mine.publicKey, allowedIps: ["10.77.0.2/32"], endpoint: "127.0.0.1:51821" }],
  });
  const conf = `${dir}/wgedge.conf`;
  await Deno.writeTextFile(
    conf,
    `[Interface]\nPrivateKey = ${mine.privateKey}\nAddress = 10.77.0.2/32\nListenPort = 51821\n\n` +
      `[Peer]\nPublicKey = ${ref.publicKey}\nAllowedIPs = 10.77.0.1/32\nEndpoint = 127.0.0.1:51820\n` +
      // A fresh wgedge per cell: the keepalive makes it handshake at once rather than on the first packet.
      `PersistentKeepalive = 25\n`,
    { mode: 0o600 },
  );
  ns.spawn(["iperf3", "-s", "-B", "10.77.0.1", "-p", String(IPERF_PORT)]);
  await listening(ns, IPERF_PORT);
  expectProgram(wg.child.pid, "wireguard-go");
  return { ns, conf, wg };
}

interface WgedgeProcess {
  pid: number;
  stderr: () => string;
  stop(): Promise<void>;
}

interface Profiling {
  cpuProfDir?: string;
  perfDir?: string;
}

/** The tree a wgedge process runs from: this checkout, or --baseline's. */
interface Tree {
  mainTs: string;
  denoJson: string;
}

const THIS_TREE: Tree = { mainTs: MAIN_TS, denoJson: DENO_JSON };

async function startWgedgeUp(side: WgedgeSide, prof: Profiling, tree: Tree): Promise<WgedgeProcess> {
  const profArgs = prof.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", prof.cpuProfDir] : [];
  if (prof.perfDir) profArgs.push("--v8-flags=--perf-basic-prof");
  // The handshake wgedge starts on its persistent keepalive can finish before "tunnel up" is read, so the
  // previous handshake time is taken first.
  const handshakes = async () => (await side.wg.show("latest-handshakes")).split(/\s+/)[1] ?? "0";
  const before = await handshakes();
  const child = side.ns.spawn(
    [
      DENO,
      "run",
      "-A",
      "--config",
      tree.denoJson,
      ...profArgs,
      tree.mainTs,
      "up",
      "-c",
      side.conf,
      "--forward",
      `tcp://127.0.0.1:${FORWARD_PORT}=10.77.0.1:${IPERF_PORT}`,
    ],
    { stdout: "null", stderr: "piped", env: { NO_COLOR: "1", WGEDGE_LOG_LEVEL: "info" } },
  );
  const err = collect(child.stderr);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  await waitFor(() => exited || err.text().includes("tunnel up"), "wgedge up to start", 600, 50);
  if (exited) throw new Error(`wgedge up exited early:\n${err.text()}`);
  expectProgram(child.pid, "deno");
  // Wait (bounded) for that handshake.
  await waitFor(
    async () => {
      const now = await handshakes();
      return now !== "0" && now !== before;
    },
    "a handshake between wgedge and wireguard-go",
    200,
    50,
  ).catch(() => {
    // The previous cell's session may still be the latest one within the same second; iperf3 proves it works.
  });
  return {
    pid: child.pid,
    stderr: err.text,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const s = await Promise.race([
        status,
        new Promise<null>((r) => timer = setTimeout(() => r(null), 10_000)),
      ]);
      clearTimeout(timer);
      if (s === null) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await status;
      }
      await err.done;
    },
  };
}

/**
 * Waits (bounded, 5 s) until the kernel iperf3 server has no established connection left. iperf3 returns when
 * it has its results, and the close of its connections may still be on its way through wgedge: stopping
 * wgedge then would leave the server "busy running a test" until its own timeout, and the next cell fail.
 */
async function serverIdle(ns: Netns): Promise<void> {
  await waitFor(
    async () =>
      (await ns.exec(["ss", "-tnH", "state", "established", `( sport = :${IPERF_PORT} )`], { check: false }))
        .stdout.trim() === "",
    "the iperf3 server's connections to close",
    50,
    100,
  ).catch(() => {/* the next cell's iperf3 retries while the server is busy */});
}

async function measureWgedge(
  side: WgedgeSide,
  cell: IperfCell,
  seconds: number,
  prof: Profiling,
  tree: Tree,
): Promise<Measured> {
  const p = await startWgedgeUp(side, prof, tree);
  let perf: Deno.ChildProcess | undefined;
  try {
    if (prof.perfDir) {
      const out = `${prof.perfDir}/wgedge-P${cell.streams}${cell.reverse ? "-R" : ""}.data`;
      perf = new Deno.Command("perf", {
        args: ["record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", String(p.pid), "-o", out],
        stdout: "null",
        stderr: "null",
      }).spawn();
    }
    const startRssMiB = vmMiB(p.pid, "VmRSS");
    const net0 = await netCounters(side.ns);
    const cpu0 = cpuSplit(p.pid), peerCpu0 = cpuSeconds(side.wg.child.pid);
    const t0 = performance.now();
    const bps = await iperf(side.ns, "127.0.0.1", FORWARD_PORT, cell, seconds);
    const wall = (performance.now() - t0) / 1000;
    const cpu1 = cpuSplit(p.pid);
    if (perf) {
      perf.kill("SIGINT"); // perf writes its file on SIGINT
      await perf.status;
      perf = undefined;
    }
    const cpuFraction = (cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) / wall;
    const sysFraction = (cpu1.sys - cpu0.sys) / wall;
    const peerCpuFraction = (cpuSeconds(side.wg.child.pid) - peerCpu0) / wall;
    const hwmMiB = vmMiB(p.pid, "VmHWM");
    const net1 = await netCounters(side.ns);
    await serverIdle(side.ns);
    return {
      bitsPerSecond: bps,
      cpuFraction,
      sysFraction,
      peerCpuFraction,
      hwmMiB,
      startRssMiB,
      udpDrops: net1.udpDrops - net0.udpDrops,
      tcpRetrans: net1.tcpRetrans - net0.tcpRetrans,
    };
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- wgedge stderr ---\n${p.stderr().slice(-3000)}`);
  } finally {
    if (perf) {
      try {
        perf.kill("SIGKILL");
      } catch { /* gone */ }
      await perf.status;
    }
    await p.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Machine description and table

async function machine(): Promise<string[]> {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  const wgGo = (await run(["wireguard-go", "--version"], { check: false })).stdout.split("\n")[0];
  const iperfV = (await run(["iperf3", "--version"], { check: false })).stdout.split("\n")[0];
  const kernel = (await run(["uname", "-r"], { check: false })).stdout.trim();
  return [
    `nproc: ${navigator.hardwareConcurrency}; CPU: ${model}; Linux ${kernel}`,
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); ${wgGo}; ${iperfV}`,
  ];
}

interface Row {
  scenario: string;
  reference?: ReferenceMeasured;
  wgedge: Measured;
  /** The --baseline tree in the same cell and round. */
  baseline?: Measured;
}

/** One table line's numbers; a cell measured over several rounds shows the median of each. */
type Figures = Record<string, number | undefined>;

/** Throughput per CPU spent on the tunnel's own processes: less sensitive to other load than raw Mbit/s. */
function pathCpu(w: Measured): number | undefined {
  return w.peerCpuFraction === undefined ? undefined : (w.cpuFraction ?? 0) + w.peerCpuFraction;
}

function figures(r: Row): Figures {
  const w = r.wgedge, ref = r.reference, b = r.baseline;
  const eff = (m: Measured) => {
    const path = pathCpu(m);
    return ref && path ? (m.bitsPerSecond / path) / (ref.bitsPerSecond / ref.cpuFraction) : undefined;
  };
  return {
    refMbit: ref && ref.bitsPerSecond / 1e6,
    mbit: w.bitsPerSecond / 1e6,
    ratio: ref && w.bitsPerSecond / ref.bitsPerSecond,
    cpu: w.cpuFraction,
    sys: w.sysFraction,
    rss: w.hwmMiB,
    refCpu: ref?.cpuFraction,
    pathCpu: pathCpu(w),
    eff: eff(w),
    refDrops: ref?.udpDrops,
    refRetrans: ref?.tcpRetrans,
    drops: w.udpDrops,
    retrans: w.tcpRetrans,
    bMbit: b && b.bitsPerSecond / 1e6,
    bRatio: b && ref && b.bitsPerSecond / ref.bitsPerSecond,
    bCpu: b?.cpuFraction,
    bEff: b && eff(b),
    bDrops: b?.udpDrops,
    bRetrans: b?.tcpRetrans,
    vsBaseline: b && w.bitsPerSecond / b.bitsPerSecond,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The median of every figure over the rounds that measured it (a failed run leaves NaN out). */
function medianFigures(rounds: Figures[]): Figures {
  const out: Figures = {};
  for (const k of Object.keys(rounds[0] ?? {})) {
    const xs = rounds.map((f) => f[k]).filter((x): x is number => x !== undefined && Number.isFinite(x));
    out[k] = xs.length ? median(xs) : rounds.some((f) => f[k] !== undefined) ? NaN : undefined;
  }
  return out;
}

function table(lines: { scenario: string; f: Figures }[], withBaseline: boolean): string {
  const num = (x: number | undefined, digits: number, failed = "-") =>
    x === undefined ? "-" : Number.isFinite(x) ? x.toFixed(digits) : failed;
  const pct = (x: number | undefined) => x === undefined || !Number.isFinite(x) ? "-" : (x * 100).toFixed(0);
  const pair = (a: number | undefined, b: number | undefined) =>
    a === undefined && b === undefined ? "-" : `${num(a, 0)} / ${num(b, 0)}`;
  const head = [
    "scenario",
    "reference Mbit/s",
    "wgedge Mbit/s",
    "ratio",
    "wgedge CPU %",
    "wgedge RSS MB",
    "reference CPU % (2 x wireguard-go)",
    "wgedge path CPU % (wgedge + wireguard-go)",
    "Mbit per CPU-second, ratio",
  ];
  if (withBaseline) {
    head.push("baseline Mbit/s", "baseline ratio", "baseline CPU %", "baseline Mbit per CPU-second, ratio");
    head.push("wgedge / baseline");
  }
  head.push("UDP drops / kernel TCP retransmits: reference; wgedge" + (withBaseline ? "; baseline" : ""));
  const out = [`| ${head.join(" | ")} |`, `|${"---|".repeat(head.length)}`];
  for (const { scenario, f } of lines) {
    const cells = [
      scenario,
      num(f.refMbit, 0, "failed"),
      num(f.mbit, 0, "failed"),
      num(f.ratio, 2),
      `${pct(f.cpu)}${f.sys === undefined ? "" : ` (sys ${pct(f.sys)})`}`,
      num(f.rss, 0),
      pct(f.refCpu),
      pct(f.pathCpu),
      num(f.eff, 2),
    ];
    if (withBaseline) {
      cells.push(
        num(f.bMbit, 0, "failed"),
        num(f.bRatio, 2),
        pct(f.bCpu),
        num(f.bEff, 2),
        num(f.vsBaseline, 2),
      );
    }
    const drops = [pair(f.refDrops, f.refRetrans), pair(f.drops, f.retrans)];
    if (withBaseline) drops.push(pair(f.bDrops, f.bRetrans));
    cells.push(drops.join("; "));
    out.push(`| ${cells.join(" | ")} |`);
  }
  return out.join("\n");
}

async function benchmark(): Promise<void> {
  const why = await interopUnavailable(["iperf3", "ss", "ping"]);
  if (why) {
    console.error(`tunnel benchmark: cannot run here: ${why}`);
    Deno.exit(1);
  }
  const namespaces: Netns[] = [];
  const dir = await Deno.makeTempDir({ prefix: "wgedge-bench-tunnel-" });
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const ns of namespaces.reverse()) await ns.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const onSignal = () => {
    console.error("interrupted: cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const rows: Row[] = [];
  const failures: string[] = [];
  const loadBefore = loadAverage();
  const started = new Date();
  const cells: IperfCell[] = STREAMS.flatMap((streams) =>
    DIRECTIONS[values.direction].map((reverse) => ({ streams, reverse }))
  );
  let inMemoryRow: Row | undefined;
  try {
    const ref = await startReference(namespaces);
    const side = await startWgedgeSide(namespaces, dir);
    const prof: Profiling = { cpuProfDir: values["cpu-prof"], perfDir: values.perf };
    for (const d of [prof.cpuProfDir, prof.perfDir]) if (d) await Deno.mkdir(d, { recursive: true });
    const baseTree: Tree | undefined = BASELINE
      ? { mainTs: `${BASELINE}main.ts`, denoJson: `${BASELINE}deno.json` }
      : undefined;
    for (let round = 0; round < ROUNDS; round++) {
      for (const cell of cells) {
        // A failed run is reported and the run goes on: one flaky iperf3 should not cost the other cells.
        const row: Row = { scenario: cellName(cell), wgedge: { bitsPerSecond: NaN } };
        const attempt = async (what: string, f: () => Promise<void>) => {
          try {
            await f();
          } catch (e) {
            failures.push(`${row.scenario}, round ${round + 1}, ${what}: ${(e as Error).message}`);
          }
        };
        await attempt(
          "reference",
          async () => void (row.reference = await measureReference(ref, cell, SECONDS)),
        );
        const runThis = () =>
          attempt(
            "wgedge",
            async () => void (row.wgedge = await measureWgedge(side, cell, SECONDS, prof, THIS_TREE)),
          );
        const runBase = () =>
          attempt("baseline", async () => {
            row.baseline = { bitsPerSecond: NaN };
            row.baseline = await measureWgedge(side, cell, SECONDS, prof, baseTree!);
          });
        // The tree that runs right after the reference alternates by round.
        if (baseTree && round % 2 === 1) {
          await runBase();
          await runThis();
        } else {
          await runThis();
          if (baseTree) await runBase();
        }
        rows.push(row);
        const line = table([{ scenario: row.scenario, f: figures(row) }], !!baseTree).split("\n")[2];
        console.error(`round ${round + 1}/${ROUNDS}: ${line} (load average ${loadAverage()})`);
      }
    }
    if (!values["no-in-memory"]) {
      inMemoryRow = {
        scenario: "in-memory link, no crypto, 1 TCP stream (both stacks in one process)",
        wgedge: await inMemory(SECONDS),
      };
    }
  } finally {
    await cleanup();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  console.log(
    `\nTunnel throughput, ${SECONDS} s per cell, ${ROUNDS} round(s)${
      ROUNDS > 1 ? " (medians)" : ""
    }, started ${started.toISOString()}`,
  );
  for (const l of await machine()) console.log(l);
  console.log(`load average before: ${loadBefore}; after: ${loadAverage()}`);
  console.log(
    "reference = wireguard-go <-> wireguard-go across a veth pair; wgedge = iperf3 -> up --forward -> wgedge -> " +
      "wireguard-go -> kernel; CPU % of one core (utime+stime over the iperf3 run; sys = stime); " +
      "RSS = VmHWM of that process" +
      (BASELINE ? `; baseline = the same wgedge cells run from ${BASELINE}` : "") +
      "\n",
  );
  const lines = cells.map((cell) => {
    const name = cellName(cell);
    return { scenario: name, f: medianFigures(rows.filter((r) => r.scenario === name).map(figures)) };
  });
  if (inMemoryRow) lines.push({ scenario: inMemoryRow.scenario, f: figures(inMemoryRow) });
  console.log(table(lines, !!BASELINE));
  if (ROUNDS > 1) {
    for (const cell of cells) {
      const name = cellName(cell);
      const per = rows.filter((r) => r.scenario === name).map(figures);
      const list = (k: string) => per.map((f) => f[k] === undefined ? "-" : f[k]!.toFixed(2)).join(" ");
      console.log(
        `${name}: ratio per round ${list("ratio")}` +
          (BASELINE ? `; baseline ratio ${list("bRatio")}; wgedge / baseline ${list("vsBaseline")}` : ""),
      );
    }
  }
  const startRss = rows.map((r) => r.wgedge.startRssMiB).filter((x): x is number => x !== undefined);
  if (startRss.length) {
    console.log(
      `\nwgedge RSS with the tunnel up, before traffic: ${Math.min(...startRss).toFixed(0)}-${
        Math.max(...startRss).toFixed(0)
      } MB`,
    );
  }
  if (failures.length) {
    console.log(`\n${failures.length} cell(s) failed:\n${failures.join("\n")}`);
    Deno.exitCode = 1;
  }
}

// ---------------------------------------------------------------------------------------------------------
// --summarize-profile: where a V8 .cpuprofile's busy time goes, by category, function and file

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/**
 * The category of one frame, or undefined to look at its caller. Runtime glue (ext: frames that are not
 * crypto or timers, Node-compat buffers and streams) has no category of its own: its cost belongs to the
 * wgedge code that called it, e.g. the Transform stream a node:crypto Cipheriv builds per packet is AEAD cost.
 */
function frameCategory(f: ProfileNode["callFrame"]): string | undefined {
  const name = f.functionName, url = f.url;
  if (name === "(idle)") return "idle";
  if (name === "(garbage collector)") return "GC";
  if (name === "(program)") return "V8/native, unattributed";
  if (!url) {
    if (/^op_net_(send|recv)_udp/.test(name)) return "UDP socket ops (one op per datagram)";
    if (/^op_node_(create_)?(de)?cipheriv/.test(name)) return "AEAD (node:crypto ChaCha20-Poly1305)";
    if (/^op_(read|write|net_accept_tcp|net_connect_tcp|shutdown)/.test(name)) return "host TCP socket ops";
    if (/^op_(timer|now)/.test(name)) return "timers and clock";
    return undefined;
  }
  if (url.includes("/internal/crypto/") || url.includes("/src/crypto/")) {
    return "AEAD (node:crypto ChaCha20-Poly1305)";
  }
  if (url.includes("timers")) return "timers and clock";
  if (url.includes("/src/netstack/tcp/")) return "TCP (netstack/tcp)";
  if (url.includes("/src/wireguard/") || url.includes("/src/wire/wireguard")) {
    return "WireGuard device/peer/timers (non-crypto)";
  }
  if (url.includes("/src/netstack/") || url.includes("/src/wire/")) {
    return "IP layer, checksums (netstack, wire)";
  }
  if (url.includes("/src/net/") || url.includes("/src/services/")) return "relay and pipe (net, services)";
  if (url.includes("/src/")) return "other wgedge code";
  return undefined;
}

function summarizeProfile(path: string, top: number): void {
  const prof = JSON.parse(Deno.readTextFileSync(path)) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the following interval to it, as DevTools does.
    const dt = prof.timeDeltas[i + 1] ?? 0;
    selfUs.set(prof.samples[i], (selfUs.get(prof.samples[i]) ?? 0) + Math.max(0, dt));
  }
  const idleId = prof.nodes.find((n) => n.callFrame.functionName === "(idle)")?.id;
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const busy = total - (idleId === undefined ? 0 : selfUs.get(idleId) ?? 0);
  const category = (id: number): string => {
    // Bounded by the tree depth: every step goes to a parent, and the root has none.
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const c = frameCategory(byId.get(at)!.callFrame);
      if (c) return c;
    }
    return "runtime (event loop, promises, other)";
  };
  const shortUrl = (u: string) =>
    u.replace(/^file:\/\/.*?\/(src|main\.ts)/, "$1").replace(/^.*node_modules\//, "npm:");
  const fnKey = (id: number) => {
    const f = byId.get(id)!.callFrame;
    return `${f.functionName || "(anonymous)"} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ""}`
      .trim();
  };
  const fileKey = (id: number) => {
    const f = byId.get(id)!.callFrame;
    return f.url ? shortUrl(f.url) : f.functionName;
  };
  const rank = (key: (id: number) => string) => {
    const m = new Map<string, number>();
    for (const [id, us] of selfUs) {
      if (id === idleId) continue;
      const k = key(id);
      m.set(k, (m.get(k) ?? 0) + us);
    }
    return [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  };
  console.log(
    `${path}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy; ` +
      `percentages are of busy (non-idle) main-thread time`,
  );
  const sections: [string, (id: number) => string][] = [
    ["by category (self time, attributed up the call tree)", category],
    ["by function (self time)", fnKey],
    ["by file (self time)", fileKey],
  ];
  for (const [title, key] of sections) {
    console.log(`\n${title}`);
    for (const [k, us] of rank(key)) console.log(`${(us / busy * 100).toFixed(1).padStart(5)}%  ${k}`);
  }
}

if (import.meta.main) {
  if (values["in-memory-worker"]) {
    await inMemoryWorker(SECONDS);
  } else if (values["summarize-profile"]) {
    summarizeProfile(values["summarize-profile"], Number(values.top));
  } else {
    await benchmark();
  }
}
