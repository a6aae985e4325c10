/**
 * What a LinuxUdpBind costs in memory: it uses the process's batch arenas (not its own 8 MiB), reads the
 * first datagram of a wake-up into a page that grows only when a datagram fills it, and holds the process's
 * malloc trimmer while open. On loopback; UDP may drop on a loaded machine, so sends are repeated (bounded)
 * until they arrive.
 */
import { capabilityTest } from "./helpers/interop.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { FIRST_READ_BYTES, LinuxUdpBind, linuxUdpBindUnavailable } from "../src/wireguard/bind_linux.ts";
import type { BindEndpoint } from "../src/wireguard/bind.ts";
import { BatchArenas, SLOT_SIZE } from "../src/sys/udp_batch.ts";
import { processHeapTrimmer } from "../src/sys/malloc.ts";

const unavailable = linuxUdpBindUnavailable();
/** Declared ignored (with the reason) where the batched socket cannot work; failed instead in CI. */
const bindTest = (def: Deno.TestDefinition) => capabilityTest(def, unavailable ?? null);

interface Opened {
  bind: LinuxUdpBind;
  port: number;
  got: Uint8Array[];
}

async function openBind(): Promise<Opened> {
  const bind = new LinuxUdpBind("127.0.0.1");
  const got: Uint8Array[] = [];
  const port = await bind.open(0, (data) => got.push(data.slice()));
  return { bind, port, got };
}

async function closeAll(binds: Opened[]): Promise<void> {
  for (const b of binds) b.bind.close();
  await Promise.all(binds.map((b) => b.bind.closed));
}

/** Calls send every 200 ms until done() holds; at most 100 times. */
async function sendUntil(send: () => unknown, done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await send();
    for (let step = 0; step < 10; step++) {
      if (done()) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`never arrived: ${what}`);
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

bindTest({
  name: "bind memory: binds share the process's arenas, which go once the last bind closes",
  async fn() {
    const arenas = BatchArenas.forProcess();
    const before = arenas.users;
    const binds = [await openBind(), await openBind(), await openBind()];
    try {
      assertEquals(BatchArenas.forProcess(), arenas, "one set for every bind");
      assertEquals(arenas.users, before + 3);
      // Every bind sends a burst to the next one, all in one task: the shared send arena hands each bind's
      // datagrams to its own descriptor, and the shared receive vector gives each its own.
      const to = (i: number): BindEndpoint => ({ address: "127.0.0.1", port: binds[(i + 1) % 3].port });
      const count = 200;
      const want = (b: number) => new Set(Array.from({ length: count }, (_, k) => `${b}:${k}`));
      const seen = binds.map(() => new Set<string>());
      const done = () =>
        binds.every((b, i) => {
          for (const d of b.got) seen[i].add(new TextDecoder().decode(d));
          b.got.length = 0;
          const from = (i + 2) % 3;
          return [...want(from)].every((m) => seen[i].has(m));
        });
      await sendUntil(
        () => {
          for (let k = 0; k < count; k++) {
            for (let i = 0; i < 3; i++) binds[i].bind.send(new TextEncoder().encode(`${i}:${k}`), to(i));
          }
        },
        done,
        "bursts between three binds",
      );
      for (const [i, s] of seen.entries()) {
        for (const m of s) assert(m.startsWith(`${(i + 2) % 3}:`), `bind ${i} got ${m}`);
      }
    } finally {
      await closeAll(binds);
    }
    assertEquals(arenas.users, before);
    if (before === 0) assert(BatchArenas.forProcess() !== arenas, "forgotten with its last user");
  },
});

bindTest({
  name: "bind memory: the first-read buffer is a page until a datagram fills it, then a whole slot",
  async fn() {
    const ours = await openBind();
    const deno = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: ours.port };
    try {
      assertEquals(ours.bind.firstReadCapacity, FIRST_READ_BYTES);
      // A tunnel's datagram (MTU 1420 + 32) and a handshake initiation: the page holds them whole.
      for (const n of [1452, 148, FIRST_READ_BYTES - 1]) {
        const p = pattern(n, n);
        await sendUntil(() => deno.send(p, to), () => ours.got.some((g) => same(g, p)), `${n} bytes`);
      }
      assertEquals(ours.bind.firstReadCapacity, FIRST_READ_BYTES);
      // A 9000-byte datagram (a jumbo-MTU peer): the first one fills the page and may be cut there; the
      // buffer grows, and from then on such datagrams arrive whole.
      const big = pattern(9000, 1);
      ours.got.length = 0;
      await sendUntil(() => deno.send(big, to), () => ours.got.some((g) => same(g, big)), "9000 bytes");
      assertEquals(ours.bind.firstReadCapacity, SLOT_SIZE);
      for (const g of ours.got) {
        assert(same(g, big) || same(g, big.subarray(0, FIRST_READ_BYTES)), `unexpected ${g.length} bytes`);
      }
      assertEquals(ours.bind.receiveErrors, 0);
    } finally {
      deno.close();
      await closeAll([ours]);
    }
  },
});

capabilityTest({
  name: "bind memory: an open bind holds the process's malloc trimmer; close lets go",
  async fn() {
    const trimmer = processHeapTrimmer()!;
    const before = trimmer.users;
    const a = await openBind(), b = await openBind();
    assertEquals(trimmer.users, before + 2);
    a.bind.close();
    a.bind.close(); // idempotent: released once
    assertEquals(trimmer.users, before + 1);
    await closeAll([a, b]);
    assertEquals(trimmer.users, before);
  },
}, unavailable ?? (processHeapTrimmer() ? null : "no malloc trimmer here (not glibc 2.33+)"));
