/**
 * The userspace TCP/IP stack against the Linux kernel's TCP on the far side of wireguard-go (testing.md):
 * 64 MiB byte-exact both directions with wgedge as client and as server, IPv4 and IPv6; 100 concurrent
 * connections of 1 MiB each; half-close; RST -> "connection refused"; UDP echo both ways; curl against an
 * HTTP server on the wgedge stack, and curl through `wgedge up --forward` to a kernel-side HTTP server.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import {
  collect,
  DENO_JSON,
  interopTest,
  Netns,
  waitFor,
  wgKeyPair,
  WireguardGo,
} from "./helpers/interop.ts";
import { startWgedge, waitForOutput, writeConf } from "./helpers/wgedge_proc.ts";

const PEER_TS = new URL("./helpers/tunnel_peer.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;
const BIG = 64 * MiB;

interface Peer {
  out: () => string;
  err: () => string;
  result(prefix?: string): Promise<Record<string, string>>;
  kill(): Promise<void>;
}

function startPeer(ns: Netns, args: string[]): Peer {
  const child = ns.spawn([Deno.execPath(), "run", "-A", "--config", DENO_JSON, PEER_TS, ...args], {
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const out = collect(child.stdout), err = collect(child.stderr);
  return {
    out: out.text,
    err: err.text,
    async result(prefix = "RESULT") {
      // Bounded generously (5 min): CI runs interop files in parallel on 2 cores.
      await waitFor(
        () => out.text().includes(prefix + " "),
        `${prefix} from peer ${args[1]}\n${err.text()}`,
        6000,
        50,
      );
      const line = out.text().split("\n").find((l) => l.startsWith(prefix + " "))!;
      if (line.includes(" error=")) return { error: line.slice(line.indexOf(" error=") + 7) };
      return Object.fromEntries(
        line.slice(prefix.length + 1).split(" ").map((kv) => {
          const i = kv.indexOf("=");
          return [kv.slice(0, i), kv.slice(i + 1)];
        }),
      );
    },
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await Promise.all([out.done, err.done]);
    },
  };
}

async function ready(p: Peer): Promise<void> {
  await waitFor(() => p.out().includes("READY"), `peer READY\n${p.err()}`, 600, 50);
}

/**
 * Sends `msg` over UDP from the kernel side (socat in the namespace) until its echo comes back, bounded at
 * 60 s, and returns what came back. Resending covers a datagram lost while a freshly started wgedge process
 * and wireguard-go agree on a new session; the wait ends with the echo instead of socat's fixed -t after
 * stdin EOF, which a UDP reply cannot end early (and which a loaded machine can outlast).
 */
async function udpEchoFromKernel(ns: Netns, target: string, msg: string): Promise<string> {
  const child = ns.spawn(["socat", "-", `UDP:${target}`], { stdin: "piped", stdout: "piped" });
  const out = collect(child.stdout);
  const stdin = child.stdin.getWriter();
  try {
    const datagram = new TextEncoder().encode(`${msg}\n`);
    for (let i = 0; i < 30 && !out.text().includes(msg); i++) {
      await stdin.write(datagram);
      for (let j = 0; j < 40 && !out.text().includes(msg); j++) await new Promise((r) => setTimeout(r, 50));
    }
    return out.text();
  } finally {
    await stdin.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await out.done;
  }
}

async function sha256File(ns: Netns, path: string): Promise<string> {
  return (await ns.exec(["sha256sum", path])).stdout.split(" ")[0];
}

