/**
 * The WARP reserved-bytes scenario shared by the in-memory test and the tcpdump capture: device `a` has
 * `Reserved = 1,2,3` for its peer and demands cookies (under load from the first handshake), device `b` has no
 * Reserved. The steps make `a` send every message type (cookie reply, response, transport, initiation) and
 * `b` accept each of them, bytes 1..3 filled.
 */
import { Device, type DeviceOptions } from "../../src/wireguard/device.ts";
import { parseWgQuick } from "../../src/config/wgquick.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../../src/crypto/x25519.ts";
import { seededRandom } from "../../src/util/random.ts";
import { assert, assertEquals } from "./assert.ts";
import { ipv4Packet } from "./wgpair.ts";

export interface ReservedPair {
  a: Device;
  b: Device;
  aGot: Uint8Array[];
  bGot: Uint8Array[];
}

/** Both devices from wg-quick text, so the Reserved line goes through the config parser. */
export function reservedPair(
  o: {
    aPort: number;
    bPort: number;
    host: string;
    aOpts: Partial<DeviceOptions>;
    bOpts: Partial<DeviceOptions>;
  },
): ReservedPair {
  const rng = seededRandom(33);
  const aPriv = generatePrivateKey(rng), bPriv = generatePrivateKey(rng);
  const conf = (priv: Uint8Array, peer: Uint8Array, peerIp: string, port: number, extra: string) =>
    parseWgQuick(
      `[Interface]\nPrivateKey = ${encodeKey(priv)}\n\n[Peer]\nPublicKey = ${encodeKey(peer)}\n` +
        `AllowedIPs = ${peerIp}/32\nEndpoint = ${o.host}:${port}\n${extra}`,
      "reserved.conf",
    );
  const aCfg = conf(aPriv, publicKey(bPriv), "10.0.0.2", o.bPort, "Reserved = 1, 2, 3\n");
  const bCfg = conf(bPriv, publicKey(aPriv), "10.0.0.1", o.aPort, "");
  assertEquals(aCfg.peers[0].reserved, Uint8Array.of(1, 2, 3));
  const a = new Device({
    privateKey: aPriv,
    listenPort: o.aPort,
    peers: aCfg.peers,
    underLoadThreshold: 0,
    random: rng,
    ...o.aOpts,
  });
  const b = new Device({
    privateKey: bPriv,
    listenPort: o.bPort,
    peers: bCfg.peers,
    random: rng,
    ...o.bOpts,
  });
  const aGot: Uint8Array[] = [], bGot: Uint8Array[] = [];
  a.setReceiver((p) => aGot.push(p.slice()));
  b.setReceiver((p) => bGot.push(p.slice()));
  return { a, b, aGot, bGot };
}

/** Runs the steps; `settle(cond, what)` lets datagrams land until cond holds (microtasks or real sockets). */
export async function exchangeEveryType(
  p: ReservedPair,
  settle: (cond: () => boolean, what: string) => Promise<void>,
): Promise<void> {
  const { a, b } = p;
  // b initiates; a is under load and answers with a cookie reply.
  b.send(ipv4Packet("10.0.0.2", "10.0.0.1", Uint8Array.of(1)));
  await settle(() => a.stats.cookieRepliesSent >= 1 && b.peers[0].cookieGenerator.hasCookie, "cookie reply");
  // b retries with mac2; a responds; b's staged packet follows in a transport message.
  b.peers[0].sendHandshakeInitiation(true);
  await settle(() => p.aGot.length === 1, "b's packet to arrive at a after a's response");
  // a sends data (transport).
  a.send(ipv4Packet("10.0.0.1", "10.0.0.2", Uint8Array.of(2)));
  await settle(() => p.bGot.length === 1, "a's packet at b");
  // a initiates (initiation); b responds; a completes and sends a keepalive.
  a.peers[0].sendHandshakeInitiation(false);
  await settle(() => a.peers[0].stats.handshakes >= 2, "a's own handshake");
  a.send(ipv4Packet("10.0.0.1", "10.0.0.2", Uint8Array.of(3)));
  await settle(() => p.bGot.length === 2, "a's second packet at b");
  assertEquals(b.stats.dropped.malformed, 0, "b accepted every message with reserved bytes");
}

/** Every datagram a sent carries 1,2,3 and all four types occur; b's carry zeros. */
export function assertReservedOnWire(fromA: Uint8Array[], fromB: Uint8Array[]): void {
  const types = (list: Uint8Array[]) => [...new Set(list.map((d) => d[0]))].sort();
  assertEquals(types(fromA), [1, 2, 3, 4], "a sent initiation, response, cookie reply and transport");
  for (const d of fromA) assertEquals([d[1], d[2], d[3]], [1, 2, 3], `a's type ${d[0]} message`);
  assert(fromB.length > 0);
  assertEquals(types(fromB), [1, 2, 4]);
  for (const d of fromB) {
    assertEquals([d[1], d[2], d[3]], [0, 0, 0], `b's type ${d[0]} message (no Reserved)`);
  }
}
