/**
 * The IP layer: parses and validates inbound IPv4/IPv6 packets, reassembles fragments, verifies transport
 * checksums and dispatches to ICMP, UDP and TCP; builds outbound packets, filling transport checksums and
 * honouring the link MTU and learnt path MTUs. Every inbound packet ends in exactly one counter:
 *
 *   rxPackets = rxDelivered + rxFragmentsHeld + sum(rxDropped)
 *
 * (a fragment that completes a datagram counts as whatever happens to the reassembled datagram).
 */
import type { IpPrefix } from "../wireguard/config.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type IpSender,
  type PacketInterface,
  type TransportHandler,
} from "./types.ts";
import {
  IPV4_FLAG_MF,
  IPV4_MIN_HEADER_LEN,
  IPV4_MIN_MTU,
  Ipv4Packet,
  writeIpv4Header,
} from "../wire/ipv4.ts";
import {
  IPV6_FRAGMENT_HEADER_LEN,
  IPV6_HEADER_LEN,
  IPV6_MIN_MTU,
  IPV6_NEXT_FRAGMENT,
  IPV6_NEXT_NONE,
  newHeaderChain,
  walkExtensionHeaders,
  writeIpv6Header,
} from "../wire/ipv6.ts";
import {
  finishChecksum,
  internetChecksum,
  onesSum,
  pseudoHeaderSum,
  verifyTransportChecksum,
} from "../wire/checksum.ts";
import {
  buildIcmpError,
  ICMPV4_CODE_PORT_UNREACHABLE,
  ICMPV4_CODE_PROTOCOL_UNREACHABLE,
  ICMPV4_CODE_REASSEMBLY_TIME_EXCEEDED,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_TIME_EXCEEDED,
  ICMPV6_CODE_PORT_UNREACHABLE,
  ICMPV6_CODE_REASSEMBLY_TIME_EXCEEDED,
  ICMPV6_CODE_UNRECOGNIZED_NEXT_HEADER,
  ICMPV6_CODE_UNRECOGNIZED_OPTION,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_TIME_EXCEEDED,
} from "../wire/icmp.ts";
import { FRAGMENT_HELD, Reassembler, type ReassemblyLimits } from "./fragments.ts";
import { hashAddr, inPrefix, isMulticastOrBroadcast, isUnspecified, parseIp, sameAddr } from "./addr.ts";
import { IcmpLayer } from "./icmp.ts";

const log = logger("netstack");

export const RX_DROP_REASONS = [
  /** Version nibble neither 4 nor 6. */
  "badVersion",
  /** Header or length fields inconsistent with the bytes received. */
  "badLength",
  "badHeaderChecksum",
  /** Source address multicast, broadcast, unspecified, or one of our own (a reflection or a spoof). */
  "badSource",
  /** Destination is not one of our addresses. */
  "notForUs",
  "malformedExtHeaders",
  /** An IPv6 option we do not know whose type says "discard" (RFC 8200 section 4.2). */
  "unknownOption",
  /** Transport or ICMP checksum wrong. */
  "badChecksum",
  /** Transport header shorter than its minimum. */
  "truncatedTransport",
  "unknownProtocol",
  "noNextHeader",
  "fragmentOverlap",
  "fragmentInvalid",
  "fragmentDuplicate",
  "fragmentTooBig",
  /** ICMP message malformed, or an error quoting a packet we did not send. */
  "icmpInvalid",
  /** ICMP types we do not act on (router/neighbour discovery, timestamps, ...). */
  "icmpUnsupported",
] as const;
export type RxDropReason = typeof RX_DROP_REASONS[number];

export interface IpStats {
  rxPackets: number;
  rxBytes: number;
  rxDelivered: number;
  rxFragmentsHeld: number;
  rxDropped: Record<RxDropReason, number>;
  /** Packets handed to the link (fragments count one each). */
  txPackets: number;
  txBytes: number;
  /** Fragments sent (datagrams larger than the path MTU, never TCP). */
  txFragments: number;
  /** Outbound packets not sent: larger than the link MTU, or no usable addresses. */
  txDropped: { tooBig: number; badAddress: number };
  icmp: {
    echoRequestsAnswered: number;
    echoRepliesReceived: number;
    errorsReceived: number;
    errorsSent: number;
    errorsRateLimited: number;
    pmtuUpdates: number;
  };
  fragments: { reassembled: number; timeouts: number; evicted: number; overlaps: number; inFlight: number };
  /** Exceptions thrown by a transport handler (a bug in it; the packet was counted delivered). */
  handlerErrors: number;
}

