/**
 * mwgp benchmark: iperf3 and ping between wireguard-go clients and a wireguard-go server, directly and
 * through `wgedge mwgp server`, in the same run (same server, same veth setup). Prints one table: throughput
 * ratio, added latency p50/p99 and mwgp CPU. With --obfs a third path runs wireguard-go -> wgedge mwgp client
 * -> wgedge mwgp server (both obfuscating) -> wireguard-go; its CPU column is client + server.
 *
 *   deno run -A scripts/bench/mwgp.ts [--seconds 10] [--pings 300] [--rounds 1] [--obfs] [--deno-udp]
 *     [--cpu-prof DIR]
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
 * Needs root, ip netns, wireguard-go, wg, iperf3 (shared/spec/testing.md). Traffic stays inside network
 * namespaces created here and removed at the end.
 */
import { parseArgs } from "node:util";
import { type Netns, wgKeyPair, WireguardGo } from "../../tests/helpers/interop.ts";
import { type MwgpProcess, MwgpTopology, startMwgp } from "../../tests/helpers/mwgp.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    pings: { type: "string", default: "300" },
    rounds: { type: "string", default: "1" },
    obfs: { type: "boolean", default: false },
    "deno-udp": { type: "boolean", default: false },
    "cpu-prof": { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
const PINGS = Number(values.pings);
const ROUNDS = Math.max(1, Number(values.rounds));
const loadavg = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const PASSWORD = "benchmark obfuscation password";

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in USER_HZ (100) ticks
}

