/**
 * The dashboard in a real browser. First `wgedge serve` with four relays (one whose target refuses, so it has
 * an error) and traffic through them, loaded by headless Chromium at 1366x900; then a page with every section
 * (a long error, 60 NTRIP stations: a full-page screenshot of 300 took over a minute on a loaded machine)
 * served by the admin app itself, for the layout of all of them. Assertions are on what Chromium rendered
 * (innerText, layout widths, the SVG elements), not on the HTML string; screenshots are kept in
 * test-artifacts/dashboard/ (gitignored; the path is printed) for a person to look at.
 */
import { chromiumUnavailable, startChromium } from "./helpers/chromium.ts";
import { capabilityTest } from "./helpers/interop.ts";
import { waitFor, within } from "./helpers/wait.ts";
import { startWgedgeHere, type WgedgeProc } from "./helpers/wgedge_proc.ts";
import { freePort } from "./helpers/ports.ts";
import { echoWithRetry } from "./helpers/udp.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { fullStatus, WALL } from "./helpers/dashboard_fixture.ts";
import { createAdminApp } from "../src/services/admin/app.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { statusCounters, ThroughputSampler } from "../src/services/admin/throughput.ts";
import { ManualClock } from "../src/util/clock.ts";

const ARTIFACTS = new URL("../test-artifacts/dashboard/", import.meta.url).pathname;
const WIDTH = 1366, HEIGHT = 900;

/** A TCP echo server on loopback. */
function tcpEcho() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const c of l) {
      conns.add(c);
      c.readable.pipeTo(c.writable).catch(() => {}).finally(() => conns.delete(c));
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    async close() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}

/** A UDP echo server on loopback. */
function udpEcho() {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    for (;;) {
      const [data, from] = await sock.receive();
      await sock.send(data, from);
    }
  })().catch(() => {});
  return {
    port: (sock.addr as Deno.NetAddr).port,
    async close() {
      sock.close();
      await loop;
    },
  };
}

/** Sends `bytes` through a TCP relay and reads them all back (bounded). */
async function pushThrough(port: number, bytes: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    const reading = (async () => {
      let got = 0;
      const buf = new Uint8Array(64 * 1024);
      while (got < bytes) {
        const n = await conn.read(buf);
        if (n === null) throw new Error(`relay closed after ${got} of ${bytes} bytes`);
        got += n;
      }
    })();
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      await conn.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
    }
    await within(reading, `${bytes} bytes echoed through port ${port}`);
  } finally {
    conn.close();
  }
}

