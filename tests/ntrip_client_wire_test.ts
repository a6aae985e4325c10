/**
 * The client-side NTRIP heads (src/wire/ntrip_client.ts) and GGA (src/wire/gga.ts): request bytes, reply
 * classification (also byte by byte, and bounded), the recorded real caster replies replayed over a loopback
 * socket, and GGA sentences against hand-computed vectors.
 */
import { assert, assertEquals, assertThrows } from "./helpers/assert.ts";
import {
  buildPullRequest,
  buildPushRequest,
  mountPath,
  NTRIP_REPLY_HEAD_MAX,
  ntripAgent,
  type NtripReplyHead,
  NtripReplyReader,
  type NtripRequestKind,
  type NtripVersion,
  skipBlankLine,
} from "../src/wire/ntrip_client.ts";
import { buildGga, ggaDegreesMinutes, ggaTime, nmeaChecksum } from "../src/wire/gga.ts";
import { hostNet } from "../src/net/host.ts";
import { writeAll } from "../src/net/pipe.ts";
import { within } from "./helpers/tcp.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const FIXTURES = new URL("./fixtures/ntrip/", import.meta.url);

function reply(text: string | Uint8Array, kind: NtripRequestKind = "pull", version: NtripVersion = 1) {
  const r = new NtripReplyReader({ kind, version });
  const head = r.push(typeof text === "string" ? enc.encode(text) : text);
  if (!head) throw new Error("head not complete");
  return head;
}

Deno.test("pull request v1: GET /MOUNT HTTP/1.0, User-Agent, Basic auth, blank line", () => {
  const req = dec.decode(buildPullRequest({
    version: 1,
    host: "caster.example",
    port: 2101,
    mount: "SRC",
    user: "rover",
    password: "roverpw",
    agent: ntripAgent("0.1.0"),
  }));
  assertEquals(
    req,
    "GET /SRC HTTP/1.0\r\nUser-Agent: NTRIP wgedge/0.1.0\r\n" +
      `Authorization: Basic ${btoa("rover:roverpw")}\r\n\r\n`,
  );
});

Deno.test("pull request v2: Host, Ntrip-Version, Ntrip-GGA, Connection: close; open mount has no auth", () => {
  const req = dec.decode(buildPullRequest({
    version: 2,
    host: "::1",
    port: 2101,
    mount: "/SRC",
    agent: "NTRIP wgedge/1",
    gga: "$GPGGA,x*00\r\n",
  }));
  assertEquals(
    req,
    "GET /SRC HTTP/1.1\r\nHost: [::1]:2101\r\nNtrip-Version: Ntrip/2.0\r\nUser-Agent: NTRIP wgedge/1\r\n" +
      "Ntrip-GGA: $GPGGA,x*00\r\nConnection: close\r\n\r\n",
  );
});

Deno.test("push request v1: SOURCE password /MOUNT, Source-Agent, STR", () => {
  const req = dec.decode(buildPushRequest({
    version: 1,
    host: "h",
    port: 2101,
    mount: "DST",
    password: "srcpw",
    agent: "NTRIP wgedge/1",
    str: "DST;RTCM 3.3",
  }));
  assertEquals(req, "SOURCE srcpw /DST\r\nSource-Agent: NTRIP wgedge/1\r\nSTR: DST;RTCM 3.3\r\n\r\n");
  assertEquals(mountPath("/A"), "/A");
});

Deno.test("push request v2: POST, Host, Basic auth, Ntrip-Version, chunked", () => {
  const req = dec.decode(buildPushRequest({
    version: 2,
    host: "caster.example",
    port: 80,
    mount: "DST",
    user: "u",
    password: "päss",
    agent: "NTRIP wgedge/1",
  }));
  const utf8 = String.fromCharCode(...enc.encode("u:päss"));
  assertEquals(
    req,
    "POST /DST HTTP/1.1\r\nHost: caster.example\r\nNtrip-Version: Ntrip/2.0\r\n" +
      `Authorization: Basic ${btoa(utf8)}\r\nUser-Agent: NTRIP wgedge/1\r\n` +
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
  );
});

Deno.test("a head line with CR or LF (header injection through a mount or password) is refused", () => {
  assertThrows(() =>
    buildPushRequest({ version: 1, host: "h", port: 1, mount: "M", password: "a\r\nX: y", agent: "a" })
  );
});

