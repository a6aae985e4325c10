/**
 * The UDP load of scripts/bench/relay.ts on libc's sockets, in a process of its own, so that what it measures is
 * the relay and not the load generator: Deno's sockets cost the client and the echo one async op (and a
 * promise) per datagram each, about 120 us of the two cores per round trip, so with a relay taking a third
 * of that the rate mostly measured the generator, and two relays of very different cost read alike.
 *
 *   deno run -A scripts/bench/lib/udp_pingpong.ts echo PORT
 *   deno run -A scripts/bench/lib/udp_pingpong.ts client PORT SECONDS CLIENTS WINDOW RESEND_MS
 *
 * echo: one socket on 127.0.0.1:PORT; a blocking recvmsg/sendmsg loop on the main thread sends every datagram
 * back to its sender. Empty datagrams are not echoed (rinetd 0.73 opens each flow with one and drops the flow
 * when one comes back). Runs until killed.
 *
 * client: CLIENTS sockets connected to 127.0.0.1:PORT, each keeping WINDOW 64-byte datagrams in flight for
 * SECONDS; one blocking epoll_wait (at most 10 ms) on the main thread serves them all. A datagram carries a
 * sequence number: a client that heard nothing for RESEND_MS sends its outstanding ones again (one was lost),
 * so every client stays active to the end, and a late reply to a datagram already answered is ignored. Prints
 * `{"received":N,"resent":N,"seconds":S}` on stdout.
 *
 * Linux on x86_64 and aarch64 (the struct layouts below). Blocking the main thread is fine: this process does
 * nothing else.
 */
const [mode, portArg, ...rest] = Deno.args;

const libc = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // readv/writev/recvmsg/sendmsg: every parameter an int, the byte counts inside the structs.
  readv: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
}).symbols;

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 1;
/** struct epoll_event is packed on x86_64 (12 bytes), naturally aligned elsewhere (16). */
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const EVENT_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;
const PAYLOAD = 64;

function check(what: string, rc: number): number {
  if (rc < 0) throw new Error(`${what} failed`);
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

/** One struct iovec over all of `buf`. */
function iovec(buf: Uint8Array): Uint8Array {
  const iov = new Uint8Array(16);
  const v = new DataView(iov.buffer);
  v.setBigUint64(0, address(buf), true);
  v.setBigUint64(8, BigInt(buf.length), true);
  return iov;
}

function runEcho(port: number): never {
  const fd = check("socket", libc.socket(AF_INET, SOCK_DGRAM, 0));
  const here = loopback(port);
  check(`bind 127.0.0.1:${port}`, libc.bind(fd, here, here.length));
  const data = new Uint8Array(65536);
  const name = new Uint8Array(16);
  const iov = iovec(data);
  // struct msghdr (LP64): name, namelen, iov, iovlen, control, controllen, flags.
  const msg = new Uint8Array(56);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(0, address(name), true);
  mv.setBigUint64(16, address(iov), true);
  mv.setBigUint64(24, 1n, true);
  for (;;) {
    mv.setUint32(8, name.length, true);
    new DataView(iov.buffer).setBigUint64(8, BigInt(data.length), true);
    const n = libc.recvmsg(fd, msg, 0);
    if (n <= 0) continue; // an error (ICMP from an earlier send) or an empty datagram: nothing to echo
    new DataView(iov.buffer).setBigUint64(8, BigInt(n), true);
    libc.sendmsg(fd, msg, 0);
  }
}

function runClient(port: number, seconds: number, clients: number, window: number, resendMs: number): void {
  const target = loopback(port);
  const ep = check("epoll_create1", libc.epoll_create1(0));
  const event = new Uint8Array(EVENT_SIZE);
  const ev = new DataView(event.buffer);
  const fds: number[] = [];
  for (let i = 0; i < clients; i++) {
    const fd = check("socket", libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    check(`connect 127.0.0.1:${port}`, libc.connect(fd, target, target.length));
    ev.setUint32(0, EPOLLIN, true);
    ev.setUint32(EVENT_DATA_OFFSET, i, true);
    check("epoll_ctl", libc.epoll_ctl(ep, EPOLL_CTL_ADD, fd, event));
    fds.push(fd);
  }
  const out = new Uint8Array(PAYLOAD);
  const outView = new DataView(out.buffer);
  const outIov = iovec(out);
  const inBuf = new Uint8Array(2048);
  const inView = new DataView(inBuf.buffer);
  const inIov = iovec(inBuf);
  const send = (i: number, seq: number) => {
    outView.setUint32(0, seq);
    libc.writev(fds[i], outIov, 1);
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
  const events = new Uint8Array(EVENT_SIZE * 64);
  const evs = new DataView(events.buffer);
  const start = performance.now();
  const end = start + seconds * 1000;
  let nextResendCheck = start + resendMs / 2;
  for (;;) {
    const ready = libc.epoll_wait(ep, events, 64, 10);
    const now = performance.now();
    if (now >= end) break;
    for (let k = 0; k < ready; k++) {
      const i = evs.getUint32(k * EVENT_SIZE + EVENT_DATA_OFFSET, true);
      for (;;) {
        const n = libc.readv(fds[i], inIov, 1);
        if (n < 0) break; // EAGAIN (drained) or ECONNREFUSED from an ICMP error: the next edge comes
        if (n < 4 || !outstanding[i].delete(inView.getUint32(0))) continue;
        received++;
        lastHeard[i] = now;
        outstanding[i].add(next);
        send(i, next++);
      }
    }
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
  const elapsed = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ received, resent, seconds: elapsed }));
}

const port = Number(portArg);
if (mode === "echo") runEcho(port);
else if (mode === "client") {
  const [seconds, clients, window, resendMs] = rest.map(Number);
  runClient(port, seconds, clients, window, resendMs);
} else {
  console.error("usage: udp_pingpong.ts echo PORT | client PORT SECONDS CLIENTS WINDOW RESEND_MS");
  Deno.exit(2);
}
