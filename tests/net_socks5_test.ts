/**
 * SOCKS5 egress against a real proxy (Debian's microsocks on loopback), with and without RFC 1929
 * username/password, directly through the Net and through a relay with `via=socks5://`.
 */
import { createSocks5Net, parseSocks5Url, socks5Name } from "../src/net/socks5.ts";
import { RelayService } from "../src/services/relay/service.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { configureLogging } from "../src/util/log.ts";
import { interopTest, waitFor } from "./helpers/interop.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";

configureLogging({ level: "error" });

async function startMicrosocks(auth?: { user: string; pass: string }) {
  const port = freePort();
  const args = ["-i", "127.0.0.1", "-p", String(port)];
  if (auth) args.push("-u", auth.user, "-P", auth.pass);
  const child = new Deno.Command("microsocks", { args, stdout: "null", stderr: "null" }).spawn();
  await waitFor(async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      return false;
    }
  }, "microsocks listening");
  return {
    port,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
    },
  };
}

/** A target that answers "hello <what it read>" and closes. */
function greeter() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    for await (const c of l) {
      (async () => {
        const buf = new Uint8Array(256);
        const n = await c.read(buf);
        await c.write(new TextEncoder().encode(`hello ${new TextDecoder().decode(buf.subarray(0, n ?? 0))}`));
        c.close();
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    async close() {
      l.close();
      await done;
    },
  };
}

async function readToEnd(c: { read(p: Uint8Array): Promise<number | null>; close(): void }): Promise<string> {
  const buf = new Uint8Array(256);
  let s = "";
  for (let i = 0; i < 100; i++) {
    const n = await c.read(buf);
    if (n === null) break;
    s += new TextDecoder().decode(buf.subarray(0, n));
  }
  c.close();
  return s;
}

Deno.test("socks5: URL parsing and display never shows credentials", () => {
  const cfg = parseSocks5Url("socks5://al%40ice:p%3Ass@[::1]:1080");
  assertEquals(cfg, { host: "::1", port: 1080, username: "al@ice", password: "p:ss" });
  assertEquals(socks5Name(cfg), "socks5://[::1]:1080");
  assertEquals(parseSocks5Url("socks5h://proxy.example:9050").host, "proxy.example");
  assertThrows(() => parseSocks5Url("socks5://host"), "socks5://");
  assertThrows(() => parseSocks5Url("socks5://host:70000"), "1..65535");
  assertThrows(() => parseSocks5Url("http://host:80"), "socks5://");
});

interopTest("socks5: dial through microsocks without auth (IPv4 literal and a name)", async () => {
  const proxy = await startMicrosocks();
  const target = greeter();
  try {
    const net = createSocks5Net({ host: "127.0.0.1", port: proxy.port });
    const c1 = await net.dialTcp("127.0.0.1", target.port, { timeoutMs: 30_000 });
    await c1.write(new TextEncoder().encode("v4"));
    assertEquals(await readToEnd(c1), "hello v4");
    const c2 = await net.dialTcp("localhost", target.port, { timeoutMs: 30_000 });
    await c2.write(new TextEncoder().encode("name"));
    assertEquals(await readToEnd(c2), "hello name");
    // A refused target comes back as the proxy's reply code, named.
    const dead = freePort();
    await assertRejects(() => net.dialTcp("127.0.0.1", dead, { timeoutMs: 30_000 }), "proxy:");
  } finally {
    await target.close();
    await proxy.stop();
  }
}, { tools: ["microsocks"] });

interopTest(
  "socks5: relay via=socks5://user:pass@ through microsocks with auth; bad password fails cleanly",
  async () => {
    const password = "s3cret-Pa55";
    const proxy = await startMicrosocks({ user: "relayuser", pass: password });
    const target = greeter();
    const inGood = freePort(), inBad = freePort();
    const svc = new RelayService();
    try {
      await svc.apply(
        parseRelayConfig({
          RELAY_1:
            `${inGood};${target.port};127.0.0.1;TCP;via=socks5://relayuser:${password}@127.0.0.1:${proxy.port}`,
          RELAY_2:
            `${inBad};${target.port};127.0.0.1;TCP;via=socks5://relayuser:wrong@127.0.0.1:${proxy.port}`,
          ENABLE_LOGGING: "n",
        }),
        true,
      );
      const c = await Deno.connect({ hostname: "127.0.0.1", port: inGood });
      await c.write(new TextEncoder().encode("via proxy"));
      assertEquals(await readToEnd(c), "hello via proxy");

      const b = await Deno.connect({ hostname: "127.0.0.1", port: inBad });
      assertEquals(await readToEnd(b), "", "client closed when the proxy refuses the credentials");
      await waitFor(() => svc.status()[1].failed === 1, "failure counted");
      const statusText = JSON.stringify(svc.status());
      assert(statusText.includes("username/password"), statusText);
      assert(!statusText.includes(password) && !statusText.includes("wrong"), "no password in status");
      assertEquals(svc.status()[0].via, `socks5://127.0.0.1:${proxy.port}`);
    } finally {
      await svc.stop();
      await target.close();
      await proxy.stop();
    }
  },
  { tools: ["microsocks"] },
);
