/**
 * TCP through the real IP layer (pseudo-header checksums, IPv4 and IPv6) and the in-memory link with its own
 * impairments, on the real clock: concurrent transfers both ways arrive intact.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { seededRandom } from "../src/util/random.ts";
import { createLinkPair, type LinkPairOptions } from "../src/netstack/link.ts";
import { Stack } from "../src/netstack/stack.ts";
import type { Conn } from "../src/net/types.ts";

function stacks(opts: LinkPairOptions) {
  const [la, lb] = createLinkPair({ random: seededRandom(31), ...opts });
  const a = new Stack(la, {
    addresses: [{ address: "10.9.0.2", prefix: 32 }, { address: "fd09::2", prefix: 128 }],
    random: seededRandom(32),
  });
  const b = new Stack(lb, {
    addresses: [{ address: "10.9.0.1", prefix: 24 }, { address: "fd09::1", prefix: 64 }],
    random: seededRandom(33),
  });
  // systemClock timers are unref'd; keep the loop alive while the test runs.
  const hold = setInterval(() => {}, 1000);
  return {
    a,
    b,
    close() {
      a.close();
      b.close();
      clearInterval(hold);
    },
  };
}

function bytes(n: number, seed: number): Uint8Array {
  return seededRandom(seed)(new Uint8Array(n));
}

async function pump(c: Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await c.write(data.subarray(o, Math.min(data.length, o + 65536)));
  await c.closeWrite();
}

async function digest(c: Conn): Promise<[number, string]> {
  const h = createHash("sha256");
  const buf = new Uint8Array(65536);
  let n = 0;
  for (;;) {
    const r = await c.read(buf);
    if (r === null) return [n, h.digest("hex")];
    h.update(buf.subarray(0, r));
    n += r;
  }
}

const sha = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");

for (const [family, server] of [["IPv4", "10.9.0.1"], ["IPv6", "fd09::1"]] as const) {
  Deno.test(`tcp stack: ${family} transfers both ways at once over a lossy, reordering, duplicating link`, async () => {
    const s = stacks({ loss: 0.01, reorder: 0.01, duplicate: 0.01, delayMs: 1 });
    try {
      const l = s.b.listenTcp(undefined, 7000);
      const accepted = l.accept();
      const client = await s.a.dialTcp(server, 7000);
      const srv = await accepted;
      const up = bytes(6 * 1024 * 1024, 1), down = bytes(4 * 1024 * 1024, 2);
      const t0 = performance.now();
      const [, , gotUp, gotDown] = await Promise.all([
        pump(client, up),
        pump(srv, down),
        digest(srv),
        digest(client),
      ]);
      const secs = (performance.now() - t0) / 1000;
      console.log(`${family}: 10 MiB in ${secs.toFixed(2)} s; tcp stats a=${JSON.stringify(s.a.stats.tcp)}`);
      assertEquals(gotUp, [up.length, sha(up)]);
      assertEquals(gotDown, [down.length, sha(down)]);
      assertEquals(s.a.stats.tcp!.malformed, 0);
      client.close();
      srv.close();
      l.close();
    } finally {
      s.close();
    }
  });
}

Deno.test("tcp stack: refused connection and clean throughput over a perfect link", async () => {
  const s = stacks({});
  try {
    await assertRejects(() => s.a.dialTcp("10.9.0.1", 1), "connection refused");
    const l = s.b.listenTcp("10.9.0.1", 7001);
    const accepted = l.accept();
    const client = await s.a.dialTcp("10.9.0.1", 7001);
    const srv = await accepted;
    const data = bytes(32 * 1024 * 1024, 3);
    const t0 = performance.now();
    const [, got] = await Promise.all([pump(client, data), digest(srv)]);
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `clean link: 32 MiB in ${secs.toFixed(2)} s (${(32 / secs).toFixed(1)} MiB/s), both stacks on one core`,
    );
    assertEquals(got, [data.length, sha(data)]);
    assert(s.a.stats.tcp!.retransmittedSegments === 0, "no loss, no retransmission");
    client.close();
    srv.close();
    l.close();
  } finally {
    s.close();
  }
});
