/** Hot paths of the userspace stack: checksum, inbound parse+verify+dispatch, outbound build. */
import { onesSum } from "../../src/wire/checksum.ts";
import { IpLayer } from "../../src/netstack/ip.ts";
import { ManualClock } from "../../src/util/clock.ts";
import { parseIp } from "../../src/netstack/addr.ts";
import { buildIpv4Packet } from "../../src/wire/ipv4.ts";
import { buildIpv6Packet } from "../../src/wire/ipv6.ts";
import { transportChecksum } from "../../src/wire/checksum.ts";
import type { PacketInterface } from "../../src/netstack/types.ts";

const A4 = parseIp("10.77.0.2")!, B4 = parseIp("10.77.0.1")!;
const A6 = parseIp("fd77::2")!, B6 = parseIp("fd77::1")!;
const payload = new Uint8Array(1400 - 40).map((_, i) => i);

let sink = 0;
const link: PacketInterface = { mtu: 1420, send: (p) => void (sink += p.length), setReceiver: () => {} };
const ip = new IpLayer(link, {
  addresses: [{ address: "10.77.0.1", prefix: 24 }, { address: "fd77::1", prefix: 64 }],
  clock: new ManualClock(),
});
ip.register(6, { deliver: (_s, _d, seg) => void (sink += seg.length) });

function tcpSeg(src: Uint8Array, dst: Uint8Array): Uint8Array {
  const seg = new Uint8Array(20 + payload.length);
  seg[12] = 0x50;
  seg.set(payload, 20);
  const c = transportChecksum(src, dst, 6, seg);
  seg[16] = c >> 8;
  seg[17] = c & 0xff;
  return seg;
}
const in4 = buildIpv4Packet({ src: A4, dst: B4, protocol: 6 }, tcpSeg(A4, B4));
const in6 = buildIpv6Packet({ src: A6, dst: B6, nextHeader: 6 }, tcpSeg(A6, B6));
const out = tcpSeg(B4, A4);

Deno.bench("checksum: onesSum 1400 bytes", () => {
  sink += onesSum(in4, 0, 1400);
});
Deno.bench("ip: receive IPv4 TCP 1400 bytes (validate, verify checksum, dispatch)", () => {
  ip.receive(in4);
});
Deno.bench("ip: receive IPv6 TCP 1400 bytes", () => {
  ip.receive(in6);
});
Deno.bench("ip: sendSegment IPv4 TCP 1380 bytes (header, checksum, copy)", () => {
  ip.sendSegment(6, B4, A4, out);
});
