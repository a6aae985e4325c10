/** The whole stack with TCP over the in-memory link, through the tunnel Net. */
import { assert, assertEquals, assertRejects, assertThrows } from "./helpers/assert.ts";
import { seededRandom } from "../src/util/random.ts";
import { createLinkPair, type LinkPairOptions } from "../src/netstack/link.ts";
import { Stack } from "../src/netstack/stack.ts";
import { TunnelNet } from "../src/net/tunnel.ts";
import type { Conn } from "../src/net/types.ts";
import { MapResolver, osResolver } from "../src/net/resolve.ts";

/**
 * systemClock timers are unref'd (they never hold a process open); in production sockets keep the event loop
 * alive, here this referenced timer does, until the test cleans up.
 */
function holdEventLoop(): () => void {
  const id = setInterval(() => {}, 1000);
  return () => clearInterval(id);
}

function nets(opts: LinkPairOptions = {}) {
  const [la, lb] = createLinkPair({ random: seededRandom(9), ...opts });
  const a = new Stack(la, {
    addresses: [{ address: "10.77.0.2", prefix: 32 }, { address: "fd77::2", prefix: 128 }],
    random: seededRandom(2),
  });
  const b = new Stack(lb, {
    addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
    random: seededRandom(3),
  });
  const release = holdEventLoop();
  const close = () => {
    a.close();
    b.close();
    release();
  };
  return { a, b, na: new TunnelNet(a, "client"), nb: new TunnelNet(b, "server"), la, lb, close };
}

async function readAll(c: Conn, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await c.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
    if (total > limit) throw new Error("more data than sent");
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const ch of chunks) {
    out.set(ch, off);
    off += ch.length;
  }
  return out;
}

async function writeAll(c: Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await c.write(data.subarray(off, Math.min(data.length, off + 32768)));
}

/** Server echoes with a transform (xor 0x5a) so each direction is checked independently. */
async function exchange(na: TunnelNet, nb: TunnelNet, host: string, size: number): Promise<void> {
  const listener = nb.listenTcp({ hostname: host, port: 8080 });
  try {
    const served = (async () => {
      const c = await listener.accept();
      const got = await readAll(c, size);
      await writeAll(c, got.map((x) => x ^ 0x5a));
      await c.closeWrite();
      c.close();
      return got.length;
    })();
    const data = seededRandom(size)(new Uint8Array(size));
    const c = await na.dialTcp(host, 8080, { timeoutMs: 10_000 });
    assertEquals(c.remoteAddr.port, 8080);
    const reading = readAll(c, size);
    await writeAll(c, data);
    await c.closeWrite(); // half-close: the server still answers after our FIN
    const back = await reading;
    c.close();
    assertEquals(await served, size);
    assertEquals(back.length, size);
    for (let i = 0; i < size; i++) {
      if (back[i] !== (data[i] ^ 0x5a)) throw new Error(`byte ${i} differs`);
    }
  } finally {
    listener.close();
  }
}

Deno.test("stack: TCP through TunnelNet, IPv4 and IPv6, 1 MiB each way, half-close", async () => {
  const { b, na, nb, close } = nets();
  try {
    assertEquals(na.name, "wg:client");
    await exchange(na, nb, "10.77.0.1", 1 << 20);
    await exchange(na, nb, "fd77::1", 1 << 20);
    const s = b.stats;
    assertEquals(s.rxDropped.badChecksum, 0);
    assert(s.tcp !== undefined && s.tcp.passiveOpens === 2);
  } finally {
    close();
  }
});

Deno.test("stack: TCP with 3% loss, reordering and duplication arrives intact", async () => {
  const { na, nb, la, lb, close } = nets({ loss: 0.03, reorder: 0.03, duplicate: 0.02, reorderDelayMs: 2 });
  try {
    await exchange(na, nb, "10.77.0.1", 256 * 1024);
    assert(la.stats.lost > 0 && lb.stats.lost > 0, "loss was injected both ways");
    assert(la.stats.reordered > 0 && la.stats.duplicated > 0, "reordering and duplication were injected");
  } finally {
    close();
  }
});

Deno.test("stack: TunnelNet errors name the tunnel; closed port refuses; UDP through the Net", async () => {
  const { na, nb, close } = nets();
  try {
    assert(na.resolver === osResolver, "without DNS = servers a tunnel resolves names like the host");
    na.resolver = new MapResolver({ "svc.test": ["fd77::1", "10.77.0.1"] });
    await assertRejects(() => na.dialTcp("nosuch.test", 80), 'wg:client: cannot resolve "nosuch.test"');
    // Each address is tried in order; the error names the tunnel, the name and what it resolved to.
    await assertRejects(
      () => na.dialTcp("svc.test", 81, { timeoutMs: 5000 }),
      "wg:client: svc.test (fd77::1, 10.77.0.1): wg:client: connect [fd77::1]:81",
    );
    const listener = nb.listenTcp({ port: 82 });
    const viaName = await na.dialTcp("svc.test", 82);
    assertEquals(viaName.remoteAddr.hostname, "fd77::1", "the first answer is used when it connects");
    viaName.close();
    (await listener.accept()).close();
    listener.close();
    await assertRejects(
      () => na.dialTcp("10.77.0.1", 81, { timeoutMs: 5000 }),
      "wg:client: connect 10.77.0.1:81",
    );
    await assertRejects(() => na.dialTcp("10.77.0.1", 0), "port 0");
    const ac = new AbortController();
    ac.abort();
    await assertRejects(() => na.dialTcp("10.77.0.1", 80, { signal: ac.signal }), "aborted");
    assertThrows(() => nb.listenTcp({ hostname: "10.1.1.1", port: 1 }), "not an address of this stack");
    const u = nb.listenUdp({ hostname: "fd77::1", port: 53 });
    const c = na.listenUdp({ port: 0 });
    await c.send(new Uint8Array([1, 2, 3]), { transport: "udp", hostname: "fd77::1", port: 53 });
    const [d, from] = await u.receive();
    assertEquals(d, new Uint8Array([1, 2, 3]));
    assertEquals(from.hostname, "fd77::2");
    assertEquals(from.port, c.addr.port);
    u.close();
    c.close();
  } finally {
    close();
  }
});

Deno.test("stack: an abort signal cancels a dial that gets no answer", async () => {
  const { na, la, close } = nets();
  try {
    la.impair({ loss: 1 });
    const ac = new AbortController();
    const dial = na.dialTcp("10.77.0.1", 8080, { signal: ac.signal, timeoutMs: 60_000 });
    setTimeout(() => ac.abort(), 20);
    await assertRejects(() => dial, "aborted");
    assert(la.stats.lost >= 1, "the SYN was sent (and lost)");
  } finally {
    close();
  }
});
