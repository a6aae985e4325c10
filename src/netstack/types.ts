/**
 * Contracts inside the userspace stack. The IP layer (ip.ts) owns addresses, fragments, ICMP and the
 * transport checksums; transports (udp.ts, tcp/) see only verified segments and hand back segments whose
 * checksum the IP layer fills in.
 */

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

/** The link below the stack: a WireGuard device, or an in-memory pair in tests. */
export interface PacketInterface {
  /** Largest IP packet the link carries. */
  readonly mtu: number;
  /**
   * Sends one whole IP packet. Must not throw; a link that cannot send drops and counts. The packet is only
   * valid during the call (the IP layer builds every packet in one buffer): a link that keeps it copies it.
   */
  send(packet: Uint8Array): void;
  /**
   * Installs the receiver of inbound IP packets (one whole packet per call, only valid during the call: the
   * WireGuard device decrypts into the datagram's buffer, which the next receive reuses).
   */
  setReceiver(receive: (packet: Uint8Array) => void): void;
}

/** What the IP layer offers a transport protocol. */
export interface IpSender {
  /** Path MTU toward dst (link MTU unless an ICMP packet-too-big lowered it). */
  mtuFor(dst: Uint8Array): number;
  /**
   * Sends a transport segment (its header and payload) from src to dst. The IP layer computes the
   * pseudo-header checksum into the segment's checksum field (TCP offset 16, UDP offset 6) and adds the IP
   * header. `segment` may be reused by the caller after the call returns.
   */
  sendSegment(proto: number, src: Uint8Array, dst: Uint8Array, segment: Uint8Array): void;
  /** True when addr (4 or 16 bytes) is one of the stack's own addresses. */
  isLocal(addr: Uint8Array): boolean;
  /** The stack's own address to use as source toward dst (first address of the same family). */
  sourceFor(dst: Uint8Array): Uint8Array | undefined;
}

/** What a transport protocol offers the IP layer. */
export interface TransportHandler {
  /** A segment addressed to this stack, checksum already verified. `segment` is only valid during the call. */
  deliver(src: Uint8Array, dst: Uint8Array, segment: Uint8Array): void;
  /** ICMP destination-unreachable / packet-too-big about a segment we sent (quoted header included). */
  deliverIcmpError?(
    kind: "unreachable" | "port-unreachable" | "too-big",
    src: Uint8Array,
    dst: Uint8Array,
    quoted: Uint8Array,
    mtu?: number,
  ): void;
}
