/**
 * `wgedge serve` from an env file with WG_CONFIG: the tunnel comes up, answers ping, carries a relay
 * (`via=wg:main`) to a kernel service, and the admin API reports it without secrets.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { startWgedge, waitForOutput, writeConf } from "./helpers/wgedge_proc.ts";

interopTest(
  "serve: WG_CONFIG from an env file brings the main tunnel up; status and metrics show it",
  async () => {
    const ns = await Netns.create("wgs");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-serve-" });
    ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    try {
      const mine = await wgKeyPair(), ref = await wgKeyPair();
      const wg = await WireguardGo.start(ns, {
        privateKey: ref.privateKey,
        listenPort: 51820,
        addresses: ["10.79.0.1/24"],
        peers: [{ publicKey: mine.publicKey, allowedIps: ["10.79.0.2/32"] }],
      });
      // The whole wg-quick file inline in one variable, as an env-only deployment would do.
      const conf =
        `[Interface]\nPrivateKey = ${mine.privateKey}\nAddress = 10.79.0.2/32\n[Peer]\nPublicKey = ${ref.publicKey}\n` +
        `AllowedIPs = 10.79.0.0/24\nEndpoint = 127.0.0.1:51820\nPersistentKeepalive = 25\n`;
      // A kernel service behind the tunnel, reached by a relay through the WG_CONFIG tunnel (via=wg:main).
      ns.spawn([
        "socat",
        "TCP4-LISTEN:7777,bind=10.79.0.1,reuseaddr,fork",
        "SYSTEM:echo hi-from-the-kernel-side",
      ]);
      const envFile = await writeConf(
        dir,
        "wgedge.env",
        `WG_CONFIG="${conf}"\nWGEDGE_ADMIN_LISTEN=127.0.0.1:18081\nRELAY_1="17777;7777;10.79.0.1;TCP;via=wg:main"\n`,
      );
      const serve = startWgedge(ns, ["serve", "--env-file", envFile]);
      try {
        await waitFor(
          async () => (await wg.show("latest-handshakes")).trim().split(/\s+/)[1] !== "0",
          "handshake",
          200,
          50,
        );
        // -w (deadline): up to 30 s for both replies (without it iputils ping stops waiting for outstanding
        // replies max(2 RTT, interval) after its last request, which a loaded machine can exceed).
        const ping = await ns.exec(["ping", "-c", "2", "-i", "0.2", "-w", "30", "10.79.0.2"], {
          check: false,
        });
        assertEquals(ping.code, 0, ping.stdout + serve.stderr());
        await waitForOutput(serve, "service=relay");
        await waitForOutput(serve, "admin");
        // socat ends when the kernel side closes; -t only bounds a reply that never ends.
        const relayed = await ns.exec(["sh", "-c", "socat -t 30 - TCP4:127.0.0.1:17777 < /dev/null"], {
          check: false,
        });
        assertStringIncludes(relayed.stdout, "hi-from-the-kernel-side", `via=wg:main: ${serve.stderr()}`);
        const status = await ns.exec([
          "curl",
          "-sS",
          "--max-time",
          "30",
          "http://127.0.0.1:18081/api/v1/status",
        ]);
        const json = JSON.parse(status.stdout);
        const text = JSON.stringify(json);
        assertStringIncludes(text, "main");
        assertStringIncludes(text, ref.publicKey, "peer public key shown");
        assert(!text.includes(mine.privateKey), "private key absent from status");
        const metrics =
          (await ns.exec(["curl", "-sS", "--max-time", "30", "http://127.0.0.1:18081/metrics"])).stdout;
        assert(
          /wgedge_tunnel_handshakes_total\{[^}]*tunnel="main"[^}]*\} [1-9]/.test(metrics),
          metrics.slice(0, 2000),
        );
        assert(!metrics.includes(mine.privateKey), "private key absent from metrics");
        assert(!serve.stderr().includes(mine.privateKey), "private key absent from logs");
      } finally {
        assertEquals((await serve.stop()).code, 0);
      }
    } finally {
      await ns.destroy();
    }
  },
  { tools: ["ping", "curl"] },
);
