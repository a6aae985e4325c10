/**
 * SYN cookies (RFC 4987 section 3.6, Linux's layout): when a listener's SYN queue is full, the SYN-ACK's
 * sequence number itself carries the state, so a SYN flood costs no memory and a real client still gets in.
 *
 *   ISN = H1(tuple) + peerISN + (count << 24) + ((H2(tuple, count) + mssIndex) mod 2^24)
 *
 * count is a 64-second slot (cookies older than two slots are refused). The peer's window-scale shift and
 * SACK permission ride in the low 5 bits of our timestamp, echoed back in TSecr; a peer without timestamps
 * gets neither (as in Linux), since nothing could bring them back.
 */
import { tupleHash } from "./isn.ts";
import type { Clock } from "../../util/clock.ts";
import type { RandomFill } from "../../util/random.ts";

/** MSS values a cookie can encode (3 bits): the largest not above the peer's is chosen. */
export const COOKIE_MSS_TABLE = [536, 1200, 1280, 1360, 1400, 1440, 1460, 8960];
const SLOT_MS = 64_000;
const MAX_AGE_SLOTS = 2;
const TS_BITS_MASK = 0x1f;
const TS_NO_WSCALE = 0xf;
const TS_SACK_BIT = 0x10;

export interface CookieOptions {
  mss: number;
  /** The peer's window-scale shift, when it offered one and timestamps carry it back. */
  windowShift?: number;
  sackPermitted: boolean;
}

export class SynCookies {
  #key: Uint8Array;

  constructor(random: RandomFill, private clock: Clock) {
    this.#key = random(new Uint8Array(32));
  }

  #count(): number {
    return Math.floor(this.clock.now() / SLOT_MS) & 0xff;
  }

  static mssIndex(peerMss: number): number {
    let i = 0;
    while (i + 1 < COOKIE_MSS_TABLE.length && COOKIE_MSS_TABLE[i + 1] <= peerMss) i++;
    return i;
  }

  /** Our ISN for a SYN answered statelessly. */
  make(
    local: Uint8Array,
    lport: number,
    remote: Uint8Array,
    rport: number,
    peerIsn: number,
    peerMss: number,
  ): number {
    const count = this.#count();
    const h1 = tupleHash(this.#key, [1, 0], local, lport, remote, rport);
    const h2 = tupleHash(this.#key, [2, count], local, lport, remote, rport);
    const data = (h2 + SynCookies.mssIndex(peerMss)) & 0xffffff;
    return (h1 + peerIsn + ((count << 24) >>> 0) + data) >>> 0;
  }

  /** The MSS encoded in a returning ACK's cookie (ack - 1), or undefined when the cookie is not ours/too old. */
  check(
    local: Uint8Array,
    lport: number,
    remote: Uint8Array,
    rport: number,
    peerIsn: number,
    cookie: number,
  ): number | undefined {
    const h1 = tupleHash(this.#key, [1, 0], local, lport, remote, rport);
    const rest = (cookie - h1 - peerIsn) >>> 0;
    const count = rest >>> 24;
    const age = (this.#count() - count) & 0xff;
    if (age > MAX_AGE_SLOTS) return undefined;
    const h2 = tupleHash(this.#key, [2, count], local, lport, remote, rport);
    const index = ((rest & 0xffffff) - h2) & 0xffffff;
    return index < COOKIE_MSS_TABLE.length ? COOKIE_MSS_TABLE[index] : undefined;
  }

  /** Our SYN-ACK timestamp with the peer's options in its low bits, never ahead of `tsNow`. */
  static encodeTimestamp(tsNow: number, windowShift: number | undefined, sack: boolean): number {
    const bits = (windowShift ?? TS_NO_WSCALE) | (sack ? TS_SACK_BIT : 0);
    let ts = ((tsNow & ~TS_BITS_MASK) | bits) >>> 0;
    if (((ts - tsNow) | 0) > 0) ts = (ts - (TS_BITS_MASK + 1)) >>> 0;
    return ts;
  }

  static decodeTimestamp(tsEcr: number): { windowShift?: number; sackPermitted: boolean } {
    const ws = tsEcr & 0xf;
    return { windowShift: ws === TS_NO_WSCALE ? undefined : ws, sackPermitted: (tsEcr & TS_SACK_BIT) !== 0 };
  }
}
