/**
 * Dialling a proxy client's target through the tunnel, with a bound, and telling the failures apart so each
 * protocol answers with its own code: SOCKS5 REP (RFC 1928 §6) and HTTP 502/504.
 */
import type { Conn, Net } from "../../net/types.ts";
import { ResolveError } from "../../net/resolve.ts";

export type DialFailureKind = "resolve" | "refused" | "unreachable" | "timeout" | "other";

export class DialFailure extends Error {
  constructor(readonly kind: DialFailureKind, message: string) {
    super(message);
    this.name = "DialFailure";
  }
}

/** Default bound of one dial (the TCP handshake inside the tunnel, after name resolution). */
export const PROXY_DIAL_TIMEOUT_MS = 15_000;

function classify(e: unknown): DialFailureKind {
  if (e instanceof ResolveError) return "resolve";
  const msg = e instanceof Error ? e.message : String(e);
  if (/cannot resolve/i.test(msg)) return "resolve";
  if (e instanceof Deno.errors.ConnectionRefused || /refused/i.test(msg)) return "refused";
  if (e instanceof Deno.errors.TimedOut || /timed out/i.test(msg)) return "timeout";
  if (/AllowedIPs|no route|unreachable/i.test(msg)) return "unreachable";
  return "other";
}

/** Dials host:port on `net` (a name is resolved the Net's way: a tunnel's `DNS =` servers inside it). */
export async function dialTarget(
  net: Net,
  host: string,
  port: number,
  signal: AbortSignal,
  timeoutMs = PROXY_DIAL_TIMEOUT_MS,
): Promise<Conn> {
  if (!(port >= 1 && port <= 65535)) throw new DialFailure("other", `port ${port} is not in 1..65535`);
  try {
    return await net.dialTcp(host, port, { timeoutMs, signal });
  } catch (e) {
    throw new DialFailure(classify(e), e instanceof Error ? e.message : String(e));
  }
}
