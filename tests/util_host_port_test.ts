/**
 * host:port text: one function (src/util/host_port.ts) brackets IPv6 addresses, and the sites that log or
 * report an address use it: a TCP relay to an IPv6 target logs `[::1]:port`, not `::1:port`.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { joinHostPort } from "../src/util/host_port.ts";
import { RelayService } from "../src/services/relay/service.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { createHostNet } from "../src/net/host.ts";
import { configureLogging, type LogLevel } from "../src/util/log.ts";
import { renderMappings } from "../src/services/admin/rp_view.ts";
import { waitFor } from "./helpers/wait.ts";
import { freePort } from "./helpers/ports.ts";

Deno.test("joinHostPort: IPv6 in brackets, names and IPv4 as they are, ranges as ports", () => {
  assertEquals(joinHostPort("fd00::1", 80), "[fd00::1]:80");
  assertEquals(joinHostPort("::", 51820), "[::]:51820");
  assertEquals(joinHostPort("fe80::1%eth0", 53), "[fe80::1%eth0]:53");
  assertEquals(joinHostPort("[fd00::1]", 80), "[fd00::1]:80", "already bracketed: not twice");
  assertEquals(joinHostPort("10.0.0.1", 80), "10.0.0.1:80");
  assertEquals(joinHostPort("example.com", "60000-60099"), "example.com:60000-60099");
});

Deno.test("relay tcp over IPv6 loopback: the listen address and the target are logged with brackets", async () => {
  const lines: string[] = [];
  configureLogging({
    level: "info",
    json: false,
    sink: { write: (line: string, _l: LogLevel) => lines.push(line) },
  });
  const target = Deno.listen({ hostname: "::1", port: 0 });
  const targetPort = (target.addr as Deno.NetAddr).port;
  const inPort = freePort();
  const svc = new RelayService({ listenNet: createHostNet() });
  try {
    await svc.apply(parseRelayConfig({ RELAY_1: `${inPort};${targetPort};::1;TCP;bind=::1` }), true);
    const client = await Deno.connect({ hostname: "::1", port: inPort });
    const accepted = await target.accept();
    await waitFor(() => lines.some((l) => l.includes(" open ")), "the relay's open line");
    client.close();
    accepted.close();
    const open = lines.find((l) => l.includes(" open "))!;
    assert(open.includes(`target=[::1]:${targetPort}`), open);
    assert(/client=\[::1\]:\d+/.test(open), open);
    const started = lines.find((l) => l.includes("relay started"))!;
    assert(
      started.includes(`listen=[::1]:${inPort}`) && started.includes(`target=[::1]:${targetPort}`),
      started,
    );
  } finally {
    await svc.stop();
    target.close();
    configureLogging({ level: "error", sink: { write: (line: string) => console.error(line) } });
  }
});

Deno.test("dashboard: an rp mapping from an IPv6 tunnel client shows [fd00::2]:18080", () => {
  const html = renderMappings(
    [{
      remote_port: 8080,
      protocol: "tcp",
      client_ip: "fd00::2",
      client_port: 18080,
      local_addr: "[::1]:80",
    }],
    {},
    { nowMs: 0 },
  );
  assert(html.includes("[fd00::2]:18080"), html);
});
