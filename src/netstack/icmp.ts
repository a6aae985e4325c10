/**
 * ICMPv4/ICMPv6 inside the stack: answers echo requests to our addresses, runs our own pings, and turns
 * inbound errors (destination unreachable, packet too big) into path-MTU updates and transport
 * notifications. Errors are accepted only when the packet they quote came from one of our addresses.
 */
import type { Clock, TimerHandle } from "../util/clock.ts";
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from "./types.ts";
import type { IpLayer, RxDropReason } from "./ip.ts";
import { internetChecksum, verifyTransportChecksum } from "../wire/checksum.ts";
import {
  ICMP_HEADER_LEN,
  ICMPV4_CODE_FRAGMENTATION_NEEDED,
  ICMPV4_CODE_PORT_UNREACHABLE,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_TIME_EXCEEDED,
  ICMPV6_CODE_PORT_UNREACHABLE,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAMETER_PROBLEM,
  ICMPV6_TIME_EXCEEDED,
} from "../wire/icmp.ts";
import { IPV4_MIN_HEADER_LEN } from "../wire/ipv4.ts";
import { IPV6_HEADER_LEN, newHeaderChain, walkExtensionHeaders } from "../wire/ipv6.ts";
import { formatIp, sameAddr } from "./addr.ts";

export interface PingOptions {
  /** Echo identifier; default: this stack's random identifier. */
  id?: number;
  /** Sequence number; default: the next one. */
  seq?: number;
  /** Bytes of echo data (default 56, like ping(8)). */
  size?: number;
  /** Default 5000 ms. */
  timeoutMs?: number;
}

interface PendingPing {
  dst: Uint8Array;
  sentAt: number;
  size: number;
  timer: TimerHandle;
  resolve: (rtt: number) => void;
  reject: (e: Error) => void;
}

export class PingError extends Error {
  constructor(message: string, readonly reason: "timeout" | "unreachable" | "closed" | "invalid") {
    super(message);
    this.name = "PingError";
  }
}

export class IcmpLayer {
  #ip: IpLayer;
  #clock: Clock;
  #pending = new Map<number, PendingPing>();
  #ident = 0;
  #seq = 0;
  #scratch = new Uint8Array(2048);
  #chain = newHeaderChain();

  constructor(ip: IpLayer, clock: Clock) {
    this.#ip = ip;
    this.#clock = clock;
  }

  /** Sets the default echo identifier (the stack passes a random one). */
  set defaultIdent(id: number) {
    this.#ident = id & 0xffff;
  }

  get pendingPings(): number {
    return this.#pending.size;
  }

