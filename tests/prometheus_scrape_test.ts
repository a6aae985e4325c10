/**
 * A real Prometheus (Debian `prometheus`) scrapes a real `wgedge serve`'s admin /metrics: the scrape is
 * `up == 1` through Prometheus's HTTP API, a relay byte counter wgedge moved is stored with its labels (a
 * port-range relay's listen label shows the range), and `promtool check metrics` accepts the same text.
 * Missing prometheus/promtool: ignored locally, a failure in CI (WGEDGE_REQUIRE_INTEROP=1).
 */
import { capabilityTest, DENO_JSON, MAIN_TS, onPath, waitFor } from "./helpers/interop.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort, freePortRange } from "./helpers/ports.ts";
import { PROMTOOL_MISSING, promtoolCheck } from "./helpers/promtool.ts";
import { within } from "./helpers/tcp.ts";

const MISSING = onPath("prometheus")
  ? PROMTOOL_MISSING
  : "prometheus not installed (Debian package prometheus)";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A child process whose output is collected (for the failure message) and which stop() ends and awaits. */
function spawn(cmd: string, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).spawn();
  let out = "";
  const drains = [child.stdout, child.stderr].map(async (s) => {
    for await (const chunk of s) out = (out + dec.decode(chunk)).slice(-20_000);
  });
  return {
    output: () => out,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
      await Promise.allSettled(drains);
    },
  };
}

/** GET with a bound; the body as text, or undefined while the server is not up yet. */
async function get(url: string): Promise<string | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return r.ok ? await r.text() : (await r.body?.cancel(), undefined);
  } catch {
    return undefined;
  }
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(promPort: number, q: string): Promise<VectorSample[]> {
  const text = await get(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (text === undefined) return [];
  const j = JSON.parse(text);
  return j.status === "success" ? j.data.result : [];
}

capabilityTest({
  name: "prometheus: scrapes wgedge serve's /metrics (up == 1, relay counters stored); promtool accepts it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "wgedge-prom-" });
    const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const echoPort = (echo.addr as Deno.NetAddr).port;
    const echoing = (async () => {
      for await (const c of echo) c.readable.pipeTo(c.writable).catch(() => {});
    })().catch(() => {});
    const admin = freePort(), inTcp = freePort(), promPort = freePort(), rangeFirst = freePortRange(3);
    const envFile = `${dir}/wgedge.env`;
    await Deno.writeTextFile(
      envFile,
      [
        `WGEDGE_ADMIN_LISTEN=127.0.0.1:${admin}`,
        `RELAY_1="${inTcp};${echoPort};127.0.0.1;TCP;bind=127.0.0.1"`,
        `RELAY_2="${rangeFirst}-${rangeFirst + 2};${echoPort}-${echoPort + 2};127.0.0.1;UDP;bind=127.0.0.1"`,
        "",
      ].join("\n"),
    );
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "scrape_configs:",
        "  - job_name: wgedge",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${admin}"]`,
        "",
      ].join("\n"),
    );
    const serve = spawn(Deno.execPath(), [
      "run",
      "-A",
      "--config",
      DENO_JSON,
      MAIN_TS,
      "serve",
      "--env-file",
      envFile,
    ]);
    let prom: ReturnType<typeof spawn> | undefined;
    try {
      await waitFor(
        async () => (await get(`http://127.0.0.1:${admin}/healthz`)) !== undefined,
        "wgedge serve up",
      );
      // Traffic through RELAY_1 so its byte counters are non-zero.
      const c = await within(Deno.connect({ hostname: "127.0.0.1", port: inTcp }), "connect to the relay");
      await within(c.write(enc.encode("hello prometheus")), "write");
      const buf = new Uint8Array(64);
      assertEquals(dec.decode(buf.subarray(0, (await within(c.read(buf), "echo")) ?? 0)), "hello prometheus");
      c.close();

      prom = spawn("prometheus", [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/tsdb`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ]);
      let up: VectorSample[] = [];
      await waitFor(
        async () => {
          up = await query(promPort, 'up{job="wgedge"}');
          return up.length === 1 && up[0].value[1] === "1";
        },
        `Prometheus reports up == 1 for job wgedge (last answer ${JSON.stringify(up)})`,
        400,
        250,
      );
      assertEquals(up[0].metric.instance, `127.0.0.1:${admin}`);

      let bytes: VectorSample[] = [];
      await waitFor(
        async () => {
          bytes = await query(promPort, 'wgedge_relay_bytes_total{job="wgedge",direction="to_target"}');
          return bytes.length === 2;
        },
        "relay byte counters stored by Prometheus",
        400,
        250,
      );
      const tcp = bytes.find((s) => s.metric.relay === "RELAY_1")!;
      assertEquals(Number(tcp.value[1]), "hello prometheus".length);
      const range = bytes.find((s) => s.metric.relay === "RELAY_2")!;
      assertEquals(range.metric.listen, `127.0.0.1:${rangeFirst}-${rangeFirst + 2}`);

      const text = await get(`http://127.0.0.1:${admin}/metrics`);
      assert(text !== undefined && text.includes("wgedge_relay_up"), "metrics text fetched");
      await promtoolCheck(text);
    } catch (e) {
      throw new Error(
        `${
          (e as Error).message
        }\n--- wgedge serve ---\n${serve.output()}\n--- prometheus ---\n${prom?.output()}`,
      );
    } finally {
      await prom?.stop();
      await serve.stop();
      echo.close();
      await echoing;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
}, MISSING);
