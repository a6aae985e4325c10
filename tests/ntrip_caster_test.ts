/**
 * The wgedge caster (`wgedge serve` with NTRIP_CASTER_* in its environment) against real peers: RTKLIB
 * str2str pushing (`ntrips://`, v1 SOURCE without the slash) and pulling (`ntrip://`, v1 GET), curl as a v2
 * client, raw sockets for v2 pushes and refusals. Everything on 127.0.0.1 with reserved ports; every wait is
 * bounded and every child is killed in `finally`. Data fed into str2str goes through its `tcpsvr://` input,
 * written by the test, so no step depends on timing.
 */
import { DENO_JSON, interopTest, MAIN_TS, waitFor } from "./helpers/interop.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { connect, within } from "./helpers/tcp.ts";
import { basic, frameOffsets, framesOf, NtripPeer } from "./helpers/ntrip_peer.ts";
import { CHUNKED_END, encodeChunk } from "../src/wire/chunked.ts";
import { concatBytes } from "../src/util/bytes.ts";

const DENO = Deno.execPath();
const F9T = Deno.readFileSync(new URL("./fixtures/rtcm3/f9t.rtcm3", import.meta.url));
const STR_DST = "STR;DST;Bend;RTCM 3.3;1005(1),1077(1);2;GPS;TEST;USA;44.06;-121.32;0;0;x;none;B;N;5000;";

interface MountStatus {
  mount: string;
  source: { agent?: string; version: number } | null;
  clients: { agent?: string }[];
  bytesIn: number;
  frames: number;
  clientsDroppedSlow: number;
}

interface CasterStatus {
  mounts: MountStatus[];
  rejected: Record<string, number>;
}

/** A child process whose output is collected; `stop()` kills it and waits. */
function spawn(cmd: string, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).spawn();
  let output = "";
  const dec = new TextDecoder();
  const drains = [child.stdout, child.stderr].map(async (s) => {
    for await (const chunk of s) output += dec.decode(chunk, { stream: true });
  });
  return {
    output: () => output,
    /** SIGTERM, then SIGKILL if still running after a while (str2str may sit in a reconnect wait). */
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      try {
        await within(child.status, `${cmd} to exit`, 5_000);
      } catch {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
        await within(child.status, `${cmd} to die`);
      }
      await Promise.allSettled(drains);
    },
  };
}

type Child = ReturnType<typeof spawn>;

/** `wgedge serve` running the caster from its environment, with the admin API for status. */
class Serve {
  readonly caster = freePort();
  readonly admin = freePort();
  readonly proc: Child;

  constructor(mountsFile: string) {
    this.proc = spawn(DENO, ["run", "-A", "--config", DENO_JSON, MAIN_TS, "serve"], {
      NTRIP_CASTER_MOUNTS: mountsFile,
      NTRIP_CASTER_LISTEN: `127.0.0.1:${this.caster}`,
      WGEDGE_ADMIN_LISTEN: `127.0.0.1:${this.admin}`,
    });
  }

  async status(): Promise<CasterStatus> {
    const r = await within(fetch(`http://127.0.0.1:${this.admin}/api/v1/status`), "admin status");
    return (await r.json()).ntrip_caster;
  }

  async mount(name: string): Promise<MountStatus> {
    return (await this.status()).mounts.find((m) => m.mount === name)!;
  }

  async ready(): Promise<void> {
    await waitFor(async () => {
      try {
        return (await this.status())?.mounts.length === 2;
      } catch {
        return false;
      }
    }, `the caster up (output: ${this.proc.output()})`);
  }
}

