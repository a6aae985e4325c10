/**
 * ChaCha20-Poly1305 (RFC 8439) with three backends, preferred in this order: OpenSSL's libcrypto through FFI
 * (`aead_libcrypto.ts`: no per-packet cipher object, needs --allow-ffi and libcrypto.so.3), Deno's native
 * `node:crypto`, and `@noble/ciphers` (portable reference). A backend is used only if it reproduces the
 * RFC 8439 section 2.8.2 vector at start-up; all are tested against the same vectors and each other.
 * XChaCha20-Poly1305 (cookies only) is always noble.
 */
import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import * as nodeCrypto from "node:crypto";
import { equalBytes, fromHex } from "../util/bytes.ts";
import { logger } from "../util/log.ts";
import { probeLibcryptoAead } from "./aead_libcrypto.ts";

export const TAG_LEN = 16;
export const NONCE_LEN = 12;

/**
 * Results belong to the caller and stay valid, but may be views on a larger shared ArrayBuffer (libcrypto
 * carves them from slabs): use `byteOffset`/`byteLength`, and never transfer or detach `.buffer`.
 */
export interface AeadBackend {
  readonly name: string;
  /**
   * Returns ciphertext || tag, preceded by `headerRoom` bytes the caller fills in (WireGuard puts its 16-byte
   * transport header there, which saves a copy of every packet). `into`, when given and large enough, may
   * hold the result (a view of it is returned; its header bytes are then whatever `into` held): for a caller
   * whose next step copies the message anyway. A backend may ignore it and return a fresh, zeroed array.
   */
  seal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad?: Uint8Array,
    headerRoom?: number,
    into?: Uint8Array,
  ): Uint8Array;
  /**
   * Returns the plaintext, or null if authentication fails. `into`, when given and large enough, may hold the
   * plaintext (a view of it is returned); it may be `sealed` itself (decryption in place, for a caller done
   * with the ciphertext). A backend may ignore it and return a fresh array.
   */
  open(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad?: Uint8Array,
    into?: Uint8Array,
  ): Uint8Array | null;
}

export const nobleAead: AeadBackend = {
  name: "noble",
  seal(key, nonce, plaintext, aad, headerRoom = 0) {
    const sealed = chacha20poly1305(key, nonce, aad).encrypt(plaintext);
    if (!headerRoom) return sealed;
    const out = new Uint8Array(headerRoom + sealed.length);
    out.set(sealed, headerRoom);
    return out;
  },
  open(key, nonce, sealed, aad) {
    if (sealed.length < TAG_LEN) return null;
    try {
      return chacha20poly1305(key, nonce, aad).decrypt(sealed);
    } catch {
      return null;
    }
  },
};

const AUTH = { authTagLength: TAG_LEN } as const;

export const nativeAead: AeadBackend = {
  name: "native",
  seal(key, nonce, plaintext, aad, headerRoom = 0) {
    const c = nodeCrypto.createCipheriv("chacha20-poly1305", key, nonce, AUTH);
    if (aad && aad.length) c.setAAD(aad, { plaintextLength: plaintext.length });
    const body = c.update(plaintext);
    const fin = c.final();
    const out = new Uint8Array(headerRoom + body.length + fin.length + TAG_LEN);
    out.set(body, headerRoom);
    out.set(fin, headerRoom + body.length);
    out.set(c.getAuthTag(), headerRoom + body.length + fin.length);
    return out;
  },
  open(key, nonce, sealed, aad) {
    if (sealed.length < TAG_LEN) return null;
    try {
      const ctLen = sealed.length - TAG_LEN;
      const d = nodeCrypto.createDecipheriv("chacha20-poly1305", key, nonce, AUTH);
      d.setAuthTag(sealed.subarray(ctLen));
      if (aad && aad.length) d.setAAD(aad, { plaintextLength: ctLen });
      const body = d.update(sealed.subarray(0, ctLen));
      const fin = d.final();
      if (fin.length === 0) return new Uint8Array(body.buffer, body.byteOffset, body.length);
      const out = new Uint8Array(body.length + fin.length);
      out.set(body, 0);
      out.set(fin, body.length);
      return out;
    } catch {
      return null;
    }
  },
};

/** RFC 8439 section 2.8.2. */
export const RFC8439_VECTOR = {
  key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
  nonce: "070000004041424344454647",
  aad: "50515253c0c1c2c3c4c5c6c7",
  plaintext:
    "4c616469657320616e642047656e746c656d656e206f662074686520636c617373206f66202739393a204966204920636f756c64206f6666657220796f75206f6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73637265656e20776f756c642062652069742e",
  sealed:
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116" +
    "1ae10b594f09e26a7e902ecbd0600691",
};

