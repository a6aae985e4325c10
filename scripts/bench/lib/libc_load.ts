/**
 * The load and the echo targets of scripts/bench/relay.ts on libc's sockets, each in a process of its own, so
 * that what the benchmark measures is the relay and not the load generator: on Deno's sockets the clients and
 * the echo cost one async op and a promise per read, write, datagram or connect, which took most of the two
 * cores (about 120 us per UDP round trip), so the relays got a fraction of the machine and two relays of very
 * different cost read alike.
 *
 *   deno run -A scripts/bench/lib/libc_load.ts targets TCP_PORT UDP_PORT
 *   deno run -A scripts/bench/lib/libc_load.ts tcp-client PORT CONNS PARALLEL TIMEOUT_MS
 *   deno run -A scripts/bench/lib/libc_load.ts udp-client PORT SECONDS CLIENTS WINDOW RESEND_MS
 *
 * targets: a TCP echo on 127.0.0.1:TCP_PORT (any number of connections, each closed when its peer closes) and a
 * UDP echo on 127.0.0.1:UDP_PORT that sends every datagram back to its sender. Empty datagrams are not echoed
 * (rinetd 0.73 opens each UDP flow with one and drops the flow when one comes back). Runs until killed.
 *
 * tcp-client: CONNS connections, PARALLEL at a time: connect, write one byte, read its echo, close. A
 * connection that has not got its echo after TIMEOUT_MS counts as an error. Prints
 * `{"seconds":S,"latenciesMs":[...],"errors":N,"machineIdle":F}`: the latencies of the connections that
 * completed, and the share of all CPUs' time that was idle meanwhile (/proc/stat).
 *
 * udp-client: CLIENTS sockets connected to 127.0.0.1:PORT, each keeping WINDOW 64-byte datagrams in flight for
 * SECONDS. A datagram carries a sequence number: a client that heard nothing for RESEND_MS sends its
 * outstanding ones again (one was lost), so every client stays active to the end, and a late reply to a
 * datagram already answered is ignored. Prints `{"received":N,"resent":N}`.
 *
 * Each mode is one blocking epoll_wait loop on the main thread (this process does nothing else). Linux on
 * x86_64 and aarch64 (the struct layouts below).
 */
import {
  AF_INET,
  EAGAIN,
  EINPROGRESS,
  SO_ERROR,
  SO_REUSEADDR,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
} from "../../../src/sys/constants.ts";
import { EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT } from "../../../src/sys/epoll.ts";
import { machineTicks } from "./proc.ts";

const libc = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // readv/writev/recvmsg/sendmsg: every parameter an int, the byte counts inside the structs.
  readv: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
}).symbols;
const errnoView = new Deno.UnsafePointerView(libc.__errno_location()!);
const errno = () => errnoView.getInt32(0);

const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_MOD = 3;
/** struct epoll_event is packed on x86_64 (12 bytes), naturally aligned elsewhere (16). */
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const EVENT_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;
const MAX_EVENTS = 256;

function check(what: string, rc: number): number {
  if (rc < 0) throw new Error(`${what} failed (errno ${errno()})`);
  return rc;
}

/** struct sockaddr_in for 127.0.0.1:port. */
function loopback(port: number): Uint8Array {
  const sa = new Uint8Array(16);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  sa.set([127, 0, 0, 1], 4);
  return sa;
}

function address(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * One struct iovec over `buf`; `setLength` changes the count it carries. It keeps `buf` itself: the iovec
 * holds only its address, and a buffer nothing else refers to is freed by the next GC while the kernel
 * would still write into it (a run against HAProxy aborted in malloc that way).
 */
function iovec(buf: Uint8Array): { bytes: Uint8Array; buf: Uint8Array; setLength(n: number): void } {
  const bytes = new Uint8Array(16);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, address(buf), true);
  v.setBigUint64(8, BigInt(buf.length), true);
  return { bytes, buf, setLength: (n) => v.setBigUint64(8, BigInt(n), true) };
}

/** One epoll instance with a reusable event buffer; the event data is a descriptor number. */
class Epoll {
  readonly fd = check("epoll_create1", libc.epoll_create1(0));
  readonly #one = new Uint8Array(EVENT_SIZE);
  readonly #oneView = new DataView(this.#one.buffer);
  readonly #events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  readonly #view = new DataView(this.#events.buffer);

