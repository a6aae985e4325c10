/**
 * mwgp benchmark: iperf3 and ping between wireguard-go clients and a wireguard-go server, directly and
 * through `wgedge mwgp server`, in the same run (same server, same veth setup). With --obfs a path runs
 * wireguard-go -> wgedge mwgp client -> wgedge mwgp server (both obfuscating) -> wireguard-go; its hop CPU is
 * client + server.
 *
 * Three reference hops run beside mwgp (unless --no-refs), each a single UDP forwarder in the same place
 * (client -> hub address -> 127.0.0.1:51001, the server's port), so the table shows what any userspace hop
 * costs on this machine: `via socat` (socat UDP-LISTEN -> UDP, one peer, no fork), `via wgedge relay`
 * (`wgedge relay -r "IN;51001;127.0.0.1;UDP"`, wgedge's UDP port relay) and `via bare Deno forwarder` (20
 * lines on Deno's own UDP sockets, one receive() per datagram: the floor of any hop written in Deno). WireGuard
 * roams, so the server simply answers the hop's address.
 *
 * Every path gets the same columns: throughput both ways, ratio vs direct, RTT p50/p99, added p50/p99, the
 * hop's CPU (% of one core, utime+stime over both iperf3 runs) and that CPU per Gbit/s carried. A second table
 * says where the whole machine's CPU went over the same windows (/proc/stat busy share of all CPUs, split into
 * the hop, the two wireguard-go processes, iperf3 client + server, this script and the rest), so it shows
 * whether the direct path already fills the machine, and a hop can then only take its CPU from the endpoints.
 *
 *   deno run -A scripts/bench/mwgp.ts [--seconds 10] [--pings 300] [--rounds 1] [--obfs] [--deno-udp]
 *     [--no-refs] [--burner PCT] [--cpu-prof DIR]
 *
 * Unless --no-refs or --burner 0, a control path runs too: `direct + CPU burner`, the direct path while a
 * process spins PCT % of every 10 ms (--burner PCT, default 30: it gets about 20 to 25 % of a core on the
 * loaded machine, what mwgp takes), forwarding nothing; its hop CPU column is what it got. If the direct path
 * loses as much there as through mwgp, the CPU the hop takes from the endpoints explains the loss.
 *
 * --rounds N measures every path N times, the paths alternating within each round, and prints medians (and the
 * load average at the start and the end), so a neighbour's load falls on all paths alike.
 *
 * --cpu-prof DIR runs the mwgp server with `deno run --cpu-prof --cpu-prof-dir DIR` (a V8 profile written when
 * it stops); summarize it with `scripts/bench/tunnel.ts --summarize-profile FILE`.
 *
 * --deno-udp adds a path through a second `wgedge mwgp server` started with WGEDGE_UDP=deno (Deno's
 * one-op-per-datagram UDP socket instead of recvmmsg/sendmmsg batches), measured in the same run.
 *
 * Needs root, ip netns, wireguard-go, wg, iperf3, socat (shared/spec/testing.md). Traffic stays inside network
 * namespaces created here and removed at the end; socat runs in its own process group (setsid), killed at the
 * end, and the script checks that no process it started is left.
 */
import { parseArgs } from "node:util";
import { collect, type Netns, waitFor, wgKeyPair, WireguardGo } from "../../tests/helpers/interop.ts";
import { type MwgpProcess, MwgpTopology, startMwgp, whenStarted } from "../../tests/helpers/mwgp.ts";
import { machineTicks } from "./lib/proc.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    pings: { type: "string", default: "300" },
    rounds: { type: "string", default: "1" },
    obfs: { type: "boolean", default: false },
    "deno-udp": { type: "boolean", default: false },
    "no-refs": { type: "boolean", default: false },
    burner: { type: "string", default: "30" },
    "cpu-prof": { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
const PINGS = Number(values.pings);
const ROUNDS = Math.max(1, Number(values.rounds));
const loadavg = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PASSWORD = "benchmark obfuscation password";
/** wireguard-go's port in the hub; every hop forwards to 127.0.0.1 on it. */
const WG_PORT = 51001;
const NCPU = navigator.hardwareConcurrency;

function procStat(pid: number): string[] {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

function cpuSeconds(pid: number): number {
  const fields = procStat(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in USER_HZ (100) ticks
}

/**
 * This process's own CPU seconds and those of its reaped children (cutime + cstime): the iperf3 clients run
 * as `ip netns exec NS iperf3`, which execs in place, so their CPU lands there once they are waited for.
 */
function selfCpuSeconds(): { own: number; children: number } {
  const f = procStat(Deno.pid);
  return { own: (Number(f[11]) + Number(f[12])) / 100, children: (Number(f[13]) + Number(f[14])) / 100 };
}

/** The live (non-zombie) pids whose process group is pgid. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const f = procStat(Number(e.name));
      if (Number(f[2]) === pgid && f[0] !== "Z") out.push(Number(e.name));
    } catch { /* exited */ }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    return procStat(pid)[0] !== "Z";
  } catch {
    return false;
  }
}

