import { assert, assertStringIncludes } from "./helpers/assert.ts";
import { interopTest, Netns, wgKeyPair, WireguardGo } from "./helpers/interop.ts";

interopTest("harness: wireguard-go comes up in a fresh namespace with its address", async () => {
  const ns = await Netns.create();
  try {
    const a = await wgKeyPair(), b = await wgKeyPair();
    const wg = await WireguardGo.start(ns, {
      privateKey: a.privateKey,
      listenPort: 51820,
      addresses: ["10.77.0.1/24"],
      peers: [{ publicKey: b.publicKey, allowedIps: ["10.77.0.2/32"] }],
    });
    assertStringIncludes(await wg.show("listen-port"), "51820");
    const addr = await ns.exec(["ip", "-4", "addr", "show", wg.ifname]);
    assert(addr.stdout.includes("10.77.0.1/24"), addr.stdout);
  } finally {
    await ns.destroy();
  }
});
