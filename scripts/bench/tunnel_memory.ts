/**
 * Where the memory of many tunnels lives: N userspace tunnels (openTunnel: Device + Stack, as `serve` opens
 * them) in ONE wgedge process, against one wireguard-go with N peers, in a network namespace created here.
 * Each tunnel dials a TCP server behind wireguard-go and moves --bytes through it (a download by default);
 * then the process sits idle. At each phase the worker prints RSS, Deno.memoryUsage() (V8 heap, external)
 * and glibc's mallinfo2() (the malloc heap), so a fix can be checked against where the bytes were.
 *
 *   deno run -A scripts/bench/tunnel_memory.ts [--tunnels 300] [--bytes 1048576] [--direction down|up|both]
 *       [--concurrency 300] [--idle 60] [--sample 10] [--json] [--heap-snapshot FILE]
 *
 * Phases: `open` (tunnels opened, no handshake yet), `idle` (5 s later), `transfer` (every tunnel carried its
 * bytes; connections closed), `idle+Ns` (every --sample seconds up to --idle, no forced GC: what an operator
 * sees), then `gc` (after a forced full GC) and `trim` (after malloc_trim(0): how much of the malloc heap was
 * free but kept by glibc). The worker runs in its own process inside the namespace, so the figures are its
 * own; the orchestrator, wireguard-go and the TCP server are separate processes. --heap-snapshot writes a V8
 * heap snapshot after the forced GC (what holds the external memory: its ArrayBuffers and their retainers).
 *
 * Needs root, ip netns, wireguard-go and wg. Traffic stays in the namespace (UDP on its loopback, TCP on
 * wireguard-go's interface); the namespace, every process and the UAPI socket are removed at the end, on error
 * and on Ctrl-C. Every network wait is bounded.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { openTunnel, type Tunnel } from "../../src/net/tunnels.ts";
import { writeAll } from "../../src/net/pipe.ts";
import { decodeKey, encodeKey, generatePrivateKey, publicKey } from "../../src/crypto/x25519.ts";
import {
  DENO_JSON,
  interopUnavailable,
  Netns,
  waitFor,
  wgKeyPair,
  WireguardGo,
} from "../../tests/helpers/interop.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tunnels: { type: "string", default: "300" },
    bytes: { type: "string", default: String(1 << 20) },
    direction: { type: "string", default: "down" },
    concurrency: { type: "string", default: "" },
    idle: { type: "string", default: "60" },
    sample: { type: "string", default: "10" },
    json: { type: "boolean", default: false },
    "heap-snapshot": { type: "string" },
    // Internal: the two roles this script plays inside the namespace.
    worker: { type: "string" },
    serve: { type: "string" },
  },
});

function intArg(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name}: expected an integer in ${min}..${max}, got "${text}"`);
    Deno.exit(2);
  }
  return n;
}

const SCRIPT = new URL(import.meta.url).pathname;
const DENO = Deno.execPath();
const SERVER_IP = "10.66.0.1";
const SERVER_PORT = 9000;
const WG_PORT = 51820;
/** Bound on one tunnel's whole exchange (dial, transfer, close). */
const EXCHANGE_TIMEOUT_MS = 120_000;

type Direction = "down" | "up" | "both";

