/**
 * A Linux UDP bind that moves datagrams through libc (Deno FFI) in batches. Deno's own socket costs one async
 * op per datagram each way, which profiling showed to be the largest single cost of the tunnel data path.
 *
 * The socket is Deno's (Deno.listenDatagram on "::", dual stack, IPv4 peers shown as plain IPv4; 0.0.0.0
 * where IPv6 is off), found by its address and port among this process's descriptors. Deno's `receive()` is
 * kept only as the wait for data; each wake-up hands that first datagram over and then drains the queue
 * behind it with synchronous `recvmmsg()` calls. Everything sent during one task leaves in one `sendmmsg()`
 * at the next microtask, consecutive datagrams to one endpoint as UDP GSO trains where the kernel has them. The batching itself (arenas, drain, flush, error counting) is the shared core in
 * src/sys/udp_batch.ts, also used by the host Net's UDP sockets; this file keeps what is WireGuard's: the
 * Bind interface, endpoint identity (one frozen object per source, its sockaddr cached for replies) and the
 * choice of bind (`defaultBind()`). An open bind holds the process's malloc trimmer (src/sys/malloc.ts), so a
 * process carrying tunnels gives its heap back after bursts.
 *
 * Linux on x86_64 and aarch64 only. `defaultBind()` picks this bind where it can work and Deno's socket
 * (UdpBind) elsewhere; WGEDGE_UDP=deno|ffi overrides. When the descriptor cannot be found the bind logs it
 * and works like UdpBind (one Deno op per datagram).
 */
import { logger } from "../util/log.ts";
import { formatIpv4, parseIpv4 } from "../wire/ipv4.ts";
import { formatIpv6, parseIpv6 } from "../wire/ipv6.ts";
import {
  AF_INET,
  AF_INET6,
  attachBatchIo,
  batchLibc,
  type BatchReceiver,
  encodeSockaddr,
  ENDPOINT_CACHE_MAX,
  isV4Mapped,
  LastSource,
  type MmsgVector,
  SLOT_SIZE,
  SockaddrView,
  UDP_MODE_ENV,
  UdpBatchCounters,
  type UdpBatchIo,
  udpBatchMode,
  udpBatchUnavailable,
} from "../sys/udp_batch.ts";
import { type HeapTrimmer, processHeapTrimmer } from "../sys/malloc.ts";
import { type Bind, type BindEndpoint, type DatagramReceiver, endpointKey, UdpBind } from "./bind.ts";
import { joinHostPort } from "../util/host_port.ts";

export { RECV_BATCH, SEND_BATCH, SockaddrView } from "../sys/udp_batch.ts";

const log = logger("wg.bind");

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/**
 * Deno's receive (the wait) reads the first datagram of each wake-up into a buffer of this bind's own (a
 * pending receive owns its buffer, so binds cannot share one); recvmmsg reads the rest into the process's
 * arena. A page holds any datagram of a tunnel with an MTU up to 4064 and handshake messages; a read that
 * fills it may have been cut short (Deno does not say), so the buffer then grows to a whole slot for the
 * reads after it. A cut datagram fails authentication in the device and is dropped there, once per bind.
 */
export const FIRST_READ_BYTES = 4096;

/** An address literal as bytes (4 or 16), or null for anything else (a name, a zone). */
function addressBytes(address: string): Uint8Array | null {
  return parseIpv4(address) ?? parseIpv6(address);
}

/** The address in a sockaddr as the device shows it: a v4-mapped IPv6 address comes out as plain IPv4. */
export function sockaddrAddress(sa: SockaddrView, family: number): string {
  if (family === AF_INET) return formatIpv4(sa.bytesV4());
  const a = sa.bytesV6();
  return isV4Mapped(a) ? formatIpv4(a.subarray(12)) : formatIpv6(a);
}

/** Why LinuxUdpBind cannot run here, or undefined when it can. */
export function linuxUdpBindUnavailable(): string | undefined {
  return udpBatchUnavailable();
}

// ---- the bind ----

export class LinuxUdpBind extends UdpBatchCounters implements Bind {
  /** Resolves once the receive loop has ended after close() (or at close() when the bind never opened). */
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  #conn: Deno.DatagramConn | undefined;
  /** recvmmsg/sendmmsg on the socket's descriptor; undefined when the descriptor is unknown. */
  #io: UdpBatchIo | undefined;
  #family = 0;
  #closing = false;
  /** Encoded sockaddr per endpoint object (peers keep the object they were handed) and per text, bounded. */
  #sockaddrByEndpoint = new WeakMap<BindEndpoint, Uint8Array>();
  #sockaddrByKey = new Map<string, Uint8Array>();
  /** One endpoint object per source, so a peer's endpoint keeps its identity (and its cached sockaddr). */
  #sources = new Map<string, BindEndpoint>();
  #lastSource = new LastSource<BindEndpoint>();
  #first = new Uint8Array(FIRST_READ_BYTES);
  /** The process's malloc trimmer, held while the bind is open (a burst's heap goes back once it is over). */
  #trimmer: HeapTrimmer | undefined;

