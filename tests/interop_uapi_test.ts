/**
 * Debian's `wg` on wgedge tunnels through their UAPI sockets, with wireguard-go peers in a namespace: `wg show
 * dump` and `wg showconf` match the admin status; `wg set` removes a peer (traffic stops), adds one with
 * allowed-ips and endpoint (traffic flows), sets persistent-keepalive, listen-port, preshared-key and
 * private-key, each taking effect at once and showing in status. Then `up`'s naming and collisions.
 *
 * `wg` only looks in /var/run/wireguard, shared by every namespace: the tunnel names are random and unique.
 */
import { assert, assertEquals, assertNotEquals, assertStringIncludes } from "./helpers/assert.ts";
import { interopTest, Netns, waitFor, wgKeyPair, wgPsk, WireguardGo } from "./helpers/interop.ts";
import { startWgedge, waitForOutput, writeConf } from "./helpers/wgedge_proc.ts";

const UAPI_DIR = "/var/run/wireguard";

/** A name no other test (or interface) uses: `wgu` + random, at most 15 characters. */
function uniqueName(): string {
  const rnd = crypto.getRandomValues(new Uint32Array(2));
  return `wgu${rnd[0].toString(36)}${rnd[1].toString(36)}`.slice(0, 15);
}

interface PeerStatus {
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  persistentKeepalive: number;
  keying: string;
  lastHandshake: string | null;
  rxBytes: number;
  txBytes: number;
}
interface TunnelStatus {
  names: string[];
  publicKey: string;
  listenPort: number;
  peers: PeerStatus[];
}

async function pingOk(ns: Netns, addr: string): Promise<boolean> {
  const r = await ns.exec(["ping", "-c", "2", "-i", "0.2", "-w", "30", addr], { check: false });
  return r.code === 0;
}

/** A ping that must fail: 3 s without a reply (the path is cut, nothing is slow about it). */
async function pingFails(ns: Netns, addr: string): Promise<boolean> {
  const r = await ns.exec(["ping", "-c", "2", "-i", "0.5", "-w", "3", addr], { check: false });
  return r.code !== 0;
}

