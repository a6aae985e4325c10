/**
 * DNS: the wire layer (queries, responses, compression, malformed input) and the stub resolver against small
 * in-process servers on loopback (the proof against a real server, dnsmasq behind wireguard-go, is
 * tests/dns_interop_test.ts).
 */
import { assert, assertEquals, assertRejects, assertThrows } from "./helpers/assert.ts";
import {
  addressesFor,
  buildQuery,
  DnsFormatError,
  encodeName,
  parseResponse,
  QTYPE_A,
  QTYPE_AAAA,
  QTYPE_CNAME,
  readName,
} from "../src/wire/dns.ts";
import { DnsResolver } from "../src/net/dns.ts";
import { createHostNet } from "../src/net/host.ts";
import { seededRandom } from "../src/util/random.ts";
import { parseIpv6 } from "../src/wire/ipv6.ts";
import { freePort } from "./helpers/ports.ts";

type Rr = { name: string; type: number; data: string };

/** A response to `query` (as a server builds it): flags, then the question echoed, then the records. */
function answer(query: Uint8Array, records: Rr[], opts: { rcode?: number; tc?: boolean; id?: number } = {}) {
  const q = parseQuestion(query);
  const parts: number[] = [];
  const u16 = (n: number) => parts.push(n >> 8, n & 0xff);
  u16(opts.id ?? ((query[0] << 8) | query[1]));
  u16(0x8180 | (opts.tc ? 0x0200 : 0) | (opts.rcode ?? 0));
  u16(1);
  u16(records.length);
  u16(0);
  u16(0);
  parts.push(...encodeName(q.name));
  u16(q.type);
  u16(1);
  for (const r of records) {
    // The owner as a compression pointer when it is the question's name (offset 12), else in full.
    if (r.name === q.name) parts.push(0xc0, 12);
    else parts.push(...encodeName(r.name));
    u16(r.type);
    u16(1);
    parts.push(0, 0, 0x0e, 0x10);
    const rdata = r.type === QTYPE_A
      ? r.data.split(".").map(Number)
      : r.type === QTYPE_AAAA
      ? [...parseIpv6(r.data)!]
      : [...encodeName(r.data)];
    u16(rdata.length);
    parts.push(...rdata);
  }
  return new Uint8Array(parts);
}

function parseQuestion(query: Uint8Array): { name: string; type: number } {
  const { name, next } = readName(query, 12);
  return { name, type: (query[next] << 8) | query[next + 1] };
}

/** A loopback DNS server (UDP and TCP on one port) answering from a function of the question. */
function fakeServer(
  respond: (
    q: { name: string; type: number },
    query: Uint8Array,
    transport: "udp" | "tcp",
  ) => Uint8Array | Uint8Array[] | null,
  hostname = "127.0.0.1",
  wantPort = 0,
) {
  // A reserved port (free for UDP and TCP): UDP's port 0 may pick one a parallel test holds for TCP.
  const udp = Deno.listenDatagram({ hostname, port: wantPort || freePort(), transport: "udp" });
  const port = (udp.addr as Deno.NetAddr).port;
  const tcp = Deno.listen({ hostname, port });
  const seen: string[] = [];
  const loops = [
    (async () => {
      try {
        for (;;) {
          const [query, from] = await udp.receive();
          const q = parseQuestion(query);
          seen.push(`udp ${q.name} ${q.type}`);
          const res = respond(q, query, "udp");
          for (const r of res === null ? [] : Array.isArray(res) ? res : [res]) await udp.send(r, from);
        }
      } catch { /* closed */ }
    })(),
    (async () => {
      try {
        for await (const conn of tcp) {
          const buf = new Uint8Array(2048);
          let got = 0;
          while (got < 2 || got < 2 + ((buf[0] << 8) | buf[1])) {
            const n = await conn.read(buf.subarray(got));
            if (n === null) break;
            got += n;
          }
          const query = buf.subarray(2, got);
          const q = parseQuestion(query);
          seen.push(`tcp ${q.name} ${q.type}`);
          const res = respond(q, query, "tcp") as Uint8Array | null;
          if (res) {
            const framed = new Uint8Array(2 + res.length);
            framed[0] = res.length >> 8;
            framed[1] = res.length & 0xff;
            framed.set(res, 2);
            await conn.write(framed);
          }
          conn.close();
        }
      } catch { /* closed */ }
    })(),
  ];
  return {
    port,
    seen,
    async close() {
      udp.close();
      tcp.close();
      await Promise.all(loops);
    },
  };
}

