/**
 * mwgp benchmark: iperf3 and ping between a wireguard-go client and a wireguard-go server, directly and
 * through `wgedge mwgp server`, in the same run (same namespaces, same interfaces; only the client's peer
 * endpoint changes). Prints one table: throughput ratio, added latency p50/p99, and mwgp CPU.
 *
 *   deno run -A scripts/bench/mwgp.ts [--seconds 10] [--pings 300] [--obfs]
 *
 * Needs root, ip netns, wireguard-go, wg, iperf3 (shared/spec/testing.md). Traffic stays inside two network
 * namespaces created here and removed at the end.
 */
import { parseArgs } from "node:util";
import { type Netns, wgKeyPair, WireguardGo } from "../../tests/helpers/interop.ts";
import { MwgpTopology, startMwgp } from "../../tests/helpers/mwgp.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string", default: "10" }, pings: { type: "string", default: "300" } },
});
const SECONDS = Number(values.seconds);
const PINGS = Number(values.pings);

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
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

const topo = await MwgpTopology.create();
try {
  const [s, c, c2] = await Promise.all([wgKeyPair(), wgKeyPair(), wgKeyPair()]);
  const hub = topo.hub;
  await WireguardGo.start(hub, {
    privateKey: s.privateKey,
    listenPort: 51001,
    addresses: ["10.1.0.1/24"],
    peers: [
      { publicKey: c.publicKey, allowedIps: ["10.1.0.2/32"] },
      { publicKey: c2.publicKey, allowedIps: ["10.1.0.3/32"] },
    ],
  });
  const cfg = await topo.writeFile(
    "server.json5",
    `{ listen: ":1000", servers: [{ privkey: "${s.privateKey}", address: "127.0.0.1",
       peers: [{ pubkey: "${c2.publicKey}", forward_to: ":51001" }] }] }`,
  );
  const mwgp = await startMwgp(hub, ["server", cfg, "--no-cache"], { WGEDGE_LOG_LEVEL: "info" });
  // Two client namespaces, same veth setup: one talks to the server directly, one through mwgp (its handshake
  // goes through mwgp, so the server's endpoint for it is mwgp and both directions cross it).
  const paths: { name: string; ns: Netns; addr: string }[] = [];
  for (
    const [n, name, port, addr] of [[1, "direct", 51001, "10.1.0.2"], [
      2,
      "via mwgp",
      1000,
      "10.1.0.3",
    ]] as const
  ) {
    const key = n === 1 ? c : c2;
    const { ns, hubAddr } = await topo.addClient(n);
    await WireguardGo.start(ns, {
      privateKey: key.privateKey,
      addresses: [`${addr}/24`],
      peers: [{ publicKey: s.publicKey, allowedIps: ["10.1.0.0/24"], endpoint: `${hubAddr}:${port}` }],
    });
    paths.push({ name, ns, addr });
  }
  hub.spawn(["iperf3", "-s", "-B", "10.1.0.1"]);
  await new Promise((r) => setTimeout(r, 1000));

  const rows: Record<string, { up: number; down: number; p50: number; p99: number; cpu: number }> = {};
  for (const { name, ns } of paths) {
    for (let i = 0; i < 30; i++) {
      if ((await ns.exec(["ping", "-c", "1", "-W", "1", "10.1.0.1"], { check: false })).code === 0) break;
    }
    const cpu0 = cpuSeconds(mwgp.child.pid);
    const t0 = performance.now();
    const up = await iperf(ns, SECONDS, false);
    const down = await iperf(ns, SECONDS, true);
    const wall = (performance.now() - t0) / 1000;
    const cpu = (cpuSeconds(mwgp.child.pid) - cpu0) / wall;
    const { p50, p99 } = await pingStats(ns, PINGS);
    rows[name] = { up, down, p50, p99, cpu };
  }
  await mwgp.stop();

  const d = rows["direct"], m = rows["via mwgp"];
  const mbit = (b: number) => (b / 1e6).toFixed(0);
  console.log(
    `\nmwgp benchmark (${SECONDS}s iperf3 each way, ${PINGS} pings at 10 ms; ${Deno.build.target})`,
  );
  console.log(
    "| path | client->server Mbit/s | server->client Mbit/s | RTT p50 ms | RTT p99 ms | mwgp CPU |",
  );
  console.log("|---|---|---|---|---|---|");
  console.log(
    `| direct | ${mbit(d.up)} | ${mbit(d.down)} | ${d.p50.toFixed(3)} | ${d.p99.toFixed(3)} | ${
      (d.cpu * 100).toFixed(0)
    }% (idle) |`,
  );
  console.log(
    `| via mwgp | ${mbit(m.up)} | ${mbit(m.down)} | ${m.p50.toFixed(3)} | ${m.p99.toFixed(3)} | ${
      (m.cpu * 100).toFixed(0)
    }% of a core |`,
  );
  console.log(
    `| ratio / added | ${(m.up / d.up).toFixed(2)}x | ${(m.down / d.down).toFixed(2)}x | +${
      (m.p50 - d.p50).toFixed(3)
    } | +${(m.p99 - d.p99).toFixed(3)} | |`,
  );
} finally {
  await topo.destroy();
}
