/**
 * The NTRIP caster in-process on the host Net, driven by raw sockets and a manual clock: v1/v2 sources and
 * clients, whole frames from a frame boundary, refusals, the sourcetable, slow clients, silent sources, head
 * timeout, mount reload, and no secret in status or metrics. No test sleeps for a timer.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { basic, frameOffsets, framesOf, NtripPeer } from "./helpers/ntrip_peer.ts";
import { waitFor } from "./helpers/interop.ts";
import { hostNet } from "../src/net/host.ts";
import { ManualClock } from "../src/util/clock.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { redactDeep } from "../src/util/secret.ts";
import { type CasterMountStatus, NtripCaster } from "../src/services/ntrip/caster.ts";
import type { NtripCasterMount } from "../src/config/ntrip_caster.ts";
import { CHUNKED_END, encodeChunk } from "../src/wire/chunked.ts";
import { concatBytes } from "../src/util/bytes.ts";

const FIXTURES = new URL("./fixtures/rtcm3/", import.meta.url);
const F9T = Deno.readFileSync(new URL("f9t.rtcm3", FIXTURES));
const RAW_LOG = Deno.readFileSync(new URL("ublox-zed-f9t-rtcm3.raw.log", FIXTURES));
const SERVER = "NTRIP wgedge/test";
const STR_DST = "STR;DST;Bend;RTCM 3.3;1005(1),1077(1);2;GPS;TEST;USA;44.06;-121.32;0;0;x;none;B;N;5000;";

const MOUNTS: NtripCasterMount[] = [
  { mount: "DST", sourcePassword: "srcpw", users: [{ user: "rover", password: "roverpw" }], str: STR_DST },
  { mount: "OPEN", sourcePassword: "openpw" },
];

function startCaster(mounts = MOUNTS, registry?: ServiceRegistry) {
  const clock = new ManualClock();
  const caster = new NtripCaster({
    net: hostNet,
    hostname: "127.0.0.1",
    port: 0,
    mounts,
    server: SERVER,
    clock,
    registry,
  });
  const mount = (name: string): CasterMountStatus => caster.status().mounts.find((m) => m.mount === name)!;
  return { caster, clock, port: caster.port, mount };
}

type Caster = ReturnType<typeof startCaster>;

/** A v1 source on `mount` (str2str's form without the slash, or with it), accepted. */
async function v1Source(c: Caster, mount: string, password: string, slash = ""): Promise<NtripPeer> {
  const head = `SOURCE ${password} ${slash}${mount}\r\nSource-Agent: NTRIP test\r\n\r\n`;
  const src = await NtripPeer.open(c.port, head);
  await src.waitText("ICY 200 OK\r\n");
  await waitFor(() => c.mount(mount).source !== null, "the source in status");
  return src;
}

/** A client on `mount`, its reply head received and registered. */
async function client(c: Caster, mount: string, extra = "", v2 = false): Promise<NtripPeer> {
  const before = c.mount(mount).clientsAccepted;
  const head = v2
    ? `GET /${mount} HTTP/1.1\r\nHost: x\r\nNtrip-Version: Ntrip/2.0\r\n${extra}User-Agent: NTRIP t\r\n\r\n`
    : `GET /${mount} HTTP/1.0\r\n${extra}User-Agent: NTRIP t\r\n\r\n`;
  const peer = await NtripPeer.open(c.port, head);
  await peer.waitText(v2 ? "\r\n\r\n" : "ICY 200 OK\r\n");
  await waitFor(() => c.mount(mount).clientsAccepted > before, "the client in status");
  return peer;
}