/** The client's tunnel address for tunnel i: 10.66.1.2 onwards, 250 per /24. */
function clientIp(i: number): string {
  return `10.66.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;
}

// ---------------------------------------------------------------------------------------------------------
// measurements (worker)

interface Sample {
  phase: string;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  /** mallinfo2: bytes in the main heap and arenas (brk/mmap'd arenas), of which in use and free. */
  mallocArenaMiB: number;
  mallocUsedMiB: number;
  mallocFreeMiB: number;
  /** mallinfo2.hblkhd: bytes in chunks malloc mmap'd on their own (large allocations). */
  mallocMmapMiB: number;
}

const MALLINFO2 = {
  mallinfo2: {
    parameters: [],
    result: {
      struct: ["usize", "usize", "usize", "usize", "usize", "usize", "usize", "usize", "usize", "usize"],
    },
  },
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const;

let libc: Deno.DynamicLibrary<typeof MALLINFO2>["symbols"] | undefined;

const mib = (n: number | bigint) => Math.round(Number(n) / 1048576 * 10) / 10;

function sample(phase: string): Sample {
  libc ??= Deno.dlopen("libc.so.6", MALLINFO2).symbols;
  const raw = libc.mallinfo2();
  const f = new BigUint64Array(raw.buffer, raw.byteOffset, 10);
  // struct mallinfo2: arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost
  const m = Deno.memoryUsage();
  const status = Deno.readTextFileSync("/proc/self/status");
  const rssKb = Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? NaN);
  return {
    phase,
    rssMiB: Math.round(rssKb / 1024 * 10) / 10,
    heapUsedMiB: mib(m.heapUsed),
    heapTotalMiB: mib(m.heapTotal),
    externalMiB: mib(m.external),
    mallocArenaMiB: mib(f[0]),
    mallocUsedMiB: mib(f[7]),
    mallocFreeMiB: mib(f[8]),
    mallocMmapMiB: mib(f[4]),
  };
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------
// worker: N tunnels in this process

interface WorkerSpec {
  tunnels: { privateKey: string; address: string }[];
  serverPublicKey: string;
  bytes: number;
  direction: Direction;
  concurrency: number;
  idleSeconds: number;
  sampleSeconds: number;
  heapSnapshot?: string;
}

async function worker(specFile: string): Promise<void> {
  const spec: WorkerSpec = JSON.parse(await Deno.readTextFile(specFile));
  const out = (s: Sample | Record<string, unknown>) => console.log(JSON.stringify(s));
  const gc = (globalThis as { gc?: () => void }).gc;
  // Timers in the stacks are unref'd; hold the event loop open for the whole run.
  const hold = setInterval(() => {}, 1000);
  const serverKey = decodeKey(spec.serverPublicKey);
  out(sample("start"));
  const tunnels: Tunnel[] = [];
  try {
    for (const [i, t] of spec.tunnels.entries()) {
      tunnels.push(
        await openTunnel({
          source: `tunnel ${i}`,
          iface: {
            privateKey: decodeKey(t.privateKey),
            addresses: [{ address: t.address, prefix: 32 }],
            mtu: 1420,
            dns: [],
          },
          peers: [{
            publicKey: serverKey,
            allowedIps: [{ address: SERVER_IP, prefix: 32 }],
            endpoint: { host: "127.0.0.1", port: WG_PORT },
          }],
        }, { name: `m${i}` }),
      );
    }
    out(sample("open"));
    await sleep(5000);
    out(sample("idle"));

    const payload = new Uint8Array(64 * 1024).fill(0x5a);
    let failed = 0, moved = 0;
    const exchange = async (i: number) => {
      const conn = await tunnels[i].net.dialTcp(SERVER_IP, SERVER_PORT, { timeoutMs: 30_000 });
      try {
        const mode = spec.direction === "down" ? "D" : spec.direction === "up" ? "U" : "B";
        await writeAll(conn, new TextEncoder().encode(mode));
        if (mode !== "D") {
          for (let sent = 0; sent < spec.bytes;) {
            const n = Math.min(payload.length, spec.bytes - sent);
            await writeAll(conn, payload.subarray(0, n));
            sent += n;
          }
          await conn.closeWrite();
        }
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          moved += n;
        }
      } finally {
        conn.close();
      }
    };
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(spec.concurrency, tunnels.length) }, async () => {
        while (next < tunnels.length) {
          const i = next++;
          try {
            await bounded(exchange(i), EXCHANGE_TIMEOUT_MS, `tunnel ${i}`);
          } catch (e) {
            failed++;
            out({ error: `tunnel ${i}: ${(e as Error).message}` });
          }
        }
      }),
    );
    out({ transferSeconds: Math.round((performance.now() - t0) / 100) / 10, failed, receivedBytes: moved });
    out(sample("transfer"));
    for (let s = spec.sampleSeconds; s <= spec.idleSeconds; s += spec.sampleSeconds) {
      await sleep(spec.sampleSeconds * 1000);
      out(sample(`idle+${s}s`));
    }
    const states: Record<string, number> = {};
    let tcpBuffers = 0;
    for (const t of tunnels) {
      tcpBuffers += t.stack.tcp?.bufferMemory() ?? 0;
      for (const [k, v] of Object.entries(t.stack.tcp?.connectionStates() ?? {})) {
        states[k] = (states[k] ?? 0) + v;
      }
    }
    out({ tcpConnections: states, tcpBufferBytes: tcpBuffers });
    if (gc) {
      gc();
      await sleep(100);
      gc();
      out(sample("gc"));
    }
    if (spec.heapSnapshot) (await import("node:v8")).writeHeapSnapshot(spec.heapSnapshot);
    libc?.malloc_trim(0n);
    out(sample("trim"));
  } finally {
    for (const t of tunnels) t.close();
    clearInterval(hold);
  }
}

// ---------------------------------------------------------------------------------------------------------
// server: inside the namespace, on wireguard-go's address. One byte says what to do: D sends --bytes and
// closes; U reads to EOF and closes; B does both.

async function serve(bytes: number): Promise<void> {
  const listener = Deno.listen({ hostname: SERVER_IP, port: SERVER_PORT });
  console.log("listening");
  const payload = new Uint8Array(64 * 1024).fill(0xa5);
  for await (const conn of listener) {
    (async () => {
      const timer = setTimeout(() => conn.close(), EXCHANGE_TIMEOUT_MS);
      try {
        const mode = new Uint8Array(1);
        if (await conn.read(mode) !== 1) return;
        const m = String.fromCharCode(mode[0]);
        if (m === "U" || m === "B") {
          const buf = new Uint8Array(64 * 1024);
          while (await conn.read(buf) !== null) { /* discard */ }
        }
        if (m === "D" || m === "B") {
          for (let sent = 0; sent < bytes;) {
            const n = Math.min(payload.length, bytes - sent);
            await writeAll(conn, payload.subarray(0, n));
            sent += n;
          }
        }
      } catch {
        /* the client gave up; its side reports it */
      } finally {
        clearTimeout(timer);
        try {
          conn.close();
        } catch { /* closed by the timer */ }
      }
    })();
  }
}

// ---------------------------------------------------------------------------------------------------------
// orchestrator

async function lines(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void): Promise<void> {
  let buf = "";
  const dec = new TextDecoder();
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    for (let i; (i = buf.indexOf("\n")) >= 0;) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  if (buf) onLine(buf);
}

async function orchestrate(): Promise<void> {
  const n = intArg("tunnels", values.tunnels, 1, 2000);
  const bytes = intArg("bytes", values.bytes, 0, 1 << 30);
  const idleSeconds = intArg("idle", values.idle, 0, 3600);
  const sampleSeconds = intArg("sample", values.sample, 1, 3600);
  const concurrency = values.concurrency ? intArg("concurrency", values.concurrency, 1, 2000) : n;
  const direction = values.direction as Direction;
  if (!["down", "up", "both"].includes(direction)) {
    console.error(`--direction: expected down, up or both, got "${direction}"`);
    Deno.exit(2);
  }
  const why = await interopUnavailable();
  if (why) {
    console.error(`tunnel_memory: cannot run here: ${why} (needs root, ip netns, wireguard-go, wg)`);
    Deno.exit(1);
  }
  const dir = await Deno.makeTempDir({ prefix: "wgedge-memory-" });
  let ns: Netns | undefined;
  const cleanup = async () => {
    await ns?.destroy();
    ns = undefined;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const onSignal = () => cleanup().finally(() => Deno.exit(130));
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    ns = await Netns.create("bmem");
    const server = await wgKeyPair();
    const clients = Array.from({ length: n }, (_, i) => {
      const priv = generatePrivateKey();
      return { privateKey: encodeKey(priv), publicKey: encodeKey(publicKey(priv)), address: clientIp(i) };
    });
    const wg = await WireguardGo.start(ns, {
      privateKey: server.privateKey,
      listenPort: WG_PORT,
      addresses: [`${SERVER_IP}/16`],
      peers: [],
    });
    // One `wg addconf` for every peer (one `wg set` each takes minutes for hundreds).
    const peersConf = `${dir}/peers.conf`;
    await Deno.writeTextFile(
      peersConf,
      clients.map((c) => `[Peer]\nPublicKey = ${c.publicKey}\nAllowedIPs = ${c.address}/32\n`).join("\n"),
      { mode: 0o600 },
    );
    await ns.exec(["wg", "addconf", wg.ifname, peersConf]);

    const srv = ns.spawn([DENO, "run", "-A", "--config", DENO_JSON, SCRIPT, "--serve", String(bytes)], {
      stdout: "piped",
    });
    let listening = false;
    lines(srv.stdout, (l) => listening ||= l === "listening").catch(() => {});
    await waitFor(() => listening, "the TCP server in the namespace", 600, 50);

    const specFile = `${dir}/worker.json`;
    const spec: WorkerSpec = {
      tunnels: clients.map((c) => ({ privateKey: c.privateKey, address: c.address })),
      serverPublicKey: server.publicKey,
      bytes,
      direction,
      concurrency,
      idleSeconds,
      sampleSeconds,
      heapSnapshot: values["heap-snapshot"] ? resolve(values["heap-snapshot"]) : undefined,
    };
    await Deno.writeTextFile(specFile, JSON.stringify(spec), { mode: 0o600 });
    const child = ns.spawn(
      [DENO, "run", "-A", "--config", DENO_JSON, "--v8-flags=--expose-gc", SCRIPT, "--worker", specFile],
      { stdout: "piped", stderr: "inherit", env: { NO_COLOR: "1", WGEDGE_LOG_LEVEL: "warn" } },
    );
    const samples: Sample[] = [];
    const notes: string[] = [];
    await bounded(
      lines(child.stdout, (l) => {
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(l);
        } catch {
          notes.push(l);
          return;
        }
        if ("phase" in j) samples.push(j as unknown as Sample);
        else notes.push(l);
        if (!values.json) console.error(l);
      }),
      (60 + idleSeconds + n) * 1000 + EXCHANGE_TIMEOUT_MS * Math.ceil(n / concurrency),
      "the worker",
    );
    const status = await child.status;
    if (values.json) {
      console.log(JSON.stringify({ tunnels: n, bytes, direction, concurrency, samples, notes }, null, 2));
    } else {
      console.log(`\n${n} tunnels, ${bytes} bytes ${direction} each, ${concurrency} at a time; MiB:`);
      console.log(
        "phase".padEnd(12) +
          [
            "RSS",
            "heapUsed",
            "heapTotal",
            "external",
            "mallocArena",
            "mallocUsed",
            "mallocFree",
            "mallocMmap",
          ]
            .map((h) => h.padStart(12)).join(""),
      );
      for (const s of samples) {
        console.log(
          s.phase.padEnd(12) +
            [
              s.rssMiB,
              s.heapUsedMiB,
              s.heapTotalMiB,
              s.externalMiB,
              s.mallocArenaMiB,
              s.mallocUsedMiB,
              s.mallocFreeMiB,
              s.mallocMmapMiB,
            ].map((v) => v.toFixed(1).padStart(12)).join(""),
        );
      }
      for (const l of notes) console.log(l);
    }
    if (!status.success) throw new Error(`the worker exited with ${status.code}`);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    await cleanup();
  }
}

if (values.worker) await worker(values.worker);
else if (values.serve) await serve(Number(values.serve));
else await orchestrate();
