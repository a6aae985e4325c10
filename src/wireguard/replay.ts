/**
 * Sliding replay window (RFC 6479 style, as wireguard-go's replay.Filter): a ring of bit blocks, WINDOW_SIZE
 * counters behind the greatest accepted one. 32-bit blocks here: (255 - 1) * 32 = 8128, wireguard-go's size.
 */
const BLOCK_BITS = 32;
const RING_BLOCKS = 255;
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS; // 8128

export class ReplayFilter {
  #last = 0;
  #ring = new Uint32Array(RING_BLOCKS);

  reset(): void {
    this.#last = 0;
    this.#ring.fill(0);
  }

  /** Accepts counter once if it is below limit and not older than the window; marks it seen. */
  validate(counter: number, limit: number): boolean {
    if (counter >= limit) return false;
    let blockIndex = Math.floor(counter / BLOCK_BITS);
    if (counter > this.#last) {
      const current = Math.floor(this.#last / BLOCK_BITS);
      const diff = Math.min(blockIndex - current, RING_BLOCKS);
      for (let i = current + 1; i <= current + diff; i++) this.#ring[i % RING_BLOCKS] = 0;
      this.#last = counter;
    } else if (this.#last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    blockIndex %= RING_BLOCKS;
    const bit = (1 << (counter % BLOCK_BITS)) >>> 0;
    const old = this.#ring[blockIndex];
    if ((old & bit) !== 0) return false;
    this.#ring[blockIndex] = (old | bit) >>> 0;
    return true;
  }
}
