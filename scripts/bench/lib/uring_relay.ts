/**
 * An experiment, not a wgedge engine: a TCP relay on io_uring whose only thread blocks in io_uring_enter, as a
 * yardstick for whether wgedge's relay core (src/sys/tcp_relay.ts, epoll) should move to io_uring.
 *
 *   deno run -A scripts/bench/lib/uring_relay.ts LISTEN_PORT TARGET_PORT
 *
 * Listens on 127.0.0.1:LISTEN_PORT and relays each connection to 127.0.0.1:TARGET_PORT. One multishot accept
 * feeds the ring; per connection: socket, connect, then a receive pending on each side and a send for what
 * it brought, all submitted and reaped in batches by one io_uring_enter per loop turn (no epoll, no system
 * call per operation). End of stream on one side becomes shutdown(SHUT_WR) on the other, made as a plain
 * system call: io_uring runs a shutdown on a worker thread and looks its descriptor number up only then, by
 * which time a close in the same batch may have given that number to a new connection.
 *
 * What it leaves out, so its figures are a ceiling rather than a rival: the loop owns its thread (wgedge's
 * main thread also runs Deno's event loop, tunnels and the admin API, so its relay cannot block it), each
 * connection holds two 16 KiB receive buffers while idle (a provided-buffer ring would share them), and there
 * is no connect timeout, keepalive, counter or log. Linux 6.1 or later (IORING_SETUP_DEFER_TASKRUN).
 */
import {
  AF_INET,
  EINTR,
  SHUT_WR,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
} from "../../../src/sys/constants.ts";
import { SOCKADDR_IN_SIZE, SockaddrView } from "../../../src/sys/udp_batch.ts";

const [listenPort, targetPort] = Deno.args.map(Number);
if (!(listenPort > 0 && targetPort > 0)) {
  console.error("usage: uring_relay.ts LISTEN_PORT TARGET_PORT");
  Deno.exit(2);
}

const lib = Deno.dlopen("libc.so.6", {
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
}).symbols;

// The same numbers on x86_64 and aarch64 (the unified table since Linux 5.1).
const SYS_IO_URING_SETUP = 425n;
const SYS_IO_URING_ENTER = 426n;
const IORING_SETUP_SUBMIT_ALL = 1 << 7;
const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
const IORING_SETUP_DEFER_TASKRUN = 1 << 13;
const IORING_ENTER_GETEVENTS = 1;
const IORING_OFF_SQES = 0x10000000n;
const IORING_ACCEPT_MULTISHOT = 1;
const IORING_CQE_F_MORE = 2;
const OP_ACCEPT = 13, OP_CONNECT = 16, OP_CLOSE = 19, OP_SEND = 26, OP_RECV = 27, OP_SOCKET = 45;
const SQE_SIZE = 64, CQE_SIZE = 16;
const PROT_READ_WRITE = 3, MAP_SHARED_POPULATE = 0x01 | 0x8000;
/** shutdown(2)'s both ways (constants.ts has only SHUT_WR). */
const SHUT_RDWR = 2;
const ENTRIES = 4096;
const BUFFER_SIZE = 16384;

/**
 * Every buffer whose address the kernel holds lives here for the whole run. A typed array that JavaScript no
 * longer reads is garbage to V8 even while the kernel still uses its address (the first version of this file
 * lost its target address that way: connects failed with EAFNOSUPPORT after a GC).
 */
const kept: Uint8Array[] = [];
function pinned(size: number): { bytes: Uint8Array; address: bigint } {
  const bytes = new Uint8Array(new ArrayBuffer(size));
  kept.push(bytes);
  return { bytes, address: BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes))) };
}

function sockaddrIn(port: number): { bytes: Uint8Array; address: bigint } {
  const sa = pinned(SOCKADDR_IN_SIZE);
  SockaddrView.writeV4(sa.bytes, new Uint8Array([127, 0, 0, 1]), port);
  return sa;
}

