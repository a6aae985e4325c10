/**
 * Reverse-proxy benchmark, on loopback, all paths in the same run:
 *
 *   direct      client -> local service (kernel TCP only: the ceiling)
 *   rp -b K     client -> public port -> wgedge rps -> WireGuard -> wgedge rpc -> local service
 *   up-forward  client -> wgedge up --forward -> WireGuard -> a TCP source on the peer's userspace stack
 *
 *   deno run -A scripts/bench/rp.ts [--mib 64] [--runs 2] [--buffers 4,32,256]
 *
 * Each path downloads --mib MiB (best of --runs); the local service is socat sending /dev/zero. Prints one
 * table with throughput and the ratio to the direct path. Not a test: nothing is asserted.
 */
import { parseArgs } from "node:util";
import { encodeKey, generatePrivateKey, publicKey } from "../../src/crypto/x25519.ts";

const { values: flags } = parseArgs({
  options: {
    mib: { type: "string", default: "64" },
    runs: { type: "string", default: "2" },
    buffers: { type: "string", default: "4,32,256" },
  },
});
const BYTES = Number(flags.mib) * 1024 * 1024;
const RUNS = Number(flags.runs);
const BUFFERS = flags.buffers!.split(",").map(Number);
const DENO = Deno.execPath();
const ROOT = new URL("../../", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** Waits until something listens on 127.0.0.1:port, without connecting (a connect would start a download). */
async function waitTcp(port: number, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const out = await new Deno.Command("ss", { args: ["-Hltn", `sport = :${port}`], stdout: "piped" })
      .output();
    if (new TextDecoder().decode(out.stdout).trim() !== "") return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${port}`);
}

/** Waits until a child's piped stream has printed `text`. */
async function waitText(stream: ReadableStream<Uint8Array>, text: string): Promise<void> {
  let buf = "";
  const dec = new TextDecoder();
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    if (buf.includes(text)) {
      // Keep draining so the child never blocks on a full pipe.
      void (async () => {
        try {
          for await (const _ of stream) { /* drain */ }
        } catch { /* closed */ }
      })();
      return;
    }
  }
  throw new Error(`stream ended before "${text}"`);
}

/** Downloads until EOF from 127.0.0.1:port; returns Mbit/s. */
async function download(port: number): Promise<number> {
  const t0 = performance.now();
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(256 * 1024);
  let got = 0;
  for (;;) {
    const n = await c.read(buf);
    if (n === null) break;
    got += n;
  }
  c.close();
  const secs = (performance.now() - t0) / 1000;
  if (got !== BYTES) throw new Error(`got ${got} bytes, expected ${BYTES}`);
  return (got * 8) / secs / 1e6;
}

function spawn(args: string[], opts: { piped?: boolean } = {}): Deno.ChildProcess {
  return new Deno.Command(args[0], {
    args: args.slice(1),
    cwd: ROOT,
    stdin: "null",
    stdout: opts.piped ? "piped" : "null",
    stderr: opts.piped ? "piped" : "null",
    env: { WGEDGE_LOG_LEVEL: "info" },
  }).spawn();
}

async function stop(...children: Deno.ChildProcess[]): Promise<void> {
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch { /* gone */ }
    await c.status;
  }
}

async function pairConfigs(dir: string, wgPort: number): Promise<[string, string]> {
  const sk = generatePrivateKey(), ck = generatePrivateKey();
  const server = `${dir}/server.conf`, client = `${dir}/client.conf`;
  await Deno.writeTextFile(
    server,
    `[Interface]\nPrivateKey = ${encodeKey(sk)}\nAddress = 10.55.0.1/24\nListenPort = ${wgPort}\n\n` +
      `[Peer]\nPublicKey = ${encodeKey(publicKey(ck))}\nAllowedIPs = 10.55.0.2/32\n`,
    { mode: 0o600 },
  );
  await Deno.writeTextFile(
    client,
    `[Interface]\nPrivateKey = ${encodeKey(ck)}\nAddress = 10.55.0.2/32\n\n` +
      `[Peer]\nPublicKey = ${
        encodeKey(publicKey(sk))
      }\nEndpoint = 127.0.0.1:${wgPort}\nAllowedIPs = 10.55.0.0/24\n`,
    { mode: 0o600 },
  );
  return [server, client];
}

async function best(fn: () => Promise<number>): Promise<number> {
  let top = 0;
  for (let i = 0; i < RUNS; i++) top = Math.max(top, await fn());
  return top;
}

const dir = await Deno.makeTempDir({ prefix: "wgedge-bench-rp-" });
const results: [string, number][] = [];
const sourcePort = freePort();
const source = spawn([
  "socat",
  `TCP-LISTEN:${sourcePort},bind=127.0.0.1,fork,reuseaddr`,
  `SYSTEM:head -c ${BYTES} /dev/zero`,
]);
try {
  await waitTcp(sourcePort);
  results.push(["direct (kernel loopback)", await best(() => download(sourcePort))]);

  for (const kb of BUFFERS) {
    const [serverConf, clientConf] = await pairConfigs(dir, freePort());
    const publicPort = freePort();
    const rps = spawn([
      DENO,
      "run",
      "-A",
      "main.ts",
      "rps",
      "-c",
      serverConf,
      "--bind",
      "127.0.0.1",
      "-b",
      String(kb),
    ]);
    await sleep(1500);
    const rpc = spawn([
      DENO,
      "run",
      "-A",
      "main.ts",
      "rpc",
      "-c",
      clientConf,
      "-b",
      String(kb),
      "-r",
      `127.0.0.1:${sourcePort}-${publicPort}`,
    ]);
    try {
      await waitTcp(publicPort);
      results.push([`rp mapping, -b ${kb}`, await best(() => download(publicPort))]);
    } finally {
      await stop(rpc, rps);
    }
  }

  // up --forward: host port -> wgedge up -> tunnel -> TCP source on the peer's userspace stack.
  const [serverConf, clientConf] = await pairConfigs(dir, freePort());
  const fwdPort = freePort();
  let upTotal = 0;
  for (let i = 0; i < RUNS; i++) {
    const peer = spawn([
      DENO,
      "run",
      "-A",
      "--config",
      "deno.json",
      "tests/helpers/tunnel_peer.ts",
      serverConf,
      "source",
      "7000",
      String(BYTES),
    ], { piped: true });
    const up = spawn([
      DENO,
      "run",
      "-A",
      "main.ts",
      "up",
      "-c",
      clientConf,
      "--forward",
      `tcp://127.0.0.1:${fwdPort}=10.55.0.1:7000`,
    ], { piped: true });
    try {
      // The source accepts exactly one connection, so readiness is read from the logs, never probed.
      void peer.stderr.cancel();
      void up.stdout.cancel();
      await waitText(peer.stdout, "READY");
      await waitText(up.stderr, "forwarding");
      upTotal = Math.max(upTotal, await download(fwdPort));
    } finally {
      await stop(up, peer);
    }
  }
  results.push(["up --forward (one tunnel hop)", upTotal]);
} finally {
  await stop(source);
  await Deno.remove(dir, { recursive: true });
}

const direct = results[0][1];
console.log(
  `\n${
    BYTES / 1024 / 1024
  } MiB download, best of ${RUNS}, ${Deno.build.os}/${Deno.build.arch}, deno ${Deno.version.deno}`,
);
console.log(`${"path".padEnd(34)} ${"Mbit/s".padStart(10)} ${"vs direct".padStart(10)}`);
for (const [name, mbps] of results) {
  console.log(
    `${name.padEnd(34)} ${mbps.toFixed(0).padStart(10)} ${(mbps / direct).toFixed(3).padStart(10)}`,
  );
}