capabilityTest({
  name:
    "dashboard in Chromium at 1366x900: four relays readable, error visible, no sideways scroll, sparklines",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "wgedge-dash-" });
    const e1 = tcpEcho(), e2 = tcpEcho(), u = udpEcho();
    const refused = freePort(); // reserved for this test and never listened on: dials to it are refused
    const [in1, in2, in3, in4, admin] = [freePort(), freePort(), freePort(), freePort(), freePort()];
    const env = `${dir}/wgedge.env`;
    await Deno.writeTextFile(
      env,
      [
        `WGEDGE_ADMIN_LISTEN=127.0.0.1:${admin}`,
        `RELAY_1="${in1};${e1.port};127.0.0.1;TCP"`,
        `RELAY_2="${in2};${e2.port};127.0.0.1;TCP"`,
        `RELAY_3="${in3};${u.port};127.0.0.1;UDP"`,
        `RELAY_4="${in4};${refused};127.0.0.1;TCP"`,
        "",
      ].join("\n"),
    );
    let proc: WgedgeProc | undefined;
    let browser: Awaited<ReturnType<typeof startChromium>> | undefined;
    const page = () => fetch(`http://127.0.0.1:${admin}/`).then((r) => r.text());
    /** The fewest samples any relay's sparkline has. */
    const samples = async () => {
      const counts = [...(await page()).matchAll(/data-points="(\d+)"/g)].map((m) => Number(m[1]));
      return counts.length >= 4 ? Math.min(...counts) : -1;
    };
    try {
      proc = startWgedgeHere(["serve", "--env-file", env]);
      await waitFor(
        async () => {
          try {
            return (await samples()) >= 0;
          } catch {
            return false;
          }
        },
        `serve up with four relays\n${proc.stderr()}`,
        400,
        50,
      );

      // Traffic in two sampling intervals (the sampler reads every 10 s), and one refused dial.
      await pushThrough(in1, 3 * 1024 * 1024);
      await pushThrough(in2, 300 * 1024);
      const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      try {
        for (let i = 0; i < 20; i++) {
          await echoWithRetry(udp, { transport: "udp", hostname: "127.0.0.1", port: in3 }, `datagram ${i}`);
        }
      } finally {
        udp.close();
      }
      const c = await Deno.connect({ hostname: "127.0.0.1", port: in4 });
      await c.read(new Uint8Array(16)).catch(() => null); // the relay closes it when the dial fails
      c.close();
      await waitFor(async () => (await samples()) >= 1, "a first throughput sample", 200, 250);
      await pushThrough(in1, 1024 * 1024);
      await waitFor(async () => (await samples()) >= 2, "a second throughput sample", 200, 250);

      browser = await startChromium(WIDTH, HEIGHT);
      await browser.open(`http://127.0.0.1:${admin}/`, "relays-table");
      // One evaluation reads everything, so the page's own refresh cannot fall between two reads.
      const seen = await browser.evaluate<{
        text: string;
        scrollWidth: number;
        innerWidth: number;
        rows: { id: string; sparks: number; points: number; right: number }[];
        errors: { text: string; left: number; right: number; height: number }[];
        problemsTop: number;
        relaysTop: number;
      }>(`(() => {
        const rows = [...document.querySelectorAll("#relays-table tbody tr:not(.detail)")].map((tr) => {
          const svg = tr.querySelector("svg.spark");
          return {
            id: tr.querySelector("b")?.textContent ?? "",
            sparks: tr.querySelectorAll("svg.spark").length,
            points: svg ? Number(svg.dataset.points) : -1,
            right: tr.getBoundingClientRect().right,
          };
        });
        const errors = [...document.querySelectorAll("#relays-table .err")].map((e) => {
          const r = e.getBoundingClientRect();
          return { text: e.innerText, left: r.left, right: r.right, height: r.height };
        });
        return {
          text: document.body.innerText,
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
          rows,
          errors,
          problemsTop: document.getElementById("problems").getBoundingClientRect().top,
          relaysTop: document.getElementById("relays").getBoundingClientRect().top,
        };
      })()`);

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await browser.screenshot(`${ARTIFACTS}viewport-1366x900.png`);
      await browser.screenshot(`${ARTIFACTS}full-page-1366.png`, true);
      console.log(`dashboard screenshots: ${ARTIFACTS}viewport-1366x900.png, ${ARTIFACTS}full-page-1366.png`);

      assertEquals(seen.innerWidth, WIDTH);
      assert(
        seen.scrollWidth <= seen.innerWidth,
        `no sideways scroll: ${seen.scrollWidth} > ${seen.innerWidth}`,
      );
      for (
        const want of ["Relays", "listens on", "sends to", "to target", "to client", "traffic, last 15 min"]
      ) {
        assertStringIncludes(seen.text, want);
      }
      assertStringIncludes(seen.text, "MiB", "RELAY_1 moved 4 MiB each way");
      assertStringIncludes(seen.text, "KiB", "RELAY_2 moved 300 KiB each way");
      assertStringIncludes(seen.text, "/s");
      assert(!/bytesToTarget|bytesToClient|lastError/.test(seen.text), "no field names on the page");
      assert(seen.problemsTop < seen.relaysTop, "the problems box comes before the sections");

      assertEquals(seen.rows.map((r) => r.id).sort(), ["RELAY_1", "RELAY_2", "RELAY_3", "RELAY_4"]);
      assertEquals(seen.rows[0].id, "RELAY_4", "the relay with an error comes first");
      for (const r of seen.rows) {
        assertEquals(r.sparks, 1, `one sparkline in ${r.id}'s row`);
        assert(r.points >= 2, `${r.id}'s sparkline has ${r.points} samples`);
        assert(r.right <= WIDTH, `${r.id}'s row ends inside the window (${r.right})`);
      }
      assertEquals(seen.errors.length, 1, "one relay has an error");
      assertStringIncludes(seen.errors[0].text.toLowerCase(), "refused");
      assert(
        seen.errors[0].height > 0 && seen.errors[0].right <= WIDTH,
        "the error is visible inside the window",
      );
      assertStringIncludes(seen.text.toLowerCase(), "connection refused");
    } finally {
      await browser?.close();
      const st = await proc?.stop();
      await e1.close();
      await e2.close();
      await u.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (st) assertEquals(st.code, 0, `serve exit code; stderr:\n${proc?.stderr()}`);
    }
  },
}, chromiumUnavailable());

const LONG_ERROR =
  "connect to pool.some-really-long-hostname.example.internal.corp:3333 through socks5://127.0.0.1:1080: " +
  "the proxy answered 'connection refused' (general SOCKS server failure) after 3 attempts; the target did not " +
  "answer within 10 s and was marked down after HEALTH_CHECK_RETRIES=3 failed checks";

