/**
 * The Internet checksum (RFC 1071) and the TCP/UDP/ICMPv6 pseudo-header sums (RFC 793 / RFC 768 for IPv4,
 * RFC 8200 section 8.1 for IPv6).
 *
 * Sums are kept unfolded (plain JS numbers never overflow below 2^53), so partial sums over several buffers
 * can be added together and folded once at the end. RFC 1624 incremental update is provided for rewriting
 * single fields (TTL, addresses) without summing the whole packet again.
 */

/** Adds the big-endian 16-bit words of buf[off, off+len) to sum. An odd trailing byte is padded with zero. */
export function onesSum(buf: Uint8Array, off = 0, len = buf.length - off, sum = 0): number {
  // This loop carries every byte of every tunnelled segment: 4-byte-aligned data (packets start at 8-byte
  // boundaries of their slab or buffer) is read a 32-bit word at a time.
  if (len >= WORDS_MIN_LEN && ((buf.byteOffset + off) & 3) === 0 && LITTLE_ENDIAN) {
    const tail = len & 3;
    sum += wordSum(buf, off, len - tail);
    return tail ? byteSum(buf, off + len - tail, tail, sum) : sum;
  }
  return byteSum(buf, off, len, sum);
}

/** Shorter data is summed byte by byte (a word view is not worth finding). */
const WORDS_MIN_LEN = 64;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function byteSum(buf: Uint8Array, off: number, len: number, sum: number): number {
  const end = off + len;
  const evenEnd = end - ((end - off) & 1);
  let i = off;
  // Unrolled by 8 words.
  for (; i + 16 <= evenEnd; i += 16) {
    sum += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]) +
      ((buf[i + 4] << 8) | buf[i + 5]) + ((buf[i + 6] << 8) | buf[i + 7]) +
      ((buf[i + 8] << 8) | buf[i + 9]) + ((buf[i + 10] << 8) | buf[i + 11]) +
      ((buf[i + 12] << 8) | buf[i + 13]) + ((buf[i + 14] << 8) | buf[i + 15]);
  }
  for (; i < evenEnd; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (evenEnd !== end) sum += buf[end - 1] << 8;
  return sum;
}

/**
 * Word views of the last two ArrayBuffers summed (a packet being sent and one being received), so a view is
 * made once per buffer (a 64 KiB slab holds dozens of packets) rather than once per call.
 */
let wordsA: Uint32Array | undefined, wordsB: Uint32Array | undefined;

function wordsOf(buffer: ArrayBufferLike): Uint32Array {
  if (wordsA?.buffer === buffer) return wordsA;
  if (wordsB?.buffer === buffer) {
    [wordsA, wordsB] = [wordsB, wordsA];
    return wordsA!;
  }
  wordsB = wordsA;
  return wordsA = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
}

/**
 * The ones' complement sum of len bytes (a multiple of 4, 4-byte aligned) as big-endian 16-bit words. Sums
 * of the little-endian 32-bit words fold to the sum of the little-endian 16-bit words (2^16 = 1 modulo
 * 0xffff), which is the big-endian sum byte-swapped (RFC 1071 section 2(B)).
 */
function wordSum(buf: Uint8Array, off: number, len: number): number {
  const w = wordsOf(buf.buffer);
  let i = (buf.byteOffset + off) >>> 2;
  const end = i + (len >>> 2);
  // At most 2^30 words of < 2^32 each: the double stays exact below 2^53 for any array.
  let s = 0;
  for (; i + 4 <= end; i += 4) s += w[i] + w[i + 1] + w[i + 2] + w[i + 3];
  for (; i < end; i++) s += w[i];
  const f = foldSum(s);
  return ((f & 0xff) << 8) | (f >>> 8);
}

/** Folds an unfolded sum to 16 bits (end-around carry), without complementing. */
export function foldSum(sum: number): number {
  // A double holds at most 2^53; fold the high part arithmetically before the 32-bit operations.
  if (sum > 0xffffffff) sum = (sum % 0x100000000) + Math.floor(sum / 0x100000000);
  sum = (sum >>> 16) + (sum & 0xffff);
  sum = (sum >>> 16) + (sum & 0xffff);
  sum = (sum >>> 16) + (sum & 0xffff);
  return sum;
}

/** The checksum field value for data whose unfolded sum (with the checksum field zeroed) is `sum`. */
export function finishChecksum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/** RFC 1071 checksum of buf[off, off+len). Over data that includes a correct checksum field it returns 0. */
export function internetChecksum(buf: Uint8Array, off = 0, len = buf.length - off): number {
  return finishChecksum(onesSum(buf, off, len));
}

/**
 * Unfolded pseudo-header sum: source and destination addresses (4 or 16 bytes each), the upper-layer
 * protocol number and the upper-layer length. IPv4 and IPv6 pseudo-headers sum to the same value for the
 * same fields, so one function serves both.
 */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  return onesSum(src, 0, src.length) + onesSum(dst, 0, dst.length) + proto + (length >>> 16) +
    (length & 0xffff);
}

/** Checksum of a transport segment (TCP, UDP, ICMPv6) including its pseudo-header; checksum field must be 0. */
export function transportChecksum(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  segment: Uint8Array,
  off = 0,
  len = segment.length - off,
): number {
  return finishChecksum(onesSum(segment, off, len, pseudoHeaderSum(src, dst, proto, len)));
}

/** True when a segment carrying its checksum field verifies against the pseudo-header. */
export function verifyTransportChecksum(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  segment: Uint8Array,
  off = 0,
  len = segment.length - off,
): boolean {
  return foldSum(onesSum(segment, off, len, pseudoHeaderSum(src, dst, proto, len))) === 0xffff;
}

/**
 * RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed from oldWord to
 * newWord. HC' = ~(~HC + ~m + m').
 */
export function updateChecksum16(checksum: number, oldWord: number, newWord: number): number {
  return ~foldSum((~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}