async function iperf(client: Netns, seconds: number, reverse: boolean): Promise<number> {
  const args = ["iperf3", "-c", "10.1.0.1", "-t", String(seconds), "-J"];
  if (reverse) args.push("-R");
  for (let i = 0; i < 20; i++) {
    const r = await client.exec(args, { check: false });
    const j = r.stdout ? JSON.parse(r.stdout) : {};
    if (r.code === 0 && !j.error) return j.end.sum_received.bits_per_second as number;
    await sleep(200);
  }
  throw new Error("iperf3 failed");
}

async function pingStats(client: Netns, count: number): Promise<{ p50: number; p99: number }> {
  const out = await client.exec(["ping", "-c", String(count), "-i", "0.01", "-W", "1", "10.1.0.1"], {
    check: false,
  });
  const rtts = [...out.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  if (rtts.length === 0) throw new Error(`no ping replies: ${out.stdout}`);
  const q = (p: number) => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))];
  return { p50: q(0.5), p99: q(0.99) };
}

/** `wgedge relay` with one UDP relay, in ns, once it logs that the relay started. */
async function startRelay(ns: Netns, relay: string): Promise<MwgpProcess> {
  const child = ns.spawnWgedge(["relay", "-r", relay], {
    stderr: "piped",
    env: { WGEDGE_LOG_LEVEL: "info", WGEDGE_UDP: "auto" },
  });
  return await whenStarted(child, "relay started", "wgedge relay", "SIGTERM");
}

/**
 * The floor of a UDP hop written in Deno: Deno's own sockets, one receive() per datagram each way, no table,
 * counters, logging or batching; the first client address is the one peer. What any Deno forwarder pays.
 */
const DENO_HOP_SRC = `
const [listen, port, toHost, toPort] = Deno.args;
const front = Deno.listenDatagram({ transport: "udp", hostname: listen, port: Number(port) });
const back = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
const target = { transport: "udp", hostname: toHost, port: Number(toPort) };
let client;
(async () => { for (;;) { const [d, a] = await front.receive(); client = a; back.send(d, target).catch(() => {}); } })();
(async () => { for (;;) { const [d] = await back.receive(); if (client) front.send(d, client).catch(() => {}); } })();
console.error("deno hop started");
`;

/** The bare Deno forwarder above, in ns, once it is listening. */
async function startDenoHop(
  ns: Netns,
  file: string,
  listen: string,
  port: number,
  to: string,
): Promise<MwgpProcess> {
  const [toHost, toPort] = to.split(":");
  const child = ns.spawn([
    Deno.execPath(),
    "run",
    "-A",
    "--unstable-net",
    file,
    listen,
    String(port),
    toHost,
    toPort,
  ], {
    stderr: "piped",
  });
  return await whenStarted(child, "deno hop started", "the Deno hop", "SIGKILL");
}

/**
 * A CPU burner: spins `busy` ms of every 10 ms on the main thread and sleeps the rest, so it takes about that
 * share of one core from whatever else wants the CPUs, and forwards nothing.
 */
const BURNER_SRC = `
const busyMs = Number(Deno.args[0]);
console.error("burner started");
for (;;) {
  const t = performance.now();
  while (performance.now() - t < busyMs);
  await new Promise((r) => setTimeout(r, 10 - busyMs));
}
`;

async function startBurner(ns: Netns, file: string, pct: number): Promise<MwgpProcess> {
  const child = ns.spawn([Deno.execPath(), "run", "-A", file, String(pct / 10)], { stderr: "piped" });
  return await whenStarted(child, "burner started", "the CPU burner", "SIGKILL");
}

/**
 * socat as a one-peer UDP forwarder (UDP-LISTEN takes the first client's address and serves only it, no fork)
 * in its own process group (`setsid` execs in place, so the pid is socat's and the group's); stop() kills
 * the group.
 */
