/**
 * Relay benchmark: wgedge's relay beside the relays people deploy (HAProxy `mode tcp` with one thread and
 * with its default threads, rinetd, socat), all on loopback in the same run.
 *
 *   deno run -A scripts/bench/relay.ts [--seconds 3] [--conns 10000] [--socat-conns 2000] [--rounds 3] [--idle 9900] [--socat-idle 1000]
 *     [--engines wgedge,haproxy-1,haproxy,rinetd,socat,deno-floor] [--udp-only] [--deno-udp] [--deno-tcp] [--udp-window 1]
 *     [--warmup 2000]
 *     [--load libc|deno]
 *
 * Every engine runs side by side and each metric is measured in alternating order over several rounds
 * (medians reported): TCP throughput (iperf3 through the relay), TCP connections per second and p50/p99
 * connect-through latency (connect, 1-byte echo through the relay, close; 32 in parallel) with the relay's
 * CPU per connection, UDP round trips per second (16 clients ping-pong for a fixed time, every client active
 * to the end) with the relay's CPU per round trip, and memory (PSS) holding N idle TCP connections, in a
 * fresh process of each engine. The echo targets run in their own process so they cost every engine the same.
 * Before the first round every engine relays --warmup connections that are not measured (a relay that runs
 * for months is past its JIT warm-up; HAProxy gets the same). Beside each connection sample the load reports
 * how much of the machine stayed idle meanwhile: a rate that leaves cores idle is bound by wake-ups and
 * latency, not by CPU. Prints one table, then wgedge's ratio to HAProxy (1 thread) in each round, to show
 * the spread behind the median. Not a test: nothing is asserted.
 *
 * Engines: wgedge (`wgedge relay`), haproxy-1 (`nbthread 1`), haproxy (default threads: one per CPU), rinetd
 * (Debian's 0.73, TCP and `/udp`), socat (a process per connection; per UDP peer with `fork`), deno-floor (a
 * bare Deno program: accept, dial, two copy loops with 1 KiB buffers; what any Deno relay costs at least),
 * deno-uring (only when named in --engines: scripts/bench/lib/uring_relay.ts, an io_uring relay in Deno whose
 * thread blocks in io_uring_enter, TCP only; a ceiling for an io_uring relay core, not an engine wgedge has;
 * left out of the idle-memory phase, as it holds two receive buffers per idle connection).
 * HAProxy has no UDP. CPU is utime + stime of the engine's whole process tree, including the forks socat has
 * reaped (cutime/cstime).
 *
 * Every engine runs in its own process group (setsid); stopping it signals the whole group, so socat's UDP
 * fork children (which never exit on their own) go with it, and the run ends by checking that no process of
 * any group it started is left.
 *
 * --baseline DIR adds wgedge-baseline: `wgedge relay` from another checkout (`git archive COMMIT | tar -x -C DIR`),
 * for a before/after comparison under the same load. --deno-udp adds wgedge with WGEDGE_UDP=deno (Deno's one-op-per-datagram UDP socket);
 * --deno-tcp adds wgedge with WGEDGE_TCP=deno (TCP relays on Deno's sockets instead of the kernel-socket core). --udp-only measures
 * only the UDP round trips. --udp-window N keeps N datagrams in flight per UDP client instead of one.
 *
 * The TCP and UDP clients of the rate measurements and the echo targets run on libc's sockets in processes of
 * their own (scripts/bench/lib/libc_load.ts: one blocking epoll loop each, no promise per read, datagram or
 * connection), so the two cores go to the relay rather than to the load generator. --load deno runs them on
 * Deno's sockets instead (the clients in this process, the echoes in a Deno targets process), as the runs
 * before 2026-12-05 10:00 UTC did: they cost about 120 us of CPU per UDP round trip, which left the relays a
 * fraction of the machine and compressed their ratios. The idle-memory phase opens its connections from this
 * process either way (memory, not CPU, is measured there).
 */
