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

/**
 * A seeded, deterministic generator for tests and fuzzers (not for keys): a 32-bit splitmix-style mix of a
 * Weyl sequence, four bytes per step, so consecutive bytes and words are not correlated.
 */
export function seededRandom(seed: number): RandomFill {
  let state = seed >>> 0;
  let word = 0;
  let left = 0;
  return (buf) => {
    for (let i = 0; i < buf.length; i++) {
      if (left === 0) {
        state = (state + 0x9e3779b9) >>> 0;
        let z = state;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
        word = (z ^ (z >>> 16)) >>> 0;
        left = 4;
      }
      buf[i] = word & 0xff;
      word >>>= 8;
      left--;
    }
    return buf;
  };
}
