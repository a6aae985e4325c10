/**
 * serve's proxies under reload (src/services/proxy/starter.ts), in this process: PROXY_<N> from an env file
 * rewritten before each reload(), tunnels as userspace devices on loopback, the proxies listening on
 * 127.0.0.1. An unchanged proxy keeps its connections, a changed one restarts, a removed one stops and lets
 * its tunnel lease go, a busy port fails alone.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { connect, within } from "./helpers/tcp.ts";
import { createSupervisor } from "../src/cli/server.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { configureLogging } from "../src/util/log.ts";

configureLogging({ level: "error" });

async function tunnelFile(dir: string, name: string, address: string): Promise<string> {
  const path = `${dir}/${name}.conf`;
  await Deno.writeTextFile(
    path,
    `[Interface]\nPrivateKey = ${encodeKey(generatePrivateKey())}\nAddress = ${address}/32\n\n` +
      `[Peer]\nPublicKey = ${encodeKey(publicKey(generatePrivateKey()))}\nAllowedIPs = 10.8.0.0/24\n`,
    { mode: 0o600 },
  );
  return path;
}

/** The SOCKS5 method selection for a NO AUTH greeting: [5, 0] while the proxy is the same one. */
async function greet(conn: Deno.Conn): Promise<number[]> {
  await conn.write(new Uint8Array([5, 1, 0]));
  const buf = new Uint8Array(2);
  const n = await within(conn.read(buf), "method selection");
  return [...buf.subarray(0, n ?? 0)];
}

Deno.test("proxy reload: unchanged keeps its connections, changed restarts, removed stops, a busy port fails alone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-proxy-reload-" });
  const envFile = `${dir}/wgedge.env`;
  const write = (text: string) => Deno.writeTextFile(envFile, text, { mode: 0o600 });
  const x = await tunnelFile(dir, "x", "10.8.0.2");
  const p1 = freePort(), p2 = freePort(), busyPort = freePort();
  const base = `WG_TUNNEL_X=${x}\nPROXY_1="socks5;${p1};via=wg:x"\n`;
  await write(`${base}PROXY_2="http;${p2};via=wg:x;user=alice"\nPROXY_2_PASSWORD=one\n`);
  const sup = createSupervisor({ flags: {}, env: {}, envFile, admin: false });
  const busy = Deno.listen({ hostname: "127.0.0.1", port: busyPort });
  try {
    await sup.start();
    const rows = () =>
      (sup.registry.status().proxies as { id: string; state: string; listen: string; lastError?: string }[])
        .map((r) => [r.id, r.state]);
    const users = () => (sup.registry.status().tunnels as { name: string; users: string[] }[])[0].users;
    assertEquals(rows(), [["PROXY_1", "listening"], ["PROXY_2", "listening"]]);
    assertEquals(users(), ["serve", "proxy PROXY_1", "proxy PROXY_2"]);

    const live = await connect(p1);
    try {
      // PROXY_2's password changes: it restarts; PROXY_1 is untouched, its connection goes on.
      await write(`${base}PROXY_2="http;${p2};via=wg:x;user=alice"\nPROXY_2_PASSWORD=two\n`);
      assertEquals((await sup.reload()).result, "success");
      assertEquals(await greet(live), [5, 0], "the unchanged proxy's connection lives on");

      // PROXY_2 moves to a busy port: it fails alone, reported with the reason.
      await write(`${base}PROXY_2="http;${busyPort};via=wg:x;user=alice"\nPROXY_2_PASSWORD=two\n`);
      const outcome = await sup.reload();
      assertEquals(outcome.result, "partial");
      assertStringIncludes(outcome.errors.join("\n"), "proxy PROXY_2");
      assertEquals(rows(), [["PROXY_1", "listening"], ["PROXY_2", "error"]]);
      assert(!JSON.stringify(sup.registry.status()).includes("two"), "no password in status");
      assertStringIncludes(
        sup.registry.metrics.render(),
        `wgedge_proxy_up{proxy="PROXY_2",protocol="http",listen="127.0.0.1:${busyPort}",via="wg:x"} 0`,
      );

      // PROXY_1 removed: it stops (its connections close) and releases its lease on the tunnel.
      await write(`WG_TUNNEL_X=${x}\nPROXY_2="http;${p2};via=wg:x;user=alice"\nPROXY_2_PASSWORD=two\n`);
      assertEquals((await sup.reload()).result, "success");
      assertEquals(rows(), [["PROXY_2", "listening"]]);
      assertEquals(users(), ["serve", "proxy PROXY_2"]);
      const buf = new Uint8Array(8);
      assertEquals(await within(live.read(buf), "close of the removed proxy's connection"), null);
    } finally {
      live.close();
    }
    await write(`WG_TUNNEL_X=${x}\n`);
    assertEquals((await sup.reload()).result, "success");
    assertEquals(sup.registry.status().proxies, undefined, "no proxies section once none is configured");
  } finally {
    busy.close();
    await sup.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