import { parseArgs } from "node:util";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    // 10 000 connections take about a second at HAProxy's rate: 2 000 (0.2 s) let one GC pause or one
    // scheduling hiccup move a sample by 10 %. socat forks a process per connection (about 300/s), so fewer.
    conns: { type: "string", default: "10000" },
    "socat-conns": { type: "string", default: "2000" },
    rounds: { type: "string", default: "3" },
    // The relay holds two sockets per relayed connection and this machine's hard fd limit is 20 000 (no
    // CAP_SYS_RESOURCE to raise it), so 9 900 is the most one relay process can hold here.
    idle: { type: "string", default: "9900" },
    "socat-idle": { type: "string", default: "1000" },
    engines: { type: "string", default: "wgedge,haproxy-1,haproxy,rinetd,socat,deno-floor" },
    "udp-only": { type: "boolean", default: false },
    "deno-udp": { type: "boolean", default: false },
    "deno-tcp": { type: "boolean", default: false },
    "udp-window": { type: "string", default: "1" },
    load: { type: "string", default: "libc" },
    baseline: { type: "string" },
    // Before the first round: unmeasured connections through every engine (socat a tenth of them).
    warmup: { type: "string", default: "2000" },
  },
});
const UDP_ONLY = flags["udp-only"];
const SECONDS = Number(flags.seconds);
const ROUNDS = Number(flags.rounds);
const CONNS = Number(flags.conns);
const SOCAT_CONNS = Number(flags["socat-conns"]);
const IDLE = Number(flags.idle);
const WARMUP = Number(flags.warmup);
/** socat forks a process per connection: 10 000 of them is a fork bomb on a small VPS, so it holds fewer. */
const SOCAT_IDLE = Number(flags["socat-idle"]);
const UDP_WINDOW = Math.max(1, Number(flags["udp-window"]));
if (flags.load !== "libc" && flags.load !== "deno") {
  throw new Error(`--load: expected "libc" or "deno", got "${flags.load}"`);
}
/** Whether the clients and echo targets run on libc's sockets in their own processes (see the header). */
const LOAD_LIBC = flags.load === "libc";
const LIBC_LOAD = new URL("./lib/libc_load.ts", import.meta.url).pathname;
const URING_RELAY = new URL("./lib/uring_relay.ts", import.meta.url).pathname;
/** A connection of the rate measurement without its echo after this long counts as failed. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A UDP client that heard nothing for this long assumes its datagram was lost and sends another. */
const UDP_RESEND_MS = 100;
const DENO = Deno.execPath();
const ROOT = new URL("../../", import.meta.url).pathname;

type EngineName =
  | "wgedge"
  | "wgedge-deno-udp"
  | "wgedge-deno-tcp"
  | "wgedge-baseline"
  | "haproxy-1"
  | "haproxy"
  | "rinetd"
  | "socat"
  | "deno-floor"
  | "deno-uring";
const ALL: EngineName[] = [
  "wgedge",
  "haproxy-1",
  "haproxy",
  "rinetd",
  "socat",
  "deno-floor",
  "wgedge-deno-udp",
  "wgedge-deno-tcp",
  "wgedge-baseline",
  "deno-uring",
];
const ENGINES = flags.engines.split(",").map((s) => s.trim()) as EngineName[];
for (const e of ENGINES) {
  if (!ALL.includes(e)) {
    console.error(`--engines: unknown engine "${e}"; expected some of ${ALL.join(",")}`);
    Deno.exit(2);
  }
}
if (flags["deno-udp"] && !ENGINES.includes("wgedge-deno-udp")) ENGINES.push("wgedge-deno-udp");
if (flags["deno-tcp"] && !ENGINES.includes("wgedge-deno-tcp")) ENGINES.push("wgedge-deno-tcp");
/** Another checkout of wgedge (e.g. `git archive COMMIT | tar -x -C DIR`), measured as wgedge-baseline. */
const BASELINE = flags.baseline
  ? new URL(`${flags.baseline.replace(/\/$/, "")}/`, `file://${Deno.cwd()}/`).pathname
  : undefined;
if (BASELINE && !ENGINES.includes("wgedge-baseline")) ENGINES.splice(1, 0, "wgedge-baseline");
const hasUdp = (e: EngineName) =>
  e !== "haproxy-1" && e !== "haproxy" && e !== "deno-floor" && e !== "deno-uring";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

async function waitTcp(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`nothing listening on ${port}`);
}

/** Every process group this run started (one per engine and one for the targets), for the final check. */
const groups = new Set<number>();

/**
 * Spawns cmd as the leader of a new process group (`setsid`, which execs in place: the pid is the program's)
 * with the fd limit raised to the hard limit, so it may hold tens of thousands of sockets.
 */
function spawnGroup(cmd: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  const quoted = cmd.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", `ulimit -n "$(ulimit -Hn)"; exec ${quoted}`],
    env: { PATH: Deno.env.get("PATH") ?? "", ...env },
    clearEnv: true,
    stdout: "null",
    stderr: "null",
  }).spawn();
  groups.add(child.pid);
  return child;
}

/** The pids whose process group is pgid. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[2]) === pgid && f[0] !== "Z") out.push(Number(e.name));
    } catch { /* exited */ }
  }
  return out;
}

function killGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch { /* group gone */ }
}

