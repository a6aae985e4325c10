/**
 * Admin API: Prometheus text that a strict parser and `promtool check metrics` accept, bearer/basic token
 * enforcement, the dashboard, and no secret in any output.
 */
import { createAdminApp } from "../src/services/admin/app.ts";
import { MetricsRegistry } from "../src/services/admin/metrics.ts";
import { parseAdminListen, startAdminServer } from "../src/services/admin/server.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { RelayService } from "../src/services/relay/service.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { configureLogging } from "../src/util/log.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { capabilityTest } from "./helpers/interop.ts";
import { PROMTOOL_MISSING, promtoolCheck } from "./helpers/promtool.ts";

configureLogging({ level: "error" });

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict parser for the Prometheus text format 0.0.4: every sample belongs to a family announced by HELP
 * and TYPE lines before it, names and label names match the grammar, label values use only the three escapes,
 * no duplicate series, counters are >= 0. Throws on the first violation with the line number.
 */
function parsePrometheusStrict(
  text: string,
): { families: Map<string, { type: string; help: string }>; samples: Sample[] } {
  const families = new Map<string, { type: string; help: string }>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  if (text !== "" && !text.endsWith("\n")) throw new Error("output must end with a newline");
  const lines = text.split("\n");
  lines.pop();
  let current: string | undefined;
  lines.forEach((line, i) => {
    const at = `line ${i + 1}: ${line}`;
    if (line.startsWith("# HELP ")) {
      const m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) throw new Error(`bad HELP, ${at}`);
      if (families.has(m[1])) throw new Error(`family announced twice, ${at}`);
      if (/\\[^\\n]/.test(m[2].replace(/\\\\/g, ""))) throw new Error(`bad escape in HELP, ${at}`);
      families.set(m[1], { type: "", help: m[2] });
      current = m[1];
      return;
    }
    if (line.startsWith("# TYPE ")) {
      const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (!m || m[1] !== current) throw new Error(`bad TYPE, ${at}`);
      const f = families.get(m[1])!;
      if (f.type) throw new Error(`TYPE twice, ${at}`);
      f.type = m[2];
      return;
    }
    if (line.startsWith("#") || line === "") throw new Error(`unexpected line, ${at}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad sample, ${at}`);
    if (m[1] !== current || !families.get(current)?.type) throw new Error(`sample outside its family, ${at}`);
    const labels: Record<string, string> = {};
    if (m[3] !== undefined) {
      let rest = m[3];
      while (rest.length > 0) {
        const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/.exec(rest);
        if (!lm) throw new Error(`bad label set, ${at}`);
        if (lm[1] in labels) throw new Error(`duplicate label, ${at}`);
        labels[lm[1]] = lm[2].replace(/\\(["\\n])/g, (_s, c) => (c === "n" ? "\n" : c));
        rest = rest.slice(lm[0].length);
      }
    }
    const v = m[4];
    if (!/^([+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)|NaN|[+-]Inf)$/.test(v)) {
      throw new Error(`bad value, ${at}`);
    }
    const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v);
    if (families.get(current)!.type === "counter" && !(value >= 0)) {
      throw new Error(`negative counter, ${at}`);
    }
    const key = m[1] + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`duplicate series, ${at}`);
    seen.add(key);
    samples.push({ name: m[1], labels, value });
  });
  for (const [name, f] of families) if (!f.type) throw new Error(`family ${name} has no TYPE`);
  return { families, samples };
}

/** A registry whose text has every escape the format knows (HELP and label values) and NaN. */
function escapingMetrics(): string {
  const m = new MetricsRegistry();
  const c = m.counter("test_events_total", 'Events with a \\ backslash\nand a newline "quoted".', ["kind"]);
  c.inc({ kind: 'a "quoted" \\ back\nslash' }, 3);
  c.inc({ kind: "plain" });
  const g = m.gauge("test_temperature", "A gauge.");
  g.set({}, -1.5);
  m.gauge("test_special", "NaN and infinities.", ["v"]).set({ v: "nan" }, NaN);
  return m.render();
}

