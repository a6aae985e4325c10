/**
 * The userspace stack against the Linux kernel's IP, ICMP, UDP and TCP, across a wireguard-go tunnel:
 * kernel ping (v4/v6, full-MTU, fragmented both ways), kernel UDP (checksums verified by the kernel), UDP datagrams larger than
 * the MTU that the kernel fragments and we reassemble (and echo back fragmented), and a 1 MiB TCP echo with half-close.
 */
import { assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { collect, interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";

const PEER = new URL("./netstack_interop_peer.ts", import.meta.url).pathname;
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;

async function setup() {
  const ns = await Netns.create("wgns");
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
      PEER,
      ours.privateKey,
      ref.publicKey,
      "127.0.0.1:51820",
    ],
    { stdout: "piped", stderr: "piped", env: { NO_COLOR: "1" } },
  );
  const out = collect(child.stdout), err = collect(child.stderr);
  await waitFor(() => out.text().includes("READY"), `peer did not start: ${err.text()}`, 600, 50);
  return { ns, out, err };
}

interopTest(
  "netstack interop: kernel ping, UDP, fragmented UDP and TCP against the userspace stack",
  async () => {
    const { ns, err } = await setup();
    const dir = await Deno.makeTempDir({ prefix: "wgedge-netstack-" });
    try {
      // ICMP echo answered by our stack, including a packet of exactly the MTU (1420 = 20 + 8 + 1392).
      // A 3000-byte ping is fragmented by the kernel, reassembled by us, and our fragmented reply is
      // reassembled by the kernel.
      const pings = [
        ["10.77.0.2"],
        ["-6", "fd77::2"],
        ["-s", "1392", "-M", "do", "10.77.0.2"],
        ["-s", "3000", "10.77.0.2"],
        ["-6", "-s", "3000", "fd77::2"],
      ];
      for (const args of pings) {
        const r = await ns.exec(["ping", "-c", "3", "-i", "0.2", "-W", "3", ...args], { check: false });
        assertEquals(r.code, 0, `ping ${args.join(" ")}: ${r.stdout}${r.stderr}\n${err.text()}`);
      }
      // UDP echo from kernel sockets (the kernel drops replies with a bad checksum).
      for (const target of ["10.77.0.2", "[fd77::2]"]) {
        const r = await ns.exec(["socat", "-T", "3", "-", `UDP:${target}:7`], { stdin: `hello ${target}\n` });
        assertEquals(r.stdout, `hello ${target}\n`);
      }
      // 4000-byte datagrams: the kernel fragments them (tunnel MTU 1420), our stack reassembles.
      const big = new Uint8Array(4000).map((_, i) => (i * 13) & 0xff);
      let sum = 0;
      for (const b of big) sum = (sum * 31 + b) >>> 0;
      const bigFile = `${dir}/big.bin`;
      await Deno.writeFile(bigFile, big);
      for (const target of ["10.77.0.2", "[fd77::2]"]) {
        const r = await ns.exec(["sh", "-c", `socat -T 3 -b 65536 - UDP:${target}:9 < ${bigFile}`]);
        assertEquals(r.stdout, `4000 ${sum}\n`, `fragmented UDP to ${target}`);
        // And echoed back whole: our fragments, reassembled by the kernel.
        const echoed = await ns.exec([
          "sh",
          "-c",
          `socat -T 3 -b 65536 - UDP:${target}:7 < ${bigFile} | wc -c`,
        ]);
        assertEquals(echoed.stdout.trim(), "4000", `fragmented UDP echo from ${target}`);
      }
      // 1 MiB TCP echo against kernel TCP, both families; socat half-closes after sending.
      const data = new Uint8Array(1 << 20).map((_, i) => (i * 7 + (i >> 11)) & 0xff);
      const dataFile = `${dir}/data.bin`;
      await Deno.writeFile(dataFile, data);
      for (const target of ["10.77.0.2", "[fd77::2]"]) {
        const outFile = `${dir}/out.bin`;
        await ns.exec(["sh", "-c", `socat -T 20 -b 65536 - TCP:${target}:7 < ${dataFile} > ${outFile}`]);
        const back = await Deno.readFile(outFile);
        assertEquals(back.length, data.length, `TCP echo length via ${target}`);
        let same = true;
        for (let i = 0; i < data.length; i++) {
          if (back[i] !== data[i]) {
            same = false;
            break;
          }
        }
        assertEquals(same, true, `TCP echo bytes via ${target}`);
      }
      assertStringIncludes(err.text(), "stats rx=");
    } finally {
      await ns.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