/** True when the backend reproduces the RFC vector both ways and rejects a forged tag. */
export function backendPassesVector(backend: AeadBackend): boolean {
  try {
    const v = RFC8439_VECTOR;
    const key = fromHex(v.key), nonce = fromHex(v.nonce), aad = fromHex(v.aad);
    const sealed = backend.seal(key, nonce, fromHex(v.plaintext), aad);
    if (!equalBytes(sealed, fromHex(v.sealed))) return false;
    const opened = backend.open(key, nonce, sealed, aad);
    if (!opened || !equalBytes(opened, fromHex(v.plaintext))) return false;
    const forged = sealed.slice();
    forged[forged.length - 1] ^= 1;
    return backend.open(key, nonce, forged, aad) === null;
  } catch {
    return false;
  }
}

/** Names `WGEDGE_AEAD` accepts, in order of preference. */
export const AEAD_BACKEND_NAMES = ["libcrypto", "native", "noble"] as const;
export type AeadBackendName = typeof AEAD_BACKEND_NAMES[number];

export interface AeadAvailability {
  name: AeadBackendName;
  backend?: AeadBackend;
  /** Why `backend` is absent. */
  unavailable?: string;
}

const probed = new Map<AeadBackendName, AeadAvailability>();

/** Loads one backend and checks it against the vector, once; noble, the reference, is always available. */
function probe(name: AeadBackendName): AeadAvailability {
  let entry = probed.get(name);
  if (!entry) {
    let backend: AeadBackend | undefined, unavailable: string | undefined;
    if (name === "libcrypto") ({ backend, reason: unavailable } = probeLibcryptoAead());
    else backend = name === "native" ? nativeAead : nobleAead;
    if (backend && name !== "noble" && !backendPassesVector(backend)) {
      backend = undefined;
      unavailable = "does not reproduce the RFC 8439 2.8.2 vector";
    }
    entry = backend ? { name, backend } : { name, unavailable };
    probed.set(name, entry);
  }
  return entry;
}

/** Every backend with whether it loaded and passed the vector, in order of preference. */
export function aeadAvailability(): AeadAvailability[] {
  return AEAD_BACKEND_NAMES.map(probe);
}

/** The usable backends, most preferred first; noble is always among them. */
export function aeadBackends(): AeadBackend[] {
  return aeadAvailability().flatMap((a) => a.backend ? [a.backend] : []);
}

/**
 * The first usable of libcrypto, native, noble, or the one `wanted` names (only that one is loaded then). A
 * named backend that is unavailable, or an unknown name, gives the default and a warning saying why.
 */
export function chooseAeadBackend(wanted?: string): { backend: AeadBackend; warning?: string } {
  const forced = AEAD_BACKEND_NAMES.find((n) => n === wanted);
  if (forced && probe(forced).backend) return { backend: probe(forced).backend! };
  const backend = aeadBackends()[0];
  if (wanted === undefined || wanted === "") return { backend };
  const why = forced ? probe(forced).unavailable : `unknown name; expected ${AEAD_BACKEND_NAMES.join("|")}`;
  return { backend, warning: `WGEDGE_AEAD=${wanted} is unavailable (${why}); using ${backend.name}` };
}

let selected: AeadBackend | undefined;

/** The backend for the hot path, chosen once by `chooseAeadBackend(WGEDGE_AEAD)`; warns at most once. */
export function aead(): AeadBackend {
  if (!selected) {
    let wanted: string | undefined;
    try {
      wanted = Deno.env.get("WGEDGE_AEAD");
    } catch {
      wanted = undefined; // no env permission: the default
    }
    const choice = chooseAeadBackend(wanted);
    if (choice.warning) logger("crypto").warn(choice.warning);
    else logger("crypto").debug("ChaCha20-Poly1305 backend chosen", { backend: choice.backend.name });
    selected = choice.backend;
  }
  return selected;
}

/** Forces a backend (tests and benchmarks). */
export function setAeadBackend(backend: AeadBackend): void {
  selected = backend;
}

/** WireGuard nonce: 4 zero bytes || 64-bit little-endian counter. */
export function counterNonce(counter: number, out: Uint8Array = new Uint8Array(NONCE_LEN)): Uint8Array {
  // Byte stores rather than a DataView: this runs once per packet, and creating the view cost ~0.13 µs.
  const lo = counter >>> 0, hi = Math.floor(counter / 0x1_0000_0000) >>> 0;
  for (let i = 0; i < 4; i++) {
    out[i] = 0;
    out[4 + i] = lo >>> (8 * i);
    out[8 + i] = hi >>> (8 * i);
  }
  return out;
}

export function xaeadSeal(
  key: Uint8Array,
  nonce24: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  return xchacha20poly1305(key, nonce24, aad).encrypt(plaintext);
}

export function xaeadOpen(
  key: Uint8Array,
  nonce24: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  try {
    return xchacha20poly1305(key, nonce24, aad).decrypt(sealed);
  } catch {
    return null;
  }
}