Deno.test("metrics: escaping of HELP and label values round-trips through a strict parser", () => {
  const m = new MetricsRegistry();
  const c = m.counter("test_events_total", "x", ["kind"]);
  const text = escapingMetrics();
  const { families, samples } = parsePrometheusStrict(text);
  assertEquals(families.get("test_events_total")?.type, "counter");
  assertEquals(
    families.get("test_events_total")?.help,
    'Events with a \\\\ backslash\\nand a newline "quoted".',
  );
  assertEquals(
    samples.find((s) => s.labels.kind?.startsWith("a "))?.labels.kind,
    'a "quoted" \\ back\nslash',
  );
  assertEquals(samples.find((s) => s.labels.kind?.startsWith("a "))?.value, 3);
  assertEquals(samples.find((s) => s.name === "test_temperature")?.value, -1.5);
  assert(Number.isNaN(samples.find((s) => s.name === "test_special")!.value));
  assertThrows(() => m.counter("bad-name", "x"), "invalid metric name");
  assertThrows(() => m.counter("ok_total", "x", ["__reserved"]), "invalid label name");
  assertThrows(() => c.inc({ kind: "x" }, -1), "cannot decrease");
  assertThrows(() => c.inc({ other: "x" }), "expected labels");
});

const PASSWORD = "pr0xy-PASSWORD-xyz";
const TOKEN = "admin-token-0123456789abcdef";
const PRIVATE_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

async function fixture() {
  const registry = new ServiceRegistry();
  const relays = new RelayService({ registry });
  const inPort = freePort();
  await relays.apply(
    parseRelayConfig({
      RELAY_1: `${inPort};9;127.0.0.1;TCP;via=socks5://user:${PASSWORD}@127.0.0.1:1080`,
      ENABLE_LOGGING: "n",
    }),
    true,
  );
  // A careless service that puts secrets in its status: the admin layer must still hide them.
  registry.registerStatus("tunnels", () => [{
    name: "wg0<script>alert(1)</script>",
    privateKey: PRIVATE_KEY,
    peers: [{ endpoint: `socks5://bob:${PASSWORD}@10.0.0.1:1080`, presharedKey: PRIVATE_KEY }],
    apiToken: TOKEN,
  }]);
  return { registry, relays };
}

function assertNoSecrets(text: string, where: string) {
  for (const s of [PASSWORD, TOKEN, PRIVATE_KEY]) assert(!text.includes(s), `${where} leaks a secret`);
}

Deno.test("admin: healthz, metrics, status and dashboard without a token on loopback; no secrets", async () => {
  const { registry, relays } = await fixture();
  try {
    const app = createAdminApp({ registry, version: "test" });
    const health = await app.request("/healthz");
    assertEquals(health.status, 200);
    const metrics = await app.request("/metrics");
    assertEquals(metrics.status, 200);
    assertStringIncludes(metrics.headers.get("content-type") ?? "", "text/plain; version=0.0.4");
    const text = await metrics.text();
    const { samples } = parsePrometheusStrict(text);
    const up = samples.find((s) => s.name === "wgedge_relay_up");
    assertEquals(up?.labels.relay, "RELAY_1");
    assertEquals(up?.value, 1);
    assert(samples.some((s) => s.name === "wgedge_relay_bytes_total" && s.labels.direction === "to_target"));
    assertNoSecrets(text, "/metrics");

    const status = await app.request("/api/v1/status");
    assertEquals(status.status, 200);
    const statusText = await status.text();
    assertNoSecrets(statusText, "/api/v1/status");
    const json = JSON.parse(statusText);
    assertEquals(json.relays[0].id, "RELAY_1");
    assertEquals(json.relays[0].via, "socks5://127.0.0.1:1080");
    assertEquals(json.tunnels[0].privateKey, "[redacted]");

    const page = await app.request("/");
    assertEquals(page.status, 200);
    assertStringIncludes(page.headers.get("content-type") ?? "", "text/html");
    const html = await page.text();
    assertNoSecrets(html, "dashboard");
    assertStringIncludes(html, "RELAY_1");
    assertStringIncludes(html, 'http-equiv="refresh"');
    assert(!html.includes("<script>alert(1)</script>"), "status values are HTML-escaped");
    assertStringIncludes(html, "&lt;script&gt;");
    assertEquals((await app.request("/nope")).status, 404);
  } finally {
    await relays.stop();
  }
});