Deno.test("ICY 200 OK: accepted at once, data follows directly (str2str)", () => {
  const h = reply(new Uint8Array([...enc.encode("ICY 200 OK\r\n"), 0xd3, 0x00, 0x13]));
  assertEquals(h.outcome, "accepted");
  assertEquals(h.line, "ICY 200 OK");
  assertEquals([...h.body], [0xd3, 0x00, 0x13]);
  assertEquals(h.blankLineMayFollow, false);
  assertEquals(h.chunked, false);
});

Deno.test("ICY 200 OK with nothing after it yet: accepted (a VRS mount waits for GGA), blank line may follow", () => {
  const h = reply("ICY 200 OK\r\n");
  assertEquals(h.outcome, "accepted");
  assertEquals(h.body.length, 0);
  assert(h.blankLineMayFollow);
  assertEquals([...skipBlankLine(enc.encode("\r\nA"))], [0x41]);
  assertEquals([...skipBlankLine(enc.encode("\nA"))], [0x41]);
  assertEquals([...skipBlankLine(enc.encode("A"))], [0x41]);
});

Deno.test("HTTP/1.0 200 OK with headers: body after the blank line", () => {
  const h = reply("HTTP/1.0 200 OK\r\nServer: x\r\nContent-Type: gnss/data\r\n\r\nDATA", "pull", 2);
  assertEquals(h.outcome, "accepted");
  assertEquals(h.statusCode, 200);
  assertEquals(dec.decode(h.body), "DATA");
  assertEquals(h.headers.get("content-type"), "gnss/data");
});

Deno.test("HTTP/1.1 200 chunked: flagged chunked, Ntrip-Version read", () => {
  const h = reply(
    "HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    "pull",
    2,
  );
  assertEquals(h.outcome, "accepted");
  assert(h.chunked);
  assertEquals(h.ntripVersion, "Ntrip/2.0");
  assertEquals(dec.decode(h.body), "3\r\nabc\r\n");
});

Deno.test("not found: SOURCETABLE 200 OK, Content-Type gnss/sourcetable, 404", () => {
  assertEquals(reply("SOURCETABLE 200 OK\r\nServer: x\r\n").outcome, "not-found");
  assertEquals(
    reply("HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\nContent-Type: gnss/sourcetable\r\n\r\n", "pull", 2)
      .outcome,
    "not-found",
  );
  assertEquals(reply("HTTP/1.1 404 Not Found\r\n\r\n", "pull", 2).outcome, "not-found");
});

Deno.test("credentials: 401 and ERROR - Bad Password; status line kept for display", () => {
  const h = reply('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="/SRC"\r\n\r\n', "pull", 2);
  assertEquals(h.outcome, "unauthorized");
  assertEquals(h.line, "HTTP/1.1 401 Unauthorized");
  const e = reply("ERROR - Bad Password\r\n", "push", 1);
  assertEquals(e.outcome, "unauthorized");
  assertEquals(e.line, "ERROR - Bad Password");
});

Deno.test("a reply cut short by the caster's close is classified by its status line (str2str's 401)", () => {
  const r = new NtripReplyReader({ kind: "pull", version: 1 });
  assertEquals(r.push(enc.encode("HTTP/1.0 401 Unauthorized\r\n")), null, "no blank line yet");
  const h = r.finish();
  assertEquals(h?.outcome, "unauthorized");
  assertEquals(h?.line, "HTTP/1.0 401 Unauthorized");
  const cut = new NtripReplyReader({ kind: "push", version: 1 });
  cut.push(enc.encode("ERROR - Bad Pass"));
  assertEquals(cut.finish()?.outcome, "rejected", "a cut line is not a known reply");
  assertEquals(new NtripReplyReader({ kind: "pull", version: 1 }).finish(), null);
});

