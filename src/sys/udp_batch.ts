/**
 * Batched UDP through libc (Deno FFI) on a socket Deno opened: the shared core of the WireGuard device's
 * LinuxUdpBind and of the host Net's UDP sockets (BatchedDatagramConn in host_udp.ts).
 *
 * Deno costs one async op per datagram each way. The socket stays Deno's (Deno.listenDatagram); its
 * descriptor is found among this process's descriptors by type, family, address and port (Deno hands out
 * none). Deno's `receive()` is kept only as the wait for data, on the event loop's own epoll; what is queued
 * behind that first datagram is then read with synchronous `recvmmsg()` calls, RECV_BATCH datagrams each,
 * into a preallocated arena (UdpBatchIo.drain). Reading the socket behind Deno's back is safe: its next
 * receive finds EAGAIN and waits for the next edge. Sends are copied into a second arena; everything staged
 * during one task leaves in one synchronous `sendmmsg()` at the next microtask, or at once when SEND_BATCH
 * are waiting (UdpBatchIo.stage). The process has one pair of arenas for all its batched sockets
 * (BatchArenas), so a socket costs its descriptor and its counters, not 8 MiB.
 *
 * Why not an own socket() with a `poll()` on Deno's blocking thread pool (a `nonblocking` FFI call): the
 * hand-off between the pool thread and the main thread added 70 to 100 us to every wake-up on the shared
 * 2-core machine (UDP ping-pong 168 us against Deno's 64 to 94 us).
 *
 * A socket attached with `gso` stages consecutive datagrams of one size to one destination as one message
 * with a UDP_SEGMENT control message (a GSO train, see UdpBatchIo.stage): the kernel routes and passes it
 * down once and cuts it into the datagrams at the end, the receiver sees them unchanged.
 *
 * A full send buffer (EAGAIN) drops the rest of the batch and counts it in `sendErrors`, as a router would;
 * nothing waits or spins on the main thread. The socket buffers are raised to 4 MiB (past
 * net.core.{r,w}mem_max through SO_*BUFFORCE when running as root), so this is rare.
 *
 * Linux on x86_64 and aarch64 only (the struct layouts below are those two LP64 ABIs). WGEDGE_UDP=deno|ffi
 * overrides the automatic choice everywhere (`udpBatchMode()`).
 *
 * This file sits below the wire layer (src/sys imports only src/util): addresses cross it as bytes (4 for
 * IPv4, 16 for IPv6); callers parse and format the text forms.
 */
import { ffiModeFromEnv, getIntOption, type Libc, type LibcSymbols, loadLibc, setIntOption } from "./libc.ts";
import type { Logger } from "../util/log.ts";
import { type EpollHandler, EPOLLIN, type EpollLoop } from "./epoll.ts";
import {
  AF_INET,
  AF_INET6,
  EACCES,
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAFNOSUPPORT,
  EAGAIN,
  EINTR,
  EINVAL,
  EIO,
  EPERM,
  MSG_DONTWAIT,
  MSG_TRUNC,
  SO_DOMAIN,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SO_TYPE,
  SOCK_DGRAM,
  SOL_SOCKET,
  SOL_UDP,
  UDP_SEGMENT,
} from "./constants.ts";
export { AF_INET, AF_INET6 } from "./constants.ts";

/** Datagrams per recvmmsg call (wireguard-go reads up to 128 per batch); one vector per process (BatchArenas). */
export const RECV_BATCH = 64;
/** Datagrams gathered for one sendmmsg call; a fuller batch is sent at once, any batch by the next microtask. */
export const SEND_BATCH = 64;
/** recvmmsg calls per wake-up before the loop waits again, so timers and other sockets get a turn. */
export const BATCHES_PER_ROUND = 4;
/** The largest UDP payload over IPv6 without jumbograms is 65527; one slot holds any datagram. */
export const SLOT_SIZE = 65536;
/** Socket buffers asked for; the kernel caps SO_*BUF at net.core.{r,w}mem_max (the FORCE variants need root). */
const SOCKET_BUFFER_BYTES = 4 << 20;
/**
 * UDP GSO (UDP_SEGMENT) trains: at most this many datagrams (the kernel's UDP_MAX_SEGMENTS is 64 on older
 * kernels, 128 since 5.x) and this many payload bytes (under the 65507 an IPv4 UDP datagram can carry).
 */
export const GSO_MAX_SEGMENTS = 64;
export const GSO_MAX_BYTES = 65000;
/** Bound on caches of encoded sockaddrs and of decoded sources. */
export const ENDPOINT_CACHE_MAX = 4096;

// ---- struct layouts (LP64 Linux: x86_64, aarch64) ----

