/**
 * Relay benchmark: wgedge's relay against socat (seed 002's engine) in the same run, on loopback.
 *
 *   deno run -A scripts/bench/relay.ts [--seconds 3] [--conns 2000] [--rounds 3] [--idle 9900] [--socat-idle 1000]
 *     [--udp-only] [--deno-udp] [--udp-window 1]
 *
 * Both engines run side by side and each metric is measured in alternating order over several rounds
 * (medians reported): TCP throughput (iperf3 through the relay), TCP connections per second and p50/p99
 * connect-through latency (connect, 1-byte echo through the relay, close; 32 in parallel), UDP round trips
 * per second (16 clients), and memory (PSS) holding N idle TCP connections. The echo targets run in their
 * own process so they cost both engines the same. Prints one table with ratios. Not a test: nothing is
 * asserted.
 *
 * --deno-udp adds a third engine, wgedge with WGEDGE_UDP=deno (Deno's one-op-per-datagram UDP socket instead
 * of the recvmmsg/sendmmsg batches), measured in the same alternating rounds. --udp-only measures only the
 * UDP round trips (no iperf3, connection rate or idle memory). --udp-window N keeps N datagrams in flight per
 * UDP client instead of one (a stream rather than ping-pong, where batching can show).
 */
import { parseArgs } from "node:util";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    conns: { type: "string", default: "2000" },
    rounds: { type: "string", default: "3" },
    // The relay holds two sockets per relayed connection and this machine's hard fd limit is 20 000 (no
    // CAP_SYS_RESOURCE to raise it), so 9 900 is the most one relay process can hold here.
    idle: { type: "string", default: "9900" },
    "socat-idle": { type: "string", default: "1000" },
    udp: { type: "string", default: "20000" },
    "udp-only": { type: "boolean", default: false },
    "deno-udp": { type: "boolean", default: false },
    "udp-window": { type: "string", default: "1" },
  },
});
const UDP_ONLY = flags["udp-only"];
const SECONDS = Number(flags.seconds);
const ROUNDS = Number(flags.rounds);
const CONNS = Number(flags.conns);
const IDLE = Number(flags.idle);
/** socat forks a process per connection: 10 000 of them is a fork bomb on a small VPS, so it holds fewer. */
const SOCAT_IDLE = Number(flags["socat-idle"]);
const UDP_PACKETS = Number(flags.udp);
const UDP_WINDOW = Math.max(1, Number(flags["udp-window"]));
const DENO = Deno.execPath();
const ROOT = new URL("../../", import.meta.url).pathname;

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

/** Spawns `sh -c 'ulimit -n 65536; exec ...'` so a process may hold tens of thousands of sockets. */
function spawnWithFds(cmd: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  const quoted = cmd.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  return new Deno.Command("sh", {
    args: ["-c", `ulimit -n 65536; exec ${quoted}`],
    env,
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* gone */ }
  await child.status;
}

/** Echo targets in their own process: TCP echo (holds idle conns) and UDP echo. */
const TARGETS_SRC = `
const [tcpPort, udpPort] = Deno.args.map(Number);
const l = Deno.listen({ hostname: "127.0.0.1", port: tcpPort });
(async () => { for await (const c of l) { (async () => { const b = new Uint8Array(65536);
  try { for (;;) { const n = await c.read(b); if (n === null) break; let o = 0; while (o < n) o += await c.write(b.subarray(o, n)); } } catch {}
  try { c.close(); } catch {} })(); } })();
const u = Deno.listenDatagram({ hostname: "127.0.0.1", port: udpPort, transport: "udp" });
(async () => { for (;;) { const [d, a] = await u.receive(); u.send(d, a).catch(() => {}); } })();
`;

/** Proportional set size (shared pages divided among their users), so summing forks does not overcount. */
function rssKiB(pid: number): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
    return Number(/^Pss:\s+(\d+)/m.exec(s)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** utime + stime of a process in seconds (USER_HZ is 100 on Linux). */
function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** RSS of pid and all its descendants (socat forks one process per connection). */
function treeRssKiB(root: number): number {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e.name));
      children.set(ppid, list);
    } catch { /* exited */ }
  }
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    total += rssKiB(p);
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

interface EngineResult {
  throughputGbps: number;
  connsPerSec: number;
  p50ms: number;
  p99ms: number;
  udpPps: number;
  /** CPU (user + system) of the relay process per UDP round trip, in microseconds (wgedge only). */
  udpCpuUs: number;
  idleRssMiB: number;
  idleHeld: number;
  idleBaseMiB: number;
}

