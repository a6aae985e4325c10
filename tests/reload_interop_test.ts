/**
 * SIGHUP against a real `wgedge serve` process and a real peer: WG_CONFIG is changed (another key and address,
 * both peers of one wireguard-go in a namespace) while an unchanged relay egresses with `via=wg:main`. After
 * the reload a connection through the relay must reach the kernel service from the NEW tunnel address (the
 * relay was restarted on the new device); the old device is closed. Then a broken env file is rejected: the
 * status, the metrics and the dashboard say so, and the relay keeps working on the running configuration.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { collect, interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";

interopTest(
  "SIGHUP: a changed WG_CONFIG restarts the via=wg:main relay on the new tunnel; a bad file is rejected visibly",
  async () => {
    const ns = await Netns.create("wgh");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-reload-" });
    ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    try {
      const first = await wgKeyPair(), second = await wgKeyPair(), ref = await wgKeyPair();
      await WireguardGo.start(ns, {
        privateKey: ref.privateKey,
        listenPort: 51820,
        addresses: ["10.77.0.1/24"],
        peers: [
          { publicKey: first.publicKey, allowedIps: ["10.77.0.2/32"] },
          { publicKey: second.publicKey, allowedIps: ["10.77.0.3/32"] },
        ],
      });
      // The kernel service answers with the address the connection came from: the tunnel's own address.
      ns.spawn(["socat", "TCP-LISTEN:7000,bind=10.77.0.1,reuseaddr,fork", "SYSTEM:echo $SOCAT_PEERADDR"]);
      await waitFor(
        async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes("10.77.0.1:7000"),
        "service up",
      );

      const envFile = `${dir}/wgedge.env`;
      const writeEnv = (key: { privateKey: string }, address: string, extra = "") =>
        Deno.writeTextFile(
          envFile,
          [
            `WG_CONFIG="[Interface]\\nPrivateKey = ${key.privateKey}\\nAddress = ${address}/32\\n\\n` +
            `[Peer]\\nPublicKey = ${ref.publicKey}\\nAllowedIPs = 10.77.0.0/24\\nEndpoint = 127.0.0.1:51820\\n"`,
            `RELAY_1="9000;7000;10.77.0.1;TCP;via=wg:main"`,
            `WGEDGE_ADMIN_LISTEN=127.0.0.1:8081`,
            extra,
            "",
          ].join("\n"),
          { mode: 0o600 },
        );
      await writeEnv(first, "10.77.0.2");
      const child = ns.spawnWgedge(["serve", "--env-file", envFile], { stderr: "piped", stdout: "piped" });
      const err = collect(child.stderr);
      collect(child.stdout);
      const curl = async (path: string) =>
        (await ns.exec(["curl", "-s", "--max-time", "20", `http://127.0.0.1:8081${path}`], { check: false }))
          .stdout;
      const status = async () => JSON.parse(await curl("/api/v1/status"));
      const through = async () =>
        (await ns.exec(["socat", "-t", "30", "-", "TCP:127.0.0.1:9000"], { stdin: "", check: false })).stdout
          .trim();
      try {
        await waitFor(async () => (await curl("/healthz")) === "ok\n", `serve up\n${err.text()}`, 400, 50);
        await waitFor(
          async () => (await through()) === "10.77.0.2",
          `relay through the first tunnel\n${err.text()}`,
        );
        const before = await status();
        assertEquals(before.tunnels.map((t: { name: string; refs: number }) => [t.name, t.refs]), [[
          "main",
          2,
        ]]);

        await writeEnv(second, "10.77.0.3");
        child.kill("SIGHUP");
        await waitFor(
          async () => (await status()).reload.lastResult === "success",
          `reload applied\n${err.text()}`,
        );
        assertEquals(
          await through(),
          "10.77.0.3",
          `the relay now egresses through the new tunnel\n${err.text()}`,
        );
        const after = await status();
        assertEquals(after.tunnels.length, 1, "the old device is closed");
        assertEquals(after.tunnels[0].publicKey, second.publicKey);
        assertEquals(after.tunnels[0].refs, 2, "held by serve and by the relay");
        assertStringIncludes(err.text(), "closing tunnel (zero refs)");

        await writeEnv(second, "10.77.0.3", `RELAY_2="90000;1;127.0.0.1;TCP"`);
        child.kill("SIGHUP");
        await waitFor(
          async () => (await status()).reload.lastResult === "rejected",
          `reload rejected\n${err.text()}`,
        );
        const rejected = await status();
        assert(
          rejected.reload.errors.some((e: string) => e.includes("RELAY_2")),
          JSON.stringify(rejected.reload),
        );
        const metrics = await curl("/metrics");
        assertStringIncludes(metrics, "wgedge_config_last_reload_successful 0");
        assertStringIncludes(metrics, 'wgedge_reload_total{result="rejected"} 1');
        assertStringIncludes(metrics, 'wgedge_reload_total{result="success"} 1');
        const page = await curl("/");
        assertStringIncludes(page, "REJECTED; the running configuration is the previous one");
        assertStringIncludes(page, "RELAY_2");
        assertEquals(await through(), "10.77.0.3", "the running configuration still works");
        for (const text of [err.text(), JSON.stringify(rejected), metrics, page]) {
          assert(!text.includes(first.privateKey) && !text.includes(second.privateKey), "no key leaks");
        }
      } finally {
        child.kill("SIGTERM");
        await child.status;
      }
    } finally {
      await ns.destroy();
    }
  },
  { tools: ["socat", "curl", "ss"] },
);
