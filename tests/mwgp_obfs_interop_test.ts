/**
 * The obfuscated path against real peers: wireguard-go client -> wgedge mwgp client (obfs) -> wgedge mwgp
 * server (obfs) -> wireguard-go server, with a tcpdump capture of the obfuscated leg; a vanilla wireguard-go
 * client on the same obfs-enabled server; and a wgedge tunnel with `Obfs =` talking to the server directly.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { interopTest, type Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { startCapture as startPcap, udpPayloads } from "./helpers/pcap.ts";
import { MwgpTopology, startMwgp } from "./helpers/mwgp.ts";

async function pingUntil(ns: Netns, addr: string, what: string): Promise<void> {
  await waitFor(
    async () => (await ns.exec(["ping", "-c", "1", "-W", "1", addr], { check: false })).code === 0,
    what,
    30,
    100,
  );
}

function startCapture(ns: Netns, ifname: string, file: string): Promise<Deno.ChildProcess> {
  return startPcap(ns, ifname, file, ["udp", "port", "1000"]);
}

interopTest(
  "mwgp obfs: wireguard-go -> mwgp client -> mwgp server -> wireguard-go; capture; vanilla and wgedge Obfs",
  async () => {
    const topo = await MwgpTopology.create();
    try {
      const [s1, c1, c2, c3] = await Promise.all([wgKeyPair(), wgKeyPair(), wgKeyPair(), wgKeyPair()]);
      const hub = topo.hub;
      await WireguardGo.start(hub, {
        privateKey: s1.privateKey,
        listenPort: 51001,
        addresses: ["10.1.0.1/24"],
        peers: [
          { publicKey: c1.publicKey, allowedIps: ["10.1.0.2/32"] },
          { publicKey: c2.publicKey, allowedIps: ["10.1.0.3/32"] },
          { publicKey: c3.publicKey, allowedIps: ["10.1.0.4/32"] },
        ],
      });
      const password = "kisekimo, mahoumo, muryoudewaarimasen";
      const serverCfg = await topo.writeFile(
        "server.json5",
        `{ listen: ":1000", obfs: "${password}",
         servers: [{ privkey: "${s1.privateKey}", address: "127.0.0.1", peers: [{ forward_to: ":51001" }] }] }`,
      );
      const server = await startMwgp(hub, ["server", serverCfg, "--no-cache"]);

      // Client 1: vanilla wireguard-go behind a local wgedge mwgp client that obfuscates the WAN leg.
      const { ns: ns1, hubAddr: hub1 } = await topo.addClient(1);
      const clientCfg = await topo.writeFile(
        "client.json5",
        `{ server: "${hub1}:1000", listen: "127.0.0.1:2000", obfs: "${password}",
         server_pubkey: "${s1.publicKey}", client_pubkey: "${c1.publicKey}" }`,
      );
      const pcap = `${topo.dir}/obfs.pcap`;
      const tcpdump = await startCapture(ns1, "mwc1", pcap);
      const client = await startMwgp(ns1, ["client", clientCfg, "--no-cache"]);
      await WireguardGo.start(ns1, {
        privateKey: c1.privateKey,
        addresses: ["10.1.0.2/24"],
        peers: [{ publicKey: s1.publicKey, allowedIps: ["10.1.0.0/24"], endpoint: "127.0.0.1:2000" }],
      });
      await pingUntil(ns1, "10.1.0.1", "obfuscated client path");
      // Large packets (>= 256 bytes: tag-as-nonce, no overhead) and small ones both cross.
      const big = await ns1.exec(["ping", "-c", "3", "-s", "1200", "-W", "10", "10.1.0.1"], { check: false });
      assertEquals(big.code, 0, big.stdout);
      tcpdump.kill("SIGTERM");
      await tcpdump.status;
      const payloads = udpPayloads(await Deno.readFile(pcap));
      assert(payloads.length >= 6, `captured ${payloads.length} datagrams on the obfuscated leg`);
      const vanilla = payloads.filter((p) =>
        p.length >= 4 && p[0] >= 1 && p[0] <= 4 && p[1] === 0 && p[2] === 0 && p[3] === 0
      );
      assertEquals(
        vanilla.length,
        0,
        "no datagram on the obfuscated leg starts with a WireGuard type and three zeros",
      );
      assert(payloads.some((p) => p.length >= 1200), "large transports crossed the obfuscated leg");

      // Client 2: vanilla wireguard-go straight to the obfs-enabled server.
      const { ns: ns2, hubAddr: hub2 } = await topo.addClient(2);
      await WireguardGo.start(ns2, {
        privateKey: c2.privateKey,
        addresses: ["10.1.0.3/24"],
        peers: [{ publicKey: s1.publicKey, allowedIps: ["10.1.0.0/24"], endpoint: `${hub2}:1000` }],
      });
      await pingUntil(ns2, "10.1.0.1", "vanilla client on an obfs-enabled server");

      // Client 3: a wgedge tunnel with Obfs, no mwgp client in between.
      const { ns: ns3, hubAddr: hub3 } = await topo.addClient(3);
      const wgConf = await topo.writeFile(
        "wgedge.conf",
        `[Interface]\nPrivateKey = ${c3.privateKey}\nAddress = 10.1.0.4/32\nObfs = ${password}\n\n` +
          `[Peer]\nPublicKey = ${s1.publicKey}\nAllowedIPs = 10.1.0.0/24\nEndpoint = ${hub3}:1000\n`,
      );
      const tcpdump3 = await startCapture(ns3, "mwc3", `${pcap}.3`);
      const ping = ns3.spawnWgedge(["ping", "-c", wgConf, "-n", "3", "-W", "20", "10.1.0.1"], {
        stdout: "piped",
        stderr: "piped",
      });
      const out = await ping.output();
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, `${text}\n${new TextDecoder().decode(out.stderr)}`);
      assert(text.includes("bytes from 10.1.0.1"), text);
      tcpdump3.kill("SIGTERM");
      await tcpdump3.status;
      const p3 = udpPayloads(await Deno.readFile(`${pcap}.3`));
      assert(p3.length >= 4, `captured ${p3.length} datagrams from the wgedge tunnel`);
      assertEquals(
        p3.filter((p) => p.length >= 4 && p[0] >= 1 && p[0] <= 4 && p[1] === 0 && p[2] === 0 && p[3] === 0)
          .length,
        0,
        "the wgedge tunnel's datagrams are obfuscated too",
      );

      await client.stop();
      await server.stop();
      assert(
        !server.log().includes(password) && !client.log().includes(password),
        "the password never reaches the log",
      );
    } finally {
      await topo.destroy();
    }
  },
  { tools: ["tcpdump", "ping"] },
);
