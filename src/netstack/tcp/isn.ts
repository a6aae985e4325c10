/**
 * Initial sequence numbers per RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
 * M a 4-microsecond timer, F a keyed hash (BLAKE2s-MAC here). The same hash seeds the per-connection
 * timestamp offset (RFC 7323 section 7.1) so timestamps do not leak uptime or relate connections.
 */
import { mac } from "../../crypto/blake2s.ts";
import type { Clock } from "../../util/clock.ts";
import type { RandomFill } from "../../util/random.ts";

/**
 * Keyed hash (BLAKE2s-MAC) of prefix || local || remote || localPort || remotePort, as a u32: the F of RFC 6528,
 * shared by ISNs, timestamp offsets and SYN cookies (each with its own prefix).
 */
export function tupleHash(
  key: Uint8Array,
  prefix: readonly number[],
  local: Uint8Array,
  localPort: number,
  remote: Uint8Array,
  remotePort: number,
): number {
  const p = prefix.length;
  const msg = new Uint8Array(p + local.length + remote.length + 4);
  msg.set(prefix, 0);
  msg.set(local, p);
  msg.set(remote, p + local.length);
  const o = p + local.length + remote.length;
  msg[o] = localPort >>> 8;
  msg[o + 1] = localPort;
  msg[o + 2] = remotePort >>> 8;
  msg[o + 3] = remotePort;
  const h = mac(key, msg);
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

export class IsnGenerator {
  #key: Uint8Array;

  constructor(random: RandomFill, private clock: Clock) {
    this.#key = random(new Uint8Array(32));
  }

  isn(local: Uint8Array, localPort: number, remote: Uint8Array, remotePort: number): number {
    const m = Math.floor(this.clock.now() * 250); // 4 µs ticks
    return (tupleHash(this.#key, [0], local, localPort, remote, remotePort) + m) >>> 0;
  }

  timestampOffset(local: Uint8Array, localPort: number, remote: Uint8Array, remotePort: number): number {
    return tupleHash(this.#key, [1], local, localPort, remote, remotePort);
  }
}
