/**
 * One long interop run past REKEY_AFTER_TIME (120 s): wgedge initiates, so wgedge performs the time-based
 * rekey against wireguard-go, and not a single ping may be lost across it.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { interopTest, Netns, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { runWgedge, writeConf } from "./helpers/wgedge_proc.ts";

const PINGS = 135; // 1 per second: past REKEY_AFTER_TIME (120 s) with margin

async function handshakeTime(wg: WireguardGo): Promise<number> {
  const line = (await wg.show("latest-handshakes")).trim().split("\n")[0];
  return Number(line.split(/\s+/)[1]);
}

interopTest(`interop: ${PINGS} s of pings across a REKEY_AFTER_TIME rekey lose nothing`, async () => {
  const ns = await Netns.create("wgr");
  const dir = await Deno.makeTempDir({ prefix: "wgedge-rekey-" });
  ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
  try {
    const mine = await wgKeyPair(), ref = await wgKeyPair();
    const wg = await WireguardGo.start(ns, {
      privateKey: ref.privateKey,
      listenPort: 51820,
      addresses: ["10.78.0.1/24"],
      peers: [{ publicKey: mine.publicKey, allowedIps: ["10.78.0.2/32"] }],
    });
    const conf = await writeConf(
      dir,
      "wgedge.conf",
      `[Interface]\nPrivateKey = ${mine.privateKey}\nAddress = 10.78.0.2/32\n\n[Peer]\nPublicKey = ${ref.publicKey}\nAllowedIPs = 10.78.0.0/24\nEndpoint = 127.0.0.1:51820\n`,
    );
    const started = Math.floor(Date.now() / 1000);
    const r = await runWgedge(ns, [
      "ping",
      "-c",
      conf,
      "-n",
      String(PINGS),
      "-i",
      "1",
      "-W",
      "10", // a reply delayed by a loaded machine is not a loss; a lost echo never comes back at all
      "10.78.0.1",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, `${PINGS} packets transmitted, ${PINGS} received, 0% packet loss`);
    const last = await handshakeTime(wg);
    assert(
      last - started >= 115,
      `wireguard-go's latest handshake is the rekey (${last - started} s after start)`,
    );
  } finally {
    await ns.destroy();
  }
}, { tools: [] });
