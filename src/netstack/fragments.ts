/**
 * IPv4 (RFC 791) and IPv6 (RFC 8200 section 4.5) fragment reassembly, bounded so fragments from the tunnel
 * cannot exhaust memory: a cap on datagrams in flight, on bytes held, on pieces per datagram, and a timeout
 * (RFC 8200: 60 s; we use 30 s like Linux's ipfrag_time). Overlapping fragments discard the whole datagram
 * (RFC 5722, and RFC 1858's overlap attacks for IPv4); an exact duplicate of a held fragment is ignored.
 */
import type { Clock, TimerHandle } from "../util/clock.ts";
import { hashAddr, sameAddr } from "./addr.ts";
import { Ipv4Packet } from "../wire/ipv4.ts";
import { IPV6_FRAGMENT_HEADER_LEN, IPV6_HEADER_LEN, type Ipv6HeaderChain } from "../wire/ipv6.ts";

export const REASSEMBLY_TIMEOUT_MS = 30_000;
export const REASSEMBLY_MAX_DATAGRAMS = 64;
export const REASSEMBLY_MAX_BYTES = 4 * 1024 * 1024;
/** Tiny fragments cost bookkeeping per byte; no sane sender splits one datagram this finely. */
export const REASSEMBLY_MAX_PIECES = 256;
const MAX_IP_PACKET = 65535;

export interface ReassemblyLimits {
  timeoutMs?: number;
  maxDatagrams?: number;
  maxBytes?: number;
  maxPieces?: number;
}

export interface ReassemblyStats {
  /** Datagrams completed. */
  reassembled: number;
  /** Datagrams discarded because their timer ran out. */
  timeouts: number;
  /** Datagrams discarded to stay within the datagram or byte caps. */
  evicted: number;
  /** Datagrams discarded because a fragment overlapped another. */
  overlaps: number;
}

/** Why a fragment was not held: counted by the IP layer under rxDropped. */
export type FragmentDrop = "fragmentOverlap" | "fragmentInvalid" | "fragmentDuplicate" | "fragmentTooBig";
/** A fragment was stored and its datagram is still incomplete. */
export const FRAGMENT_HELD = "held";
export type FragmentResult = Uint8Array | typeof FRAGMENT_HELD | FragmentDrop;

interface Piece {
  off: number;
  data: Uint8Array;
}

class Datagram {
  pieces: Piece[] = [];
  /** Payload length once the last fragment (MF = 0) arrived, else -1. */
  total = -1;
  bytes = 0;
  /** IPv4: the first fragment's header; IPv6: the first fragment's unfragmentable part. */
  header: Uint8Array | undefined;
  /** IPv6: Next Header of the fragmentable part, from the first fragment's Fragment header. */
  nextHeader = 0;
  /** IPv6: offset in `header` of the Next Header field that named the Fragment header. */
  nextHeaderField = 0;
  timer: TimerHandle | undefined;

  constructor(
    readonly hash: number,
    readonly v6: boolean,
    readonly src: Uint8Array,
    readonly dst: Uint8Array,
    readonly ident: number,
    readonly proto: number,
  ) {}

  matches(v6: boolean, src: Uint8Array, dst: Uint8Array, ident: number, proto: number): boolean {
    return this.v6 === v6 && this.ident === ident && this.proto === proto && sameAddr(this.src, src) &&
      sameAddr(this.dst, dst);
  }
}

export class Reassembler {
  readonly stats: ReassemblyStats = { reassembled: 0, timeouts: 0, evicted: 0, overlaps: 0 };
  #byHash = new Map<number, Datagram[]>();
  /** Insertion order = age order, for eviction. */
  #all = new Set<Datagram>();
  #bytes = 0;
  readonly #timeoutMs: number;
  readonly #maxDatagrams: number;
  readonly #maxBytes: number;
  readonly #maxPieces: number;

  /**
   * Called with the (reconstructed) first fragment of a datagram that timed out, so the IP layer can send
   * "fragment reassembly time exceeded" to its source (RFC 792, RFC 8200 section 4.5).
   */
  onTimeout: ((firstFragment: Uint8Array) => void) | undefined;

  constructor(private readonly clock: Clock, limits: ReassemblyLimits = {}) {
    this.#timeoutMs = limits.timeoutMs ?? REASSEMBLY_TIMEOUT_MS;
    this.#maxDatagrams = limits.maxDatagrams ?? REASSEMBLY_MAX_DATAGRAMS;
    this.#maxBytes = limits.maxBytes ?? REASSEMBLY_MAX_BYTES;
    this.#maxPieces = limits.maxPieces ?? REASSEMBLY_MAX_PIECES;
  }