interopTest("uapi: wg show/showconf/set on a serve tunnel against wireguard-go peers", async () => {
  const ns = await Netns.create("wgu");
  const dir = await Deno.makeTempDir({ prefix: "wgedge-uapi-" });
  const name = uniqueName(), alias = uniqueName();
  ns.cleanups.push(async () => {
    await Deno.remove(dir, { recursive: true });
    for (const n of [name, alias]) await Deno.remove(`${UAPI_DIR}/${n}.sock`).catch(() => {});
  });
  try {
    const [e, e2, r1, r2] = await Promise.all([wgKeyPair(), wgKeyPair(), wgKeyPair(), wgKeyPair()]);
    const psk = await wgPsk();
    await WireguardGo.start(ns, {
      privateKey: r1.privateKey,
      listenPort: 51820,
      addresses: ["10.77.0.1/24"],
      peers: [{ publicKey: e.publicKey, allowedIps: ["10.77.0.2/32"], endpoint: "127.0.0.1:51821" }],
    });
    const w2 = await WireguardGo.start(ns, {
      privateKey: r2.privateKey,
      listenPort: 51830,
      addresses: ["10.78.0.1/24"],
      peers: [{ publicKey: e.publicKey, allowedIps: ["10.78.0.2/32"], endpoint: "127.0.0.1:51821" }],
    });
    const conf = await writeConf(
      dir,
      "tunnel.conf",
      `[Interface]\nPrivateKey = ${e.privateKey}\nAddress = 10.77.0.2/32, 10.78.0.2/32\nListenPort = 51821\n\n` +
        `[Peer]\nPublicKey = ${r1.publicKey}\nAllowedIPs = 10.77.0.1/32\nEndpoint = 127.0.0.1:51820\n`,
    );
    // Two names for one configuration: one pooled device, a socket per name.
    const env = await writeConf(
      dir,
      "wgedge.env",
      `WG_TUNNEL_${name.toUpperCase()}=${conf}\nWG_TUNNEL_${alias.toUpperCase()}=${conf}\n` +
        `WGEDGE_ADMIN_LISTEN=127.0.0.1:18091\n`,
    );
    const serve = startWgedge(ns, ["serve", "--env-file", env], { WG_UAPI_DIR: UAPI_DIR });
    const wg = async (...args: string[]) => (await ns.exec(["wg", ...args])).stdout;
    const status = async (): Promise<TunnelStatus> => {
      const r = await ns.exec(["curl", "-sf", "--max-time", "10", "http://127.0.0.1:18091/api/v1/status"]);
      const tunnels = JSON.parse(r.stdout).tunnels as TunnelStatus[];
      return tunnels.find((t) => t.names.includes(name))!;
    };
    try {
      await waitFor(
        async () => (await ns.exec(["wg", "show", name], { check: false })).code === 0,
        "wg show",
      );
      await waitForOutput(serve, "admin");
      assertEquals((await Deno.stat(`${UAPI_DIR}/${name}.sock`)).mode! & 0o777, 0o600);
      assert(await pingOk(ns, "10.77.0.2"), `ping through wireguard-go 1: ${serve.stderr()}`);

      // ---- wg show dump and showconf match status ----
      const before = await status();
      const dump = (await wg("show", name, "dump")).trim().split("\n").map((l) => l.split("\t"));
      const after = await status();
      assertEquals(dump[0], [e.privateKey, e.publicKey, "51821", "off"]);
      assertEquals(before.publicKey, e.publicKey);
      assertEquals(before.listenPort, 51821);
      assertEquals(dump.length, 2);
      const [pub, pskCol, endpoint, allowed, hs, rx, tx, ka] = dump[1];
      const s1 = before.peers[0], s2 = after.peers[0];
      assertEquals([pub, pskCol, endpoint, allowed, ka], [
        r1.publicKey,
        "(none)",
        s1.endpoint,
        "10.77.0.1/32",
        "off",
      ]);
      assertEquals(s1.endpoint, "127.0.0.1:51820");
      assertEquals(s1.allowedIps, ["10.77.0.1/32"]);
      assertEquals(Number(hs), Math.floor(Date.parse(s2.lastHandshake!) / 1000));
      assert(Number(rx) > 0 && Number(tx) > 0, dump[1].join(" "));
      assert(
        s1.rxBytes <= Number(rx) && Number(rx) <= s2.rxBytes,
        `rx ${s1.rxBytes} <= ${rx} <= ${s2.rxBytes}`,
      );
      assert(
        s1.txBytes <= Number(tx) && Number(tx) <= s2.txBytes,
        `tx ${s1.txBytes} <= ${tx} <= ${s2.txBytes}`,
      );
      const showconf = await wg("showconf", name);
      for (
        const line of [
          `PrivateKey = ${e.privateKey}`,
          "ListenPort = 51821",
          `PublicKey = ${r1.publicKey}`,
          "AllowedIPs = 10.77.0.1/32",
          "Endpoint = 127.0.0.1:51820",
        ]
      ) assertStringIncludes(showconf, line);
      // The alias is the same device.
      assertEquals((await wg("show", alias, "public-key")).trim(), e.publicKey);
      assert(!serve.stderr().includes(e.privateKey), "the private key is never logged");

      // ---- wg set: a second peer with allowed-ips and endpoint gives a working route ----
      assert(await pingFails(ns, "10.78.0.2"), "wgedge does not know wireguard-go 2 yet");
      await wg(
        "set",
        name,
        "peer",
        r2.publicKey,
        "allowed-ips",
        "10.78.0.1/32",
        "endpoint",
        "127.0.0.1:51830",
      );
      assert(await pingOk(ns, "10.78.0.2"), `ping through the added peer: ${serve.stderr()}`);
      let st = await status();
      assertEquals(st.peers.map((p) => p.publicKey), [r1.publicKey, r2.publicKey]);
      assertEquals(st.peers[1].allowedIps, ["10.78.0.1/32"]);
      assertEquals((await wg("show", alias, "allowed-ips")).includes("10.78.0.1/32"), true);

      // ---- wg set ... remove: traffic with that peer stops ----
      await wg("set", name, "peer", r1.publicKey, "remove");
      st = await status();
      assertEquals(st.peers.map((p) => p.publicKey), [r2.publicKey]);
      assert(!(await wg("show", name, "peers")).includes(r1.publicKey));
      assert(await pingFails(ns, "10.77.0.2"), "the removed peer's traffic stopped");
      assert(await pingOk(ns, "10.78.0.2"), "the other peer still works");

      // ---- persistent-keepalive ----
      await wg("set", name, "peer", r2.publicKey, "persistent-keepalive", "7");
      assertEquals((await status()).peers[0].persistentKeepalive, 7);
      assertEquals((await wg("show", name, "persistent-keepalive")).trim().split("\t")[1], "7");

      // ---- listen-port: the socket moves; wireguard-go 2 follows it ----
      await wg("set", name, "listen-port", "51822");
      assertEquals((await wg("show", name, "listen-port")).trim(), "51822");
      assertEquals((await status()).listenPort, 51822);
      await wg("set", w2.ifname, "peer", e.publicKey, "endpoint", "127.0.0.1:51822");
      const rxBefore = (await status()).peers[0].rxBytes;
      assert(await pingOk(ns, "10.78.0.2"), `ping on the new listen port: ${serve.stderr()}`);
      assert((await status()).peers[0].rxBytes > rxBefore);

      // ---- preshared-key, then private-key: the new handshake needs both ----
      const pskFile = await writeConf(dir, "psk", psk + "\n");
      const keyFile = await writeConf(dir, "e2.key", e2.privateKey + "\n");
      await wg("set", name, "peer", r2.publicKey, "preshared-key", pskFile);
      st = await status();
      assertEquals(st.peers[0].keying, "preshared");
      assertEquals((await wg("show", name, "dump")).split("\n")[1].split("\t")[1], psk);
      await wg("set", w2.ifname, "peer", e.publicKey, "remove");
      await w2.setPeer({
        publicKey: e2.publicKey,
        allowedIps: ["10.78.0.2/32"],
        endpoint: "127.0.0.1:51822",
        presharedKey: psk,
      }, `${dir}/psk2`);
      const hsBefore = (await status()).peers[0].lastHandshake;
      await wg("set", name, "private-key", keyFile);
      assertEquals((await wg("show", name, "public-key")).trim(), e2.publicKey);
      assertEquals((await status()).publicKey, e2.publicKey);
      assert(await pingOk(ns, "10.78.0.2"), `ping after the key change (new key + PSK): ${serve.stderr()}`);
      const hsAfter = (await status()).peers[0].lastHandshake;
      assertNotEquals(hsAfter, hsBefore, "a new handshake under the new key");
      assert(!serve.stderr().includes(e2.privateKey) && !serve.stderr().includes(psk), "no secret logged");
    } finally {
      const s = await serve.stop();
      assertEquals(s.code, 0, serve.stderr());
    }
    for (const n of [name, alias]) {
      assert(!(await Deno.stat(`${UAPI_DIR}/${n}.sock`).then(() => true, () => false)), `${n}.sock removed`);
    }
  } finally {
    await ns.destroy();
  }
});

