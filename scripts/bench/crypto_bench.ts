/**
 * `deno task bench`: AEAD seal/open of 1420-byte and 64-byte packets with every available backend, and a full
 * WireGuard handshake (initiation -> response -> both sessions) in-process.
 * Run: npx -y deno@2 bench -A scripts/bench/crypto_bench.ts
 *
 * Also measured, not shipped: libsodium's one-shot crypto_aead_chacha20poly1305_ietf_encrypt/decrypt through
 * FFI ("sodium (prototype)"), when libsodium.so.23 loads; docs/benchmarks.md says why it is not a backend.
 */
import { type AeadBackend, aeadBackends, counterNonce, TAG_LEN } from "../../src/crypto/aead.ts";
import { dlopenFirst } from "../../src/crypto/aead_libcrypto.ts";
import { SlabAllocator } from "../../src/util/slab.ts";
import { generatePrivateKey, publicKey } from "../../src/crypto/x25519.ts";
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveSessionKeys,
  Handshake,
  staticIdentity,
} from "../../src/wireguard/noise.ts";
import { CookieChecker, CookieGenerator } from "../../src/wireguard/cookie.ts";

/**
 * libsodium's combined mode writes ciphertext || tag, the same layout as seal(). Its lengths are
 * `unsigned long long`, which Deno FFI types as bigint (u64 arguments also leave FFI's fast call path).
 */
function sodiumPrototype(): AeadBackend | undefined {
  const opened = dlopenFirst(["libsodium.so.23", "libsodium.so"], {
    sodium_init: { parameters: [], result: "i32" },
    crypto_aead_chacha20poly1305_ietf_encrypt: {
      parameters: ["buffer", "buffer", "buffer", "u64", "buffer", "u64", "pointer", "buffer", "buffer"],
      result: "i32",
    },
    crypto_aead_chacha20poly1305_ietf_decrypt: {
      parameters: ["buffer", "buffer", "pointer", "buffer", "u64", "buffer", "u64", "buffer", "buffer"],
      result: "i32",
    },
  });
  if ("reason" in opened) return undefined;
  const so = opened.lib.symbols;
  if (so.sodium_init() < 0) return undefined;
  const slabs = new SlabAllocator();
  return {
    name: "sodium (prototype)",
    seal(key, nonce, plaintext, aad, headerRoom = 0) {
      const out = slabs.alloc(headerRoom + plaintext.length + TAG_LEN);
      so.crypto_aead_chacha20poly1305_ietf_encrypt(
        out.subarray(headerRoom),
        null,
        plaintext,
        BigInt(plaintext.length),
        aad ?? null,
        BigInt(aad?.length ?? 0),
        null,
        nonce,
        key,
      );
      return out;
    },
    open(key, nonce, sealed, aad) {
      if (sealed.length < TAG_LEN) return null;
      const out = slabs.alloc(sealed.length - TAG_LEN);
      const rc = so.crypto_aead_chacha20poly1305_ietf_decrypt(
        out,
        null,
        null,
        sealed,
        BigInt(sealed.length),
        aad ?? null,
        BigInt(aad?.length ?? 0),
        nonce,
        key,
      );
      return rc === 0 ? out : null;
    },
  };
}

const key = crypto.getRandomValues(new Uint8Array(32));
const nonce = counterNonce(12345);
const sodium = sodiumPrototype();
const backends = sodium ? [...aeadBackends(), sodium] : aeadBackends();

for (const size of [1420, 64]) {
  const packet = crypto.getRandomValues(new Uint8Array(size));
  for (const backend of backends) {
    // The transport path's call: 16 bytes of header room before the ciphertext.
    const sealed = backend.seal(key, nonce, packet);
    if (aeadBackends().some((b) => !b.open(key, nonce, sealed))) {
      throw new Error(`${backend.name}: not interoperable`);
    }
    Deno.bench(
      {
        name: `seal ${size} B (${backend.name})`,
        group: `aead-seal-${size}`,
        baseline: backend.name === "native",
      },
      () => {
        backend.seal(key, nonce, packet, undefined, 16);
      },
    );
    Deno.bench(
      {
        name: `open ${size} B (${backend.name})`,
        group: `aead-open-${size}`,
        baseline: backend.name === "native",
      },
      () => {
        if (!backend.open(key, nonce, sealed)) throw new Error("open failed");
      },
    );
  }
}

const iPriv = generatePrivateKey(), rPriv = generatePrivateKey();
const initiator = staticIdentity(iPriv), responder = staticIdentity(rPriv);
const cookieTx = new CookieGenerator(publicKey(rPriv));
const cookieRx = new CookieChecker(publicKey(rPriv));
let wall = 1_700_000_000_000;

Deno.bench(
  { name: "full handshake (init + response + keys, both sides, with mac1)", group: "handshake" },
  () => {
    const hsI = new Handshake(initiator, responder.publicKey);
    const hsR = new Handshake(responder, initiator.publicKey);
    const init = createInitiation(hsI, 1, wall += 1000);
    cookieTx.addMacs(init.bytes, 0);
    if (!cookieRx.checkMac1(init.bytes)) throw new Error("mac1");
    const r = consumeInitiation(responder, init, () => hsR, 0, 0);
    if (!("hs" in r)) throw new Error("initiation rejected");
    const resp = createResponse(hsR, 2)!;
    if (!consumeResponse(hsI, resp)) throw new Error("response rejected");
    if (!deriveSessionKeys(hsI) || !deriveSessionKeys(hsR)) throw new Error("keys");
  },
);
