/**
 * Names inside a tunnel, against a real DNS server: dnsmasq listens only on the tunnel address of a
 * wireguard-go peer in a namespace, so every answer wgedge gets was asked for through the tunnel. A tunnel
 * with `DNS = 10.78.0.1, corp.test` then dials names: relays with `via=wg:office` to a plain name, a CNAME
 * (UDP) and a short name completed by the search domain; `wgedge ping NAME` with an answer too large for UDP
 * (fetched again over TCP) and with a name that does not exist.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { collect, interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { runWgedge } from "./helpers/wgedge_proc.ts";

/** 60 A records: 60 * 16 bytes of answers is more than a 512-byte UDP answer may carry. */
const MANY = Array.from({ length: 60 }, (_, i) => `10.78.1.${i + 1}`);

interopTest("dns: relays and ping resolve names through the tunnel's DNS server (dnsmasq)", async () => {
  const ns = await Netns.create("wgdns");
  const dir = await Deno.makeTempDir({ prefix: "wgedge-dns-" });
  ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
  try {
    const mine = await wgKeyPair(), ref = await wgKeyPair();
    await WireguardGo.start(ns, {
      privateKey: ref.privateKey,
      listenPort: 51820,
      addresses: ["10.78.0.1/24"],
      peers: [{ publicKey: mine.publicKey, allowedIps: ["10.78.0.2/32"] }],
    });
    const dnsmasq = ns.spawn([
      "dnsmasq",
      "--keep-in-foreground",
      "--log-queries",
      "--log-facility=-",
      "--no-resolv",
      "--no-hosts",
      "--bind-interfaces",
      "--listen-address=10.78.0.1",
      "--except-interface=lo",
      "--port=53",
      "--user=root",
      "--pid-file",
      "--local=/test/",
      "--host-record=svc.test,10.78.0.1",
      "--host-record=web.corp.test,10.78.0.1",
      "--cname=alias.test,svc.test",
      ...MANY.map((a) => `--host-record=many.test,${a}`),
    ], { stdout: "piped", stderr: "piped" });
    const dnsLog = collect(dnsmasq.stderr!);
    collect(dnsmasq.stdout!);
    ns.spawn(["socat", "TCP-LISTEN:7000,bind=10.78.0.1,reuseaddr,fork", "EXEC:cat"]);
    ns.spawn(["socat", "UDP-LISTEN:7001,bind=10.78.0.1,reuseaddr,fork", "EXEC:cat"]);
    await waitFor(async () => {
      const tcp = (await ns.exec(["ss", "-ltn"], { check: false })).stdout;
      const udp = (await ns.exec(["ss", "-lun"], { check: false })).stdout;
      return tcp.includes("10.78.0.1:7000") && tcp.includes("10.78.0.1:53") && udp.includes("10.78.0.1:7001");
    }, `dnsmasq and echo services up\n${dnsLog.text()}`);

    const tunnel =
      `[Interface]\nPrivateKey = ${mine.privateKey}\nAddress = 10.78.0.2/32\nDNS = 10.78.0.1, corp.test\n\n` +
      `[Peer]\nPublicKey = ${ref.publicKey}\nAllowedIPs = 10.78.0.0/16\nEndpoint = 127.0.0.1:51820\n`;
    const conf = `${dir}/office.conf`;
    await Deno.writeTextFile(conf, tunnel, { mode: 0o600 });
    const envFile = `${dir}/wgedge.env`;
    await Deno.writeTextFile(
      envFile,
      [
        `WG_TUNNEL_OFFICE=${conf}`,
        `RELAY_1="9000;7000;svc.test;TCP;via=wg:office"`,
        `RELAY_2="9001;7001;alias.test;UDP;via=wg:office"`,
        `RELAY_3="9002;7000;web;TCP;via=wg:office"`,
        `WGEDGE_ADMIN_LISTEN=127.0.0.1:8081`,
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
      "wgedge serve up",
    ).catch((e) => {
      throw new Error(`${e.message}\n${err.text()}`);
    });

    for (const [port, what] of [[9000, "svc.test"], [9002, "web (search domain corp.test)"]] as const) {
      const r = await ns.exec(["socat", "-t", "30", "-", `TCP:127.0.0.1:${port}`], { stdin: `to ${what}\n` });
      assertEquals(r.stdout, `to ${what}\n`, `TCP relay to ${what}\n${err.text()}`);
    }
    // dnsmasq's log reaches us through a pipe, possibly after the reply it describes: wait for the line.
    await waitFor(() => dnsLog.text().includes("query[A] web.corp.test from 10.78.0.2"), "dnsmasq log line")
      .catch(() => {}); // the assertion below says what is missing
    assertStringIncludes(dnsLog.text(), "query[A] web.corp.test from 10.78.0.2");
    // UDP through the CNAME (one datagram; its echo awaited with a generous bound).
    const udp = ns.spawn(["socat", "-", "UDP:127.0.0.1:9001"], { stdin: "piped", stdout: "piped" });
    const udpOut = collect(udp.stdout!);
    const udpIn = udp.stdin!.getWriter();
    await udpIn.write(new TextEncoder().encode("to alias.test\n"));
    await waitFor(() => udpOut.text().includes("\n"), `UDP relay via the CNAME\n${err.text()}`);
    assertEquals(udpOut.text(), "to alias.test\n");
    await udpIn.close().catch(() => {});
    udp.kill("SIGKILL");
    await udp.status;
    await waitFor(() => dnsLog.text().includes("alias.test is <CNAME>"), "dnsmasq log line").catch(() => {});
    assertStringIncludes(dnsLog.text(), "alias.test is <CNAME>");

    // ping by name: the answer for many.test does not fit in UDP; the resolver asks again over TCP.
    const pinged = await runWgedge(ns, ["ping", "-c", conf, "-n", "1", "-W", "2", "many.test"]);
    const shown = /PING many\.test \((10\.78\.1\.\d+)\)/.exec(pinged.stdout);
    assert(shown && MANY.includes(shown[1]), `resolved to one of many.test's addresses:\n${pinged.stdout}`);
    const askedLines = () =>
      dnsLog.text().split("\n").filter((l) => l.includes("query[A] many.test from 10.78.0.2"));
    await waitFor(() => askedLines().length >= 2, "dnsmasq log lines").catch(() => {});
    const asked = askedLines();
    assert(asked.length >= 2, `asked over UDP, then again over TCP:\n${dnsLog.text()}`);

    const missing = await runWgedge(ns, ["ping", "-c", conf, "-n", "1", "nosuch.test"]);
    assertEquals(missing.code, 1);
    assertStringIncludes(missing.stderr, `cannot resolve "nosuch.test": no such name`);
  } finally {
    await ns.destroy();
  }
}, { tools: ["socat", "curl", "ss", "dnsmasq"] });
