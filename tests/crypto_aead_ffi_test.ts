/**
 * The libcrypto (OpenSSL EVP through Deno FFI) ChaCha20-Poly1305 backend against the RFC 8439 vector and the
 * noble reference, and the backend selection. Without a loadable libcrypto these tests are declared ignored
 * with a printed reason, and fail in CI (WGEDGE_REQUIRE_INTEROP=1), where openssl is installed.
 *
 * Run as a program (`deno run`) this file prints the name of the backend `aead()` picks; the permission test
 * uses that to see what happens without --allow-ffi.
 */
import { assert, assertEquals, assertThrows } from "./helpers/assert.ts";
import { fromHex, toHex } from "../src/util/bytes.ts";
import {
  aead,
  AEAD_BACKEND_NAMES,
  aeadAvailability,
  type AeadBackend,
  aeadBackends,
  backendPassesVector,
  chooseAeadBackend,
  counterNonce,
  nobleAead,
  RFC8439_VECTOR,
} from "../src/crypto/aead.ts";
import { probeLibcryptoAead } from "../src/crypto/aead_libcrypto.ts";
import { SlabAllocator } from "../src/util/slab.ts";
import { seededRandom } from "../src/util/random.ts";
import { capabilityTest } from "./helpers/interop.ts";

if (import.meta.main) {
  console.log(aead().name);
  Deno.exit(0);
}

const probe = probeLibcryptoAead();

/** A test of the libcrypto backend: declared ignored with a reason when it cannot load, failed instead in CI. */
function libcryptoTest(name: string, fn: (backend: AeadBackend) => void | Promise<void>): void {
  capabilityTest(
    { name: `libcrypto AEAD: ${name}`, fn: () => fn(probe.backend!) },
    probe.backend ? null : `libcrypto: ${probe.reason}`,
  );
}

const v = RFC8439_VECTOR;

/** A copy of `bytes` at an odd offset inside a larger buffer, to prove views are passed with their offset. */
function atOffset(bytes: Uint8Array, offset = 7): Uint8Array {
  const big = new Uint8Array(offset + bytes.length + 5).fill(0xee);
  big.set(bytes, offset);
  return big.subarray(offset, offset + bytes.length);
}

libcryptoTest(
  "seal into a caller's buffer and open in place give the vector; a forged tag is still refused",
  (b) => {
    const key = fromHex(v.key), nonce = fromHex(v.nonce), aad = fromHex(v.aad), pt = fromHex(v.plaintext);
    // seal: the result is a view of `into` after the header room; a too small `into` is ignored.
    const into = new Uint8Array(16 + pt.length + 16 + 9).fill(0xaa);
    const sealed = b.seal(key, nonce, pt, aad, 16, into);
    assertEquals(sealed.buffer, into.buffer);
    assertEquals(toHex(sealed.subarray(16)), v.sealed);
    assertEquals(toHex(b.seal(key, nonce, pt, aad, 0, new Uint8Array(4))), v.sealed);
    // open in place: the plaintext overwrites the ciphertext at the same start, the tag bytes are untouched.
    const wire = atOffset(fromHex(v.sealed), 8);
    const opened = b.open(key, nonce, wire, aad, wire);
    assertEquals(opened, pt);
    assertEquals(opened!.buffer, wire.buffer);
    assertEquals(opened!.byteOffset, wire.byteOffset);
    assertEquals(toHex(wire.subarray(pt.length)), v.sealed.slice(-32), "the tag stays");
    const forged = fromHex(v.sealed);
    forged[forged.length - 1] ^= 1;
    assertEquals(b.open(key, nonce, forged, aad, forged), null);
  },
);

