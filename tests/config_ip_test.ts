import { assert, assertEquals } from "./helpers/assert.ts";
import {
  formatHostPort,
  formatIp,
  isHostname,
  normalizeIp,
  parseHostPort,
  parseIp,
  parsePrefix,
  prefixContains,
} from "../src/config/ip.ts";

Deno.test("ip: IPv4 parses exactly four decimal octets", () => {
  assertEquals(parseIp("10.0.0.2"), new Uint8Array([10, 0, 0, 2]));
  assertEquals(parseIp("255.255.255.255"), new Uint8Array([255, 255, 255, 255]));
  assertEquals(parseIp("0.0.0.0"), new Uint8Array(4));
  for (
    const bad of [
      "10.0.0.300",
      "10.0.0",
      "10.0.0.1.2",
      "010.0.0.1",
      "10.0.0.-1",
      "10..0.1",
      "a.b.c.d",
      "1e1.0.0.1",
      " 10.0.0.1",
      "10.0.0.1 ",
      "",
    ]
  ) {
    assertEquals(parseIp(bad), undefined, bad);
  }
});

Deno.test("ip: IPv6 parse and RFC 5952 canonical form", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["FD00::0002", "fd00::2"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of two equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group is not compressed
    ["1::", "1::"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::ffff:10.0.0.1", "::ffff:10.0.0.1"],
    ["::ffff:0a00:0001", "::ffff:10.0.0.1"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["fe80:0:0:0:0:0:0:0", "fe80::"],
  ];
  for (const [input, canonical] of cases) assertEquals(normalizeIp(input), canonical, input);
  for (
    const bad of [
      ":",
      ":::",
      "1:::2",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "12345::",
      "g::1",
      ":1::",
      "1::2:",
      "fe80::1%eth0",
      "[::1]",
      "::ffff:10.0.0.300",
      "::10.0.0.1:1",
    ]
  ) {
    assertEquals(parseIp(bad), undefined, bad);
  }
});

Deno.test("ip: formatIp round-trips random addresses", () => {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(16);
    // Mostly-zero groups exercise the compression choices.
    for (let g = 0; g < 8; g++) if (next() % 3 === 0) b[2 * g + (next() & 1)] = next() & 0xff;
    const text = formatIp(b);
    assertEquals(parseIp(text), b, text);
    assertEquals(normalizeIp(text), text);
  }
});

Deno.test("ip: parsePrefix lengths, bare addresses and masking", () => {
  assertEquals(parsePrefix("10.0.0.2/24"), { address: "10.0.0.2", prefix: 24 });
  assertEquals(parsePrefix("10.0.0.2"), { address: "10.0.0.2", prefix: 32 });
  assertEquals(parsePrefix("fd00::2"), { address: "fd00::2", prefix: 128 });
  assertEquals(parsePrefix("10.0.0.7/24", { maskHostBits: true }), { address: "10.0.0.0", prefix: 24 });
  assertEquals(parsePrefix("fd00::ffff/113", { maskHostBits: true }), { address: "fd00::8000", prefix: 113 });
  assertEquals(parsePrefix("0.0.0.0/0"), { address: "0.0.0.0", prefix: 0 });
  assertEquals(parsePrefix("10.0.0.2", { allowBareAddress: false }), undefined);
  for (
    const bad of [
      "10.0.0.2/33",
      "fd00::/129",
      "10.0.0.2/",
      "10.0.0.2/024",
      "10.0.0.2/-1",
      "/24",
      "10.0.0.2/2/4",
    ]
  ) {
    assertEquals(parsePrefix(bad), undefined, bad);
  }
  assert(prefixContains({ address: "10.0.0.0", prefix: 8 }, "10.200.1.1"));
  assert(!prefixContains({ address: "10.0.0.0", prefix: 8 }, "11.0.0.1"));
  assert(prefixContains({ address: "::", prefix: 0 }, "fd00::1"));
  assert(!prefixContains({ address: "0.0.0.0", prefix: 0 }, "fd00::1"));
});

Deno.test("ip: host names and host:port", () => {
  assert(isHostname("vpn.example.com"));
  assert(isHostname("a-b.c0.io."));
  assert(!isHostname("-a.com"));
  assert(!isHostname("a_b.com"));
  assert(!isHostname("10.0.0.300"));
  assert(!isHostname("a".repeat(64) + ".com"));

  assertEquals(parseHostPort("VPN.Example.com:51820"), {
    ok: true,
    value: { host: "vpn.example.com", port: 51820 },
  });
  assertEquals(parseHostPort("1.2.3.4:1"), { ok: true, value: { host: "1.2.3.4", port: 1 } });
  assertEquals(parseHostPort("[2001:DB8::0001]:443"), {
    ok: true,
    value: { host: "2001:db8::1", port: 443 },
  });
  assertEquals(parseHostPort(":8081", { allowEmptyHost: true }), {
    ok: true,
    value: { host: "", port: 8081 },
  });
  for (
    const bad of [
      "host",
      "host:",
      "host:0",
      "host:65536",
      "host:080",
      "fd00::1:51820",
      "[fd00::1]",
      "[fd00::1]51820",
      "[fe80::1%eth0]:1",
      "1.2.3.400:5",
      ":1",
      "a b:1",
    ]
  ) {
    assert(!parseHostPort(bad).ok, bad);
  }
  assertEquals(formatHostPort({ host: "fd00::1", port: 5 }), "[fd00::1]:5");
  assertEquals(formatHostPort({ host: "1.2.3.4", port: 5 }), "1.2.3.4:5");
});