/** struct msghdr (56 bytes) followed by mmsghdr.msg_len (u32 at 56, padded to 64). */
const MSGHDR_NAME = 0;
const MSGHDR_NAMELEN = 8;
const MSGHDR_IOV = 16;
const MSGHDR_IOVLEN = 24;
const MSGHDR_CONTROL = 32;
const MSGHDR_CONTROLLEN = 40;
const MSGHDR_FLAGS = 48;
const MMSGHDR_LEN = 56;
const MMSGHDR_SIZE = 64;
/** struct iovec: iov_base, iov_len. */
const IOVEC_BASE = 0;
const IOVEC_LEN = 8;
const IOVEC_SIZE = 16;
/** struct sockaddr_in6 (28 bytes): family (host order), port (network order), flowinfo, addr[16], scope_id. */
export const SOCKADDR_IN6_SIZE = 28;
const SIN6_PORT = 2;
const SIN6_ADDR = 8;
const SIN6_SCOPE_ID = 24;
/** struct sockaddr_in (16 bytes): family, port (network order), addr[4], zero[8]. */
export const SOCKADDR_IN_SIZE = 16;
const SIN_PORT = 2;
const SIN_ADDR = 4;
/** Room for either sockaddr, rounded so every slot stays 4-byte aligned. */
const NAME_SLOT = 32;
/**
 * One control message per send slot: struct cmsghdr (cmsg_len u64, cmsg_level i32, cmsg_type i32) and a u16
 * UDP_SEGMENT size; cmsg_len is CMSG_LEN(2) = 18 (the kernel checks it), the space CMSG_SPACE(2) = 24.
 */
const CMSG_LEN_U16 = 18;
const CONTROL_SLOT = 24;
const CMSG_LEVEL = 8;
const CMSG_TYPE = 12;
const CMSG_DATA = 16;

/** Typed accessors over a sockaddr_in / sockaddr_in6 in a byte buffer (length checked by `family()`). */
export class SockaddrView {
  readonly view: DataView;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** AF_INET or AF_INET6 when `len` bytes hold that family's struct, else 0. */
  family(len: number): number {
    if (len < 2 || len > this.buf.length) return 0;
    const f = this.view.getUint16(0, true);
    if (f === AF_INET6 && len >= SOCKADDR_IN6_SIZE) return AF_INET6;
    if (f === AF_INET && len >= SOCKADDR_IN_SIZE) return AF_INET;
    return 0;
  }
  get port(): number {
    return this.view.getUint16(SIN_PORT, false); // same offset in both structs
  }
  get scopeId(): number {
    return this.view.getUint32(SIN6_SCOPE_ID, true);
  }
  /** The 16 address bytes of an AF_INET6 struct. */
  bytesV6(): Uint8Array {
    return this.buf.subarray(SIN6_ADDR, SIN6_ADDR + 16);
  }
  /** The 4 address bytes of an AF_INET struct. */
  bytesV4(): Uint8Array {
    return this.buf.subarray(SIN_ADDR, SIN_ADDR + 4);
  }

  /** Writes a sockaddr_in6; returns its length. */
  static writeV6(out: Uint8Array, addr: Uint8Array, port: number, scopeId = 0): number {
    out.fill(0, 0, SOCKADDR_IN6_SIZE);
    const v = new DataView(out.buffer, out.byteOffset, SOCKADDR_IN6_SIZE);
    v.setUint16(0, AF_INET6, true);
    v.setUint16(SIN6_PORT, port, false);
    out.set(addr, SIN6_ADDR);
    v.setUint32(SIN6_SCOPE_ID, scopeId, true);
    return SOCKADDR_IN6_SIZE;
  }
  /** Writes a sockaddr_in; returns its length. */
  static writeV4(out: Uint8Array, addr: Uint8Array, port: number): number {
    out.fill(0, 0, SOCKADDR_IN_SIZE);
    const v = new DataView(out.buffer, out.byteOffset, SOCKADDR_IN_SIZE);
    v.setUint16(0, AF_INET, true);
    v.setUint16(SIN_PORT, port, false);
    out.set(addr, SIN_ADDR);
    return SOCKADDR_IN_SIZE;
  }
}