  receiveV4(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): RxDropReason | undefined {
    if (msg.length < ICMP_HEADER_LEN) return "icmpInvalid";
    if (internetChecksum(msg) !== 0) return "badChecksum";
    const type = msg[0];
    if (type === ICMPV4_ECHO_REQUEST) {
      this.#reply(IPPROTO_ICMP, ICMPV4_ECHO_REPLY, dst, src, msg);
      return undefined;
    }
    if (type === ICMPV4_ECHO_REPLY) return this.#echoReply(src, msg);
    if (type === ICMPV4_DEST_UNREACHABLE || type === ICMPV4_TIME_EXCEEDED) {
      const q = msg.subarray(ICMP_HEADER_LEN);
      if (q.length < IPV4_MIN_HEADER_LEN || q[0] >> 4 !== 4) return "icmpInvalid";
      const hl = (q[0] & 0x0f) << 2;
      // RFC 792: the quote holds the IP header and at least 64 bits of the original data.
      if (hl < IPV4_MIN_HEADER_LEN || q.length < hl + 8) return "icmpInvalid";
      const qsrc = q.subarray(12, 16), qdst = q.subarray(16, 20);
      if (!this.#ip.isLocal(qsrc)) return "icmpInvalid";
      this.#ip.stats.icmp.errorsReceived++;
      if (type === ICMPV4_TIME_EXCEEDED) return undefined;
      const code = msg[1];
      let mtu: number | undefined;
      let kind: "unreachable" | "port-unreachable" | "too-big" = "unreachable";
      if (code === ICMPV4_CODE_FRAGMENTATION_NEEDED) {
        kind = "too-big";
        const next = (msg[6] << 8) | msg[7];
        const now = this.#ip.updatePathMtu(qdst, next);
        mtu = now || this.#ip.mtuFor(qdst);
      } else if (code === ICMPV4_CODE_PORT_UNREACHABLE) kind = "port-unreachable";
      // A quoted non-first fragment carries no transport header to match a socket with.
      if ((((q[6] << 8) | q[7]) & 0x1fff) !== 0) return undefined;
      this.#notify(q[9], kind, qsrc, qdst, q.subarray(hl), mtu);
      return undefined;
    }
    return "icmpUnsupported";
  }

  receiveV6(src: Uint8Array, dst: Uint8Array, msg: Uint8Array): RxDropReason | undefined {
    if (msg.length < ICMP_HEADER_LEN) return "icmpInvalid";
    if (!verifyTransportChecksum(src, dst, IPPROTO_ICMPV6, msg)) return "badChecksum";
    const type = msg[0];
    if (type === ICMPV6_ECHO_REQUEST) {
      this.#reply(IPPROTO_ICMPV6, ICMPV6_ECHO_REPLY, dst, src, msg);
      return undefined;
    }
    if (type === ICMPV6_ECHO_REPLY) return this.#echoReply(src, msg);
    if (
      type === ICMPV6_DEST_UNREACHABLE || type === ICMPV6_PACKET_TOO_BIG || type === ICMPV6_TIME_EXCEEDED ||
      type === ICMPV6_PARAMETER_PROBLEM
    ) {
      const q = msg.subarray(ICMP_HEADER_LEN);
      if (q.length < IPV6_HEADER_LEN || q[0] >> 4 !== 6) return "icmpInvalid";
      const qsrc = q.subarray(8, 24), qdst = q.subarray(24, 40);
      if (!this.#ip.isLocal(qsrc)) return "icmpInvalid";
      // The quote may be truncated, so walk only what is there.
      const end = Math.min(q.length, IPV6_HEADER_LEN + ((q[4] << 8) | q[5]));
      const chain = this.#chain;
      if (!walkExtensionHeaders(q, end, chain) || chain.offset + 8 > q.length) return "icmpInvalid";
      this.#ip.stats.icmp.errorsReceived++;
      if (type === ICMPV6_TIME_EXCEEDED) return undefined;
      let mtu: number | undefined;
      let kind: "unreachable" | "port-unreachable" | "too-big" = "unreachable";
      if (type === ICMPV6_PACKET_TOO_BIG) {
        kind = "too-big";
        const adv = ((msg[4] << 24) | (msg[5] << 16) | (msg[6] << 8) | msg[7]) >>> 0;
        const now = this.#ip.updatePathMtu(qdst, Math.min(adv, 0xffff));
        mtu = now || this.#ip.mtuFor(qdst);
      } else if (type === ICMPV6_DEST_UNREACHABLE && msg[1] === ICMPV6_CODE_PORT_UNREACHABLE) {
        kind = "port-unreachable";
      }
      const fh = chain.fragmentHeaderOffset;
      if (fh >= 0 && (((q[fh + 2] << 8) | q[fh + 3]) & 0xfff8) !== 0) return undefined;
      this.#notify(chain.protocol, kind, qsrc, qdst, q.subarray(chain.offset), mtu);
      return undefined;
    }
    return "icmpUnsupported";
  }

  #notify(
    proto: number,
    kind: "unreachable" | "port-unreachable" | "too-big",
    qsrc: Uint8Array,
    qdst: Uint8Array,
    quoted: Uint8Array,
    mtu: number | undefined,
  ): void {
    if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
      // One of our echo requests could not be delivered: fail that ping now rather than at its timeout.
      const echoType = proto === IPPROTO_ICMP ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
      if (kind !== "too-big" && quoted[0] === echoType) {
        const k = pingKey((quoted[4] << 8) | quoted[5], (quoted[6] << 8) | quoted[7]);
        const p = this.#pending.get(k);
        if (p && sameAddr(p.dst, qdst)) {
          this.#finish(k, p);
          p.reject(new PingError(`ping ${formatIp(qdst)}: destination unreachable`, "unreachable"));
        }
      }
      return;
    }
    this.#ip.handlerFor(proto)?.deliverIcmpError?.(kind, qsrc, qdst, quoted, mtu);
  }

