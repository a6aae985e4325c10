/** Injectable randomness: production uses the CSPRNG; tests may pass a deterministic source. */
export type RandomFill = (buf: Uint8Array) => Uint8Array;

export const cryptoRandom: RandomFill = (buf) => {
  // getRandomValues is limited to 65536 bytes per call.
  for (let off = 0; off < buf.length; off += 65536) {
    crypto.getRandomValues(buf.subarray(off, Math.min(buf.length, off + 65536)));
  }
  return buf;
};

export function randomBytes(n: number, fill: RandomFill = cryptoRandom): Uint8Array {
  return fill(new Uint8Array(n));
}

export function randomU32(fill: RandomFill = cryptoRandom): number {
  const b = fill(new Uint8Array(4));
  return new DataView(b.buffer).getUint32(0, true);
}

/** A seeded, deterministic generator (xorshift128+) for tests and fuzzers. Not for keys. */
export function seededRandom(seed: number): RandomFill {
  let s0 = (seed >>> 0) || 0x9e3779b9;
  let s1 = 0x6d2b79f5 ^ s0;
  return (buf) => {
    for (let i = 0; i < buf.length; i++) {
      let x = s0;
      const y = s1;
      s0 = y;
      x ^= x << 23;
      x ^= x >>> 17;
      x ^= y ^ (y >>> 26);
      s1 = x >>> 0;
      buf[i] = (s0 + s1) & 0xff;
    }
    return buf;
  };
}
