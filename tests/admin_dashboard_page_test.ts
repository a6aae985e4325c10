/**
 * The dashboard as an operator reads it: units and durations in words, the throughput sampler on a
 * ManualClock (rates, a bounded ring, vanished items dropped), the inline SVG sparklines, and the whole page
 * through the admin app's request handler (problems first, one section per service, headings in words, no
 * raw field names or JSON). The same page in a real browser: tests/admin_dashboard_browser_test.ts.
 */
import { createAdminApp } from "../src/services/admin/app.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import {
  formatAgeOf,
  formatAgo,
  formatBytes,
  formatDuration,
  formatRate,
  words,
} from "../src/services/admin/format.ts";
import { type CounterPair, statusCounters, ThroughputSampler } from "../src/services/admin/throughput.ts";
import { sparkline } from "../src/services/admin/sparkline.ts";
import { ManualClock } from "../src/util/clock.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { fullStatus, iso, WALL } from "./helpers/dashboard_fixture.ts";

Deno.test("format: bytes, rates, durations, ages and field names in words", () => {
  assertEquals(formatBytes(0), "0 B");
  assertEquals(formatBytes(1023), "1023 B");
  assertEquals(formatBytes(1536), "1.50 KiB");
  assertEquals(formatBytes(3 * 1024 ** 3), "3.00 GiB");
  assertEquals(formatRate(0), "0 B/s");
  assertEquals(formatRate(12.4), "12 B/s");
  assertEquals(formatRate(1.5 * 1024 * 1024), "1.50 MiB/s");
  assertEquals(formatDuration(0), "0 s");
  assertEquals(formatDuration(59.9), "59 s");
  assertEquals(formatDuration(60), "1 min");
  assertEquals(formatDuration(303), "5 min 3 s");
  assertEquals(formatDuration(30 * 60 + 59), "30 min");
  assertEquals(formatDuration(3 * 3600 + 12 * 60 + 40), "3 h 12 min");
  assertEquals(formatDuration(7200), "2 h");
  assertEquals(formatDuration(2 * 86_400 + 4 * 3600 + 5), "2 d 4 h");
  assertEquals(formatDuration(-1), "-1");
  assertEquals(formatAgo(5), "5 s ago");
  assertEquals(formatAgo(-3), "0 s ago", "a clock step back");
  assertEquals(formatAgeOf(iso(11_520), WALL), "3 h 12 min ago");
  assertEquals(formatAgeOf(null, WALL), "never");
  assertEquals(formatAgeOf("soon", WALL), "soon");
  assertEquals(words("bytesToTarget"), "bytes to target");
  assertEquals(words("last_seen_ms_ago"), "last seen ms ago");
});

function counters(entries: [string, number, number][]): Map<string, CounterPair> {
  return new Map(entries.map(([k, a, b]) => [k, [a, b] as const]));
}

Deno.test("sampler: a rate per interval on the injected clock, 90 points at most, vanished items dropped", () => {
  const clock = new ManualClock(0, WALL);
  let now: Map<string, CounterPair> = counters([["relay:A", 0, 0], ["relay:B", 100, 100]]);
  const s = new ThroughputSampler(() => now, clock, { intervalMs: 10_000, points: 90 });
  s.start();
  assertEquals(s.series("relay:A")?.rates, [], "the first reading is only a baseline");
  now = counters([["relay:A", 10_000, 30_000], ["relay:B", 100, 100]]);
  clock.advance(10_000);
  assertEquals(s.series("relay:A")?.rates, [4000], "40 000 bytes in 10 s");
  assertEquals(s.series("relay:A")?.last, [1000, 3000]);
  assertEquals(s.series("relay:B")?.rates, [0]);

  // 100 more intervals at a growing rate: the ring keeps the newest 90, oldest first.
  let a = 10_000;
  for (let i = 1; i <= 100; i++) {
    a += i * 10;
    now = counters([["relay:A", a, 30_000], ["relay:B", 100, 100]]);
    clock.advance(10_000);
  }
  const rates = s.series("relay:A")!.rates;
  assertEquals(rates.length, 90);
  assertEquals(rates[0], 11, "interval 11 (110 bytes in 10 s) is the oldest kept");
  assertEquals(rates[89], 100);

  // A counter that went down (the item restarted) counts from zero; an item that vanished is forgotten.
  now = counters([["relay:A", 500, 0]]);
  clock.advance(10_000);
  assertEquals(s.series("relay:A")!.rates[89], 50);
  assertEquals(s.series("relay:B"), undefined);
  assertEquals(s.size, 1);

  // A late tick divides by the time that really passed.
  s.stop();
  assertEquals(clock.pendingTimers, 0, "stop() leaves no timer");
  now = counters([["relay:A", 2500, 0]]);
  clock.advance(20_000);
  s.sample();
  assertEquals(s.series("relay:A")!.rates[89], 100, "2000 bytes in 20 s");
  assertEquals(clock.pendingTimers, 0, "a sample after stop() arms nothing");
});

