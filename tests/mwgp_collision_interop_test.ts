/**
 * Two clients with the same sender index, each served by the right wireguard-go server: client A is a real
 * wireguard-go; client B is a synthetic initiator (noise.ts) forced to reuse A's index, read from the mwgp
 * status JSON of `wgedge serve`. B completes its handshake with server 2 and gets an ICMP echo reply through
 * the tunnel while A keeps pinging server 1.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  collect,
  DENO_JSON,
  interopTest,
  type Netns,
  waitFor,
  wgKeyPair,
  WireguardGo,
} from "./helpers/interop.ts";
import { MwgpTopology } from "./helpers/mwgp.ts";

const SCRIPT = new URL("./helpers/mwgp_synthetic_client.ts", import.meta.url).pathname;

/** One echo request; `waitSec` bounds its reply (short while polling, generous where one must succeed). */
async function pingOnce(ns: Netns, addr: string, waitSec = 1): Promise<boolean> {
  return (await ns.exec(["ping", "-c", "1", "-W", String(waitSec), addr], { check: false })).code === 0;
}

interface StatusEntry {
  clientPublicKey: string;
  clientIndex: number;
  clientProxyIndex: number;
  serverIndex: number;
  serverProxyIndex: number;
  completed: boolean;
  server: string;
}

interopTest("mwgp: two clients with the same sender index are both served by their own server", async () => {
  const topo = await MwgpTopology.create();
  try {
    const [s1, s2, a, b] = await Promise.all([wgKeyPair(), wgKeyPair(), wgKeyPair(), wgKeyPair()]);
    const hub = topo.hub;
    await WireguardGo.start(hub, {
      privateKey: s1.privateKey,
      listenPort: 51001,
      addresses: ["10.1.0.1/24"],
      peers: [{ publicKey: a.publicKey, allowedIps: ["10.1.0.2/32"] }],
    });
    const wgS2 = await WireguardGo.start(hub, {
      privateKey: s2.privateKey,
      listenPort: 51002,
      addresses: ["10.2.0.1/24"],
      peers: [{ publicKey: b.publicKey, allowedIps: ["10.2.0.2/32"] }],
    });
    const cfg = await topo.writeFile(
      "server.json5",
      `{ listen: ":1000", servers: [
        { privkey: "${s1.privateKey}", address: "127.0.0.1", peers: [{ pubkey: "${a.publicKey}", forward_to: ":51001" }] },
        { privkey: "${s2.privateKey}", address: "127.0.0.1", peers: [{ pubkey: "${b.publicKey}", forward_to: ":51002" }] },
      ] }`,
    );
    const child = hub.spawnWgedge(["serve"], {
      stderr: "piped",
      env: {
        MWGP_SERVER_CONFIG: cfg,
        WGEDGE_ADMIN_LISTEN: "127.0.0.1:18082",
        MWGP_CACHE_FILE: `${topo.dir}/c.json`,
      },
    });
    const log = collect(child.stderr);
    let exited = false;
    child.status.then(() => exited = true);
    await waitFor(() => exited || log.text().includes("mwgp started"), "serve with mwgp", 600, 50);
    assert(!exited, log.text());
    const table = async (): Promise<StatusEntry[]> =>
      JSON.parse((await hub.exec(["curl", "-sf", "http://127.0.0.1:18082/api/v1/status"])).stdout).mwgp_server
        .table;

    const { ns: nsA, hubAddr: hubA } = await topo.addClient(1);
    await WireguardGo.start(nsA, {
      privateKey: a.privateKey,
      addresses: ["10.1.0.2/24"],
      peers: [{ publicKey: s1.publicKey, allowedIps: ["10.1.0.0/24"], endpoint: `${hubA}:1000` }],
    });
    await waitFor(() => pingOnce(nsA, "10.1.0.1"), "client A through mwgp", 30, 100);
    const entryA = (await table()).find((e) => e.clientPublicKey === a.publicKey && e.completed)!;
    assert(entryA, "A's entry in the status table");
    assertEquals(entryA.clientProxyIndex, entryA.clientIndex, "A's index was free");

    // B reuses A's sender index.
    const { ns: nsB, hubAddr: hubB } = await topo.addClient(2);
    const out = await nsB.exec([
      Deno.execPath(),
      "run",
      "-A",
      "--config",
      DENO_JSON,
      SCRIPT,
      hubB,
      "1000",
      b.privateKey,
      s2.publicKey,
      String(entryA.clientIndex),
      "10.2.0.2",
      "10.2.0.1",
    ], { check: false });
    assertEquals(out.stdout.trim(), "OK 1", `synthetic client B: ${out.stdout}${out.stderr}`);
    const entries = await table();
    const entryB = entries.find((e) => e.clientPublicKey === b.publicKey && e.completed)!;
    assert(entryB, "B's entry in the status table");
    assertEquals(entryB.clientIndex, entryA.clientIndex, "both clients use the same sender index");
    assert(entryB.clientProxyIndex !== entryA.clientIndex, "B's index was translated for server 2");
    assert(entryB.server.endsWith(":51002") && entryA.server.endsWith(":51001"));
    assert((await wgS2.show("latest-handshakes")).includes(b.publicKey));
    // A is unaffected.
    for (let i = 0; i < 3; i++) assert(await pingOnce(nsA, "10.1.0.1", 10), `A ping ${i} after B joined`);
    child.kill("SIGTERM");
    await child.status;
  } finally {
    await topo.destroy();
  }
}, { tools: ["curl", "ping"] });
