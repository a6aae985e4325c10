/** RELAY_N and the seed-002 variables: good values parse, bad ones fail naming the variable and what was expected. */
import { parseRelayConfig, parseRelayLine, RELAY_DEFAULTS } from "../src/config/relay.ts";
import { ConfigError, ConfigErrors, loadConfig } from "../src/config/mod.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";

function errorsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    if (e instanceof ConfigError) return [e.message];
    throw e;
  }
  throw new Error("expected ConfigErrors");
}

Deno.test("relay config: seed 002 format, gaps in numbering, options and globals", () => {
  const cfg = parseRelayConfig({
    RELAY_1: "50025;25;btc.trustpool.cc;TCP",
    RELAY_4: " 51820 ; 51820 ; vpn.example.com ; udp ; udp_timeout=30 ; max_flows=100 ",
    RELAY_10: "50443;443;[2001:db8::1];TCP;bind=127.0.0.1;proxy_protocol=v2;via=wg:office",
    RELAY_3: "",
    CONNECT_TIMEOUT: "5",
    KEEPALIVE_IDLE: "60",
    ENABLE_LOGGING: "n",
    ENABLE_HEALTH_CHECK: "y",
    HEALTH_CHECK_RETRIES: "5",
    UNRELATED: "x",
  }, ["60000;22;ssh.example;TCP"]);
  assertEquals(cfg.relays.map((r) => r.id), ["RELAY_1", "RELAY_4", "RELAY_10", "--relay #1"]);
  assertEquals(cfg.relays[1], {
    id: "RELAY_4",
    inPort: 51820,
    outPort: 51820,
    outHost: "vpn.example.com",
    protocol: "udp",
    udpTimeoutSec: 30,
    maxFlows: 100,
  });
  assertEquals(cfg.relays[2].outHost, "2001:db8::1");
  assertEquals(cfg.relays[2].bind, "127.0.0.1");
  assertEquals(cfg.relays[2].proxyProtocol, "v2");
  assertEquals(cfg.relays[2].via, "wg:office");
  assertEquals(cfg.options.connectTimeoutMs, 5000);
  assertEquals(cfg.options.keepAliveIdleSec, 60);
  assertEquals(cfg.options.logging, false);
  assertEquals(cfg.options.healthCheck, true);
  assertEquals(cfg.options.healthCheckRetries, 5);
  assertEquals(parseRelayConfig({}).options, RELAY_DEFAULTS);
});

Deno.test("relay config: bad values name the variable and what was expected", () => {
  const errs = errorsOf(() =>
    parseRelayConfig({
      RELAY_1: "0;25;host.example;TCP",
      RELAY_2: "50025;65536;host.example;TCP",
      RELAY_3: "50026;25;host.example;SCTP",
      RELAY_4: "50027;25;bad host;TCP",
      RELAY_5: "50028;25",
      RELAY_6: "50029;25;a.example;TCP",
      RELAY_7: "50029;26;b.example;TCP",
      RELAY_8: "50030;25;a.example;TCP;colour=blue",
      RELAY_9: "50031;25;a.example;UDP;proxy_protocol=v1",
      RELAY_11: "50032;25;a.example;TCP;via=http://proxy:3128",
      CONNECT_TIMEOUT: "soon",
      ENABLE_LOGGING: "maybe",
    })
  );
  const has = (s: string) =>
    assert(errs.some((e) => e.includes(s)), `missing "${s}" in:\n${errs.join("\n")}`);
  has('RELAY_1: in_port: expected a port number 1..65535, got "0"');
  has('RELAY_2: out_port: expected a port number 1..65535, got "65536"');
  has('RELAY_3: protocol: expected TCP or UDP, got "SCTP"');
  has('RELAY_4: out_host: expected a host name or IP address, got "bad host"');
  has('RELAY_5: expected "in_port[-last];out_port[-last];out_host;TCP|UDP');
  has('RELAY_7: in_port: expected an in_port not already used by RELAY_6 for TCP, got "50029"');
  has("RELAY_8: colour: expected a known option");
  has("RELAY_9: proxy_protocol: expected proxy_protocol only on TCP relays");
  has("RELAY_11: via: expected wg:NAME or socks5://");
  has('CONNECT_TIMEOUT: expected an integer 1..3600, got "soon"');
  has('ENABLE_LOGGING: expected y or n (yes/no, true/false, 1/0), got "maybe"');
  assertEquals(errs.length, 11);
});

Deno.test("relay config: the same in_port on TCP and UDP is fine; errors never echo a proxy password", () => {
  const cfg = parseRelayConfig({ RELAY_1: "5000;5000;a.example;TCP", RELAY_2: "5000;5000;a.example;UDP" });
  assertEquals(cfg.relays.length, 2);
  const errs = errorsOf(() => parseRelayLine("1;2;h.example;TCP;via=socks5://u:hunter2@proxy", "RELAY_1"));
  assert(errs.every((e) => !e.includes("hunter2")), errs.join("\n"));
  const errs2 = errorsOf(() => parseRelayLine("1;2;socks5://u:hunter2@proxy:1", "RELAY_1"));
  assert(errs2.every((e) => !e.includes("hunter2")), errs2.join("\n"));
});

