/** NTRIP caster-side heads: the requests str2str, gpsd and NTRIP 2.0 clients send, and the caster's replies. */
import { assert, assertEquals } from "./helpers/assert.ts";
import {
  BAD_PASSWORD,
  badRequestReply,
  type CasterHeadResult,
  clientOkV2,
  conflictReply,
  findHeadEnd,
  ICY_200_OK,
  MOUNT_TAKEN,
  NTRIP_REQUEST_HEAD_MAX,
  parseCasterRequest,
  sourceOkV2,
  sourcetableReply,
  unauthorizedReply,
} from "../src/wire/ntrip_caster.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const SERVER = "NTRIP wgedge/0.1.0";

function parse(text: string): CasterHeadResult {
  return parseCasterRequest(enc(text));
}

function ok(text: string) {
  const r = parse(text);
  if (r.status !== "ok") throw new Error(`expected a request from ${JSON.stringify(text)}, got ${r.status}`);
  return r;
}

Deno.test("ntrip caster head: v1 client as str2str sends it (GET, HTTP/1.0, Basic)", () => {
  const text = "GET /SRC HTTP/1.0\r\nUser-Agent: NTRIP RTKLIB/2.4.3\r\n" +
    "Authorization: Basic cm92ZXI6cm92ZXJwdw==\r\n\r\n";
  const r = ok(text + "$GPGGA,...");
  assertEquals(r.headLength, text.length);
  assertEquals(r.request, {
    kind: "client",
    version: 1,
    mount: "SRC",
    credentials: { user: "rover", password: "roverpw" },
    agent: "NTRIP RTKLIB/2.4.3",
  });
});

Deno.test("ntrip caster head: gpsd's GET with HTTP/1.1 but no Ntrip-Version is v1", () => {
  const r = ok(
    "GET /EPS_NI HTTP/1.1\r\nUser-Agent: NTRIP gpsd/2.96~dev\r\nAccept: rtk/rtcm, dgps/rtcm\r\n" +
      "Connection: close\r\n\r\n",
  );
  assertEquals(r.request.kind, "client");
  assertEquals(r.request.version, 1);
  assertEquals(r.request.mount, "EPS_NI");
  assertEquals(r.request.credentials, undefined);
});

Deno.test("ntrip caster head: v2 client with Ntrip-Version, GGA, UTF-8 password; GET / is the sourcetable", () => {
  const basic = btoa(String.fromCharCode(...enc("jürgen:pä:ss")));
  const r = ok(
    "GET /MOUNT1 HTTP/1.1\r\nHost: caster:2101\r\nntrip-version: Ntrip/2.0\r\nUser-Agent: NTRIP x/1\r\n" +
      `Authorization: basic ${basic}\r\nNtrip-GGA: $GPGGA,1*00\r\nConnection: close\r\n\r\n`,
  );
  assertEquals(r.request, {
    kind: "client",
    version: 2,
    mount: "MOUNT1",
    credentials: { user: "jürgen", password: "pä:ss" },
    agent: "NTRIP x/1",
    gga: "$GPGGA,1*00",
  });
  assertEquals(ok("GET / HTTP/1.0\r\n\r\n").request.mount, "");
  assertEquals(ok("GET http://caster:2101/M HTTP/1.0\n\n").request.mount, "M", "absolute form, bare LFs");
  assertEquals(ok("GET /M HTTP/1.0\r\nAuthorization: Basic !!!\r\n\r\n").request.credentials, undefined);
});

Deno.test("ntrip caster head: v1 SOURCE with and without the slash (str2str omits it), STR header", () => {
  const str = "STR;DST;x;RTCM 3.3;1005(1);2;GPS;TEST;USA;44.06;-121.32;0;0;x;none;B;N;5000;test";
  for (const mount of ["DST", "/DST"]) {
    const head = `SOURCE srcpw ${mount}\r\nSource-Agent: NTRIP RTKLIB/2.4.3\r\nSTR: ${str}\r\n\r\n`;
    const r = ok(head + "\xd3\x00");
    assertEquals(r.headLength, head.length);
    assertEquals(r.request, {
      kind: "source",
      version: 1,
      mount: "DST",
      credentials: { user: "", password: "srcpw" },
      agent: "NTRIP RTKLIB/2.4.3",
      str,
      body: "raw",
    });
  }
  assertEquals(ok("SOURCE pw /M HTTP/1.0\r\n\r\n").request.mount, "M", "a trailing protocol word");
});

Deno.test("ntrip caster head: v2 POST chunked, with Content-Length, or until close", () => {
  const base = "POST /DST HTTP/1.1\r\nHost: h\r\nNtrip-Version: Ntrip/2.0\r\n" +
    "Authorization: Basic dTpzcmNwdw==\r\nUser-Agent: NTRIP wgedge/0.1.0\r\nNtrip-STR: STR;DST\r\n";
  const chunked = ok(base + "Transfer-Encoding: chunked\r\n\r\n").request;
  assertEquals(chunked, {
    kind: "source",
    version: 2,
    mount: "DST",
    credentials: { user: "u", password: "srcpw" },
    agent: "NTRIP wgedge/0.1.0",
    str: "STR;DST",
    body: "chunked",
  });
  const sized = ok(base + "Content-Length: 100\r\n\r\n").request;
  assert(sized.kind === "source");
  assertEquals([sized.body, sized.contentLength], ["length", 100]);
  const raw = ok(base + "\r\n").request;
  assert(raw.kind === "source");
  assertEquals(raw.body, "raw");
});

