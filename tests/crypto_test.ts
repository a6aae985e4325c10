import { assert, assertEquals } from "./helpers/assert.ts";
import { fromHex, toHex } from "../src/util/bytes.ts";
import { hash, hmacBlake2s, kdf1, kdf2, kdf3, mac } from "../src/crypto/blake2s.ts";
import {
  backendPassesVector,
  counterNonce,
  nativeAead,
  nobleAead,
  RFC8439_VECTOR,
  xaeadOpen,
  xaeadSeal,
} from "../src/crypto/aead.ts";
import {
  clampPrivateKey,
  decodeKey,
  dh,
  encodeKey,
  nativeX25519,
  publicKey,
  WeakKeyError,
  x25519BackendPassesVector,
} from "../src/crypto/x25519.ts";
import { nobleX25519 } from "../src/crypto/x25519_noble.ts";
import { tai64n, tai64nAfter } from "../src/crypto/tai64n.ts";
import { seededRandom } from "../src/util/random.ts";

const enc = new TextEncoder();

Deno.test("BLAKE2s-256('abc') matches RFC 7693 appendix B", () => {
  assertEquals(
    toHex(hash(enc.encode("abc"))),
    "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
  );
});

Deno.test("MAC is keyed BLAKE2s with a 16-byte output; HMAC uses a 64-byte block", () => {
  assertEquals(mac(new Uint8Array(32), enc.encode("x")).length, 16);
  // HMAC definition check: H((K^opad) || H((K^ipad) || m)) with a short key zero-padded to 64 bytes.
  const key = enc.encode("key"), msg = enc.encode("The quick brown fox");
  const k = new Uint8Array(64);
  k.set(key);
  const ipad = k.map((b) => b ^ 0x36), opad = k.map((b) => b ^ 0x5c);
  assertEquals(hmacBlake2s(key, msg), hash(opad, hash(ipad, msg)));
});

Deno.test("KDF1..3 follow the whitepaper chain t1 = HMAC(t0, 1), t2 = HMAC(t0, t1 || 2), ...", () => {
  const key = fromHex("00".repeat(31) + "01"), input = enc.encode("input");
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, Uint8Array.of(1));
  const t2 = hmacBlake2s(t0, new Uint8Array([...t1, 2]));
  const t3 = hmacBlake2s(t0, new Uint8Array([...t2, 3]));
  assertEquals(kdf1(key, input), t1);
  assertEquals(kdf2(key, input), [t1, t2]);
  assertEquals(kdf3(key, input), [t1, t2, t3]);
});

for (const backend of [nativeAead, nobleAead]) {
  Deno.test(`AEAD ${backend.name}: RFC 8439 2.8.2 vector, forged tag rejected`, () => {
    assert(backendPassesVector(backend), "vector reproduced");
    const v = RFC8439_VECTOR;
    const sealed = backend.seal(fromHex(v.key), fromHex(v.nonce), fromHex(v.plaintext), fromHex(v.aad));
    assertEquals(toHex(sealed), v.sealed);
    const wrongAad = backend.open(fromHex(v.key), fromHex(v.nonce), sealed, fromHex("00"));
    assertEquals(wrongAad, null);
    assertEquals(backend.open(fromHex(v.key), fromHex(v.nonce), sealed.subarray(0, 10)), null, "short input");
  });
}

Deno.test("AEAD backends agree on 300 random messages (0..1500 bytes, with and without AAD)", () => {
  const rnd = seededRandom(42);
  for (let i = 0; i < 300; i++) {
    const key = rnd(new Uint8Array(32));
    const len = (i * 37) % 1501;
    const pt = rnd(new Uint8Array(len));
    const aad = i % 2 ? rnd(new Uint8Array(i % 40)) : undefined;
    const nonce = counterNonce(i * 1_000_003);
    const a = nativeAead.seal(key, nonce, pt, aad), b = nobleAead.seal(key, nonce, pt, aad);
    assertEquals(a, b, `message ${i}`);
    assertEquals(nobleAead.open(key, nonce, a, aad), pt);
    assertEquals(nativeAead.open(key, nonce, b, aad), pt);
  }
});

Deno.test("counterNonce: 4 zero bytes then the 64-bit little-endian counter", () => {
  assertEquals(toHex(counterNonce(1)), "000000000100000000000000");
  assertEquals(toHex(counterNonce(0x1_0000_0002)), "000000000200000001000000");
});