  #reply(proto: number, type: number, ourAddr: Uint8Array, peer: Uint8Array, request: Uint8Array): void {
    if (request.length > this.#scratch.length) this.#scratch = new Uint8Array(request.length);
    const out = this.#scratch.subarray(0, request.length);
    out.set(request);
    out[0] = type;
    out[1] = 0;
    this.#ip.stats.icmp.echoRequestsAnswered++;
    // sendSegment computes the checksum (with the pseudo-header for ICMPv6) and copies `out`.
    this.#ip.sendSegment(proto, ourAddr, peer, out);
  }

  #echoReply(src: Uint8Array, msg: Uint8Array): RxDropReason | undefined {
    this.#ip.stats.icmp.echoRepliesReceived++;
    const k = pingKey((msg[4] << 8) | msg[5], (msg[6] << 8) | msg[7]);
    const p = this.#pending.get(k);
    // A reply from another address, or with other data length, is not the answer to our request.
    if (!p || !sameAddr(p.dst, src) || msg.length - ICMP_HEADER_LEN !== p.size) return undefined;
    this.#finish(k, p);
    p.resolve(this.#clock.now() - p.sentAt);
    return undefined;
  }

  #finish(k: number, p: PendingPing): void {
    this.#pending.delete(k);
    this.#clock.clearTimer(p.timer);
  }

  /** Sends one echo request to dst and resolves the round-trip time in ms. */
  ping(dst: Uint8Array, opts: PingOptions = {}): Promise<number> {
    const src = this.#ip.sourceFor(dst);
    const name = formatIp(dst);
    if (!src) {
      return Promise.reject(
        new PingError(`ping ${name}: the stack has no IPv${dst.length === 4 ? 4 : 6} address`, "invalid"),
      );
    }
    const v6 = dst.length === 16;
    const size = opts.size ?? 56;
    // Larger than the path MTU is fine (the IP layer fragments it), larger than an IP packet is not.
    const max = 65535 - ICMP_HEADER_LEN - (v6 ? 0 : IPV4_MIN_HEADER_LEN);
    if (!Number.isInteger(size) || size < 0 || size > max) {
      return Promise.reject(new PingError(`ping ${name}: size ${size} is not in 0..${max}`, "invalid"));
    }
    const id = (opts.id ?? this.#ident) & 0xffff;
    let seq: number;
    if (opts.seq !== undefined) seq = opts.seq & 0xffff;
    else {
      // Skip sequence numbers still in flight so concurrent pings never collide.
      let n = 0;
      do {
        this.#seq = (this.#seq + 1) & 0xffff;
        seq = this.#seq;
      } while (this.#pending.has(pingKey(id, seq)) && ++n < 65536);
    }
    const k = pingKey(id, seq);
    if (this.#pending.has(k)) {
      return Promise.reject(new PingError(`ping ${name}: id ${id} seq ${seq} already in flight`, "invalid"));
    }
    const msg = new Uint8Array(ICMP_HEADER_LEN + size);
    msg[0] = v6 ? ICMPV6_ECHO_REQUEST : ICMPV4_ECHO_REQUEST;
    msg[4] = id >> 8;
    msg[5] = id;
    msg[6] = seq >> 8;
    msg[7] = seq;
    for (let i = 0; i < size; i++) msg[ICMP_HEADER_LEN + i] = i & 0xff;
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise<number>((resolve, reject) => {
      const timer = this.#clock.setTimer(() => {
        const p = this.#pending.get(k);
        if (!p) return;
        this.#pending.delete(k);
        reject(new PingError(`ping ${name}: no reply within ${timeoutMs} ms`, "timeout"));
      }, timeoutMs);
      this.#pending.set(k, { dst: dst.slice(), sentAt: this.#clock.now(), size, timer, resolve, reject });
      this.#ip.sendSegment(v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, src, dst, msg);
    });
  }

  close(): void {
    for (const [k, p] of [...this.#pending]) {
      this.#finish(k, p);
      p.reject(new PingError(`ping ${formatIp(p.dst)}: stack closed`, "closed"));
    }
  }
}

function pingKey(id: number, seq: number): number {
  return id * 65536 + seq;
}
