/**
 * CPU time per MiB through a tunnel: two tunnels (Device + Stack, as openTunnel makes them) in this process,
 * peers of each other on 127.0.0.1, one TCP stream from one to the other. Prints one JSON line with the wall
 * time and the process's CPU time (utime + stime), both for the whole path (two WireGuard devices, two stacks,
 * the batched UDP sockets). Unlike the throughput of scripts/bench/tunnel.ts, CPU time per MiB hardly moves
 * when other work shares the machine, so it is the figure to compare two trees with (run them alternately).
 *
 *   deno run -A scripts/bench/tunnel_cpu.ts [--mib 200] [--rounds 1]
 *
 * No root needed; traffic stays on loopback. Every wait is bounded.
 */
import { parseArgs } from "node:util";
import { openTunnel, type Tunnel } from "../../src/net/tunnels.ts";
import { generatePrivateKey, publicKey } from "../../src/crypto/x25519.ts";
import { loopbackPeerConfig } from "../../src/wireguard/config.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { mib: { type: "string", default: "200" }, rounds: { type: "string", default: "1" } },
});
const MIB = Number(values.mib), ROUNDS = Number(values.rounds);
if (!Number.isInteger(MIB) || MIB < 1 || MIB > 100_000 || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error("--mib: 1..100000, --rounds: 1 or more");
  Deno.exit(2);
}
/** Bound on one round: far beyond what 200 MiB takes even on a loaded machine. */
const ROUND_TIMEOUT_MS = 60_000 + MIB * 1000;

function cpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
}

const ka = generatePrivateKey(), kb = generatePrivateKey();
const tunnels: Tunnel[] = [];
// The stacks' timers are unref'd; hold the event loop open while the transfer runs.
const hold = setInterval(() => {}, 1000);
try {
  const b = await openTunnel(
    loopbackPeerConfig({
      source: "b",
      privateKey: kb,
      peerPublicKey: publicKey(ka),
      addresses: [{ address: "10.9.0.1", prefix: 32 }, { address: "fd09::1", prefix: 128 }],
      peerAddresses: ["10.9.0.2", "fd09::2"],
    }),
    { name: "b" },
  );
  tunnels.push(b);
  const a = await openTunnel(
    loopbackPeerConfig({
      source: "a",
      privateKey: ka,
      peerPublicKey: publicKey(kb),
      addresses: [{ address: "10.9.0.2", prefix: 32 }, { address: "fd09::2", prefix: 128 }],
      peerAddresses: ["10.9.0.1", "fd09::1"],
      endpointPort: b.device.listenPort,
    }),
    { name: "a" },
  );
  tunnels.push(a);
  const listener = b.stack.listenTcp("10.9.0.1", 7000);
  const chunk = new Uint8Array(65536);
  for (let round = 0; round < ROUNDS; round++) {
    const accepted = listener.accept();
    const client = await a.stack.dialTcp("10.9.0.1", 7000, { timeoutMs: 10_000 });
    const server = await accepted;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        client.close();
        server.close();
        reject(new Error(`round ${round} took longer than ${ROUND_TIMEOUT_MS} ms`));
      }, ROUND_TIMEOUT_MS);
    });
    const cpu0 = cpuSeconds(), t0 = performance.now();
    const send = (async () => {
      for (let k = 0; k < MIB * 16; k++) {
        for (let o = 0; o < chunk.length;) o += await client.write(chunk.subarray(o));
      }
      client.close();
    })();
    const receive = (async () => {
      const buf = new Uint8Array(65536);
      let n = 0;
      for (let r; (r = await server.read(buf)) !== null;) n += r;
      return n;
    })();
    const n = await Promise.race([Promise.all([receive, send]).then(([n]) => n), timeout]).finally(() =>
      clearTimeout(timer)
    );
    const wall = (performance.now() - t0) / 1000, cpu = cpuSeconds() - cpu0;
    server.close();
    console.log(JSON.stringify({
      mib: n / 1048576,
      wallSeconds: Math.round(wall * 100) / 100,
      mbitPerSecond: Math.round(n * 8 / wall / 1e6),
      cpuSeconds: Math.round(cpu * 100) / 100,
      cpuMsPerMiB: Math.round(cpu * 1000 / (n / 1048576) * 100) / 100,
    }));
  }
  listener.close();
} finally {
  for (const t of tunnels) t.close();
  clearInterval(hold);
}
