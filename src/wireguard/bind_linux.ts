/**
 * A Linux UDP bind that moves datagrams through libc (Deno FFI) in batches. Deno's own socket costs one async
 * op per datagram each way, which profiling showed to be the largest single cost of the tunnel data path.
 *
 * The socket is Deno's (Deno.listenDatagram on "::", dual stack, IPv4 peers shown as plain IPv4; 0.0.0.0
 * where IPv6 is off), found by its port among this process's descriptors. Deno's `receive()` is kept only as
 * the wait for data: it runs on the event loop's own epoll. Each wake-up hands that first datagram over and
 * then drains the queue behind it with synchronous `recvmmsg()` calls, RECV_BATCH datagrams each, into one
 * preallocated arena. Sending copies each datagram into a second arena; everything sent during one task (the
 * segments a batch of ACKs releases, the replies to a batch of reads) leaves in one synchronous `sendmmsg()`
 * at the next microtask, or at once when SEND_BATCH are waiting. Each peer's encoded sockaddr is cached.
 *
 * Why not an own socket() with a `poll()` on Deno's blocking thread pool (a `nonblocking` FFI call): the
 * hand-off between the pool thread and the main thread added 70 to 100 us to every wake-up on the shared
 * 2-core machine (UDP ping-pong 168 us against Deno's 64 to 94 us), and single-stream TCP is bound by that.
 *
 * A full send buffer (EAGAIN) drops the rest of the batch and counts it in `sendErrors`, as a router would:
 * the inner TCP retransmits, and nothing waits or spins on the main thread. The buffers are raised to 4 MiB
 * (past net.core.{r,w}mem_max through SO_*BUFFORCE when running as root), so this is rare; a queue flushed
 * on POLLOUT would need a second waiter on the socket for that rare case.
 *
 * Linux on x86_64 and aarch64 only (the struct layouts below are those two LP64 ABIs). `defaultBind()` picks
 * this bind where it can work and Deno's socket (UdpBind) elsewhere; WGEDGE_UDP=deno|ffi overrides. When the
 * descriptor cannot be found the bind logs it and works like UdpBind (one Deno op per datagram).
 */
import { logger } from "../util/log.ts";
import { formatIpv4, parseIpv4 } from "../wire/ipv4.ts";
import { formatIpv6, parseIpv6 } from "../wire/ipv6.ts";
import { type Bind, type BindEndpoint, type DatagramReceiver, endpointKey, UdpBind } from "./bind.ts";

// ---- libc constants (identical on x86_64 and aarch64 Linux: asm-generic) ----

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_DOMAIN = 39;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;

const EINTR = 4;
const EAGAIN = 11;
const EACCES = 13;
const EPERM = 1;
const EADDRINUSE = 98;
const EADDRNOTAVAIL = 99;
const EAFNOSUPPORT = 97;

/** Datagrams per recvmmsg call (wireguard-go reads up to 128 per batch). */
export const RECV_BATCH = 64;
/** Datagrams gathered for one sendmmsg call; a fuller batch is sent at once, any batch by the next microtask. */
export const SEND_BATCH = 64;
/** recvmmsg calls per wake-up before the loop waits again, so timers and other sockets get a turn. */
const BATCHES_PER_ROUND = 4;
/** The largest UDP payload over IPv6 without jumbograms is 65527; one slot holds any datagram. */
const SLOT_SIZE = 65536;
/** Socket buffers asked for; the kernel caps SO_*BUF at net.core.{r,w}mem_max (the FORCE variants need root). */
const SOCKET_BUFFER_BYTES = 4 << 20;
/** Bound on the cache of encoded sockaddrs for endpoints passed as fresh objects, and of received sources. */
const ENDPOINT_CACHE_MAX = 4096;