Deno.test("caster: v1 source without the slash, v1 and v2 clients get exactly its frames", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  try {
    const src = await v1Source(c, "DST", "srcpw");
    const v1 = await client(c, "DST", basic("rover", "roverpw"));
    const v2 = await client(c, "DST", basic("rover", "roverpw"), true);
    peers.push(src, v1, v2);
    for (let off = 0; off < F9T.length; off += 777) await src.write(F9T.subarray(off, off + 777));
    await v1.waitSize(12 + F9T.length, "the v1 client's data");
    await waitFor(() => v2.dechunked().length >= F9T.length, "the v2 client's data");

    assertEquals(v1.split().head, "ICY 200 OK\r\n");
    assertEquals(v1.split().body, F9T);
    const head = v2.split().head;
    assert(head.startsWith("HTTP/1.1 200 OK\r\n"), head);
    for (const h of ["Ntrip-Version: Ntrip/2.0", "Content-Type: gnss/data", "Transfer-Encoding: chunked"]) {
      assert(head.includes(`\r\n${h}\r\n`), h);
    }
    assertEquals(v2.dechunked(), F9T);
    const s = c.mount("DST");
    assertEquals([s.frames, s.bytesIn, s.bytesOut, s.clients.length], [182, F9T.length, 2 * F9T.length, 2]);
    assertEquals([s.source?.version, s.source?.agent, s.stationId], [1, "NTRIP test", 0]);
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: a client joining mid-frame starts on the next whole frame; garbage never reaches it", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  try {
    const src = await v1Source(c, "OPEN", "openpw", "/");
    peers.push(src);
    const offsets = frameOffsets(F9T);
    const cut = offsets[50] + 7; // inside frame 50
    await src.write(F9T.subarray(0, cut));
    await waitFor(() => c.mount("OPEN").bytesIn === cut, "the first part at the caster");
    const late = await client(c, "OPEN");
    peers.push(late);
    await src.write(F9T.subarray(cut));
    await late.waitSize(12 + F9T.length - offsets[50], "the rest from frame 50");
    assertEquals(late.split().body, F9T.subarray(offsets[50]), "frame 50 whole, then the rest");

    // The raw u-blox log (UBX, NMEA, false preambles between the frames) gives a client the frames only.
    const clean = await client(c, "OPEN");
    peers.push(clean);
    await src.write(RAW_LOG);
    await waitFor(() => framesOf(clean.split().body).length >= 182, "182 frames from the raw log");
    assertEquals(clean.split().body, F9T);
    assertEquals(c.mount("OPEN").crcErrors, 3);
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: the frames of one read from the source reach a client in one write (one v2 chunk)", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  try {
    const src = await v1Source(c, "OPEN", "openpw");
    const rover = await client(c, "OPEN", "", true);
    peers.push(src, rover);
    const offsets = [...frameOffsets(F9T), F9T.length];
    const groups: Uint8Array[] = [];
    for (let k = 0; k < 5; k++) groups.push(F9T.subarray(offsets[7 * k], offsets[7 * k + 7]));
    let sent = 0;
    for (const g of groups) {
      await src.write(g);
      sent += g.length;
      await waitFor(() => rover.dechunked().length === sent, "the group at the client");
    }
    assertEquals(rover.chunks(), groups, "one chunk per group of 7 frames, not the first frame alone");
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: v2 POST chunked and with Content-Length, served to v1 clients", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  try {
    const post = await NtripPeer.open(
      c.port,
      "POST /OPEN HTTP/1.1\r\nHost: x\r\nNtrip-Version: Ntrip/2.0\r\n" + basic("anyone", "openpw") +
        "Ntrip-STR: STR;OPEN;From source;RTCM 3.3;;2;GPS;;;0;0;0;0;x;none;N;N;0;\r\n" +
        "Transfer-Encoding: chunked\r\n\r\n",
    );
    peers.push(post);
    await post.waitText("\r\n\r\n");
    assert(post.text.startsWith("HTTP/1.1 200 OK\r\n") && post.text.includes("Ntrip-Version: Ntrip/2.0"));
    await waitFor(() => c.mount("OPEN").source !== null, "the v2 source");
    const rover = await client(c, "OPEN");
    peers.push(rover);
    for (let off = 0; off < F9T.length; off += 1000) {
      await post.write(encodeChunk(F9T.subarray(off, off + 1000)));
    }
    await rover.waitSize(12 + F9T.length);
    assertEquals(rover.split().body, F9T);
    const table = await NtripPeer.open(c.port, "GET / HTTP/1.0\r\n\r\n");
    peers.push(table);
    await table.waitEnd();
    assert(table.text.includes("\r\nSTR;OPEN;From source;"), "the source's Ntrip-STR in the sourcetable");
    await post.write(CHUNKED_END);
    await rover.waitEnd("the client closed after the source ended");
    await waitFor(() => c.mount("OPEN").source === null, "the source gone");

    // Content-Length: the body ends after that many bytes.
    const sized = await NtripPeer.open(
      c.port,
      `POST /OPEN HTTP/1.1\r\nNtrip-Version: Ntrip/2.0\r\n${basic("u", "openpw")}` +
        `Content-Length: ${F9T.length}\r\n\r\n`,
    );
    peers.push(sized);
    await sized.waitText("200 OK");
    await waitFor(() => c.mount("OPEN").source !== null, "the sized source");
    const rover2 = await client(c, "OPEN");
    peers.push(rover2);
    await sized.write(F9T);
    await rover2.waitEnd("the client closed after Content-Length bytes");
    assertEquals(rover2.split().body, F9T);
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: bad password, taken and unknown mounts, bad users, with the replies of each version", async () => {
  const registry = new ServiceRegistry();
  const c = startCaster(MOUNTS, registry);
  const peers: NtripPeer[] = [];
  const ask = async (head: string) => {
    const p = await NtripPeer.open(c.port, head);
    peers.push(p);
    await p.waitEnd();
    return p.text;
  };
  try {
    assertEquals(await ask("SOURCE wrong DST\r\nSource-Agent: t\r\n\r\n"), "ERROR - Bad Password\r\n");
    assertEquals(await ask("SOURCE srcpw NOPE\r\n\r\n"), "ERROR - Mount Point Taken or Invalid\r\n");
    const v2Bad = await ask(`POST /DST HTTP/1.1\r\nNtrip-Version: Ntrip/2.0\r\n${basic("u", "wrong")}\r\n`);
    assert(v2Bad.startsWith("HTTP/1.1 401 Unauthorized\r\n"), v2Bad);
    assert((await ask("POST /NOPE HTTP/1.1\r\nNtrip-Version: Ntrip/2.0\r\n\r\n")).startsWith("HTTP/1.1 404"));

    const src = await v1Source(c, "DST", "srcpw");
    peers.push(src);
    assertEquals(await ask("SOURCE srcpw /DST\r\n\r\n"), "ERROR - Mount Point Taken or Invalid\r\n");
    const taken = await ask(`POST /DST HTTP/1.1\r\nNtrip-Version: Ntrip/2.0\r\n${basic("u", "srcpw")}\r\n`);
    assert(taken.startsWith("HTTP/1.1 409 Conflict\r\n"), taken);

    const noAuth = await ask("GET /DST HTTP/1.0\r\n\r\n");
    assert(noAuth.startsWith("HTTP/1.0 401 Unauthorized\r\n"), noAuth);
    assert(noAuth.includes('WWW-Authenticate: Basic realm="/DST"'));
    assert((await ask(`GET /DST HTTP/1.0\r\n${basic("rover", "nope")}\r\n`)).startsWith("HTTP/1.0 401"));
    const v2User = await ask(
      `GET /DST HTTP/1.1\r\nNtrip-Version: Ntrip/2.0\r\n${basic("eve", "roverpw")}\r\n`,
    );
    assert(v2User.startsWith("HTTP/1.1 401 Unauthorized\r\nNtrip-Version: Ntrip/2.0\r\n"), v2User);
    assert((await ask("HELLO\r\n\r\n")).startsWith("HTTP/1.0 400 Bad Request"));

    const status = c.caster.status();
    assertEquals(status.rejected, {
      bad_request: 1,
      bad_source_login: 2,
      mount_taken: 2,
      unknown_mount: 2,
      bad_client_login: 3,
      mount_full: 0,
      head_timeout: 0,
      too_many_connections: 0,
    });
    const sections = registry.status();
    assertEquals(redactDeep(sections), sections, "no field the admin redaction would hide");
    const shown = JSON.stringify(sections) + registry.metrics.render();
    for (const secret of ["srcpw", "roverpw", "openpw", "wrong", "nope"]) {
      assert(!shown.includes(secret), `${secret} in status or metrics`);
    }
    const metrics = registry.metrics.render();
    assert(metrics.includes('wgedge_ntrip_caster_source_connected{mount="DST"} 1'), metrics);
    assert(metrics.includes('wgedge_ntrip_caster_rejected_total{reason="bad_source_login"} 2'));
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: GET / and unknown or offline mounts get the sourcetable with the configured STR lines", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  try {
    for (
      const head of ["GET / HTTP/1.0\r\n\r\n", "GET /NOPE HTTP/1.0\r\n\r\n", "GET /OPEN HTTP/1.0\r\n\r\n"]
    ) {
      const p = await NtripPeer.open(c.port, head);
      peers.push(p);
      await p.waitEnd();
      const { head: replyHead, body } = p.split();
      assert(replyHead.startsWith("SOURCETABLE 200 OK\r\n"), replyHead);
      assert(replyHead.includes("Content-Type: gnss/sourcetable\r\n"));
      assert(replyHead.includes(`Content-Length: ${body.length}\r\n`));
      assertEquals(
        new TextDecoder().decode(body),
        `${STR_DST}\r\nSTR;OPEN;OPEN;RTCM 3;;0;;;;0.00;0.00;0;0;wgedge;none;N;N;0;\r\nENDSOURCETABLE\r\n`,
      );
    }
    const v2 = await NtripPeer.open(c.port, "GET / HTTP/1.1\r\nNtrip-Version: Ntrip/2.0\r\n\r\n");
    peers.push(v2);
    await v2.waitEnd();
    assert(v2.text.startsWith("HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\n"), v2.text);
    assert(v2.text.includes("Content-Type: gnss/sourcetable") && v2.text.endsWith("ENDSOURCETABLE\r\n"));
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: a client that does not read is dropped past its backlog; the other gets everything", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  let stalled: Deno.Conn | undefined;
  try {
    const src = await v1Source(c, "OPEN", "openpw");
    peers.push(src);
    const reader = await client(c, "OPEN");
    peers.push(reader);
    // A raw connection that never reads after its request: kernel buffers fill, then the caster's backlog.
    stalled = await Deno.connect({ hostname: "127.0.0.1", port: c.port });
    await stalled.write(new TextEncoder().encode("GET /OPEN HTTP/1.0\r\n\r\n"));
    await waitFor(() => c.mount("OPEN").clients.length === 2, "the stalled client registered");

    // Rounds below the 64 KiB backlog bound, so the reading client never falls that far behind.
    const batch = concatBytes(F9T, F9T);
    let sent = 0;
    const maxBytes = 256 * 1024 * 1024; // far beyond any loopback socket buffers
    while (c.mount("OPEN").clientsDroppedSlow === 0) {
      if (sent > maxBytes) throw new Error(`no client dropped after ${sent} bytes`);
      await src.write(batch);
      sent += batch.length;
      // Paced by the reading client, so only the stalled one falls behind.
      await reader.waitSize(12 + sent, `${sent} bytes at the reading client`, 5);
    }
    const s = c.mount("OPEN");
    assertEquals([s.clientsDroppedSlow, s.clients.length], [1, 1]);
    await src.write(F9T);
    sent += F9T.length;
    await reader.waitSize(12 + sent);
    const body = reader.split().body;
    assertEquals(body.length, sent);
    for (let off = 0; off < sent; off += F9T.length) {
      assertEquals(body.subarray(off, off + F9T.length), F9T, `copy at ${off}`);
    }
  } finally {
    stalled?.close();
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: a silent source is dropped after the idle timeout; clients get their data, then close", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  try {
    const src = await v1Source(c, "OPEN", "openpw");
    const rover = await client(c, "OPEN");
    peers.push(src, rover);
    await src.write(F9T);
    await rover.waitSize(12 + F9T.length);
    c.clock.advance(59_000);
    assert(c.mount("OPEN").source !== null, "still there after 59 s");
    await src.write(F9T.subarray(0, 10)); // bytes reset the idle time
    await waitFor(() => c.mount("OPEN").bytesIn === F9T.length + 10, "10 more bytes");
    c.clock.advance(59_000);
    assert(c.mount("OPEN").source !== null, "still there 59 s after the last bytes");
    c.clock.advance(2_000);
    await src.waitEnd("the silent source closed");
    await rover.waitEnd("its client closed");
    assertEquals(rover.split().body, F9T);
    assertEquals(c.mount("OPEN").sourcesDroppedIdle, 1);
    const again = await v1Source(c, "OPEN", "openpw");
    peers.push(again);
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});

Deno.test("caster: a connection that sends no head is closed after the head timeout", async () => {
  const c = startCaster();
  const peer = await NtripPeer.open(c.port, "GET /OPEN HTT");
  try {
    await waitFor(() => c.clock.pendingTimers > 0, "the head timer armed");
    c.clock.advance(10_000);
    await peer.waitEnd("the silent connection closed");
    assertEquals(peer.size, 0);
    await waitFor(() => c.caster.status().rejected.head_timeout === 1, "counted");
  } finally {
    peer.close();
    await c.caster.stop();
  }
});

Deno.test("caster: reloaded mounts — removed drops its sessions, unchanged keep theirs, changed apply", async () => {
  const c = startCaster();
  const peers: NtripPeer[] = [];
  try {
    const dstSrc = await v1Source(c, "DST", "srcpw");
    const openSrc = await v1Source(c, "OPEN", "openpw");
    const rover = await client(c, "DST", basic("rover", "roverpw"));
    const openRover = await client(c, "OPEN");
    peers.push(dstSrc, openSrc, rover, openRover);

    // OPEN gains users: its anonymous client goes, its source stays. DST is unchanged.
    c.caster.setMounts([MOUNTS[0], { ...MOUNTS[1], users: [{ user: "a", password: "b" }] }]);
    await openRover.waitEnd("the anonymous client of OPEN closed");
    assert(c.mount("OPEN").source !== null && c.mount("DST").clients.length === 1);

    // DST's source password changes: its source must log in again; its client stays until the source is gone.
    c.caster.setMounts([{ ...MOUNTS[0], sourcePassword: "new" }, MOUNTS[1]]);
    await dstSrc.waitEnd("the DST source closed");
    assertEquals(c.mount("DST").source, null);
    const back = await v1Source(c, "DST", "new");
    peers.push(back);

    // OPEN removed: its source closes; DST keeps streaming to a new client.
    c.caster.setMounts([{ ...MOUNTS[0], sourcePassword: "new" }]);
    await openSrc.waitEnd("the OPEN source closed");
    assertEquals(c.caster.status().mounts.map((m) => m.mount), ["DST"]);
    const rover2 = await client(c, "DST", basic("rover", "roverpw"));
    peers.push(rover2);
    await back.write(F9T);
    await rover2.waitSize(12 + F9T.length);
    assertEquals(rover2.split().body, F9T);

    // The listener moves; sessions stay.
    const before = c.caster.port;
    c.caster.relisten("127.0.0.1", 0);
    assert(c.caster.port !== before);
    await back.write(F9T);
    await rover2.waitSize(12 + 2 * F9T.length);
    const table = await NtripPeer.open(c.caster.port, "GET / HTTP/1.0\r\n\r\n");
    peers.push(table);
    await table.waitEnd();
    assert(table.text.includes("ENDSOURCETABLE"));
  } finally {
    peers.forEach((p) => p.close());
    await c.caster.stop();
  }
});