// The ring: io_uring_params (120 bytes) gives the sizes and the offsets of the fields in the mapped rings.
const params = pinned(120);
const pv = new DataView(params.bytes.buffer);
pv.setUint32(8, IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, true);
const ringFd = Number(lib.syscall(SYS_IO_URING_SETUP, BigInt(ENTRIES), params.address, 0n, 0n, 0n, 0n));
if (ringFd < 0) throw new Error(`io_uring_setup failed (${ringFd})`);
const sqEntries = pv.getUint32(0, true), cqEntries = pv.getUint32(4, true);
const sqOffset = (field: number) => pv.getUint32(40 + field * 4, true); // struct io_sqring_offsets
const cqOffset = (field: number) => pv.getUint32(80 + field * 4, true); // struct io_cqring_offsets
// One mapping holds both rings (IORING_FEAT_SINGLE_MMAP, every kernel that has DEFER_TASKRUN).
const ringSize = Math.max(sqOffset(6) + sqEntries * 4, cqOffset(5) + cqEntries * CQE_SIZE);
const ringPtr = lib.mmap(null, BigInt(ringSize), PROT_READ_WRITE, MAP_SHARED_POPULATE, ringFd, 0n);
const sqePtr = lib.mmap(
  null,
  BigInt(sqEntries * SQE_SIZE),
  PROT_READ_WRITE,
  MAP_SHARED_POPULATE,
  ringFd,
  IORING_OFF_SQES,
);
if (!ringPtr || !sqePtr) throw new Error("mmap of the ring failed");
const ring = new DataView(Deno.UnsafePointerView.getArrayBuffer(ringPtr, ringSize));
const sqes = new DataView(Deno.UnsafePointerView.getArrayBuffer(sqePtr, sqEntries * SQE_SIZE));
const sqeBytes = new Uint8Array(sqes.buffer);
const SQ_HEAD = sqOffset(0), SQ_TAIL = sqOffset(1), SQ_MASK = ring.getUint32(sqOffset(2), true);
const CQ_HEAD = cqOffset(0), CQ_TAIL = cqOffset(1), CQ_MASK = ring.getUint32(cqOffset(2), true);
const CQES = cqOffset(5);
// The SQ index array maps slot i to SQE i once and for all.
for (let i = 0; i < sqEntries; i++) ring.setUint32(sqOffset(6) + i * 4, i, true);
let sqTail = ring.getUint32(SQ_TAIL, true);
let unsubmitted = 0;

function enter(toSubmit: number, minComplete: number): number {
  return Number(
    lib.syscall(
      SYS_IO_URING_ENTER,
      BigInt(ringFd),
      BigInt(toSubmit),
      BigInt(minComplete),
      BigInt(IORING_ENTER_GETEVENTS),
      0n,
      0n,
    ),
  );
}

/** Queues one SQE; `user` comes back in its completion (stored as a double: any integer below 2^53). */
function submit(
  op: number,
  fd: number,
  address: bigint,
  len: number,
  off: bigint,
  user: number,
  opFlags = 0,
  ioprio = 0,
) {
  if (sqTail - ring.getUint32(SQ_HEAD, true) >= sqEntries) {
    ring.setUint32(SQ_TAIL, sqTail, true);
    enter(unsubmitted, 0);
    unsubmitted = 0;
  }
  const at = (sqTail & SQ_MASK) * SQE_SIZE;
  sqeBytes.fill(0, at, at + SQE_SIZE);
  sqes.setUint8(at, op);
  sqes.setUint16(at + 2, ioprio, true);
  sqes.setInt32(at + 4, fd, true);
  sqes.setBigUint64(at + 8, off, true);
  sqes.setBigUint64(at + 16, address, true);
  sqes.setUint32(at + 24, len, true);
  sqes.setUint32(at + 28, opFlags, true);
  sqes.setFloat64(at + 32, user, true);
  sqTail = (sqTail + 1) >>> 0;
  unsubmitted++;
}

// What a completion is for: the low three bits of its user data; the connection's slot above them. A
// receive or send is tagged with its direction: upstream (client to target) or downstream.
const K_ACCEPT = 0,
  K_SOCKET = 1,
  K_CONNECT = 2,
  K_RECV_UP = 3,
  K_RECV_DOWN = 4,
  K_SEND_UP = 5,
  K_SEND_DOWN = 6,
  K_CLOSE = 7;

/** One way through a connection: received into `buffer` from one socket, sent on to the other. */
interface Direction {
  readonly up: boolean;
  buffer: { bytes: Uint8Array; address: bigint };
  /** Bytes received and not yet sent on, and how far their send got. */
  pending: number;
  sent: number;
  /** The source sent FIN. */
  ended: boolean;
}

interface Conn {
  client: number;
  target: number;
  upstream: Direction;
  downstream: Direction;
  inFlight: number;
  failed: boolean;
}
const conns: (Conn | undefined)[] = [];
const freeSlots: number[] = [];
/** Buffers of finished connections, reused by the next ones. */
const spareBuffers: { bytes: Uint8Array; address: bigint }[] = [];
const target = sockaddrIn(targetPort);
const direction = (up: boolean): Direction => ({
  up,
  buffer: spareBuffers.pop() ?? pinned(BUFFER_SIZE),
  pending: 0,
  sent: 0,
  ended: false,
});

const listener = lib.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
lib.setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, pinned(4).bytes.fill(1, 0, 1), 4);
const here = sockaddrIn(listenPort);
if (lib.bind(listener, here.bytes, SOCKADDR_IN_SIZE) !== 0 || lib.listen(listener, 4096) !== 0) {
  throw new Error(`cannot listen on 127.0.0.1:${listenPort}`);
}

