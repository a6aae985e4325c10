/**
 * UDP over the userspace stack (RFC 768): sockets bound to (address, port) or (any, port), ephemeral
 * ports, bounded receive queues, ICMP port unreachable for datagrams no socket wants.
 */
import type { DatagramConn, NetAddr } from "./conn.ts";
import { IPPROTO_UDP, type TransportHandler } from "./types.ts";
import type { IpLayer } from "./ip.ts";
import { UDP_HEADER_LEN, writeUdpDatagram } from "../wire/udp.ts";
import { formatIp, isUnspecified, parseIp, sameAddr } from "./addr.ts";
import { cryptoRandom, type RandomFill } from "../util/random.ts";
import { joinHostPort } from "../util/host_port.ts";

/** IANA dynamic port range (RFC 6335), the range ephemeral ports come from. */
export const EPHEMERAL_PORT_MIN = 49152;
export const EPHEMERAL_PORT_MAX = 65535;
/** 65535 - 20 (IPv4 header) - 8; IPv6's payload length covers the UDP header only: 65535 - 8. */
export const UDP_MAX_PAYLOAD_V4 = 65507;
export const UDP_MAX_PAYLOAD_V6 = 65527;

export interface UdpOptions {
  /** Datagrams a socket queues before dropping new ones; default 1024. */
  receiveQueueDatagrams?: number;
  /** Bytes a socket queues before dropping new ones; default 4 MiB. */
  receiveQueueBytes?: number;
  random?: RandomFill;
}

export interface UdpStats {
  /** Datagrams delivered to a socket queue (or straight to a waiting receive()). */
  received: number;
  /** Datagrams dropped because the socket's queue was full. */
  queueFull: number;
  /** Datagrams for a port with no socket (answered with ICMP port unreachable). */
  noPort: number;
  sent: number;
  /** ICMP errors about datagrams we sent. */
  icmpErrors: number;
}

export class UdpError extends Error {
  constructor(
    message: string,
    readonly code: "EADDRINUSE" | "EMSGSIZE" | "EINVAL" | "ECLOSED" | "EADDRNOTAVAIL",
  ) {
    super(message);
    this.name = "UdpError";
  }
}

export class UdpLayer implements TransportHandler {
  readonly stats: UdpStats = { received: 0, queueFull: 0, noPort: 0, sent: 0, icmpErrors: 0 };
  readonly #ip: IpLayer;
  readonly #opts: Required<Omit<UdpOptions, "random">>;
  readonly #random: RandomFill;
  /** port -> sockets on it (one per local address, or one wildcard). */
  #ports = new Map<number, UdpSocket[]>();
  #nextEphemeral: number;
  #scratch = new Uint8Array(2048);

