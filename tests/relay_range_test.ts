/**
 * Port-range relays (`RELAY_N="A-B;C-D;host;TCP|UDP"`) on real loopback sockets: port A+i reaches port C+i
 * for TCP and UDP on the first, a middle and the last port of the range; status shows one relay with the
 * range; a reload that changes only another relay leaves the range's live connection alone; one entry in
 * /metrics and on the dashboard; the health check probes the first target port; config errors.
 */
import { RelayService } from "../src/services/relay/service.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { ConfigErrors } from "../src/config/errors.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { createAdminApp } from "../src/services/admin/app.ts";
import { configureLogging } from "../src/util/log.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort, freePortRange } from "./helpers/ports.ts";
import { within } from "./helpers/tcp.ts";
import { waitFor } from "./helpers/wait.ts";
import { ManualClock } from "../src/util/clock.ts";

configureLogging({ level: "error" });

const enc = new TextEncoder();
const dec = new TextDecoder();
const N = 10;
const PROBED = [0, 5, N - 1];

/** TCP and UDP servers on 127.0.0.1 ports first..first+N-1 that answer "<port>:<payload>". */
function targets(first: number) {
  const listeners: Deno.Listener[] = [];
  const udp: Deno.DatagramConn[] = [];
  const conns = new Set<Deno.Conn>();
  const loops: Promise<unknown>[] = [];
  for (let port = first; port < first + N; port++) {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    listeners.push(l);
    loops.push(
      (async () => {
        for await (const c of l) {
          conns.add(c);
          (async () => {
            const buf = new Uint8Array(256);
            for (;;) {
              const n = await c.read(buf).catch(() => null);
              if (n === null) break;
              await c.write(enc.encode(`${port}:${dec.decode(buf.subarray(0, n))}`)).catch(() => {});
            }
            if (conns.delete(c)) c.close(); // else close() already closed it
          })().catch(() => {});
        }
      })().catch(() => {}),
    );
    const u = Deno.listenDatagram({ hostname: "127.0.0.1", port, transport: "udp" });
    udp.push(u);
    loops.push(
      (async () => {
        for (;;) {
          const [data, from] = await u.receive();
          await u.send(enc.encode(`${port}:${dec.decode(data)}`), from);
        }
      })().catch(() => {}),
    );
  }
  return {
    async close() {
      for (const l of listeners) l.close();
      for (const u of udp) u.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await Promise.allSettled(loops);
    },
  };
}

async function tcpAsk(port: number, text: string): Promise<{ answer: string; conn: Deno.Conn }> {
  const conn = await within(Deno.connect({ hostname: "127.0.0.1", port }), `connect ${port}`);
  await within(conn.write(enc.encode(text)), `write ${port}`);
  const buf = new Uint8Array(256);
  const n = await within(conn.read(buf), `TCP answer via ${port}`);
  return { answer: dec.decode(buf.subarray(0, n ?? 0)), conn };
}

/** One datagram, answered within the bound (loopback at this rate loses nothing). */
async function udpAsk(port: number, text: string): Promise<string> {
  const c = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    await c.send(enc.encode(text), { transport: "udp", hostname: "127.0.0.1", port });
    const [data] = await within(c.receive(), `UDP answer via ${port}`);
    return dec.decode(data);
  } finally {
    c.close();
  }
}