interopTest(
  "uapi: up names its socket after the file or --name; a name in use or too long is refused",
  async () => {
    const ns = await Netns.create("wgn");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-uapi-up-" });
    const name = uniqueName();
    ns.cleanups.push(async () => {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(`${UAPI_DIR}/${name}.sock`).catch(() => {});
    });
    try {
      const e = await wgKeyPair(), r = await wgKeyPair();
      const text = `[Interface]\nPrivateKey = ${e.privateKey}\nAddress = 10.79.0.2/32\n\n` +
        `[Peer]\nPublicKey = ${r.publicKey}\nAllowedIPs = 10.79.0.1/32\n`;
      await Deno.mkdir(`${dir}/a`);
      await Deno.mkdir(`${dir}/b`);
      const confA = await writeConf(`${dir}/a`, `${name}.conf`, text);
      const confB = await writeConf(`${dir}/b`, `${name}.conf`, text);
      const env = { WG_UAPI_DIR: UAPI_DIR };
      const up = startWgedge(ns, ["up", "-c", confA], env);
      try {
        await waitForOutput(up, "tunnel up");
        assertEquals((await ns.exec(["wg", "show", name, "public-key"])).stdout.trim(), e.publicKey);
        // The same name from another file: refused while the first one answers.
        const second = startWgedge(ns, ["up", "-c", confB], env);
        const code = (await second.status).code;
        await second.stop();
        assertNotEquals(code, 0);
        assertStringIncludes(second.stderr(), `${UAPI_DIR}/${name}.sock is in use`);
        // A name wg could not use.
        const long = startWgedge(ns, ["up", "-c", confB, "--name", "much-too-long-name"], env);
        assertNotEquals((await long.status).code, 0);
        await long.stop();
        assertStringIncludes(long.stderr(), "longer than 15 characters");
      } finally {
        assertEquals((await up.stop()).code, 0, up.stderr());
      }
      assert(!(await Deno.stat(`${UAPI_DIR}/${name}.sock`).then(() => true, () => false)), "socket removed");
    } finally {
      await ns.destroy();
    }
  },
);
