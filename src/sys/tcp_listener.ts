/**
 * TCP_NODELAY and SO_KEEPALIVE on a listening socket, through libc (FFI). Linux copies both (and the
 * keepalive timings) from a listening socket to every socket it accepts, so a relay that sets them once on its
 * listener saves two setsockopt ops per accepted connection (Deno's `setNoDelay`/`setKeepAlive`, issue 14).
 * Deno hands out no descriptor, so the listener is found in /proc/self/fd: a socket that is listening
 * (SO_ACCEPTCONN) on the port. Another listener of this process on the same port (other address, SO_REUSEPORT)
 * gets the same options, which every host listener wants anyway.
 */
import { getIntOption, loadLibc, setIntOption } from "./libc.ts";
import {
  AF_INET,
  AF_INET6,
  IPPROTO_TCP,
  SO_ACCEPTCONN,
  SO_KEEPALIVE,
  SO_TYPE,
  SOCK_STREAM,
  SOL_SOCKET,
  TCP_NODELAY,
} from "./constants.ts";

/** sockaddr_in6 is the larger of the two; the port sits at bytes 2-3 (network order) in both. */
const SOCKADDR_MAX = 28;

/**
 * Sets TCP_NODELAY and SO_KEEPALIVE on this process's listening TCP socket(s) on `port`. True when at least
 * one was found and every one took both options; false (nothing to rely on) without libc or FFI permission.
 */
export function setListenerNoDelayKeepAlive(port: number): boolean {
  const libc = loadLibc();
  if ("reason" in libc) return false;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc/self/fd")];
  } catch {
    return false;
  }
  const name = new Uint8Array(SOCKADDR_MAX);
  const len = new Uint32Array(1);
  let found = 0;
  for (const e of entries) {
    const fd = Number(e.name);
    if (!Number.isInteger(fd)) continue;
    if (getIntOption(libc, fd, SOL_SOCKET, SO_ACCEPTCONN) !== 1) continue;
    if (getIntOption(libc, fd, SOL_SOCKET, SO_TYPE) !== SOCK_STREAM) continue;
    len[0] = SOCKADDR_MAX;
    if (libc.lib.getsockname(fd, name, len) !== 0 || len[0] < 4) continue;
    const family = name[0] | (name[1] << 8); // sa_family_t, host order (little-endian on Linux' x86_64/arm64)
    if (family !== AF_INET && family !== AF_INET6) continue; // a Unix socket is SOCK_STREAM too
    if (((name[2] << 8) | name[3]) !== port) continue;
    if (
      !setIntOption(libc, fd, IPPROTO_TCP, TCP_NODELAY, 1) ||
      !setIntOption(libc, fd, SOL_SOCKET, SO_KEEPALIVE, 1)
    ) return false;
    found++;
  }
  return found > 0;
}