Deno.test("sampler: 300 tunnels stay cheap (a fixed ring each) and at most maxSeries items are kept", () => {
  const clock = new ManualClock(0, WALL);
  const tunnels = (k: number) =>
    Array.from({ length: 300 }, (_, i) => ({ name: `st${i}`, peers: [{ rxBytes: k * i, txBytes: k }] }));
  let status: Record<string, unknown> = { tunnels: tunnels(0) };
  const s = new ThroughputSampler(() => statusCounters(status), clock, { maxSeries: 1000 });
  s.start();
  for (let k = 1; k <= 200; k++) {
    status = { tunnels: tunnels(k * 10) };
    clock.advance(10_000);
  }
  assertEquals(s.size, 300);
  assertEquals(s.series("tunnel:st7")!.rates.length, 90);
  assertEquals(s.series("tunnel:st7")!.rates[89], (70 + 10) / 10);
  assertEquals(clock.pendingTimers, 1, "one timer for all items");
  s.stop();

  const small = new ThroughputSampler(() => statusCounters({ tunnels: tunnels(1) }), clock, {
    maxSeries: 10,
  });
  small.sample();
  assertEquals(small.size, 10);
});

Deno.test("statusCounters: relays, tunnels (sum of peers), mappings, routes, mwgp and caster mounts", () => {
  const c = statusCounters({
    relays: [{ id: "RELAY_1", bytesToTarget: 5, bytesToClient: 7 }],
    tunnels: [{ name: "main", peers: [{ rxBytes: 1, txBytes: 2 }, { rxBytes: 10, txBytes: 20 }] }],
    port_mappings: [{ remote_port: 8080, protocol: "tcp", bytes_in: 3, bytes_out: 4 }],
    rp_routes: [{ route: "tcp:9000:127.0.0.1:22", bytes_in: 1, bytes_out: 1 }],
    mwgp_server: { stats: { bytesToServer: 9, bytesToClient: 8 } },
    ntrip_caster: { mounts: [{ mount: "M1", bytesIn: 6, bytesOut: 12 }] },
    reload: { lastResult: "success" },
  });
  assertEquals([...c.entries()], [
    ["relay:RELAY_1", [5, 7]],
    ["tunnel:main", [11, 22]],
    ["mapping:tcp/8080", [3, 4]],
    ["route:tcp:9000:127.0.0.1:22", [1, 1]],
    ["mwgp:mwgp_server", [9, 8]],
    ["mount:M1", [6, 12]],
  ]);
});