/** SIGTERM to the whole group, SIGKILL to what is left after 5 s; waits for the leader. */
async function stopGroup(child: Deno.ChildProcess): Promise<void> {
  killGroup(child.pid, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (groupMembers(child.pid).length > 0 && Date.now() < deadline) await sleep(50);
  killGroup(child.pid, "SIGKILL");
  await child.status;
  for (let i = 0; i < 40 && groupMembers(child.pid).length > 0; i++) await sleep(50);
}

/**
 * Echo targets in their own process: TCP echo (holds idle conns: a 4 KiB buffer each, so 9 900 of them are
 * 40 MiB, not 620; an accept error such as EMFILE is retried, not the end of the accept loop) and UDP echo.
 * The UDP echo ignores empty datagrams: rinetd 0.73 opens each UDP flow with an empty datagram to the
 * target and drops the flow when one comes back (it reads a 0-byte datagram as a closed connection), so
 * echoing it would measure that quirk.
 */
const TARGETS_SRC = `
const [tcpPort, udpPort] = Deno.args.map(Number);
const l = Deno.listen({ hostname: "127.0.0.1", port: tcpPort });
(async () => { for (;;) { let c; try { c = await l.accept(); } catch { await new Promise((r) => setTimeout(r, 100)); continue; }
  (async () => { const b = new Uint8Array(4096);
  try { for (;;) { const n = await c.read(b); if (n === null) break; let o = 0; while (o < n) o += await c.write(b.subarray(o, n)); } } catch {}
  try { c.close(); } catch {} })(); } })();
const u = Deno.listenDatagram({ hostname: "127.0.0.1", port: udpPort, transport: "udp" });
(async () => { for (;;) { const [d, a] = await u.receive(); if (d.length > 0) u.send(d, a).catch(() => {}); } })();
`;

/**
 * The floor of a Deno relay: accept, dial, two copy loops with 1 KiB buffers, close both at the end. No
 * logging, counters, timers or options: what a relay written in Deno costs at least per connection.
 */
const FLOOR_SRC = `
const [inPort, outPort] = Deno.args.map(Number);
const l = Deno.listen({ hostname: "127.0.0.1", port: inPort });
async function copy(a, b) { const buf = new Uint8Array(1024);
  try { for (;;) { const n = await a.read(buf); if (n === null) break; let o = 0; while (o < n) o += await b.write(buf.subarray(o, n)); }
    await b.closeWrite(); } catch { try { a.close(); } catch {} try { b.close(); } catch {} } }
(async () => { for await (const c of l) { (async () => { let u;
  try { u = await Deno.connect({ hostname: "127.0.0.1", port: outPort }); } catch { c.close(); return; }
  await Promise.all([copy(c, u), copy(u, c)]); try { c.close(); } catch {} try { u.close(); } catch {} })(); } })();
`;

function procStat(pid: number): string[] | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** pid and its descendants. */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const f = procStat(Number(e.name));
    if (!f) continue;
    const list = children.get(Number(f[1])) ?? [];
    list.push(Number(e.name));
    children.set(Number(f[1]), list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** utime + stime of the tree (USER_HZ 100), plus the root's reaped children (cutime + cstime). */
function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const p of tree(root)) {
    const f = procStat(p);
    if (!f) continue;
    ticks += Number(f[11]) + Number(f[12]);
    if (p === root) ticks += Number(f[13]) + Number(f[14]);
  }
  return ticks / 100;
}