  /** Datagrams currently being reassembled. */
  get inFlight(): number {
    return this.#all.size;
  }
  /** Bytes currently held. */
  get bytesHeld(): number {
    return this.#bytes;
  }

  /** Adds an IPv4 fragment (caller checked header, checksum and that it is a fragment). */
  addV4(p: Ipv4Packet): FragmentResult {
    const off = p.fragmentOffset;
    const data = p.payload;
    const more = p.moreFragments;
    if (more && (data.length & 7) !== 0) return "fragmentInvalid";
    if (data.length === 0) return "fragmentInvalid";
    if (p.headerLen + off + data.length > MAX_IP_PACKET) return "fragmentTooBig";
    const src = p.src, dst = p.dst, ident = p.ident, proto = p.protocol;
    const hash = hashAddr(dst, hashAddr(src, (ident << 8) ^ proto));
    const d = this.#find(hash, false, src, dst, ident, proto) ??
      this.#create(hash, false, src, dst, ident, proto);
    if (off === 0 && !d.header) d.header = p.buf.slice(0, p.headerLen);
    return this.#addPiece(d, off, data, more);
  }

  /**
   * Adds an IPv6 fragment. `chain` is the walk of this packet's headers (fragmentHeaderOffset >= 0);
   * `end` the packet end (40 + payload length).
   */
  addV6(buf: Uint8Array, end: number, chain: Ipv6HeaderChain): FragmentResult {
    const fh = chain.fragmentHeaderOffset;
    const off = ((buf[fh + 2] << 8) | buf[fh + 3]) & 0xfff8;
    const more = (buf[fh + 3] & 1) !== 0;
    const ident = ((buf[fh + 4] << 24) | (buf[fh + 5] << 16) | (buf[fh + 6] << 8) | buf[fh + 7]) >>> 0;
    const dataStart = fh + 8;
    const data = buf.subarray(dataStart, end);
    if (more && (data.length & 7) !== 0) return "fragmentInvalid";
    if (data.length === 0) return "fragmentInvalid";
    // RFC 8200: the reassembled payload length (unfragmentable part + fragmentable part) must fit 16 bits.
    if (fh - IPV6_HEADER_LEN + off + data.length > MAX_IP_PACKET) return "fragmentTooBig";
    const src = buf.subarray(8, 24), dst = buf.subarray(24, 40);
    const hash = hashAddr(dst, hashAddr(src, ident));
    const d = this.#find(hash, true, src, dst, ident, 0) ?? this.#create(hash, true, src, dst, ident, 0);
    if (off === 0 && !d.header) {
      d.header = buf.slice(0, fh);
      d.nextHeader = buf[fh];
      d.nextHeaderField = chain.fragmentNextFieldOffset;
    }
    return this.#addPiece(d, off, data, more);
  }

