/**
 * The rps API driven from the kernel side: a wireguard-go peer in a namespace is the client. Kernel curl
 * registers mappings over kernel TCP through the tunnel, a kernel HTTP service becomes reachable on the
 * public port, and the security rules hold against a real peer (spoofed client_ip, another client's port,
 * range, bad JSON, unknown route, deleting another's mapping). And wg-rp's own client sequence over h2c with
 * prior knowledge (what the released wg-rp rpc speaks), driven by curl and nghttp, beside HTTP/1.1.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { collect, interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { freePort } from "./helpers/ports.ts";

interopTest(
  "rp interop: a wireguard-go peer registers with curl over kernel TCP; its service is public",
  async () => {
    const ns = await Netns.create("wrp");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-rp-interop-" });
    try {
      const server = await wgKeyPair(), kernel = await wgKeyPair(), other = await wgKeyPair();
      const wgPort = 20000 + Math.floor(Math.random() * 20000);
      const conf = `${dir}/server.conf`;
      await Deno.writeTextFile(
        conf,
        `[Interface]\nPrivateKey = ${server.privateKey}\nAddress = 10.88.0.1/24, fd88::1/64\nListenPort = ${wgPort}\n\n` +
          `[Peer]\nPublicKey = ${kernel.publicKey}\nAllowedIPs = 10.88.0.2/32, fd88::2/128\n\n` +
          `[Peer]\nPublicKey = ${other.publicKey}\nAllowedIPs = 10.88.0.3/32\n`,
        { mode: 0o600 },
      );
      // The kernel client: wireguard-go with the client's address, the rps as its peer.
      await WireguardGo.start(ns, {
        privateKey: kernel.privateKey,
        addresses: ["10.88.0.2/24", "fd88::2/64"],
        peers: [{
          publicKey: server.publicKey,
          allowedIps: ["10.88.0.1/32", "fd88::1/128"],
          endpoint: `127.0.0.1:${wgPort}`,
          persistentKeepalive: 5,
        }],
      });
      // A kernel HTTP service on the client's tunnel address.
      const page = `${dir}/www`;
      await Deno.mkdir(page);
      await Deno.writeTextFile(`${page}/index.html`, "kernel service behind NAT\n");
      ns.spawn(["python3", "-m", "http.server", "9000", "--bind", "10.88.0.2", "--directory", page]);
      await waitFor(
        async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes("10.88.0.2:9000"),
        "the kernel HTTP service listening",
      );

      // rps runs inside the namespace (its public ports and UDP port are the namespace's loopback).
      const child = ns.spawnWgedge(["rps", "-c", conf, "--allow-ports", "18000-18999"], { stderr: "piped" });
      const log = (async () => {
        let text = "";
        for await (const c of child.stderr!) text += new TextDecoder().decode(c);
        return text;
      })();

      const api = "http://10.88.0.1/api/v1/port-mappings";
      const curl = async (...args: string[]) => {
        const r = await ns.exec([
          "curl",
          "-sS",
          "--max-time",
          "30",
          "-o",
          "-",
          "-w",
          "\n%{http_code}",
          ...args,
        ], {
          check: false,
        });
        const lines = r.stdout.trimEnd().split("\n");
        return { status: Number(lines.pop()), body: lines.join("\n") };
      };
      // Wait until the API answers through the tunnel (handshake + rps start-up).
      await waitFor(
        async () => (await curl("-X", "POST", "http://10.88.0.1/api/v1/heartbeat")).status === 200,
        "the rps API to answer through wireguard-go",
        200,
        100,
      );
      const json = ["-H", "content-type: application/json", "-X", "POST", api, "-d"];

      const created = await curl(
        ...json,
        '{"local_addr":"10.88.0.2:9000","remote_port":18080,"client_port":9000}',
      );
      assertEquals(created.status, 200, created.body);
      assertStringIncludes(created.body, '"success":true');
      const pub = await ns.exec(["curl", "-sS", "--max-time", "30", "http://127.0.0.1:18080/"]);
      assertEquals(pub.stdout, "kernel service behind NAT\n");

      // Over IPv6 as well: the identity is then the peer's IPv6 tunnel address.
      const v6 = await curl("-g", "-X", "GET", "http://[fd88::1]/api/v1/port-mappings");
      assertEquals(v6.status, 200);
      assertStringIncludes(v6.body, '"client_ip":"fd88::2"');

      // Security, from a real peer.
      const spoof = await curl(...json, '{"remote_port":18081,"client_port":9000,"client_ip":"10.88.0.3"}');
      assertEquals(spoof.status, 403);
      const outside = await curl(...json, '{"remote_port":8080,"client_port":9000}');
      assertEquals(outside.status, 403);
      assertEquals((await curl(...json, "{not json")).status, 400);
      assertEquals((await curl("http://10.88.0.1/api/v1/nope")).status, 404);
      // The same port held by this client's other identity (IPv6) counts as another client: 409 / 403.
      const taken = await curl(
        "-g",
        "-H",
        "content-type: application/json",
        "-X",
        "POST",
        "http://[fd88::1]/api/v1/port-mappings",
        "-d",
        '{"remote_port":18080,"client_port":9000}',
      );
      assertEquals(taken.status, 409);
      const foreignDelete = await curl(
        "-g",
        "-X",
        "DELETE",
        "http://[fd88::1]/api/v1/port-mappings?port=18080",
      );
      assertEquals(foreignDelete.status, 403);
      // The owner deletes; the public port closes.
      assertEquals((await curl("-X", "DELETE", `${api}?port=18080`)).status, 200);
      const closed = await ns.exec(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:18080/"], {
        check: false,
      });
      assertEquals(closed.code !== 0, true, "public port closed after delete");
      child.kill("SIGTERM");
      await child.status;
      const text = await log;
      assertStringIncludes(text, "mapping created");
    } finally {
      await ns.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
  { tools: ["curl", "python3"] },
);

interopTest(
  "rp interop: wg-rp's sequence over h2c prior knowledge (curl and nghttp) through wireguard-go; HTTP/1.1 on the same port",
  async () => {
    const ns = await Netns.create("wrh2");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-rp-h2-" });
    try {
      const server = await wgKeyPair(), kernel = await wgKeyPair();
      const wgPort = freePort();
      const conf = `${dir}/server.conf`;
      await Deno.writeTextFile(
        conf,
        `[Interface]\nPrivateKey = ${server.privateKey}\nAddress = 10.89.0.1/24\nListenPort = ${wgPort}\n\n` +
          `[Peer]\nPublicKey = ${kernel.publicKey}\nAllowedIPs = 10.89.0.2/32\n`,
        { mode: 0o600 },
      );
      await WireguardGo.start(ns, {
        privateKey: kernel.privateKey,
        addresses: ["10.89.0.2/24"],
        peers: [{
          publicKey: server.publicKey,
          allowedIps: ["10.89.0.1/32"],
          endpoint: `127.0.0.1:${wgPort}`,
          persistentKeepalive: 5,
        }],
      });
      // The client's service on its tunnel address (wg-rp's rpc listens there on client_port).
      ns.spawn([
        Deno.execPath(),
        "eval",
        `Deno.serve({ hostname: "10.89.0.2", port: 9000, onListen() {} }, ` +
        `(r) => new Response("service behind wireguard-go " + new URL(r.url).pathname + "\\n"))`,
      ]);
      await waitFor(
        async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes("10.89.0.2:9000"),
        "the service listening",
      );
      const child = ns.spawnWgedge(["rps", "-c", conf, "--allow-ports", "18000-18999"], { stderr: "piped" });
      const log = collect(child.stderr!);

      const base = "http://10.89.0.1/api/v1";
      // curl; -w puts the HTTP version and status on the last line.
      const curl = async (version: "--http2-prior-knowledge" | "--http1.1", ...args: string[]) => {
        const r = await ns.exec(
          [
            "curl",
            "-sS",
            "--max-time",
            "30",
            version,
            "-o",
            "-",
            "-w",
            "\n%{http_version} %{http_code}",
            ...args,
          ],
          { check: false },
        );
        const lines = r.stdout.trimEnd().split("\n");
        const [httpVersion, code] = (lines.pop() ?? "").split(" ");
        return { version: httpVersion, status: Number(code), body: lines.join("\n"), stderr: r.stderr };
      };
      // nghttp speaks only HTTP/2 (prior knowledge for http://); -v shows the response's :status.
      const nghttp = async (...args: string[]) => {
        const r = await ns.exec(["nghttp", "-v", "-t", "30", ...args], { check: false });
        const status = Number(/recv \(stream_id=\d+\) :status: (\d+)/.exec(r.stdout)?.[1] ?? 0);
        const body = r.stdout.split("\n").find((l) => l.startsWith("{")) ?? "";
        return { code: r.code, status, body: body.replace(/\[\s*\d+\.\d+\].*$/, ""), out: r.stdout };
      };
      const page = (port: number) =>
        ns.exec(["curl", "-sS", "--max-time", "30", `http://127.0.0.1:${port}/x`], { check: false });

      // Availability check: the heartbeat wg-rp's rpc sends first, over HTTP/2 (the tunnel may need a
      // handshake and rps a moment to start).
      const heartbeat = JSON.stringify({ client_ip: "10.89.0.2" });
      await waitFor(
        async () =>
          (await curl("--http2-prior-knowledge", "-d", heartbeat, `${base}/heartbeat`)).status === 200,
        "the rps API to answer h2c through wireguard-go",
        200,
        100,
      );

      // curl, HTTP/2 with prior knowledge: heartbeat, register, heartbeat, public port, delete.
      {
        const hb = await curl("--http2-prior-knowledge", "-d", heartbeat, `${base}/heartbeat`);
        assertEquals([hb.version, hb.status], ["2", 200], hb.stderr);
        assertStringIncludes(hb.body, '"message":"Heartbeat received"');
        const reg = await curl(
          "--http2-prior-knowledge",
          "-H",
          "content-type: application/json",
          "-d",
          '{"local_addr":"127.0.0.1:8080","remote_port":18080,"client_ip":"10.89.0.2","client_port":9000}',
          `${base}/port-mappings`,
        );
        assertEquals([reg.version, reg.status], ["2", 200], reg.body);
        assertStringIncludes(reg.body, '"success":true');
        const hb2 = await curl("--http2-prior-knowledge", "-d", heartbeat, `${base}/heartbeat`);
        assertEquals(hb2.status, 200);
        assertStringIncludes(hb2.body, '"remote_port":18080');
        assertEquals((await page(18080)).stdout, "service behind wireguard-go /x\n");
        const del = await curl("--http2-prior-knowledge", "-X", "DELETE", `${base}/port-mappings?port=18080`);
        assertEquals([del.version, del.status], ["2", 200], del.body);
        assert((await page(18080)).code !== 0, "public port closed after delete");
      }

      // nghttp: the same sequence.
      {
        const hbFile = `${dir}/heartbeat.json`, regFile = `${dir}/register.json`;
        await Deno.writeTextFile(hbFile, heartbeat);
        await Deno.writeTextFile(
          regFile,
          '{"local_addr":"127.0.0.1:8080","remote_port":18081,"client_ip":"10.89.0.2","client_port":9000}',
        );
        const hb = await nghttp("-d", hbFile, `${base}/heartbeat`);
        assertEquals([hb.code, hb.status], [0, 200], hb.out);
        assertStringIncludes(hb.body, '"message":"Heartbeat received"');
        const reg = await nghttp(
          "-H",
          "content-type: application/json",
          "-d",
          regFile,
          `${base}/port-mappings`,
        );
        assertEquals(reg.status, 200, reg.out);
        assertStringIncludes(reg.body, '"success":true');
        const hb2 = await nghttp("-d", hbFile, `${base}/heartbeat`);
        assertEquals(hb2.status, 200, hb2.out);
        assertStringIncludes(hb2.body, '"remote_port":18081');
        assertEquals((await page(18081)).stdout, "service behind wireguard-go /x\n");
        const del = await nghttp("-H", ":method: DELETE", `${base}/port-mappings?port=18081`);
        assertEquals(del.status, 200, del.out);
        assert((await page(18081)).code !== 0, "public port closed after delete");
      }

      // HTTP/1.1 keeps working on the same port.
      const h1 = await curl("--http1.1", "-d", heartbeat, `${base}/heartbeat`);
      assertEquals([h1.version, h1.status], ["1.1", 200], h1.stderr);
      assertStringIncludes(h1.body, '"server_startup_time"');

      child.kill("SIGTERM");
      await child.status;
      await log.done;
      assertStringIncludes(log.text(), "mapping created");
    } finally {
      await ns.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
  { tools: ["curl", "nghttp"] },
);
