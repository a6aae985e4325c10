/**
 * The wgedge side of tests/netstack_interop_test.ts, run inside the test's network namespace: a tunnel to
 * the wireguard-go peer, and on the tunnel Net a UDP echo (port 7), a UDP digest (port 9: answers
 * "<length> <sum>" so datagrams larger than the MTU can be checked), and a TCP echo (port 7) that
 * half-closes after the client's FIN. Prints READY, then runs until killed.
 *
 * Args: <our private key> <peer public key> <peer endpoint host:port>
 */
import { decodeKey } from "../src/crypto/x25519.ts";
import { openTunnel } from "../src/net/tunnels.ts";
import type { Conn, DatagramConn } from "../src/net/types.ts";

const [priv, peerPub, endpoint] = Deno.args;
const [host, port] = [
  endpoint.slice(0, endpoint.lastIndexOf(":")),
  Number(endpoint.slice(endpoint.lastIndexOf(":") + 1)),
];
const tunnel = await openTunnel({
  source: "netstack interop",
  iface: {
    privateKey: decodeKey(priv),
    addresses: [{ address: "10.77.0.2", prefix: 32 }, { address: "fd77::2", prefix: 128 }],
    mtu: 1420,
    dns: [],
  },
  peers: [{
    publicKey: decodeKey(peerPub),
    allowedIps: [{ address: "10.77.0.0", prefix: 24 }, { address: "fd77::", prefix: 64 }],
    endpoint: { host, port },
    persistentKeepalive: 1,
  }],
}, { name: "interop" });
const net = tunnel.net;

function serveUdp(sock: DatagramConn, answer: (d: Uint8Array) => Uint8Array): void {
  (async () => {
    for (;;) {
      const [d, from] = await sock.receive();
      await sock.send(answer(d), from).catch((e) => console.error("udp send:", e.message));
    }
  })().catch(() => {});
}

serveUdp(net.listenUdp({ port: 7 }), (d) => d);
serveUdp(net.listenUdp({ port: 9 }), (d) => {
  let sum = 0;
  for (let i = 0; i < d.length; i++) sum = (sum * 31 + d[i]) >>> 0;
  return new TextEncoder().encode(`${d.length} ${sum}\n`);
});

async function echo(c: Conn): Promise<void> {
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await c.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await c.write(buf.subarray(off, n));
    }
    await c.closeWrite();
  } catch (e) {
    console.error("tcp echo:", (e as Error).message);
  } finally {
    c.close();
  }
}

const listener = net.listenTcp({ port: 7 });
(async () => {
  for await (const c of listener) echo(c);
})().catch(() => {});

// Keep the event loop alive: the stack's timers are unref'd by design.
setInterval(() => {
  const s = tunnel.stack.stats;
  console.error(
    `stats rx=${s.rxPackets} delivered=${s.rxDelivered} held=${s.rxFragmentsHeld} reassembled=${s.fragments.reassembled}`,
  );
}, 1000);
console.log("READY");