libcryptoTest("RFC 8439 2.8.2 vector both ways, also from views at odd offsets", (b) => {
  assert(backendPassesVector(b), "backendPassesVector");
  const key = fromHex(v.key), nonce = fromHex(v.nonce), aad = fromHex(v.aad), pt = fromHex(v.plaintext);
  assertEquals(toHex(b.seal(key, nonce, pt, aad)), v.sealed);
  assertEquals(b.open(key, nonce, fromHex(v.sealed), aad), pt);
  const sealed = b.seal(atOffset(key), atOffset(nonce, 3), atOffset(pt, 1), atOffset(aad, 9));
  assertEquals(toHex(sealed), v.sealed, "seal from offset views");
  assertEquals(b.open(atOffset(key, 5), atOffset(nonce), atOffset(fromHex(v.sealed), 13), atOffset(aad)), pt);
});

libcryptoTest("forged tag, ciphertext, AAD, nonce or key are rejected with null, never a throw", (b) => {
  const key = fromHex(v.key), nonce = fromHex(v.nonce), aad = fromHex(v.aad), pt = fromHex(v.plaintext);
  const sealed = fromHex(v.sealed);
  const flipped = (bytes: Uint8Array, i: number) => {
    const c = bytes.slice();
    c[i] ^= 0x01;
    return c;
  };
  assertEquals(b.open(key, nonce, flipped(sealed, sealed.length - 1), aad), null, "tag");
  assertEquals(b.open(key, nonce, flipped(sealed, sealed.length - 16), aad), null, "tag first byte");
  assertEquals(b.open(key, nonce, flipped(sealed, 0), aad), null, "ciphertext first byte");
  assertEquals(b.open(key, nonce, flipped(sealed, 60), aad), null, "ciphertext middle");
  assertEquals(b.open(key, nonce, sealed, flipped(aad, 11)), null, "aad");
  assertEquals(b.open(key, nonce, sealed), null, "aad missing");
  assertEquals(b.open(key, nonce, sealed, fromHex("00")), null, "other aad");
  assertEquals(b.open(key, flipped(nonce, 11), sealed, aad), null, "nonce");
  assertEquals(b.open(flipped(key, 0), nonce, sealed, aad), null, "key");
  assertEquals(b.open(key, nonce, sealed.subarray(0, sealed.length - 1), aad), null, "one byte short");
  assertEquals(b.open(key, nonce, sealed.subarray(0, 15), aad), null, "shorter than a tag");
  assertEquals(b.open(key, nonce, new Uint8Array(0), aad), null, "empty");
  assertEquals(b.open(key, nonce, new Uint8Array(16), aad), null, "zero tag, no ciphertext");
  assertEquals(b.open(key.subarray(0, 31), nonce, sealed, aad), null, "31-byte key");
  assertEquals(b.open(key, nonce.subarray(0, 11), sealed, aad), null, "11-byte nonce");
  // A failed open leaves the context ready for the next packet.
  assertEquals(b.open(key, nonce, sealed, aad), pt, "genuine packet after the forgeries");
});

libcryptoTest("seal refuses keys and nonces of the wrong length instead of reading past them", (b) => {
  const key = fromHex(v.key), nonce = fromHex(v.nonce), pt = fromHex(v.plaintext);
  assertThrows(() => b.seal(key.subarray(0, 16), nonce, pt), "key");
  assertThrows(() => b.seal(new Uint8Array(33), nonce, pt), "key");
  assertThrows(() => b.seal(key, new Uint8Array(8), pt), "nonce");
  assertThrows(() => b.seal(key, new Uint8Array(24), pt), "nonce");
});

libcryptoTest("headerRoom: that many zero bytes, then the same ciphertext and tag", (b) => {
  const key = fromHex(v.key), nonce = fromHex(v.nonce), aad = fromHex(v.aad), pt = fromHex(v.plaintext);
  for (const room of [0, 1, 3, 16, 17, 64]) {
    const out = b.seal(key, nonce, pt, aad, room);
    assertEquals(out.length, room + v.sealed.length / 2, `room ${room}: length`);
    assertEquals(out.subarray(0, room), new Uint8Array(room), `room ${room}: zero`);
    assertEquals(toHex(out.subarray(room)), v.sealed, `room ${room}: ciphertext`);
    assertEquals(b.open(key, nonce, out.subarray(room), aad), pt, `room ${room}: opens`);
  }
});

