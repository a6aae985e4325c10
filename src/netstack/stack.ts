/**
 * The userspace TCP/IP stack over one packet interface: IP layer (addresses, fragments, ICMP, path MTU),
 * UDP and TCP. This is what a tunnel Net dials and listens on.
 */
import type { Conn, Listener } from "./conn.ts";
import type { IpPrefix } from "../wireguard/config.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { cryptoRandom, type RandomFill } from "../util/random.ts";
import { IPPROTO_TCP, type PacketInterface } from "./types.ts";
import { TcpLayer, type TcpOptions, type TcpStats } from "./tcp/mod.ts";
import { IpLayer, type IpStats } from "./ip.ts";
import type { ReassemblyLimits } from "./fragments.ts";
import type { PingOptions } from "./icmp.ts";
import { UdpLayer, type UdpOptions, type UdpSocket, type UdpStats } from "./udp.ts";
import { formatIp, isUnspecified, parseIp } from "./addr.ts";

export interface StackOptions {
  /** The stack's addresses (wg-quick Address), IPv4 and/or IPv6. */
  addresses: IpPrefix[];
  clock?: Clock;
  random?: RandomFill;
  reassembly?: ReassemblyLimits;
  udp?: Omit<UdpOptions, "random">;
  /** ICMP errors per second the stack may send (default 1000). */
  icmpErrorsPerSec?: number;
  /** TCP options (buffer sizes, keepalive, TIME_WAIT, ...); false leaves the stack without TCP. */
  tcp?: Partial<TcpOptions> | false;
}

export type StackStats = IpStats & { udp: UdpStats; tcp?: TcpStats };

export class StackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackError";
  }
}

export class Stack {
  readonly ip: IpLayer;
  readonly udp: UdpLayer;
  readonly tcp: TcpLayer | undefined;
  readonly clock: Clock;
  #closed = false;
  #link: PacketInterface;

  constructor(link: PacketInterface, opts: StackOptions) {
    if (opts.addresses.length === 0) throw new StackError("netstack: at least one address is required");
    this.#link = link;
    this.clock = opts.clock ?? systemClock;
    const random = opts.random ?? cryptoRandom;
    const r = random(new Uint8Array(8));
    this.ip = new IpLayer(link, {
      addresses: opts.addresses,
      clock: this.clock,
      reassembly: opts.reassembly,
      icmpErrorsPerSec: opts.icmpErrorsPerSec,
      initialIdent: (r[0] << 8) | r[1],
      initialIdent6: ((r[4] << 24) | (r[5] << 16) | (r[6] << 8) | r[7]) >>> 0,
    });
    this.ip.icmp.defaultIdent = (r[2] << 8) | r[3];
    this.udp = new UdpLayer(this.ip, { ...opts.udp, random });
    if (opts.tcp !== false) {
      this.tcp = new TcpLayer(this.ip, { ...opts.tcp, clock: this.clock, random });
      this.ip.register(IPPROTO_TCP, this.tcp);
    }
  }

  /** The stack's addresses as text. */
  get addresses(): string[] {
    return [...this.ip.v4Addresses, ...this.ip.v6Addresses].map(formatIp);
  }

  get mtu(): number {
    return this.#link.mtu;
  }

  /** Sends an ICMP/ICMPv6 echo request and resolves the round-trip time in milliseconds. */
  ping(dst: string | Uint8Array, opts?: PingOptions): Promise<number> {
    const addr = typeof dst === "string" ? parseIp(stripBrackets(dst)) : dst;
    if (!addr) return Promise.reject(new StackError(`ping: "${dst}" is not a literal IP address`));
    if (this.#closed) return Promise.reject(new StackError("ping: stack closed"));
    return this.ip.icmp.ping(addr, opts);
  }

  /** A UDP socket on hostname:port (hostname undefined/"0.0.0.0"/"::" = every address; port 0 = ephemeral). */
  listenUdp(hostname: string | undefined, port: number): UdpSocket {
    if (this.#closed) throw new StackError("listenUdp: stack closed");
    return this.udp.bind(hostname, port);
  }

  dialTcp(host: string | Uint8Array, port: number, opts: { timeoutMs?: number } = {}): Promise<Conn> {
    if (!this.tcp) return Promise.reject(new StackError("dialTcp: this stack has no TCP layer"));
    if (this.#closed) return Promise.reject(new StackError("dialTcp: stack closed"));
    const addr = typeof host === "string" ? parseIp(stripBrackets(host)) : host;
    if (!addr) return Promise.reject(new StackError(`dialTcp: "${host}" is not a literal IP address`));
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return Promise.reject(new StackError(`dialTcp: port ${port} is not in 1..65535`));
    }
    if (!this.ip.sourceFor(addr)) {
      return Promise.reject(
        new StackError(
          `dialTcp: no local IPv${addr.length === 4 ? 4 : 6} address to reach ${formatIp(addr)}`,
        ),
      );
    }
    return this.tcp.connect(addr, port, { timeoutMs: opts.timeoutMs });
  }

  listenTcp(hostname: string | undefined, port: number, opts: { backlog?: number } = {}): Listener {
    if (!this.tcp) throw new StackError("listenTcp: this stack has no TCP layer");
    if (this.#closed) throw new StackError("listenTcp: stack closed");
    let addr: Uint8Array | undefined;
    if (hostname !== undefined && hostname !== "") {
      const parsed = parseIp(stripBrackets(hostname));
      if (!parsed) throw new StackError(`listenTcp: "${hostname}" is not a literal IP address`);
      if (!isUnspecified(parsed)) {
        if (!this.ip.isLocal(parsed)) {
          throw new StackError(`listenTcp: ${hostname} is not an address of this stack`);
        }
        addr = parsed;
      }
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new StackError(`listenTcp: port ${port} is not in 0..65535`);
    }
    return this.tcp.listen(addr, port, opts);
  }

  /** A snapshot of every counter (IP, ICMP, fragments, UDP, TCP). */
  get stats(): StackStats {
    const s = this.ip.stats;
    return {
      ...s,
      rxDropped: { ...s.rxDropped },
      txDropped: { ...s.txDropped },
      icmp: { ...s.icmp },
      fragments: {
        reassembled: s.fragments.reassembled,
        timeouts: s.fragments.timeouts,
        evicted: s.fragments.evicted,
        overlaps: s.fragments.overlaps,
        inFlight: s.fragments.inFlight,
      },
      udp: { ...this.udp.stats },
      tcp: this.tcp ? { ...this.tcp.stats } : undefined,
    };
  }

  /** Closes every socket and stops processing packets. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.tcp?.close();
    } finally {
      this.udp.close();
      this.ip.close();
      this.#link.setReceiver(() => {});
    }
  }
}

function stripBrackets(s: string): string {
  return s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
}
