/** UDP test helpers shared by the relay, rp and tunnel tests. */
import { within } from "./wait.ts";

/**
 * One datagram, or a failure naming `what` after ms (default 30 s): a datagram lost on a loaded machine fails
 * the test with a reason instead of hanging the suite. The receive left pending is absorbed if the socket is
 * closed afterwards.
 */
export function receiveWithin<A>(
  sock: { receive(): Promise<[Uint8Array, A]> },
  what: string,
  ms?: number,
): Promise<[Uint8Array, A]> {
  const r = sock.receive();
  r.catch(() => {});
  return within(r, what, ms);
}

interface EchoSocket<A> {
  send(data: Uint8Array, to: A): Promise<number>;
  receive(): Promise<[Uint8Array, unknown]>;
}

export interface EchoRetry {
  /** Datagrams sent at most (default 30). */
  attempts?: number;
  /** Wait after the first send before sending again; doubles per attempt up to `maxWaitMs` (default 250). */
  firstWaitMs?: number;
  maxWaitMs?: number;
}

/**
 * Sends `msg` until a datagram equal to it comes back, and returns the number of sends it took.
 *
 * One receive stays pending across the retries. A fresh `receive()` per attempt would queue behind the
 * abandoned one: after a single lost datagram every later reply would be handed to a receive nobody awaits
 * any more, and the test would fail although the path works.
 */
export async function echoWithRetry<A>(
  sock: EchoSocket<A>,
  to: A,
  msg: string,
  retry: EchoRetry = {},
): Promise<number> {
  const attempts = retry.attempts ?? 30;
  let wait = retry.firstWaitMs ?? 250;
  const maxWait = retry.maxWaitMs ?? 2000;
  const payload = new TextEncoder().encode(msg);
  let pending = sock.receive();
  for (let attempt = 1; attempt <= attempts; attempt++) {
    await sock.send(payload, to);
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const got = await Promise.race([
        pending.then(([d]) => new TextDecoder().decode(d)),
        new Promise<null>((r) => timer = setTimeout(() => r(null), wait)),
      ]);
      clearTimeout(timer);
      if (got === null) break; // keep `pending` for the next attempt
      if (got === msg) return attempt;
      // A duplicate of an earlier message of another test phase: read on.
      pending = sock.receive();
    }
    wait = Math.min(wait * 2, maxWait);
  }
  throw new Error(`no echo of "${msg}" after ${attempts} datagrams`);
}
