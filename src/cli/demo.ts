/**
 * `wgedge demo`: a self-contained tour on loopback. Two userspace WireGuard devices with fresh keys complete
 * a handshake over real UDP sockets on 127.0.0.1 and exchange pings both ways (IPv4 and IPv6 inside the
 * tunnel), printing what happened. Nothing needs root or configuration.
 */
import { type Command, intFlag, parseFlags } from "./command.ts";
import { openTunnel, type Tunnel } from "../net/tunnels.ts";
import { generatePrivateKey, publicKey } from "../crypto/x25519.ts";
import type { WgConfig } from "../wireguard/config.ts";
import { configureLogging } from "../util/log.ts";

function tunnelConfig(
  name: string,
  own: Uint8Array,
  peer: Uint8Array,
  addrs: [string, string],
  peerAddrs: [string, string],
  endpointPort?: number,
): WgConfig {
  return {
    source: name,
    iface: {
      privateKey: own,
      addresses: [{ address: addrs[0], prefix: 32 }, { address: addrs[1], prefix: 128 }],
      mtu: 1420,
      dns: [],
    },
    peers: [{
      publicKey: publicKey(peer),
      allowedIps: [{ address: peerAddrs[0], prefix: 32 }, { address: peerAddrs[1], prefix: 128 }],
      endpoint: endpointPort ? { host: "127.0.0.1", port: endpointPort } : undefined,
    }],
  };
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

export const demoCommand: Command = {
  name: "demo",
  summary: "Run a self-contained demo on loopback: two userspace WireGuard peers handshake and ping.",
  usage: "demo [-n COUNT]",
  async run(args) {
    const parsed = parseFlags(this, args, { count: { type: "string", short: "n" } }, false);
    if (!parsed) return 0;
    const count = intFlag("count", parsed.values.count, 3, 1, 1000);
    configureLogging({ level: "warn" });
    const keyA = generatePrivateKey(), keyB = generatePrivateKey();
    console.log("wgedge demo: two userspace WireGuard peers on 127.0.0.1 (no root, no kernel module)\n");
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
      console.log(`\n${ok}/${4 * count} pings answered.`);
      return ok === 4 * count ? 0 : 1;
    } finally {
      client.close();
      server.close();
    }
  },
};
