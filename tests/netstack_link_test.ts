import { assert, assertEquals } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { createLinkPair } from "../src/netstack/link.ts";

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

function tagged(i: number, size = 100): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = i >> 8;
  p[1] = i & 0xff;
  return p;
}

Deno.test("link: delivers asynchronously, in order, as copies", async () => {
  const clock = new ManualClock();
  const [a, b] = createLinkPair({ clock });
  const got: number[] = [];
  b.setReceiver((p) => got.push((p[0] << 8) | p[1]));
  const p = tagged(1);
  a.send(p);
  p[1] = 99; // the sender may reuse its buffer
  a.send(tagged(2));
  assertEquals(got, [], "never delivered inside send()");
  await flushMicrotasks();
  assertEquals(got, [1, 2]);
  assertEquals(a.stats.delivered, 2);
  a.close();
});

Deno.test("link: one-way delay driven by the clock", async () => {
  const clock = new ManualClock();
  const [a, b] = createLinkPair({ clock, delayMs: 30, reverse: { delayMs: 5 } });
  const atB: number[] = [], atA: number[] = [];
  b.setReceiver(() => atB.push(clock.now()));
  a.setReceiver(() => atA.push(clock.now()));
  const t0 = clock.now();
  a.send(tagged(1));
  b.send(tagged(2));
  clock.advance(5);
  await flushMicrotasks();
  assertEquals(atA, [t0 + 5]);
  assertEquals(atB, []);
  clock.advance(25);
  assertEquals(atB, [t0 + 30]);
  assertEquals(clock.pendingTimers, 0);
  a.close();
});

Deno.test("link: loss, duplication and reordering are seeded and counted", async () => {
  const run = async () => {
    const clock = new ManualClock();
    const [a, b] = createLinkPair({
      clock,
      random: seededRandom(99),
      loss: 0.1,
      duplicate: 0.05,
      reorder: 0.1,
      reorderDelayMs: 3,
    });
    const got: number[] = [];
    b.setReceiver((p) => got.push((p[0] << 8) | p[1]));
    for (let i = 0; i < 1000; i++) {
      a.send(tagged(i));
      clock.advance(1);
      await flushMicrotasks();
    }
    clock.advance(10);
    await flushMicrotasks();
    a.close();
    return { got, stats: { ...a.stats } };
  };
  const r1 = await run();
  const r2 = await run();
  assertEquals(r1.got, r2.got, "same seed, same outcome");
  const s = r1.stats;
  assertEquals(s.sent, 1000);
  assertEquals(s.delivered, 1000 - s.lost + s.duplicated);
  assertEquals(r1.got.length, s.delivered);
  assert(s.lost > 50 && s.lost < 150, `lost ${s.lost}`);
  assert(s.duplicated > 20 && s.duplicated < 90, `duplicated ${s.duplicated}`);
  let inversions = 0;
  for (let i = 1; i < r1.got.length; i++) if (r1.got[i] < r1.got[i - 1]) inversions++;
  assert(inversions > 0, "some packets overtaken");
  assert(s.reordered > 0);
});

Deno.test("link: rate limit serialises packets and tail-drops past the queue limit", async () => {
  const clock = new ManualClock();
  // 100 kB/s: a 1000-byte packet takes 10 ms; the queue holds 3000 bytes.
  const [a, b] = createLinkPair({ clock, rateBytesPerSec: 100_000, queueLimitBytes: 3000 });
  const times: number[] = [];
  b.setReceiver(() => times.push(clock.now()));
  const t0 = clock.now();
  for (let i = 0; i < 5; i++) a.send(tagged(i, 1000));
  assertEquals(a.stats.queueDropped, 2);
  clock.advance(100);
  await flushMicrotasks();
  assertEquals(times, [t0 + 10, t0 + 20, t0 + 30]);
  a.close();
});

Deno.test("link: oversize packets dropped; impair() cuts the link; close stops delivery", async () => {
  const clock = new ManualClock();
  const [a, b] = createLinkPair({ clock, mtu: 1280 });
  let n = 0;
  b.setReceiver(() => n++);
  a.send(new Uint8Array(1281));
  assertEquals(a.stats.oversizeDropped, 1);
  a.impair({ loss: 1 });
  a.send(tagged(1));
  a.impair({ loss: 0, delayMs: 10 });
  a.send(tagged(2));
  a.close();
  clock.advance(20);
  await flushMicrotasks();
  assertEquals(n, 0);
  assertEquals(a.stats.lost, 1);
  assertEquals(clock.pendingTimers, 0);
});