export interface IpLayerOptions {
  /** The stack's own addresses (prefix lengths describe the tunnel subnet; only the address is ours). */
  addresses: IpPrefix[];
  clock: Clock;
  reassembly?: ReassemblyLimits;
  /** ICMP errors sent per second (token bucket, like Linux's icmp_msgs_per_sec); default 1000. */
  icmpErrorsPerSec?: number;
  /** Token bucket depth; default 50. */
  icmpErrorBurst?: number;
  /** Initial IPv4 identification (random in production so idents are not predictable). */
  initialIdent?: number;
  /** Initial IPv6 fragment identification (random in production, RFC 7739). */
  initialIdent6?: number;
}

/** Learnt path MTUs expire so a path that healed is used fully again (RFC 1191 section 6.3, RFC 8201). */
export const PMTU_EXPIRY_MS = 10 * 60_000;
const PMTU_MAX_ENTRIES = 4096;

interface PmtuEntry {
  addr: Uint8Array;
  mtu: number;
  expires: number;
}

const NO_BYTES = new Uint8Array(0);

export class IpLayer implements IpSender {
  readonly stats: IpStats;
  readonly icmp: IcmpLayer;
  readonly v4Addresses: Uint8Array[] = [];
  readonly v6Addresses: Uint8Array[] = [];
  readonly #link: PacketInterface;
  readonly #clock: Clock;
  readonly #reasm: Reassembler;
  readonly #handlers: (TransportHandler | undefined)[] = new Array(256).fill(undefined);
  readonly #v4Set = new Set<number>();
  readonly #v4Prefixes: number[] = [];
  readonly #v6Prefixes: number[] = [];
  #pmtu = new Map<number, PmtuEntry>();
  #ident: number;
  #ident6: number;
  #view = new Ipv4Packet(NO_BYTES);
  #chain = newHeaderChain();
  /** The packet being delivered to a transport, so it can be quoted in an ICMP error. */
  #current: Uint8Array | undefined;
  #tokens: number;
  #tokensAt: number;
  readonly #ratePerMs: number;
  readonly #burst: number;
  #closed = false;
  /** Where every unfragmented outgoing packet is built (see sendSegment). */
  #out = new Uint8Array(0);

