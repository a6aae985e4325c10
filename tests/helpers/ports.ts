/**
 * Host ports for tests that must name a port before the thing that binds it has started (a child process,
 * a relay spec, a config file).
 *
 * "Bind to port 0, read the port, close" is racy while test files run in parallel: the kernel hands out
 * connect() and bind(0) ports from that same ephemeral range, so between the close and the test's own bind
 * any other socket of the machine (a curl, an iperf3 stream, another test's listener) may take it. The ports
 * here come from below the ephemeral range, which the kernel never hands out by itself, and each is reserved
 * machine-wide by creating a file exclusively, so two test files running in parallel never pick the same one.
 */

/** Lowest port handed out; the highest is just below the kernel's ephemeral range. */
const LOWEST_PORT = 10_000;
/** The kernel's default net.ipv4.ip_local_port_range starts here; used when /proc cannot be read. */
const DEFAULT_EPHEMERAL_LOW = 32_768;
/** A reservation older than this is left over from an earlier run (test files finish in about a minute). */
const RESERVATION_STALE_MS = 10 * 60_000;
/** Per user: another user's directory would not be writable (test runs of two users do not coordinate). */
const RESERVATION_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/wgedge-test-ports-${Deno.uid() ?? "user"}`;

let ephemeralLow: number | undefined;

function ephemeralRangeStart(): number {
  if (ephemeralLow === undefined) {
    try {
      const low = Number(
        Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
      );
      ephemeralLow = Number.isInteger(low) && low > LOWEST_PORT + 1000 ? low : DEFAULT_EPHEMERAL_LOW;
    } catch {
      ephemeralLow = DEFAULT_EPHEMERAL_LOW;
    }
  }
  return ephemeralLow;
}

/** Creates the reservation file of `port`; false when another test holds it. */
function reserve(port: number): boolean {
  const path = `${RESERVATION_DIR}/${port}`;
  for (let i = 0; i < 2; i++) {
    try {
      Deno.writeTextFileSync(path, `${Deno.pid}\n`, { createNew: true });
      return true;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      const mtime = Deno.statSync(path).mtime?.getTime() ?? 0;
      if (Date.now() - mtime < RESERVATION_STALE_MS) return false;
      Deno.removeSync(path); // stale: free it and try once more (a parallel remover makes createNew fail)
    }
  }
  return false;
}

/**
 * True when nothing holds `port` for TCP or UDP on any address (bound and released at once). IPv6 too, since
 * a dual-stack [::] socket (the WireGuard UDP bind) conflicts with one on [::1]; a machine without IPv6 only
 * skips that check.
 */
function bindable(port: number): boolean {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
    Deno.listenDatagram({ hostname: "0.0.0.0", port, transport: "udp" }).close();
  } catch {
    return false;
  }
  for (
    const bind of [
      () => Deno.listen({ hostname: "::", port }),
      () => Deno.listenDatagram({ hostname: "::", port, transport: "udp" }),
    ]
  ) {
    try {
      bind().close();
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse) return false;
    }
  }
  return true;
}

/**
 * A host port free for both TCP and UDP, below the ephemeral range and reserved for this test run
 * (never handed out twice within RESERVATION_STALE_MS, by any test file).
 */
export function freePort(): number {
  Deno.mkdirSync(RESERVATION_DIR, { recursive: true, mode: 0o700 });
  const high = ephemeralRangeStart();
  for (let i = 0; i < 500; i++) {
    const port = LOWEST_PORT + Math.floor(Math.random() * (high - LOWEST_PORT));
    if (reserve(port) && bindable(port)) return port;
  }
  throw new Error(`no free port in ${LOWEST_PORT}-${high - 1}`);
}

/**
 * `count` consecutive host ports, each free for TCP and UDP and reserved like freePort()'s (for port-range
 * relays). Returns the first.
 */
export function freePortRange(count: number): number {
  Deno.mkdirSync(RESERVATION_DIR, { recursive: true, mode: 0o700 });
  const high = ephemeralRangeStart();
  for (let i = 0; i < 200; i++) {
    const first = LOWEST_PORT + Math.floor(Math.random() * (high - LOWEST_PORT - count));
    const held: number[] = [];
    for (let p = first; p < first + count && reserve(p); p++) held.push(p);
    if (held.length === count && held.every(bindable)) return first;
    for (const p of held) Deno.removeSync(`${RESERVATION_DIR}/${p}`);
  }
  throw new Error(`no ${count} consecutive free ports in ${LOWEST_PORT}-${high - 1}`);
}
