/** KEEPALIVE_IDLE/INTVL/CNT reach TCP inside tunnels (host sockets cannot take them under Deno). */
import { assertEquals } from "./helpers/assert.ts";
import { loadConfig } from "../src/config/mod.ts";
import { tunnelTcpOptions } from "../src/services/service.ts";
import { openTunnel } from "../src/net/tunnels.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";

Deno.test("serve: relay keepalive settings become the tunnel stack's TCP keepalive options", async () => {
  const pipe = `${encodeKey(generatePrivateKey())}|${
    encodeKey(publicKey(generatePrivateKey()))
  }|127.0.0.1:9|10.9.0.2`;
  const { config } = await loadConfig({
    env: {
      RELAY_1: "1000;80;10.9.0.1;TCP;via=wg:office",
      WG_TUNNEL_OFFICE: pipe,
      KEEPALIVE_IDLE: "45",
      KEEPALIVE_INTVL: "7",
      KEEPALIVE_CNT: "4",
    },
    flags: {},
  });
  const tcp = tunnelTcpOptions(config)!;
  assertEquals(tcp, {
    keepAlive: true,
    keepAliveIdleMs: 45_000,
    keepAliveIntervalMs: 7_000,
    keepAliveCount: 4,
  });
  const t = await openTunnel(config.tunnels.get("office")!, { name: "office", stack: { tcp } });
  try {
    const o = t.stack.tcp!.options;
    assertEquals([o.keepAlive, o.keepAliveIdleMs, o.keepAliveIntervalMs, o.keepAliveCount], [
      true,
      45_000,
      7_000,
      4,
    ]);
  } finally {
    t.close();
  }
  const none = await loadConfig({ env: { WG_TUNNEL_OFFICE: pipe }, flags: {} });
  assertEquals(tunnelTcpOptions(none.config), undefined, "no relays: tunnels keep the stack defaults");
});