Deno.test("relay range: TCP and UDP on the first, a middle and the last port; one status entry; reload", async () => {
  const inFirst = freePortRange(N);
  const outFirst = freePortRange(N);
  const single = freePort();
  const servers = targets(outFirst);
  const range = `${inFirst}-${inFirst + N - 1};${outFirst}-${outFirst + N - 1};127.0.0.1`;
  const env = {
    RELAY_1: `${range};TCP;bind=127.0.0.1`,
    RELAY_2: `${range};UDP;bind=127.0.0.1`,
    RELAY_3: `${single};${outFirst};127.0.0.1;TCP;bind=127.0.0.1`,
    ENABLE_LOGGING: "n",
  };
  const svc = new RelayService();
  const open: Deno.Conn[] = [];
  try {
    await svc.apply(parseRelayConfig(env), true);
    for (const i of PROBED) {
      const { answer, conn } = await tcpAsk(inFirst + i, `tcp${i}`);
      open.push(conn);
      assertEquals(answer, `${outFirst + i}:tcp${i}`);
      assertEquals(await udpAsk(inFirst + i, `udp${i}`), `${outFirst + i}:udp${i}`);
    }
    const status = svc.status();
    assertEquals(status.length, 3, "one status entry per range relay");
    const tcp = status.find((s) => s.id === "RELAY_1")!;
    const udp = status.find((s) => s.id === "RELAY_2")!;
    assertEquals(tcp.listen, `127.0.0.1:${inFirst}-${inFirst + N - 1}`);
    assertEquals(tcp.target, `127.0.0.1:${outFirst}-${outFirst + N - 1}`);
    assertEquals([tcp.state, tcp.total, tcp.active], ["listening", 3, 3]);
    assertEquals(tcp.bytesToTarget, "tcp0tcp5tcp9".length);
    assertEquals([udp.state, udp.total, udp.packetsToTarget, udp.packetsToClient], ["listening", 3, 3, 3]);

    // Reload changing only RELAY_3: the ranges are unchanged and their connections keep working.
    const r = await svc.apply(parseRelayConfig({ ...env, RELAY_3: env.RELAY_3 + ";proxy_protocol=v1" }));
    assertEquals([r.stopped, r.started, r.unchanged.sort()], [["RELAY_3"], ["RELAY_3"], [
      "RELAY_1",
      "RELAY_2",
    ]]);
    await within(open[1].write(enc.encode("again")), "write after reload");
    const buf = new Uint8Array(64);
    const n = await within(open[1].read(buf), "answer after reload");
    assertEquals(dec.decode(buf.subarray(0, n ?? 0)), `${outFirst + 5}:again`);

    // Removing the range closes every one of its ports.
    await svc.apply(parseRelayConfig({ RELAY_3: env.RELAY_3, ENABLE_LOGGING: "n" }));
    for (const i of PROBED) {
      const l = Deno.listen({ hostname: "127.0.0.1", port: inFirst + i }); // bindable again
      l.close();
    }
  } finally {
    for (const c of open) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await svc.stop();
    await servers.close();
  }
});

Deno.test("relay range: a busy port fails the whole range and releases the ports it bound", async () => {
  const inFirst = freePortRange(N);
  const busy = Deno.listen({ hostname: "127.0.0.1", port: inFirst + 7 });
  const svc = new RelayService();
  try {
    const cfg = parseRelayConfig({
      RELAY_1: `${inFirst}-${inFirst + N - 1};${inFirst}-${inFirst + N - 1};127.0.0.1;TCP;bind=127.0.0.1`,
      ENABLE_LOGGING: "n",
    });
    const r = await svc.apply(cfg);
    assert(r.failed.RELAY_1?.includes(`${inFirst + 7}`), `failure names the busy port: ${r.failed.RELAY_1}`);
    const s = svc.status();
    assertEquals([s.length, s[0].state, s[0].listen], [
      1,
      "error",
      `127.0.0.1:${inFirst}-${inFirst + N - 1}`,
    ]);
    Deno.listen({ hostname: "127.0.0.1", port: inFirst }).close(); // released
  } finally {
    busy.close();
    await svc.stop();
  }
});