function op(
  conn: Conn,
  slot: number,
  code: number,
  fd: number,
  address: bigint,
  len: number,
  kind: number,
  off = 0n,
) {
  conn.inFlight++;
  submit(code, fd, address, len, off, slot * 8 + kind);
}

function receive(conn: Conn, slot: number, d: Direction) {
  const from = d.up ? conn.client : conn.target;
  op(conn, slot, OP_RECV, from, d.buffer.address, BUFFER_SIZE, d.up ? K_RECV_UP : K_RECV_DOWN);
}

function sendOn(conn: Conn, slot: number, d: Direction) {
  const to = d.up ? conn.target : conn.client;
  const at = d.buffer.address + BigInt(d.sent);
  op(conn, slot, OP_SEND, to, at, d.pending - d.sent, d.up ? K_SEND_UP : K_SEND_DOWN);
}

/**
 * The source of `d` sent FIN: carried on as shutdown(SHUT_WR) of its destination, or, when the other way has
 * ended too, the connection closes (nothing is in flight then: each way has one receive or one send at a time).
 */
function ended(conn: Conn, slot: number, d: Direction) {
  d.ended = true;
  if ((d.up ? conn.downstream : conn.upstream).ended) return closeIfIdle(conn, slot);
  lib.shutdown(d.up ? conn.target : conn.client, SHUT_WR);
}

/** A failed operation: both sockets are shut down, which ends the other pending operations; closed after. */
function fail(conn: Conn, slot: number) {
  if (!conn.failed) {
    conn.failed = true;
    lib.shutdown(conn.client, SHUT_RDWR);
    if (conn.target >= 0) lib.shutdown(conn.target, SHUT_RDWR);
  }
  closeIfIdle(conn, slot);
}

function closeIfIdle(conn: Conn, slot: number) {
  if (conn.inFlight > 0) return;
  submit(OP_CLOSE, conn.client, 0n, 0, 0n, K_CLOSE);
  if (conn.target >= 0) submit(OP_CLOSE, conn.target, 0n, 0, 0n, K_CLOSE);
  spareBuffers.push(conn.upstream.buffer, conn.downstream.buffer);
  conns[slot] = undefined;
  freeSlots.push(slot);
}

function onAccepted(fd: number) {
  const conn: Conn = {
    client: fd,
    target: -1,
    upstream: direction(true),
    downstream: direction(false),
    inFlight: 0,
    failed: false,
  };
  const slot = freeSlots.pop() ?? conns.length;
  conns[slot] = conn;
  op(conn, slot, OP_SOCKET, AF_INET, 0n, 0, K_SOCKET, BigInt(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC));
}

function onCompletion(user: number, res: number, flags: number) {
  const kind = user & 7;
  if (kind === K_ACCEPT) {
    if (res >= 0) onAccepted(res);
    if (!(flags & IORING_CQE_F_MORE)) armAccept();
    return;
  }
  if (kind === K_CLOSE) return;
  const slot = (user - kind) / 8;
  const conn = conns[slot]!;
  conn.inFlight--;
  if (conn.failed) return closeIfIdle(conn, slot);
  if (res < 0) return fail(conn, slot);
  switch (kind) {
    case K_SOCKET:
      conn.target = res;
      return op(conn, slot, OP_CONNECT, res, target.address, 0, K_CONNECT, BigInt(SOCKADDR_IN_SIZE));
    case K_CONNECT:
      receive(conn, slot, conn.upstream);
      return receive(conn, slot, conn.downstream);
  }
  const d = kind === K_RECV_UP || kind === K_SEND_UP ? conn.upstream : conn.downstream;
  if (kind === K_RECV_UP || kind === K_RECV_DOWN) {
    if (res === 0) return ended(conn, slot, d);
    d.pending = res;
    d.sent = 0;
    return sendOn(conn, slot, d);
  }
  d.sent += res;
  return d.sent < d.pending ? sendOn(conn, slot, d) : receive(conn, slot, d);
}

function armAccept() {
  submit(OP_ACCEPT, listener, 0n, 0, 0n, K_ACCEPT, SOCK_NONBLOCK | SOCK_CLOEXEC, IORING_ACCEPT_MULTISHOT);
}

armAccept();
for (;;) {
  ring.setUint32(SQ_TAIL, sqTail, true);
  const rc = enter(unsubmitted, 1);
  unsubmitted = 0;
  if (rc < 0 && rc !== -EINTR) throw new Error(`io_uring_enter failed (${rc})`);
  let head = ring.getUint32(CQ_HEAD, true);
  const end = ring.getUint32(CQ_TAIL, true);
  while (head !== end) {
    const at = CQES + (head & CQ_MASK) * CQE_SIZE;
    onCompletion(ring.getFloat64(at, true), ring.getInt32(at + 8, true), ring.getUint32(at + 12, true));
    head = (head + 1) >>> 0;
  }
  ring.setUint32(CQ_HEAD, head, true);
}