Deno.test("sparkline: inline SVG, newest at the right, scaled to its peak, flat when idle", () => {
  const svg = sparkline({ rates: [0, 512, 1024], last: [1000, 24] }, 90, 10_000);
  assertStringIncludes(svg, '<svg class="spark" viewBox="0 0 90 20"');
  assertStringIncludes(svg, 'data-points="3"');
  assertStringIncludes(
    svg,
    '<path class="area" d="M87 20H88V10H89V1H90V20Z"/>',
    "one unit per interval, the peak at the top",
  );
  assertStringIncludes(
    sparkline({ rates: [5, 5, 5, 0.001, 0], last: [0, 0] }, 90, 10_000),
    'd="M85 20V1H88V19H89V20H90V20Z"',
    "equal steps merged; a trickle still shows",
  );
  assertStringIncludes(svg, "<title>last 15 min: peak 1.00 KiB/s, now 1.00 KiB/s</title>");
  assertStringIncludes(svg, "1.00 KiB/s");
  assert(!/https?:|<script|xlink/.test(svg), "nothing from outside the page");
  const idle = sparkline({ rates: [0, 0], last: [0, 0] }, 90, 10_000);
  assertStringIncludes(idle, '<path d="M88 19H90"/>');
  assert(!idle.includes("area"), "no area under a flat line");
  assertStringIncludes(sparkline(undefined, 90, 10_000), 'data-points="0"');
});

