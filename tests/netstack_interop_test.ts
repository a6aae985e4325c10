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
  try {
    const ours = await wgKeyPair(), ref = await wgKeyPair();
    const wg = await WireguardGo.start(ns, {
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
    // wireguard-go learns the peer's endpoint only from its handshake (sent right after READY): until then the
    // kernel's packets to the peer are dropped.
    await waitFor(
      async () => (await wg.show("latest-handshakes")).trim().split(/\s+/)[1] !== "0",
      `handshake from the peer\n${err.text()}`,
    );
    return { ns, out, err };
  } catch (e) {
    await ns.destroy(); // the caller's finally only sees a finished setup
    throw e;
  }
}

/**
 * One UDP datagram from a kernel socket (socat in the namespace); resolves with what came back once `done`
 * says the reply is complete (bounded at 60 s). socat's -T inactivity wait cannot end early for UDP, and a
 * loaded machine can take longer than a few seconds to answer.
 */
async function udpExchange(
  ns: Netns,
  target: string,
  payload: Uint8Array,
  done: (reply: Uint8Array) => boolean,
): Promise<Uint8Array> {
  const child = ns.spawn(["socat", "-b", "65536", "-", `UDP:${target}`], { stdin: "piped", stdout: "piped" });
  const chunks: Uint8Array[] = [];
  const reply = () => {
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let off = 0;
    for (const c of chunks) all.set(c, (off += c.length) - c.length);
    return all;
  };
  const reading = (async () => {
    for await (const c of child.stdout) chunks.push(c);
  })().catch(() => {});
  const stdin = child.stdin.getWriter();
  try {
    await stdin.write(payload); // < PIPE_BUF (4096): socat reads it whole, so it is one datagram
    await waitFor(() => done(reply()), `UDP reply from ${target}`);
    return reply();
  } finally {
    await stdin.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await reading;
  }
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
        // -w (deadline): wait up to 30 s for the 3 replies; without it iputils ping gives up on outstanding
        // replies max(2 RTT, interval) after its last request, which a loaded machine can exceed.
        const r = await ns.exec(["ping", "-c", "3", "-i", "0.2", "-w", "30", ...args], { check: false });
        assertEquals(r.code, 0, `ping ${args.join(" ")}: ${r.stdout}${r.stderr}\n${err.text()}`);
      }
      // UDP echo from kernel sockets (the kernel drops replies with a bad checksum).
      const enc = new TextEncoder(), dec = new TextDecoder();
      for (const target of ["10.77.0.2", "[fd77::2]"]) {
        const line = `hello ${target}\n`;
        const r = await udpExchange(ns, `${target}:7`, enc.encode(line), (got) => got.length >= line.length);
        assertEquals(dec.decode(r), line);
      }
      // 4000-byte datagrams: the kernel fragments them (tunnel MTU 1420), our stack reassembles.
      const big = new Uint8Array(4000).map((_, i) => (i * 13) & 0xff);
      let sum = 0;
      for (const b of big) sum = (sum * 31 + b) >>> 0;
      for (const target of ["10.77.0.2", "[fd77::2]"]) {
        const digest = await udpExchange(ns, `${target}:9`, big, (got) => got.includes(0x0a));
        assertEquals(dec.decode(digest), `4000 ${sum}\n`, `fragmented UDP to ${target}`);
        // And echoed back whole: our fragments, reassembled by the kernel.
        const echoed = await udpExchange(ns, `${target}:7`, big, (got) => got.length >= big.length);
        assertEquals(echoed, big, `fragmented UDP echo from ${target}`);
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
      await waitFor(() => err.text().includes("stats rx="), "the peer's stats line (every second)").catch(
        () => {},
      );
      assertStringIncludes(err.text(), "stats rx=");
    } finally {
      await ns.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