async function startSocat(ns: Netns, listen: string, port: number, to: string): Promise<MwgpProcess> {
  const child = ns.spawn(["setsid", "socat", `UDP-LISTEN:${port},bind=${listen},reuseaddr`, `UDP:${to}`], {
    stderr: "piped",
  });
  const err = collect(child.stderr);
  await waitFor(async () => {
    const r = await ns.exec(["ss", "-Hlun", `sport = :${port}`], { check: false });
    return r.stdout.trim() !== "";
  }, `socat to bind ${listen}:${port}`);
  return {
    child,
    log: err.text,
    async stop() {
      for (const sig of ["SIGTERM", "SIGKILL"] as const) {
        try {
          Deno.kill(-child.pid, sig);
        } catch { /* group gone */ }
        for (let i = 0; i < 40 && groupMembers(child.pid).length > 0; i++) await sleep(50);
      }
      await child.status;
      await err.done;
    },
  };
}

interface Path {
  name: string;
  ns: Netns;
  /** Processes whose CPU is charged to this path's hop. */
  procs: MwgpProcess[];
  /** The client's wireguard-go. */
  wg: WireguardGo;
  /** A process run only while this path is measured (the CPU burner), charged as its hop. */
  during?: () => Promise<MwgpProcess>;
}

const topo = await MwgpTopology.create();
/** Every hop started (stopped at the end, then checked gone). */
const hops: MwgpProcess[] = [];
/** socat's process groups, checked empty at the end. */
const socatGroups: number[] = [];
try {
  const refs = !values["no-refs"];
  const keys = await Promise.all([1, 2, 3, 4, 5, 6, 7].map(() => wgKeyPair()));
  const s = await wgKeyPair();
  const hub = topo.hub;
  const serverWg = await WireguardGo.start(hub, {
    privateKey: s.privateKey,
    listenPort: WG_PORT,
    addresses: ["10.1.0.1/24"],
    peers: keys.map((c, i) => ({ publicKey: c.publicKey, allowedIps: [`10.1.0.${i + 2}/32`] })),
  });
  const cfg = await topo.writeFile(
    "server.json5",
    `{ listen: ":1000", ${values.obfs ? `obfs: "${PASSWORD}",` : ""}
       servers: [{ privkey: "${s.privateKey}", address: "127.0.0.1", peers: [{ forward_to: ":${WG_PORT}" }] }] }`,
  );
  const profDir = values["cpu-prof"];
  if (profDir) await Deno.mkdir(profDir, { recursive: true });
  const server = await startMwgp(hub, ["server", cfg, "--no-cache"], {
    WGEDGE_LOG_LEVEL: "info",
    WGEDGE_UDP: "auto",
  }, profDir ? ["--cpu-prof", "--cpu-prof-dir", profDir] : []);
  hops.push(server);
  let denoServer: MwgpProcess | undefined;
  if (values["deno-udp"]) {
    const denoCfg = await topo.writeFile(
      "server-deno-udp.json5",
      `{ listen: ":1001", ${values.obfs ? `obfs: "${PASSWORD}",` : ""}
         servers: [{ privkey: "${s.privateKey}", address: "127.0.0.1", peers: [{ forward_to: ":${WG_PORT}" }] }] }`,
    );
    denoServer = await startMwgp(hub, ["server", denoCfg, "--no-cache"], {
      WGEDGE_LOG_LEVEL: "info",
      WGEDGE_UDP: "deno",
    });
    hops.push(denoServer);
  }

  // One client namespace per path (client n: veth 192.168.n.0/24, tunnel address 10.1.0.n+1). A path's
  // handshake goes through its hop, so the server's endpoint for that peer is the hop and both directions
  // cross it.
  type Spec = {
    name: string;
    k: number;
    hop: (hubAddr: string) => Promise<{ port: number; via?: MwgpProcess }>;
  };
  const specs: Spec[] = [
    { name: "direct", k: 1, hop: () => Promise.resolve({ port: WG_PORT }) },
    { name: "via mwgp", k: 2, hop: () => Promise.resolve({ port: 1000, via: server }) },
  ];
  if (values.obfs) {
    specs.push({
      name: "via mwgp client+server, obfs",
      k: 3,
      hop: () => Promise.resolve({ port: 1000, via: server }),
    });
  }
  if (denoServer) {
    specs.push({
      name: "via mwgp, WGEDGE_UDP=deno",
      k: 4,
      hop: () => Promise.resolve({ port: 1001, via: denoServer }),
    });
  }
  if (refs) {
    specs.push({
      name: "via socat",
      k: 5,
      hop: async (hubAddr) => {
        const via = await startSocat(hub, hubAddr, 1002, `127.0.0.1:${WG_PORT}`);
        hops.push(via);
        socatGroups.push(via.child.pid);
        return { port: 1002, via };
      },
    });
    specs.push({
      name: "via wgedge relay",
      k: 6,
      hop: async (hubAddr) => {
        const via = await startRelay(hub, `1003;${WG_PORT};127.0.0.1;UDP;bind=${hubAddr}`);
        hops.push(via);
        return { port: 1003, via };
      },
    });
    specs.push({
      name: "via bare Deno forwarder",
      k: 7,
      hop: async (hubAddr) => {
        const file = await topo.writeFile("deno_hop.js", DENO_HOP_SRC);
        const via = await startDenoHop(hub, file, hubAddr, 1004, `127.0.0.1:${WG_PORT}`);
        hops.push(via);
        return { port: 1004, via };
      },
    });
  }
  const paths: Path[] = [];
  for (const { name, k, hop } of specs) {
    const key = keys[k - 1];
    const { ns, hubAddr } = await topo.addClient(k);
    const { port, via } = await hop(hubAddr);
    const procs: MwgpProcess[] = via ? [via] : [];
    let endpoint = `${hubAddr}:${port}`;
    if (k === 3) {
      const clientCfg = await topo.writeFile(
        "client.json5",
        `{ server: "${hubAddr}:1000", listen: "127.0.0.1:2000", obfs: "${PASSWORD}",
           server_pubkey: "${s.publicKey}", client_pubkey: "${key.publicKey}" }`,
      );
      const client = await startMwgp(ns, ["client", clientCfg, "--no-cache"], { WGEDGE_LOG_LEVEL: "info" });
      hops.push(client);
      procs.push(client);
      endpoint = "127.0.0.1:2000";
    }
    const wg = await WireguardGo.start(ns, {
      privateKey: key.privateKey,
      addresses: [`10.1.0.${k + 1}/24`],
      peers: [{ publicKey: s.publicKey, allowedIps: ["10.1.0.0/24"], endpoint }],
    });
    paths.push({ name, ns, procs, wg });
  }
  const burnPct = Number(values.burner);
  if (refs && burnPct > 0) {
    // The control: the direct path while another process takes about what mwgp takes. If throughput falls as
    // far as through mwgp, the CPU the hop takes from the endpoints explains the drop, not the forwarding.
    const file = await topo.writeFile("burner.js", BURNER_SRC);
    const { ns, wg } = paths[0];
    paths.push({
      name: `direct + CPU burner (spins ${burnPct}% of each 10 ms)`,
      ns,
      procs: [],
      wg,
      during: async () => {
        const b = await startBurner(hub, file, burnPct);
        hops.push(b);
        return b;
      },
    });
  }
  const iperfServer = hub.spawn(["iperf3", "-s", "-B", "10.1.0.1"]);
  await sleep(1000);

  type Row = {
    name: string;
    up: number;
    down: number;
    p50: number;
    p99: number;
    cpu: number;
    wgCpu: number;
    iperfCpu: number;
    benchCpu: number;
    busy: number;
    softirq: number;
    steal: number;
  };
  const samples: Row[][] = paths.map(() => []);
  const loadStart = loadavg();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [pi, { name, ns, procs: pathProcs, wg, during }] of paths.entries()) {
      const extra = during ? await during() : undefined;
      const procs = extra ? [...pathProcs, extra] : pathProcs;
      for (let i = 0; i < 30; i++) {
        if ((await ns.exec(["ping", "-c", "1", "-W", "1", "10.1.0.1"], { check: false })).code === 0) break;
      }
      const cpu = () => procs.reduce((sum, p) => sum + cpuSeconds(p.child.pid), 0);
      const wgCpu = () => cpuSeconds(wg.child.pid) + cpuSeconds(serverWg.child.pid);
      const cpu0 = cpu(), wg0 = wgCpu(), iperf0 = cpuSeconds(iperfServer.pid), self0 = selfCpuSeconds();
      const m0 = machineTicks(), t0 = performance.now();
      const up = await iperf(ns, SECONDS, false);
      const down = await iperf(ns, SECONDS, true);
      const m1 = machineTicks(), secs = (performance.now() - t0) / 1000, total = secs * 100 * NCPU;
      const self1 = selfCpuSeconds(), cpu1 = cpu(), wg1 = wgCpu(), iperf1 = cpuSeconds(iperfServer.pid);
      const { p50, p99 } = await pingStats(ns, PINGS);
      await extra?.stop();
      samples[pi].push({
        name,
        up,
        down,
        p50,
        p99,
        cpu: (cpu1 - cpu0) / secs,
        wgCpu: (wg1 - wg0) / secs,
        iperfCpu: (iperf1 - iperf0 + self1.children - self0.children) / secs,
        benchCpu: (self1.own - self0.own) / secs,
        // As shares of all CPUs (the ticks of every CPU are summed in /proc/stat).
        busy: 1 - (m1.idle - m0.idle) / total,
        softirq: (m1.softirq - m0.softirq) / total,
        steal: (m1.steal - m0.steal) / total,
      });
    }
    if (ROUNDS > 1) console.error(`round ${round + 1}/${ROUNDS} done (load average ${loadavg()})`);
  }
  const col = (ss: Row[], k: keyof Omit<Row, "name">) => median(ss.map((s) => s[k]));
  const rows: Row[] = samples.map((ss) => ({
    name: ss[0].name,
    up: col(ss, "up"),
    down: col(ss, "down"),
    p50: col(ss, "p50"),
    p99: col(ss, "p99"),
    cpu: col(ss, "cpu"),
    wgCpu: col(ss, "wgCpu"),
    iperfCpu: col(ss, "iperfCpu"),
    benchCpu: col(ss, "benchCpu"),
    busy: col(ss, "busy"),
    softirq: col(ss, "softirq"),
    steal: col(ss, "steal"),
  }));

  const d = rows[0];
  const mbit = (b: number) => (b / 1e6).toFixed(0);
  const pct = (x: number) => (x * 100).toFixed(0);
  console.log(
    `\nmwgp benchmark (${SECONDS}s iperf3 each way, ${PINGS} pings at 10 ms, ${
      ROUNDS > 1 ? `medians of ${ROUNDS} alternating rounds` : "one round"
    }; ${Deno.build.target}, ${NCPU} CPUs; load average ${loadStart} at the start, ${loadavg()} at the end)`,
  );
  console.log(
    "| path | client->server Mbit/s | server->client Mbit/s | ratio vs direct | RTT p50 ms | RTT p99 ms | added p50/p99 ms | hop CPU | hop CPU per Gbit/s |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const direct = r === d;
    console.log(
      `| ${r.name} | ${mbit(r.up)} | ${mbit(r.down)} | ${
        direct ? "1" : `${(r.up / d.up).toFixed(2)}x / ${(r.down / d.down).toFixed(2)}x`
      } | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${
        direct ? "-" : `${(r.p50 - d.p50).toFixed(3)} / ${(r.p99 - d.p99).toFixed(3)}`
      } | ${direct ? "-" : `${pct(r.cpu)}% of a core`} | ${
        direct ? "-" : `${(r.cpu / ((r.up + r.down) / 2 / 1e9)).toFixed(2)} core-s per Gbit`
      } |`,
    );
  }
  // Where the machine's CPU went over the same iperf3 windows: does the direct path already fill it?
  console.log(
    `\nmachine CPU over the iperf3 windows (medians; % of one core, the machine has ${NCPU * 100}): ` +
      "busy = wall time x CPUs - idle - iowait (/proc/stat); iperf3 = client + server; rest = busy minus the " +
      "processes before it (other processes, kernel threads, softirq on idle CPUs); softirq = irq+softirq ticks " +
      "(veth delivery; tick accounting also charges them to the task they interrupted, so they overlap the columns)",
  );
  console.log(
    `| path | machine busy (% of ${NCPU} CPUs) | hop | wireguard-go (client + server) | iperf3 | this script | rest | softirq | steal |`,
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const all = r.busy * NCPU, soft = r.softirq * NCPU;
    const rest = all - r.cpu - r.wgCpu - r.iperfCpu - r.benchCpu;
    console.log(
      `| ${r.name} | ${pct(r.busy)}% | ${r === d ? "-" : pct(r.cpu)} | ${pct(r.wgCpu)} | ${
        pct(r.iperfCpu)
      } | ${pct(r.benchCpu)} | ${pct(rest)} | ${pct(soft)} | ${pct(r.steal * NCPU)} |`,
    );
  }
} finally {
  for (const p of hops) await p.stop().catch(() => {});
  await topo.destroy();
  const left = [...hops.map((h) => h.child.pid).filter(alive), ...socatGroups.flatMap(groupMembers)];
  console.log(
    left.length === 0
      ? `cleanup: no hop process left (${hops.length} started; socat groups ${
        socatGroups.join(", ") || "none"
      })`
      : `cleanup: processes left: ${[...new Set(left)].join(", ")}`,
  );
}
