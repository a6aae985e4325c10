/** Reading tcpdump captures in tests: start a capture that is surely listening, then the UDP payloads. */
import { collect, type Netns, waitFor } from "./interop.ts";

/**
 * tcpdump capturing `filter` on `ifname` into `file` (inside `ns`, or in the test's own namespace when ns is
 * undefined); resolves once tcpdump says it is listening, so no datagram sent afterwards can be missed.
 */
export async function startCapture(
  ns: Netns | undefined,
  ifname: string,
  file: string,
  filter: string[],
): Promise<Deno.ChildProcess> {
  // --immediate-mode: each packet is handed to tcpdump as it arrives (without it, packets wait in the kernel
  // ring for a block to fill or time out, and a capture stopped right after a short exchange can be empty).
  const args = ["tcpdump", "-i", ifname, "-U", "--immediate-mode", "-n", "-w", file, ...filter];
  const tcpdump = ns
    ? ns.spawn(args, { stderr: "piped" })
    : new Deno.Command(args[0], { args: args.slice(1), stdout: "null", stderr: "piped" }).spawn();
  const err = collect(tcpdump.stderr!);
  await waitFor(() => err.text().includes("listening on"), `tcpdump on ${ifname} to listen\n${err.text()}`);
  return tcpdump;
}

export interface CapturedUdp {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** UDP datagrams (IPv4) of an Ethernet pcap file (veth and Linux loopback captures are both Ethernet). */
export function udpDatagrams(pcap: Uint8Array): CapturedUdp[] {
  const v = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
  const le = v.getUint32(0, true) === 0xa1b2c3d4;
  const out: CapturedUdp[] = [];
  let off = 24;
  while (off + 16 <= pcap.length) {
    const incl = v.getUint32(off + 8, le);
    const frame = pcap.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (frame.length < 14 + 20 + 8 || frame[12] !== 0x08 || frame[13] !== 0x00) continue;
    const ihl = (frame[14] & 0x0f) * 4;
    if (frame[14 + 9] !== 17) continue;
    const udp = frame.subarray(14 + ihl);
    out.push({ srcPort: (udp[0] << 8) | udp[1], dstPort: (udp[2] << 8) | udp[3], payload: udp.subarray(8) });
  }
  return out;
}

/** UDP payloads of an Ethernet/IPv4 pcap file. */
export function udpPayloads(pcap: Uint8Array): Uint8Array[] {
  return udpDatagrams(pcap).map((d) => d.payload);
}
