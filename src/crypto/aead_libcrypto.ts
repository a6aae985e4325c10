/**
 * ChaCha20-Poly1305 (RFC 8439) through OpenSSL 3's EVP interface, called with Deno FFI.
 *
 * Why: `node:crypto` builds a cipher object (and a Transform stream) per packet, which costs far more than the
 * cipher itself (docs/profiling.md). Here one EVP_CIPHER_CTX for sealing and one for opening live as long as
 * the process; each packet only re-keys them (`EVP_*Init_ex(ctx, NULL, NULL, key, nonce)`) and runs
 * Update/Final straight into the caller's result array. JS is single-threaded, so sharing the two contexts is
 * safe; nothing here awaits between Init and Final.
 *
 * Loading never throws: without the FFI permission (checked with `querySync`, so the user is never prompted)
 * or without a loadable libcrypto, `probeLibcryptoAead()` reports why and the caller uses another backend.
 */
import type { AeadBackend } from "./aead.ts";
import { SlabAllocator } from "../util/slab.ts";

const KEY_LEN = 32;
const NONCE_LEN = 12;
const TAG_LEN = 16;
/** `EVP_CTRL_AEAD_GET_TAG` / `EVP_CTRL_AEAD_SET_TAG` from openssl/evp.h (same values in 1.1 and 3.x). */
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** EVP lengths are C `int`. */
const MAX_EVP_LEN = 0x7fff_ffff;

const LIBCRYPTO_NAMES: Record<string, string[]> = {
  linux: ["libcrypto.so.3", "libcrypto.so"],
  darwin: ["libcrypto.3.dylib", "libcrypto.dylib"],
  windows: ["libcrypto-3-x64.dll", "libcrypto-3.dll"],
};

const EVP_SYMBOLS = {
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  // int EVP_CIPHER_CTX_ctrl(EVP_CIPHER_CTX *ctx, int type, int arg, void *ptr)
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  // int EVP_EncryptInit_ex(ctx, const EVP_CIPHER *type, ENGINE *impl, const unsigned char *key, const unsigned char *iv)
  EVP_EncryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  // int EVP_EncryptUpdate(ctx, unsigned char *out, int *outl, const unsigned char *in, int inl)
  EVP_EncryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  // int EVP_EncryptFinal_ex(ctx, unsigned char *out, int *outl)
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Evp = Deno.DynamicLibrary<typeof EVP_SYMBOLS>["symbols"];

export type AeadProbe = { backend: AeadBackend; reason?: undefined } | {
  backend?: undefined;
  reason: string;
};

/** True when FFI is already granted; never prompts. */
export function ffiGranted(): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}