async function withCaster(
  fn: (serve: Serve, dir: string, children: Child[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-caster-" });
  const mounts = `${dir}/mounts.json`;
  await Deno.writeTextFile(
    mounts,
    JSON.stringify([
      { mount: "DST", source_password: "srcpw", users: ["rover:roverpw"], str: STR_DST },
      { mount: "OPEN", source_password: "openpw" },
    ]),
    { mode: 0o600 },
  );
  const children: Child[] = [];
  const serve = new Serve(mounts);
  children.push(serve.proc);
  try {
    await serve.ready();
    await fn(serve, dir, children);
  } finally {
    for (const c of children.reverse()) await c.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** str2str pushing whatever the test writes to its tcpsvr input into `mount` as a v1 source. */
function str2strSource(children: Child[], casterPort: number, target: string): { input: number } {
  const input = freePort();
  children.push(
    spawn("str2str", [
      "-in",
      `tcpsvr://:${input}`,
      "-out",
      `ntrips://${target.replace("@", `@127.0.0.1:${casterPort}/`)}`,
    ]),
  );
  return { input };
}

/** str2str pulling `path` as a v1 client into a file. */
function str2strClient(
  children: Child[],
  casterPort: number,
  auth: string,
  mount: string,
  out: string,
): void {
  children.push(
    spawn("str2str", ["-in", `ntrip://${auth}127.0.0.1:${casterPort}/${mount}`, "-out", `file://${out}`]),
  );
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

/** Writes bytes into str2str's tcpsvr input over one connection (returned for more writes). */
async function feeder(port: number): Promise<Deno.Conn> {
  let conn: Deno.Conn | undefined;
  await waitFor(async () => {
    try {
      conn = await connect(port);
      return true;
    } catch {
      return false;
    }
  }, `str2str listening on ${port}`);
  return conn!;
}

async function writeAllTo(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await within(conn.write(bytes.subarray(off)), "write to str2str");
}

interopTest(
  "caster: str2str pushes (v1, mount without slash), str2str and a v2 client pull every frame",
  async () => {
    await withCaster(async (serve, dir, children) => {
      const { input } = str2strSource(children, serve.caster, ":srcpw@DST:STR wgedge test");
      await waitFor(async () => (await serve.mount("DST")).source !== null, "str2str's SOURCE accepted");
      const dst = await serve.mount("DST");
      assertEquals([dst.source!.version, dst.source!.agent], [1, "NTRIP RTKLIB/2.4.3"]);

      const out = `${dir}/out.rtcm3`;
      str2strClient(children, serve.caster, "rover:roverpw@", "DST", out);
      const v2 = await NtripPeer.open(
        serve.caster,
        `GET /DST HTTP/1.1\r\nHost: 127.0.0.1\r\nNtrip-Version: Ntrip/2.0\r\n${basic("rover", "roverpw")}` +
          "User-Agent: NTRIP test\r\nConnection: close\r\n\r\n",
      );
      try {
        await waitFor(async () => (await serve.mount("DST")).clients.length === 2, "both clients connected");

        const feed = await feeder(input);
        try {
          for (let off = 0; off < F9T.length; off += 1500) {
            await writeAllTo(feed, F9T.subarray(off, off + 1500));
          }
          await waitFor(
            async () => (await fileSize(out)) >= F9T.length,
            `str2str's file to reach ${F9T.length} bytes`,
          );
          await waitFor(() => v2.dechunked().length >= F9T.length, "the v2 client's data");
        } finally {
          feed.close();
        }
        const got = await Deno.readFile(out);
        assertEquals(framesOf(got).length, 182);
        assertEquals(framesOf(got), framesOf(F9T), "str2str's file: the source's frames, frame by frame");
        assertEquals(got, F9T);
        const head = v2.split().head;
        assert(
          head.startsWith("HTTP/1.1 200 OK\r\n") && head.includes("Transfer-Encoding: chunked\r\n"),
          head,
        );
        assertEquals(framesOf(v2.dechunked()), framesOf(F9T), "the v2 client: decoded chunks, same frames");
        const s = await serve.mount("DST");
        assertEquals([s.frames, s.bytesIn], [182, F9T.length]);
        assert(s.clients.some((c) => c.agent === "NTRIP RTKLIB/2.4.3"));
      } finally {
        v2.close();
      }
    });
  },
);

interopTest("caster: a v2 push (POST chunked) is served to str2str and to curl as a v2 client", async () => {
  await withCaster(async (serve, dir, children) => {
    const push = await NtripPeer.open(
      serve.caster,
      "POST /OPEN HTTP/1.1\r\nHost: 127.0.0.1\r\nNtrip-Version: Ntrip/2.0\r\n" + basic("base", "openpw") +
        "User-Agent: NTRIP test\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    try {
      await push.waitText("\r\n\r\n");
      assert(push.text.startsWith("HTTP/1.1 200 OK\r\n"), push.text);
      const out = `${dir}/open.rtcm3`;
      str2strClient(children, serve.caster, "", "OPEN", out);
      const curlOut = `${dir}/curl.rtcm3`;
      const curl = spawn("curl", [
        "-sS",
        "--http1.1",
        "-H",
        "Ntrip-Version: Ntrip/2.0",
        "-o",
        curlOut,
        `http://127.0.0.1:${serve.caster}/OPEN`,
      ]);
      children.push(curl);
      await waitFor(
        async () => (await serve.mount("OPEN")).clients.length === 2,
        "str2str and curl connected",
      );
      for (let off = 0; off < F9T.length; off += 2000) {
        await push.write(encodeChunk(F9T.subarray(off, off + 2000)));
      }
      await waitFor(async () => (await fileSize(out)) >= F9T.length, "str2str's file complete");
      await push.write(CHUNKED_END); // the source ends: its clients get the rest and are closed
      await waitFor(async () => (await fileSize(curlOut)) >= F9T.length, "curl's file complete");
      assertEquals(await Deno.readFile(out), F9T);
      assertEquals(await Deno.readFile(curlOut), F9T, "curl removed the chunked coding: the frames exactly");
    } finally {
      push.close();
    }
  });
});

interopTest(
  "caster: str2str with a wrong password, on a taken mount, with a wrong user; GET / sourcetable",
  async () => {
    await withCaster(async (serve, dir, children) => {
      str2strSource(children, serve.caster, ":wrong@DST");
      await waitFor(
        async () => (await serve.status()).rejected.bad_source_login >= 1,
        "the bad password refused",
      );
      assertEquals((await serve.mount("DST")).source, null);
      const raw = await NtripPeer.open(serve.caster, "SOURCE wrong DST\r\nSource-Agent: NTRIP test\r\n\r\n");
      await raw.waitEnd();
      assertEquals(raw.text, "ERROR - Bad Password\r\n");

      str2strSource(children, serve.caster, ":srcpw@DST");
      await waitFor(async () => (await serve.mount("DST")).source !== null, "the right password accepted");
      const takenBefore = (await serve.status()).rejected.mount_taken;
      str2strSource(children, serve.caster, ":srcpw@DST");
      await waitFor(
        async () => (await serve.status()).rejected.mount_taken > takenBefore,
        "the second source refused",
      );
      const taken = await NtripPeer.open(serve.caster, "SOURCE srcpw /DST\r\n\r\n");
      await taken.waitEnd();
      assertEquals(taken.text, "ERROR - Mount Point Taken or Invalid\r\n");

      const out = `${dir}/nope.rtcm3`;
      str2strClient(children, serve.caster, "rover:wrong@", "DST", out);
      await waitFor(
        async () => (await serve.status()).rejected.bad_client_login >= 1,
        "the wrong user refused",
      );
      assertEquals((await serve.mount("DST")).clients.length, 0);
      const v1 = await NtripPeer.open(serve.caster, `GET /DST HTTP/1.0\r\n${basic("eve", "roverpw")}\r\n`);
      await v1.waitEnd();
      assert(v1.text.startsWith("HTTP/1.0 401 Unauthorized\r\n"), v1.text);
      assert(v1.text.includes('WWW-Authenticate: Basic realm="/DST"'));

      const table = await NtripPeer.open(serve.caster, "GET / HTTP/1.0\r\nUser-Agent: NTRIP test\r\n\r\n");
      await table.waitEnd();
      const { head, body } = table.split();
      assert(
        head.startsWith("SOURCETABLE 200 OK\r\n") && head.includes("Content-Type: gnss/sourcetable\r\n"),
        head,
      );
      assertEquals(
        new TextDecoder().decode(body),
        `${STR_DST}\r\nSTR;OPEN;OPEN;RTCM 3;;0;;;;0.00;0.00;0;0;wgedge;none;N;N;0;\r\nENDSOURCETABLE\r\n`,
      );
      assertEquals(await fileSize(out), 0, "the refused client got no data");
      const logs = serve.proc.output();
      for (const secret of ["srcpw", "roverpw", "openpw", "wrong"]) {
        assert(!logs.includes(secret), `${secret} logged`);
      }
    });
  },
);

interopTest(
  "caster: a late str2str client starts on a frame boundary; a stalled client is dropped, others go on",
  async () => {
    await withCaster(async (serve, dir, children) => {
      const { input } = str2strSource(children, serve.caster, ":openpw@OPEN");
      await waitFor(async () => (await serve.mount("OPEN")).source !== null, "the source");
      const early = `${dir}/early.rtcm3`, late = `${dir}/late.rtcm3`;
      str2strClient(children, serve.caster, "", "OPEN", early);
      await waitFor(async () => (await serve.mount("OPEN")).clients.length === 1, "the early client");
      const feed = await feeder(input);
      let stalled: Deno.Conn | undefined;
      try {
        const offsets = frameOffsets(F9T);
        const cut = offsets[100] + 11; // inside frame 100
        await writeAllTo(feed, F9T.subarray(0, cut));
        await waitFor(
          async () => (await serve.mount("OPEN")).bytesIn === cut,
          "the first part at the caster",
        );
        str2strClient(children, serve.caster, "", "OPEN", late);
        await waitFor(async () => (await serve.mount("OPEN")).clients.length === 2, "the late client");
        await writeAllTo(feed, F9T.subarray(cut));
        await waitFor(
          async () => (await fileSize(late)) >= F9T.length - offsets[100],
          "the late client's file",
        );
        assertEquals(
          await Deno.readFile(late),
          F9T.subarray(offsets[100]),
          "from frame 100, whole, to the end",
        );

        // A client that stops reading: kernel buffers fill, then its backlog; it is dropped, str2str goes on.
        stalled = await connect(serve.caster);
        await writeAllTo(stalled, new TextEncoder().encode("GET /OPEN HTTP/1.0\r\n\r\n"));
        await waitFor(async () => (await serve.mount("OPEN")).clients.length === 3, "the stalled client");
        const round = concatBytes(F9T, F9T); // below the 64 KiB backlog bound per round
        let sent = F9T.length;
        while ((await serve.mount("OPEN")).clientsDroppedSlow === 0) {
          if (sent > 256 * 1024 * 1024) throw new Error(`no client dropped after ${sent} bytes`);
          await writeAllTo(feed, round);
          sent += round.length;
          await waitFor(async () => (await fileSize(early)) >= sent, `${sent} bytes at str2str`, 400, 5);
        }
        const s = await serve.mount("OPEN");
        assertEquals([s.clientsDroppedSlow, s.clients.length], [1, 2]);
        await writeAllTo(feed, F9T);
        sent += F9T.length;
        await waitFor(async () => (await fileSize(early)) >= sent, "str2str still receiving");
        const got = await Deno.readFile(early);
        assertEquals(got.length, sent);
        for (let off = 0; off < sent; off += F9T.length) {
          assertEquals(got.subarray(off, off + F9T.length), F9T, `the copy at ${off}`);
        }
      } finally {
        stalled?.close();
        feed.close();
      }
    });
  },
);