  constructor(link: PacketInterface, opts: IpLayerOptions) {
    this.#link = link;
    this.#clock = opts.clock;
    this.#reasm = new Reassembler(opts.clock, opts.reassembly);
    this.#reasm.onTimeout = (first) => {
      if (first[0] >> 4 === 6) {
        this.sendIcmpError(first, ICMPV6_TIME_EXCEEDED, ICMPV6_CODE_REASSEMBLY_TIME_EXCEEDED);
      } else this.sendIcmpError(first, ICMPV4_TIME_EXCEEDED, ICMPV4_CODE_REASSEMBLY_TIME_EXCEEDED);
    };
    this.#ident = (opts.initialIdent ?? 0) & 0xffff;
    this.#ident6 = (opts.initialIdent6 ?? 0) >>> 0;
    this.#burst = opts.icmpErrorBurst ?? 50;
    this.#ratePerMs = (opts.icmpErrorsPerSec ?? 1000) / 1000;
    this.#tokens = this.#burst;
    this.#tokensAt = opts.clock.now();
    for (const a of opts.addresses) {
      const bytes = parseIp(a.address);
      if (!bytes) throw new Error(`netstack: address "${a.address}" is not a literal IPv4 or IPv6 address`);
      if (isUnspecified(bytes) || isMulticastOrBroadcast(bytes)) {
        throw new Error(`netstack: address "${a.address}" cannot be a host address`);
      }
      const max = bytes.length * 8;
      const prefix = Number.isInteger(a.prefix) && a.prefix >= 0 && a.prefix <= max ? a.prefix : max;
      if (bytes.length === 4) {
        this.v4Addresses.push(bytes);
        this.#v4Prefixes.push(prefix);
        this.#v4Set.add(u32(bytes, 0));
      } else {
        this.v6Addresses.push(bytes);
        this.#v6Prefixes.push(prefix);
      }
    }
    const dropped = {} as Record<RxDropReason, number>;
    for (const r of RX_DROP_REASONS) dropped[r] = 0;
    const reasm = this.#reasm;
    this.stats = {
      rxPackets: 0,
      rxBytes: 0,
      rxDelivered: 0,
      rxFragmentsHeld: 0,
      rxDropped: dropped,
      txPackets: 0,
      txBytes: 0,
      txFragments: 0,
      txDropped: { tooBig: 0, badAddress: 0 },
      icmp: {
        echoRequestsAnswered: 0,
        echoRepliesReceived: 0,
        errorsReceived: 0,
        errorsSent: 0,
        errorsRateLimited: 0,
        pmtuUpdates: 0,
      },
      fragments: {
        get reassembled() {
          return reasm.stats.reassembled;
        },
        get timeouts() {
          return reasm.stats.timeouts;
        },
        get evicted() {
          return reasm.stats.evicted;
        },
        get overlaps() {
          return reasm.stats.overlaps;
        },
        get inFlight() {
          return reasm.inFlight;
        },
      },
      handlerErrors: 0,
    };
    this.icmp = new IcmpLayer(this, opts.clock);
    link.setReceiver((p) => this.receive(p));
  }

  get linkMtu(): number {
    return this.#link.mtu;
  }

  /** Installs the handler for a transport protocol (TCP, UDP). */
  register(proto: number, handler: TransportHandler): void {
    this.#handlers[proto] = handler;
  }

  handlerFor(proto: number): TransportHandler | undefined {
    return this.#handlers[proto];
  }

  // ---- IpSender ----

  isLocal(addr: Uint8Array): boolean {
    if (addr.length === 4) return this.#v4Set.has(u32(addr, 0));
    if (addr.length !== 16) return false;
    for (const a of this.v6Addresses) if (sameAddr(a, addr)) return true;
    return false;
  }

  /**
   * The source address toward dst: among our addresses of dst's family, the one whose subnet (wg-quick
   * `Address = 10.0.0.2/24`) contains dst with the longest prefix; otherwise the first one listed.
   */
  sourceFor(dst: Uint8Array): Uint8Array | undefined {
    const v4 = dst.length === 4;
    if (!v4 && dst.length !== 16) return undefined;
    const addrs = v4 ? this.v4Addresses : this.v6Addresses;
    if (addrs.length <= 1) return addrs[0];
    const prefixes = v4 ? this.#v4Prefixes : this.#v6Prefixes;
    let best = addrs[0], bestLen = -1;
    for (let i = 0; i < addrs.length; i++) {
      if (prefixes[i] > bestLen && inPrefix(dst, addrs[i], prefixes[i])) {
        best = addrs[i];
        bestLen = prefixes[i];
      }
    }
    return best;
  }

  mtuFor(dst: Uint8Array): number {
    const linkMtu = this.#link.mtu;
    if (this.#pmtu.size === 0) return linkMtu;
    const e = this.#pmtuFind(dst);
    if (!e) return linkMtu;
    if (e.expires <= this.#clock.now()) {
      this.#pmtu.delete(this.#pmtuKey(e.addr));
      return linkMtu;
    }
    return Math.min(e.mtu, linkMtu);
  }

  /**
   * Lowers the path MTU toward dst after a packet-too-big. Values below the protocol minimum are raised to it
   * (RFC 8201 section 4; for IPv4 RFC 1191 allows down to 68, Linux floors at 552 against forged tiny MTUs).
   * Returns the MTU now in effect, or 0 when nothing changed.
   */
  updatePathMtu(dst: Uint8Array, mtu: number): number {
    const floor = dst.length === 4 ? 552 : IPV6_MIN_MTU;
    if (dst.length === 4 && mtu < IPV4_MIN_MTU) return 0;
    mtu = Math.max(mtu, floor);
    const current = this.mtuFor(dst);
    if (mtu >= current) return 0;
    if (this.#pmtu.size >= PMTU_MAX_ENTRIES) {
      const oldest = this.#pmtu.keys().next().value!;
      this.#pmtu.delete(oldest);
    }
    const key = this.#pmtuKey(dst);
    this.#pmtu.delete(key);
    this.#pmtu.set(key, { addr: dst.slice(), mtu, expires: this.#clock.now() + PMTU_EXPIRY_MS });
    this.stats.icmp.pmtuUpdates++;
    return mtu;
  }

  // A hash collision between two destinations only makes one of them forget its PMTU entry (the other's
  // overwrites it), which the next packet-too-big repairs; full-address equality is checked on lookup.
  #pmtuKey(addr: Uint8Array): number {
    return addr.length === 4 ? u32(addr, 0) : hashAddr(addr) + 0x100000000;
  }

  #pmtuFind(addr: Uint8Array): PmtuEntry | undefined {
    const e = this.#pmtu.get(this.#pmtuKey(addr));
    return e && sameAddr(e.addr, addr) ? e : undefined;
  }

  /**
   * Sends a transport segment. TCP segments are sized by the sender to the path MTU and are never
   * fragmented (DF set; a segment larger than the link MTU is dropped and counted). Other protocols (UDP,
   * ICMP) larger than the path MTU are fragmented like a host would (RFC 791 / RFC 8200 section 4.5), so
   * large datagrams and echo replies to large pings still get through.
   */
  sendSegment(proto: number, src: Uint8Array, dst: Uint8Array, segment: Uint8Array): void {
    if (this.#closed) return;
    const v6 = dst.length === 16;
    if (src.length !== dst.length || (dst.length !== 4 && !v6)) {
      this.stats.txDropped.badAddress++;
      return;
    }
    const hl = v6 ? IPV6_HEADER_LEN : IPV4_MIN_HEADER_LEN;
    const total = hl + segment.length;
    // IPv4 total length is 16 bits; IPv6 payload length too (no jumbograms).
    if (segment.length > 65535 - (v6 ? 0 : hl)) {
      this.stats.txDropped.tooBig++;
      return;
    }
    const mtu = this.mtuFor(dst);
    const fragment = total > mtu && proto !== IPPROTO_TCP;
    if (total > this.#link.mtu && !fragment) {
      this.stats.txDropped.tooBig++;
      return;
    }
    // A packet is only valid during link.send() (the link copies what it keeps), so every packet the link can
    // carry whole is built in one buffer: no allocation per packet. One to be fragmented is cut into fresh
    // arrays anyway.
    let out: Uint8Array;
    if (fragment) out = new Uint8Array(total);
    else {
      if (this.#out.length < total) this.#out = new Uint8Array(total);
      out = this.#out.subarray(0, total);
    }
    if (v6) writeIpv6Header(out, 0, { src, dst, nextHeader: proto, payloadLen: segment.length });
    else {
      this.#ident = (this.#ident + 1) & 0xffff;
      // DF on unfragmented IPv4 packets: path MTU discovery needs the errors (RFC 1191).
      writeIpv4Header(out, 0, {
        src,
        dst,
        protocol: proto,
        payloadLen: segment.length,
        ident: this.#ident,
        dontFragment: !fragment,
      });
    }
    out.set(segment, hl);
    const csumOff = proto === IPPROTO_TCP
      ? 16
      : proto === IPPROTO_UDP
      ? 6
      : (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6)
      ? 2
      : -1;
    if (csumOff >= 0 && segment.length >= csumOff + 2) {
      const at = hl + csumOff;
      out[at] = 0;
      out[at + 1] = 0;
      let c: number;
      if (proto === IPPROTO_ICMP) c = internetChecksum(out, hl, segment.length);
      else {c = finishChecksum(
          onesSum(out, hl, segment.length, pseudoHeaderSum(src, dst, proto, segment.length)),
        );}
      // RFC 768: a computed UDP checksum of zero is sent as all ones (zero means "none").
      if (c === 0 && proto === IPPROTO_UDP) c = 0xffff;
      out[at] = c >> 8;
      out[at + 1] = c;
    }
    if (fragment) {
      if (v6) this.#sendFragmentsV6(out, proto, mtu);
      else this.#sendFragmentsV4(out, mtu);
      return;
    }
    this.stats.txPackets++;
    this.stats.txBytes += total;
    this.#link.send(out);
  }

  /** Splits a whole IPv4 packet (20-byte header) into fragments of at most mtu bytes. */
  #sendFragmentsV4(whole: Uint8Array, mtu: number): void {
    const hl = IPV4_MIN_HEADER_LEN;
    const step = (mtu - hl) & ~7;
    const dataLen = whole.length - hl;
    for (let off = 0; off < dataLen; off += step) {
      const n = Math.min(step, dataLen - off);
      const frag = new Uint8Array(hl + n);
      frag.set(whole.subarray(0, hl), 0);
      frag.set(whole.subarray(hl + off, hl + off + n), hl);
      const v = new Ipv4Packet(frag);
      v.totalLen = hl + n;
      const field = (off >> 3) | (off + n < dataLen ? IPV4_FLAG_MF : 0);
      frag[6] = field >> 8;
      frag[7] = field;
      v.fillChecksum();
      this.#emitFragment(frag);
    }
  }

  /** Splits a whole IPv6 packet (no extension headers) into fragments with a Fragment header each. */
  #sendFragmentsV6(whole: Uint8Array, proto: number, mtu: number): void {
    const hl = IPV6_HEADER_LEN;
    const step = (mtu - hl - IPV6_FRAGMENT_HEADER_LEN) & ~7;
    const dataLen = whole.length - hl;
    // RFC 7739: fragment identifications should not be predictable; a random start and a counter will do.
    this.#ident6 = (this.#ident6 + 1) >>> 0;
    const ident = this.#ident6;
    for (let off = 0; off < dataLen; off += step) {
      const n = Math.min(step, dataLen - off);
      const frag = new Uint8Array(hl + IPV6_FRAGMENT_HEADER_LEN + n);
      frag.set(whole.subarray(0, hl), 0);
      const payloadLen = IPV6_FRAGMENT_HEADER_LEN + n;
      frag[4] = payloadLen >> 8;
      frag[5] = payloadLen;
      frag[6] = IPV6_NEXT_FRAGMENT;
      const fh = hl;
      frag[fh] = proto;
      const field = off | (off + n < dataLen ? 1 : 0);
      frag[fh + 2] = field >> 8;
      frag[fh + 3] = field;
      frag[fh + 4] = ident >>> 24;
      frag[fh + 5] = ident >>> 16;
      frag[fh + 6] = ident >>> 8;
      frag[fh + 7] = ident;
      frag.set(whole.subarray(hl + off, hl + off + n), fh + IPV6_FRAGMENT_HEADER_LEN);
      this.#emitFragment(frag);
    }
  }

  #emitFragment(frag: Uint8Array): void {
    this.stats.txPackets++;
    this.stats.txFragments++;
    this.stats.txBytes += frag.length;
    this.#link.send(frag);
  }

  // ---- receive path ----

  /** Entry point for inbound packets from the link. Never throws. */
  receive(packet: Uint8Array): void {
    if (this.#closed) return;
    this.stats.rxPackets++;
    this.stats.rxBytes += packet.length;
    try {
      this.#receive(packet);
    } catch (e) {
      // Parsers check lengths before reading, so this is a bug; count it and keep the tunnel up.
      this.stats.handlerErrors++;
      log.warn("packet handling failed", { error: String(e) });
    } finally {
      this.#current = undefined;
      // The view must not keep the packet: it is a view on a 64 KiB decryption slab that would stay pinned
      // (one per idle tunnel) until the next packet arrives.
      this.#view.reset(NO_BYTES);
    }
  }

  #drop(reason: RxDropReason): void {
    this.stats.rxDropped[reason]++;
  }

  #receive(packet: Uint8Array): void {
    if (packet.length === 0) return this.#drop("badLength");
    const version = packet[0] >> 4;
    if (version === 4) return this.#receiveV4(packet);
    if (version === 6) return this.#receiveV6(packet);
    this.#drop("badVersion");
  }

  #receiveV4(packet: Uint8Array): void {
    if (!Ipv4Packet.checkLen(packet)) return this.#drop("badLength");
    const v = this.#view.reset(packet);
    if (!v.verifyChecksum()) return this.#drop("badHeaderChecksum");
    const src = v.srcU32;
    // 0.0.0.0/8, multicast, class E and broadcast are never unicast sources (RFC 1122 3.2.1.3).
    if ((src >>> 24) === 0 || (src >>> 28) >= 0xe || this.#v4Set.has(src)) return this.#drop("badSource");
    if (!this.#v4Set.has(v.dstU32)) return this.#drop("notForUs");
    if (v.isFragment) {
      const r = this.#reasm.addV4(v);
      if (r === FRAGMENT_HELD) {
        this.stats.rxFragmentsHeld++;
        return;
      }
      if (typeof r === "string") return this.#drop(r);
      // The reassembled datagram is no fragment, so this recursion is one level deep.
      return this.#receiveV4(r);
    }
    const hl = v.headerLen;
    this.#dispatch(
      v.protocol,
      packet.subarray(12, 16),
      packet.subarray(16, 20),
      packet.subarray(hl, v.totalLen),
      packet,
      false,
      9,
    );
  }

  #receiveV6(packet: Uint8Array): void {
    if (packet.length < IPV6_HEADER_LEN || IPV6_HEADER_LEN + ((packet[4] << 8) | packet[5]) > packet.length) {
      return this.#drop("badLength");
    }
    const src = packet.subarray(8, 24);
    const dst = packet.subarray(24, 40);
    if (src[0] === 0xff || isUnspecified(src) || this.isLocal(src)) return this.#drop("badSource");
    if (!this.isLocal(dst)) return this.#drop("notForUs");
    const end = IPV6_HEADER_LEN + ((packet[4] << 8) | packet[5]);
    const chain = this.#chain;
    if (!walkExtensionHeaders(packet, end, chain)) return this.#drop("malformedExtHeaders");
    if (chain.unknownOptionOffset >= 0) {
      this.#drop("unknownOption");
      // Action 10 and 11 ask for a parameter problem (11 only for unicast destinations, which ours are).
      if (chain.unknownOptionAction >= 2) {
        this.sendIcmpError(
          packet,
          ICMPV6_PARAMETER_PROBLEM,
          ICMPV6_CODE_UNRECOGNIZED_OPTION,
          chain.unknownOptionOffset,
        );
      }
      return;
    }
    const fh = chain.fragmentHeaderOffset;
    if (fh >= 0) {
      const fragOff = ((packet[fh + 2] << 8) | packet[fh + 3]) & 0xfff8;
      const more = (packet[fh + 3] & 1) !== 0;
      // RFC 6946: an atomic fragment (offset 0, no more) is processed at once, never queued.
      if (fragOff !== 0 || more) {
        const r = this.#reasm.addV6(packet, end, chain);
        if (r === FRAGMENT_HELD) {
          this.stats.rxFragmentsHeld++;
          return;
        }
        if (typeof r === "string") return this.#drop(r);
        return this.#receiveV6(r);
      }
    }
    if (chain.protocol === IPV6_NEXT_NONE) return this.#drop("noNextHeader");
    this.#dispatch(
      chain.protocol,
      src,
      dst,
      packet.subarray(chain.offset, end),
      packet,
      true,
      chain.nextHeaderFieldOffset,
    );
  }

  #dispatch(
    proto: number,
    src: Uint8Array,
    dst: Uint8Array,
    segment: Uint8Array,
    packet: Uint8Array,
    v6: boolean,
    protoFieldOffset: number,
  ): void {
    if (proto === IPPROTO_UDP) {
      if (segment.length < 8) return this.#drop("truncatedTransport");
      const udpLen = (segment[4] << 8) | segment[5];
      if (udpLen < 8 || udpLen > segment.length) return this.#drop("badLength");
      const sum = (segment[6] << 8) | segment[7];
      // A zero UDP checksum means "not computed" on IPv4 only (RFC 768; RFC 8200 8.1 forbids it on IPv6).
      if (sum !== 0 || v6) {
        if (!verifyTransportChecksum(src, dst, proto, segment, 0, udpLen)) return this.#drop("badChecksum");
      }
      return this.#deliver(
        proto,
        src,
        dst,
        udpLen === segment.length ? segment : segment.subarray(0, udpLen),
        packet,
        v6,
        protoFieldOffset,
      );
    }
    if (proto === IPPROTO_TCP) {
      if (segment.length < 20) return this.#drop("truncatedTransport");
      if (!verifyTransportChecksum(src, dst, proto, segment)) return this.#drop("badChecksum");
      return this.#deliver(proto, src, dst, segment, packet, v6, protoFieldOffset);
    }
    if (proto === IPPROTO_ICMP && !v6) {
      const r = this.icmp.receiveV4(src, dst, segment);
      if (r) return this.#drop(r);
      this.stats.rxDelivered++;
      return;
    }
    if (proto === IPPROTO_ICMPV6 && v6) {
      const r = this.icmp.receiveV6(src, dst, segment);
      if (r) return this.#drop(r);
      this.stats.rxDelivered++;
      return;
    }
    this.#rejectUnknownProtocol(packet, v6, protoFieldOffset);
  }

  /** No handler for the protocol: count it and answer as RFC 1122 / RFC 8200 say. */
  #rejectUnknownProtocol(packet: Uint8Array, v6: boolean, protoFieldOffset: number): void {
    this.#drop("unknownProtocol");
    if (v6) {
      this.sendIcmpError(
        packet,
        ICMPV6_PARAMETER_PROBLEM,
        ICMPV6_CODE_UNRECOGNIZED_NEXT_HEADER,
        protoFieldOffset,
      );
    } else this.sendIcmpError(packet, ICMPV4_DEST_UNREACHABLE, ICMPV4_CODE_PROTOCOL_UNREACHABLE);
  }

  #deliver(
    proto: number,
    src: Uint8Array,
    dst: Uint8Array,
    segment: Uint8Array,
    packet: Uint8Array,
    v6: boolean,
    protoFieldOffset: number,
  ): void {
    const h = this.#handlers[proto];
    if (!h) return this.#rejectUnknownProtocol(packet, v6, protoFieldOffset);
    this.stats.rxDelivered++;
    this.#current = packet;
    try {
      h.deliver(src, dst, segment);
    } catch (e) {
      this.stats.handlerErrors++;
      log.warn("transport handler threw", { proto, error: String(e) });
    } finally {
      this.#current = undefined;
    }
  }

  /**
   * Answers the packet being delivered right now with ICMP port unreachable (a transport calls this from
   * deliver() when no socket wants the segment). Does nothing outside deliver().
   */
  sendPortUnreachable(): void {
    const p = this.#current;
    if (!p) return;
    if (p[0] >> 4 === 6) this.sendIcmpError(p, ICMPV6_DEST_UNREACHABLE, ICMPV6_CODE_PORT_UNREACHABLE);
    else this.sendIcmpError(p, ICMPV4_DEST_UNREACHABLE, ICMPV4_CODE_PORT_UNREACHABLE);
  }

  /**
   * Sends an ICMP error about `offending` (a whole inbound IP packet addressed to us) back to its source,
   * unless RFC 1122 3.2.2 / RFC 4443 2.4(e) forbid it (the offending packet is an ICMP error, a non-first
   * fragment, or from a multicast/unspecified source), or the rate limit is exhausted.
   */
  sendIcmpError(offending: Uint8Array, type: number, code: number, param = 0): void {
    const v6 = offending[0] >> 4 === 6;
    let src: Uint8Array, dst: Uint8Array;
    if (v6) {
      if (offending.length < IPV6_HEADER_LEN) return;
      src = offending.subarray(8, 24);
      dst = offending.subarray(24, 40);
      if (isUnspecified(src) || src[0] === 0xff) return;
      const chain = newHeaderChain();
      if (
        walkExtensionHeaders(
          offending,
          Math.min(offending.length, IPV6_HEADER_LEN + ((offending[4] << 8) | offending[5])),
          chain,
        )
      ) {
        if (chain.protocol === IPPROTO_ICMPV6) {
          // Informational messages (type >= 128) may be answered with errors; errors may not.
          if (chain.offset >= offending.length || offending[chain.offset] < 128) return;
        }
      }
    } else {
      if (!Ipv4Packet.checkLen(offending)) return;
      const v = new Ipv4Packet(offending);
      src = v.src;
      dst = v.dst;
      if (isUnspecified(src) || isMulticastOrBroadcast(src)) return;
      if (v.fragmentOffset !== 0) return;
      if (v.protocol === IPPROTO_ICMP) {
        const t = offending[v.headerLen];
        if (v.payloadLen < 1 || (t !== ICMPV4_ECHO_REQUEST && t !== ICMPV4_ECHO_REPLY)) return;
      }
    }
    if (!this.#takeToken()) {
      this.stats.icmp.errorsRateLimited++;
      return;
    }
    // We are the offending packet's destination, so its dst is our source address.
    const ourSrc = dst.slice(), peer = src.slice();
    const msg = buildIcmpError(type, code, offending, param, v6 ? { src: ourSrc, dst: peer } : undefined);
    this.stats.icmp.errorsSent++;
    this.sendSegment(v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, ourSrc, peer, msg);
  }

  #takeToken(): boolean {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#tokensAt) * this.#ratePerMs);
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reasm.clear();
    this.icmp.close();
  }
}

function u32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}
