import { assert, assertEquals } from "./helpers/assert.ts";
import {
  deobfuscate,
  Keystream,
  looksVanilla,
  OBFS_MAX_RANDOM_SUFFIX,
  OBFS_NONCE_SIZE,
  obfsKey,
  obfuscate,
  obfuscationTransform,
} from "../src/wireguard/obfs.ts";
import { fromHex, toHex } from "../src/util/bytes.ts";
import { cryptoRandom, seededRandom } from "../src/util/random.ts";
import { CookieReplyMessage, InitiationMessage, ResponseMessage } from "../src/wire/wireguard.ts";

const KEY = obfsKey("test");

Deno.test("obfs: K = SHA-256(password) vector", () => {
  assertEquals(toHex(KEY), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
});

Deno.test("obfs: keystream blocks match the reference vectors", () => {
  const ks = new Keystream(KEY, fromHex("000102030405060708090a0b0c0d0e0f"));
  assertEquals(toHex(ks.next()), "a706e567fd6aef4e");
  assertEquals(toHex(ks.next()), "50d27d488f88746e");
  assertEquals(toHex(ks.next()), "7e1706430bee9a83");
  const nonce = new Uint8Array(16);
  nonce[0] = 0x47;
  nonce[1] = 0x12;
  // Raw block 1 is 0501f8277a0cd7fb: its header bits would look vanilla, so the tweak applies.
  assertEquals(toHex(new Keystream(KEY, nonce).next()), "d769f8277a0cd7fb");
});

function sampleMessages(rand: (b: Uint8Array) => Uint8Array): Uint8Array[] {
  const init = InitiationMessage.create();
  rand(init.bytes.subarray(4, 132));
  const initWithMac2 = InitiationMessage.create();
  rand(initWithMac2.bytes.subarray(4));
  const resp = ResponseMessage.create();
  rand(resp.bytes.subarray(4, 76));
  const respWithMac2 = ResponseMessage.create();
  rand(respWithMac2.bytes.subarray(4));
  const cookie = CookieReplyMessage.create();
  rand(cookie.bytes.subarray(4));
  const out = [init.bytes, initWithMac2.bytes, resp.bytes, respWithMac2.bytes, cookie.bytes];
  for (const len of [32, 33, 100, 255, 256, 257, 1400, 1452]) {
    const t = rand(new Uint8Array(len));
    t.set([4, 0, 0, 0]);
    out.push(t);
  }
  return out;
}

Deno.test("obfs: every message type round-trips; nothing obfuscated looks vanilla", () => {
  const rand = seededRandom(7);
  for (let round = 0; round < 50; round++) {
    for (const msg of sampleMessages(rand)) {
      const wire = obfuscate(msg, KEY, rand);
      assert(!looksVanilla(wire), `type ${msg[0]} len ${msg.length} looks vanilla after obfuscation`);
      const back = deobfuscate(wire.slice(), KEY);
      assert(back !== null && back.obfuscated, `type ${msg[0]} len ${msg.length} did not decode`);
      assertEquals(toHex(back.message), toHex(msg), `type ${msg[0]} len ${msg.length}`);
    }
  }
});

Deno.test("obfs: lengths and overhead as specified", () => {
  const rand = cryptoRandom;
  const [init, , resp, , cookie] = sampleMessages(rand);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const w = obfuscate(init, KEY, rand);
    const r = w.length - 148 - OBFS_NONCE_SIZE;
    assert(r >= 0 && r < OBFS_MAX_RANDOM_SUFFIX, `initiation padding ${r}`);
    seen.add(r);
    assert(obfuscate(resp, KEY, rand).length >= 92 + 16);
    assert(obfuscate(cookie, KEY, rand).length >= 64 + 16);
  }
  assert(seen.size > 50, `padding length should vary (${seen.size} distinct)`);
  const big = rand(new Uint8Array(1000));
  big.set([4, 0, 0, 0]);
  const w = obfuscate(big, KEY, rand);
  assertEquals(w.length, 1000, "no overhead on transports >= 256 bytes");
  assertEquals(toHex(w.subarray(16)), toHex(big.subarray(16)), "only the 16-byte header is XORed");
  const small = rand(new Uint8Array(64));
  small.set([4, 0, 0, 0]);
  assertEquals(obfuscate(small, KEY, rand).length, 80, "short transports carry a 16-byte nonce");
});

Deno.test("obfs: vanilla and short datagrams pass through untouched", () => {
  const rand = seededRandom(3);
  for (const msg of sampleMessages(rand)) {
    const copy = msg.slice();
    const r = deobfuscate(copy, KEY);
    assert(r !== null && !r.obfuscated);
    assertEquals(toHex(r.message), toHex(msg));
  }
  const short = new Uint8Array([9, 9, 9]);
  assertEquals(deobfuscate(short, KEY)?.message, short);
});

Deno.test("obfs: a wrong password or garbage is dropped, never thrown", () => {
  const rand = seededRandom(5);
  const other = obfsKey("not the password");
  let dropped = 0, total = 0;
  for (const msg of sampleMessages(rand)) {
    const wire = obfuscate(msg, KEY, rand);
    const r = deobfuscate(wire, other);
    total++;
    if (r === null) dropped++;
    else assert(toHex(r.message) !== toHex(msg));
  }
  assert(dropped > total / 2, `most wrong-key datagrams should be rejected (${dropped}/${total})`);
  for (let i = 0; i < 2000; i++) {
    const g = rand(new Uint8Array(1 + (i % 600)));
    const r = deobfuscate(g, KEY);
    if (r) assert(r.message.length <= g.length);
  }
});

Deno.test("obfs: PacketTransform encode/decode", () => {
  const t = obfuscationTransform("kisekimo, mahoumo, muryoudewaarimasen", seededRandom(9));
  for (const msg of sampleMessages(seededRandom(1))) {
    const wire = t.encode(msg);
    assert(!looksVanilla(wire));
    assertEquals(toHex(t.decode(wire)!), toHex(msg));
  }
  const garbage = new Uint8Array(200).fill(0xaa);
  assertEquals(t.decode(garbage), null);
});