  ctl(op: number, fd: number, events: number): void {
    this.#oneView.setUint32(0, events, true);
    this.#oneView.setUint32(EVENT_DATA_OFFSET, fd, true);
    check("epoll_ctl", libc.epoll_ctl(this.fd, op, fd, this.#one));
  }

  /** Waits at most timeoutMs; calls `on(fd, events)` for each ready descriptor. */
  wait(timeoutMs: number, on: (fd: number, events: number) => void): void {
    const n = libc.epoll_wait(this.fd, this.#events, MAX_EVENTS, timeoutMs);
    for (let k = 0; k < n; k++) {
      const at = k * EVENT_SIZE;
      on(this.#view.getUint32(at + EVENT_DATA_OFFSET, true), this.#view.getUint32(at, true));
    }
  }
}

function setInt(fd: number, level: number, opt: number, value: number): void {
  libc.setsockopt(fd, level, opt, new Uint8Array(new Int32Array([value]).buffer), 4);
}

function runTargets(tcpPort: number, udpPort: number): never {
  const ep = new Epoll();
  const listener = check("socket", libc.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  setInt(listener, SOL_SOCKET, SO_REUSEADDR, 1);
  const tcpHere = loopback(tcpPort);
  check(`bind 127.0.0.1:${tcpPort}/tcp`, libc.bind(listener, tcpHere, tcpHere.length));
  check("listen", libc.listen(listener, 4096));
  ep.ctl(EPOLL_CTL_ADD, listener, EPOLLIN);
  const udp = check("socket", libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
  const udpHere = loopback(udpPort);
  check(`bind 127.0.0.1:${udpPort}/udp`, libc.bind(udp, udpHere, udpHere.length));
  ep.ctl(EPOLL_CTL_ADD, udp, EPOLLIN);

  const data = new Uint8Array(65536);
  const iov = iovec(data);
  const name = new Uint8Array(16);
  // struct msghdr (LP64): name, namelen, iov, iovlen, control, controllen, flags.
  const msg = new Uint8Array(56);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(0, address(name), true);
  mv.setBigUint64(16, address(iov.bytes), true);
  mv.setBigUint64(24, 1n, true);

  const echoUdp = () => {
    for (;;) {
      mv.setUint32(8, name.length, true);
      iov.setLength(data.length);
      const n = libc.recvmsg(udp, msg, 0);
      if (n < 0) return; // EAGAIN: drained (or an ICMP error from an earlier send, reported once)
      if (n === 0) continue;
      iov.setLength(n);
      libc.sendmsg(udp, msg, 0);
    }
  };
  const accept = () => {
    for (;;) {
      const fd = libc.accept4(listener, null, null, SOCK_NONBLOCK);
      if (fd < 0) return; // EAGAIN, or EMFILE: the next connection's event tries again
      ep.ctl(EPOLL_CTL_ADD, fd, EPOLLIN);
    }
  };
  const echoTcp = (fd: number) => {
    for (;;) {
      iov.setLength(data.length);
      const n = libc.readv(fd, iov.bytes, 1);
      if (n < 0 && errno() === EAGAIN) return;
      if (n <= 0) {
        libc.close(fd); // also leaves the epoll set
        return;
      }
      // The load writes a byte and waits for it: the echo always fits the send buffer.
      iov.setLength(n);
      libc.writev(fd, iov.bytes, 1);
    }
  };
  for (;;) {
    ep.wait(-1, (fd) => {
      if (fd === listener) accept();
      else if (fd === udp) echoUdp();
      else echoTcp(fd);
    });
  }
}

interface Slot {
  fd: number;
  startedMs: number;
  connected: boolean;
}

function runTcpClient(port: number, conns: number, parallel: number, timeoutMs: number): void {
  const ep = new Epoll();
  const target = loopback(port);
  const one = new Uint8Array([42]);
  const oneIov = iovec(one);
  const back = new Uint8Array(16);
  const backIov = iovec(back);
  const soError = new Uint8Array(4);
  const soErrorLen = new Uint8Array(new Uint32Array([4]).buffer);
  const slots = new Map<number, Slot>();
  const latencies: number[] = [];
  let started = 0, errors = 0;

  const finish = (slot: Slot, ok: boolean) => {
    slots.delete(slot.fd);
    libc.close(slot.fd);
    if (ok) latencies.push(performance.now() - slot.startedMs);
    else errors++;
  };
  const sendByte = (slot: Slot) => {
    slot.connected = true;
    if (libc.writev(slot.fd, oneIov.bytes, 1) !== 1) return finish(slot, false);
    ep.ctl(EPOLL_CTL_MOD, slot.fd, EPOLLIN);
  };
  const open = () => {
    started++;
    const startedMs = performance.now();
    const fd = libc.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      errors++;
      return;
    }
    const slot: Slot = { fd, startedMs, connected: false };
    slots.set(fd, slot);
    const rc = libc.connect(fd, target, target.length);
    if (rc < 0 && errno() !== EINPROGRESS) return finish(slot, false);
    ep.ctl(EPOLL_CTL_ADD, fd, EPOLLOUT);
  };
  const onEvent = (fd: number, events: number) => {
    const slot = slots.get(fd);
    if (!slot) return;
    if (!slot.connected) {
      soErrorLen.set(new Uint8Array(new Uint32Array([4]).buffer));
      libc.getsockopt(fd, SOL_SOCKET, SO_ERROR, soError, soErrorLen);
      if (new Int32Array(soError.buffer)[0] !== 0 || (events & (EPOLLERR | EPOLLHUP))) {
        return finish(slot, false);
      }
      return sendByte(slot);
    }
    const n = libc.readv(fd, backIov.bytes, 1);
    if (n < 0 && errno() === EAGAIN) return;
    finish(slot, n === 1);
  };

  const machineBefore = machineTicks();
  const start = performance.now();
  let nextTimeoutCheck = start + 100;
  while (started < conns || slots.size > 0) {
    while (started < conns && slots.size < parallel) open();
    ep.wait(100, onEvent);
    const now = performance.now();
    if (now >= nextTimeoutCheck) {
      nextTimeoutCheck = now + 100;
      for (const slot of [...slots.values()]) if (now - slot.startedMs > timeoutMs) finish(slot, false);
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const machineAfter = machineTicks();
  const busy = machineAfter.busy - machineBefore.busy, idle = machineAfter.idle - machineBefore.idle;
  console.log(JSON.stringify({ seconds, latenciesMs: latencies, errors, machineIdle: idle / (busy + idle) }));
}

function runUdpClient(
  port: number,
  seconds: number,
  clients: number,
  window: number,
  resendMs: number,
): void {
  const ep = new Epoll();
  const target = loopback(port);
  const fds: number[] = [];
  const indexOf = new Map<number, number>();
  for (let i = 0; i < clients; i++) {
    const fd = check("socket", libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    check(`connect 127.0.0.1:${port}`, libc.connect(fd, target, target.length));
    ep.ctl(EPOLL_CTL_ADD, fd, EPOLLIN);
    fds.push(fd);
    indexOf.set(fd, i);
  }
  const out = new Uint8Array(64);
  const outView = new DataView(out.buffer);
  const outIov = iovec(out);
  const inBuf = new Uint8Array(2048);
  const inView = new DataView(inBuf.buffer);
  const inIov = iovec(inBuf);
  const send = (i: number, seq: number) => {
    outView.setUint32(0, seq);
    libc.writev(fds[i], outIov.bytes, 1);
  };
  const outstanding = fds.map(() => new Set<number>());
  const lastHeard = fds.map(() => performance.now());
  let next = 0, received = 0, resent = 0;
  for (let i = 0; i < clients; i++) {
    for (let w = 0; w < window; w++) {
      outstanding[i].add(next);
      send(i, next++);
    }
  }
  const start = performance.now();
  const end = start + seconds * 1000;
  let nextResendCheck = start + resendMs / 2;
  const onEvent = (fd: number) => {
    const i = indexOf.get(fd)!;
    const now = performance.now();
    if (now >= end) return; // a reply after the measured time is not counted
    for (;;) {
      const n = libc.readv(fd, inIov.bytes, 1);
      if (n < 0) return; // EAGAIN (drained), or ECONNREFUSED from an ICMP error: the next edge comes
      if (n < 4 || !outstanding[i].delete(inView.getUint32(0))) continue;
      received++;
      lastHeard[i] = now;
      outstanding[i].add(next);
      send(i, next++);
    }
  };
  for (;;) {
    ep.wait(10, onEvent);
    const now = performance.now();
    if (now >= end) break;
    if (now >= nextResendCheck) {
      nextResendCheck = now + resendMs / 2;
      for (let i = 0; i < clients; i++) {
        if (now - lastHeard[i] < resendMs) continue;
        lastHeard[i] = now;
        for (const seq of outstanding[i]) {
          resent++;
          send(i, seq);
        }
      }
    }
  }
  console.log(JSON.stringify({ received, resent }));
}

const [mode, ...args] = Deno.args;
const n = args.map(Number);
if (mode === "targets") runTargets(n[0], n[1]);
else if (mode === "tcp-client") runTcpClient(n[0], n[1], n[2], n[3]);
else if (mode === "udp-client") runUdpClient(n[0], n[1], n[2], n[3], n[4]);
else {
  console.error(
    "usage: libc_load.ts targets TCP_PORT UDP_PORT | tcp-client PORT CONNS PARALLEL TIMEOUT_MS | " +
      "udp-client PORT SECONDS CLIENTS WINDOW RESEND_MS",
  );
  Deno.exit(2);
}
