/**
 * Tunnels per process: N WireGuard tunnels in ONE `wgedge serve` against N wireguard-go processes (the natural
 * reference: N userspace WireGuard devices), in one invocation, for N = 1, 10, 100, 300 by default.
 *
 *   deno run -A scripts/bench/tunnels.ts [--n 1,10,100,300] [--idle-seconds 60] [--cpu-seconds 30]
 *     [--settle-seconds 5] [--concurrency 8] [--handshake-timeout 180] [--sides wgedge,wireguard-go] [--quick]
 *
 * --quick is for development: N = 1,10, 5 s CPU window, 10 s idle, 2 s settle (flags given explicitly win).
 *
 * Every (N, side) is a phase of its own with fresh namespaces and processes; for each N the two sides run one
 * after the other (the order alternates from one N to the next), never at the same time, so neither side's
 * keepalives or transfers land in the other's CPU window.
 *
 * Topology of a phase (everything in namespaces created here):
 *   hub namespace: one wireguard-go, the "hub" (10.77.0.1/16, UDP 51820), with N peers configured by
 *   `wg setconf` (one /32 each: 10.77.1.1 .. 10.77.1.200, 10.77.2.1 ...; no endpoint, so the tunnels
 *   initiate), and a kernel TCP server on 10.77.0.1:5000 (this script in --server-worker mode) that sends
 *   1 MiB per connection.
 *   wgedge side: `wgedge serve` (WGEDGE_ENV_FILE) in the hub namespace, with WG_TUNNEL_T1..TN (one wg-quick
 *   file each: its own key, Address 10.77.a.b/32, Endpoint 127.0.0.1:51820, PersistentKeepalive 25) and one
 *   relay per tunnel, RELAY_i = "20000+i;5000;10.77.0.1;TCP;via=wg:ti;bind=127.0.0.1". A transfer is
 *   `socat -u TCP:127.0.0.1:20000+i STDOUT` in the hub namespace: host TCP -> relay -> tunnel ti -> UDP ->
 *   hub -> kernel server.
 *   wireguard-go side: N wireguard-go processes, also in the hub namespace so their UDP goes over loopback
 *   like wgedge's, each with one peer (the hub; the same keys, Endpoint and PersistentKeepalive 25 as the
 *   wgedge tunnels). Each one's TUN interface is moved into its own namespace (wireguard-go follows up/down
 *   across namespaces) with 10.77.a.b/32 and a route to 10.77.0.1. A transfer is `socat` in that namespace to
 *   10.77.0.1:5000 through that TUN.
 *
 * Measured per phase, for the wgedge process or summed over the N wireguard-go processes (from /proc):
 *   - all N handshaken after: seconds from spawning the measured process(es) until the hub's
 *     `wg show <hub> latest-handshakes` lists all N peers (polled every 250 ms); for wireguard-go this includes
 *     the setup of N processes and interfaces (shown separately);
 *   - then settle-seconds, then idle CPU over cpu-seconds (utime + stime of /proc/PID/stat, % of one core),
 *     then RSS (VmRSS) and PSS (smaps_rollup) idle;
 *   - one 1 MiB TCP transfer through each tunnel, `concurrency` at a time: count, wall time, CPU;
 *   - RSS/PSS right after, then idle-seconds idle (CPU over that window), RSS/PSS again, peak RSS (VmHWM);
 *   - the hub wireguard-go's CPU in the idle window, and for wgedge the admin API's view
 *     (`/api/v1/status` -> tunnels[].peers[].lastHandshake and .handshakes, via curl in the namespace) and
 *     the warn/error lines of its JSON log.
 *
 * Needs root, ip netns, wireguard-go, wg, socat, curl. Traffic stays inside namespaces created here; every
 * process started here is stopped by its pid and every namespace and /var/run/wireguard/<ifc>.sock removed at
 * the end of its phase, on error and on Ctrl-C. Interface names carry this process's pid. Not a test: nothing
 * is asserted; the goals from the issue are printed beside the figures.
 */
import { parseArgs } from "node:util";
import { interopUnavailable, MAIN_TS } from "../../tests/helpers/interop.ts";
import {
  cleanupOnSignals,
  cpuSeconds,
  denoRun,
  drained,
  execedInto,
  expectProgram,
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
import {
  genKeys,
  hubConf,
  type KeyPair,
  PID36,
  startHub as startHubWireguardGo,
  tunnelIps,
  upWithAddress,
  WIREGUARD_GO_ENV,
} from "./lib/hub.ts";
import { checkout, firstLine, logSummary as summarize, machineLine } from "./lib/report.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string" },
    "idle-seconds": { type: "string" },
    "cpu-seconds": { type: "string" },
    "settle-seconds": { type: "string" },
    "handshake-timeout": { type: "string", default: "180" },
    concurrency: { type: "string", default: "8" },
    sides: { type: "string", default: "wgedge,wireguard-go" },
    quick: { type: "boolean", default: false },
    // Internal: the kernel TCP server run inside the hub namespace.
    "server-worker": { type: "boolean", default: false },
    listen: { type: "string", default: "10.77.0.1:5000" },
    bytes: { type: "string", default: String(1 << 20) },
    "max-seconds": { type: "string", default: "7200" },
  },
});