  #find(hash: number, v6: boolean, src: Uint8Array, dst: Uint8Array, ident: number, proto: number) {
    const bucket = this.#byHash.get(hash);
    if (!bucket) return undefined;
    for (const d of bucket) if (d.matches(v6, src, dst, ident, proto)) return d;
    return undefined;
  }

  #create(
    hash: number,
    v6: boolean,
    src: Uint8Array,
    dst: Uint8Array,
    ident: number,
    proto: number,
  ): Datagram {
    while (this.#all.size >= this.#maxDatagrams) this.#evictOldest();
    const d = new Datagram(hash, v6, src.slice(), dst.slice(), ident, proto);
    const bucket = this.#byHash.get(hash);
    if (bucket) bucket.push(d);
    else this.#byHash.set(hash, [d]);
    this.#all.add(d);
    d.timer = this.clock.setTimer(() => {
      d.timer = undefined;
      if (this.#all.has(d)) {
        this.stats.timeouts++;
        const first = this.onTimeout && d.header && d.pieces[0]?.off === 0
          ? this.#firstFragment(d)
          : undefined;
        this.#remove(d);
        if (first) this.onTimeout!(first);
      }
    }, this.#timeoutMs);
    return d;
  }

  #addPiece(d: Datagram, off: number, data: Uint8Array, more: boolean): FragmentResult {
    const end = off + data.length;
    if (!more) {
      // Two different "last" fragments, or data beyond the end already seen: not one datagram.
      if (
        (d.total >= 0 && d.total !== end) || (d.pieces.length > 0 && d.pieces[d.pieces.length - 1].off +
                d.pieces[d.pieces.length - 1].data.length > end)
      ) {
        this.#remove(d);
        return "fragmentInvalid";
      }
      d.total = end;
    } else if (d.total >= 0 && end > d.total) {
      this.#remove(d);
      return "fragmentInvalid";
    }
    // Pieces are sorted by offset; find the insertion point from the back (fragments mostly arrive in order).
    const pieces = d.pieces;
    let i = pieces.length;
    while (i > 0 && pieces[i - 1].off > off) i--;
    const prev = i > 0 ? pieces[i - 1] : undefined;
    const next = i < pieces.length ? pieces[i] : undefined;
    if (prev && prev.off === off && prev.data.length === data.length) {
      return "fragmentDuplicate";
    }
    if ((prev && prev.off + prev.data.length > off) || (next && end > next.off)) {
      this.stats.overlaps++;
      this.#remove(d);
      return "fragmentOverlap";
    }
    if (pieces.length >= this.#maxPieces) {
      this.stats.evicted++;
      this.#remove(d);
      return "fragmentTooBig";
    }
    const size = data.length + (off === 0 ? (d.header?.length ?? 0) : 0);
    if (size > this.#maxBytes) {
      this.#remove(d);
      return "fragmentTooBig";
    }
    while (this.#bytes + size > this.#maxBytes && this.#all.size > 0) {
      const oldest = this.#all.values().next().value!;
      if (oldest === d) break;
      this.#evictOldest();
    }
    if (this.#bytes + size > this.#maxBytes) {
      this.stats.evicted++;
      this.#remove(d);
      return "fragmentTooBig";
    }
    pieces.splice(i, 0, { off, data: data.slice() });
    d.bytes += size;
    this.#bytes += size;
    return this.#tryComplete(d);
  }

  #tryComplete(d: Datagram): FragmentResult {
    if (d.total < 0 || !d.header) return FRAGMENT_HELD;
    let covered = 0;
    for (const p of d.pieces) {
      if (p.off !== covered) return FRAGMENT_HELD;
      covered += p.data.length;
    }
    if (covered !== d.total) return FRAGMENT_HELD;
    const h = d.header;
    const out = new Uint8Array(h.length + d.total);
    out.set(h, 0);
    for (const p of d.pieces) out.set(p.data, h.length + p.off);
    if (d.v6) {
      out[d.nextHeaderField] = d.nextHeader;
      const payloadLen = out.length - IPV6_HEADER_LEN;
      out[4] = payloadLen >> 8;
      out[5] = payloadLen;
    } else {
      const v = new Ipv4Packet(out);
      v.totalLen = out.length;
      out[6] = 0;
      out[7] = 0;
      v.fillChecksum();
    }
    this.stats.reassembled++;
    this.#remove(d);
    return out;
  }

  /** The first fragment as it arrived: header (IPv6: plus its Fragment header) and its data. */
  #firstFragment(d: Datagram): Uint8Array {
    const h = d.header!, data = d.pieces[0].data;
    if (!d.v6) {
      const out = new Uint8Array(h.length + data.length);
      out.set(h, 0);
      out.set(data, h.length);
      return out;
    }
    const out = new Uint8Array(h.length + IPV6_FRAGMENT_HEADER_LEN + data.length);
    out.set(h, 0);
    const fh = h.length;
    out[fh] = d.nextHeader;
    out[fh + 3] = 1; // offset 0, more fragments
    out[fh + 4] = d.ident >>> 24;
    out[fh + 5] = d.ident >>> 16;
    out[fh + 6] = d.ident >>> 8;
    out[fh + 7] = d.ident;
    out.set(data, fh + IPV6_FRAGMENT_HEADER_LEN);
    return out;
  }

  #evictOldest(): void {
    const oldest = this.#all.values().next().value;
    if (!oldest) return;
    this.stats.evicted++;
    this.#remove(oldest);
  }

  #remove(d: Datagram): void {
    if (!this.#all.delete(d)) return;
    this.clock.clearTimer(d.timer);
    d.timer = undefined;
    this.#bytes -= d.bytes;
    const bucket = this.#byHash.get(d.hash);
    if (bucket) {
      const i = bucket.indexOf(d);
      if (i >= 0) bucket.splice(i, 1);
      if (bucket.length === 0) this.#byHash.delete(d.hash);
    }
  }

  /** Drops everything held and cancels timers. */
  clear(): void {
    for (const d of [...this.#all]) this.#remove(d);
  }
}
