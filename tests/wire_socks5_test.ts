/** The SOCKS5 wire view (src/wire/socks5.ts): RFC 1928/1929 layouts, round trips and checked lengths. */
import { assert, assertEquals, assertThrows } from "./helpers/assert.ts";
import {
  encodeGreeting,
  encodeReply,
  encodeRequest,
  encodeSocksAddress,
  encodeUdpDatagram,
  encodeUserPass,
  greetingNeeded,
  parseGreeting,
  parseRequest,
  parseUdpDatagram,
  parseUserPass,
  requestNeeded,
  SOCKS_ATYP_DOMAIN,
  SOCKS_ATYP_IPV4,
  SOCKS_ATYP_IPV6,
  SOCKS_CMD_CONNECT,
  SOCKS_CMD_UDP_ASSOCIATE,
  userPassNeeded,
} from "../src/wire/socks5.ts";

Deno.test("socks5 wire: addresses of the three types encode as RFC 1928 §5 says", () => {
  assertEquals([...encodeSocksAddress("10.0.0.1", 80)], [SOCKS_ATYP_IPV4, 10, 0, 0, 1, 0, 80]);
  const v6 = encodeSocksAddress("[fd00::1]", 443);
  assertEquals(v6.length, 1 + 16 + 2);
  assertEquals(v6[0], SOCKS_ATYP_IPV6);
  assertEquals([v6[1], v6[2], v6[16], v6[17], v6[18]], [0xfd, 0x00, 0x01, 0x01, 0xbb]);
  const name = encodeSocksAddress("web.test", 8000);
  assertEquals([name[0], name[1]], [SOCKS_ATYP_DOMAIN, 8]);
  assertEquals(new TextDecoder().decode(name.subarray(2, 10)), "web.test");
  assertEquals([name[10], name[11]], [0x1f, 0x40]);
  assertThrows(() => encodeSocksAddress("", 1), "1..255 bytes");
  assertThrows(() => encodeSocksAddress("a".repeat(256), 1), "1..255 bytes");
});

Deno.test("socks5 wire: requests and replies round-trip; lengths come from the bytes seen", () => {
  for (const host of ["192.0.2.7", "2001:db8::5", "echo.test"]) {
    const req = encodeRequest(SOCKS_CMD_CONNECT, host, 7001);
    // A stream reader first reads 5 bytes, then learns the rest.
    assertEquals(requestNeeded(new Uint8Array(0)), 5);
    assertEquals(requestNeeded(req.subarray(0, 5)), req.length);
    const p = parseRequest(req)!;
    assertEquals([p.version, p.code, p.rsv, p.host, p.port], [5, SOCKS_CMD_CONNECT, 0, host, 7001]);
    for (let cut = 0; cut < req.length; cut++) assertEquals(parseRequest(req.subarray(0, cut)), null);
  }
  const reply = parseRequest(encodeReply(0, "0.0.0.0", 0))!;
  assertEquals([reply.code, reply.host, reply.port], [0, "0.0.0.0", 0]);
});

Deno.test("socks5 wire: malformed requests parse to null (unknown ATYP, empty or non-UTF-8 name)", () => {
  assertEquals(parseRequest(new Uint8Array([5, 1, 0, 9, 1, 2, 3, 4, 0, 80])), null);
  assertEquals(requestNeeded(new Uint8Array([5, 1, 0, 9, 1])), 5, "nothing more to read for an unknown ATYP");
  assertEquals(parseRequest(new Uint8Array([5, 1, 0, 3, 0, 0, 80])), null);
  assertEquals(parseRequest(new Uint8Array([5, 1, 0, 3, 2, 0xff, 0xfe, 0, 80])), null);
});

Deno.test("socks5 wire: greeting and RFC 1929 user/password with checked lengths", () => {
  const g = encodeGreeting([0, 2]);
  assertEquals(greetingNeeded(g.subarray(0, 1)), 2);
  assertEquals(greetingNeeded(g.subarray(0, 2)), 4);
  assertEquals(parseGreeting(g), { version: 5, methods: [0, 2] });
  assertEquals(parseGreeting(g.subarray(0, 3)), null);

  const up = encodeUserPass("alice", "pässword");
  assertEquals(userPassNeeded(up.subarray(0, 2)), 3 + 5);
  assertEquals(userPassNeeded(up.subarray(0, 8)), up.length);
  const p = parseUserPass(up)!;
  assertEquals(new TextDecoder().decode(p.user), "alice");
  assertEquals(new TextDecoder().decode(p.password), "pässword");
  assertEquals(parseUserPass(up.subarray(0, up.length - 1)), null);
  assertThrows(() => encodeUserPass("u", "x".repeat(256)), "at most 255 bytes");
});

Deno.test("socks5 wire: UDP request header (RFC 1928 §7) with FRAG, address and data", () => {
  const data = new TextEncoder().encode("ping");
  const d = encodeUdpDatagram("echo.test", 7001, data);
  assertEquals([d[0], d[1], d[2]], [0, 0, 0]);
  const p = parseUdpDatagram(d)!;
  assertEquals([p.frag, p.host, p.port, new TextDecoder().decode(p.data)], [0, "echo.test", 7001, "ping"]);
  const frag = d.slice();
  frag[2] = 1;
  assertEquals(parseUdpDatagram(frag)!.frag, 1);
  assertEquals(parseUdpDatagram(d.subarray(0, 6)), null, "cut inside the address");
  const v4 = parseUdpDatagram(encodeUdpDatagram("10.1.2.3", 53, new Uint8Array(0)))!;
  assertEquals([v4.host, v4.port, v4.data.length], ["10.1.2.3", 53, 0]);
  assert(parseRequest(encodeRequest(SOCKS_CMD_UDP_ASSOCIATE, "0.0.0.0", 0)) !== null);
});