const QUICK = values.quick;
const N_LIST = (values.n ?? (QUICK ? "1,10" : "1,10,100,300")).split(",").map(Number);
if (N_LIST.length > 10 || N_LIST.some((n) => !Number.isInteger(n) || n < 1 || n > 1000)) {
  console.error(`--n: expected up to 10 comma-separated tunnel counts in 1..1000, got "${values.n}"`);
  Deno.exit(2);
}
const IDLE_SECONDS = numberFlag("idle-seconds", values["idle-seconds"], QUICK ? 10 : 60, 1, 3600);
const CPU_SECONDS = numberFlag("cpu-seconds", values["cpu-seconds"], QUICK ? 5 : 30, 1, 3600);
const SETTLE_SECONDS = numberFlag("settle-seconds", values["settle-seconds"], QUICK ? 2 : 5, 0, 600);
const HANDSHAKE_TIMEOUT = numberFlag("handshake-timeout", values["handshake-timeout"], 180, 5, 3600);
const CONCURRENCY = numberFlag("concurrency", values.concurrency, 8, 1, 64);
type Side = "wgedge" | "wireguard-go";
const SIDES = values.sides.split(",") as Side[];
if (SIDES.length === 0 || SIDES.some((s) => s !== "wgedge" && s !== "wireguard-go")) {
  console.error(`--sides: expected wgedge and/or wireguard-go, got "${values.sides}"`);
  Deno.exit(2);
}

