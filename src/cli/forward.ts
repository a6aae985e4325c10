/**
 * `--forward tcp://127.0.0.1:8080=10.0.0.1:80` (or udp://): a local host port forwarded to an address inside
 * the tunnel. A forward is a relay whose egress is the tunnel, so it reuses the relay engine (half-close,
 * connect timeout, UDP flow table with idle expiry) rather than a second copy of it.
 */
import type { RelaySpec } from "../config/relay.ts";
import { DEFAULT_UDP_MAX_FLOWS, DEFAULT_UDP_TIMEOUT_SEC } from "../config/relay.ts";
import { UsageError } from "./command.ts";
import { unbracket } from "../net/resolve.ts";

const FORWARD_RE =
  /^(tcp|udp):\/\/(\[[0-9a-fA-F:.]+\]|[^\s:=\[\]]+):(\d{1,5})=(\[[0-9a-fA-F:.]+\]|[^\s:=\[\]]+):(\d{1,5})$/;

function port(text: string, what: string, spec: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new UsageError(`--forward ${spec}: ${what} port must be 1..65535, got ${text}`);
  }
  return n;
}

export function parseForward(spec: string, index: number): RelaySpec {
  const m = FORWARD_RE.exec(spec.trim());
  if (!m) {
    throw new UsageError(
      `--forward "${spec}": expected tcp://LOCAL_HOST:PORT=TUNNEL_IP:PORT or udp://... ` +
        `(IPv6 in brackets, e.g. tcp://[::1]:8080=[fd00::1]:80)`,
    );
  }
  return {
    id: `--forward #${index + 1}`,
    protocol: m[1] as "tcp" | "udp",
    bind: unbracket(m[2]),
    inPort: port(m[3], "local", spec),
    outHost: unbracket(m[4]),
    outPort: port(m[5], "tunnel", spec),
    udpTimeoutSec: DEFAULT_UDP_TIMEOUT_SEC,
    maxFlows: DEFAULT_UDP_MAX_FLOWS,
  };
}