const SYMBOLS = {
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const log = logger("wg.bind");

// ---- struct layouts (LP64 Linux: x86_64, aarch64) ----

/** struct msghdr (56 bytes) followed by mmsghdr.msg_len (u32 at 56, padded to 64). */
const MSGHDR_NAME = 0;
const MSGHDR_NAMELEN = 8;
const MSGHDR_IOV = 16;
const MSGHDR_IOVLEN = 24;
const MSGHDR_FLAGS = 48;
const MMSGHDR_LEN = 56;
const MMSGHDR_SIZE = 64;
/** struct iovec: iov_base, iov_len. */
const IOVEC_BASE = 0;
const IOVEC_LEN = 8;
const IOVEC_SIZE = 16;
/** struct sockaddr_in6 (28 bytes): family (host order), port (network order), flowinfo, addr[16], scope_id. */
const SOCKADDR_IN6_SIZE = 28;
const SIN6_PORT = 2;
const SIN6_ADDR = 8;
const SIN6_SCOPE_ID = 24;
/** struct sockaddr_in (16 bytes): family, port (network order), addr[4], zero[8]. */
const SOCKADDR_IN_SIZE = 16;
const SIN_PORT = 2;
const SIN_ADDR = 4;
/** Room for either sockaddr, rounded so every slot stays 4-byte aligned. */
const NAME_SLOT = 32;

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
  /** The address of an AF_INET6 struct; v4-mapped addresses come out as plain IPv4. */
  addressV6(): string {
    const a = this.buf.subarray(SIN6_ADDR, SIN6_ADDR + 16);
    if (isV4Mapped(a)) return formatIpv4(a.subarray(12));
    return formatIpv6(a);
  }
  addressV4(): string {
    return formatIpv4(this.buf.subarray(SIN_ADDR, SIN_ADDR + 4));
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

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

function isV4Mapped(a: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

/**
 * RECV_BATCH mmsghdrs, each with one iovec onto its own SLOT_SIZE packet slot and its own sockaddr slot, in
 * two arenas whose addresses never change (ArrayBuffer backing stores do not move). Untouched slot pages are
 * never faulted in, so the resident cost is about one page per slot.
 */
class MmsgVector {
  readonly headers: Uint8Array;
  readonly #hv: DataView;
  readonly packets: Uint8Array;
  /** The sockaddr slots as words, for comparing a source with the previous one without allocating. */
  readonly names32: Uint32Array;
  readonly #namesOff: number;
  readonly #iovOff: number;

  constructor(readonly count: number) {
    const iovOff = this.#iovOff = count * MMSGHDR_SIZE;
    this.#namesOff = iovOff + count * IOVEC_SIZE;
    const headerBytes = this.#namesOff + count * NAME_SLOT;
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
      // msg_control stays NULL / 0.
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
  data(i: number, len: number): Uint8Array {
    return new Uint8Array(this.packets.buffer, i * SLOT_SIZE, len);
  }
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
  }
  /** The mmsghdr array from message i on (for resuming a partly sent batch). */
  from(i: number): Uint8Array {
    return i === 0 ? this.headers : this.headers.subarray(i * MMSGHDR_SIZE);
  }
}

// ---- libc loading and availability ----

let libcState: { lib: Libc; errno: Deno.UnsafePointerView } | { reason: string } | undefined;

function loadLibc(): { lib: Libc; errno: Deno.UnsafePointerView } | { reason: string } {
  if (libcState) return libcState;
  if (Deno.build.os !== "linux") return libcState = { reason: `not Linux (${Deno.build.os})` };
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return libcState = { reason: `struct layouts not known for ${Deno.build.arch}` };
  }
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return libcState = { reason: "no FFI permission (--allow-ffi)" };
    }
    const lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    // errno is thread-local; synchronous FFI calls run on the main thread, so its address there is fixed.
    const errnoPtr = lib.__errno_location();
    if (!errnoPtr) return libcState = { reason: "libc has no errno location" };
    libcState = { lib, errno: new Deno.UnsafePointerView(errnoPtr) };
  } catch (e) {
    libcState = { reason: `cannot load libc: ${(e as Error).message}` };
  }
  return libcState;
}