/** Proportional set size (shared pages divided among their users), so summing forks does not overcount. */
function pssKiB(pid: number): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
    return Number(/^Pss:\s+(\d+)/m.exec(s)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function treePssKiB(root: number): number {
  return tree(root).reduce((t, p) => t + pssKiB(p), 0);
}

async function iperfThroughput(port: number): Promise<number> {
  for (let attempt = 1;; attempt++) {
    const out = await new Deno.Command("iperf3", {
      args: ["-c", "127.0.0.1", "-p", String(port), "-t", String(SECONDS), "-J"],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout((SECONDS + 30) * 1000),
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    try {
      const j = JSON.parse(text);
      if (j.end?.sum_received?.bits_per_second) return j.end.sum_received.bits_per_second / 1e9;
      if (attempt >= 3) throw new Error(j.error ?? "no result");
    } catch (e) {
      if (attempt >= 3) {
        console.error(`iperf3 through port ${port} failed: ${(e as Error).message}`);
        return NaN;
      }
    }
    await sleep(1000);
  }
}

/** Rejects after ms: bounds every await on a relay that may hang. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)
    ),
  ]).finally(() => clearTimeout(timer));
}

async function connectRate(
  port: number,
  conns: number,
): Promise<{ rate: number; p50: number; p99: number; errors: number; machineIdle: number }> {
  if (LOAD_LIBC) {
    const r = await runLibcLoad<
      { seconds: number; latenciesMs: number[]; errors: number; machineIdle: number }
    >(
      ["tcp-client", port, conns, 32, CONNECT_TIMEOUT_MS],
      (conns * CONNECT_TIMEOUT_MS) / 32 / 1000 + 30,
    );
    const lat = r.latenciesMs.sort((a, b) => a - b);
    return {
      rate: lat.length / r.seconds,
      p50: lat[Math.floor(lat.length * 0.5)],
      p99: lat[Math.floor(lat.length * 0.99)],
      errors: r.errors,
      machineIdle: r.machineIdle,
    };
  }
  const lat: number[] = [];
  const one = new Uint8Array([42]);
  let next = 0, errors = 0;
  const start = performance.now();
  const worker = async () => {
    const buf = new Uint8Array(1);
    while (next < conns) {
      next++;
      const t0 = performance.now();
      let c: Deno.TcpConn | undefined;
      try {
        c = await within(Deno.connect({ hostname: "127.0.0.1", port }), 10_000, "connect");
        await c.write(one);
        if (await within(c.read(buf), 10_000, "echo") !== 1) throw new Error("no echo");
        lat.push(performance.now() - t0);
      } catch {
        errors++;
      } finally {
        try {
          c?.close();
        } catch { /* closed */ }
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const secs = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  return {
    rate: lat.length / secs,
    p50: lat[Math.floor(lat.length * 0.5)],
    p99: lat[Math.floor(lat.length * 0.99)],
    errors,
    machineIdle: NaN, // the load runs in this process: the machine's idle time says nothing of the relay
  };
}

/**
 * 16 client sockets each ping-pong 64-byte datagrams (UDP_WINDOW in flight) for exactly SECONDS; the rate is
 * the replies received in that time divided by it. Each datagram carries a sequence number: a client that
 * heard nothing for UDP_RESEND_MS sends its outstanding ones again (one was lost), so every client stays
 * active to the end instead of one lost datagram silencing it, and a late reply to a datagram already
 * answered is ignored, so a resend never widens the window. Returns the rate and how many were resent.
 */
async function udpRate(port: number): Promise<{ rate: number; resent: number }> {
  if (LOAD_LIBC) {
    const r = await runLibcLoad<{ received: number; resent: number }>(
      ["udp-client", port, SECONDS, 16, UDP_WINDOW, UDP_RESEND_MS],
      SECONDS + 30,
    );
    return { rate: r.received / SECONDS, resent: r.resent };
  }
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  const socks = Array.from(
    { length: 16 },
    () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }),
  );
  const outstanding = socks.map(() => new Set<number>());
  const lastHeard = socks.map(() => performance.now());
  const payload = (seq: number) => {
    const p = new Uint8Array(64);
    new DataView(p.buffer).setUint32(0, seq);
    return p;
  };
  let received = 0, resent = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  const watchdog = setInterval(() => {
    const now = performance.now();
    socks.forEach((s, i) => {
      if (now - lastHeard[i] < UDP_RESEND_MS) return;
      lastHeard[i] = now;
      for (const seq of outstanding[i]) {
        resent++;
        s.send(payload(seq), to).catch(() => {});
      }
    });
  }, UDP_RESEND_MS / 2);
  const stopAt = setTimeout(() => socks.forEach((s) => s.close()), SECONDS * 1000);
  await Promise.all(socks.map(async (sock, i) => {
    const mine = outstanding[i];
    let next = 0;
    try {
      for (let w = 0; w < UDP_WINDOW; w++) {
        mine.add(next);
        await sock.send(payload(next++), to);
      }
      for (;;) {
        const [d] = await sock.receive();
        const now = performance.now();
        if (now >= end) break;
        if (d.length < 4 || !mine.delete(new DataView(d.buffer, d.byteOffset).getUint32(0))) continue;
        received++;
        lastHeard[i] = now;
        mine.add(next);
        await sock.send(payload(next++), to);
      }
    } catch { /* closed at the end */ }
  }));
  clearInterval(watchdog);
  clearTimeout(stopAt);
  for (const s of socks) {
    try {
      s.close();
    } catch { /* closed */ }
  }
  return { rate: received / SECONDS, resent };
}

