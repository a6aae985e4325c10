/**
 * Our TCP against the Linux kernel's TCP across a wireguard-go tunnel (testing.md recipe), on a clean path
 * and with 3 % loss on the namespace's loopback (which carries the tunnel's UDP both ways): byte-exact transfers in both directions, wgedge as server and as client, IPv4 and IPv6, half-close.
 * The kernel side exercises its SACK, timestamps, window scaling, delayed ACKs and window probes against us.
 *
 * The wgedge side is this same file run as a program (TCP_INTEROP_PEER=1) inside the namespace.
 */
import { createHash } from "node:crypto";
import { assertEquals } from "./helpers/assert.ts";
import { collect, interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { seededRandom } from "../src/util/random.ts";

const SELF = new URL(import.meta.url).pathname;
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;
const MiB = 1024 * 1024;
const SIZE = 8 * MiB;
const REPLY = 1 * MiB;

/** Deterministic stream: 64 KiB blocks of seeded bytes. */
function block(seed: number): Uint8Array {
  return seededRandom(seed)(new Uint8Array(65536));
}

async function sendStream(
  c: { write(p: Uint8Array): Promise<number> },
  total: number,
  seed: number,
): Promise<string> {
  const h = createHash("sha256");
  const b = block(seed);
  for (let sent = 0; sent < total;) {
    const chunk = b.subarray(0, Math.min(b.length, total - sent));
    h.update(chunk);
    for (let o = 0; o < chunk.length;) o += await c.write(chunk.subarray(o));
    sent += chunk.length;
  }
  return h.digest("hex");
}

async function runPeer(): Promise<void> {
  const { openTunnel } = await import("../src/net/tunnels.ts");
  const { decodeKey } = await import("../src/crypto/x25519.ts");
  const [priv, peerPub, endpoint] = Deno.args;
  const i = endpoint.lastIndexOf(":");
  const tunnel = await openTunnel({
    source: "tcp interop",
    iface: {
      privateKey: decodeKey(priv),
      addresses: [{ address: "10.77.0.2", prefix: 32 }, { address: "fd77::2", prefix: 128 }],
      mtu: 1420,
      dns: [],
    },
    peers: [{
      publicKey: decodeKey(peerPub),
      allowedIps: [{ address: "10.77.0.0", prefix: 24 }, { address: "fd77::", prefix: 64 }],
      endpoint: { host: endpoint.slice(0, i), port: Number(endpoint.slice(i + 1)) },
      persistentKeepalive: 1,
    }],
  }, { name: "tcpinterop" });
  const net = tunnel.net;
  // sink: read everything, report it, then answer REPLY bytes after the peer's FIN (half-close).
  (async () => {
    for await (const c of net.listenTcp({ port: 5001 })) {
      (async () => {
        const h = createHash("sha256");
        const buf = new Uint8Array(65536);
        let n = 0;
        for (;;) {
          const r = await c.read(buf);
          if (r === null) break;
          h.update(buf.subarray(0, r));
          n += r;
        }
        console.log(`SINK bytes=${n} sha=${h.digest("hex")}`);
        const sha = await sendStream(c, REPLY, 7);
        await c.closeWrite();
        console.log(`REPLY sha=${sha}`);
        c.close();
      })().catch((e) => console.log(`SINK error=${(e as Error).message.replaceAll(" ", "_")}`));
    }
  })();
  // source: send SIZE bytes and close.
  (async () => {
    for await (const c of net.listenTcp({ port: 5002 })) {
      (async () => {
        const sha = await sendStream(c, SIZE, 9);
        await c.closeWrite();
        console.log(`SOURCE sha=${sha}`);
        c.close();
      })().catch((e) => console.log(`SOURCE error=${(e as Error).message.replaceAll(" ", "_")}`));
    }
  })();
  // Commands on stdin: "dial HOST PORT" sends SIZE bytes to a kernel server.
  (async () => {
    const dec = new TextDecoder();
    let pending = "";
    for await (const chunk of Deno.stdin.readable) {
      pending += dec.decode(chunk);
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const [cmd, host, port] = pending.slice(0, nl).split(" ");
        pending = pending.slice(nl + 1);
        if (cmd !== "dial") continue;
        try {
          const c = await net.dialTcp(host, Number(port));
          const sha = await sendStream(c, SIZE, 11);
          await c.closeWrite();
          // Wait for the kernel's FIN before closing so nothing is reset.
          while (await c.read(new Uint8Array(1024)) !== null) { /* drain */ }
          c.close();
          console.log(`DIAL sha=${sha}`);
        } catch (e) {
          console.log(`DIAL error=${(e as Error).message.replaceAll(" ", "_")}`);
        }
      }
    }
  })();
  setInterval(() => {
    const t = tunnel.stack.stats.tcp!;
    console.error(`tcp ${JSON.stringify(t)}`);
  }, 2000);
  console.log("READY");
}