const host = createHostNet();

Deno.test("dns wire: a query encodes the name as labels with RD set; names round-trip through readName", () => {
  const q = buildQuery(0x1234, "Nas.Example.COM", QTYPE_AAAA);
  assertEquals([q[0], q[1], q[2], q[3], q[5]], [0x12, 0x34, 0x01, 0x00, 1]);
  assertEquals(readName(q, 12), { name: "nas.example.com", next: 12 + 17 });
  assertThrows(() => encodeName("a..b"), "1..63");
  assertThrows(() => encodeName(`${"x".repeat(64)}.com`), "1..63");
  assertThrows(() => encodeName(Array(130).fill("ab").join(".")), "longer than a DNS name");
});

Deno.test("dns wire: A, AAAA and a CNAME chain are read; compression pointers followed; loops rejected", () => {
  const q = buildQuery(7, "www.example.com", QTYPE_A);
  const res = parseResponse(answer(q, [
    { name: "www.example.com", type: QTYPE_CNAME, data: "edge.example.net" },
    { name: "edge.example.net", type: QTYPE_A, data: "192.0.2.10" },
    { name: "edge.example.net", type: QTYPE_A, data: "192.0.2.11" },
    { name: "other.example.net", type: QTYPE_A, data: "192.0.2.99" },
  ]));
  assertEquals(res.id, 7);
  assertEquals(res.question, { name: "www.example.com", type: QTYPE_A });
  assertEquals(addressesFor(res, "www.example.com", QTYPE_A), ["192.0.2.10", "192.0.2.11"]);
  const v6 = parseResponse(answer(buildQuery(8, "h.test", QTYPE_AAAA), [
    { name: "h.test", type: QTYPE_AAAA, data: "2001:db8::1" },
  ]));
  assertEquals(addressesFor(v6, "h.test", QTYPE_AAAA), ["2001:db8::1"]);
  // A pointer to itself.
  const loop = answer(q, [{ name: "www.example.com", type: QTYPE_A, data: "192.0.2.1" }]);
  const at = loop.length - 16; // the record's owner pointer
  loop[at] = 0xc0;
  loop[at + 1] = at;
  assertThrows(() => parseResponse(loop), "loop");
});

Deno.test("dns wire: 10 000 random and mutated responses throw only DnsFormatError (or parse)", () => {
  const rnd = seededRandom(53);
  const base = answer(buildQuery(9, "a.example", QTYPE_A), [
    { name: "a.example", type: QTYPE_CNAME, data: "b.example" },
    { name: "b.example", type: QTYPE_A, data: "198.51.100.1" },
  ]);
  let parsed = 0, rejected = 0;
  for (let i = 0; i < 10_000; i++) {
    const bytes = rnd(new Uint8Array(2));
    let buf: Uint8Array;
    if (i % 2) {
      buf = base.slice(0, bytes[0] % (base.length + 1));
      for (let k = 0; k < 1 + (bytes[1] % 4); k++) {
        buf[rnd(new Uint8Array(1))[0] % Math.max(1, buf.length)] ^= 0xff;
      }
    } else {
      buf = rnd(new Uint8Array(bytes[0] % 96));
      buf[2] |= 0x80;
    }
    try {
      addressesFor(parseResponse(buf), "a.example", QTYPE_A);
      parsed++;
    } catch (e) {
      assert(e instanceof DnsFormatError, `unexpected ${(e as Error).stack}`);
      rejected++;
    }
  }
  assertEquals(parsed + rejected, 10_000);
  assert(parsed > 0 && rejected > 0, `${parsed} parsed, ${rejected} rejected`);
});