/** One client run of scripts/bench/lib/libc_load.ts in its own process (killed after limitSeconds): its JSON. */
async function runLibcLoad<T>(args: (string | number)[], limitSeconds: number): Promise<T> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", LIBC_LOAD, ...args.map(String)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), limitSeconds * 1000);
  const out = await child.output();
  clearTimeout(killer);
  if (!out.success) throw new Error(`libc_load ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as T;
}

async function idleMemory(
  port: number,
  pid: number,
  count: number,
): Promise<{ mib: number; held: number; baseMiB: number }> {
  const base = treePssKiB(pid);
  const conns: Deno.Conn[] = [];
  const buf = new Uint8Array(1);
  try {
    for (let i = 0; i < count; i += 200) {
      const batch = await Promise.allSettled(
        Array.from({ length: Math.min(200, count - i) }, async () => {
          const c = await within(Deno.connect({ hostname: "127.0.0.1", port }), 10_000, "connect");
          try {
            await c.write(buf);
            // The echo proves the connection reaches the target; a relay out of fds never answers.
            if (await within(c.read(buf), 5000, "echo") !== 1) throw new Error("no echo");
            return c;
          } catch (e) {
            c.close();
            throw e;
          }
        }),
      );
      for (const r of batch) if (r.status === "fulfilled") conns.push(r.value);
    }
    // Idle means settled: the connect burst leaves garbage collected only later, so read until two readings a
    // second apart agree within 1 % (at most 15 s) and report the settled value.
    let pss = treePssKiB(pid);
    for (let i = 0; i < 15; i++) {
      await sleep(1000);
      const next = treePssKiB(pid);
      const settled = Math.abs(next - pss) <= pss * 0.01;
      pss = next;
      if (settled) break;
    }
    return { mib: pss / 1024, held: conns.length, baseMiB: base / 1024 };
  } finally {
    for (const c of conns) c.close();
    await sleep(500);
  }
}

interface Engine {
  name: EngineName;
  tcpIn: number;
  udpIn: number;
  iperfIn: number;
  /** The process measured: a group leader; CPU and memory are those of its tree. */
  pid: number;
  procs: Deno.ChildProcess[];
  dir: string;
}

function haproxyConfig(threads: number | undefined, routes: [number, number][]): string {
  const lines = [
    "global",
    ...(threads ? [`  nbthread ${threads}`] : []),
    "  maxconn 9950", // 2 fds per connection within the hard limit of 20 000
    "defaults",
    "  mode tcp",
    "  timeout connect 15s",
    "  timeout client 1h",
    "  timeout server 1h",
  ];
  for (const [inPort, outPort] of routes) {
    lines.push(
      `listen r${inPort}`,
      `  bind 127.0.0.1:${inPort}`,
      `  server s 127.0.0.1:${outPort}`,
    );
  }
  return lines.join("\n") + "\n";
}

async function startEngine(name: EngineName, tcpTarget: number, udpTarget: number): Promise<Engine> {
  const tcpIn = freePort(), udpIn = freePort();
  const iperfPort = freePort(), iperfIn = freePort();
  const dir = await Deno.makeTempDir({ prefix: `wgedge-bench-${name}-` });
  const iperfServer = spawnGroup(["iperf3", "-s", "-B", "127.0.0.1", "-p", String(iperfPort)]);
  const procs: Deno.ChildProcess[] = [iperfServer];
  let main: Deno.ChildProcess;
  if (name.startsWith("wgedge")) {
    const root = name === "wgedge-baseline" ? BASELINE : ROOT;
    if (!root) throw new Error("wgedge-baseline needs --baseline DIR");
    main = spawnGroup([
      DENO,
      "run",
      "-A",
      "--config",
      `${root}deno.json`,
      `${root}main.ts`,
      "relay",
      "-r",
      `${tcpIn};${tcpTarget};127.0.0.1;TCP`,
      "-r",
      `${udpIn};${udpTarget};127.0.0.1;UDP`,
      "-r",
      `${iperfIn};${iperfPort};127.0.0.1;TCP`,
    ], {
      ENABLE_LOGGING: "n",
      WGEDGE_LOG_LEVEL: "warn",
      WGEDGE_UDP: name === "wgedge-deno-udp" ? "deno" : "auto",
      WGEDGE_TCP: name === "wgedge-deno-tcp" ? "deno" : "auto",
    });
    procs.push(main);
  } else if (name === "haproxy-1" || name === "haproxy") {
    const cfg = `${dir}/haproxy.cfg`;
    await Deno.writeTextFile(
      cfg,
      haproxyConfig(name === "haproxy-1" ? 1 : undefined, [[tcpIn, tcpTarget], [iperfIn, iperfPort]]),
    );
    main = spawnGroup(["haproxy", "-db", "-f", cfg]);
    procs.push(main);
  } else if (name === "rinetd") {
    const cfg = `${dir}/rinetd.conf`;
    await Deno.writeTextFile(
      cfg,
      [
        `127.0.0.1 ${tcpIn} 127.0.0.1 ${tcpTarget}`,
        `127.0.0.1 ${iperfIn} 127.0.0.1 ${iperfPort}`,
        `127.0.0.1 ${udpIn}/udp 127.0.0.1 ${udpTarget}/udp`,
        "",
      ].join("\n"),
    );
    main = spawnGroup(["rinetd", "-f", "-c", cfg]);
    procs.push(main);
  } else if (name === "deno-uring") {
    main = spawnGroup([DENO, "run", "-A", URING_RELAY, String(tcpIn), String(tcpTarget)]);
    procs.push(main, spawnGroup([DENO, "run", "-A", URING_RELAY, String(iperfIn), String(iperfPort)]));
  } else if (name === "deno-floor") {
    const src = `${dir}/floor.js`;
    await Deno.writeTextFile(src, FLOOR_SRC);
    main = spawnGroup([DENO, "run", "-A", src, String(tcpIn), String(tcpTarget)]);
    // iperf3 through the floor too: a second floor process (its CPU and memory are not measured).
    procs.push(main, spawnGroup([DENO, "run", "-A", src, String(iperfIn), String(iperfPort)]));
  } else {
    main = spawnGroup([
      "socat",
      `TCP-LISTEN:${tcpIn},bind=127.0.0.1,fork,reuseaddr,backlog=4096`,
      `TCP:127.0.0.1:${tcpTarget}`,
    ]);
    const udp = spawnGroup([
      "socat",
      `UDP-LISTEN:${udpIn},bind=127.0.0.1,fork,reuseaddr`,
      `UDP:127.0.0.1:${udpTarget}`,
    ]);
    const ip = spawnGroup([
      "socat",
      `TCP-LISTEN:${iperfIn},bind=127.0.0.1,fork,reuseaddr`,
      `TCP:127.0.0.1:${iperfPort}`,
    ]);
    procs.push(main, udp, ip);
  }
  const e: Engine = { name, tcpIn, udpIn, iperfIn, pid: main.pid, procs, dir };
  try {
    await waitTcp(tcpIn);
    await waitTcp(iperfIn);
    await waitTcp(iperfPort);
  } catch (err) {
    await stopEngine(e);
    throw new Error(`${name} did not start: ${(err as Error).message}`);
  }
  return e;
}

/** socat's UDP relay is a second process; its CPU is what a UDP round trip costs socat. */
function udpPid(e: Engine): number {
  return e.name === "socat" ? e.procs[2].pid : e.pid;
}

async function stopEngine(e: Engine): Promise<void> {
  for (const p of [...e.procs].reverse()) await stopGroup(p);
  await Deno.remove(e.dir, { recursive: true }).catch(() => {});
}

function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return v.length === 0 ? NaN : v[Math.floor(v.length / 2)];
}

interface Samples {
  tp: number[];
  cps: number[];
  p50: number[];
  p99: number[];
  cpuPerConnUs: number[];
  connErrors: number[];
  machineIdle: number[];
  udp: number[];
  udpCpuUs: number[];
  udpResent: number[];
}

/**
 * Every engine runs side by side and every metric is measured in alternating order (a, b, c, then c, b, a,
 * ...) ROUNDS times; the table shows medians. On a shared, busy machine this keeps a burst of someone else's
 * load from landing on one engine only.
 */
async function measure(engines: Engine[]): Promise<Map<EngineName, Samples>> {
  const samples = new Map<EngineName, Samples>();
  for (const e of engines) {
    samples.set(e.name, {
      tp: [],
      cps: [],
      p50: [],
      p99: [],
      cpuPerConnUs: [],
      connErrors: [],
      machineIdle: [],
      udp: [],
      udpCpuUs: [],
      udpResent: [],
    });
  }
  if (!UDP_ONLY && WARMUP > 0) {
    for (const e of engines) await connectRate(e.tcpIn, e.name === "socat" ? Math.ceil(WARMUP / 10) : WARMUP);
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? engines : [...engines].reverse();
    if (!UDP_ONLY) {
      for (const e of order) samples.get(e.name)!.tp.push(await iperfThroughput(e.iperfIn));
      for (const e of order) {
        const s = samples.get(e.name)!;
        const cpu0 = treeCpuSeconds(e.pid);
        const conns = e.name === "socat" ? SOCAT_CONNS : CONNS;
        const c = await connectRate(e.tcpIn, conns);
        s.cpuPerConnUs.push(((treeCpuSeconds(e.pid) - cpu0) * 1e6) / conns);
        s.cps.push(c.rate);
        s.p50.push(c.p50);
        s.p99.push(c.p99);
        s.connErrors.push(c.errors);
        s.machineIdle.push(c.machineIdle * 100);
      }
    }
    for (const e of order) {
      if (!hasUdp(e.name)) continue;
      const s = samples.get(e.name)!;
      const pid = udpPid(e);
      const cpu0 = treeCpuSeconds(pid);
      const u = await udpRate(e.udpIn);
      s.udp.push(u.rate);
      s.udpResent.push(u.resent);
      s.udpCpuUs.push(((treeCpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, u.rate * SECONDS));
    }
    console.error(`round ${round + 1}/${ROUNDS} done (load average ${loadAverage()})`);
  }
  return samples;
}

/** TCP sockets of this network namespace in TIME_WAIT (state 06 in /proc/net/tcp and tcp6). */
function timeWaitCount(): number {
  let n = 0;
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    try {
      for (const line of Deno.readTextFileSync(f).split("\n").slice(1)) {
        if (line.trim().split(/\s+/)[3] === "06") n++;
      }
    } catch { /* no IPv6 */ }
  }
  return n;
}

/**
 * Every idle-memory phase opens 2 x 9 900 loopback connections and closes them, leaving them in TIME_WAIT for
 * 60 s; back to back on a quiet machine the next engine's phase then found no free local port (28 000 in the
 * default range) and held nothing. Waits (at most 90 s) until at most 2 000 are left.
 */
async function drainTimeWait(): Promise<void> {
  const start = Date.now();
  // The echo target's own connections from the previous phase must be gone too (its descriptors).
  const targetFds = () => {
    try {
      return [...Deno.readDirSync(`/proc/${targets.pid}/fd`)].length;
    } catch {
      return 0;
    }
  };
  while ((timeWaitCount() > 2000 || targetFds() > 200) && Date.now() - start < 90_000) await sleep(1000);
  const waited = (Date.now() - start) / 1000;
  if (waited >= 1) {
    console.error(`waited ${waited.toFixed(0)} s for TIME_WAIT sockets (${timeWaitCount()} left)`);
  }
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

const tcpTarget = freePort(), udpTarget = freePort();
const targetsDir = await Deno.makeTempDir({ prefix: "wgedge-bench-targets-" });
await Deno.writeTextFile(`${targetsDir}/targets.ts`, TARGETS_SRC);
const targets = spawnGroup(
  LOAD_LIBC
    ? [DENO, "run", "-A", LIBC_LOAD, "targets", String(tcpTarget), String(udpTarget)]
    : [DENO, "run", "-A", "--unstable-net", `${targetsDir}/targets.ts`, String(tcpTarget), String(udpTarget)],
);
const loadBefore = loadAverage();
const started: Engine[] = [];
const onSignal = () => {
  console.error("interrupted: stopping every engine");
  Promise.all(started.map(stopEngine)).finally(() => stopGroup(targets)).finally(() => Deno.exit(130));
};
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);
try {
  await waitTcp(tcpTarget);
  for (const name of ENGINES) started.push(await startEngine(name, tcpTarget, udpTarget));
  let samples: Map<EngineName, Samples>;
  try {
    samples = await measure(started);
  } finally {
    for (const e of started.splice(0)) await stopEngine(e);
  }
  // Memory: a fresh process of each engine, so the number is what idle connections cost, not what the
  // stress rounds above left in the heap.
  const idle = new Map<EngineName, { mib: number; held: number; baseMiB: number }>();
  for (const name of UDP_ONLY ? [] : ENGINES.filter((n) => n !== "wgedge-deno-udp" && n !== "deno-uring")) {
    await drainTimeWait();
    const e = await startEngine(name, tcpTarget, udpTarget);
    started.push(e);
    try {
      await sleep(1000);
      idle.set(name, await idleMemory(e.tcpIn, e.pid, name === "socat" ? SOCAT_IDLE : IDLE));
    } finally {
      await stopEngine(started.pop()!);
    }
  }
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  const head = new TextDecoder().decode(
    (await new Deno.Command("git", { args: ["-C", ROOT, "rev-parse", "--short", "HEAD"], stdout: "piped" })
      .output()).stdout,
  ).trim();
  console.log(
    `machine: ${navigator.hardwareConcurrency} CPUs (${cpu}), ${Deno.osRelease()}, deno ${Deno.version.deno}; ` +
      `commit ${head}; ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
  );
  console.log(
    `settings: medians of ${ROUNDS} alternating rounds; ${SECONDS} s iperf3, ${CONNS} connections (socat ${SOCAT_CONNS}; 32 parallel), ` +
      `UDP ${SECONDS} s (16 clients, ${UDP_WINDOW} in flight each), ${IDLE} idle connections (socat ${SOCAT_IDLE}); ` +
      `clients and echo targets on ${flags.load}'s sockets; load average before ${loadBefore}, at the end ${loadAverage()}\n`,
  );
  const fmt = (v: number | undefined, digits: number) =>
    v === undefined || Number.isNaN(v) ? "-" : v.toFixed(digits);
  const perConn = (n: EngineName) => {
    const m = idle.get(n);
    return m && m.held > 0 ? ((m.mib - m.baseMiB) * 1024) / m.held : NaN;
  };
  const rows: [string, (n: EngineName) => number, number][] = [
    ["TCP throughput (Gbit/s, iperf3, 1 stream)", (n) => median(samples.get(n)!.tp), 2],
    ["TCP connections/s (connect + 1-byte echo + close, 32 parallel)", (n) => median(samples.get(n)!.cps), 0],
    ["relay CPU per connection (us)", (n) => median(samples.get(n)!.cpuPerConnUs), 0],
    [
      "machine idle during the connection samples (% of all cores)",
      (n) => median(samples.get(n)!.machineIdle),
      0,
    ],
    ["connect-through latency p50 (ms)", (n) => median(samples.get(n)!.p50), 2],
    ["connect-through latency p99 (ms)", (n) => median(samples.get(n)!.p99), 2],
    ["UDP round trips/s (16 clients ping-pong)", (n) => median(samples.get(n)!.udp), 0],
    ["relay CPU per UDP round trip (us)", (n) => median(samples.get(n)!.udpCpuUs), 1],
    [
      "UDP datagrams resent after 100 ms silence (median of rounds)",
      (n) => median(samples.get(n)!.udpResent),
      0,
    ],
    ["PSS per idle TCP connection (KiB)", perConn, 1],
    ["idle connections held", (n) => idle.get(n)?.held ?? NaN, 0],
    ["PSS before the idle connections (MiB)", (n) => idle.get(n)?.baseMiB ?? NaN, 1],
  ];
  console.log(`| metric | ${ENGINES.join(" | ")} |`);
  console.log(`|---|${ENGINES.map(() => "---:").join("|")}|`);
  for (const [label, get, digits] of rows) {
    const vals = ENGINES.map(get);
    if (vals.every((v) => Number.isNaN(v))) continue;
    console.log(`| ${label} | ${vals.map((v) => fmt(v, digits)).join(" | ")} |`);
  }
  const w = "wgedge";
  if (ENGINES.includes(w)) {
    const ratio = (label: string, get: (n: EngineName) => number, other: EngineName) =>
      ENGINES.includes(other) && !Number.isNaN(get(w) / get(other))
        ? `${label} ${(get(w) / get(other)).toFixed(2)}x ${other}`
        : "";
    console.log(
      "\nwgedge ratios: " + [
        ratio("conn/s", (n) => median(samples.get(n)!.cps), "haproxy-1"),
        ratio("conn/s", (n) => median(samples.get(n)!.cps), "haproxy"),
        ratio("conn/s", (n) => median(samples.get(n)!.cps), "rinetd"),
        ratio("conn/s", (n) => median(samples.get(n)!.cps), "socat"),
        ratio("throughput", (n) => median(samples.get(n)!.tp), "haproxy-1"),
        ratio("UDP", (n) => median(samples.get(n)!.udp), "socat"),
        ratio("UDP", (n) => median(samples.get(n)!.udp), "rinetd"),
        ratio("conn/s", (n) => median(samples.get(n)!.cps), "wgedge-baseline"),
        ratio("UDP", (n) => median(samples.get(n)!.udp), "wgedge-baseline"),
      ].filter(Boolean).join("; "),
    );
  }
  if (ENGINES.includes("wgedge") && ENGINES.includes("haproxy-1")) {
    // Each round's pair of samples ran back to back: their ratio shows the spread behind the median.
    const w = samples.get("wgedge")!.cps, h = samples.get("haproxy-1")!.cps;
    console.log(`wgedge / haproxy-1 conn/s by round: ${w.map((v, i) => (v / h[i]).toFixed(2)).join(" ")}`);
  }
  const errs = ENGINES.map((n) => `${n} ${samples.get(n)!.connErrors.reduce((a, b) => a + b, 0)}`);
  console.log(`failed connections (all rounds): ${errs.join(", ")}`);
} finally {
  for (const e of started.splice(0)) await stopEngine(e);
  await stopGroup(targets);
  await Deno.remove(targetsDir, { recursive: true }).catch(() => {});
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  const left = [...groups].flatMap((g) => groupMembers(g));
  console.log(
    left.length === 0
      ? `cleanup: no process of the ${groups.size} process groups started is left`
      : `cleanup: ${left.length} processes left: ${left.join(" ")}`,
  );
}
