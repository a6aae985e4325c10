/**
 * The SOCKS5 and HTTP proxies into a tunnel, against real clients and a real peer: wireguard-go in a
 * namespace with dnsmasq (the tunnel's `DNS =` server, listening only on the tunnel address), a kernel HTTP
 * server (python3 -m http.server) and a UDP echo (socat) behind it. Targets are named (web.test, echo.test):
 * every name is resolved by dnsmasq through the tunnel.
 *
 * - `wgedge up --socks5 --http-proxy --proxy-user` (password from WGEDGE_PROXY_PASSWORD): curl
 *   --socks5-hostname, curl -x http:// (absolute-form GET and CONNECT with -p) reach the server by name; wrong
 *   credentials are refused (SOCKS5 auth failure, HTTP 407); Debian's python3-socks sends UDP through UDP
 *   ASSOCIATE to the echo by name and gets every reply; the password is in no log line.
 * - `wgedge serve` with PROXY_1 (SOCKS5, no credentials) and PROXY_2 (HTTP with credentials): the same
 *   requests without credentials; status and metrics count them; neither status, metrics, logs nor
 *   check-config show PROXY_2's password.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { collect, interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { runWgedge, startWgedge, waitForOutput, writeConf } from "./helpers/wgedge_proc.ts";

const UP_PASSWORD = "up-proxy-pw-7f3a91";
const SERVE_PASSWORD = "serve-proxy-pw-c0ffee";
const PAGE = "hello through the tunnel\n";
/** UAPI socket names are machine-wide (wg0, office): this test does not need them. */
const NO_UAPI = { WG_UAPI_DIR: "off" };