Deno.test("dns resolver: A then AAAA answers, CNAMEs followed, search domains for short names", async () => {
  const srv = fakeServer((q, query) => {
    if (q.name === "www.example.com") {
      return answer(
        query,
        q.type === QTYPE_A ? [{ name: q.name, type: QTYPE_A, data: "192.0.2.5" }] : [
          { name: q.name, type: QTYPE_CNAME, data: "v6.example.com" },
          { name: "v6.example.com", type: QTYPE_AAAA, data: "2001:db8::5" },
        ],
      );
    }
    if (q.name === "nas.corp.test" && q.type === QTYPE_A) {
      return answer(query, [{ name: q.name, type: QTYPE_A, data: "10.9.0.7" }]);
    }
    if (q.name === "nas.corp.test") return answer(query, []);
    if (q.name === "refused.test") return answer(query, [], { rcode: 5 });
    return answer(query, [], { rcode: 3 });
  });
  try {
    const r = new DnsResolver(host, ["127.0.0.1"], {
      port: srv.port,
      searchDomains: ["other.test", "corp.test"],
    });
    assertEquals(await r.resolve("WWW.example.com"), ["192.0.2.5", "2001:db8::5"]);
    assertEquals(await r.resolve("nas"), ["10.9.0.7"]);
    assert(
      srv.seen.includes("udp nas.other.test 1") && srv.seen.includes("udp nas.corp.test 1"),
      srv.seen.join(),
    );
    assertEquals(await r.resolve("10.1.2.3"), ["10.1.2.3"], "literals are not looked up");
    assertEquals(await r.resolve("[2001:db8::9]"), ["2001:db8::9"]);
    await assertRejects(() => r.resolve("missing.example.com"), "no such name");
    await assertRejects(() => r.resolve("refused.test"), "answered REFUSED");
    await assertRejects(() => r.resolve("bad host name"), "not a valid host name");
  } finally {
    await srv.close();
  }
});

Deno.test("dns resolver: a truncated UDP answer is asked again over TCP", async () => {
  const many = Array.from({ length: 60 }, (_, i) => `10.20.${i >> 4}.${i}`);
  const srv = fakeServer((q, query, transport) => {
    if (q.type === QTYPE_AAAA) return answer(query, []);
    if (transport === "udp") return answer(query, [], { tc: true });
    return answer(query, many.map((data) => ({ name: q.name, type: QTYPE_A, data })));
  });
  try {
    const r = new DnsResolver(host, ["127.0.0.1"], { port: srv.port });
    assertEquals(await r.resolve("big.test"), many);
    assertEquals(r.stats.tcpRetries, 1);
    assert(srv.seen.includes("tcp big.test 1"));
  } finally {
    await srv.close();
  }
});

Deno.test("dns resolver: forged answers are ignored and counted; a silent first server is skipped", async () => {
  // Each answer is preceded by one with a wrong id (an off-path guess) and one for another name.
  const forger = fakeServer((q, query) => {
    const records = q.type === QTYPE_A ? [{ name: q.name, type: QTYPE_A, data: "192.0.2.8" }] : [];
    const forged = records.map((r) => ({ ...r, data: "6.6.6.6" }));
    const other = buildQuery((query[0] << 8) | query[1], "elsewhere.test", q.type);
    return [
      answer(query, forged, { id: query[0] === 0xde ? 0xbeef : 0xdead }),
      answer(other, forged),
      answer(query, records),
    ];
  });
  // Two servers on one port at two loopback addresses: the first never answers, the second does.
  const good = fakeServer((q, query) =>
    answer(query, q.type === QTYPE_A ? [{ name: q.name, type: QTYPE_A, data: "192.0.2.77" }] : [])
  );
  const silent = fakeServer(() => null, "127.0.0.2", good.port);
  try {
    const guarded = new DnsResolver(host, ["127.0.0.1"], { port: forger.port });
    assertEquals(await guarded.resolve("x.test"), ["192.0.2.8"]);
    assertEquals(guarded.stats.badResponses, 4, "two forged answers to each of A and AAAA");
    const quiet = new DnsResolver(host, ["127.0.0.2"], { port: good.port, timeoutMs: 200, attempts: 2 });
    await assertRejects(() => quiet.resolve("x.test"), "no answer within 200 ms");
    assertEquals(quiet.stats.timeouts, 4, "A and AAAA, two rounds each");
    const failover = new DnsResolver(host, ["127.0.0.2", "127.0.0.1"], { port: good.port, timeoutMs: 300 });
    assertEquals(await failover.resolve("x.test"), ["192.0.2.77"]);
    assert(failover.stats.timeouts >= 2, "the silent server was asked first (A and AAAA)");
  } finally {
    await Promise.all([silent.close(), forger.close(), good.close()]);
  }
});