Deno.test("XChaCha20-Poly1305 matches draft-irtf-cfrg-xchacha-03 A.3.1", () => {
  const key = fromHex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const nonce = fromHex("404142434445464748494a4b4c4d4e4f5051525354555657");
  const aad = fromHex("50515253c0c1c2c3c4c5c6c7");
  const pt = fromHex(RFC8439_VECTOR.plaintext);
  const expected = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb" +
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452" +
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9" +
    "21f9664c97637da9768812f615c68b13b52e" + "c0875924c1c7987947deafd8780acf49";
  const sealed = xaeadSeal(key, nonce, pt, aad);
  assertEquals(toHex(sealed), expected);
  assertEquals(xaeadOpen(key, nonce, sealed, aad), pt);
  sealed[0] ^= 1;
  assertEquals(xaeadOpen(key, nonce, sealed, aad), null);
});

for (const backend of [nativeX25519, nobleX25519]) {
  Deno.test(`X25519 ${backend.name}: RFC 7748 6.1 vector, agrees with the other backend, low order rejected`, () => {
    assert(x25519BackendPassesVector(backend), "vector reproduced");
    const rnd = seededRandom(9);
    for (let i = 0; i < 20; i++) {
      const a = clampPrivateKey(rnd(new Uint8Array(32))), b = clampPrivateKey(rnd(new Uint8Array(32)));
      const pb = nobleX25519.publicKey(b);
      assertEquals(backend.publicKey(a), nobleX25519.publicKey(a));
      assertEquals(backend.sharedSecret(a, pb), nobleX25519.sharedSecret(b, backend.publicKey(a)));
    }
    let rejected = false;
    try {
      const out = backend.sharedSecret(clampPrivateKey(rnd(new Uint8Array(32))), new Uint8Array(32));
      rejected = out.every((x) => x === 0);
    } catch {
      rejected = true;
    }
    assert(rejected, "low-order point gives an error or the all-zero secret that dh() rejects");
  });
}

Deno.test("X25519 matches RFC 7748 section 6.1 (Alice and Bob)", () => {
  const a = fromHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const b = fromHex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  assertEquals(toHex(publicKey(a)), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  assertEquals(toHex(publicKey(b)), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  assertEquals(toHex(dh(a, publicKey(b))), k);
  assertEquals(toHex(dh(b, publicKey(a))), k);
});

Deno.test("X25519 rejects an all-zero shared secret (low-order point)", () => {
  const a = fromHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  let threw = false;
  try {
    dh(a, new Uint8Array(32)); // the point u=0 has low order
  } catch (e) {
    threw = e instanceof WeakKeyError;
  }
  assert(threw, "WeakKeyError thrown");
});

Deno.test("keys: clamping as wg genkey does; base64 decoding rejects bad input without echoing it", () => {
  const k = clampPrivateKey(new Uint8Array(32).fill(0xff));
  assertEquals(k[0], 0xf8);
  assertEquals(k[31], 0x7f);
  const key = encodeKey(k);
  assertEquals(decodeKey(key), k);
  for (const bad of ["", "abc", key.slice(0, 43), key + "A", key.replace(/.$/, "x")]) {
    let msg = "";
    try {
      decodeKey(bad, "PrivateKey");
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.startsWith("PrivateKey: expected 44 characters"), `rejected ${JSON.stringify(bad)}: ${msg}`);
    assert(!bad || !msg.includes(bad), "message never echoes the key");
  }
});

Deno.test("TAI64N: 2^62 + 10 + seconds, big-endian; nanoseconds whitened; ordering", () => {
  const t = tai64n(1_700_000_000_123);
  assertEquals(toHex(t.subarray(0, 8)), (2n ** 62n + 10n + 1_700_000_000n).toString(16).padStart(16, "0"));
  const nanos = new DataView(t.buffer).getUint32(8, false);
  assertEquals(nanos & 0xffffff, 0, "low 24 bits zeroed");
  assert(tai64nAfter(tai64n(1_700_000_001_000), t));
  assert(!tai64nAfter(t, t));
});

Deno.test("AEAD seal with header room: the same ciphertext after the reserved bytes, both backends", () => {
  const v = RFC8439_VECTOR;
  for (const backend of [nativeAead, nobleAead]) {
    const out = backend.seal(fromHex(v.key), fromHex(v.nonce), fromHex(v.plaintext), fromHex(v.aad), 16);
    assertEquals(out.subarray(0, 16), new Uint8Array(16), `${backend.name}: room left zero`);
    assertEquals(toHex(out.subarray(16)), v.sealed, `${backend.name}: ciphertext after the room`);
  }
});