async function iperf(client: Netns, seconds: number, reverse: boolean): Promise<number> {
  const args = ["iperf3", "-c", "10.1.0.1", "-t", String(seconds), "-J"];
  if (reverse) args.push("-R");
  for (let i = 0; i < 20; i++) {
    const r = await client.exec(args, { check: false });
    const j = r.stdout ? JSON.parse(r.stdout) : {};
    if (r.code === 0 && !j.error) return j.end.sum_received.bits_per_second as number;
    await new Promise((res) => setTimeout(res, 200));
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

interface Path {
  name: string;
  ns: Netns;
  /** Processes whose CPU is charged to this path. */
  procs: MwgpProcess[];
}

const topo = await MwgpTopology.create();
try {
  const [s, c1, c2, c3, c4] = await Promise.all([
    wgKeyPair(),
    wgKeyPair(),
    wgKeyPair(),
    wgKeyPair(),
    wgKeyPair(),
  ]);
  const hub = topo.hub;
  await WireguardGo.start(hub, {
    privateKey: s.privateKey,
    listenPort: 51001,
    addresses: ["10.1.0.1/24"],
    peers: [c1, c2, c3, c4].map((c, i) => ({ publicKey: c.publicKey, allowedIps: [`10.1.0.${i + 2}/32`] })),
  });
  const cfg = await topo.writeFile(
    "server.json5",
    `{ listen: ":1000", ${values.obfs ? `obfs: "${PASSWORD}",` : ""}
       servers: [{ privkey: "${s.privateKey}", address: "127.0.0.1", peers: [{ forward_to: ":51001" }] }] }`,
  );
  const profDir = values["cpu-prof"];
  if (profDir) await Deno.mkdir(profDir, { recursive: true });
  const server = await startMwgp(hub, ["server", cfg, "--no-cache"], {
    WGEDGE_LOG_LEVEL: "info",
    WGEDGE_UDP: "auto",
  }, profDir ? ["--cpu-prof", "--cpu-prof-dir", profDir] : []);
  let denoServer: MwgpProcess | undefined;
  if (values["deno-udp"]) {
    const denoCfg = await topo.writeFile(
      "server-deno-udp.json5",
      `{ listen: ":1001", ${values.obfs ? `obfs: "${PASSWORD}",` : ""}
         servers: [{ privkey: "${s.privateKey}", address: "127.0.0.1", peers: [{ forward_to: ":51001" }] }] }`,
    );
    denoServer = await startMwgp(hub, ["server", denoCfg, "--no-cache"], {
      WGEDGE_LOG_LEVEL: "info",
      WGEDGE_UDP: "deno",
    });
  }

  // One client namespace per path. The mwgp path's handshake goes through mwgp, so the server's endpoint for
  // that peer is mwgp and both directions cross it.
  const paths: Path[] = [];
  // [name, client key index (1..4: its address 10.1.0.n+1), mwgp server port or wireguard-go's, server]
  const specs: [string, number, number, MwgpProcess | null][] = [
    ["direct", 1, 51001, null],
    ["via mwgp", 2, 1000, server],
  ];
  if (values.obfs) specs.push(["via mwgp client+server, obfs", 3, 1000, server]);
  if (denoServer) specs.push(["via mwgp, WGEDGE_UDP=deno", 4, 1001, denoServer]);
  const keys = [c1, c2, c3, c4];
  for (const [name, k, port, via] of specs) {
    const key = keys[k - 1], i = k - 1;
    const { ns, hubAddr } = await topo.addClient(k);
    const procs: MwgpProcess[] = via ? [via] : [];
    let endpoint = `${hubAddr}:${port}`;
    if (k === 3) {
      const clientCfg = await topo.writeFile(
        "client.json5",
        `{ server: "${hubAddr}:1000", listen: "127.0.0.1:2000", obfs: "${PASSWORD}",
           server_pubkey: "${s.publicKey}", client_pubkey: "${key.publicKey}" }`,
      );
      procs.push(await startMwgp(ns, ["client", clientCfg, "--no-cache"], { WGEDGE_LOG_LEVEL: "info" }));
      endpoint = "127.0.0.1:2000";
    }
    await WireguardGo.start(ns, {
      privateKey: key.privateKey,
      addresses: [`10.1.0.${i + 2}/24`],
      peers: [{ publicKey: s.publicKey, allowedIps: ["10.1.0.0/24"], endpoint }],
    });
    paths.push({ name, ns, procs });
  }
  hub.spawn(["iperf3", "-s", "-B", "10.1.0.1"]);
  await new Promise((r) => setTimeout(r, 1000));

  type Row = { name: string; up: number; down: number; p50: number; p99: number; cpu: number };
  const samples: Row[][] = paths.map(() => []);
  const loadStart = loadavg();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [pi, { name, ns, procs }] of paths.entries()) {
      for (let i = 0; i < 30; i++) {
        if ((await ns.exec(["ping", "-c", "1", "-W", "1", "10.1.0.1"], { check: false })).code === 0) break;
      }
      const cpu = () => procs.reduce((sum, p) => sum + cpuSeconds(p.child.pid), 0);
      const cpu0 = cpu();
      const t0 = performance.now();
      const up = await iperf(ns, SECONDS, false);
      const down = await iperf(ns, SECONDS, true);
      const used = (cpu() - cpu0) / ((performance.now() - t0) / 1000);
      const { p50, p99 } = await pingStats(ns, PINGS);
      samples[pi].push({ name, up, down, p50, p99, cpu: used });
    }
  }
  const rows: Row[] = samples.map((ss) => ({
    name: ss[0].name,
    up: median(ss.map((s) => s.up)),
    down: median(ss.map((s) => s.down)),
    p50: median(ss.map((s) => s.p50)),
    p99: median(ss.map((s) => s.p99)),
    cpu: median(ss.map((s) => s.cpu)),
  }));
  for (const p of paths.flatMap((p) => p.procs)) await p.stop().catch(() => {});

  const d = rows[0];
  const mbit = (b: number) => (b / 1e6).toFixed(0);
  console.log(
    `\nmwgp benchmark (${SECONDS}s iperf3 each way, ${PINGS} pings at 10 ms, ${
      ROUNDS > 1 ? `medians of ${ROUNDS} alternating rounds` : "one round"
    }; ${Deno.build.target}; load average ${loadStart} at the start, ${loadavg()} at the end)`,
  );
  console.log(
    "| path | client->server Mbit/s | server->client Mbit/s | ratio vs direct | RTT p50 ms | RTT p99 ms | added p50/p99 ms | mwgp CPU |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const direct = r === d;
    console.log(
      `| ${r.name} | ${mbit(r.up)} | ${mbit(r.down)} | ${
        direct ? "1" : `${(r.up / d.up).toFixed(2)}x / ${(r.down / d.down).toFixed(2)}x`
      } | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${
        direct ? "-" : `${(r.p50 - d.p50).toFixed(3)} / ${(r.p99 - d.p99).toFixed(3)}`
      } | ${direct ? "-" : `${(r.cpu * 100).toFixed(0)}% of a core`} |`,
    );
  }
} finally {
  await topo.destroy();
}
