/**
 * A tunnel's WireGuard UAPI socket: `<dir>/<name>.sock` (default /var/run/wireguard, where Debian's `wg`
 * looks), mode 0600, speaking the cross-platform configuration protocol (src/wire/uapi.ts) with the device
 * (src/wireguard/uapi.ts). So `wg show <name>`, `wg showconf <name>` and `wg set <name> ...` work on a wgedge
 * tunnel as on wireguard-go.
 *
 * Opening follows wireguard-go's ipc.UAPIOpen: a socket path that answers is another interface with this
 * name, and is refused (the directory is shared by every network namespace); a socket file nothing listens
 * on is stale and replaced. A directory we may not create or write (not root) is UapiUnavailable, which
 * callers report and go on without the socket. close() removes the file.
 */
import type { Device } from "../wireguard/device.ts";
import { uapiGet, uapiSet } from "../wireguard/uapi.ts";
import {
  formatUapiReply,
  UAPI_ERRNO,
  UapiProtocolError,
  UapiReader,
  type UapiRequest,
} from "../wire/uapi.ts";
import { type Logger, logger } from "../util/log.ts";

export const DEFAULT_UAPI_DIR = "/var/run/wireguard";
/** Connections served at once per socket; more are closed at accept (only root can connect anyway). */
const MAX_CONNECTIONS = 16;
/** A connection that sends nothing for this long is closed (wg itself finishes in milliseconds). */
const IDLE_TIMEOUT_MS = 30_000;

/**
 * Why `name` cannot name a UAPI socket, or null. `wg` refuses names of IFNAMSIZ (16) bytes or more; the
 * characters are those a Linux interface name may have that are also safe in a file name.
 */
export function uapiNameProblem(name: string): string | null {
  if (name.length === 0) return "an empty name";
  if (name.length > 15) {
    return `"${name}" is longer than 15 characters (wg refuses interface names that long)`;
  }
  if (!/^[A-Za-z0-9_=+.-]+$/.test(name) || name === "." || name === "..") {
    return `"${name}" is not an interface name (letters, digits and _ = + . - only)`;
  }
  return null;
}

/** The socket path is served by someone else (another wgedge tunnel or a WireGuard interface). */
export class UapiNameInUse extends Error {}
/** The directory cannot be used (permissions): the tunnel runs without a UAPI socket. */
export class UapiUnavailable extends Error {}

export interface UapiServer {
  readonly name: string;
  readonly path: string;
  close(): void;
}

/**
 * wireguard-go serializes configuration per device (ipcMutex). A device may be served under several names
 * (pooled tunnels), so the lock belongs to the device, not to a socket: a WeakMap keeps it beside the device
 * without adding socket concerns to src/wireguard/.
 */
const deviceLocks = new WeakMap<Device, Promise<unknown>>();

function withDeviceLock<T>(device: Device, fn: () => Promise<T> | T): Promise<T> {
  const prev = deviceLocks.get(device) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  deviceLocks.set(device, run.catch(() => {}));
  return run;
}

async function listenUnix(path: string): Promise<Deno.Listener> {
  try {
    return Deno.listen({ transport: "unix", path });
  } catch (e) {
    if (!(e instanceof Deno.errors.AddrInUse)) throw e;
  }
  try {
    const probe = await Deno.connect({ transport: "unix", path });
    probe.close();
    throw new UapiNameInUse(`${path} is in use (another WireGuard interface or wgedge tunnel has this name)`);
  } catch (e) {
    if (e instanceof UapiNameInUse) throw e;
    // Nothing listens: a stale socket left by a process that died. Replace it, as wireguard-go does.
  }
  await Deno.remove(path);
  return Deno.listen({ transport: "unix", path });
}

export async function serveUapi(
  device: Device,
  opts: { name: string; dir?: string; log?: Logger },
): Promise<UapiServer> {
  const problem = uapiNameProblem(opts.name);
  if (problem) throw new Error(`UAPI socket name: ${problem}`);
  const dir = opts.dir ?? DEFAULT_UAPI_DIR;
  const path = `${dir.replace(/\/+$/, "")}/${opts.name}.sock`;
  const log = opts.log ?? logger(`uapi.${opts.name}`);
  let listener: Deno.Listener;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    listener = await listenUnix(path);
    await Deno.chmod(path, 0o600);
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
      throw new UapiUnavailable(`cannot create ${path}: ${(e as Error).message}`);
    }
    throw e;
  }
  const conns = new Set<Deno.Conn>();
  let closed = false;
  (async () => {
    for await (const conn of listener) {
      if (conns.size >= MAX_CONNECTIONS) {
        conn.close();
        continue;
      }
      conns.add(conn);
      serveConnection(device, conn, log).finally(() => {
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* already closed */ }
      });
    }
  })().catch((e) => {
    if (!closed) log.error("UAPI socket stopped accepting", { path, error: (e as Error).message });
  });
  log.info("UAPI socket ready", { path });
  return {
    name: opts.name,
    path,
    close() {
      if (closed) return;
      closed = true;
      try {
        listener.close();
      } catch { /* already closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      try {
        Deno.removeSync(path);
      } catch { /* gone already */ }
    },
  };
}

/** One client: requests answered in order until it closes, errs, idles or breaks the protocol. */
async function serveConnection(device: Device, conn: Deno.Conn, log: Logger): Promise<void> {
  const reader = new UapiReader();
  const buf = new Uint8Array(4096);
  const enc = new TextEncoder();
  let idle: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => conn.close(), IDLE_TIMEOUT_MS);
  };
  try {
    arm();
    for (;;) {
      let req: UapiRequest | null;
      while ((req = reader.next()) !== null) {
        const reply = await answer(device, req, log);
        await writeAll(conn, enc.encode(reply));
      }
      const n = await conn.read(buf);
      if (n === null) return;
      arm();
      reader.push(buf.subarray(0, n));
    }
  } catch (e) {
    if (e instanceof UapiProtocolError) log.warn("UAPI client closed", { reason: e.message });
    // Otherwise the client went away (or idled out); nothing to answer.
  } finally {
    clearTimeout(idle);
  }
}

function answer(device: Device, req: UapiRequest, log: Logger): Promise<string> {
  return withDeviceLock(device, async () => {
    if (req.op === "get") return formatUapiReply(uapiGet(device), UAPI_ERRNO.ok);
    if (req.op === "bad-get") return formatUapiReply([], UAPI_ERRNO.invalid);
    const errno = await uapiSet(device, req, (m) => log.warn("UAPI set refused", { reason: m }));
    if (errno === UAPI_ERRNO.ok) {
      // Key names only: values include private and preshared keys.
      log.info("UAPI set applied", { keys: [...new Set(req.lines.map((l) => l.key))].join(",") });
    }
    return formatUapiReply([], errno);
  });
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}