Deno.test("dashboard page: problems first, one section per service, words and units, a sparkline per item", async () => {
  const registry = new ServiceRegistry(WALL - (3 * 3600 + 12 * 60) * 1000);
  for (const [name, fn] of Object.entries(fullStatus())) registry.registerStatus(name, fn);
  const clock = new ManualClock(0, WALL);
  const sampler = new ThroughputSampler(() => statusCounters(registry.status()), clock);
  sampler.start();
  clock.advance(10_000);
  const app = createAdminApp({ registry, version: "test", clock, throughput: sampler });
  const html = await (await app.request("/")).text();
  const statusBefore = await (await app.request("/api/v1/status")).json();

  assertStringIncludes(html, "up 3 h 12 min");
  const order = [
    'id="problems"',
    "<h2>Configuration</h2>",
    "<h2>Relays</h2>",
    "<h2>Proxies (SOCKS5, HTTP)</h2>",
    "<h2>WireGuard tunnels</h2>",
    "<h2>Port mappings (rps)</h2>",
    "<h2>Routes (rpc)</h2>",
    "<h2>mwgp server (mwgp_server)</h2>",
    "<h2>NTRIP stations</h2>",
    "<h2>NTRIP caster</h2>",
    "<h2>something new</h2>",
  ].map((s) => {
    const at = html.indexOf(s);
    assert(at >= 0, `missing ${s}`);
    return at;
  });
  assertEquals(order, [...order].sort((a, b) => a - b), "problems, a failed reload, then services in order");
  const problems = html.slice(html.indexOf('id="problems"'), html.indexOf("</section>"));
  for (
    const want of ["reload was applied only in part", "RELAY_4", "RELAY_2", "Connection refused", "tcp:80:"]
  ) {
    assertStringIncludes(problems, want);
  }
  assert(!problems.includes("RELAY_1"), "a healthy relay is no problem");
  assertStringIncludes(problems, "proxy <b>PROXY_1</b> (socks5 on 127.0.0.1:1080): last error");
  // The peer is named once (its name, as it has no address), with the error and the next try.
  assertStringIncludes(problems, "(peer vpn.example.net: the name does not resolve: ");
  assertStringIncludes(problems, ", next try in 30 s)");
  assert(!problems.includes("PROXY_2") && !problems.includes("<b>main</b>"), "healthy items are no problem");

  const proxies = html.slice(html.indexOf("<h2>Proxies"), html.indexOf("<h2>WireGuard tunnels</h2>"));
  assert(proxies.indexOf("PROXY_1") < proxies.indexOf("PROXY_2"), "the proxy with an error first");
  for (
    const want of [
      "2 login failures",
      "1 dial failures",
      "1 UDP datagrams dropped",
      "login alice",
      "2.00 MiB",
    ]
  ) {
    assertStringIncludes(proxies, want);
  }
  assertStringIncludes(proxies, "UDP <span");
  assertEquals(proxies.match(/<svg class="spark"/g)?.length, 2, "a sparkline per proxy");
  const tunnels = html.slice(html.indexOf("<h2>WireGuard tunnels</h2>"), html.indexOf("<h2>Port mappings"));
  assertStringIncludes(tunnels, "no address for vpn.example.net");
  assertStringIncludes(tunnels, "3 failed, next try in 30 s");
  assert(
    tunnels.indexOf("<b>office</b>") < tunnels.indexOf("<b>main</b>"),
    "the tunnel that cannot connect first",
  );

  const relays = html.slice(html.indexOf("<h2>Relays</h2>"), html.indexOf("<h2>Proxies"));
  const at = (id: string) => relays.indexOf(`<b>${id}</b>`);
  assert(at("RELAY_4") < at("RELAY_2") && at("RELAY_2") < at("RELAY_1"), "failing, erroring, then the rest");
  assertStringIncludes(relays, 'last error: <span class="err">connect 127.0.0.1:1: Connection refused');
  for (const h of ["relay", "listens on", "sends to", "to target", "to client", "traffic, last 15 min"]) {
    assertStringIncludes(relays, `<th>${h}</th>`);
  }
  assertStringIncludes(relays, "<small>TCP, own sockets</small>", "which sockets carry a TCP relay");
  assertStringIncludes(relays, "<small>TCP, Deno sockets</small>");
  assertStringIncludes(relays, "<small>UDP</small>");
  assertStringIncludes(relays, "5.00 MiB");
  assertStringIncludes(relays, "3.00 KiB");
  assertEquals(relays.match(/<svg class="spark"/g)?.length, 4, "a sparkline per relay");

  const mappings = html.slice(
    html.indexOf("<h2>Port mappings (rps)</h2>"),
    html.indexOf("<h2>Routes (rpc)</h2>"),
  );
  assertStringIncludes(mappings, "3.00 GiB");
  assertStringIncludes(mappings, "3 h 12 min ago");
  assertStringIncludes(mappings, "started 2 h ago");
  assertStringIncludes(mappings, "<b>10.0.0.2</b> seen 4 s ago, 1 mapping");
  assertStringIncludes(mappings, "a client expires after <b>1 min</b>");
  assertEquals(mappings.match(/<svg class="spark"/g)?.length, 1, "a sparkline per mapping");
  assertStringIncludes(html, "<th>bytes seen</th>");
  assertStringIncludes(html, "4.00 KiB", "an unknown section's byte field is in units too");

  for (const raw of ["bytesToTarget", "bytes_out", "remote_port", "lastError", '{"', "[{"]) {
    assert(!html.includes(raw), `raw field name or JSON on the page: ${raw}`);
  }
  assertEquals(
    await (await app.request("/api/v1/status")).json(),
    statusBefore,
    "the page reads the status, it does not change it",
  );
  assert(!("throughput" in statusBefore), "the status JSON carries no history");
  sampler.stop();
});

Deno.test("dashboard page: a calm system says so, and the page loads nothing from outside", async () => {
  const registry = new ServiceRegistry(WALL);
  registry.registerStatus("relays", () => [{ id: "R", protocol: "tcp", state: "listening", health: "up" }]);
  registry.registerStatus("broken", () => {
    throw new Error("provider failed");
  });
  const clock = new ManualClock(0, WALL);
  const html = await (await createAdminApp({ registry, clock }).request("/")).text();
  assertStringIncludes(html, "broken: status failed");
  assert(html.indexOf("broken: status failed") < html.indexOf("<h2>Relays</h2>"), "in the problems box");
  const calm = new ServiceRegistry(WALL);
  calm.registerStatus("relays", () => [{ id: "R", protocol: "tcp", state: "listening", health: "up" }]);
  const page = await (await createAdminApp({ registry: calm, clock }).request("/")).text();
  assertStringIncludes(page, "No problem found.");
  assert(!/(src|href)="(https?:)?\/\//.test(page), "no external asset");
  assert(!/@import|url\(/.test(page), "no external stylesheet or font");
});