  constructor(ip: IpLayer, opts: UdpOptions = {}) {
    this.#ip = ip;
    this.#opts = {
      receiveQueueDatagrams: opts.receiveQueueDatagrams ?? 1024,
      receiveQueueBytes: opts.receiveQueueBytes ?? 4 * 1024 * 1024,
    };
    this.#random = opts.random ?? cryptoRandom;
    const r = this.#random(new Uint8Array(2));
    this.#nextEphemeral = EPHEMERAL_PORT_MIN +
      (((r[0] << 8) | r[1]) % (EPHEMERAL_PORT_MAX - EPHEMERAL_PORT_MIN + 1));
    ip.register(IPPROTO_UDP, this);
  }

  /**
   * Binds a socket. `hostname` undefined, "0.0.0.0" or "::" binds every local address (both families);
   * port 0 picks a free ephemeral port.
   */
  bind(hostname: string | undefined, port: number): UdpSocket {
    let addr: Uint8Array | undefined;
    if (hostname !== undefined && hostname !== "") {
      const h = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
      const parsed = parseIp(h);
      if (!parsed) throw new UdpError(`udp bind: "${hostname}" is not a literal IP address`, "EINVAL");
      if (!isUnspecified(parsed)) {
        if (!this.#ip.isLocal(parsed)) {
          throw new UdpError(`udp bind: ${h} is not an address of this tunnel`, "EADDRNOTAVAIL");
        }
        addr = parsed;
      }
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new UdpError(`udp bind: port ${port} is not in 0..65535`, "EINVAL");
    }
    if (port === 0) port = this.#ephemeral(addr);
    else if (this.#conflicts(addr, port)) {
      throw new UdpError(`udp bind: ${joinHostPort(hostname ?? "*", port)} already in use`, "EADDRINUSE");
    }
    const sock = new UdpSocket(
      this,
      addr,
      port,
      this.#opts.receiveQueueDatagrams,
      this.#opts.receiveQueueBytes,
    );
    const list = this.#ports.get(port);
    if (list) list.push(sock);
    else this.#ports.set(port, [sock]);
    return sock;
  }

  #conflicts(addr: Uint8Array | undefined, port: number): boolean {
    const list = this.#ports.get(port);
    if (!list) return false;
    // A wildcard bind conflicts with everything on the port; specific binds only with the same address.
    return list.some((s) => !s.boundAddr || !addr || sameAddr(s.boundAddr, addr));
  }

  #ephemeral(addr: Uint8Array | undefined): number {
    const span = EPHEMERAL_PORT_MAX - EPHEMERAL_PORT_MIN + 1;
    for (let i = 0; i < span; i++) {
      const p = this.#nextEphemeral;
      this.#nextEphemeral = p === EPHEMERAL_PORT_MAX ? EPHEMERAL_PORT_MIN : p + 1;
      if (!this.#conflicts(addr, p)) return p;
    }
    throw new UdpError("udp bind: no free ephemeral port", "EADDRINUSE");
  }

  unbind(sock: UdpSocket): void {
    const list = this.#ports.get(sock.port);
    if (!list) return;
    const i = list.indexOf(sock);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#ports.delete(sock.port);
  }

  #lookup(dst: Uint8Array, port: number): UdpSocket | undefined {
    const list = this.#ports.get(port);
    if (!list) return undefined;
    let wildcard: UdpSocket | undefined;
    for (const s of list) {
      if (!s.boundAddr) wildcard = s;
      else if (sameAddr(s.boundAddr, dst)) return s;
    }
    return wildcard;
  }

  deliver(src: Uint8Array, dst: Uint8Array, segment: Uint8Array): void {
    const dstPort = (segment[2] << 8) | segment[3];
    const sock = this.#lookup(dst, dstPort);
    if (!sock) {
      this.stats.noPort++;
      this.#ip.sendPortUnreachable();
      return;
    }
    const srcPort = (segment[0] << 8) | segment[1];
    if (sock.enqueue(src, srcPort, segment.subarray(UDP_HEADER_LEN))) this.stats.received++;
    else this.stats.queueFull++;
  }

  deliverIcmpError(
    _kind: "unreachable" | "port-unreachable" | "too-big",
    src: Uint8Array,
    _dst: Uint8Array,
    quoted: Uint8Array,
  ): void {
    // Like an unconnected BSD socket we do not surface errors to the reader; they are counted.
    if (quoted.length < 4) return;
    const sock = this.#lookup(src, (quoted[0] << 8) | quoted[1]);
    if (sock) {
      sock.icmpErrors++;
      this.stats.icmpErrors++;
    }
  }

  /** Builds and sends one datagram. Returns the payload length. */
  send(sock: UdpSocket, data: Uint8Array, to: NetAddr): number {
    const h = to.hostname.startsWith("[") && to.hostname.endsWith("]")
      ? to.hostname.slice(1, -1)
      : to.hostname;
    const dst = parseIp(h);
    if (!dst) {
      throw new UdpError(
        `udp send: "${to.hostname}" is not a literal IP address (no DNS inside the tunnel)`,
        "EINVAL",
      );
    }
    if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
      throw new UdpError(`udp send: port ${to.port} is not in 1..65535`, "EINVAL");
    }
    const src = sock.boundAddr ?? this.#ip.sourceFor(dst);
    if (!src || src.length !== dst.length) {
      throw new UdpError(
        `udp send: no local IPv${dst.length === 4 ? 4 : 6} address to reach ${h}`,
        "EADDRNOTAVAIL",
      );
    }
    // Larger than the path MTU is fine (the IP layer fragments); larger than IP can carry is not.
    const max = dst.length === 4 ? UDP_MAX_PAYLOAD_V4 : UDP_MAX_PAYLOAD_V6;
    if (data.length > max) {
      throw new UdpError(
        `udp send: ${data.length} bytes exceed the largest UDP payload (${max})`,
        "EMSGSIZE",
      );
    }
    const len = UDP_HEADER_LEN + data.length;
    if (len > this.#scratch.length) this.#scratch = new Uint8Array(len);
    const seg = this.#scratch.subarray(0, len);
    writeUdpDatagram(seg, 0, sock.port, to.port, data);
    this.#ip.sendSegment(IPPROTO_UDP, src, dst, seg);
    this.stats.sent++;
    return data.length;
  }

  close(): void {
    for (const list of [...this.#ports.values()]) for (const s of [...list]) s.close();
  }
}

interface Waiter {
  resolve: (v: [Uint8Array, NetAddr]) => void;
  reject: (e: Error) => void;
}

/** A UDP socket of the userspace stack, shaped like Deno.DatagramConn. */
export class UdpSocket implements DatagramConn {
  readonly addr: NetAddr;
  icmpErrors = 0;
  /** Datagrams dropped because this socket's queue was full. */
  dropped = 0;
  #queue: [Uint8Array, NetAddr][] = [];
  #head = 0;
  #queuedBytes = 0;
  #waiters: Waiter[] = [];
  #closed = false;
  // The last source seen: a request/response peer repeats, so its NetAddr is reused instead of re-formatted.
  #lastSrc = new Uint8Array(16);
  #lastSrcLen = 0;
  #lastFrom: NetAddr | undefined;

  constructor(
    private readonly layer: UdpLayer,
    readonly boundAddr: Uint8Array | undefined,
    readonly port: number,
    private readonly maxDatagrams: number,
    private readonly maxBytes: number,
  ) {
    this.addr = { transport: "udp", hostname: boundAddr ? formatIp(boundAddr) : "0.0.0.0", port };
  }

  /** Queues a datagram (copied); false when the queue is full and it was dropped. */
  enqueue(src: Uint8Array, srcPort: number, payload: Uint8Array): boolean {
    if (this.#closed) return false;
    const from = this.#from(src, srcPort);
    const w = this.#waiters.shift();
    if (w) {
      w.resolve([payload.slice(), from]);
      return true;
    }
    if (
      this.#queue.length - this.#head >= this.maxDatagrams ||
      this.#queuedBytes + payload.length > this.maxBytes
    ) {
      this.dropped++;
      return false;
    }
    this.#queue.push([payload.slice(), from]);
    this.#queuedBytes += payload.length;
    return true;
  }

  #from(src: Uint8Array, port: number): NetAddr {
    const last = this.#lastFrom;
    if (last && last.port === port && this.#lastSrcLen === src.length) {
      let same = true;
      for (let i = 0; i < src.length; i++) {
        if (this.#lastSrc[i] !== src[i]) {
          same = false;
          break;
        }
      }
      if (same) return last;
    }
    const from: NetAddr = Object.freeze({ transport: "udp", hostname: formatIp(src), port });
    this.#lastSrc.set(src);
    this.#lastSrcLen = src.length;
    this.#lastFrom = from;
    return from;
  }

  send(data: Uint8Array, to: NetAddr): Promise<number> {
    if (this.#closed) return Promise.reject(new UdpError("udp send: socket closed", "ECLOSED"));
    try {
      return Promise.resolve(this.layer.send(this, data, to));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  receive(): Promise<[Uint8Array, NetAddr]> {
    if (this.#head < this.#queue.length) {
      const item = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined as unknown as [Uint8Array, NetAddr];
      this.#queuedBytes -= item[0].length;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      return Promise.resolve(item);
    }
    if (this.#closed) return Promise.reject(new UdpError("udp receive: socket closed", "ECLOSED"));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Datagrams waiting to be read. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.layer.unbind(this);
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    for (const w of this.#waiters.splice(0)) w.reject(new UdpError("udp receive: socket closed", "ECLOSED"));
  }
}
