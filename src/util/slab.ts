/**
 * Short-lived byte regions carved from shared 64 KiB slabs: per-packet buffers (sealed and opened WireGuard
 * messages where no reused buffer can take them) without an ArrayBuffer each.
 */

/**
 * Hands out never-reused, zero-filled regions of a shared ArrayBuffer, as Node's Buffer pool does. Creating a
 * typed array with its own ArrayBuffer costs about 1 to 1.5 µs in Deno 2.9 (an off-heap backing store per
 * packet), more than the cipher on a full packet; a view on a slab costs about a tenth of that. Each region is
 * handed out once, so a caller may keep what it gets for as long as it likes; a slab is freed by the GC when the
 * last view on it is gone (callers copy what they keep: the netstack writes TCP data into its ring and slices
 * UDP payloads, so at most a few slabs are pinned at a time).
 */
export class SlabAllocator {
  static readonly SLAB_SIZE = 64 * 1024;
  /** Larger requests get their own buffer, so one slab holds at least eight of the largest regions. */
  static readonly MAX_POOLED = SlabAllocator.SLAB_SIZE / 8;
  #slab = new ArrayBuffer(SlabAllocator.SLAB_SIZE);
  #offset = 0;

  alloc(length: number): Uint8Array {
    if (length > SlabAllocator.MAX_POOLED) return new Uint8Array(length);
    if (this.#offset + length > SlabAllocator.SLAB_SIZE) {
      this.#slab = new ArrayBuffer(SlabAllocator.SLAB_SIZE);
      this.#offset = 0;
    }
    const region = new Uint8Array(this.#slab, this.#offset, length);
    this.#offset += (length + 7) & ~7; // 8-byte aligned starts
    return region;
  }
}
