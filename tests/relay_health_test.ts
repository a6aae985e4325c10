/** Health checks on an injected clock, and the PROXY protocol header a relay sends to its target. */
import { RelayService } from "../src/services/relay/service.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { PROXY_V2_SIGNATURE, proxyV1Header, proxyV2Header } from "../src/services/relay/proxy_protocol.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging } from "../src/util/log.ts";
import { waitFor } from "./helpers/wait.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";

configureLogging({ level: "error" });

Deno.test("relay health: down after HEALTH_CHECK_RETRIES failures, up again after one success", async () => {
  const clock = new ManualClock();
  const registry = new ServiceRegistry();
  const targetPort = freePort();
  const svc = new RelayService({ clock, registry });
  await svc.apply(
    parseRelayConfig({
      RELAY_1: `${freePort()};${targetPort};127.0.0.1;TCP`,
      ENABLE_LOGGING: "n",
      ENABLE_HEALTH_CHECK: "y",
      HEALTH_CHECK_RETRIES: "2",
      HEALTH_CHECK_INTERVAL: "30",
      HEALTH_CHECK_TIMEOUT: "2",
    }),
    true,
  );
  const relay = svc.get("RELAY_1")!;
  let target: Deno.Listener | undefined;
  try {
    assertEquals(relay.stats.health, "unknown");
    clock.advance(0); // first probe: target closed
    await waitFor(() => relay.stats.healthChecks === 1, "first probe");
    assertEquals(relay.stats.health, "unknown", "one failure is not enough");
    clock.advance(30_000);
    await waitFor(() => relay.stats.healthChecks === 2, "second probe");
    assertEquals(relay.stats.health, "down");
    assertEquals(svc.status()[0].state, "listening", "a down target keeps the relay listening");
    assertStringIncludes(registry.metrics.render(), `wgedge_relay_target_healthy{relay="RELAY_1"`);
    assert(/wgedge_relay_target_healthy\{[^}]*\} 0\n/.test(registry.metrics.render()));

    target = Deno.listen({ hostname: "127.0.0.1", port: targetPort });
    const accepted = target.accept().then((c) => c.close());
    clock.advance(30_000);
    await waitFor(() => relay.stats.healthChecks === 3, "third probe");
    await accepted;
    assertEquals(relay.stats.health, "up");
    assert(/wgedge_relay_target_healthy\{[^}]*\} 1\n/.test(registry.metrics.render()));
  } finally {
    await svc.stop();
    target?.close();
  }
  assertEquals(clock.pendingTimers, 0, "health timers cleared on stop");
});

Deno.test("relay proxy_protocol: v1 and v2 headers precede the client's bytes", async () => {
  for (const version of ["v1", "v2"] as const) {
    const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const inPort = freePort();
    const svc = new RelayService();
    await svc.apply(
      parseRelayConfig({
        RELAY_1: `${inPort};${(target.addr as Deno.NetAddr).port};127.0.0.1;TCP;proxy_protocol=${version}`,
        ENABLE_LOGGING: "n",
      }),
      true,
    );
    try {
      const client = await Deno.connect({ hostname: "127.0.0.1", port: inPort });
      const clientPort = (client.localAddr as Deno.NetAddr).port;
      await client.write(new TextEncoder().encode("DATA"));
      await client.closeWrite();
      const server = await target.accept();
      const chunks: number[] = [];
      const buf = new Uint8Array(512);
      for (let i = 0; i < 100; i++) {
        const n = await server.read(buf);
        if (n === null) break;
        chunks.push(...buf.subarray(0, n));
      }
      server.close();
      client.close();
      const got = new Uint8Array(chunks);
      const src = { transport: "tcp" as const, hostname: "127.0.0.1", port: clientPort };
      const dst = { transport: "tcp" as const, hostname: "127.0.0.1", port: inPort };
      const header = version === "v1" ? proxyV1Header(src, dst) : proxyV2Header(src, dst);
      assertEquals(got.subarray(0, header.length), header);
      assertEquals(new TextDecoder().decode(got.subarray(header.length)), "DATA");
      if (version === "v1") {
        assertEquals(
          new TextDecoder().decode(header),
          `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${inPort}\r\n`,
        );
      } else {
        assertEquals(header.subarray(0, 12), PROXY_V2_SIGNATURE);
        assertEquals([header[12], header[13], header[14], header[15]], [0x21, 0x11, 0, 12]);
        assertEquals([...header.subarray(16, 24)], [127, 0, 0, 1, 127, 0, 0, 1]);
        assertEquals((header[24] << 8) | header[25], clientPort);
        assertEquals((header[26] << 8) | header[27], inPort);
      }
    } finally {
      await svc.stop();
      target.close();
    }
  }
});

Deno.test("proxy protocol: IPv6 and mapped addresses", () => {
  const v6 = proxyV2Header(
    { transport: "tcp", hostname: "2001:db8::1", port: 1 },
    { transport: "tcp", hostname: "::ffff:10.0.0.1", port: 2 },
  );
  assertEquals([v6[13], v6[15]], [0x21, 36]);
  assertEquals([...v6.subarray(16, 18)], [0x20, 0x01]);
  assertEquals([...v6.subarray(42, 48)], [0xff, 0xff, 10, 0, 0, 1]);
  const mapped = new TextDecoder().decode(proxyV1Header(
    { transport: "tcp", hostname: "::ffff:192.0.2.7", port: 5 },
    { transport: "tcp", hostname: "::ffff:192.0.2.8", port: 6 },
  ));
  assertEquals(mapped, "PROXY TCP4 192.0.2.7 192.0.2.8 5 6\r\n");
});