function problems(env: Record<string, string>): string[] {
  try {
    parseRelayConfig(env);
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  throw new Error("expected ConfigErrors");
}

Deno.test("relay range config: parses, and refuses unequal, reversed, out-of-range, too-long and overlapping ranges", () => {
  const cfg = parseRelayConfig({
    RELAY_1: "50000-50099;60000-60099;host;UDP",
    RELAY_2: "50100;60100;host;TCP",
  });
  assertEquals([cfg.relays[0].inPort, cfg.relays[0].outPort, cfg.relays[0].portCount], [50000, 60000, 100]);
  assertEquals(cfg.relays[1].portCount, undefined);

  const cases: [string, string][] = [
    [
      "50000-50099;60000-60098;h;TCP",
      `RELAY_1: out_port: expected a range as long as in_port 50000-50099 (100 ports)`,
    ],
    ["50000-50099;60000;h;TCP", `RELAY_1: out_port: expected a range as long as in_port`],
    ["50099-50000;60000-60099;h;TCP", `RELAY_1: in_port: expected a range FIRST-LAST with FIRST <= LAST`],
    ["65000-65536;1000-1536;h;TCP", `RELAY_1: in_port: expected ports within 1..65535`],
    ["0-9;10-19;h;TCP", `RELAY_1: in_port: expected ports within 1..65535`],
    [
      "1000-3000;11000-13000;h;TCP",
      `RELAY_1: in_port: expected a range of at most 1000 ports (1000-3000 has 2001)`,
    ],
    ["1-2-3;4;h;TCP", `RELAY_1: in_port: expected a port number 1..65535 or a range FIRST-LAST`],
  ];
  for (const [line, want] of cases) {
    const got = problems({ RELAY_1: line });
    assert(got.some((m) => m.includes(want)), `${line}: ${JSON.stringify(got)} lacks ${want}`);
  }
  const overlap = problems({ RELAY_1: "50000-50099;60000-60099;h;TCP", RELAY_2: "50050;80;h;TCP" });
  assertStringIncludes(
    overlap.join("\n"),
    "RELAY_2: in_port: expected an in_port not already used by RELAY_1 for TCP",
  );
  const overlap2 = problems({ RELAY_1: "50050;80;h;UDP", RELAY_2: "50000-50099;60000-60099;h;UDP" });
  assertStringIncludes(overlap2.join("\n"), `got "50000-50099 (50050 is taken)"`);
  // Same ports on the other protocol are fine.
  parseRelayConfig({ RELAY_1: "50000-50099;60000-60099;h;TCP", RELAY_2: "50000-50099;60000-60099;h;UDP" });
});

Deno.test("relay range: one entry in /metrics and on the dashboard, labelled with the ranges", async () => {
  const registry = new ServiceRegistry();
  const svc = new RelayService({ registry });
  const inFirst = freePortRange(N);
  const listen = `127.0.0.1:${inFirst}-${inFirst + N - 1}`;
  try {
    await svc.apply(
      parseRelayConfig({
        RELAY_1: `${inFirst}-${inFirst + N - 1};20000-${20000 + N - 1};127.0.0.1;UDP;bind=127.0.0.1`,
        ENABLE_LOGGING: "n",
      }),
      true,
    );
    const app = createAdminApp({ registry, version: "test" });
    const metrics = await (await app.request("/metrics")).text();
    const up = metrics.split("\n").filter((l) => l.startsWith("wgedge_relay_up{"));
    assertEquals(up, [
      `wgedge_relay_up{relay="RELAY_1",protocol="udp",listen="${listen}",target="127.0.0.1:20000-${
        20000 + N - 1
      }"} 1`,
    ]);
    const page = await (await app.request("/")).text();
    assertStringIncludes(page, "1 relay");
    assertEquals(page.split(listen).length - 1, 1, "the range appears once, in the relay's row");
  } finally {
    await svc.stop();
  }
});

Deno.test("relay range: the health check probes the first target port and shows in the range's status", async () => {
  const clock = new ManualClock();
  const svc = new RelayService({ clock });
  const inFirst = freePortRange(N), outFirst = freePortRange(N);
  let target: Deno.Listener | undefined;
  try {
    await svc.apply(
      parseRelayConfig({
        RELAY_1: `${inFirst}-${inFirst + N - 1};${outFirst}-${outFirst + N - 1};127.0.0.1;TCP;bind=127.0.0.1`,
        ENABLE_LOGGING: "n",
        ENABLE_HEALTH_CHECK: "y",
        HEALTH_CHECK_RETRIES: "1",
        HEALTH_CHECK_INTERVAL: "30",
        HEALTH_CHECK_TIMEOUT: "2",
      }),
      true,
    );
    const health = () => svc.status()[0].health;
    clock.advance(0); // first probe: nothing listens on the first target port
    await waitFor(() => health() === "down", "range marked down");
    target = Deno.listen({ hostname: "127.0.0.1", port: outFirst });
    const accepted = target.accept().then((c) => c.close());
    clock.advance(30_000);
    await within(accepted, "probe reaches the first target port");
    await waitFor(() => health() === "up", "range marked up");
    assertEquals(svc.status()[0].state, "listening");
  } finally {
    await svc.stop();
    target?.close();
  }
  assertEquals(clock.pendingTimers, 0, "health timer cleared on stop");
});
