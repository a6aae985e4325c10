/**
 * The one polling helper of the tests: waitFor(cond, what) polls a condition until it holds, bounded, and
 * fails with a message saying what it waited for. Tests wait on real I/O with it; timers of the code under
 * test run on an injected ManualClock instead (src/util/clock.ts), never on a sleep.
 */

/**
 * The shortest time waitFor gives a condition. CI runs the test files in parallel on 2 cores next to
 * wireguard-go, iperf3 and 64 MiB transfers: a process start or a handshake can take seconds there although
 * nothing is wrong, and a wait that gives up early fails a correct test.
 */
export const WAIT_FOR_MIN_MS = 60_000;

export interface WaitOptions {
  /** What is awaited, for the failure message (a function builds it when the wait gives up, e.g. with logs). */
  what: string | (() => string);
  /** Gives up after this long (default WAIT_FOR_MIN_MS). */
  timeoutMs?: number;
  /** Pause between polls (default 50 ms). */
  intervalMs?: number;
}

/**
 * Polls `cond` until it returns true; throws "timed out waiting for <what>" after the timeout (the condition
 * is checked once more at the deadline, so a late timer cannot fail a wait whose condition holds).
 * The older positional form `waitFor(cond, what, tries, intervalMs)` waits at least WAIT_FOR_MIN_MS and at
 * least tries x intervalMs.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  opts: string | (() => string) | WaitOptions,
  tries?: number,
  intervalMs?: number,
): Promise<void> {
  const o: WaitOptions = typeof opts === "object" ? opts : { what: opts, intervalMs };
  const interval = o.intervalMs ?? 50;
  const timeoutMs = o.timeoutMs ?? Math.max(WAIT_FOR_MIN_MS, (tries ?? 0) * interval);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, interval));
  }
  if (await cond()) return;
  throw new Error(
    `timed out waiting for ${typeof o.what === "function" ? o.what() : o.what} (${timeoutMs} ms)`,
  );
}

/**
 * Settles as `p` does, or rejects with "timed out: <what>" after ms (default 30 s); the timer is cleared
 * whichever way `p` ends.
 */
export async function within<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