interopTest(
  "proxy: curl (SOCKS5, HTTP) and python3-socks (UDP) reach services behind wireguard-go by name",
  async () => {
    const ns = await Netns.create("wgprx");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-proxy-" });
    ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    try {
      const upKeys = await wgKeyPair(), serveKeys = await wgKeyPair(), ref = await wgKeyPair();
      await WireguardGo.start(ns, {
        privateKey: ref.privateKey,
        listenPort: 51820,
        addresses: ["10.79.0.1/24"],
        peers: [
          { publicKey: upKeys.publicKey, allowedIps: ["10.79.0.2/32"] },
          { publicKey: serveKeys.publicKey, allowedIps: ["10.79.0.3/32"] },
        ],
      });
      const dnsmasq = ns.spawn([
        "dnsmasq",
        "--keep-in-foreground",
        "--log-queries",
        "--log-facility=-",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=10.79.0.1",
        "--except-interface=lo",
        "--port=53",
        "--user=root",
        "--pid-file",
        "--local=/test/",
        "--host-record=web.test,10.79.0.1",
        "--host-record=echo.test,10.79.0.1",
      ], { stdout: "piped", stderr: "piped" });
      const dnsLog = collect(dnsmasq.stderr!);
      collect(dnsmasq.stdout!);
      const www = `${dir}/www`;
      await Deno.mkdir(www);
      await Deno.writeTextFile(`${www}/hello.txt`, PAGE);
      ns.spawn(["/usr/bin/python3", "-m", "http.server", "8000", "--bind", "10.79.0.1", "--directory", www]);
      ns.spawn(["socat", "UDP-LISTEN:7001,bind=10.79.0.1,reuseaddr,fork", "EXEC:cat"]);
      await waitFor(async () => {
        const tcp = (await ns.exec(["ss", "-ltn"], { check: false })).stdout;
        const udp = (await ns.exec(["ss", "-lun"], { check: false })).stdout;
        return tcp.includes("10.79.0.1:8000") && tcp.includes("10.79.0.1:53") &&
          udp.includes("10.79.0.1:7001");
      }, `dnsmasq, the HTTP server and the UDP echo up\n${dnsLog.text()}`);

      const conf = (keys: { privateKey: string }, addr: string) =>
        `[Interface]\nPrivateKey = ${keys.privateKey}\nAddress = ${addr}/32\nDNS = 10.79.0.1\n\n` +
        `[Peer]\nPublicKey = ${ref.publicKey}\nAllowedIPs = 10.79.0.0/24\nEndpoint = 127.0.0.1:51820\n`;

      // ---- wgedge up, with credentials -----------------------------------------------------------------
      const upConf = await writeConf(dir, "wg0.conf", conf(upKeys, "10.79.0.2"));
      const up = startWgedge(
        ns,
        ["up", "-c", upConf, "--socks5", "1080", "--http-proxy", "127.0.0.1:3128", "--proxy-user", "alice"],
        { WGEDGE_PROXY_PASSWORD: UP_PASSWORD, ...NO_UAPI },
      );
      await waitForOutput(up, "tunnel up");
      const curl = (args: string[]) =>
        ns.exec(["curl", "-sS", "--max-time", "30", ...args], { check: false });

      // The first request also brings the WireGuard handshake up: retried until it goes through.
      let first = "";
      await waitFor(
        async () => {
          first = (await curl([
            "--socks5-hostname",
            `alice:${UP_PASSWORD}@127.0.0.1:1080`,
            "http://web.test:8000/hello.txt",
          ]))
            .stdout;
          return first === PAGE;
        },
        `curl --socks5-hostname through wgedge up\n${up.stderr()}`,
        20,
        500,
      );
      assertEquals(first, PAGE);
      assertStringIncludes(
        dnsLog.text(),
        "query[A] web.test from 10.79.0.2",
        "web.test asked inside the tunnel",
      );

      const viaHttp = await curl([
        "-x",
        `http://alice:${UP_PASSWORD}@127.0.0.1:3128`,
        "http://web.test:8000/hello.txt",
      ]);
      assertEquals(viaHttp.stdout, PAGE, `curl -x http:// (absolute-form GET)\n${viaHttp.stderr}`);
      const viaConnect = await curl([
        "-p",
        "-x",
        `http://alice:${UP_PASSWORD}@127.0.0.1:3128`,
        "http://web.test:8000/hello.txt",
      ]);
      assertEquals(viaConnect.stdout, PAGE, `curl -p -x http:// (CONNECT)\n${viaConnect.stderr}`);

      // Wrong and missing credentials.
      const wrongSocks = await curl([
        "--socks5-hostname",
        "alice:wrong@127.0.0.1:1080",
        "http://web.test:8000/hello.txt",
      ]);
      assert(
        wrongSocks.code !== 0 && wrongSocks.stdout === "",
        `SOCKS5 with a wrong password refused: ${wrongSocks.stderr}`,
      );
      const noSocks = await curl(["--socks5-hostname", "127.0.0.1:1080", "http://web.test:8000/hello.txt"]);
      assert(
        noSocks.code !== 0 && noSocks.stdout === "",
        `SOCKS5 without credentials refused: ${noSocks.stderr}`,
      );
      const code = async (args: string[]) =>
        (await curl(["-o", "/dev/null", "-w", "%{http_code}", ...args])).stdout;
      assertEquals(
        await code(["-x", "http://alice:wrong@127.0.0.1:3128", "http://web.test:8000/hello.txt"]),
        "407",
      );
      assertEquals(await code(["-x", "http://127.0.0.1:3128", "http://web.test:8000/hello.txt"]), "407");
      const wrongConnect = await curl([
        "-p",
        "-x",
        "http://alice:wrong@127.0.0.1:3128",
        "http://web.test:8000/",
      ]);
      assert(wrongConnect.code !== 0, "CONNECT with a wrong password refused");
      assertStringIncludes(wrongConnect.stderr, "407");

      // UDP ASSOCIATE with Debian's python3-socks: datagrams to echo.test (a name: resolved inside the tunnel).
      const py = await ns.exec([
        "/usr/bin/python3",
        "-c",
        `
import socket, socks
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", 1080, rdns=True, username="alice", password="${UP_PASSWORD}")
s.settimeout(5)
s.bind(("127.0.0.1", 0))
got = 0
for i in range(5):
    msg = b"datagram %d" % i
    for attempt in range(6):
        s.sendto(msg, ("echo.test", 7001))
        try:
            data, frm = s.recvfrom(2048)
        except socket.timeout:
            continue
        if data == msg:
            got += 1
            break
print("echoed", got, frm[0], frm[1])
`,
      ], { check: false });
      assertEquals(
        py.stdout.trim(),
        "echoed 5 10.79.0.1 7001",
        `python3-socks UDP\n${py.stderr}\n${up.stderr()}`,
      );
      assertStringIncludes(dnsLog.text(), "query[A] echo.test from 10.79.0.2");

      const upStatus = await up.stop();
      assertEquals(upStatus.code, 0, up.stderr());
      assertStringIncludes(up.stderr(), "SOCKS5 authentication failed");
      assert(
        !up.stderr().includes(UP_PASSWORD) && !up.stdout().includes(UP_PASSWORD),
        "the password is in no log",
      );

      // ---- wgedge serve: PROXY_<N>, one without credentials, one with ---------------------------------
      const serveConf = await writeConf(dir, "office.conf", conf(serveKeys, "10.79.0.3"));
      const envFile = await writeConf(
        dir,
        "wgedge.env",
        [
          `WG_TUNNEL_OFFICE=${serveConf}`,
          `PROXY_1="socks5;1081;via=wg:office"`,
          `PROXY_2="http;127.0.0.1:3129;via=wg:office;user=bob"`,
          `PROXY_2_PASSWORD=${SERVE_PASSWORD}`,
          `PROXY_3="http;3130;via=wg:office"`,
          `WGEDGE_ADMIN_LISTEN=127.0.0.1:8081`,
          "",
        ].join("\n"),
      );
      const checked = await runWgedge(ns, ["check-config", "--env-file", envFile]);
      assertEquals(checked.code, 0, checked.stderr);
      assertStringIncludes(checked.stdout, "PROXY_2");
      assert(
        !checked.stdout.includes(SERVE_PASSWORD) && !checked.stderr.includes(SERVE_PASSWORD),
        "check-config",
      );

      const serve = startWgedge(ns, ["serve", "--env-file", envFile], NO_UAPI);
      await waitFor(
        async () => (await curl(["http://127.0.0.1:8081/healthz"])).stdout === "ok\n",
        "wgedge serve up",
      ).catch((e) => {
        throw new Error(`${e.message}\n${serve.stderr()}`);
      });
      let anon = "";
      await waitFor(
        async () => {
          anon =
            (await curl(["--socks5-hostname", "127.0.0.1:1081", "http://web.test:8000/hello.txt"])).stdout;
          return anon === PAGE;
        },
        `curl --socks5-hostname through serve's PROXY_1\n${serve.stderr()}`,
        20,
        500,
      );
      assertEquals(
        (await curl(["-x", "http://127.0.0.1:3130", "http://web.test:8000/hello.txt"])).stdout,
        PAGE,
      );
      assertEquals(
        (await curl(["-x", `http://bob:${SERVE_PASSWORD}@127.0.0.1:3129`, "http://web.test:8000/hello.txt"]))
          .stdout,
        PAGE,
      );
      assertEquals(
        await code(["-x", "http://bob:nope@127.0.0.1:3129", "http://web.test:8000/hello.txt"]),
        "407",
      );
      assertStringIncludes(dnsLog.text(), "query[A] web.test from 10.79.0.3");

      const statusText = (await curl(["http://127.0.0.1:8081/api/v1/status"])).stdout;
      const status = JSON.parse(statusText) as { proxies: Record<string, unknown>[] };
      const byId = new Map(status.proxies.map((p) => [p.id as string, p]));
      const p1 = byId.get("PROXY_1")!, p2 = byId.get("PROXY_2")!;
      assertEquals([p1.protocol, p1.listen, p1.via, p1.state], [
        "socks5",
        "127.0.0.1:1081",
        "wg:office",
        "listening",
      ]);
      assert((p1.total as number) >= 1 && (p1.bytesToClient as number) >= PAGE.length, JSON.stringify(p1));
      assertEquals([p2.userRequired, p2.user, p2.loginFailures], [true, "bob", 1]);
      const metrics = (await curl(["http://127.0.0.1:8081/metrics"])).stdout;
      assertStringIncludes(
        metrics,
        'wgedge_proxy_refused_total{proxy="PROXY_2",protocol="http",listen="127.0.0.1:3129",via="wg:office",reason="auth"} 1',
      );
      assert(/wgedge_proxy_connections_total\{proxy="PROXY_1"[^}]*\} [1-9]/.test(metrics), metrics);
      for (
        const [what, text] of [["status", statusText], ["metrics", metrics], ["serve log", serve.stderr()]]
      ) {
        assert(!text.includes(SERVE_PASSWORD), `the password is not in ${what}`);
      }
      assertEquals((await serve.stop()).code, 0, serve.stderr());
    } finally {
      await ns.destroy();
    }
  },
  { tools: ["curl", "socat", "ss", "dnsmasq"] },
);
