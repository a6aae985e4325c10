/**
 * Restart of the mwgp server with its cache file: traffic keeps flowing with no new handshake (the server's
 * latest-handshake for the client is unchanged); with --no-cache the flow recovers after a re-handshake.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { interopTest, type Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { MwgpTopology, startMwgp } from "./helpers/mwgp.ts";

/** One echo request; `waitSec` bounds its reply (short while polling, generous where one must succeed). */
async function pingOnce(ns: Netns, addr: string, waitSec = 1): Promise<boolean> {
  return (await ns.exec(["ping", "-c", "1", "-W", String(waitSec), addr], { check: false })).code === 0;
}

async function latestHandshake(wg: WireguardGo, key: string): Promise<number> {
  const line = (await wg.show("latest-handshakes")).split("\n").find((l) => l.startsWith(key));
  return Number(line?.split("\t")[1] ?? 0);
}

interopTest(
  "mwgp cache: restart keeps sessions without a handshake; --no-cache recovers by re-handshake",
  async () => {
    const topo = await MwgpTopology.create();
    try {
      const [s1, c1] = await Promise.all([wgKeyPair(), wgKeyPair()]);
      const hub = topo.hub;
      const server = await WireguardGo.start(hub, {
        privateKey: s1.privateKey,
        listenPort: 51001,
        addresses: ["10.1.0.1/24"],
        peers: [{ publicKey: c1.publicKey, allowedIps: ["10.1.0.2/32"] }],
      });
      const cfg = await topo.writeFile(
        "server.json5",
        `{ listen: ":1000", servers: [{ privkey: "${s1.privateKey}", address: "127.0.0.1",
         peers: [{ pubkey: "${c1.publicKey}", forward_to: ":51001" }] }] }`,
      );
      const cacheFile = `${topo.dir}/state/wgit-cache.json`;
      let mwgp = await startMwgp(hub, ["server", cfg, "--cache-file", cacheFile]);
      const { ns, hubAddr } = await topo.addClient(1);
      await WireguardGo.start(ns, {
        privateKey: c1.privateKey,
        addresses: ["10.1.0.2/24"],
        peers: [{ publicKey: s1.publicKey, allowedIps: ["10.1.0.0/24"], endpoint: `${hubAddr}:1000` }],
      });
      await waitFor(() => pingOnce(ns, "10.1.0.1"), "first ping through mwgp", 30, 100);
      const hs1 = await latestHandshake(server, c1.publicKey);
      assert(hs1 > 0, "handshake happened");

      // The cache holds the completed handshake, written atomically with mode 0600.
      await waitFor(
        async () => {
          try {
            return JSON.parse(await Deno.readTextFile(cacheFile)).client_map.length === 1;
          } catch {
            return false;
          }
        },
        "cache file with one entry",
        50,
        100,
      );
      const cached = JSON.parse(await Deno.readTextFile(cacheFile)).client_map[0];
      for (
        const k of ["coidx", "cpidx", "soidx", "spidx", "cpk", "spk", "cdst", "sdst", "csvl", "ssvl", "obfe"]
      ) {
        assert(k in cached, `cache record has ${k}`);
      }
      assertEquals(cached.cpk, c1.publicKey);
      assertEquals((await Deno.stat(cacheFile)).mode! & 0o777, 0o600);
      assert(!(await Deno.readTextFile(cacheFile)).includes(s1.privateKey));

      // Restart with the cache: the next ping works and no handshake happens: the restarted mwgp routes no
      // initiation (its debug log, read after it stopped, names each one), and wireguard-go's handshake time
      // is unchanged (whole seconds: only a second check, no sleep to make it sharp).
      await mwgp.stop();
      mwgp = await startMwgp(hub, ["server", cfg, "--cache-file", cacheFile]);
      assert(mwgp.log().includes("forwarding table loaded from cache"), mwgp.log());
      for (let i = 0; i < 3; i++) {
        assert(await pingOnce(ns, "10.1.0.1", 10), `ping ${i} right after the restart`);
      }
      assertEquals(
        await latestHandshake(server, c1.publicKey),
        hs1,
        "no new handshake after a restart with cache",
      );
      await mwgp.stop();
      assert(
        !mwgp.log().includes("initiation routed"),
        `no initiation after a restart with cache:\n${mwgp.log()}`,
      );

      // A corrupt file is a warning and an empty table; --no-cache neither reads nor writes.
      await Deno.writeTextFile(cacheFile, "{ this is not json");
      mwgp = await startMwgp(hub, ["server", cfg, "--cache-file", cacheFile]);
      assert(mwgp.log().includes("corrupt"), "a corrupt cache file is a warning");
      await mwgp.stop();
      await Deno.remove(cacheFile);
      mwgp = await startMwgp(hub, ["server", cfg, "--cache-file", cacheFile, "--no-cache"]);
      // Without the table, the client's transports are unknown to mwgp until wireguard-go re-handshakes
      // (after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT = 15 s without an answer).
      await waitFor(() => pingOnce(ns, "10.1.0.1"), "flow recovery after re-handshake", 40, 250);
      assert(await latestHandshake(server, c1.publicKey) > hs1, "recovery needed a new handshake");
      assert(mwgp.log().includes("cache=disabled"), "--no-cache disables the cache");
      await Deno.stat(cacheFile).then(() => assert(false, "--no-cache must not write the cache"), () => {});
      await mwgp.stop();
    } finally {
      await topo.destroy();
    }
  },
  { tools: ["ping"] },
);
