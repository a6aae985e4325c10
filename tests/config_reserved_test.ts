/** WARP reserved bytes in the config: `Reserved =` in [Peer] and the pipe form's fifth field, both spellings. */
import {
  assert,
  assertEquals,
  assertNotEquals,
  assertStringIncludes,
  assertThrows,
} from "./helpers/assert.ts";
import { formatWgQuick, wgConfigFingerprint } from "../src/config/canonical.ts";
import { parseWgQuick } from "../src/config/wgquick.ts";
import { parsePipeForm } from "../src/config/pipe.ts";
import { parseReserved } from "../src/config/reserved.ts";
import { ConfigErrors } from "../src/config/errors.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { seededRandom } from "../src/util/random.ts";

const rng = seededRandom(12);
const PRIV = encodeKey(generatePrivateKey(rng));
const PEER = encodeKey(publicKey(generatePrivateKey(rng)));

function ini(reservedLine: string, extra = ""): string {
  return `[Interface]\nPrivateKey = ${PRIV}\n${extra}\n[Peer]\nPublicKey = ${PEER}\nAllowedIPs = 0.0.0.0/0\n` +
    `Endpoint = 1.2.3.4:51820\n${reservedLine}\n`;
}

Deno.test("reserved: decimal, bracketed and base64 spellings give the same three bytes", () => {
  for (const text of ["1,2,3", " 1, 2 ,3 ", "[1, 2, 3]", "AQID"]) {
    const r = parseReserved(text);
    assert(r.ok, text);
    assertEquals(r.value, Uint8Array.of(1, 2, 3), text);
  }
  const big = parseReserved("255,0,128");
  assert(big.ok);
  assertEquals(big.value, Uint8Array.of(255, 0, 128));
  // sing-box's base64 of bytes 0xfb 0xff 0x01.
  const b64 = parseReserved("+/8B");
  assert(b64.ok);
  assertEquals(b64.value, Uint8Array.of(0xfb, 0xff, 0x01));
  // All zero is the whitepaper's value: no reserved bytes.
  for (const zero of ["0,0,0", "AAAA"]) {
    const z = parseReserved(zero);
    assert(z.ok);
    assertEquals(z.value, undefined);
  }
  for (
    const bad of ["1,2", "1,2,3,4", "256,0,0", "-1,2,3", "a,b,c", "AQ==", "AQIDBA==", "", "1.2.3", "1,,3"]
  ) {
    const r = parseReserved(bad);
    assert(!r.ok, bad);
  }
});

Deno.test("reserved: [Peer] Reserved is parsed, canonical and part of the fingerprint", () => {
  const a = parseWgQuick(ini("Reserved = 1,2,3"), "wg0.conf");
  const b = parseWgQuick(ini("reserved = AQID"), "other.conf");
  assertEquals(a.peers[0].reserved, Uint8Array.of(1, 2, 3));
  assertEquals(wgConfigFingerprint(a), wgConfigFingerprint(b));
  assertStringIncludes(formatWgQuick(a), "Reserved = 1,2,3\n");
  const none = parseWgQuick(ini(""), "n.conf");
  const zero = parseWgQuick(ini("Reserved = 0,0,0"), "z.conf");
  assertEquals(none.peers[0].reserved, undefined);
  assertEquals(wgConfigFingerprint(none), wgConfigFingerprint(zero));
  assertNotEquals(wgConfigFingerprint(none), wgConfigFingerprint(a));
  assert(!formatWgQuick(none).includes("Reserved"));
  // The canonical text parses back to the same config.
  assertEquals(parseWgQuick(formatWgQuick(a), "c").peers[0].reserved, Uint8Array.of(1, 2, 3));
});

Deno.test("reserved: bad values name the file, line and what was expected", () => {
  const e = assertThrows(() => parseWgQuick(ini("Reserved = 1,2,300"), "wg0.conf"));
  assert(e instanceof ConfigErrors);
  assertStringIncludes(e.message, "wg0.conf:8");
  assertStringIncludes(e.message, "Reserved");
  assertStringIncludes(e.message, "three bytes 0..255");
  const inIface = assertThrows(() =>
    parseWgQuick(`[Interface]\nPrivateKey = ${PRIV}\nReserved = 1,2,3\n`, "i.conf")
  );
  assertStringIncludes(inIface.message, "i.conf:3");
  assertStringIncludes(inIface.message, "inside a [Peer] section");
  const obfs = assertThrows(() => parseWgQuick(ini("Reserved = 1,2,3", "Obfs = pw"), "o.conf"));
  assertStringIncludes(obfs.message, "o.conf:8");
  assertStringIncludes(obfs.message, "no Reserved bytes on a tunnel with Obfs");
});

Deno.test("reserved: the pipe form's optional fifth field, same fingerprint as the INI", () => {
  const four = parsePipeForm(`${PRIV}|${PEER}|1.2.3.4:51820|10.0.0.2`, "WG_CONFIG");
  const five = parsePipeForm(`${PRIV}|${PEER}|1.2.3.4:51820|10.0.0.2|1,2,3`, "WG_CONFIG");
  const b64 = parsePipeForm(`${PRIV}|${PEER}|1.2.3.4:51820|10.0.0.2| AQID `, "WG_CONFIG");
  assertEquals(four.peers[0].reserved, undefined);
  assertEquals(five.peers[0].reserved, Uint8Array.of(1, 2, 3));
  assertEquals(wgConfigFingerprint(five), wgConfigFingerprint(b64));
  assertNotEquals(wgConfigFingerprint(four), wgConfigFingerprint(five));
  const asIni = parseWgQuick(formatWgQuick(five), "x");
  assertEquals(wgConfigFingerprint(asIni), wgConfigFingerprint(five));
  const e = assertThrows(() => parsePipeForm(`# c\n${PRIV}|${PEER}|1.2.3.4:51820|10.0.0.2|1,2`, "t.conf"));
  assertStringIncludes(e.message, "t.conf:2");
  assertStringIncludes(e.message, "Reserved (field 5)");
  assert(!e.message.includes(PRIV.slice(0, 16)));
});