Deno.test("push: a line containing OK accepts; mount taken by line or 409; v2 without Ntrip-Version = v1", () => {
  assertEquals(reply("ICY 200 OK\r\n", "push", 1).outcome, "accepted");
  assertEquals(reply("OK\r\n", "push", 1).outcome, "accepted");
  assertEquals(reply("ERROR - Mount Point Taken or Invalid\r\n", "push", 1).outcome, "mount-taken");
  assertEquals(
    reply("HTTP/1.1 409 Conflict\r\nNtrip-Version: Ntrip/2.0\r\n\r\n", "push", 2).outcome,
    "mount-taken",
  );
  assertEquals(reply("HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\n\r\n", "push", 2).outcome, "accepted");
  assertEquals(reply("HTTP/1.1 200 OK\r\nServer: old\r\n\r\n", "push", 2).outcome, "fallback-v1");
  assertEquals(reply("ICY 200 OK\r\n", "push", 2).outcome, "fallback-v1");
  assertEquals(reply("HTTP/1.1 401 Unauthorized\r\n\r\n", "push", 2).outcome, "unauthorized");
});

Deno.test("anything else is rejected with its line; control bytes are not shown raw", () => {
  const h = reply("HTTP/1.1 503 Service Unavailable\r\n\r\n", "pull", 2);
  assertEquals(h.outcome, "rejected");
  const g = reply(new Uint8Array([0x3c, 0x68, 0x01, 0xff, 0x0a]));
  assertEquals(g.outcome, "rejected");
  assertEquals(g.line, "<h??");
});

Deno.test("the reply head read one byte at a time gives the same result", () => {
  const text = "HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n";
  const r = new NtripReplyReader({ kind: "pull", version: 2 });
  const bytes = enc.encode(text);
  let head: NtripReplyHead | null = null;
  for (let i = 0; i < bytes.length; i++) {
    head = r.push(bytes.subarray(i, i + 1));
    if (head) {
      assertEquals(i, bytes.length - 4, "complete exactly at the blank line");
      break;
    }
  }
  assertEquals(head?.outcome, "accepted");
  assert(head?.chunked);
});

Deno.test("a reply head that never ends is refused past the bound", () => {
  const r = new NtripReplyReader({ kind: "pull", version: 2 });
  assertEquals(r.push(enc.encode("HTTP/1.1 200 OK\r\n")), null);
  const filler = enc.encode("X-Filler: " + "a".repeat(1000) + "\r\n");
  assertThrows(() => {
    for (let i = 0; i < 20; i++) r.push(filler);
  }, `${NTRIP_REPLY_HEAD_MAX} bytes`);
  const noLine = new NtripReplyReader({ kind: "pull", version: 1 }, 64);
  assertThrows(() => noLine.push(new Uint8Array(65)));
});

/** The recorded exchange without its `#` comment lines, split into the client's request and the reply. */
async function recorded(name: string): Promise<{ request: string; reply: Uint8Array }> {
  const bytes = await Deno.readFile(new URL(name, FIXTURES));
  let at = 0;
  while (bytes[at] === 0x23) at = bytes.indexOf(0x0a, at) + 1; // comment lines
  const rest = bytes.subarray(at);
  const text = String.fromCharCode(...rest.subarray(0, 64));
  if (text.startsWith("GET ")) {
    const end = rest.findIndex((_, i) => rest[i] === 0x0a && rest[i + 1] === 0x0a);
    return { request: dec.decode(rest.subarray(0, end + 2)), reply: rest.subarray(end + 2) };
  }
  return { request: "", reply: rest };
}

/** Serves `replyBytes` on a loopback port once a request head arrived; returns what the client read. */
async function replayOverSocket(replyBytes: Uint8Array, kind: NtripRequestKind, version: NtripVersion) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const c = await listener.accept();
    const buf = new Uint8Array(4096);
    let got = "";
    while (!got.includes("\r\n\r\n")) {
      const n = await c.read(buf);
      if (n === null) break;
      got += dec.decode(buf.subarray(0, n));
    }
    await writeAll(c, replyBytes);
    c.close();
    return got;
  })();
  try {
    const conn = await hostNet.dialTcp("127.0.0.1", listener.addr.port, { timeoutMs: 10_000 });
    await writeAll(
      conn,
      buildPullRequest({ version, host: "127.0.0.1", port: 2101, mount: "EPS_NI", agent: ntripAgent("t") }),
    );
    const reader = new NtripReplyReader({ kind, version });
    const buf = new Uint8Array(512); // small reads: the head arrives in pieces
    let head: NtripReplyHead | null = null;
    const rest: number[] = [];
    for (;;) {
      const n = await within(conn.read(buf), "reply bytes");
      if (n === null) break;
      if (!head) {
        head = reader.push(buf.subarray(0, n));
        if (head) rest.push(...head.body);
      } else rest.push(...buf.subarray(0, n));
    }
    conn.close();
    const request = await within(served, "the replay server");
    return { head, body: new Uint8Array(rest), request };
  } finally {
    listener.close();
  }
}