export function isV4Mapped(a: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

/**
 * The sockaddr for an address (4 or 16 bytes) and port as a socket of `family` sends to it: IPv4 goes
 * v4-mapped on an AF_INET6 socket. undefined for a port out of range or an address of another length; null
 * when an AF_INET socket is asked to reach an IPv6 address (EAFNOSUPPORT, as Deno reports it).
 */
export function encodeSockaddr(
  family: number,
  addr: Uint8Array,
  port: number,
): Uint8Array | null | undefined {
  if (!Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  if (addr.length !== 4 && addr.length !== 16) return undefined;
  if (family === AF_INET) {
    if (addr.length === 16) return null;
    const sa = new Uint8Array(SOCKADDR_IN_SIZE);
    SockaddrView.writeV4(sa, addr, port);
    return sa;
  }
  let v6 = addr;
  if (addr.length === 4) {
    v6 = new Uint8Array(16);
    v6[10] = v6[11] = 0xff;
    v6.set(addr, 12);
  }
  const sa = new Uint8Array(SOCKADDR_IN6_SIZE);
  SockaddrView.writeV6(sa, v6, port);
  return sa;
}

/**
 * RECV_BATCH mmsghdrs, each with one iovec onto its own SLOT_SIZE packet slot and its own sockaddr slot, in
 * two arenas whose addresses never change (ArrayBuffer backing stores do not move). Untouched slot pages are
 * never faulted in, so the resident cost is about one page per slot.
 */
export class MmsgVector {
  readonly headers: Uint8Array;
  readonly #hv: DataView;
  readonly packets: Uint8Array;
  /** The sockaddr slots as words, for comparing a source with the previous one without allocating. */
  readonly names32: Uint32Array;
  readonly #namesOff: number;
  readonly #iovOff: number;
  /** Offset of the control slots (send vectors with `control`), or -1. */
  readonly #controlOff: number;

  /** `control`: each message gets a UDP_SEGMENT control slot (a send vector that may carry GSO trains). */
  constructor(readonly count: number, control = false) {
    const iovOff = this.#iovOff = count * MMSGHDR_SIZE;
    this.#namesOff = iovOff + count * IOVEC_SIZE;
    this.#controlOff = control ? this.#namesOff + count * NAME_SLOT : -1;
    const headerBytes = this.#namesOff + count * NAME_SLOT + (control ? count * CONTROL_SLOT : 0);
    this.headers = new Uint8Array(new ArrayBuffer(headerBytes));
    this.#hv = new DataView(this.headers.buffer);
    this.packets = new Uint8Array(new ArrayBuffer(count * SLOT_SIZE));
    this.names32 = new Uint32Array(this.headers.buffer, this.#namesOff, count * (NAME_SLOT / 4));
    const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.headers)));
    const packetsBase = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.packets)));
    for (let i = 0; i < count; i++) {
      const h = i * MMSGHDR_SIZE, iov = iovOff + i * IOVEC_SIZE;
      this.#hv.setBigUint64(iov + IOVEC_BASE, packetsBase + BigInt(i * SLOT_SIZE), true);
      this.#hv.setBigUint64(iov + IOVEC_LEN, BigInt(SLOT_SIZE), true);
      this.#hv.setBigUint64(h + MSGHDR_NAME, base + BigInt(this.#namesOff + i * NAME_SLOT), true);
      this.#hv.setBigUint64(h + MSGHDR_IOV, base + BigInt(iov), true);
      this.#hv.setBigUint64(h + MSGHDR_IOVLEN, 1n, true);
      if (control) {
        // msg_control points at the slot for good; msg_controllen (0 or CONTROL_SLOT) says whether it counts.
        const c = this.#controlOff + i * CONTROL_SLOT;
        this.#hv.setBigUint64(h + MSGHDR_CONTROL, base + BigInt(c), true);
        this.#hv.setBigUint64(c, BigInt(CMSG_LEN_U16), true);
        this.#hv.setInt32(c + CMSG_LEVEL, SOL_UDP, true);
        this.#hv.setInt32(c + CMSG_TYPE, UDP_SEGMENT, true);
      }
      // Otherwise msg_control stays NULL / 0.
    }
    this.resetNames(count);
  }

  /** recvmmsg overwrites msg_namelen with the source's length: give the first `n` their full room again. */
  resetNames(n: number): void {
    for (let i = 0; i < n; i++) {
      this.#hv.setUint32(i * MMSGHDR_SIZE + MSGHDR_NAMELEN, SOCKADDR_IN6_SIZE, true);
    }
  }
  length(i: number): number {
    return this.#hv.getUint32(i * MMSGHDR_SIZE + MMSGHDR_LEN, true);
  }
  nameLength(i: number): number {
    return this.#hv.getUint32(i * MMSGHDR_SIZE + MSGHDR_NAMELEN, true);
  }
  flags(i: number): number {
    return this.#hv.getInt32(i * MMSGHDR_SIZE + MSGHDR_FLAGS, true);
  }
  /**
   * Datagram i's payload as a view into its slot. The view of the previous batch is handed out again when
   * slot i holds a datagram of the same length (a bulk transfer's full-size packets), so a drain allocates
   * nothing per datagram in the usual case; like the bytes, the view is valid only until the next receive.
   */
  data(i: number, len: number): Uint8Array {
    const v = this.#views[i];
    if (v !== undefined && v.length === len) return v;
    return this.#views[i] = new Uint8Array(this.packets.buffer, i * SLOT_SIZE, len);
  }
  readonly #views: (Uint8Array | undefined)[] = [];
  name(i: number, len: number): Uint8Array {
    return this.headers.subarray(this.#namesOff + i * NAME_SLOT, this.#namesOff + i * NAME_SLOT + len);
  }
  /** Makes message i of a sendmmsg batch: the payload copied into slot i, the destination into name slot i. */
  stage(i: number, data: Uint8Array, sockaddr: Uint8Array): void {
    this.packets.set(data, i * SLOT_SIZE);
    this.headers.set(sockaddr, this.#namesOff + i * NAME_SLOT);
    this.#hv.setUint32(i * MMSGHDR_SIZE + MSGHDR_NAMELEN, sockaddr.length, true);
    // iov_len is a size_t; its high word stays 0 (a slot is 64 KiB), so no BigInt per datagram.
    this.#hv.setUint32(this.#iovOff + i * IOVEC_SIZE + IOVEC_LEN, data.length, true);
    if (this.#controlOff >= 0) this.#hv.setUint32(i * MMSGHDR_SIZE + MSGHDR_CONTROLLEN, 0, true);
  }
  /**
   * Appends a datagram to message i as one more GSO segment at byte `offset` of its slot; from the second
   * segment on the message carries UDP_SEGMENT = `segmentSize` (a vector made with `control`).
   */
  append(i: number, offset: number, data: Uint8Array, segmentSize: number): void {
    this.packets.set(data, i * SLOT_SIZE + offset);
    this.#hv.setUint32(this.#iovOff + i * IOVEC_SIZE + IOVEC_LEN, offset + data.length, true);
    const c = this.#controlOff + i * CONTROL_SLOT;
    this.#hv.setUint16(c + CMSG_DATA, segmentSize, true);
    this.#hv.setUint32(i * MMSGHDR_SIZE + MSGHDR_CONTROLLEN, CONTROL_SLOT, true);
  }
  /** Bytes in message i's slot (its iov_len), for sending a train datagram by datagram. */
  payloadLength(i: number): number {
    return this.#hv.getUint32(this.#iovOff + i * IOVEC_SIZE + IOVEC_LEN, true);
  }
  gsoSize(i: number): number {
    return this.#hv.getUint16(this.#controlOff + i * CONTROL_SLOT + CMSG_DATA, true);
  }
  /** The mmsghdr array from message i on (for resuming a partly sent batch). */
  from(i: number): Uint8Array {
    return i === 0 ? this.headers : this.headers.subarray(i * MMSGHDR_SIZE);
  }
}

/**
 * The last source decoded from a receive vector, compared word by word with the next datagram's sockaddr so
 * a burst from one peer is decoded once, without allocating.
 */
export class LastSource<T> {
  readonly #words = new Uint32Array(NAME_SLOT / 4);
  #len = -1;
  #value: T | undefined;

  /** The remembered value when datagram i of `vec` came from the same sockaddr, else undefined. */
  match(vec: MmsgVector, i: number): T | undefined {
    const len = vec.nameLength(i);
    if (len !== this.#len || this.#value === undefined) return undefined;
    const w = vec.names32, base = i * (NAME_SLOT / 4), words = (len + 3) >> 2;
    for (let k = 0; k < words; k++) if (w[base + k] !== this.#words[k]) return undefined;
    return this.#value;
  }
  remember(vec: MmsgVector, i: number, value: T): void {
    const len = vec.nameLength(i), base = i * (NAME_SLOT / 4), words = (len + 3) >> 2;
    this.#words.set(vec.names32.subarray(base, base + words));
    this.#len = len;
    this.#value = value;
  }
}

// ---- libc loading and availability ----

/**
 * libc for the batch core, or why not: libc itself (libc.ts) plus an architecture whose struct layouts are the
 * ones written above.
 */
export function batchLibc(): Libc | { reason: string } {
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return { reason: `struct layouts not known for ${Deno.build.arch}` };
  }
  return loadLibc();
}

/** Why batched UDP cannot run here, or undefined when it can. */
export function udpBatchUnavailable(): string | undefined {
  const s = batchLibc();
  return "reason" in s ? s.reason : undefined;
}

/** Env variable that overrides the choice: "deno" (Deno's socket) or "ffi" (batched; an error if unusable). */
export const UDP_MODE_ENV = "WGEDGE_UDP";

/** WGEDGE_UDP: "deno", "ffi" or "auto" (unset, or no env permission). Throws on any other value. */
export function udpBatchMode(): "deno" | "ffi" | "auto" {
  return ffiModeFromEnv(UDP_MODE_ENV);
}

function errnoName(code: number): string {
  const names: Record<number, string> = {
    [EPERM]: "EPERM",
    [EINTR]: "EINTR",
    [EAGAIN]: "EAGAIN",
    [EACCES]: "EACCES",
    [EAFNOSUPPORT]: "EAFNOSUPPORT",
    [EADDRINUSE]: "EADDRINUSE",
    [EADDRNOTAVAIL]: "EADDRNOTAVAIL",
    [EIO]: "EIO",
    [EINVAL]: "EINVAL",
    90: "EMSGSIZE",
    101: "ENETUNREACH",
    105: "ENOBUFS",
    111: "ECONNREFUSED",
    113: "EHOSTUNREACH",
  };
  return names[code] ?? `errno ${code}`;
}

export function describeErrno(lib: LibcSymbols, code: number): string {
  const p = lib.strerror(code);
  const text = p ? Deno.UnsafePointerView.getCString(p) : "";
  return text ? `${text} (${errnoName(code)})` : errnoName(code);
}

// ---- finding Deno's socket ----

/**
 * The descriptor number the next socket() will get (the lowest free one), or -1: a guess to check first in
 * findSocketFd, found by duplicating a standard descriptor and closing the copy at once.
 */
export function lowestFreeFd(libc: Libc): number {
  for (const std of [0, 1, 2]) {
    const fd = libc.lib.dup(std);
    if (fd >= 0) {
      libc.lib.close(fd);
      return fd;
    }
  }
  return -1;
}

/**
 * The descriptor of this process's UDP socket bound to `local` (its address as 4 or 16 bytes, and its port;
 * Deno hands out no descriptor), or -1 when it cannot be told for sure: nothing ever reads or writes a socket it is not sure is the one Deno opened.
 *
 * A descriptor is bound to `local` when getsockname gives that family, address and port (it fails at once on
 * anything not a socket) and it is a datagram socket. An address and port is unique in a process unless
 * SO_REUSEADDR or SO_REUSEPORT let a second socket share it, and the kernel allows that only when both
 * sockets asked; so a match without either option is the one, and the search stops there. `hint` (the
 * lowest free descriptor just before Deno opened the socket) is tried first; otherwise every descriptor in
 * /proc/self/fd is asked, and two matches (reuse options) give -1. A relay opens a socket per flow while
 * holding thousands of descriptors, which is why the hint and the early stop matter.
 */
export function findSocketFd(libc: Libc, local: LocalAddress, hint = -1): number {
  const { lib } = libc;
  const want = local.address;
  const family = familyOf(want);
  if (family === 0) return -1;
  const addrOff = family === AF_INET ? SIN_ADDR : SIN6_ADDR;
  const len = new Uint32Array(1);
  const name = new Uint8Array(SOCKADDR_IN6_SIZE), view = new SockaddrView(name);
  const getInt = (fd: number, opt: number) => getIntOption(libc, fd, SOL_SOCKET, opt);
  const bound = (fd: number): boolean => {
    len[0] = SOCKADDR_IN6_SIZE;
    if (lib.getsockname(fd, name, len) !== 0 || view.family(len[0]) !== family) return false;
    if (view.port !== local.port) return false;
    for (let i = 0; i < want.length; i++) if (name[addrOff + i] !== want[i]) return false;
    // A TCP socket may hold the same address and port.
    return getInt(fd, SO_TYPE) === SOCK_DGRAM && getInt(fd, SO_DOMAIN) === family;
  };
  const shareable = (fd: number): boolean => getInt(fd, SO_REUSEADDR) !== 0 || getInt(fd, SO_REUSEPORT) !== 0;
  if (hint >= 0 && bound(hint) && !shareable(hint)) return hint;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc/self/fd")];
  } catch {
    return -1;
  }
  let found = -1;
  for (const e of entries) {
    const fd = Number(e.name);
    if (!Number.isInteger(fd) || !bound(fd)) continue;
    if (found >= 0) return -1; // two sockets on one address: cannot tell which is Deno's
    if (!shareable(fd)) return fd;
    found = fd;
  }
  return found;
}

/** A socket's local address as bytes (4: IPv4, 16: IPv6) and its port. */
export interface LocalAddress {
  address: Uint8Array;
  port: number;
}

/** The socket family of an address of 4 or 16 bytes; 0 for any other length. */
export function familyOf(address: Uint8Array): number {
  return address.length === 16 ? AF_INET6 : address.length === 4 ? AF_INET : 0;
}

// ---- batched reads and writes on one descriptor ----

/** Counters a UdpBatchIo adds to (its owner's public statistics). */
export interface UdpBatchStats {
  sendErrors: number;
  receiveErrors: number;
  rxDatagrams: number;
  rxBatches: number;
  rxBatchedDatagrams: number;
  txDatagrams: number;
  txBatches: number;
  txGsoDatagrams: number;
}

/** The counters of a batched socket, public on its owner (a bind, a host socket) for status and tests. */
export class UdpBatchCounters implements UdpBatchStats {
  /** Datagrams not sent: refused by the kernel, a full send buffer, an unreachable destination. */
  sendErrors = 0;
  /** Datagrams dropped on receive: unreadable source, truncated (cannot happen), or a failing recvmmsg. */
  receiveErrors = 0;
  /** Datagrams received; recvmmsg calls that returned data and the datagrams they read (the batching won). */
  rxDatagrams = 0;
  rxBatches = 0;
  rxBatchedDatagrams = 0;
  /** Datagrams handed to the kernel and sendmmsg calls that sent at least one. */
  txDatagrams = 0;
  txBatches = 0;
  /** Of txDatagrams, those that left in UDP GSO trains (several datagrams in one message; `gso` sockets). */
  txGsoDatagrams = 0;
}

/**
 * What a drain hands each datagram to: `source` decodes datagram i's sender (undefined: unreadable, counted
 * and dropped); `deliver` takes the payload (a view into the arena, valid until it returns) and returns false
 * to stop the drain (the socket is closing).
 */
export interface BatchReceiver<T> {
  source(vec: MmsgVector, i: number): T | undefined;
  deliver(data: Uint8Array, from: T): boolean;
}

/**
 * A send arena: SEND_BATCH staged datagrams for one descriptor at a time; staging for another socket first
 * sends what the previous one staged.
 */
export class SendArena {
  readonly vec = new MmsgVector(SEND_BATCH, true);
  staged = 0;
  /** Datagrams in each staged message (more than one: a GSO train). */
  readonly segments = new Uint8Array(SEND_BATCH);
  /** The last message's train: its destination (the cached sockaddr object), segment size, bytes, open. */
  trainTo: Uint8Array | undefined;
  trainSegment = 0;
  trainBytes = 0;
  trainOpen = false;
  owner: UdpBatchIo | undefined;
  scheduled = false;
  readonly task = (): void => {
    this.scheduled = false;
    this.owner?.flush();
  };
}

/**
 * The receive vector and the send arena batched sockets use. The process has one set
 * (`BatchArenas.forProcess()`), shared by every batched socket, each WireGuard bind and every host UDP
 * socket alike: 300 tunnels hold two arenas (8 MiB reserved, pages touched only by what passes through), not
 * 600 (2.4 GiB reserved, about 0.4 MiB of it resident per tunnel after one burst). Sharing is safe because
 * drain() is synchronous and every receiver copies what it keeps before `deliver` returns, and because staging
 * for another socket first sends what the previous one staged. The set lives while a socket uses it: the
 * process's set is made for the first batched socket and forgotten when the last one closes.
 */
export class BatchArenas {
  readonly recv = new MmsgVector(RECV_BATCH);
  readonly send = new SendArena();
  #users = 0;
  static #process: BatchArenas | undefined;

  /** The process's set, made on first use (and again after every socket using it closed). */
  static forProcess(): BatchArenas {
    return BatchArenas.#process ??= new BatchArenas();
  }

  /** Sockets using this set. */
  get users(): number {
    return this.#users;
  }

  retain(): this {
    this.#users++;
    return this;
  }

  release(): void {
    if (this.#users > 0 && --this.#users === 0 && BatchArenas.#process === this) {
      BatchArenas.#process = undefined;
    }
  }
}

/**
 * recvmmsg and sendmmsg on one descriptor of a Deno socket. The owner keeps the Deno socket (for the wait
 * and for close) and calls `drain()` after each datagram Deno's receive handed over. The arenas are the
 * process's unless others are given (tests); see BatchArenas for why sharing them is safe.
 */
export class UdpBatchIo {
  /** -1 once closed: nothing touches the descriptor after close(), since Deno may reuse its number. */
  #fd: number;
  readonly #arenas: BatchArenas;
  readonly #recvVec: MmsgVector;
  readonly #arena: SendArena;
  readonly #sendErrnoSeen = new Set<number>();
  /** Consecutive datagrams of one size to one destination leave as one UDP GSO message (see stage()). */
  #gso: boolean;
  /** The epoll loop watching the descriptor (watch()); it stops watching on close(). */
  #watchedBy?: EpollLoop;

  constructor(
    readonly libc: Libc,
    fd: number,
    readonly family: number,
    private readonly stats: UdpBatchStats,
    private readonly log: Logger,
    arenas: BatchArenas = BatchArenas.forProcess(),
    gso = false,
  ) {
    this.#fd = fd;
    // A kernel that knows UDP_SEGMENT (4.18 and later) answers its getsockopt; an older one would ignore the
    // control message and send a train as one long datagram, so it gets none.
    this.#gso = gso && getIntOption(libc, fd, SOL_UDP, UDP_SEGMENT) !== undefined;
    this.#arenas = arenas.retain();
    this.#recvVec = arenas.recv;
    this.#arena = arenas.send;
    const setInt = (opt: number, value: number) => setIntOption(libc, fd, SOL_SOCKET, opt, value);
    // FORCE passes net.core.*mem_max but needs CAP_NET_ADMIN; without it the plain option (capped) applies.
    if (!setInt(SO_RCVBUFFORCE, SOCKET_BUFFER_BYTES)) setInt(SO_RCVBUF, SOCKET_BUFFER_BYTES);
    if (!setInt(SO_SNDBUFFORCE, SOCKET_BUFFER_BYTES)) setInt(SO_SNDBUF, SOCKET_BUFFER_BYTES);
  }

  get open(): boolean {
    return this.#fd >= 0;
  }

  /**
   * Has `loop` watch the descriptor for readability (level-triggered: what one drain leaves is reported
   * again), so the owner's handler can drain it during the loop's lingers (epoll.ts). False where it cannot.
   */
  watch(loop: EpollLoop, handler: EpollHandler): boolean {
    if (this.#fd < 0 || this.#watchedBy || !loop.add(this.#fd, EPOLLIN, handler)) return false;
    this.#watchedBy = loop;
    return true;
  }

  /**
   * Up to BATCHES_PER_ROUND recvmmsg calls, stopping at EAGAIN or when the receiver says so; then the event
   * loop gets its turn. A truncated datagram (cannot happen with 64 KiB slots) is counted and dropped.
   */
  drain<T>(receiver: BatchReceiver<T>): void {
    const { lib } = this.libc;
    const vec = this.#recvVec;
    for (let round = 0; round < BATCHES_PER_ROUND && this.#fd >= 0; round++) {
      const n = lib.recvmmsg(this.#fd, vec.headers, RECV_BATCH, MSG_DONTWAIT, null);
      if (n < 0) {
        const code = this.libc.errno.getInt32(0);
        if (code !== EAGAIN && code !== EINTR) {
          // A queued socket error is reported once and cleared by this call.
          this.stats.receiveErrors++;
          this.log.debug("udp receive failed", { error: describeErrno(lib, code) });
        }
        return;
      }
      if (n === 0) return;
      this.stats.rxBatches++;
      this.stats.rxDatagrams += n;
      this.stats.rxBatchedDatagrams += n;
      let more = true;
      for (let i = 0; i < n && more; i++) {
        if (vec.flags(i) & MSG_TRUNC) {
          this.stats.receiveErrors++;
          continue;
        }
        const from = receiver.source(vec, i);
        if (from === undefined) {
          this.stats.receiveErrors++;
          continue;
        }
        more = receiver.deliver(vec.data(i, vec.length(i)), from);
      }
      vec.resetNames(n);
      if (!more || n < RECV_BATCH) return; // drained
    }
  }

  /** True while consecutive datagrams to one destination may leave as one UDP GSO message. */
  get gso(): boolean {
    return this.#gso;
  }

  /**
   * Copies the datagram (the caller may reuse its buffer) into the send arena for a sendmmsg at the end of
   * this task, so everything one event produces leaves in one system call. The caller checked that it fits
   * a slot (SLOT_SIZE).
   *
   * On a `gso` socket, a datagram for the same destination (the same cached sockaddr object) as the message
   * staged just before, and no longer than that message's first datagram, is appended to it as one more
   * segment: the kernel then carries the whole train through its stack as one packet (UDP_SEGMENT) and cuts
   * it into the original datagrams at the end (the receiver sees them unchanged). A shorter datagram ends
   * the train, as GSO allows only the last segment to be shorter.
   */
  stage(data: Uint8Array, sockaddr: Uint8Array): void {
    if (this.#fd < 0) {
      this.stats.sendErrors++;
      return;
    }
    const a = this.#arena;
    if (a.owner !== this) {
      a.owner?.flush();
      a.owner = this;
    }
    const len = data.length;
    if (
      a.trainOpen && a.staged > 0 && sockaddr === a.trainTo && len <= a.trainSegment && this.#gso &&
      a.trainBytes + len <= GSO_MAX_BYTES && a.segments[a.staged - 1] < GSO_MAX_SEGMENTS
    ) {
      const i = a.staged - 1;
      a.vec.append(i, a.trainBytes, data, a.trainSegment);
      a.segments[i]++;
      a.trainBytes += len;
      if (len < a.trainSegment) a.trainOpen = false;
      return; // the message was staged (and its send scheduled) with the train's first datagram
    }
    const i = a.staged++;
    a.vec.stage(i, data, sockaddr);
    a.segments[i] = 1;
    a.trainTo = sockaddr;
    a.trainSegment = a.trainBytes = len;
    a.trainOpen = this.#gso && len > 0;
    if (a.staged === SEND_BATCH) this.flush();
    else if (!a.scheduled) {
      a.scheduled = true;
      queueMicrotask(a.task);
    }
  }

  /**
   * Sends what this socket staged. A full send buffer (EAGAIN) drops the rest of the batch; a datagram the
   * kernel refuses for itself (unreachable destination, too long...) is skipped and the rest still go. Each
   * turn of the loop sends or drops at least one datagram.
   */
  flush(): void {
    const a = this.#arena;
    if (a.owner !== this) return;
    const n = a.staged, vec = a.vec, segments = a.segments;
    a.staged = 0;
    a.trainOpen = false;
    if (n === 0 || this.#fd < 0) return;
    const { lib } = this.libc;
    for (let i = 0; i < n;) {
      const sent = lib.sendmmsg(this.#fd, vec.from(i), n - i, MSG_DONTWAIT);
      if (sent > 0) {
        for (const end = i + sent; i < end; i++) {
          const k = segments[i];
          this.stats.txDatagrams += k;
          if (k > 1) this.stats.txGsoDatagrams += k;
        }
        this.stats.txBatches++;
        continue;
      }
      const code = this.libc.errno.getInt32(0);
      if (code === EAGAIN) {
        let left = 0;
        for (let j = i; j < n; j++) left += segments[j];
        return this.#sendFailed(code, left);
      }
      if (segments[i] > 1 && (code === EIO || code === EINVAL)) {
        // The route refused UDP GSO (no checksum offload: EIO; a segment over the path MTU: EINVAL): this
        // socket stops building trains, and this one leaves datagram by datagram.
        this.#gso = false;
        this.log.warn("udp GSO refused; sending datagram by datagram from now on", {
          error: describeErrno(lib, code),
        });
        this.#sendTrainApart(i, segments[i]);
      } else {
        this.#sendFailed(code, segments[i]);
      }
      i++;
    }
  }

  /**
   * Sends the `count` datagrams of train i one message each (the GSO fallback, once per socket), through a
   * one-message vector made for it (64 KiB, dropped afterwards).
   */
  #sendTrainApart(i: number, count: number): void {
    const vec = this.#arena.vec, one = new MmsgVector(1), { lib } = this.libc;
    const seg = vec.gsoSize(i), total = vec.payloadLength(i), name = vec.name(i, vec.nameLength(i));
    for (let off = 0, k = 0; k < count; k++, off += seg) {
      const start = i * SLOT_SIZE + off;
      one.stage(0, vec.packets.subarray(start, start + Math.min(seg, total - off)), name);
      if (lib.sendmmsg(this.#fd, one.headers, 1, MSG_DONTWAIT) === 1) this.stats.txDatagrams++;
      else this.#sendFailed(this.libc.errno.getInt32(0), 1);
    }
  }

  /**
   * Sends what is staged in the send arena now, whichever socket staged it (a forwarder stages on the other
   * leg's socket): for the end of a wake-up, so a forwarded batch leaves before the owner goes back to wait
   * rather than at the microtask after that (same batch, sent earlier).
   */
  sendStaged(): void {
    this.#arena.owner?.flush();
  }

  #sendFailed(code: number, count: number): void {
    this.stats.sendErrors += count;
    // EAGAIN is the expected overload case; any other errno is worth one line the first time it happens.
    if (code !== EAGAIN && !this.#sendErrnoSeen.has(code)) {
      this.#sendErrnoSeen.add(code);
      this.log.warn("udp send failed (further failures with this error are only counted)", {
        error: describeErrno(this.libc.lib, code),
      });
    }
  }

  /**
   * Sends what is staged, then lets go of the descriptor (call before Deno closes the socket) and of the
   * arenas. Idempotent.
   */
  close(): void {
    if (this.#fd < 0) return;
    this.flush();
    // Before Deno closes the socket: its number may then go to a new descriptor at once.
    this.#watchedBy?.remove(this.#fd);
    this.#watchedBy = undefined;
    this.#fd = -1;
    if (this.#arena.owner === this) this.#arena.owner = undefined;
    this.#arenas.release();
  }
}

/**
 * The batch core for a freshly opened Deno socket bound to `local` (the caller parses `conn.addr`), or the
 * reason there is none (no libc, descriptor not found). Callers fall back to Deno's one-op-per-datagram
 * socket on a reason.
 */
export function attachBatchIo(
  local: LocalAddress,
  stats: UdpBatchStats,
  log: Logger,
  opts: { arenas?: BatchArenas; fdHint?: number; gso?: boolean } = {},
): UdpBatchIo | { reason: string } {
  const libc = batchLibc();
  if ("reason" in libc) return libc;
  const family = familyOf(local.address);
  if (family === 0) return { reason: "the socket's local address is neither IPv4 nor IPv6" };
  const fd = findSocketFd(libc, local, opts.fdHint);
  if (fd < 0) return { reason: "cannot find the UDP socket's descriptor" };
  return new UdpBatchIo(libc, fd, family, stats, log, opts.arenas, opts.gso);
}
