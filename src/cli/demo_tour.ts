/** `wgedge demo`'s two steps (demo.ts declares the command; this is loaded when it runs). */
import { intFlag, waitForShutdownSignal } from "./command.ts";
import { startReverseProxyDemo } from "../services/rp/demo.ts";
import { VERSION } from "./version.ts";
import { openTunnel, type Tunnel } from "../net/tunnels.ts";
import { generatePrivateKey, publicKey } from "../crypto/x25519.ts";
import { loopbackPeerConfig, type WgConfig } from "../wireguard/config.ts";
import { configureLogging } from "../util/log.ts";
import { http1Fetch } from "../net/http1.ts";
import { hostNet } from "../net/host.ts";

/** One side of the demo pair: addresses 10.99.0.x/32 and fd99::x/128, the other side as its only peer. */
function tunnelConfig(
  name: string,
  own: Uint8Array,
  peer: Uint8Array,
  addrs: [string, string],
  peerAddrs: [string, string],
  endpointPort?: number,
): WgConfig {
  return loopbackPeerConfig({
    source: name,
    privateKey: own,
    peerPublicKey: publicKey(peer),
    addresses: [{ address: addrs[0], prefix: 32 }, { address: addrs[1], prefix: 128 }],
    peerAddresses: peerAddrs,
    endpointPort,
  });
}

async function pingSeries(from: Tunnel, label: string, target: string, count: number): Promise<number> {
  let ok = 0;
  for (let seq = 1; seq <= count; seq++) {
    try {
      const rtt = await from.stack.ping(target, { seq, timeoutMs: 3000 });
      ok++;
      console.log(`  ${label} -> ${target}: icmp_seq=${seq} time=${rtt.toFixed(2)} ms`);
    } catch (e) {
      console.log(`  ${label} -> ${target}: icmp_seq=${seq} no reply (${(e as Error).message})`);
    }
  }
  return ok;
}

/** Step 1: two peers handshake on loopback and ping both ways. Returns how many pings were answered. */
async function handshakeTour(count: number): Promise<number> {
  const keyA = generatePrivateKey(), keyB = generatePrivateKey();
  const server = await openTunnel(
    tunnelConfig("demo-server", keyA, keyB, ["10.99.0.1", "fd99::1"], ["10.99.0.2", "fd99::2"]),
    { name: "server" },
  );
  const client = await openTunnel(
    tunnelConfig(
      "demo-client",
      keyB,
      keyA,
      ["10.99.0.2", "fd99::2"],
      ["10.99.0.1", "fd99::1"],
      server.device.listenPort,
    ),
    { name: "client" },
  );
  try {
    console.log(
      `server  public key ${server.device.publicKey}  udp 127.0.0.1:${server.device.listenPort}  tunnel 10.99.0.1, fd99::1`,
    );
    console.log(
      `client  public key ${client.device.publicKey}  udp 127.0.0.1:${client.device.listenPort}  tunnel 10.99.0.2, fd99::2\n`,
    );
    console.log("client pings server (the first packet triggers the Noise IK handshake):");
    let ok = await pingSeries(client, "client", "10.99.0.1", count);
    ok += await pingSeries(client, "client", "fd99::1", count);
    console.log("server pings client (over the session the client started):");
    ok += await pingSeries(server, "server", "10.99.0.2", count);
    ok += await pingSeries(server, "server", "fd99::2", count);
    const c = client.device.status().peers[0], s = server.device.status().peers[0];
    console.log(`\nhandshakes: client ${c.handshakes}, server ${s.handshakes}; last at ${c.lastHandshake}`);
    console.log(
      `bytes on the wire: client sent ${c.txBytes}, received ${c.rxBytes}; server endpoint for client: ${s.endpoint}`,
    );
    console.log(`${ok}/${4 * count} pings answered.`);
    return ok;
  } finally {
    client.close();
    server.close();
  }
}

/** The demo's flags, as demo.ts parses them. */
export interface DemoValues {
  count?: string;
  "public-port"?: string;
  "admin-listen"?: string;
  once?: boolean;
}

export async function runDemo(values: DemoValues): Promise<number> {
  const count = intFlag("count", values.count, 2, 1, 1000);
  const publicPort = intFlag("public-port", values["public-port"], 8080, 1, 65535);
  configureLogging({ level: "warn" });

  console.log("wgedge demo — everything on 127.0.0.1, no root, no kernel module\n");
  console.log("Step 1: two userspace WireGuard peers with fresh keys\n");
  const pinged = await handshakeTour(count);

  console.log("\nStep 2: reverse proxy (rps/rpc) — a service behind NAT published on a public port\n");
  const demo = await startReverseProxyDemo({
    publicPort,
    adminListen: values["admin-listen"],
    version: VERSION,
  });
  try {
    for (const line of demo.lines) console.log(line);
    // Prove the path before inviting the user to try it. One request on its own connection, closed after
    // (fetch would keep it pooled, and the dashboard would show the demo's own idle connection as active).
    const url = new URL(demo.publicUrl);
    const res = await http1Fetch(hostNet, url.hostname, Number(url.port), url.pathname, {
      timeoutMs: 15_000,
    });
    const body = res.text();
    console.log(`\nself-check:    GET ${demo.publicUrl} -> ${res.status}: ${body.split("\n")[0]}`);
    const ok = pinged === 4 * count && res.status === 200;
    if (values.once) {
      console.log("\n--once: stopping now; the URLs above close with it.");
      return ok ? 0 : 1;
    }
    console.log("\nRunning. Press Ctrl-C to stop.");
    await waitForShutdownSignal();
    return ok ? 0 : 1;
  } finally {
    await demo.stop();
  }
}
