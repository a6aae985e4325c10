/**
 * WARP reserved bytes on the wire, seen by tcpdump: two wgedge devices on real UDP sockets on loopback, `a`
 * with `Reserved = 1,2,3` for its peer. Every datagram `a` sends (initiation, response, cookie reply, transport)
 * carries 1,2,3 at offsets 1..3; `b`, without the key, sends zeros, and accepts a's messages.
 *
 * The peer is a wgedge device, not wireguard-go: wireguard-go reads the first four bytes as one little-endian
 * message type (device/receive.go), so it drops any message with nonzero reserved bytes; only WARP's servers
 * (and WARP-aware clients such as wgedge) accept them. The second test shows exactly that against a real
 * wireguard-go: the same tunnel reaches it without `Reserved` and gets no handshake with it.
 */
import { assert, assertEquals, assertNotEquals, assertStringIncludes } from "./helpers/assert.ts";
import { interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { runWgedge, writeConf } from "./helpers/wgedge_proc.ts";
import { startCapture, udpDatagrams } from "./helpers/pcap.ts";
import { freePort } from "./helpers/ports.ts";
import { assertReservedOnWire, exchangeEveryType, reservedPair } from "./helpers/reserved_pair.ts";

interopTest(
  "reserved: tcpdump sees 1,2,3 at offsets 1-3 of every message type a Reserved tunnel sends",
  async () => {
    const aPort = freePort(), bPort = freePort();
    const dir = await Deno.makeTempDir({ prefix: "wgedge-reserved-" });
    const pcap = `${dir}/reserved.pcap`;
    const tcpdump = await startCapture(undefined, "lo", pcap, [
      "udp",
      "and",
      "(",
      "port",
      String(aPort),
      "or",
      "port",
      String(bPort),
      ")",
    ]);
    const p = reservedPair({ aPort, bPort, host: "127.0.0.1", aOpts: {}, bOpts: {} });
    const sent = { a: 0, b: 0 };
    const captured = async () => {
      const all = udpDatagrams(await Deno.readFile(pcap));
      return {
        fromA: all.filter((d) => d.srcPort === aPort && d.dstPort === bPort).map((d) => d.payload),
        fromB: all.filter((d) => d.srcPort === bPort && d.dstPort === aPort).map((d) => d.payload),
      };
    };
    try {
      await p.a.start();
      await p.b.start();
      await exchangeEveryType(p, (cond, what) => waitFor(cond, what));
      sent.a = p.a.stats.txDatagrams;
      sent.b = p.b.stats.txDatagrams;
      // Every datagram the devices counted as sent is in the file before the capture stops.
      await waitFor(async () => {
        const c = await captured();
        return c.fromA.length >= sent.a && c.fromB.length >= sent.b;
      }, `the capture to hold ${sent.a} + ${sent.b} datagrams`);
    } finally {
      p.a.close();
      p.b.close();
      tcpdump.kill("SIGTERM");
      await tcpdump.status;
    }
    try {
      const { fromA, fromB } = await captured();
      assertReservedOnWire(fromA, fromB);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
  { tools: ["tcpdump"] },
);

interopTest(
  "reserved: wireguard-go drops messages with nonzero reserved bytes (so Reserved is for WARP)",
  async () => {
    const ns = await Netns.create("wgr");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-reserved-go-" });
    ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    try {
      const mine = await wgKeyPair(), ref = await wgKeyPair();
      const wg = await WireguardGo.start(ns, {
        privateKey: ref.privateKey,
        listenPort: 51820,
        addresses: ["10.76.0.1/24"],
        peers: [{ publicKey: mine.publicKey, allowedIps: ["10.76.0.2/32"] }],
      });
      const conf = (reserved: string) =>
        `[Interface]\nPrivateKey = ${mine.privateKey}\nAddress = 10.76.0.2/32\n\n[Peer]\n` +
        `PublicKey = ${ref.publicKey}\nAllowedIPs = 10.76.0.1/32\nEndpoint = 127.0.0.1:51820\n${reserved}`;
      const withKey = await writeConf(dir, "reserved.conf", conf("Reserved = 1,2,3\n"));
      // Two initiations at most (one REKEY_TIMEOUT apart) within -W 7: wireguard-go answers none of them.
      const refused = await runWgedge(ns, ["ping", "-c", withKey, "-n", "1", "-W", "7", "10.76.0.1"]);
      assertNotEquals(refused.code, 0, refused.stdout);
      assertStringIncludes(
        refused.stdout,
        "1 packets transmitted, 0 received",
        "the tunnel ran; no reply came",
      );
      assertEquals((await wg.show("latest-handshakes")).trim().split(/\s+/)[1], "0", "no handshake");
      const plain = await writeConf(dir, "plain.conf", conf(""));
      const ok = await runWgedge(ns, ["ping", "-c", plain, "-n", "1", "-W", "20", "10.76.0.1"]);
      assertEquals(ok.code, 0, `${ok.stdout}${ok.stderr}`);
      assert(
        (await wg.show("latest-handshakes")).trim().split(/\s+/)[1] !== "0",
        "handshake without Reserved",
      );
    } finally {
      await ns.destroy();
    }
  },
);
