/**
 * KEEPALIVE_IDLE/INTVL/CNT for host TCP sockets. Deno's `Conn.setKeepAlive()` only switches SO_KEEPALIVE on
 * and hands out no file descriptor, so the timings cannot be set per connection. Instead a sweep walks this
 * process's own descriptors (/proc/self/fd) at most once a second, and only after new keepalive sockets were
 * opened, and gives every TCP socket that has SO_KEEPALIVE on and was not seen before (by inode) the configured
 * TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT through libc's setsockopt (FFI). Linux re-arms a socket's keepalive timer when TCP_KEEPIDLE changes, so a connection gets
 * its timings within a second of opening, long before its first probe.
 *
 * Linux only. Without FFI permission or libc it logs once and the kernel's net.ipv4.tcp_keepalive_* stay.
 */
import { logger } from "../util/log.ts";
import { getIntOption, type Libc, loadLibc, setIntOption } from "../sys/libc.ts";
import {
  IPPROTO_TCP,
  SO_KEEPALIVE,
  SO_PROTOCOL,
  SOL_SOCKET,
  TCP_KEEPCNT,
  TCP_KEEPIDLE,
  TCP_KEEPINTVL,
} from "../sys/constants.ts";

export interface KeepaliveTimings {
  idleSec: number;
  intervalSec: number;
  count: number;
}

const log = logger("keepalive");
let warned = false;

function openLibc(): Libc | null {
  const state = loadLibc();
  if ("reason" in state) {
    if (!warned && Deno.build.os === "linux") {
      warned = true;
      log.warn("cannot load libc for keepalive timings; the kernel defaults apply to host sockets", {
        error: state.reason,
      });
    }
    return null;
  }
  return state;
}

/** The kernel's current timings of a TCP socket (tests and diagnostics). */
export function readKeepalive(fd: number): (KeepaliveTimings & { on: boolean }) | undefined {
  const lib = openLibc();
  if (!lib) return undefined;
  const on = getIntOption(lib, fd, SOL_SOCKET, SO_KEEPALIVE);
  const idle = getIntOption(lib, fd, IPPROTO_TCP, TCP_KEEPIDLE);
  const intvl = getIntOption(lib, fd, IPPROTO_TCP, TCP_KEEPINTVL);
  const cnt = getIntOption(lib, fd, IPPROTO_TCP, TCP_KEEPCNT);
  if (on === undefined || idle === undefined || intvl === undefined || cnt === undefined) return undefined;
  return { on: on === 1, idleSec: idle, intervalSec: intvl, count: cnt };
}

export class HostKeepalive {
  /** Inodes already given the timings. */
  #configured = new Set<string>();
  /** Inodes that are not TCP (UDP, unix sockets): never candidates. */
  #notTcp = new Set<string>();
  #timer: number | undefined;
  #lastChange = NaN;
  #timingsChanged = false;
  configuredTotal = 0;
  /** Full passes over /proc/self/fd so far (a pass readlinks every descriptor). */
  sweepsRun = 0;

  /**
   * `changes` is a counter that moves whenever a new socket may want the timings (see
   * `keepaliveSocketsTuned` in host.ts); the periodic tick skips the descriptor walk while it stands still,
   * so a relay holding 10 000 idle connections does not readlink 20 000 descriptors every second. Without it
   * every tick sweeps.
   */
  constructor(
    private timings: KeepaliveTimings,
    private readonly intervalMs = 1000,
    private readonly changes?: () => number,
  ) {}

  /** Starts the periodic sweep; false when the platform cannot do it (then nothing runs). */
  start(): boolean {
    if (!openLibc()) return false;
    this.tick();
    const timer = setInterval(() => this.tick(), this.intervalMs) as unknown as number;
    Deno.unrefTimer(timer);
    this.#timer = timer;
    return true;
  }

  /** New timings apply to every socket from the next sweep on. */
  update(timings: KeepaliveTimings): void {
    this.timings = timings;
    this.#configured.clear();
    this.#timingsChanged = true;
  }

  /** The periodic step: sweeps when new sockets appeared or the timings changed since the last pass. */
  tick(): number[] {
    const now = this.changes?.() ?? NaN;
    if (!Number.isNaN(now) && now === this.#lastChange && !this.#timingsChanged) return [];
    this.#lastChange = now;
    this.#timingsChanged = false;
    return this.sweep();
  }

  /** One pass over the descriptors; returns the fds configured in this pass. */
  sweep(): number[] {
    const lib = openLibc();
    if (!lib) return [];
    this.sweepsRun++;
    const done: number[] = [];
    const seen = new Set<string>();
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync("/proc/self/fd")];
    } catch {
      return done;
    }
    for (const e of entries) {
      const fd = Number(e.name);
      let link: string;
      try {
        link = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      } catch {
        continue; // closed meanwhile
      }
      if (!link.startsWith("socket:")) continue;
      seen.add(link);
      if (this.#configured.has(link) || this.#notTcp.has(link)) continue;
      if (getIntOption(lib, fd, SOL_SOCKET, SO_PROTOCOL) !== IPPROTO_TCP) {
        this.#notTcp.add(link);
        continue;
      }
      // Only sockets the program asked keepalive for (Deno's setKeepAlive(true)); checked again next pass.
      if (getIntOption(lib, fd, SOL_SOCKET, SO_KEEPALIVE) !== 1) continue;
      const t = this.timings;
      if (
        setIntOption(lib, fd, IPPROTO_TCP, TCP_KEEPINTVL, t.intervalSec) &&
        setIntOption(lib, fd, IPPROTO_TCP, TCP_KEEPCNT, t.count) &&
        setIntOption(lib, fd, IPPROTO_TCP, TCP_KEEPIDLE, t.idleSec) // last: re-arms the timer with the full set
      ) {
        this.#configured.add(link);
        this.configuredTotal++;
        done.push(fd);
      }
    }
    for (const s of this.#configured) if (!seen.has(s)) this.#configured.delete(s);
    for (const s of this.#notTcp) if (!seen.has(s)) this.#notTcp.delete(s);
    return done;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