async function iperfThroughput(port: number): Promise<number> {
  for (let attempt = 1;; attempt++) {
    const out = await new Deno.Command("iperf3", {
      args: ["-c", "127.0.0.1", "-p", String(port), "-t", String(SECONDS), "-J"],
      stdout: "piped",
      stderr: "piped",
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

async function connectRate(port: number): Promise<{ rate: number; p50: number; p99: number }> {
  const lat: number[] = [];
  const one = new Uint8Array([42]);
  let next = 0;
  const start = performance.now();
  const worker = async () => {
    const buf = new Uint8Array(1);
    while (next < CONNS) {
      next++;
      const t0 = performance.now();
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(one);
      await c.read(buf);
      lat.push(performance.now() - t0);
      c.close();
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const secs = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  return {
    rate: lat.length / secs,
    p50: lat[Math.floor(lat.length * 0.5)],
    p99: lat[Math.floor(lat.length * 0.99)],
  };
}

async function udpRate(port: number): Promise<number> {
  // 16 client sockets each ping-pong one 64-byte datagram at a time until the deadline; closing the sockets
  // at the deadline ends any receive still waiting (a lost datagram only stalls its own socket).
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  const payload = new Uint8Array(64);
  const socks = Array.from(
    { length: 16 },
    () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }),
  );
  let received = 0;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  const timer = setTimeout(() => socks.forEach((s) => s.close()), SECONDS * 1000 + 100);
  await Promise.all(socks.map(async (sock) => {
    try {
      for (let i = 0; i < UDP_WINDOW; i++) await sock.send(payload, to);
      while (received < UDP_PACKETS && performance.now() < deadline) {
        await sock.receive();
        received++;
        await sock.send(payload, to);
      }
    } catch { /* closed at the deadline */ }
  }));
  const secs = (performance.now() - start) / 1000;
  clearTimeout(timer);
  for (const s of socks) {
    try {
      s.close();
    } catch { /* closed */ }
  }
  return received / secs;
}

async function idleRss(
  port: number,
  pid: number,
  tree: boolean,
  count: number,
): Promise<{ mib: number; held: number; baseMiB: number }> {
  const base = tree ? treeRssKiB(pid) : rssKiB(pid);
  const conns: Deno.Conn[] = [];
  const buf = new Uint8Array(1);
  try {
    for (let i = 0; i < count; i += 200) {
      const batch = await Promise.allSettled(
        Array.from({ length: Math.min(200, count - i) }, async () => {
          const c = await Deno.connect({ hostname: "127.0.0.1", port });
          let timer: ReturnType<typeof setTimeout> | undefined;
          try {
            await c.write(buf);
            // The echo proves the connection reaches the target; a relay out of fds never answers.
            const ok = await Promise.race([
              c.read(buf).then((n) => n === 1),
              new Promise<boolean>((r) => timer = setTimeout(() => r(false), 5000)),
            ]);
            if (!ok) throw new Error("no echo");
            return c;
          } catch (e) {
            c.close();
            throw e;
          } finally {
            clearTimeout(timer);
          }
        }),
      );
      for (const r of batch) if (r.status === "fulfilled") conns.push(r.value);
    }
    // Idle means settled: the connect burst leaves garbage V8 collects only later, so read until two
    // readings a second apart agree within 1 % (at most 15 s) and report the settled value.
    let rss = tree ? treeRssKiB(pid) : rssKiB(pid);
    for (let i = 0; i < 15; i++) {
      await sleep(1000);
      const next = tree ? treeRssKiB(pid) : rssKiB(pid);
      const settled = Math.abs(next - rss) <= rss * 0.01;
      rss = next;
      if (settled) break;
    }
    return { mib: rss / 1024, held: conns.length, baseMiB: base / 1024 };
  } finally {
    for (const c of conns) c.close();
    await sleep(500);
  }
}

type EngineName = "wgedge" | "wgedge-deno-udp" | "socat";

interface Engine {
  name: EngineName;
  tcpIn: number;
  udpIn: number;
  iperfIn: number;
  /** The process whose memory is measured (socat: the TCP listener; its forks are summed). */
  pid: number;
  procs: Deno.ChildProcess[];
}

async function startEngine(name: EngineName, tcpTarget: number, udpTarget: number): Promise<Engine> {
  const tcpIn = freePort(), udpIn = freePort();
  const iperfPort = freePort(), iperfIn = freePort();
  const iperfServer = new Deno.Command("iperf3", {
    args: ["-s", "-B", "127.0.0.1", "-p", String(iperfPort)],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const procs: Deno.ChildProcess[] = [iperfServer];
  let pid: number;
  if (name !== "socat") {
    const p = spawnWithFds([
      DENO,
      "run",
      "-A",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}main.ts`,
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
      PATH: Deno.env.get("PATH") ?? "",
      WGEDGE_UDP: name === "wgedge-deno-udp" ? "deno" : "auto",
    });
    procs.push(p);
    pid = p.pid;
  } else {
    const tcp = spawnWithFds([
      "socat",
      `TCP-LISTEN:${tcpIn},bind=127.0.0.1,fork,reuseaddr,backlog=4096`,
      `TCP:127.0.0.1:${tcpTarget}`,
    ]);
    const udp = spawnWithFds([
      "socat",
      `UDP-LISTEN:${udpIn},bind=127.0.0.1,fork,reuseaddr`,
      `UDP:127.0.0.1:${udpTarget}`,
    ]);
    const ip = spawnWithFds([
      "socat",
      `TCP-LISTEN:${iperfIn},bind=127.0.0.1,fork,reuseaddr`,
      `TCP:127.0.0.1:${iperfPort}`,
    ]);
    procs.push(tcp, udp, ip);
    pid = tcp.pid;
  }
  await waitTcp(tcpIn);
  await waitTcp(iperfIn);
  await waitTcp(iperfPort);
  return { name, tcpIn, udpIn, iperfIn, pid, procs };
}

async function stopEngine(e: Engine): Promise<void> {
  for (const p of [...e.procs].reverse()) await stop(p);
}

function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return v.length === 0 ? NaN : v[Math.floor(v.length / 2)];
}

/**
 * Both engines run side by side and every metric is measured in alternating order (wgedge, socat, then
 * socat, wgedge, ...) ROUNDS times; the table shows medians. On a shared, busy machine this keeps a burst
 * of someone else's load from landing on one engine only.
 */
async function measure(engines: Engine[]): Promise<Map<string, EngineResult>> {
  const samples = new Map<
    string,
    { tp: number[]; cps: number[]; p50: number[]; p99: number[]; udp: number[]; udpCpu: number[] }
  >();
  for (const e of engines) {
    samples.set(e.name, { tp: [], cps: [], p50: [], p99: [], udp: [], udpCpu: [] });
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? engines : [...engines].reverse();
    if (!UDP_ONLY) { for (const e of order) samples.get(e.name)!.tp.push(await iperfThroughput(e.iperfIn)); }
    if (!UDP_ONLY) {
      for (const e of order) {
        const c = await connectRate(e.tcpIn);
        const s = samples.get(e.name)!;
        s.cps.push(c.rate);
        s.p50.push(c.p50);
        s.p99.push(c.p99);
      }
    }
    for (const e of order) {
      const s = samples.get(e.name)!;
      const cpu0 = cpuSeconds(e.pid), t0 = performance.now();
      const rate = await udpRate(e.udpIn);
      s.udp.push(rate);
      // socat's per-peer forks are not counted, so only wgedge's CPU is reported.
      if (e.name !== "socat") {
        s.udpCpu.push(((cpuSeconds(e.pid) - cpu0) * 1e6) / (rate * (performance.now() - t0) / 1000));
      }
    }
    console.error(`round ${round + 1}/${ROUNDS} done`);
  }
  const out = new Map<string, EngineResult>();
  for (const e of engines) {
    const s = samples.get(e.name)!;
    out.set(e.name, {
      throughputGbps: median(s.tp),
      connsPerSec: median(s.cps),
      p50ms: median(s.p50),
      p99ms: median(s.p99),
      udpPps: median(s.udp),
      udpCpuUs: median(s.udpCpu),
      idleRssMiB: NaN,
      idleHeld: 0,
      idleBaseMiB: NaN,
    });
  }
  return out;
}

const tcpTarget = freePort(), udpTarget = freePort();
const targetsFile = await Deno.makeTempFile({ prefix: "wgedge-bench-targets-", suffix: ".ts" });
await Deno.writeTextFile(targetsFile, TARGETS_SRC);
const targets = spawnWithFds([
  DENO,
  "run",
  "-A",
  "--unstable-net",
  targetsFile,
  String(tcpTarget),
  String(udpTarget),
]);
try {
  await waitTcp(tcpTarget);
  const engines = [
    await startEngine("wgedge", tcpTarget, udpTarget),
    ...(flags["deno-udp"] ? [await startEngine("wgedge-deno-udp", tcpTarget, udpTarget)] : []),
    await startEngine("socat", tcpTarget, udpTarget),
  ];
  let results: Map<string, EngineResult>;
  try {
    results = await measure(engines);
  } finally {
    for (const e of engines) await stopEngine(e);
  }
  // Memory: a fresh process of each engine, so the number is what idle connections cost, not what the
  // stress rounds above left in the heap.
  for (const name of UDP_ONLY ? [] : ["wgedge", "socat"] as const) {
    const e = await startEngine(name, tcpTarget, udpTarget);
    try {
      await sleep(1000);
      const idle = await idleRss(e.tcpIn, e.pid, name === "socat", name === "socat" ? SOCAT_IDLE : IDLE);
      Object.assign(results.get(name)!, {
        idleRssMiB: idle.mib,
        idleHeld: idle.held,
        idleBaseMiB: idle.baseMiB,
      });
    } finally {
      await stopEngine(e);
    }
  }
  const w = results.get("wgedge")!, s = results.get("socat")!, d = results.get("wgedge-deno-udp");
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  console.log(
    `machine: ${navigator.hardwareConcurrency} CPUs (${cpu}), ${Deno.osRelease()}, deno ${Deno.version.deno}`,
  );
  console.log(
    `settings: medians of ${ROUNDS} alternating rounds; ${SECONDS}s iperf3, ${CONNS} connections (32 parallel), ` +
      `${UDP_PACKETS} UDP round trips max in ${SECONDS}s (16 clients in parallel, ${UDP_WINDOW} in flight each), ${IDLE} idle connections; ` +
      `load average at the end ${load}\n`,
  );
  const perConn = (r: EngineResult) => ((r.idleRssMiB - r.idleBaseMiB) * 1024) / Math.max(1, r.idleHeld);
  type Row = [string, number, number, string, boolean];
  const rows: Row[] = [
    ["TCP throughput (Gbit/s, iperf3)", w.throughputGbps, s.throughputGbps, "%.2f", true],
    ["TCP connections/s (connect+echo+close)", w.connsPerSec, s.connsPerSec, "%.0f", true],
    ["connect-through latency p50 (ms)", w.p50ms, s.p50ms, "%.2f", false],
    ["connect-through latency p99 (ms)", w.p99ms, s.p99ms, "%.2f", false],
    ["UDP round trips/s (16 clients)", w.udpPps, s.udpPps, "%.0f", true],
    ...(d ? [["UDP round trips/s, wgedge WGEDGE_UDP=deno", d.udpPps, s.udpPps, "%.0f", true] as Row] : []),
    [`PSS per idle TCP connection (KiB)`, perConn(w), perConn(s), "%.1f", false],
  ];
  const fmt = (v: number, f: string) => v.toFixed(f === "%.0f" ? 0 : f === "%.1f" ? 1 : 2);
  console.log(`| metric | wgedge | socat | wgedge/socat |`);
  console.log(`|---|---:|---:|---:|`);
  for (const [name, a, b, f] of rows) {
    if (UDP_ONLY && Number.isNaN(a)) continue; // not measured
    console.log(`| ${name} | ${fmt(a, f)} | ${fmt(b, f)} | ${(a / b).toFixed(2)} |`);
  }
  console.log(
    `\nwgedge relay CPU per UDP round trip: ${w.udpCpuUs.toFixed(1)} us` +
      (d ? `; with WGEDGE_UDP=deno ${d.udpCpuUs.toFixed(1)} us (same rounds)` : ""),
  );
  if (!UDP_ONLY) {
    console.log(
      `\nidle TCP connections: wgedge held ${w.idleHeld}, total PSS ${w.idleRssMiB.toFixed(1)} MiB ` +
        `(${w.idleBaseMiB.toFixed(1)} MiB before); socat held ${s.idleHeld} in one process per connection, ` +
        `total PSS of all its forks ${s.idleRssMiB.toFixed(1)} MiB (${s.idleBaseMiB.toFixed(1)} MiB before)`,
    );
  }
} finally {
  await stop(targets);
  await Deno.remove(targetsFile).catch(() => {});
}