capabilityTest({
  name: "metrics: promtool check metrics accepts the escaping registry's text and the admin /metrics",
  async fn() {
    await promtoolCheck(escapingMetrics());
    const { registry, relays } = await fixture();
    try {
      const text = await (await createAdminApp({ registry, version: "test" }).request("/metrics")).text();
      assertStringIncludes(text, "wgedge_relay_up");
      await promtoolCheck(text);
    } finally {
      await relays.stop();
    }
  },
}, PROMTOOL_MISSING);

capabilityTest({
  name: "metrics: promtool check metrics refuses broken text (the check can fail)",
  async fn() {
    let err = "";
    await promtoolCheck("# TYPE x counter\nx{a= 1\n").catch((e) => err = String(e));
    assertStringIncludes(err, "promtool check metrics (exit 1)");
  },
}, PROMTOOL_MISSING);

Deno.test("admin: token enforced (bearer or basic), healthz stays open, errors carry no secret", async () => {
  const { registry, relays } = await fixture();
  try {
    const app = createAdminApp({ registry, token: TOKEN });
    assertEquals((await app.request("/healthz")).status, 200);
    for (const path of ["/metrics", "/api/v1/status", "/"]) {
      const none = await app.request(path);
      assertEquals(none.status, 401, `${path} without token`);
      assertStringIncludes(none.headers.get("www-authenticate") ?? "", "Basic");
      assertNoSecrets(await none.text(), "401 body");
      const wrong = await app.request(path, { headers: { authorization: `Bearer ${TOKEN}x` } });
      assertEquals(wrong.status, 401, `${path} with a wrong token`);
      const prefix = await app.request(path, { headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` } });
      assertEquals(prefix.status, 401, `${path} with a prefix of the token`);
      const ok = await app.request(path, { headers: { authorization: `Bearer ${TOKEN}` } });
      assertEquals(ok.status, 200, `${path} with the token`);
      assertNoSecrets(await ok.text(), path);
      const basic = await app.request(path, {
        headers: { authorization: `Basic ${btoa(`admin:${TOKEN}`)}` },
      });
      assertEquals(basic.status, 200, `${path} with basic auth`);
      await basic.body?.cancel();
    }
  } finally {
    await relays.stop();
  }
});

Deno.test("admin server: refuses a non-loopback bind without a token; serves with one", async () => {
  const registry = new ServiceRegistry();
  assertThrows(() => startAdminServer("0.0.0.0:0", { registry }), "WGEDGE_ADMIN_TOKEN");
  assertThrows(() => parseAdminListen("nope"), "WGEDGE_ADMIN_LISTEN");
  const server = startAdminServer("0.0.0.0:0", { registry, token: TOKEN });
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    const denied = await fetch(`${url}/api/v1/status`);
    assertEquals(denied.status, 401);
    await denied.body?.cancel();
    const ok = await fetch(`${url}/api/v1/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assertEquals(ok.status, 200);
    assertEquals((await ok.json()).service, "wgedge");
  } finally {
    await server.shutdown();
  }
  const local = startAdminServer("127.0.0.1:0", { registry });
  try {
    const r = await fetch(`http://127.0.0.1:${local.addr.port}/healthz`);
    assertEquals(await r.text(), "ok\n");
  } finally {
    await local.shutdown();
  }
});