libcryptoTest("empty plaintext: a bare tag equal to noble's, opening to an empty array", (b) => {
  const key = fromHex(v.key), nonce = fromHex(v.nonce), aad = fromHex(v.aad);
  for (const ad of [undefined, new Uint8Array(0), aad]) {
    const sealed = b.seal(key, nonce, new Uint8Array(0), ad);
    assertEquals(sealed, nobleAead.seal(key, nonce, new Uint8Array(0), ad));
    assertEquals(sealed.length, 16);
    const opened = b.open(key, nonce, sealed, ad);
    assert(opened !== null, "keepalive opens");
    assertEquals(opened.length, 0);
    assertEquals(
      b.open(key, nonce, nobleAead.seal(key, nonce, new Uint8Array(0), ad), ad),
      new Uint8Array(0),
    );
  }
  const withRoom = b.seal(key, nonce, new Uint8Array(0), undefined, 16);
  assertEquals(withRoom.subarray(0, 16), new Uint8Array(16));
  assertEquals(withRoom.subarray(16), nobleAead.seal(key, nonce, new Uint8Array(0)));
});

libcryptoTest("400 seeded random messages of 1..1500 bytes agree with noble both ways", (b) => {
  const rnd = seededRandom(8439);
  for (let i = 0; i < 400; i++) {
    const key = rnd(new Uint8Array(32));
    const len = 1 + (i * 373) % 1500;
    const pt = rnd(new Uint8Array(len));
    const aad = i % 3 === 0 ? undefined : rnd(new Uint8Array(i % 48));
    const nonce = counterNonce(i * 2_654_435_761 % 2 ** 53);
    const room = i % 4 === 0 ? 16 : 0;
    const ours = b.seal(key, nonce, pt, aad, room), ref = nobleAead.seal(key, nonce, pt, aad, room);
    assertEquals(ours, ref, `message ${i} (${len} bytes)`);
    assertEquals(b.open(key, nonce, ref.subarray(room), aad), pt, `message ${i}: open noble's`);
    assertEquals(nobleAead.open(key, nonce, ours.subarray(room), aad), pt, `message ${i}: noble opens ours`);
  }
});

libcryptoTest("keys and nonces change between calls: every packet is keyed afresh", (b) => {
  const rnd = seededRandom(7);
  const keys = [rnd(new Uint8Array(32)), rnd(new Uint8Array(32)), rnd(new Uint8Array(32))];
  const pt = rnd(new Uint8Array(200));
  const sealedBy: Uint8Array[] = [];
  for (let i = 0; i < 60; i++) {
    const key = keys[i % 3], nonce = counterNonce(Math.floor(i / 3));
    const sealed = b.seal(key, nonce, pt);
    assertEquals(sealed, nobleAead.seal(key, nonce, pt), `seal ${i}`);
    sealedBy.push(sealed);
    // Interleave opens of earlier packets (the other context) and one with the wrong key.
    if (i >= 2) {
      const j = i - 2;
      assertEquals(b.open(keys[j % 3], counterNonce(Math.floor(j / 3)), sealedBy[j]), pt, `open ${j}`);
      assertEquals(
        b.open(keys[(j + 1) % 3], counterNonce(Math.floor(j / 3)), sealedBy[j]),
        null,
        `wrong key ${j}`,
      );
    }
  }
  // Same key, consecutive counters: different ciphertexts, each opening only under its own nonce.
  const a = b.seal(keys[0], counterNonce(100), pt), c = b.seal(keys[0], counterNonce(101), pt);
  assert(toHex(a) !== toHex(c), "nonce changes the ciphertext");
  assertEquals(b.open(keys[0], counterNonce(101), a), null);
  assertEquals(b.open(keys[0], counterNonce(100), a), pt);
});