Deno.test("recorded real caster reply (naujoks-ntrip.log): ICY 200 OK then RTCM 2 data, over a socket", async () => {
  const rec = await recorded("naujoks-ntrip.log");
  assert(rec.request.startsWith("GET /EPS_NI HTTP/1.1"), "the recording holds gpsd's request");
  const { head, body, request } = await replayOverSocket(rec.reply, "pull", 1);
  assert(request.startsWith("GET /EPS_NI HTTP/1.0\r\nUser-Agent: NTRIP wgedge/t\r\n"));
  assertEquals(head?.outcome, "accepted");
  assertEquals(head?.line, "ICY 200 OK");
  // The caster's blank line after ICY is not data; the data is RTCM 2 (6-of-8 bytes: 0x40..0x7f).
  const dataStart = rec.reply.indexOf(0x0a) + 2;
  assertEquals(body.length, rec.reply.length - dataStart);
  assertEquals([...body.subarray(0, 16)], [...rec.reply.subarray(dataStart, dataStart + 16)]);
  assert(body.slice(0, 100).every((b) => b >= 0x40 && b <= 0x7f), "RTCM 2 bytes");
});

Deno.test("recorded real caster reply (ntrip_sourcetable.log): SOURCETABLE 200 OK = not found", async () => {
  const rec = await recorded("ntrip_sourcetable.log");
  for (const version of [1, 2] as const) {
    const { head } = await replayOverSocket(rec.reply, "pull", version);
    assertEquals(head?.outcome, "not-found");
    assertEquals(head?.line, "SOURCETABLE 200 OK");
  }
});

Deno.test("NMEA checksum: the textbook GGA example is *47", () => {
  assertEquals(nmeaChecksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "47");
  assertEquals(nmeaChecksum(""), "00");
  assertEquals(nmeaChecksum("A"), "41");
  assertEquals(nmeaChecksum("AB"), "03");
});

// Vectors computed by hand (XOR of the body's characters, checked with a separate script): see the bodies.
Deno.test("GGA: north-west, whole seconds (str2str's test position 44.06 -121.32 1100)", () => {
  assertEquals(
    buildGga({ talker: "GP", timeMs: 1_700_000_000_000, latDeg: 44.06, lonDeg: -121.32, altM: 1100 }),
    "$GPGGA,221320.00,4403.6000,N,12119.2000,W,1,12,1.0,1100.000,M,0.0,M,,*71\r\n",
  );
});

Deno.test("GGA: GN talker, south-east, centiseconds", () => {
  assertEquals(
    buildGga({ talker: "GN", timeMs: 1_700_000_000_123, latDeg: -33.8688, lonDeg: 151.2093, altM: 58.5 }),
    "$GNGGA,221320.12,3352.1280,S,15112.5580,E,1,12,1.0,58.500,M,0.0,M,,*64\r\n",
  );
});

Deno.test("GGA: minutes that round to 60 carry into the degree; midnight; negative altitude", () => {
  assertEquals(ggaDegreesMinutes(10.99999999, 2), "1100.0000");
  assertEquals(ggaTime(1_699_920_000_000), "000000.00");
  assertEquals(
    buildGga({ talker: "GP", timeMs: 1_699_920_000_000, latDeg: 10.99999999, lonDeg: 0, altM: -12.25 }),
    "$GPGGA,000000.00,1100.0000,N,00000.0000,E,1,12,1.0,-12.250,M,0.0,M,,*47\r\n",
  );
  assertThrows(() => buildGga({ talker: "GP", timeMs: 0, latDeg: 91, lonDeg: 0, altM: 0 }), "not in");
  assertThrows(() => buildGga({ talker: "GP", timeMs: 0, latDeg: 0, lonDeg: NaN, altM: 0 }), "not in");
});
