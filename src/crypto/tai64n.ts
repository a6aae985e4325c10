/** TAI64N timestamps (12 bytes, big-endian) used in handshake initiations. */
export const TAI64N_LEN = 12;
const TAI64_BASE = 2n ** 62n + 10n;
/** wireguard-go masks the low 24 bits of the nanoseconds so the timestamp cannot be used as a timer oracle. */
const WHITENER_MASK = 0x1000000 - 1;

export function tai64n(wallMs: number): Uint8Array {
  const out = new Uint8Array(TAI64N_LEN);
  const view = new DataView(out.buffer);
  const secs = Math.floor(wallMs / 1000);
  const nanos = Math.floor((wallMs - secs * 1000) * 1e6);
  view.setBigUint64(0, TAI64_BASE + BigInt(secs), false);
  view.setUint32(8, (nanos & ~WHITENER_MASK) >>> 0, false);
  return out;
}

/** a > b, as 12-byte big-endian numbers. */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_LEN; i++) {
    if (a[i] !== b[i]) return a[i] > b[i];
  }
  return false;
}