const SCRIPT = new URL(import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname;
const TRANSFER_BYTES = 1 << 20;
const HUB_IP = "10.77.0.1";
const HUB_PORT = 51820;
const SERVER_PORT = 5000;
const RELAY_PORT_BASE = 20000;
const ADMIN_PORT = 18081;
const KEEPALIVE = 25;

// ---------------------------------------------------------------------------------------------------------
// --server-worker: the kernel TCP server inside the hub namespace (1 MiB per connection, then FIN).

async function serverWorker(): Promise<void> {
  const [host, port] = [
    values.listen.slice(0, values.listen.lastIndexOf(":")),
    values.listen.split(":").pop(),
  ];
  const bytes = Number(values.bytes);
  const maxSeconds = Number(values["max-seconds"]);
  const listener = Deno.listen({ hostname: host, port: Number(port), transport: "tcp" });
  // Bounded lifetime: the parent kills this process at the end of its phase; this is the backstop.
  setTimeout(() => Deno.exit(0), maxSeconds * 1000);
  const chunk = new Uint8Array(64 * 1024).map((_, i) => i & 0xff);
  console.log("listening");
  for await (const conn of listener) {
    (async () => {
      // Every connection is bounded in time: a stuck peer is cut off after 120 s.
      const timer = setTimeout(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      }, 120_000);
      try {
        let left = bytes;
        while (left > 0) left -= await conn.write(chunk.subarray(0, Math.min(left, chunk.length)));
        await conn.closeWrite();
        // Drain until the client closes (it sends nothing), so close() cannot turn into a RST.
        const sink = new Uint8Array(1024);
        for (let i = 0; i < 1024; i++) if ((await conn.read(sink)) === null) break;
      } catch { /* the client went away */ }
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed */ }
    })();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Processes and /proc readings (more in lib/proc.ts)

/** Runs fn over items, at most `concurrency` at a time. */
async function pool<T>(items: T[], concurrency: number, fn: (item: T, index: number) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

interface Mem {
  rssMiB: number;
  pssMiB: number;
  hwmMiB: number;
  /** How many of the processes could be read (the others have exited). */
  alive: number;
}

function memOf(pids: number[]): Mem {
  let rss = 0, pss = 0, hwm = 0, alive = 0;
  for (const pid of pids) {
    try {
      const m = memKiB(pid);
      rss += m.rss;
      hwm += m.hwm;
      pss += m.pss;
      alive++;
    } catch { /* exited */ }
  }
  return { rssMiB: MiB(rss), pssMiB: MiB(pss), hwmMiB: MiB(hwm), alive };
}

function cpuOf(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

// ---------------------------------------------------------------------------------------------------------
// Keys, addresses, configs

/** The inner address of tunnel i (0-based): 10.77.1.1 .. 10.77.1.200, 10.77.2.1, ... */
const tunnelIp = tunnelIps("10.77");

/** The peer section every tunnel has, wgedge's and wireguard-go's alike. */
function tunnelPeer(hub: KeyPair): string {
  return `[Peer]\nPublicKey = ${hub.publicKey}\nAllowedIPs = ${HUB_IP}/32\n` +
    `Endpoint = 127.0.0.1:${HUB_PORT}\nPersistentKeepalive = ${KEEPALIVE}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// A phase: one side at one N

interface PhaseResult {
  side: Side;
  n: number;
  error?: string;
  loadAtIdle?: string;
  loadAtEnd?: string;
  /** Seconds from spawning the measured process(es) to all N handshaken; NaN if not all. */
  handshakeSeconds: number;
  /** wireguard-go: the part of handshakeSeconds spent setting up the processes and interfaces. */
  setupSeconds?: number;
  handshaken: number;
  idleCpuPct: number;
  hubIdleCpuPct: number;
  idle?: Mem;
  transfersOk: number;
  transferSeconds: number;
  transferCpuSeconds: number;
  afterTransfers?: Mem;
  afterIdle?: Mem;
  afterIdleCpuPct: number;
  notes: string[];
}

interface Hub {
  ns: string;
  ifc: string;
  proc: Proc;
}

async function startHub(res: Resources, phase: number, peers: KeyPair[], hubKey: KeyPair, dir: string) {
  const ns = `tbh-${Deno.pid}-${phase}`;
  await res.addNetns(ns);
  const ifc = `tb${PID36}${phase}h`;
  const conf = `${dir}/hub-${phase}.conf`;
  const proc = await startHubWireguardGo(res, ns, ifc, conf, hubConf(hubKey, peers, HUB_PORT, tunnelIp));
  await upWithAddress(ns, ifc, `${HUB_IP}/16`);
  const server = res.spawnIn(
    ns,
    "kernel TCP server",
    denoRun(
      SCRIPT,
      "--server-worker",
      "--listen",
      `${HUB_IP}:${SERVER_PORT}`,
      "--bytes",
      String(TRANSFER_BYTES),
    ),
  );
  await waitUntil(
    () => server.exited() || server.stdout.text().includes("listening"),
    "the TCP server in the hub namespace",
    60_000,
  );
  if (server.exited()) throw new Error(`TCP server exited: ${server.stderr.text().slice(-1000)}`);
  return { ns, ifc, proc } satisfies Hub;
}

async function hubHandshaken(hub: Hub): Promise<number> {
  const r = await run(["wg", "show", hub.ifc, "latest-handshakes"], { check: false, timeoutMs: 10_000 });
  return r.stdout.split("\n").filter((l) => {
    const t = l.split("\t")[1];
    return t !== undefined && t.trim() !== "" && t.trim() !== "0";
  }).length;
}

/** One 1 MiB transfer with socat (bounded twice: `timeout 60` inside, the abort signal outside). */
async function transfer(ns: string, target: string): Promise<{ bytes: number; error?: string }> {
  const r = await new Deno.Command("ip", {
    args: ["netns", "exec", ns, "timeout", "60", "socat", "-u", `TCP:${target},connect-timeout=20`, "STDOUT"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(90_000),
  }).output();
  const bytes = r.stdout.length;
  if (bytes === TRANSFER_BYTES && r.success) return { bytes };
  const err = new TextDecoder().decode(r.stderr).trim().split("\n").pop() ?? "";
  return { bytes, error: `${target} in ${ns}: ${bytes} bytes, exit ${r.code}${err ? `: ${err}` : ""}` };
}

interface AdminView {
  tunnels: number;
  peers: number;
  handshaken: number;
  handshakes: number;
}

async function adminStatus(ns: string): Promise<AdminView | string> {
  const r = await run(
    ["ip", "netns", "exec", ns, "curl", "-s", "-m", "10", `http://127.0.0.1:${ADMIN_PORT}/api/v1/status`],
    { check: false, timeoutMs: 20_000 },
  );
  if (r.code !== 0) return `curl exited ${r.code}`;
  try {
    const j = JSON.parse(r.stdout) as {
      tunnels?: { peers?: { lastHandshake?: string | null; handshakes?: number }[] }[];
    };
    const tunnels = Array.isArray(j.tunnels) ? j.tunnels : [];
    const peers = tunnels.flatMap((t) => t.peers ?? []);
    return {
      tunnels: tunnels.length,
      peers: peers.length,
      handshaken: peers.filter((p) => p.lastHandshake).length,
      handshakes: peers.reduce((s, p) => s + (p.handshakes ?? 0), 0),
    };
  } catch {
    return `not JSON: ${r.stdout.slice(0, 200)}`;
  }
}

/**
 * What a process wrote, stdout (wireguard-go logs there) and stderr, without wireguard-go's boxed banner about
 * the kernel module (printed at every start).
 */
function outputText(p: Proc): string {
  return (p.stdout.text() + "\n" + p.stderr.text()).split("\n").filter((l) => !/^\s*[┌│└]/.test(l)).join("\n")
    .trim();
}

const adminText = (v: AdminView | string) =>
  typeof v === "string"
    ? v
    : `${v.tunnels} tunnels, ${v.handshaken}/${v.peers} peers handshaken, ${v.handshakes} handshakes in all`;

/** The warn/error lines of wgedge's JSON log, counted by level and message. */
function logSummary(text: string): string {
  return summarize(text, (j, line) => `${j.level}: ${j.msg ?? j.message ?? line.slice(0, 120)}`, 120);
}

/**
 * The measurement sequence both sides share: handshakes, settle, idle CPU and memory, transfers, memory,
 * idle, memory. `pids` are the measured processes.
 */
async function measure(
  r: PhaseResult,
  hub: Hub,
  pids: number[],
  t0: number,
  transferTarget: (i: number) => { ns: string; target: string },
  alive: () => Promise<string | undefined>,
  probe?: (when: string) => Promise<void>,
): Promise<void> {
  const n = r.n;
  // 1. all N handshaken (as the hub sees it)
  const deadline = t0 + HANDSHAKE_TIMEOUT * 1000;
  for (let i = 0; i < HANDSHAKE_TIMEOUT * 4 + 10; i++) {
    r.handshaken = await hubHandshaken(hub);
    if (r.handshaken >= n) {
      r.handshakeSeconds = (performance.now() - t0) / 1000;
      break;
    }
    const dead = await alive();
    if (dead) throw new Error(dead);
    if (performance.now() >= deadline) break;
    await sleep(250);
  }
  if (r.handshaken < n) {
    r.notes.push(`only ${r.handshaken}/${n} peers handshaken after ${HANDSHAKE_TIMEOUT} s`);
  }
  console.error(
    `  ${r.side} N=${n}: ${r.handshaken}/${n} handshaken after ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  // 2. settle, then the idle CPU window; memory at its end
  await sleep(SETTLE_SECONDS * 1000);
  r.loadAtIdle = loadAverage();
  const c0 = cpuOf(pids), h0 = cpuSeconds(hub.proc.pid), w0 = performance.now();
  await sleep(CPU_SECONDS * 1000);
  const wall = (performance.now() - w0) / 1000;
  r.idleCpuPct = (cpuOf(pids) - c0) / wall * 100;
  r.hubIdleCpuPct = (cpuSeconds(hub.proc.pid) - h0) / wall * 100;
  r.idle = memOf(pids);
  await probe?.("idle");
  // 3. one 1 MiB transfer through each tunnel
  const failures: string[] = [];
  const tc0 = cpuOf(pids), tt0 = performance.now();
  await pool(Array.from({ length: n }, (_, i) => i), CONCURRENCY, async (i) => {
    const { ns, target } = transferTarget(i);
    const t = await transfer(ns, target).catch((e) => ({ bytes: 0, error: (e as Error).message }));
    if (t.error) failures.push(t.error);
    else r.transfersOk++;
  });
  r.transferSeconds = (performance.now() - tt0) / 1000;
  r.transferCpuSeconds = cpuOf(pids) - tc0;
  r.afterTransfers = memOf(pids);
  if (failures.length) {
    r.notes.push(`${failures.length} transfer(s) failed, e.g. ${failures.slice(0, 3).join(" | ")}`);
  }
  console.error(`  ${r.side} N=${n}: ${r.transfersOk}/${n} transfers in ${r.transferSeconds.toFixed(1)} s`);
  // 4. idle again
  const a0 = cpuOf(pids), aw0 = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  r.afterIdleCpuPct = (cpuOf(pids) - a0) / ((performance.now() - aw0) / 1000) * 100;
  r.afterIdle = memOf(pids);
  r.loadAtEnd = loadAverage();
  await probe?.(`after the transfers and ${IDLE_SECONDS} s idle`);
  const dead = await alive();
  if (dead) r.notes.push(dead);
  if (r.afterIdle.alive < pids.length) r.notes.push(`${pids.length - r.afterIdle.alive} process(es) exited`);
}

function emptyResult(side: Side, n: number): PhaseResult {
  return {
    side,
    n,
    handshakeSeconds: NaN,
    handshaken: 0,
    idleCpuPct: NaN,
    hubIdleCpuPct: NaN,
    transfersOk: 0,
    transferSeconds: NaN,
    transferCpuSeconds: NaN,
    afterIdleCpuPct: NaN,
    notes: [],
  };
}

/** What both sides of a phase start from: its result, the first n keys, and the hub with them as its peers. */
interface PhaseStart {
  res: Resources;
  phase: number;
  r: PhaseResult;
  peers: KeyPair[];
  hubKey: KeyPair;
  dir: string;
  hub: Hub;
}

async function startPhase(
  side: Side,
  res: Resources,
  phase: number,
  n: number,
  keys: KeyPair[],
  hubKey: KeyPair,
  dir: string,
): Promise<PhaseStart> {
  const peers = keys.slice(0, n);
  const r = emptyResult(side, n);
  return { res, phase, r, peers, hubKey, dir, hub: await startHub(res, phase, peers, hubKey, dir) };
}

async function wgedgePhase({ res, phase, r, peers, hubKey, dir, hub }: PhaseStart): Promise<PhaseResult> {
  const env: string[] = [`WGEDGE_ADMIN_LISTEN=127.0.0.1:${ADMIN_PORT}`, "ENABLE_HEALTH_CHECK=n"];
  for (const [i, k] of peers.entries()) {
    const file = `${dir}/p${phase}-t${i + 1}.conf`;
    await Deno.writeTextFile(
      file,
      `[Interface]\nPrivateKey = ${k.privateKey}\nAddress = ${tunnelIp(i)}/32\n\n${tunnelPeer(hubKey)}`,
      { mode: 0o600 },
    );
    env.push(`WG_TUNNEL_T${i + 1}=${file}`);
    env.push(
      `RELAY_${i + 1}="${RELAY_PORT_BASE + i + 1};${SERVER_PORT};${HUB_IP};TCP;via=wg:t${
        i + 1
      };bind=127.0.0.1"`,
    );
  }
  const envFile = `${dir}/p${phase}.env`;
  await Deno.writeTextFile(envFile, env.join("\n") + "\n", { mode: 0o600 });
  const t0 = performance.now();
  const p = res.spawnIn(
    hub.ns,
    "wgedge serve",
    denoRun(MAIN_TS, "serve"),
    {
      WGEDGE_ENV_FILE: envFile,
      WGEDGE_LOG_FORMAT: "json",
      NO_COLOR: "1",
    },
  );
  const alive = async () => {
    if (p.exited()) {
      await drained(p);
      return `wgedge serve exited early (${p.how}):\n${p.stderr.text().slice(-3000)}`;
    }
    return hub.proc.exited() ? `the hub wireguard-go exited (${hub.proc.how})` : undefined;
  };
  await execedInto(p, "deno", "the wgedge pid to be deno");
  const probe = async (when: string) => {
    r.notes.push(`admin API, ${when}: ${adminText(await adminStatus(hub.ns))}`);
  };
  try {
    await measure(
      r,
      hub,
      [p.pid],
      t0,
      (i) => ({ ns: hub.ns, target: `127.0.0.1:${RELAY_PORT_BASE + i + 1}` }),
      alive,
      probe,
    );
  } finally {
    await stopProc(p, 10_000);
    r.notes.push(`wgedge log: ${logSummary(logText(p))}`);
    const hubErr = outputText(hub.proc);
    if (hubErr) r.notes.push(`hub wireguard-go output: ${hubErr.slice(0, 300)}`);
  }
  return r;
}

