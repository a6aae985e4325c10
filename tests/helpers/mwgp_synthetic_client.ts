/**
 * A WireGuard initiator with a chosen sender index, for the mwgp index-collision interop test (run inside a
 * client namespace): handshake through mwgp, one ICMP echo through the tunnel, prints "OK <seq>" on the reply.
 * Built from the lead's noise.ts/cookie.ts so the index can be forced, which wireguard-go does not allow.
 *
 * Usage: deno run -A mwgp_synthetic_client.ts HOST PORT PRIVATE_KEY SERVER_PUBKEY SENDER_INDEX SRC_IP DST_IP
 */
import {
  consumeResponse,
  createInitiation,
  deriveSessionKeys,
  Handshake,
  staticIdentity,
} from "../../src/wireguard/noise.ts";
import { CookieGenerator } from "../../src/wireguard/cookie.ts";
import { aead, counterNonce } from "../../src/crypto/aead.ts";
import { decodeKey } from "../../src/crypto/x25519.ts";
import { internetChecksum } from "../../src/wire/checksum.ts";
import { MESSAGE_TRANSPORT, ResponseMessage } from "../../src/wire/wireguard.ts";

const [host, portText, priv, serverPub, indexText, srcIp, dstIp] = Deno.args;
const to = { transport: "udp" as const, hostname: host, port: Number(portText) };
const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
const timeout = setTimeout(() => {
  console.log("TIMEOUT");
  Deno.exit(3);
}, 30_000); // generous: a loaded CI machine can take seconds for the handshake through mwgp

const hs = new Handshake(staticIdentity(decodeKey(priv)), decodeKey(serverPub));
const init = createInitiation(hs, Number(indexText), Date.now());
new CookieGenerator(decodeKey(serverPub)).addMacs(init.bytes, performance.now());
await sock.send(init.bytes, to);

let keys;
for (;;) {
  const [data] = await sock.receive();
  const resp = ResponseMessage.parse(data);
  if (!resp) continue;
  if (resp.receiver !== Number(indexText)) throw new Error(`response for index ${resp.receiver}`);
  if (!consumeResponse(hs, resp)) throw new Error("response did not verify");
  keys = deriveSessionKeys(hs)!;
  console.error(`handshake complete, server index ${keys.remoteIndex}`);
  break;
}

const ip = (s: string) => Uint8Array.from(s.split(".").map(Number));
const packet = new Uint8Array(20 + 8 + 32);
// IPv4: version/IHL, TOS, total length, id, flags (DF), TTL 64, protocol ICMP.
packet.set([0x45, 0, packet.length >> 8, packet.length & 0xff, 0, 0, 0x40, 0, 64, 1]);
packet.set(ip(srcIp), 12);
packet.set(ip(dstIp), 16);
const ipSum = internetChecksum(packet, 0, 20);
packet[10] = ipSum >> 8;
packet[11] = ipSum & 0xff;
packet.set([8, 0, 0, 0, 0x12, 0x34, 0, 1], 20);
for (let i = 28; i < packet.length; i++) packet[i] = i;
const icmpSum = internetChecksum(packet, 20, packet.length - 20);
packet[22] = icmpSum >> 8;
packet[23] = icmpSum & 0xff;

const padded = new Uint8Array(Math.ceil(packet.length / 16) * 16);
padded.set(packet);
const sealed = aead().seal(keys.sendKey, counterNonce(0), padded, new Uint8Array(0));
const msg = new Uint8Array(16 + sealed.length);
msg[0] = MESSAGE_TRANSPORT;
new DataView(msg.buffer).setUint32(4, keys.remoteIndex, true);
msg.set(sealed, 16);
await sock.send(msg, to);

for (;;) {
  const [data] = await sock.receive();
  if (data[0] !== MESSAGE_TRANSPORT || data.length < 32) continue;
  const v = new DataView(data.buffer, data.byteOffset);
  if (v.getUint32(4, true) !== Number(indexText)) {
    throw new Error(`transport for index ${v.getUint32(4, true)}`);
  }
  const plain = aead().open(
    keys.receiveKey,
    counterNonce(v.getUint32(8, true)),
    data.subarray(16),
    new Uint8Array(0),
  );
  if (!plain) throw new Error("transport did not decrypt");
  if (plain.length >= 28 && plain[9] === 1 && plain[20] === 0) {
    console.log(`OK ${(plain[26] << 8) | plain[27]}`);
    break;
  }
}
clearTimeout(timeout);
sock.close();
