import { assert, assertEquals } from "./helpers/assert.ts";
import { REPLAY_WINDOW_SIZE, ReplayFilter } from "../src/wireguard/replay.ts";
import { AllowedIps } from "../src/wireguard/allowedips.ts";
import { parseIpv4 } from "../src/wire/ipv4.ts";
import { parseIpv6 } from "../src/wire/ipv6.ts";
import { REJECT_AFTER_MESSAGES } from "../src/wireguard/constants.ts";
import { seededRandom } from "../src/util/random.ts";
import { Timer } from "../src/wireguard/timers.ts";
import { ManualClock } from "../src/util/clock.ts";

const LIMIT = REJECT_AFTER_MESSAGES;

Deno.test("replay: window of 8128 like wireguard-go", () => {
  assertEquals(REPLAY_WINDOW_SIZE, 8128);
});

Deno.test("replay: in order, duplicates, reordering within the window, too old, and the limit", () => {
  const f = new ReplayFilter();
  for (let i = 0; i < 100; i++) assert(f.validate(i, LIMIT), `fresh ${i}`);
  for (let i = 0; i < 100; i++) assert(!f.validate(i, LIMIT), `duplicate ${i}`);
  assert(f.validate(20_000, LIMIT), "jump ahead");
  assert(f.validate(20_000 - REPLAY_WINDOW_SIZE, LIMIT), "oldest counter still inside the window");
  assert(!f.validate(20_000 - REPLAY_WINDOW_SIZE - 1, LIMIT), "one past the window is rejected");
  assert(f.validate(19_999, LIMIT), "late but inside");
  assert(!f.validate(19_999, LIMIT), "and only once");
  assert(!f.validate(LIMIT, LIMIT), "counter at the limit");
  f.reset();
  assert(f.validate(0, LIMIT), "reset forgets");
});

Deno.test("replay: a big jump clears the whole ring (no stale bits after wrap-around)", () => {
  const f = new ReplayFilter();
  for (let i = 0; i < 9000; i++) f.validate(i, LIMIT);
  // Counters that map onto the same ring slots as old ones must be accepted once.
  for (let i = 1_000_000; i < 1_009_000; i++) assert(f.validate(i, LIMIT), `fresh after jump ${i}`);
});

Deno.test("replay: random permutation of a window's worth is accepted exactly once each", () => {
  const f = new ReplayFilter();
  const rnd = seededRandom(5);
  const base = 50_000;
  f.validate(base + 4000, LIMIT);
  const seen = new Set<number>();
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const b = rnd(new Uint8Array(2));
    const c = base + 4000 - ((b[0] << 8 | b[1]) % 8000);
    const ok = f.validate(c, LIMIT);
    assertEquals(ok, !seen.has(c) && c !== base + 4000, `counter ${c}`);
    if (ok) accepted++;
    seen.add(c);
  }
  assert(accepted > 5000);
});

function v4(s: string): Uint8Array {
  return parseIpv4(s)!;
}
function v6(s: string): Uint8Array {
  return parseIpv6(s)!;
}

Deno.test("allowed-ips: longest prefix wins, IPv4 and IPv6 are separate", () => {
  const t = new AllowedIps<string>();
  t.insert(v4("0.0.0.0"), 0, "default");
  t.insert(v4("10.0.0.0"), 8, "ten");
  t.insert(v4("10.1.0.0"), 16, "ten-one");
  t.insert(v4("10.1.2.3"), 32, "host");
  t.insert(v6("fd00::"), 8, "ula");
  assertEquals(t.lookup(v4("10.1.2.3")), "host");
  assertEquals(t.lookup(v4("10.1.2.4")), "ten-one");
  assertEquals(t.lookup(v4("10.2.0.1")), "ten");
  assertEquals(t.lookup(v4("192.168.1.1")), "default");
  assertEquals(t.lookup(v6("fd12::1")), "ula");
  assertEquals(t.lookup(v6("2001:db8::1")), undefined, "no IPv6 default route");
});

Deno.test("allowed-ips: re-inserting a prefix moves it to the new peer; removeValue drops only that peer", () => {
  const t = new AllowedIps<string>();
  t.insert(v4("10.0.0.0"), 24, "a");
  t.insert(v4("10.0.1.0"), 24, "a");
  t.insert(v4("10.0.0.0"), 24, "b");
  assertEquals(t.lookup(v4("10.0.0.9")), "b");
  t.removeValue("a");
  assertEquals(t.lookup(v4("10.0.1.9")), undefined);
  assertEquals(t.lookup(v4("10.0.0.9")), "b");
  assertEquals(t.entriesFor("b").map((e) => `${e.addr.join(".")}/${e.prefix}`), ["10.0.0.0/24"]);
});

Deno.test("allowed-ips: matches a brute-force longest-prefix search on random tables", () => {
  const rnd = seededRandom(77);
  const t = new AllowedIps<number>();
  const rules: { addr: Uint8Array; prefix: number; v: number }[] = [];
  for (let i = 0; i < 200; i++) {
    const addr = rnd(new Uint8Array(4));
    const prefix = rnd(new Uint8Array(1))[0] % 33;
    t.insert(addr, prefix, i);
    rules.push({ addr, prefix, v: i });
  }
  const covers = (r: { addr: Uint8Array; prefix: number }, a: Uint8Array) => {
    for (let bit = 0; bit < r.prefix; bit++) {
      const m = 0x80 >> (bit & 7);
      if ((r.addr[bit >> 3] & m) !== (a[bit >> 3] & m)) return false;
    }
    return true;
  };
  for (let i = 0; i < 2000; i++) {
    const a = rnd(new Uint8Array(4));
    let best: { prefix: number; v: number } | undefined;
    for (const r of rules) if (covers(r, a) && (!best || r.prefix >= best.prefix)) best = r;
    assertEquals(t.lookup(a), best?.v, `lookup ${a.join(".")}`);
  }
});

Deno.test("timer: lazy re-arming fires at the latest deadline, never early, and keeps one clock timer", () => {
  const clock = new ManualClock();
  let fired = 0;
  const t = new Timer(clock, () => fired++);
  t.mod(1000);
  for (let i = 0; i < 500; i++) {
    clock.advance(10);
    t.mod(1000); // pushed back on every "packet"
  }
  assertEquals(clock.pendingTimers, 1, "one clock timer however often the deadline moves");
  clock.advance(999);
  assertEquals(fired, 0, "not before the last deadline");
  clock.advance(1);
  assertEquals(fired, 1);
  assert(!t.isPending);
  t.mod(5000);
  t.mod(100); // an earlier deadline re-arms sooner
  clock.advance(100);
  assertEquals(fired, 2);
  t.mod(100);
  t.del();
  clock.advance(1000);
  assertEquals(fired, 2, "deleted timers do not fire");
  t.mod(100);
  t.stop();
  assertEquals(clock.pendingTimers, 0, "stop() leaves nothing armed");
});