async function wireguardGoPhase(
  { res, phase, r, peers, hubKey, dir, hub }: PhaseStart,
): Promise<PhaseResult> {
  const clientNs = peers.map((_, i) => `tbc-${Deno.pid}-${phase}-${i + 1}`);
  const ifcs = peers.map((_, i) => `tb${PID36}${phase}c${i + 1}`);
  const t0 = performance.now();
  // Registered before they exist, so a failure half-way still removes every one that was made.
  res.namespaces.push(...clientNs);
  res.sockets.push(...ifcs.map((ifc) => `/var/run/wireguard/${ifc}.sock`));
  await run(["ip", "-batch", "-"], {
    stdin: clientNs.map((ns) => `netns add ${ns}\n`).join(""),
    timeoutMs: 300_000,
  });
  const procs = ifcs.map((ifc) =>
    res.spawnIn(hub.ns, `wireguard-go ${ifc}`, ["wireguard-go", "-f", ifc], WIREGUARD_GO_ENV)
  );
  const sockets = ifcs.map((ifc) => `/var/run/wireguard/${ifc}.sock`);
  const socketReady = (s: string) => {
    try {
      Deno.statSync(s);
      return true;
    } catch {
      return false;
    }
  };
  const alive = async () => {
    const dead = procs.filter((p) => p.exited());
    if (dead.length) {
      await drained(dead[0]);
      return `${dead.length} wireguard-go process(es) exited, e.g. ${dead[0].name} (${dead[0].how}): ${
        outputText(dead[0]).slice(-500)
      }`;
    }
    return hub.proc.exited() ? `the hub wireguard-go exited (${hub.proc.how})` : undefined;
  };
  await waitUntil(
    async () => (await alive()) !== undefined || sockets.every(socketReady),
    "N wireguard-go UAPI sockets",
    120_000,
    200,
  );
  const dead = await alive();
  if (dead) throw new Error(dead);
  for (const p of procs) expectProgram(p.pid, "wireguard-go");
  // Configure each, move its TUN into its own namespace, address and route it, bring it up: one shell, one
  // bounded loop (N iterations), `set -e` so the first failure stops it with its message.
  const lines = ["set -e"];
  for (const [i, k] of peers.entries()) {
    const conf = `${dir}/p${phase}-c${i + 1}.conf`;
    await Deno.writeTextFile(conf, `[Interface]\nPrivateKey = ${k.privateKey}\n\n${tunnelPeer(hubKey)}`, {
      mode: 0o600,
    });
    const ifc = ifcs[i], ns = clientNs[i];
    lines.push(
      `wg setconf ${ifc} ${conf}`,
      `ip -n ${hub.ns} link set ${ifc} netns ${ns}`,
      `ip -n ${ns} addr add ${tunnelIp(i)}/32 dev ${ifc}`,
      `ip -n ${ns} link set ${ifc} mtu 1420 up`,
      `ip -n ${ns} route add ${HUB_IP}/32 dev ${ifc}`,
    );
  }
  const setup = `${dir}/p${phase}-setup.sh`;
  await Deno.writeTextFile(setup, lines.join("\n") + "\n");
  await run(["sh", setup], { timeoutMs: 600_000 });
  r.setupSeconds = (performance.now() - t0) / 1000;
  try {
    await measure(
      r,
      hub,
      procs.map((p) => p.pid),
      t0,
      (i) => ({ ns: clientNs[i], target: `${HUB_IP}:${SERVER_PORT}` }),
      alive,
    );
  } finally {
    const errs = procs.filter((p) => outputText(p));
    if (errs.length) {
      r.notes.push(
        `${errs.length} wireguard-go logged, e.g. ${outputText(errs[0]).slice(0, 300)}`,
      );
    }
    const hubErr = outputText(hub.proc);
    if (hubErr) r.notes.push(`hub wireguard-go output: ${hubErr.slice(0, 300)}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Output

interface Cell {
  text: string;
  value: number;
}

const fixed = (x: number, d: number) => Number.isFinite(x) ? x.toFixed(d) : "-";

interface RowDef {
  label: string;
  cell: (r: PhaseResult) => Cell;
  /** The issue's goal for this row at N = 300 (wgedge), as text and test. */
  goal?: { text: string; met: (v: number) => boolean };
  /** A ratio makes no sense for this row. */
  noRatio?: boolean;
}

function memCell(m: Mem | undefined, key: "rssMiB" | "pssMiB" | "hwmMiB", r: PhaseResult): Cell {
  if (!m) return { text: "-", value: NaN };
  const v = m[key];
  const each = r.side === "wireguard-go" && r.n > 1 ? ` (${(v / r.n).toFixed(1)} each)` : "";
  return { text: `${fixed(v, 1)}${each}`, value: v };
}

const ROWS: RowDef[] = [
  {
    label: "all N handshaken after, s",
    cell: (r) => ({
      text: `${fixed(r.handshakeSeconds, 1)}${r.handshaken < r.n ? ` (${r.handshaken}/${r.n})` : ""}${
        r.setupSeconds !== undefined ? ` (setup ${fixed(r.setupSeconds, 1)})` : ""
      }`,
      value: r.handshakeSeconds,
    }),
  },
  {
    label: "idle CPU, % of one core",
    cell: (r) => ({ text: fixed(r.idleCpuPct, 2), value: r.idleCpuPct }),
    goal: { text: "<= 1 %", met: (v) => v <= 1 },
  },
  {
    label: "idle RSS, MiB",
    cell: (r) => memCell(r.idle, "rssMiB", r),
    goal: { text: "<= 150 MiB", met: (v) => v <= 150 },
  },
  { label: "idle PSS, MiB", cell: (r) => memCell(r.idle, "pssMiB", r) },
  {
    label: "1 MiB transfers: ok, wall s",
    cell: (r) => ({
      text: `${r.transfersOk}/${r.n}, ${fixed(r.transferSeconds, 1)} s`,
      value: r.transferSeconds,
    }),
  },
  {
    label: "CPU for the transfers, core-s",
    cell: (r) => ({ text: fixed(r.transferCpuSeconds, 2), value: r.transferCpuSeconds }),
  },
  { label: "RSS right after the transfers, MiB", cell: (r) => memCell(r.afterTransfers, "rssMiB", r) },
  { label: "PSS right after the transfers, MiB", cell: (r) => memCell(r.afterTransfers, "pssMiB", r) },
  {
    label: `RSS after ${IDLE_SECONDS} s idle, MiB`,
    cell: (r) => memCell(r.afterIdle, "rssMiB", r),
    goal: { text: "<= 200 MiB", met: (v) => v <= 200 },
  },
  { label: `PSS after ${IDLE_SECONDS} s idle, MiB`, cell: (r) => memCell(r.afterIdle, "pssMiB", r) },
  {
    label: `idle CPU in those ${IDLE_SECONDS} s, %`,
    cell: (r) => ({ text: fixed(r.afterIdleCpuPct, 2), value: r.afterIdleCpuPct }),
  },
  { label: "peak RSS (VmHWM), MiB", cell: (r) => memCell(r.afterIdle, "hwmMiB", r) },
  {
    label: "hub wireguard-go idle CPU, %",
    cell: (r) => ({ text: fixed(r.hubIdleCpuPct, 2), value: r.hubIdleCpuPct }),
  },
  {
    label: "load average at idle window / at end",
    cell: (r) => ({
      text: `${r.loadAtIdle?.split(" ")[0] ?? "-"} / ${r.loadAtEnd?.split(" ")[0] ?? "-"}`,
      value: NaN,
    }),
    noRatio: true,
  },
];

function table(results: PhaseResult[]): string {
  const header = [
    "N",
    "measure",
    "wgedge (1 process)",
    "wireguard-go (N processes, sum)",
    "wgedge / wireguard-go",
  ];
  const goalN = N_LIST.includes(300) ? 300 : undefined;
  if (goalN) header.push("goal at N = 300 (wgedge)");
  const body: string[][] = [];
  for (const n of N_LIST) {
    const w = results.find((r) => r.n === n && r.side === "wgedge");
    const g = results.find((r) => r.n === n && r.side === "wireguard-go");
    for (const row of ROWS) {
      const wc = w ? (w.error ? { text: "failed", value: NaN } : row.cell(w)) : { text: "-", value: NaN };
      const gc = g ? (g.error ? { text: "failed", value: NaN } : row.cell(g)) : { text: "-", value: NaN };
      const ratio = !row.noRatio && Number.isFinite(wc.value) && Number.isFinite(gc.value) && gc.value > 0
        ? (wc.value / gc.value).toFixed(2)
        : "-";
      const line = [String(n), row.label, wc.text, gc.text, ratio];
      if (goalN) {
        line.push(
          n === goalN && row.goal && Number.isFinite(wc.value)
            ? `${row.goal.text}: ${row.goal.met(wc.value) ? "met" : "NOT met"}`
            : "",
        );
      }
      body.push(line);
    }
  }
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((l) => l[c].length)));
  const fmt = (l: string[]) => `| ${l.map((x, c) => x.padEnd(widths[c])).join(" | ")} |`;
  return [fmt(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(fmt)].join("\n");
}

/** The cost of one more tunnel (wgedge) and of one more process (wireguard-go), from the smallest and largest N. */
function marginal(results: PhaseResult[]): string[] {
  const out: string[] = [];
  const ns = [...N_LIST].sort((a, b) => a - b);
  const lo = ns[0], hi = ns[ns.length - 1];
  if (lo === hi) return out;
  for (const side of ["wgedge", "wireguard-go"] as Side[]) {
    const a = results.find((r) => r.side === side && r.n === lo && !r.error);
    const b = results.find((r) => r.side === side && r.n === hi && !r.error);
    if (!a?.idle || !b?.idle || !a.afterIdle || !b.afterIdle) continue;
    const per = (x: number, y: number) => ((y - x) / (hi - lo) * 1024).toFixed(0);
    out.push(
      `${side}: from N = ${lo} to ${hi}, each added tunnel costs ${
        per(a.idle.rssMiB, b.idle.rssMiB)
      } KiB RSS / ${per(a.idle.pssMiB, b.idle.pssMiB)} KiB PSS idle, ${
        per(a.afterIdle.rssMiB, b.afterIdle.rssMiB)
      } KiB RSS / ${
        per(a.afterIdle.pssMiB, b.afterIdle.pssMiB)
      } KiB PSS after the transfers and ${IDLE_SECONDS} s; ` +
        `${((b.idleCpuPct - a.idleCpuPct) / (hi - lo)).toFixed(4)} % of a core idle`,
    );
  }
  return out;
}

async function header(): Promise<string[]> {
  const { head, dirty } = await checkout(REPO);
  const socat = (await run(["socat", "-V"], { check: false, timeoutMs: 10_000 })).stdout.match(
    /socat version \S+/,
  )?.[0] ?? "socat";
  return [
    await machineLine(),
    `Deno ${Deno.version.deno}; ${await firstLine(["wireguard-go", "--version"])}; ${socat}`,
    `commit ${head || "unknown (not a git checkout)"}${
      dirty.length ? ` (+ ${dirty.length} uncommitted file(s) under src/ or main.ts in the working tree)` : ""
    }`,
  ];
}

const INOTIFY_INSTANCES = "/proc/sys/fs/inotify/max_user_instances";

/**
 * Every wireguard-go holds one inotify instance (it watches its UAPI socket file) and the default limit is 128
 * per user, so beyond about 120 processes wireguard-go exits at start with "Failed to listen on uapi socket:
 * too many open files". For the run the limit is raised by what the wireguard-go side needs, and put back at
 * the end (unless someone changed it meanwhile).
 */
async function raiseInotifyLimit(extra: number): Promise<{ note: string; restore: () => Promise<void> }> {
  const before = Number((await Deno.readTextFile(INOTIFY_INSTANCES)).trim());
  const target = before + extra;
  await Deno.writeTextFile(INOTIFY_INSTANCES, `${target}\n`);
  return {
    note:
      `fs.inotify.max_user_instances raised from ${before} to ${target} for the run (one inotify instance ` +
      `per wireguard-go process), restored at the end`,
    async restore() {
      const now = Number((await Deno.readTextFile(INOTIFY_INSTANCES).catch(() => "")).trim());
      if (now === target) await Deno.writeTextFile(INOTIFY_INSTANCES, `${before}\n`).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

async function benchmark(): Promise<void> {
  const why = await interopUnavailable(["socat", "curl"]);
  if (why) {
    console.error(`tunnels benchmark: cannot run here: ${why}`);
    Deno.exit(1);
  }
  const started = new Date();
  const loadBefore = loadAverage();
  const dir = await Deno.makeTempDir({ prefix: "wgedge-bench-tunnels-" });
  const live = new Set<Resources>();
  let inotify: Awaited<ReturnType<typeof raiseInotifyLimit>> | undefined;
  const cleanupAll = async () => {
    for (const r of live) await r.cleanup();
    await inotify?.restore();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const signals = cleanupOnSignals(cleanupAll);
  const results: PhaseResult[] = [];
  try {
    const maxN = Math.max(...N_LIST);
    console.error(`generating ${maxN + 1} key pairs with wg genkey/pubkey`);
    const keys = await genKeys(maxN + 1);
    const hubKey = keys.pop()!;
    if (SIDES.includes("wireguard-go") && maxN > 64) {
      inotify = await raiseInotifyLimit(maxN + 16);
      console.error(inotify.note);
    }
    let phase = 0;
    for (const [k, n] of N_LIST.entries()) {
      const order = k % 2 === 0 ? SIDES : [...SIDES].reverse();
      for (const side of order) {
        if (signals.interrupted()) return;
        phase++;
        console.error(`phase ${phase}: ${side}, N = ${n} (load ${loadAverage()})`);
        const res = new Resources({ namespacesTimeoutMs: 300_000 });
        live.add(res);
        try {
          const start = await startPhase(side, res, phase, n, keys, hubKey, dir);
          const r = side === "wgedge" ? await wgedgePhase(start) : await wireguardGoPhase(start);
          results.push(r);
        } catch (e) {
          const r = emptyResult(side, n);
          r.error = (e as Error).message;
          results.push(r);
          console.error(`  ${side} N=${n} failed: ${r.error.slice(0, 2000)}`);
        } finally {
          await res.cleanup();
          live.delete(res);
        }
      }
    }
  } finally {
    await cleanupAll();
    signals.remove();
  }
  console.log(
    `\nTunnels per process, started ${started.toISOString()}, ${Deno.args.join(" ") || "(defaults)"}`,
  );
  for (const l of await header()) console.log(l);
  console.log(`load average before: ${loadBefore}; after: ${loadAverage()}`);
  if (inotify) console.log(inotify.note);
  console.log(
    `settle ${SETTLE_SECONDS} s after the last handshake, idle CPU over ${CPU_SECONDS} s (memory read at its end), ` +
      `${CONCURRENCY} transfers at a time, then ${IDLE_SECONDS} s idle; PersistentKeepalive ${KEEPALIVE} s\n`,
  );
  console.log(table(results));
  const m = marginal(results);
  if (m.length) console.log(`\n${m.join("\n")}`);
  console.log("\nnotes:");
  for (const r of results) {
    if (r.error) console.log(`- ${r.side} N=${r.n}: FAILED: ${r.error.slice(0, 1500)}`);
    for (const note of r.notes) console.log(`- ${r.side} N=${r.n}: ${note}`);
  }
  if (results.some((r) => r.error)) Deno.exitCode = 1;
}

if (import.meta.main) {
  if (values["server-worker"]) await serverWorker();
  else await benchmark();
}