Deno.test("ntrip caster head: incomplete until the blank line; bounded; malformed heads never echo secrets", () => {
  const full = "SOURCE s3cret MOUNT\r\nSource-Agent: x\r\n\r\n";
  for (let n = 0; n < full.length; n++) {
    assertEquals(parse(full.slice(0, n)).status, "incomplete", `first ${n} bytes`);
  }
  assertEquals(parse(full).status, "ok");
  const big = "GET /M HTTP/1.0\r\n" + "X: y\r\n".repeat(2000);
  const tooBig = parse(big);
  assert(tooBig.status === "error" && /longer than 8192/.test(tooBig.message));
  assertEquals(NTRIP_REQUEST_HEAD_MAX, 8192);
  assertEquals(parse("GET /M HTTP/1.0\r\n" + "X: y\r\n".repeat(10)).status, "incomplete");

  const bad = [
    "SOURCE s3cret\r\n\r\n",
    "SOURCE s3cret a b c\r\n\r\n",
    "SOURCE s3cret /\r\n\r\n",
    "PUT /M HTTP/1.1\r\n\r\n",
    "GET M HTTP/1.0\r\n\r\n",
    "GET /M/N HTTP/1.0\r\n\r\n",
    "GET /M\r\n\r\n",
    "GET /M HTTP/1.0\r\nno colon\r\n\r\n",
    "GET /M HTTP/1.0\r\nBad Name: x\r\n\r\n",
    "POST /M HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    "POST /M HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    "POST /M HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    "POST / HTTP/1.1\r\n\r\n",
    "GET /M HTTP/1.0\r\n" + "X: y\r\n".repeat(65) + "\r\n",
    "\r\n\r\n",
  ];
  for (const text of bad) {
    const r = parse(text);
    assert(r.status === "error", `${JSON.stringify(text)} should be refused`);
    assert(!r.message.includes("s3cret"), r.message);
  }
});

Deno.test("findHeadEnd: CRLFCRLF or LFLF, within the given length", () => {
  assertEquals(findHeadEnd(enc("A\r\n\r\nrest")), 5);
  assertEquals(findHeadEnd(enc("A\n\nrest")), 3);
  assertEquals(findHeadEnd(enc("A\r\nB\r\n")), -1);
  assertEquals(findHeadEnd(enc("A\r\n\r\n"), 4), -1);
});

Deno.test("ntrip caster replies: the exact bytes of the spec", () => {
  assertEquals(dec(ICY_200_OK), "ICY 200 OK\r\n");
  assertEquals(dec(BAD_PASSWORD), "ERROR - Bad Password\r\n");
  assertEquals(dec(MOUNT_TAKEN), "ERROR - Mount Point Taken or Invalid\r\n");

  const v2 = dec(clientOkV2(SERVER));
  assert(v2.startsWith("HTTP/1.1 200 OK\r\n") && v2.endsWith("\r\n\r\n"));
  for (const h of ["Ntrip-Version: Ntrip/2.0", "Content-Type: gnss/data", "Transfer-Encoding: chunked"]) {
    assert(v2.includes(`\r\n${h}\r\n`), h);
  }
  const src = dec(sourceOkV2(SERVER));
  assert(src.startsWith("HTTP/1.1 200 OK\r\n") && src.includes("\r\nNtrip-Version: Ntrip/2.0\r\n"));

  const lines = [
    "STR;A;a;RTCM 3;;0;;;;0.00;0.00;0;0;x;none;N;N;0;",
    "STR;B;b;RTCM 3;;0;;;;0.00;0.00;0;0;x;none;B;N;0;",
  ];
  const v1Table = dec(sourcetableReply(1, SERVER, lines));
  const [head, body] = v1Table.split("\r\n\r\n", 2);
  assert(head.startsWith("SOURCETABLE 200 OK\r\n"));
  assert(head.includes("\r\nContent-Type: gnss/sourcetable"));
  assertEquals(body, lines.join("\r\n") + "\r\nENDSOURCETABLE\r\n");
  assert(head.includes(`\r\nContent-Length: ${enc(body).length}`));
  const v2Table = dec(sourcetableReply(2, SERVER, []));
  assert(v2Table.startsWith("HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\n"));
  assert(v2Table.endsWith("\r\n\r\nENDSOURCETABLE\r\n"));

  const unauthorized = dec(unauthorizedReply(1, SERVER, "SRC"));
  assert(unauthorized.startsWith("HTTP/1.0 401 Unauthorized\r\n"));
  assert(unauthorized.includes('\r\nWWW-Authenticate: Basic realm="/SRC"\r\n'));
  assert(dec(unauthorizedReply(2, SERVER, "SRC")).startsWith("HTTP/1.1 401 Unauthorized\r\nNtrip-Version"));
  assert(dec(conflictReply(SERVER)).startsWith("HTTP/1.1 409 Conflict\r\n"));
  assert(dec(badRequestReply(1, SERVER)).startsWith("HTTP/1.0 400 Bad Request\r\n"));
});