Deno.test("relay config: through the loader, env-file errors carry file and line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-relaycfg-" });
  try {
    const file = `${dir}/relay.env`;
    await Deno.writeTextFile(
      file,
      `# relays\nRELAY_1="50025;25;pool.example;TCP"\nRELAY_2="50025;26;x.example;TCP"\n`,
    );
    let msg = "";
    try {
      await loadConfig({ env: {}, flags: {}, envFile: file });
    } catch (e) {
      msg = (e as Error).message;
    }
    assertStringIncludes(msg, `${file}:3: RELAY_2 in_port: expected an in_port not already used by RELAY_1`);
    const ok = await loadConfig({
      env: { RELAY_2: "50026;26;x.example;TCP" },
      flags: { relay: ["7000;7;h.example;UDP"] },
      envFile: file,
    });
    assertEquals(ok.config.relay?.relays.map((r) => r.id), ["RELAY_1", "RELAY_2", "--relay #1"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay config: RELAY_X and relay_2 are warned about, in the env file and the environment", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-relaycfg-" });
  try {
    const file = `${dir}/relay.env`;
    await Deno.writeTextFile(
      file,
      `RELAY_1=50025;25;pool.example;TCP\nRELAY_X=50026;26;x.example;TCP\nrelay_2=1;2;h;TCP\n`,
    );
    const fromFile = await loadConfig({ env: {}, flags: {}, envFile: file });
    assertEquals(fromFile.config.relay?.relays.map((r) => r.id), ["RELAY_1"]);
    const expected = "not a relay variable (expected RELAY_<number>, e.g. RELAY_1; typo?); ignored";
    assertEquals(fromFile.warnings, [
      `${file}:2: RELAY_X: ${expected}`,
      `${file}:3: relay_2: ${expected}`,
    ]);
    const fromEnv = await loadConfig({
      env: { RELAY_1: "50025;25;pool.example;TCP", RELAY_WEB: "80;80;h;TCP", Relay_3: "81;81;h;TCP" },
      flags: {},
    });
    assertEquals(fromEnv.warnings, [`RELAY_WEB: ${expected}`, `Relay_3: ${expected}`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay config: an env-file setting a flag overrides is not reported as unknown (--logging n)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-relaycfg-" });
  try {
    const file = `${dir}/relay.env`;
    await Deno.writeTextFile(
      file,
      `RELAY_1=50025;25;pool.example;TCP\nENABLE_LOGGING=y\nCONNECT_TIMEOUT=5\n`,
    );
    const { config, warnings } = await loadConfig({
      env: {},
      flags: { logging: "n", "connect-timeout": "7" },
      envFile: file,
    });
    assertEquals(config.relay?.options.logging, false);
    assertEquals(config.relay?.options.connectTimeoutMs, 7000);
    assertEquals(warnings, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay config: 20 000 random and mutated RELAY_N values only ever raise ConfigError", () => {
  const seeds = [
    "50025;25;btc.trustpool.cc;TCP",
    "1;2;[::1];udp;udp_timeout=5;bind=::1",
    "9;9;h;TCP;via=socks5://u:p@h:1",
  ];
  const alphabet = ";=:/@[]. \t\n\u0000\u00ffabcTCPUDP0123456789-_%";
  let state = 12345;
  const rnd = (n: number) => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state % n;
  };
  let ok = 0, rejected = 0;
  for (let i = 0; i < 20_000; i++) {
    let v: string;
    if (i % 2 === 0) {
      const base = seeds[rnd(seeds.length)].split("");
      for (let m = 0; m < 1 + rnd(4); m++) {
        const pos = rnd(base.length + 1);
        const op = rnd(3);
        if (op === 0) base.splice(pos, 1);
        else if (op === 1) base.splice(pos, 0, alphabet[rnd(alphabet.length)]);
        else base[pos] = alphabet[rnd(alphabet.length)];
      }
      v = base.join("");
    } else {
      v = Array.from({ length: rnd(60) }, () => alphabet[rnd(alphabet.length)]).join("");
    }
    try {
      const spec = parseRelayLine(v, "RELAY_1");
      assert(spec.inPort >= 1 && spec.inPort <= 65535 && spec.outPort >= 1 && spec.outPort <= 65535);
      assert(spec.protocol === "tcp" || spec.protocol === "udp");
      ok++;
    } catch (e) {
      if (!(e instanceof ConfigError) && !(e instanceof ConfigErrors)) throw e;
      rejected++;
    }
  }
  assert(ok > 0 && rejected > 0, `ok=${ok} rejected=${rejected}`);
});