if (Deno.env.get("TCP_INTEROP_PEER") === "1") {
  await runPeer();
} else {
  interopTest(
    "tcp interop: kernel TCP through wireguard-go, clean and with 3% loss, v4 and v6",
    async (t) => {
      const ns = await Netns.create("wgtcp");
      const dir = await Deno.makeTempDir({ prefix: "wgedge-tcpi-" });
      ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
      try {
        const ours = await wgKeyPair(), ref = await wgKeyPair();
        await WireguardGo.start(ns, {
          privateKey: ref.privateKey,
          listenPort: 51820,
          addresses: ["10.77.0.1/24", "fd77::1/64"],
          peers: [{ publicKey: ours.publicKey, allowedIps: ["10.77.0.2/32", "fd77::2/128"] }],
        });
        const child = ns.spawn(
          [
            Deno.execPath(),
            "run",
            "-A",
            "--config",
            DENO_JSON,
            SELF,
            ours.privateKey,
            ref.publicKey,
            "127.0.0.1:51820",
          ],
          { stdout: "piped", stderr: "piped", stdin: "piped", env: { NO_COLOR: "1", TCP_INTEROP_PEER: "1" } },
        );
        const out = collect(child.stdout), err = collect(child.stderr);
        const stdin = child.stdin.getWriter();
        await waitFor(() => out.text().includes("READY"), `peer did not start: ${err.text()}`, 600, 50);
        // Bring the tunnel up (the keepalive handshakes at once).
        await waitFor(
          async () =>
            (await ns.exec(["ping", "-c", "1", "-W", "1", "10.77.0.2"], { check: false })).code === 0,
          "tunnel up",
          60,
          500,
        );
        const src = `${dir}/src.bin`;
        await ns.exec(["sh", "-c", `head -c ${SIZE} /dev/urandom > ${src}`]);
        const srcSha = (await ns.exec(["sha256sum", src])).stdout.split(" ")[0];
        const sha = async (f: string) => (await ns.exec(["sha256sum", f])).stdout.split(" ")[0];
        const nextLine = async (prefix: string) => {
          let line: string | undefined;
          await waitFor(
            () => {
              const lines = out.text().split("\n").filter((l) => l.startsWith(prefix + " "));
              line = lines.length > countOf(prefix) ? lines[countOf(prefix)] : undefined;
              return line !== undefined;
            },
            `${prefix} from peer\n${err.text().slice(-2000)}`,
            2400,
            50,
          );
          counts.set(prefix, countOf(prefix) + 1);
          return line!;
        };
        const counts = new Map<string, number>();
        const countOf = (p: string) => counts.get(p) ?? 0;
        let port = 6000;

        // netem is not available on these kernels; iptables' statistic match drops 3 % of the tunnel's UDP
        // packets in both directions (INPUT on lo sees both).
        const drop = [
          "INPUT",
          "-i",
          "lo",
          "-p",
          "udp",
          "-m",
          "statistic",
          "--mode",
          "random",
          "--probability",
          "0.03",
          "-j",
          "DROP",
        ];
        const scenarios: [string, boolean][] = [["clean", false], ["3% loss", true]];
        for (const [label, lossy] of scenarios) {
          if (lossy) await ns.exec(["iptables", "-A", ...drop]);
          for (
            const [fam, kernelIp, ourIp] of [["IPv4", "10.77.0.1", "10.77.0.2"], [
              "IPv6",
              "fd77::1",
              "fd77::2",
            ]]
          ) {
            const tcp = fam === "IPv6" ? "TCP6" : "TCP4";
            const bracket = (a: string) => fam === "IPv6" ? `[${a}]` : a;

            await t.step(
              `${label}, ${fam}: kernel client -> wgedge server, then 1 MiB back after the kernel's FIN`,
              async () => {
                const back = `${dir}/back-${port++}.bin`;
                const r = await ns.exec([
                  "sh",
                  "-c",
                  `socat -t 120 - ${tcp}:${bracket(ourIp)}:5001 < ${src} > ${back}`,
                ], { check: false });
                assertEquals(r.code, 0, r.stderr);
                assertEquals(await nextLine("SINK"), `SINK bytes=${SIZE} sha=${srcSha}`);
                const reply = await nextLine("REPLY");
                assertEquals(`REPLY sha=${await sha(back)}`, reply);
              },
            );

            await t.step(`${label}, ${fam}: wgedge server -> kernel client`, async () => {
              const dst = `${dir}/pulled-${port++}.bin`;
              const r = await ns.exec(["socat", "-u", `${tcp}:${bracket(ourIp)}:5002`, `CREATE:${dst}`], {
                check: false,
              });
              assertEquals(r.code, 0, r.stderr);
              assertEquals(await nextLine("SOURCE"), `SOURCE sha=${await sha(dst)}`);
            });

            await t.step(`${label}, ${fam}: wgedge client -> kernel server`, async () => {
              const p = port++;
              const dst = `${dir}/pushed-${p}.bin`;
              const server = ns.spawn([
                "socat",
                "-u",
                `${tcp}-LISTEN:${p},bind=${bracket(kernelIp)},reuseaddr`,
                `CREATE:${dst}`,
              ]);
              await waitFor(
                async () => (await ns.exec(["ss", "-ltn"], { check: false })).stdout.includes(`:${p}`),
                "socat listening",
              );
              await stdin.write(new TextEncoder().encode(`dial ${kernelIp} ${p}\n`));
              const line = await nextLine("DIAL");
              await server.status;
              assertEquals(line, `DIAL sha=${await sha(dst)}`);
            });
          }
          if (lossy) await ns.exec(["iptables", "-D", ...drop], { check: false });
        }
        console.log(err.text().trim().split("\n").filter((l) => l.startsWith("tcp ")).slice(-1)[0]);
        await stdin.close().catch(() => {});
      } finally {
        await ns.destroy();
      }
    },
  );
}
