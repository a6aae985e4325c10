/**
 * libc's socket calls through Deno FFI, loaded once for the whole program: the UDP batch core (udp_batch.ts),
 * the epoll loop and TCP relay core (epoll.ts, tcp_relay.ts), the keepalive timings (net/keepalive.ts) and
 * the malloc heap trimmer (malloc.ts) use it. Linux only, and
 * only with the FFI permission; the reason is returned otherwise, and callers fall back to what Deno offers.
 */

/** struct mallinfo2: arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost. */
const MALLINFO2 = [
  "usize",
  "usize",
  "usize",
  "usize",
  "usize",
  "usize",
  "usize",
  "usize",
  "usize",
  "usize",
] as const;

const SYMBOLS = {
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
  // The TCP relay core (tcp_relay.ts) and its epoll loop (epoll.ts). readv/writev rather than read/write:
  // their counts travel inside the iovec, so every parameter is an int (a size_t parameter would need a
  // bigint per call). Their ssize_t results are read as i32, which holds every count of the 64 KiB buffers
  // used and -1.
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  readv: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // A wait of a fraction of a millisecond on the main thread (glibc 2.35+, Linux 5.11+; epoll.ts).
  epoll_pwait2: { parameters: ["i32", "buffer", "i32", "buffer", "pointer"], result: "i32", optional: true },
  // The same call on Deno's blocking pool: the wait for the next batch (epoll.ts).
  epoll_wait_blocking: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  // glibc's malloc statistics (2.33 and later) and trim (malloc.ts); absent elsewhere (musl), hence optional.
  mallinfo2: { parameters: [], result: { struct: MALLINFO2 }, optional: true },
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true, optional: true },
} as const;

export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** libc's socket calls and the main thread's errno. */
export interface Libc {
  lib: LibcSymbols;
  errno: Deno.UnsafePointerView;
}

let libcState: Libc | { reason: string } | undefined;

/** libc, loaded once; `{ reason }` when it cannot be used here. */
export function loadLibc(): Libc | { reason: string } {
  if (libcState) return libcState;
  if (Deno.build.os !== "linux") return libcState = { reason: `not Linux (${Deno.build.os})` };
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

const intBuf = new Int32Array(1);
const lenBuf = new Uint32Array(1);
// Byte views of the same memory: V8's fast FFI path takes a "buffer" argument as a Uint8Array only.
const intBytes = new Uint8Array(intBuf.buffer);
const lenBytes = new Uint8Array(lenBuf.buffer);

/** An int socket option, or undefined when getsockopt fails (not a socket, closed meanwhile, ...). */
export function getIntOption(libc: Libc, fd: number, level: number, opt: number): number | undefined {
  lenBuf[0] = 4;
  return libc.lib.getsockopt(fd, level, opt, intBytes, lenBytes) === 0 ? intBuf[0] : undefined;
}

/** Sets an int socket option; false when setsockopt fails. */
export function setIntOption(libc: Libc, fd: number, level: number, opt: number, value: number): boolean {
  intBuf[0] = value;
  return libc.lib.setsockopt(fd, level, opt, intBytes, 4) === 0;
}

/**
 * An FFI path's override variable (WGEDGE_UDP, WGEDGE_TCP): "deno" (Deno's own sockets), "ffi" (the libc path;
 * an error where it cannot run) or "auto" (unset, or no env permission). Throws on any other value.
 */
export function ffiModeFromEnv(name: string): "deno" | "ffi" | "auto" {
  let mode: string | undefined;
  try {
    mode = Deno.env.get(name)?.trim().toLowerCase();
  } catch {
    mode = undefined; // no env permission: automatic choice
  }
  if (!mode || mode === "auto") return "auto";
  if (mode === "deno" || mode === "ffi") return mode;
  throw new Error(`${name}: expected "deno", "ffi" or "auto", got "${mode}"`);
}