/** Why LinuxUdpBind cannot run here, or undefined when it can. */
export function linuxUdpBindUnavailable(): string | undefined {
  const s = loadLibc();
  return "reason" in s ? s.reason : undefined;
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
    22: "EINVAL",
    90: "EMSGSIZE",
    101: "ENETUNREACH",
    105: "ENOBUFS",
    113: "EHOSTUNREACH",
  };
  return names[code] ?? `errno ${code}`;
}

function describeErrno(lib: Libc, code: number): string {
  const p = lib.strerror(code);
  const text = p ? Deno.UnsafePointerView.getCString(p) : "";
  return text ? `${text} (${errnoName(code)})` : errnoName(code);
}

// ---- the bind ----

export class LinuxUdpBind implements Bind {
  sendErrors = 0;
  /** Datagrams dropped on receive: truncated (cannot happen with 64 KiB slots) or a failing recvmmsg. */
  receiveErrors = 0;
  /** Datagrams received; recvmmsg calls that returned data and the datagrams they read (the batching won). */
  rxDatagrams = 0;
  rxBatches = 0;
  rxBatchedDatagrams = 0;
  /** Datagrams handed to the kernel and sendmmsg calls that sent at least one. */
  txDatagrams = 0;
  txBatches = 0;
  /** Resolves once the receive loop has ended after close() (or at close() when the bind never opened). */
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  #libc: { lib: Libc; errno: Deno.UnsafePointerView } | undefined;
  #conn: Deno.DatagramConn | undefined;
  /** The socket's descriptor (Deno's socket; -1 when unknown or closed): libc reads and writes it directly. */
  #fd = -1;
  #family = 0;
  #closing = false;
  /** Encoded sockaddr per endpoint object (peers keep the object they were handed) and per text, bounded. */
  #sockaddrByEndpoint = new WeakMap<BindEndpoint, Uint8Array>();
  #sockaddrByKey = new Map<string, Uint8Array>();
  /** One endpoint object per source, so a peer's endpoint keeps its identity (and its cached sockaddr). */
  #sources = new Map<string, BindEndpoint>();
  #lastSourceWords = new Uint32Array(NAME_SLOT / 4);
  #lastSourceLen = 0;
  #lastSource: BindEndpoint | undefined;
  #sendErrnoSeen = new Set<number>();
  /** Datagrams staged for the next sendmmsg, and whether a microtask will send them. */
  #sendVec: MmsgVector | undefined;
  #staged = 0;
  #flushScheduled = false;
  readonly #flushTask = (): void => {
    this.#flushScheduled = false;
    this.#flush();
  };

  constructor(private readonly hostname?: string) {
    this.closed = new Promise((r) => this.#resolveClosed = r);
  }

  open(port: number | undefined, receive: DatagramReceiver): Promise<number> {
    try {
      return Promise.resolve(this.#open(port, receive));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #open(port: number | undefined, receive: DatagramReceiver): number {
    if (this.#conn || this.#closing) throw new Error("udp bind: already opened or closed");
    const state = loadLibc();
    if ("reason" in state) throw new Error(`udp bind: the libc socket is unavailable: ${state.reason}`);
    this.#libc = state;
    const p = port ?? 0;
    if (!Number.isInteger(p) || p < 0 || p > 65535) {
      throw new RangeError(`udp bind: port ${p} is not in 0..65535`);
    }
    let conn: Deno.DatagramConn;
    if (this.hostname) {
      conn = listen(this.hostname, p);
    } else {
      try {
        conn = listen("::", p);
      } catch (e) {
        // A taken port is taken for both families; anything else means IPv6 is off here.
        if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.PermissionDenied) throw e;
        conn = listen("0.0.0.0", p);
      }
    }
    const local = conn.addr as Deno.NetAddr;
    this.#conn = conn;
    this.#family = local.hostname.includes(":") ? AF_INET6 : AF_INET;
    this.#fd = findSocketFd(state.lib, this.#family, local);
    if (this.#fd < 0) {
      log.warn("cannot find the UDP socket's descriptor; sending and receiving one datagram per Deno op");
    } else {
      const int = new Int32Array(1);
      const setInt = (opt: number, value: number): boolean => {
        int[0] = value;
        return state.lib.setsockopt(this.#fd, SOL_SOCKET, opt, int, 4) === 0;
      };
      // FORCE passes net.core.*mem_max but needs CAP_NET_ADMIN; without it the plain option (capped) applies.
      if (!setInt(SO_RCVBUFFORCE, SOCKET_BUFFER_BYTES)) setInt(SO_RCVBUF, SOCKET_BUFFER_BYTES);
      if (!setInt(SO_SNDBUFFORCE, SOCKET_BUFFER_BYTES)) setInt(SO_SNDBUF, SOCKET_BUFFER_BYTES);
      this.#sendVec = new MmsgVector(SEND_BATCH);
    }
    this.#receiveLoop(conn, receive).then(() => this.#resolveClosed(), (e) => {
      log.error("udp receive loop failed", { error: (e as Error).stack ?? String(e) });
      this.#resolveClosed();
    });
    return local.port;
  }

  #errno(): number {
    return this.#libc!.errno.getInt32(0);
  }

  /**
   * Deno's receive is the readiness wait: it runs on the event loop's own epoll (no thread hand-off, which
   * measured 70 to 100 us more per wake-up than Deno's socket on a loaded machine). Whatever else is queued
   * behind that first datagram is then read in recvmmsg batches. Reading the socket behind Deno's back is
   * safe: its next receive finds EAGAIN and waits for the next edge.
   */
  async #receiveLoop(conn: Deno.DatagramConn, receive: DatagramReceiver): Promise<void> {
    const vec = new MmsgVector(RECV_BATCH);
    const first = new Uint8Array(SLOT_SIZE);
    while (!this.#closing) {
      let data: Uint8Array, addr: Deno.Addr;
      try {
        [data, addr] = await conn.receive(first);
      } catch (e) {
        if (this.#closing) return;
        this.receiveErrors++;
        log.warn("udp receive failed", { error: (e as Error).message });
        // A socket closed under us cannot recover; anything else (a queued ICMP error) is one bad read.
        if (e instanceof Deno.errors.BadResource) return;
        continue;
      }
      this.rxDatagrams++;
      const from = this.#sourceFromDeno(addr as Deno.NetAddr);
      try {
        receive(data, from);
      } catch (e) {
        log.error("datagram handler threw", { error: (e as Error).stack ?? String(e) });
      }
      if (this.#fd >= 0) this.#drain(vec, receive);
    }
  }

  /** Up to BATCHES_PER_ROUND recvmmsg calls, stopping at EAGAIN; then the event loop gets its turn. */
  #drain(vec: MmsgVector, receive: DatagramReceiver): void {
    const { lib } = this.#libc!;
    for (let round = 0; round < BATCHES_PER_ROUND && this.#fd >= 0; round++) {
      const n = lib.recvmmsg(this.#fd, vec.headers, RECV_BATCH, MSG_DONTWAIT, null);
      if (n < 0) {
        const code = this.#errno();
        if (code !== EAGAIN && code !== EINTR) {
          // A queued socket error is reported once and cleared by this call.
          this.receiveErrors++;
          log.debug("udp receive failed", { error: describeErrno(lib, code) });
        }
        return;
      }
      if (n === 0) return;
      this.rxBatches++;
      this.rxDatagrams += n;
      this.rxBatchedDatagrams += n;
      this.#deliver(vec, n, receive);
      vec.resetNames(n);
      if (n < RECV_BATCH) return; // drained
    }
  }

  #deliver(vec: MmsgVector, n: number, receive: DatagramReceiver): void {
    for (let i = 0; i < n; i++) {
      if (vec.flags(i) & MSG_TRUNC) {
        this.receiveErrors++;
        continue;
      }
      const from = this.#source(vec, i);
      if (!from) {
        this.receiveErrors++;
        continue;
      }
      try {
        receive(vec.data(i, vec.length(i)), from);
      } catch (e) {
        // A bug in packet handling must not stop the socket: log it and keep serving.
        log.error("datagram handler threw", { error: (e as Error).stack ?? String(e) });
      }
      if (this.#closing) return;
    }
  }

  /** The endpoint of datagram i's source: the previous one when the bytes match, else from the cache. */
  #source(vec: MmsgVector, i: number): BindEndpoint | undefined {
    const len = vec.nameLength(i);
    const w = vec.names32, base = i * (NAME_SLOT / 4), words = (len + 3) >> 2;
    if (len === this.#lastSourceLen && this.#lastSource) {
      let same = true;
      for (let k = 0; k < words; k++) {
        if (w[base + k] !== this.#lastSourceWords[k]) {
          same = false;
          break;
        }
      }
      if (same) return this.#lastSource;
    }
    const raw = vec.name(i, len);
    const sa = new SockaddrView(raw);
    const family = sa.family(len);
    if (family === 0) return undefined;
    let key: string, ep: BindEndpoint | undefined;
    if (family === AF_INET6) {
      const address = sa.addressV6(), scope = sa.scopeId;
      key = scope
        ? `${endpointKey({ address, port: sa.port })}%${scope}`
        : endpointKey({ address, port: sa.port });
      ep = this.#sources.get(key);
      if (!ep) ep = { address, port: sa.port };
    } else {
      const address = sa.addressV4();
      key = endpointKey({ address, port: sa.port });
      ep = this.#sources.get(key);
      if (!ep) ep = { address, port: sa.port };
    }
    if (!this.#sources.has(key)) {
      if (this.#sources.size >= ENDPOINT_CACHE_MAX) this.#sources.clear();
      Object.freeze(ep);
      this.#sources.set(key, ep);
      // Replies go back to exactly these bytes (scope id of a link-local source included).
      this.#sockaddrByEndpoint.set(ep, raw.slice());
    }
    this.#lastSourceWords.set(w.subarray(base, base + words));
    this.#lastSourceLen = len;
    this.#lastSource = ep;
    return ep;
  }

  /** The endpoint of the datagram Deno read (same cache and normal form as #source). */
  #sourceFromDeno(na: Deno.NetAddr): BindEndpoint {
    let address = na.hostname;
    const mapped = V4_MAPPED.exec(address);
    if (mapped) address = mapped[1];
    else if (address.includes(":")) {
      const bytes = parseIpv6(address);
      if (bytes) address = formatIpv6(bytes);
    }
    const key = endpointKey({ address, port: na.port });
    const cached = this.#sources.get(key);
    if (cached) return cached;
    const ep = Object.freeze({ address, port: na.port });
    if (this.#sources.size >= ENDPOINT_CACHE_MAX) this.#sources.clear();
    this.#sources.set(key, ep);
    return ep;
  }

  /**
   * Stages the datagram (copied: the caller may reuse its buffer) for a sendmmsg at the end of this task, so
   * everything one event produces (segments for a window of ACKs, replies to a batch of reads) leaves in one
   * system call. Never throws; what cannot be sent is counted in sendErrors.
   */
  send(data: Uint8Array, to: BindEndpoint): void {
    if (this.#closing) return;
    const vec = this.#sendVec;
    if (!vec) return this.#sendWithDeno(data, to);
    let sa = this.#sockaddrByEndpoint.get(to);
    if (!sa) {
      sa = this.#encode(to);
      if (!sa) {
        this.sendErrors++;
        return;
      }
      this.#sockaddrByEndpoint.set(to, sa);
    }
    if (data.length > SLOT_SIZE) {
      this.sendErrors++;
      return;
    }
    vec.stage(this.#staged++, data, sa);
    if (this.#staged === SEND_BATCH) this.#flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushTask);
    }
  }

  /**
   * Sends the staged datagrams. A full send buffer (EAGAIN) drops the rest of the batch; a datagram the
   * kernel refuses for itself (unreachable destination...) is skipped and the rest still go. Each turn of the
   * loop sends or drops at least one datagram.
   */
  #flush(): void {
    const n = this.#staged, vec = this.#sendVec;
    this.#staged = 0;
    if (n === 0 || !vec || this.#fd < 0) return;
    const { lib } = this.#libc!;
    for (let i = 0; i < n;) {
      const sent = lib.sendmmsg(this.#fd, vec.from(i), n - i, MSG_DONTWAIT);
      if (sent > 0) {
        this.txDatagrams += sent;
        this.txBatches++;
        i += sent;
        continue;
      }
      const code = this.#errno();
      if (code === EAGAIN) return this.#sendFailed(code, n - i);
      this.#sendFailed(code, 1);
      i++;
    }
  }

  #sendFailed(code: number, count: number): void {
    this.sendErrors += count;
    // EAGAIN is the expected overload case; any other errno is worth one line the first time it happens.
    if (code !== EAGAIN && !this.#sendErrnoSeen.has(code)) {
      this.#sendErrnoSeen.add(code);
      log.warn("udp send failed (further failures with this error are only counted)", {
        error: describeErrno(this.#libc!.lib, code),
      });
    }
  }

  /** The sockaddr for an endpoint (cached by its text); undefined when it cannot be reached from this socket. */
  #encode(to: BindEndpoint): Uint8Array | undefined {
    const key = endpointKey(to);
    const cached = this.#sockaddrByKey.get(key);
    if (cached) return cached;
    if (!Number.isInteger(to.port) || to.port < 0 || to.port > 65535) return undefined;
    const v4 = parseIpv4(to.address);
    let sa: Uint8Array;
    if (this.#family === AF_INET) {
      if (!v4) return undefined;
      sa = new Uint8Array(SOCKADDR_IN_SIZE);
      SockaddrView.writeV4(sa, v4, to.port);
    } else {
      let addr: Uint8Array | null;
      if (v4) {
        addr = new Uint8Array(16);
        addr[10] = addr[11] = 0xff;
        addr.set(v4, 12);
      } else {
        addr = parseIpv6(to.address);
      }
      if (!addr) return undefined;
      sa = new Uint8Array(SOCKADDR_IN6_SIZE);
      SockaddrView.writeV6(sa, addr, to.port);
    }
    if (this.#sockaddrByKey.size >= ENDPOINT_CACHE_MAX) this.#sockaddrByKey.clear();
    this.#sockaddrByKey.set(key, sa);
    return sa;
  }

  /** Only when the descriptor could not be found: one Deno op per datagram, as UdpBind. */
  #sendWithDeno(data: Uint8Array, to: BindEndpoint): void {
    const conn = this.#conn;
    if (!conn) return;
    conn.send(data, { transport: "udp", hostname: to.address, port: to.port }).catch(() => this.sendErrors++);
  }

  /** Idempotent. Closing Deno's socket ends its pending receive, and with it the loop (see `closed`). */
  close(): void {
    if (this.#closing) return;
    this.#flush(); // what the device sent last (a keepalive, a handshake reply) still leaves
    this.#closing = true;
    // Nothing touches the descriptor after this line: once Deno closes it, its number may be reused.
    this.#fd = -1;
    if (!this.#conn) {
      this.#resolveClosed();
      return;
    }
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

function listen(hostname: string, port: number): Deno.DatagramConn {
  try {
    return Deno.listenDatagram({ transport: "udp", hostname, port });
  } catch (e) {
    const where = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
    const msg = `udp bind ${where}: ${(e as Error).message}`;
    if (e instanceof Deno.errors.AddrInUse) throw new Deno.errors.AddrInUse(msg);
    if (e instanceof Deno.errors.AddrNotAvailable) throw new Deno.errors.AddrNotAvailable(msg);
    if (e instanceof Deno.errors.PermissionDenied) throw new Deno.errors.PermissionDenied(msg);
    throw new Error(msg, { cause: e });
  }
}

/**
 * The descriptor of this process's UDP socket bound to `local` (Deno hands out none): the socket descriptors
 * in /proc/self/fd are asked for their type, family and local address. A bound address and port is unique in
 * a process unless SO_REUSEADDR/SO_REUSEPORT allowed a second one; then, as when none matches, -1: the bind
 * never reads or writes a socket it is not sure is its own.
 */
function findSocketFd(lib: Libc, family: number, local: Deno.NetAddr): number {
  const want = family === AF_INET ? parseIpv4(local.hostname) : parseIpv6(local.hostname);
  if (!want) return -1;
  const addrOff = family === AF_INET ? SIN_ADDR : SIN6_ADDR;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc/self/fd")];
  } catch {
    return -1;
  }
  const int = new Int32Array(1), len = new Uint32Array(1);
  const name = new Uint8Array(SOCKADDR_IN6_SIZE), view = new SockaddrView(name);
  const getInt = (fd: number, opt: number): number | undefined => {
    len[0] = 4;
    return lib.getsockopt(fd, SOL_SOCKET, opt, int, len) === 0 ? int[0] : undefined;
  };
  let found = -1;
  for (const e of entries) {
    const fd = Number(e.name);
    let link: string;
    try {
      link = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      continue; // closed meanwhile
    }
    if (!link.startsWith("socket:")) continue;
    if (getInt(fd, SO_TYPE) !== SOCK_DGRAM || getInt(fd, SO_DOMAIN) !== family) continue;
    len[0] = SOCKADDR_IN6_SIZE;
    if (lib.getsockname(fd, name, len) !== 0 || view.family(len[0]) !== family) continue;
    if (view.port !== local.port) continue;
    let same = true;
    for (let i = 0; i < want.length; i++) if (name[addrOff + i] !== want[i]) same = false;
    if (!same) continue;
    if (found >= 0) return -1; // two sockets on one address: cannot tell which is Deno's
    found = fd;
  }
  return found;
}

// ---- choosing a bind ----

/** Env variable that overrides the choice: "deno" (Deno's socket) or "ffi" (this bind; an error if unusable). */
export const UDP_BIND_ENV = "WGEDGE_UDP";

/**
 * The bind a device uses by default: LinuxUdpBind where it can run (Linux, FFI permission, libc), Deno's
 * socket otherwise. WGEDGE_UDP=deno forces Deno's socket; WGEDGE_UDP=ffi forces this one and throws when it
 * cannot run here.
 */
export function defaultBind(hostname?: string): Bind {
  let mode: string | undefined;
  try {
    mode = Deno.env.get(UDP_BIND_ENV)?.trim().toLowerCase();
  } catch {
    mode = undefined; // no env permission: automatic choice
  }
  if (mode === "deno") return new UdpBind(hostname);
  if (mode && mode !== "ffi" && mode !== "auto") {
    throw new Error(`${UDP_BIND_ENV}: expected "deno", "ffi" or "auto", got "${mode}"`);
  }
  const unavailable = linuxUdpBindUnavailable();
  if (!unavailable) return new LinuxUdpBind(hostname);
  if (mode === "ffi") {
    throw new Error(`${UDP_BIND_ENV}=ffi: the libc UDP socket cannot be used: ${unavailable}`);
  }
  if (!warnedFallback) {
    warnedFallback = true;
    log.debug("using Deno's UDP socket", { reason: unavailable });
  }
  return new UdpBind(hostname);
}

let warnedFallback = false;