libcryptoTest("results stay valid: later calls never overwrite what an earlier call returned", (b) => {
  const rnd = seededRandom(99);
  const key = rnd(new Uint8Array(32));
  const kept: Array<{ pt: Uint8Array; opened: Uint8Array; sealed: Uint8Array; sealedCopy: Uint8Array }> = [];
  // 300 packets of 1420 bytes cross several 64 KiB slabs.
  for (let i = 0; i < 300; i++) {
    const pt = rnd(new Uint8Array(1420));
    const sealed = b.seal(key, counterNonce(i), pt, undefined, 16);
    const opened = b.open(key, counterNonce(i), sealed.subarray(16));
    assert(opened !== null, `packet ${i} opens`);
    kept.push({ pt, opened, sealed, sealedCopy: sealed.slice() });
  }
  kept.forEach((k, i) => {
    assertEquals(k.opened, k.pt, `plaintext ${i} intact`);
    assertEquals(k.sealed, k.sealedCopy, `sealed ${i} intact`);
  });
});

Deno.test("SlabAllocator: disjoint zero-filled regions; large requests get their own buffer", () => {
  const slabs = new SlabAllocator();
  const regions: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) {
    const r = slabs.alloc(1 + (i * 131) % 2000);
    assert(r.every((x) => x === 0), `region ${i} zero`);
    r.fill(i & 0xff);
    regions.push(r);
  }
  regions.forEach((r, i) => assert(r.every((x) => x === (i & 0xff)), `region ${i} untouched by later ones`));
  const big = slabs.alloc(SlabAllocator.MAX_POOLED + 1);
  assertEquals(big.byteOffset, 0);
  assertEquals(big.buffer.byteLength, SlabAllocator.MAX_POOLED + 1);
  assertEquals(slabs.alloc(0).length, 0);
});

libcryptoTest("selection prefers libcrypto; WGEDGE_AEAD names force one; unknown names warn", (b) => {
  assertEquals(aeadBackends()[0], b);
  assertEquals(aeadBackends().map((x) => x.name), ["libcrypto", "native", "noble"]);
  assertEquals(aeadAvailability().map((a) => a.name), [...AEAD_BACKEND_NAMES]);
  assertEquals(chooseAeadBackend(undefined), { backend: b });
  assertEquals(chooseAeadBackend(""), { backend: b });
  assertEquals(chooseAeadBackend("libcrypto"), { backend: b });
  assertEquals(chooseAeadBackend("native").backend.name, "native");
  assertEquals(chooseAeadBackend("noble"), { backend: nobleAead });
  const bogus = chooseAeadBackend("openssl");
  assertEquals(bogus.backend, b);
  assert(bogus.warning?.includes("libcrypto|native|noble"), bogus.warning);
  const forced = Deno.env.get("WGEDGE_AEAD");
  if (!forced) assertEquals(aead(), b, "aead() picks libcrypto");
});

/** Runs this file as a program (its import.meta.main block) without --allow-ffi; it prints the chosen backend. */
async function runWithoutFfi(wgedgeAead: string): Promise<{ stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-env",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      new URL(import.meta.url).pathname,
    ],
    env: { WGEDGE_AEAD: wgedgeAead, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout), stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, `child failed: ${stderr}`);
  return { stdout, stderr };
}

Deno.test({
  name: "without --allow-ffi the default is native, silently (no prompt, no throw, no warning)",
  sanitizeResources: false,
  async fn() {
    const { stdout, stderr } = await runWithoutFfi("");
    assertEquals(stdout.trim(), "native");
    assert(!stderr.includes("[crypto]"), `no warning expected, got: ${stderr}`);
  },
});

Deno.test({
  name: "a forced backend that is unavailable falls back with exactly one warning",
  sanitizeResources: false,
  async fn() {
    const { stdout, stderr } = await runWithoutFfi("libcrypto");
    assertEquals(stdout.trim(), "native");
    const warnings = stderr.split("\n").filter((l) => l.includes("WGEDGE_AEAD=libcrypto"));
    assertEquals(warnings.length, 1, stderr);
    assert(warnings[0].includes("FFI permission"), warnings[0]);
  },
});