capabilityTest({
  name:
    "dashboard in Chromium at 1366 px: every section fits the width, long errors wrap, sparklines per item",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const sections = fullStatus();
    let k = 1;
    const relays = sections.relays;
    sections.relays = () =>
      (relays() as Record<string, unknown>[]).map((r) => ({
        ...r,
        bytesToTarget: (r.bytesToTarget as number) * k * k,
        ...(r.id === "RELAY_2"
          ? { target: "pool.some-really-long-hostname.example.internal.corp:3333", lastError: LONG_ERROR }
          : {}),
      }));
    const states = ["RUNNING", "ERROR", "BACKOFF", "DISABLED", "WAITING_DATA"];
    sections.ntrip_stations = () =>
      Array.from({ length: 60 }, (_, i) => ({
        id: `ST${String(i).padStart(3, "0")}`,
        state: states[i % states.length],
        stateSeconds: i * 37,
        source: { host: "caster.example.com", port: 2101, mount: `MOUNT${i}`, path: "tunnel", version: 2 },
        destination: { host: "127.0.0.1", port: 2102, mount: `DST${i}`, path: "direct", version: 1 },
        bytesIn: i * 1_000_000,
        bytesOut: i * 999_000,
        frames: i * 10,
        lastFrameAgeSeconds: i % 7,
        crcErrors: 0,
        ggaSent: 3,
        lastError: i % 5 === 1 ? { side: "source", kind: "unauthorized", message: "bad credentials" } : null,
        nextRetryAt: i % 5 === 1 ? new Date(WALL + 1_800_000).toISOString() : null,
      }));
    const registry = new ServiceRegistry(WALL - 11_520_000);
    for (const [name, fn] of Object.entries(sections)) registry.registerStatus(name, fn);
    const clock = new ManualClock(0, WALL);
    const sampler = new ThroughputSampler(() => statusCounters(registry.status()), clock);
    sampler.start();
    for (k = 2; k < 40; k++) clock.advance(10_000);
    const app = createAdminApp({ registry, version: "test", clock, throughput: sampler });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    let browser: Awaited<ReturnType<typeof startChromium>> | undefined;
    try {
      browser = await startChromium(WIDTH, HEIGHT);
      await browser.open(`http://127.0.0.1:${server.addr.port}/`, "ntrip_caster");
      const seen = await browser.evaluate<{
        text: string;
        scrollWidth: number;
        innerWidth: number;
        widest: number;
        sparks: Record<string, number>;
        error: { lines: number; right: number };
      }>(`(() => {
        const sparks = {};
        for (const id of ["relays-table", "proxies-table", "tunnels-table", "mappings-table", "routes-table", "caster-table"]) {
          sparks[id] = document.querySelectorAll("#" + id + " svg.spark").length;
        }
        const err = [...document.querySelectorAll("#relays-table .err")].find((e) => e.innerText.includes("SOCKS"));
        const r = err.getBoundingClientRect();
        const line = parseFloat(getComputedStyle(err).lineHeight) || 18;
        return {
          text: document.body.innerText,
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
          widest: Math.max(...[...document.querySelectorAll("table, section, p, li")].map((e) => e.getBoundingClientRect().right)),
          sparks,
          error: { lines: Math.round(r.height / line), right: r.right },
        };
      })()`);
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await browser.screenshot(`${ARTIFACTS}all-sections-1366x900.png`);
      await browser.screenshot(`${ARTIFACTS}all-sections-full-page-1366.png`, true);
      console.log(
        `dashboard screenshots: ${ARTIFACTS}all-sections-1366x900.png, ${ARTIFACTS}all-sections-full-page-1366.png`,
      );

      assert(
        seen.scrollWidth <= seen.innerWidth,
        `no sideways scroll: ${seen.scrollWidth} > ${seen.innerWidth}`,
      );
      assert(seen.widest <= WIDTH, `every table and paragraph ends inside the window (${seen.widest})`);
      for (
        const title of [
          "problems",
          "Configuration",
          "Relays",
          "Proxies (SOCKS5, HTTP)",
          "WireGuard tunnels",
          "Port mappings (rps)",
          "Routes (rpc)",
          "mwgp server (mwgp_server)",
          "NTRIP stations",
          "NTRIP caster",
          "something new",
        ]
      ) {
        assertStringIncludes(seen.text, title);
      }
      assertStringIncludes(seen.text, "up 3 h 18 min", "uptime in words (3 h 12 min + 38 samples)");
      assertStringIncludes(seen.text, "GiB");
      assertStringIncludes(seen.text, "60 stations");
      assertEquals(seen.sparks, {
        "relays-table": 4,
        "proxies-table": 2,
        "tunnels-table": 2,
        "mappings-table": 1,
        "routes-table": 1,
        "caster-table": 0,
      });
      assert(seen.error.lines >= 2, `the long error wraps (${seen.error.lines} lines)`);
      assert(seen.error.right <= WIDTH, "the long error ends inside the window");
    } finally {
      await browser?.close();
      sampler.stop();
      await server.shutdown();
    }
  },
}, chromiumUnavailable());