interopTest("interop TCP/UDP: userspace stack against the kernel through wireguard-go", async (t) => {
  const ns = await Netns.create("wgt");
  const dir = await Deno.makeTempDir({ prefix: "wgedge-tcp-" });
  ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
  try {
    const mine = await wgKeyPair(), ref = await wgKeyPair();
    await WireguardGo.start(ns, {
      privateKey: ref.privateKey,
      listenPort: 51820,
      addresses: ["10.77.0.1/24", "fd77::1/64"],
      peers: [{
        publicKey: mine.publicKey,
        allowedIps: ["10.77.0.2/32", "fd77::2/128"],
        endpoint: "127.0.0.1:51821",
      }],
    });
    const conf = await writeConf(
      dir,
      "wgedge.conf",
      `[Interface]\nPrivateKey = ${mine.privateKey}\nAddress = 10.77.0.2/32, fd77::2/128\nListenPort = 51821\n\n` +
        `[Peer]\nPublicKey = ${ref.publicKey}\nAllowedIPs = 10.77.0.1/32, fd77::1/128\nEndpoint = 127.0.0.1:51820\n` +
        // Each step starts a fresh wgedge process; the keepalive makes it handshake at once, as a peer behind
        // NAT would, instead of waiting for wireguard-go to notice the old session is gone.
        `PersistentKeepalive = 25\n`,
    );
    const src = `${dir}/src.bin`;
    await ns.exec(["sh", "-c", `head -c ${BIG} /dev/urandom > ${src}`]);
    const srcSha = await sha256File(ns, src);
    await ns.exec(["chmod", "0444", src]); // no step may write into the source by accident
    let port = 9000;

    for (
      const [fam, kernelIp, wgedgeIp] of [["IPv4", "10.77.0.1", "10.77.0.2"], ["IPv6", "fd77::1", "fd77::2"]]
    ) {
      const sockIp = fam === "IPv6" ? `[${kernelIp}]` : kernelIp;
      const sockWgedge = fam === "IPv6" ? `[${wgedgeIp}]` : wgedgeIp;
      const tcp = fam === "IPv6" ? "TCP6" : "TCP4";

      await t.step(`${fam}: wgedge client sends 64 MiB to a kernel server, byte-exact`, async () => {
        const p0 = port++;
        const dst = `${dir}/recv-${p0}.bin`;
        const server = ns.spawn([
          "socat",
          "-u",
          `${tcp}-LISTEN:${p0},bind=${sockIp},reuseaddr`,
          `CREATE:${dst}`,
        ]);
        await waitFor(
          async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes(`:${p0}`),
          "socat listening",
        );
        const peer = startPeer(ns, [conf, "dial-send", kernelIp, String(p0), String(BIG)]);
        try {
          const r = await peer.result();
          await server.status;
          assertEquals(r.bytes, String(BIG));
          assertEquals(await sha256File(ns, dst), r.sha, "kernel received exactly what wgedge sent");
        } finally {
          await peer.kill();
        }
      });

      await t.step(`${fam}: wgedge client receives 64 MiB from a kernel server, byte-exact`, async () => {
        const p0 = port++;
        ns.spawn(["socat", "-u", `OPEN:${src}`, `${tcp}-LISTEN:${p0},bind=${sockIp},reuseaddr`]);
        await waitFor(
          async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes(`:${p0}`),
          "socat listening",
        );
        const peer = startPeer(ns, [conf, "dial-recv", kernelIp, String(p0)]);
        try {
          const r = await peer.result();
          assertEquals(r.bytes, String(BIG));
          assertEquals(r.sha, srcSha);
        } finally {
          await peer.kill();
        }
      });

      await t.step(
        `${fam}: wgedge server receives 64 MiB; after the kernel's FIN wgedge still sends 1 MiB (half-close)`,
        async () => {
          const p0 = port++;
          const peer = startPeer(ns, [conf, "sink", String(p0), String(MiB)]);
          try {
            await ready(peer);
            const back = `${dir}/back-${p0}.bin`;
            // socat shuts its write side at the end of its input and keeps reading (-t: wait for the reply).
            const client = await ns.exec(
              ["sh", "-c", `socat -t 60 - ${tcp}:${sockWgedge}:${p0} < ${src} > ${back}`],
              { check: false },
            );
            assertEquals(client.code, 0, client.stderr);
            const r = await peer.result();
            assertEquals(r.bytes, String(BIG));
            assertEquals(r.sha, srcSha);
            const reply = await peer.result("REPLY");
            assertEquals(
              await sha256File(ns, back),
              reply.sha,
              "the 1 MiB sent after the kernel's FIN arrived whole",
            );
          } finally {
            await peer.kill();
          }
        },
      );

      await t.step(`${fam}: wgedge server sends 64 MiB to a kernel client, byte-exact`, async () => {
        const p0 = port++;
        const peer = startPeer(ns, [conf, "source", String(p0), String(BIG)]);
        try {
          await ready(peer);
          const dst = `${dir}/pulled-${p0}.bin`;
          const client = await ns.exec(["socat", "-u", `${tcp}:${sockWgedge}:${p0}`, `CREATE:${dst}`], {
            check: false,
          });
          assertEquals(client.code, 0, client.stderr);
          const r = await peer.result();
          assertEquals(await sha256File(ns, dst), r.sha);
        } finally {
          await peer.kill();
        }
      });
    }

    await t.step(
      "half-close with a tiny request: the 1 MiB reply after the kernel's FIN arrives whole",
      async () => {
        const p0 = port++;
        const peer = startPeer(ns, [conf, "sink", String(p0), String(MiB)]);
        try {
          await ready(peer);
          const back = `${dir}/halfclose-${p0}.bin`;
          const r = await ns.exec([
            "sh",
            "-c",
            `head -c 1000 /dev/zero | socat -t 30 - TCP4:10.77.0.2:${p0} > ${back}`,
          ], { check: false });
          assertEquals(r.code, 0, r.stderr);
          const reply = await peer.result("REPLY");
          assertEquals(
            await sha256File(ns, back),
            reply.sha,
            "all 1 MiB sent after the kernel's FIN arrived",
          );
        } finally {
          await peer.kill();
        }
      },
    );

    await t.step("100 concurrent connections of 1 MiB each, each hashed by the kernel side", async () => {
      const p0 = port++;
      // Every accepted connection runs sha256sum over what it receives and sends the digest back.
      ns.spawn([
        "socat",
        "-t",
        "60",
        `TCP4-LISTEN:${p0},bind=10.77.0.1,reuseaddr,fork,backlog=256`,
        "EXEC:sha256sum",
      ]);
      await waitFor(
        async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes(`:${p0}`),
        "socat listening",
      );
      const peer = startPeer(ns, [conf, "concurrent", "10.77.0.1", String(p0), "100", String(MiB)]);
      try {
        const r = await peer.result();
        assertEquals(r.ok, "100", `all 100 streams byte-exact (${peer.err()})`);
      } finally {
        await peer.kill();
      }
    });

    await t.step("connection refused: the kernel's RST is reported as an error", async () => {
      const peer = startPeer(ns, [conf, "dial-refused", "10.77.0.1", "9999"]);
      try {
        const r = await peer.result();
        assert(r.error !== undefined, `dial failed (${JSON.stringify(r)})`);
        assertStringIncludes(r.error.toLowerCase(), "refused");
      } finally {
        await peer.kill();
      }
    });

    await t.step(
      "UDP echo: kernel client to a wgedge echo server, wgedge client to a kernel echo server, up --forward udp://",
      async () => {
        const peer = startPeer(ns, [conf, "udp-echo", "7000"]);
        try {
          await ready(peer);
          for (const target of ["10.77.0.2", "[fd77::2]"]) {
            assertStringIncludes(
              await udpEchoFromKernel(ns, `${target}:7000`, "hello-udp"),
              "hello-udp",
              `echo from ${target}`,
            );
          }
        } finally {
          await peer.kill();
        }
        ns.spawn(["socat", "UDP4-RECVFROM:7001,bind=10.77.0.1,fork", "EXEC:cat"]);
        await waitFor(
          async () => (await ns.exec(["ss", "-lun"], { check: false })).stdout.includes(":7001"),
          "udp echo",
        );
        const asker = startPeer(ns, [conf, "udp-ask", "10.77.0.1", "7001", "10"]);
        try {
          assertEquals((await asker.result()).ok, "10");
        } finally {
          await asker.kill();
        }
        // The same kernel echo server through `up --forward udp://`: a plain host UDP client reaches it.
        const up = startWgedge(ns, ["up", "-c", conf, "--forward", "udp://127.0.0.1:17001=10.77.0.1:7001"]);
        try {
          await waitForOutput(up, "forwarding");
          for (let i = 0; i < 3; i++) {
            assertStringIncludes(
              await udpEchoFromKernel(ns, "127.0.0.1:17001", `via-forward-${i}`),
              `via-forward-${i}`,
              `UDP through the forward (${up.stderr()})`,
            );
          }
        } finally {
          assertEquals((await up.stop()).code, 0);
        }
      },
    );

    await t.step(
      "curl on the kernel side fetches a page from an HTTP server on the wgedge stack (v4 and v6)",
      async () => {
        const peer = startPeer(ns, [conf, "http", "80"]);
        try {
          await ready(peer);
          const v4 = await ns.exec(["curl", "-sS", "--max-time", "30", "http://10.77.0.2/"], {
            check: false,
          });
          assertEquals(v4.stdout, "hello from the wgedge stack, you are 10.77.0.1\n", v4.stderr);
          const v6 = await ns.exec(["curl", "-sS", "-g", "--max-time", "30", "http://[fd77::2]/"], {
            check: false,
          });
          assertEquals(v6.stdout, "hello from the wgedge stack, you are fd77::1\n", v6.stderr);
        } finally {
          await peer.kill();
        }
      },
    );

    await t.step(
      "curl through `wgedge up --forward` reaches a kernel-side HTTP server across the tunnel",
      async () => {
        // A real HTTP server on the kernel side of the tunnel.
        const www = `${dir}/www`;
        await Deno.mkdir(www);
        await Deno.writeTextFile(`${www}/hello.txt`, "hello from the kernel side\n");
        ns.spawn(["python3", "-m", "http.server", "8000", "--bind", "10.77.0.1", "--directory", www]);
        await waitFor(
          async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes(":8000"),
          "http server",
        );
        const up = startWgedge(ns, ["up", "-c", conf, "--forward", "tcp://127.0.0.1:18080=10.77.0.1:8000"]);
        try {
          await waitForOutput(up, "forwarding");
          const r = await ns.exec(["curl", "-sS", "--max-time", "30", "http://127.0.0.1:18080/hello.txt"], {
            check: false,
          });
          assertEquals(r.stdout, "hello from the kernel side\n", r.stderr + up.stderr());
        } finally {
          assertEquals((await up.stop()).code, 0);
        }
      },
    );
  } finally {
    await ns.destroy();
  }
}, { tools: ["socat", "curl", "ss", "sha256sum", "python3"] });