  constructor(private readonly hostname?: string) {
    super();
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
    const state = batchLibc();
    if ("reason" in state) throw new Error(`udp bind: the libc socket is unavailable: ${state.reason}`);
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
    const address = addressBytes(local.hostname);
    // GSO trains: a window of full-sized transport messages to one peer goes through the kernel's UDP and IP
    // output (and on loopback its input) once per train instead of once per datagram; wireguard-go sends the
    // same way. The peer receives the datagrams unchanged (its kernel cuts the train unless it asked for GRO).
    const io = address
      ? attachBatchIo({ address, port: local.port }, this, log, { gso: true })
      : { reason: "unparsable local address" };
    if ("reason" in io) {
      log.warn(`${io.reason}; sending and receiving one datagram per Deno op`);
    } else {
      this.#io = io;
    }
    this.#trimmer = processHeapTrimmer()?.retain();
    this.#receiveLoop(conn, receive).then(() => this.#resolveClosed(), (e) => {
      log.error("udp receive loop failed", { error: (e as Error).stack ?? String(e) });
      this.#resolveClosed();
    });
    return local.port;
  }

  /**
   * Deno's receive is the readiness wait: it runs on the event loop's own epoll (no thread hand-off, which
   * measured 70 to 100 us more per wake-up than Deno's socket on a loaded machine). Whatever else is queued
   * behind that first datagram is then read in recvmmsg batches.
   */
  async #receiveLoop(conn: Deno.DatagramConn, receive: DatagramReceiver): Promise<void> {
    let first = this.#first;
    const batch: BatchReceiver<BindEndpoint> = {
      source: (vec, i) => this.#source(vec, i),
      deliver: (data, from) => {
        try {
          receive(data, from);
        } catch (e) {
          // A bug in packet handling must not stop the socket: log it and keep serving.
          log.error("datagram handler threw", { error: (e as Error).stack ?? String(e) });
        }
        return !this.#closing;
      },
    };
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
      if (data.length === first.length && first.length < SLOT_SIZE) {
        first = this.#first = new Uint8Array(SLOT_SIZE);
        log.debug("a datagram filled the first-read buffer; reading whole slots from now on", {
          bytes: data.length,
        });
      }
      const from = this.#sourceFromDeno(addr as Deno.NetAddr);
      try {
        receive(data, from);
      } catch (e) {
        log.error("datagram handler threw", { error: (e as Error).stack ?? String(e) });
      }
      if (this.#io && !this.#closing) this.#io.drain(batch);
    }
  }

  /** The endpoint of datagram i's source: the previous one when the bytes match, else from the cache. */
  #source(vec: MmsgVector, i: number): BindEndpoint | undefined {
    const last = this.#lastSource.match(vec, i);
    if (last) return last;
    const len = vec.nameLength(i);
    const raw = vec.name(i, len);
    const sa = new SockaddrView(raw);
    const family = sa.family(len);
    if (family === 0) return undefined;
    let key: string, ep: BindEndpoint | undefined;
    if (family === AF_INET6) {
      const address = sockaddrAddress(sa, family), scope = sa.scopeId;
      key = scope
        ? `${endpointKey({ address, port: sa.port })}%${scope}`
        : endpointKey({ address, port: sa.port });
      ep = this.#sources.get(key);
      if (!ep) ep = { address, port: sa.port };
    } else {
      const address = sockaddrAddress(sa, family);
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
    this.#lastSource.remember(vec, i, ep);
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
    const io = this.#io;
    if (!io) return this.#sendWithDeno(data, to);
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
    io.stage(data, sa);
  }

  /** The sockaddr for an endpoint (cached by its text); undefined when it cannot be reached from this socket. */
  #encode(to: BindEndpoint): Uint8Array | undefined {
    const key = endpointKey(to);
    const cached = this.#sockaddrByKey.get(key);
    if (cached) return cached;
    const bytes = addressBytes(to.address);
    const sa = bytes && encodeSockaddr(this.#family, bytes, to.port);
    if (!sa) return undefined;
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

  /** Sends are staged as copies, except on the Deno fallback (its send holds the array until it is done). */
  get copiesOnSend(): boolean {
    return this.#io !== undefined;
  }

  /** Bytes of the buffer Deno's receive reads the first datagram of a wake-up into (FIRST_READ_BYTES or a slot). */
  get firstReadCapacity(): number {
    return this.#first.length;
  }

  /** Idempotent. Closing Deno's socket ends its pending receive, and with it the loop (see `closed`). */
  close(): void {
    if (this.#closing) return;
    // What the device sent last (a keepalive, a handshake reply) still leaves; then nothing touches the
    // descriptor again: once Deno closes it, its number may be reused.
    this.#io?.close();
    this.#closing = true;
    this.#trimmer?.release();
    this.#trimmer = undefined;
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
    const where = joinHostPort(hostname, port);
    const msg = `udp bind ${where}: ${(e as Error).message}`;
    if (e instanceof Deno.errors.AddrInUse) throw new Deno.errors.AddrInUse(msg);
    if (e instanceof Deno.errors.AddrNotAvailable) throw new Deno.errors.AddrNotAvailable(msg);
    if (e instanceof Deno.errors.PermissionDenied) throw new Deno.errors.PermissionDenied(msg);
    throw new Error(msg, { cause: e });
  }
}

// ---- choosing a bind ----

/** Env variable that overrides the choice: "deno" (Deno's socket) or "ffi" (this bind; an error if unusable). */
export const UDP_BIND_ENV = UDP_MODE_ENV;

/**
 * The bind a device uses by default: LinuxUdpBind where it can run (Linux, FFI permission, libc), Deno's
 * socket otherwise. WGEDGE_UDP=deno forces Deno's socket; WGEDGE_UDP=ffi forces this one and throws when it
 * cannot run here.
 */
export function defaultBind(hostname?: string): Bind {
  const mode = udpBatchMode();
  if (mode === "deno") return new UdpBind(hostname);
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
