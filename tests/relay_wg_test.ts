/**
 * `via=wg:NAME`: relays whose egress is a userspace tunnel (WG_TUNNEL_OFFICE) to wireguard-go reach kernel
 * TCP and UDP services inside the namespace; the admin API shows the relay and the tunnel's handshake.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { collect, interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";

interopTest("relay via=wg:office reaches a kernel service behind wireguard-go", async () => {
  const ns = await Netns.create("wgr");
  const dir = await Deno.makeTempDir({ prefix: "wgedge-relaywg-" });
  ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
  try {
    const mine = await wgKeyPair(), ref = await wgKeyPair();
    await WireguardGo.start(ns, {
      privateKey: ref.privateKey,
      listenPort: 51820,
      addresses: ["10.77.0.1/24"],
      peers: [{ publicKey: mine.publicKey, allowedIps: ["10.77.0.2/32"] }],
    });
    // The kernel service on the far side: a TCP echo bound to the tunnel address.
    ns.spawn(["socat", "TCP-LISTEN:7000,bind=10.77.0.1,reuseaddr,fork", "EXEC:cat"]);
    ns.spawn(["socat", "UDP-LISTEN:7001,bind=10.77.0.1,reuseaddr,fork", "EXEC:cat"]);
    await waitFor(async () => {
      const tcp = (await ns.exec(["ss", "-ltn"], { check: false })).stdout;
      const udp = (await ns.exec(["ss", "-lun"], { check: false })).stdout;
      return tcp.includes("10.77.0.1:7000") && udp.includes("10.77.0.1:7001");
    }, "echo up");

    const envFile = `${dir}/wgedge.env`;
    await Deno.writeTextFile(
      envFile,
      [
        `WG_TUNNEL_OFFICE="[Interface]\\nPrivateKey = ${mine.privateKey}\\nAddress = 10.77.0.2/32\\n\\n` +
        `[Peer]\\nPublicKey = ${ref.publicKey}\\nAllowedIPs = 10.77.0.0/24\\nEndpoint = 127.0.0.1:51820\\n"`,
        `RELAY_1="9000;7000;10.77.0.1;TCP;via=wg:office"`,
        `RELAY_2="9001;7001;10.77.0.1;UDP;via=wg:office"`,
        `WGEDGE_ADMIN_LISTEN=127.0.0.1:8081`,
        `ENABLE_LOGGING=y`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const child = ns.spawnWgedge(["serve", "--env-file", envFile], { stderr: "piped", stdout: "piped" });
    const err = collect(child.stderr);
    collect(child.stdout);
    await waitFor(
      async () =>
        (await ns.exec(["curl", "-s", "http://127.0.0.1:8081/healthz"], { check: false })).stdout === "ok\n",
      `wgedge serve up\n${err.text()}`,
      400,
      50,
    );

    // Through the relay, into the tunnel, to the kernel's echo (several times: each is a new tunnel TCP dial).
    // socat exits when the echo closes after our FIN; -t only bounds a reply that never ends (a loaded
    // machine can take longer than socat's 0.5 s default, or 2 s, to bring the reply back).
    for (let i = 0; i < 3; i++) {
      const r = await ns.exec(["socat", "-t", "30", "-", "TCP:127.0.0.1:9000"], {
        stdin: `hello through wg ${i}\n`,
      });
      assertEquals(r.stdout, `hello through wg ${i}\n`, `relay round trip ${i}\n${err.text()}`);
    }
    // UDP: a datagram through the relay's flow, into the tunnel, to the kernel's UDP echo and back.
    // One datagram (the relay's packet counter is checked exactly below); its echo is awaited with a generous
    // bound instead of socat's fixed -t wait after stdin EOF, which a UDP reply cannot end early.
    const udp = ns.spawn(["socat", "-", "UDP:127.0.0.1:9001"], { stdin: "piped", stdout: "piped" });
    const udpOut = collect(udp.stdout);
    const udpIn = udp.stdin.getWriter();
    await udpIn.write(new TextEncoder().encode("udp through wg\n"));
    await waitFor(() => udpOut.text().includes("\n"), `udp relay round trip\n${err.text()}`);
    assertEquals(udpOut.text(), "udp through wg\n", `udp relay round trip\n${err.text()}`);
    await udpIn.close().catch(() => {});
    udp.kill("SIGKILL");
    await udp.status;
    const status = JSON.parse((await ns.exec(["curl", "-s", "http://127.0.0.1:8081/api/v1/status"])).stdout);
    const relay = status.relays[0];
    assertEquals(status.relays[1].packetsToClient, 1);
    assertEquals(relay.via, "wg:office");
    assertEquals(relay.total, 3);
    assertEquals(relay.failed, 0);
    assert(relay.bytesToClient >= 3 * 18, `bytes counted: ${JSON.stringify(relay)}`);
    assertEquals(status.tunnels[0].name, "office");
    assert(status.tunnels[0].peers[0].handshakes >= 1, "handshake with wireguard-go shown");
    const metrics = (await ns.exec(["curl", "-s", "http://127.0.0.1:8081/metrics"])).stdout;
    assertStringIncludes(metrics, `wgedge_tunnel_handshakes_total{tunnel="office"`);
    assert(
      !metrics.includes(mine.privateKey) && !JSON.stringify(status).includes(mine.privateKey),
      "no key leaks",
    );
    assert(!err.text().includes(mine.privateKey), "no key in logs");
  } finally {
    await ns.destroy();
  }
}, { tools: ["socat", "curl", "ss"] });