/** Opens the first of `names` that loads and has every symbol; the error text of each failure otherwise. */
export function dlopenFirst<const S extends Deno.ForeignLibraryInterface>(
  names: readonly string[],
  symbols: S,
): { lib: Deno.DynamicLibrary<S>; name: string } | { reason: string } {
  if (!ffiGranted()) return { reason: "FFI permission not granted (run with --allow-ffi or -A)" };
  if (typeof Deno.dlopen !== "function") return { reason: "Deno.dlopen is not available" };
  const failures: string[] = [];
  for (const name of names) {
    try {
      return { lib: Deno.dlopen(name, symbols), name };
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message}`);
    }
  }
  return { reason: failures.length ? failures.join("; ") : `no library names for ${Deno.build.os}` };
}

class LibcryptoAead implements AeadBackend {
  readonly name = "libcrypto";
  readonly #evp: Evp;
  readonly #sealCtx: Deno.PointerObject;
  readonly #openCtx: Deno.PointerObject;
  /** The `int *outl` of every EVP call; one array for the life of the backend. */
  readonly #outLen = new Int32Array(1);
  /** Final's output: ChaCha20-Poly1305 never emits bytes there, but the pointer must be writable. */
  readonly #finalScratch = new Uint8Array(TAG_LEN);
  readonly #slabs = new SlabAllocator();

  constructor(evp: Evp, sealCtx: Deno.PointerObject, openCtx: Deno.PointerObject) {
    this.#evp = evp;
    this.#sealCtx = sealCtx;
    this.#openCtx = openCtx;
  }

  seal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad?: Uint8Array,
    headerRoom = 0,
    into?: Uint8Array,
  ): Uint8Array {
    // OpenSSL reads exactly 32 key and 12 nonce bytes from the pointers: a shorter array would be read past.
    if (key.length !== KEY_LEN) throw new RangeError(`AEAD key must be ${KEY_LEN} bytes`);
    if (nonce.length !== NONCE_LEN) throw new RangeError(`AEAD nonce must be ${NONCE_LEN} bytes`);
    const n = plaintext.length;
    if (n > MAX_EVP_LEN - TAG_LEN || (aad && aad.length > MAX_EVP_LEN)) {
      throw new RangeError("AEAD input too long");
    }
    const evp = this.#evp, ctx = this.#sealCtx, outLen = this.#outLen;
    const total = headerRoom + n + TAG_LEN;
    const out = into && into.length >= total ? into.subarray(0, total) : this.#slabs.alloc(total);
    if (evp.EVP_EncryptInit_ex(ctx, null, null, key, nonce) !== 1) {
      throw new Error("EVP_EncryptInit_ex failed");
    }
    if (aad && aad.length && evp.EVP_EncryptUpdate(ctx, null, outLen, aad, aad.length) !== 1) {
      throw new Error("EVP_EncryptUpdate (AAD) failed");
    }
    if (n) {
      const body = headerRoom ? out.subarray(headerRoom) : out;
      if (evp.EVP_EncryptUpdate(ctx, body, outLen, plaintext, n) !== 1 || outLen[0] !== n) {
        throw new Error("EVP_EncryptUpdate failed");
      }
    }
    if (evp.EVP_EncryptFinal_ex(ctx, this.#finalScratch, outLen) !== 1 || outLen[0] !== 0) {
      throw new Error("EVP_EncryptFinal_ex failed");
    }
    if (evp.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out.subarray(headerRoom + n)) !== 1) {
      throw new Error("EVP_CTRL_AEAD_GET_TAG failed");
    }
    return out;
  }

  open(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad?: Uint8Array,
    into?: Uint8Array,
  ): Uint8Array | null {
    if (key.length !== KEY_LEN || nonce.length !== NONCE_LEN) return null;
    if (sealed.length < TAG_LEN || sealed.length > MAX_EVP_LEN || (aad && aad.length > MAX_EVP_LEN)) {
      return null;
    }
    const evp = this.#evp, ctx = this.#openCtx, outLen = this.#outLen;
    const n = sealed.length - TAG_LEN;
    if (evp.EVP_DecryptInit_ex(ctx, null, null, key, nonce) !== 1) return null;
    if (evp.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, sealed.subarray(n)) !== 1) return null;
    if (aad && aad.length && evp.EVP_DecryptUpdate(ctx, null, outLen, aad, aad.length) !== 1) return null;
    // OpenSSL decrypts in place when `into` is `sealed` (the same start); the tag was read above and lies
    // after the n bytes written. Otherwise a fresh slab region is the only allocation per packet.
    const plaintext = into && into.length >= n ? into.subarray(0, n) : this.#slabs.alloc(n);
    if (n && (evp.EVP_DecryptUpdate(ctx, plaintext, outLen, sealed, n) !== 1 || outLen[0] !== n)) return null;
    // Final checks the tag; on failure the unauthenticated plaintext is dropped with the array.
    if (evp.EVP_DecryptFinal_ex(ctx, this.#finalScratch, outLen) !== 1 || outLen[0] !== 0) return null;
    return plaintext;
  }
}

let probed: AeadProbe | undefined;

/**
 * The libcrypto backend, or why it is unavailable. Loads the library and allocates the two contexts on the
 * first call only; later calls return the same result.
 */
export function probeLibcryptoAead(): AeadProbe {
  if (!probed) probed = load();
  return probed;
}

function load(): AeadProbe {
  const opened = dlopenFirst(LIBCRYPTO_NAMES[Deno.build.os] ?? LIBCRYPTO_NAMES.linux, EVP_SYMBOLS);
  if ("reason" in opened) return { reason: `libcrypto not loadable: ${opened.reason}` };
  const evp = opened.lib.symbols;
  try {
    const cipher = evp.EVP_chacha20_poly1305();
    if (!cipher) throw new Error("EVP_chacha20_poly1305() returned NULL");
    const sealCtx = evp.EVP_CIPHER_CTX_new(), openCtx = evp.EVP_CIPHER_CTX_new();
    // The cipher is bound once; per packet only key and nonce change.
    if (
      !sealCtx || !openCtx ||
      evp.EVP_EncryptInit_ex(sealCtx, cipher, null, null, null) !== 1 ||
      evp.EVP_DecryptInit_ex(openCtx, cipher, null, null, null) !== 1
    ) {
      // EVP_CIPHER_CTX_free(NULL) is a no-op.
      evp.EVP_CIPHER_CTX_free(sealCtx);
      evp.EVP_CIPHER_CTX_free(openCtx);
      throw new Error("EVP_*Init_ex with chacha20-poly1305 failed");
    }
    return { backend: new LibcryptoAead(evp, sealCtx, openCtx) };
  } catch (e) {
    opened.lib.close();
    return { reason: `libcrypto (${opened.name}): ${(e as Error).message}` };
  }
}
