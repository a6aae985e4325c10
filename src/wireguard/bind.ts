/**
 * The UDP side of a device: a Bind sends and receives datagrams. UdpBind uses a Deno socket on "::" (dual
 * stack; IPv4 peers appear as plain IPv4) with a fallback to 0.0.0.0 where IPv6 is off. MemoryNetwork joins
 * devices in one process for tests and the demo. Devices get `defaultBind()` (bind_linux.ts): LinuxUdpBind
 * (recvmmsg/sendmmsg batches through libc) on Linux, this UdpBind elsewhere or with WGEDGE_UDP=deno.
 */
import { logger } from "../util/log.ts";
import { joinHostPort } from "../util/host_port.ts";

export interface BindEndpoint {
  /** Literal IP (IPv6 without brackets). */
  address: string;
  port: number;
}

/** Called once per datagram; `data` is only valid during the call (the bind reuses its buffer). */
export type DatagramReceiver = (data: Uint8Array, from: BindEndpoint) => void;

export interface Bind {
  /** Opens the socket(s); resolves the bound port. */
  open(port: number | undefined, receive: DatagramReceiver): Promise<number>;
  /** Sends one datagram; never throws (a failed send is counted by the bind). */
  send(data: Uint8Array, to: BindEndpoint): void;
  close(): void;
  readonly sendErrors: number;
  /** True when send() has copied the datagram when it returns, so the caller may reuse its buffer at once. */
  readonly copiesOnSend?: boolean;
}

export function endpointKey(e: BindEndpoint): string {
  return joinHostPort(e.address, e.port);
}

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

export class UdpBind implements Bind {
  #conn: Deno.DatagramConn | undefined;
  #closed = false;
  sendErrors = 0;
  readonly #log = logger("wg.bind");

  constructor(private readonly hostname?: string) {}

  open(port: number | undefined, receive: DatagramReceiver): Promise<number> {
    const p = port ?? 0;
    if (this.hostname) {
      this.#conn = Deno.listenDatagram({ transport: "udp", hostname: this.hostname, port: p });
    } else {
      try {
        this.#conn = Deno.listenDatagram({ transport: "udp", hostname: "::", port: p });
      } catch {
        this.#conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: p });
      }
    }
    this.#receiveLoop(this.#conn, receive);
    return Promise.resolve((this.#conn.addr as Deno.NetAddr).port);
  }

  async #receiveLoop(conn: Deno.DatagramConn, receive: DatagramReceiver): Promise<void> {
    // Without a buffer Deno allocates 64 KiB per datagram. The receiver handles each datagram synchronously and
    // copies what it keeps (keys, ephemerals, decrypted plaintext), so one buffer serves every receive.
    const buffer = new Uint8Array(65536);
    while (!this.#closed) {
      let data: Uint8Array, addr: Deno.Addr;
      try {
        [data, addr] = await conn.receive(buffer);
      } catch (e) {
        if (this.#closed) return;
        this.#log.warn("udp receive failed", { error: (e as Error).message });
        continue;
      }
      const na = addr as Deno.NetAddr;
      const m = V4_MAPPED.exec(na.hostname);
      try {
        receive(data, { address: m ? m[1] : na.hostname, port: na.port });
      } catch (e) {
        // A bug in packet handling must not stop the socket: log it and keep serving.
        this.#log.error("datagram handler threw", { error: (e as Error).stack ?? String(e) });
      }
    }
  }

  send(data: Uint8Array, to: BindEndpoint): void {
    const conn = this.#conn;
    if (!conn || this.#closed) return;
    conn.send(data, { transport: "udp", hostname: to.address, port: to.port }).catch(() => {
      this.sendErrors++;
    });
  }

  close(): void {
    this.#closed = true;
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
  }
}

/** An in-process "internet": binds registered under an address deliver to each other synchronously-async. */
export class MemoryNetwork {
  readonly #binds = new Map<string, DatagramReceiver>();
  #nextPort = 40000;
  /** Drops a datagram when this returns true (tests inject loss or cut links). */
  dropIf: (data: Uint8Array, from: BindEndpoint, to: BindEndpoint) => boolean = () => false;
  /** Every datagram sent, for tests that capture and replay. */
  onSend?: (data: Uint8Array, from: BindEndpoint, to: BindEndpoint) => void;

  bind(address: string): MemoryBind {
    return new MemoryBind(this, address);
  }

  register(e: BindEndpoint, receive: DatagramReceiver): void {
    this.#binds.set(endpointKey(e), receive);
  }

  unregister(e: BindEndpoint): void {
    this.#binds.delete(endpointKey(e));
  }

  allocatePort(): number {
    return this.#nextPort++;
  }

  deliver(data: Uint8Array, from: BindEndpoint, to: BindEndpoint): void {
    this.onSend?.(data, from, to);
    if (this.dropIf(data, from, to)) return;
    const r = this.#binds.get(endpointKey(to));
    if (!r) return;
    const copy = data.slice();
    queueMicrotask(() => r(copy, { ...from }));
  }
}

export class MemoryBind implements Bind {
  #local: BindEndpoint | undefined;
  sendErrors = 0;

  constructor(private readonly net: MemoryNetwork, readonly address: string) {}

  get local(): BindEndpoint | undefined {
    return this.#local;
  }

  open(port: number | undefined, receive: DatagramReceiver): Promise<number> {
    this.#local = { address: this.address, port: port || this.net.allocatePort() };
    this.net.register(this.#local, receive);
    return Promise.resolve(this.#local.port);
  }

  /** Moves this bind to a new address (roaming in tests). */
  rebind(address: string, port: number, receive: DatagramReceiver): void {
    if (this.#local) this.net.unregister(this.#local);
    this.#local = { address, port };
    this.net.register(this.#local, receive);
  }

  send(data: Uint8Array, to: BindEndpoint): void {
    if (!this.#local) {
      this.sendErrors++;
      return;
    }
    this.net.deliver(data, this.#local, to);
  }

  close(): void {
    if (this.#local) this.net.unregister(this.#local);
  }
}
