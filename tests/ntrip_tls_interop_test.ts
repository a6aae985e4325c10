/**
 * src_tls / dst_tls against real peers: RTKLIB str2str as the source caster and the wgedge caster as the
 * destination, each behind `socat OPENSSL-LISTEN` with a throwaway self-signed certificate (openssl), and a
 * `wgedge ntrip relay` whose station pulls and pushes over TLS, trusting the certificate through
 * NTRIP_TLS_CA_FILE. A plain NTRIP client on the destination caster must get the source's frames whole; a
 * second station dialling the same TLS port by an address the certificate does not name fails with a `tls`
 * error saying so. Ports are reserved, every wait is bounded and every child is killed in `finally`.
 */
import { DENO_JSON, interopTest, MAIN_TS, waitFor } from "./helpers/interop.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { within } from "./helpers/tcp.ts";
import { basic, framesOf, NtripPeer } from "./helpers/ntrip_peer.ts";
import { makeCert } from "./helpers/tls.ts";

const DENO = Deno.execPath();
const F9T = Deno.readFileSync(new URL("./fixtures/rtcm3/f9t.rtcm3", import.meta.url));
const SOURCE_FRAMES = framesOf(F9T);
const SRC_STR = "SRC:RTCM 3.3;1005(1),1077(1);2;GPS;TEST;USA;44.06;-121.32;0;0;x;none;B;N;5000;test";

/** A child whose output is collected (shown when a wait gives up). */
class Proc {
  readonly child: Deno.ChildProcess;
  #output = "";
  readonly #drains: Promise<void>[];

  constructor(readonly label: string, cmd: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const dec = new TextDecoder();
    this.#drains = [this.child.stdout, this.child.stderr].map(async (s) => {
      try {
        for await (const c of s) this.#output += dec.decode(c, { stream: true });
      } catch { /* closed */ }
    });
  }

  get output(): string {
    return this.#output;
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* exited */ }
    try {
      await within(this.child.status, `${this.label} to exit`, 5_000);
    } catch {
      try {
        this.child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      await within(this.child.status, `${this.label} to die`);
    }
    await Promise.allSettled(this.#drains);
  }
}

interface SideStatus {
  tls: boolean;
  path: string | null;
  lastReply: string | null;
}

interface StationStatus {
  id: string;
  state: string;
  lastError: { side: string; kind: string; message: string } | null;
  source: SideStatus;
  destination: SideStatus;
}

async function stationStatus(admin: number, id: string): Promise<StationStatus | undefined> {
  try {
    const res = await within(fetch(`http://127.0.0.1:${admin}/api/v1/ntrip`), "the admin API", 5_000);
    return (await res.json()).stations.find((s: StationStatus) => s.id === id);
  } catch {
    return undefined;
  }
}

async function waitStation(
  admin: number,
  id: string,
  cond: (s: StationStatus) => boolean,
  what: string,
  procs: Proc[],
): Promise<StationStatus> {
  let last: StationStatus | undefined;
  try {
    await waitFor(
      async () => {
        last = await stationStatus(admin, id);
        return last !== undefined && cond(last);
      },
      what,
      400,
      100,
    );
  } catch {
    const out = procs.map((p) => `--- ${p.label}\n${p.output.slice(-3000)}`).join("\n");
    throw new Error(`timed out waiting for ${id}: ${what}; last status ${JSON.stringify(last)}\n${out}`);
  }
  return last!;
}

/** socat terminating TLS on `port` (127.0.0.1) with `cert`, forwarding plain TCP to `to`. */
function tlsFront(label: string, port: number, to: number, certFile: string, keyFile: string): Proc {
  return new Proc(label, [
    "socat",
    `OPENSSL-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,cert=${certFile},key=${keyFile},verify=0`,
    `TCP:127.0.0.1:${to}`,
  ]);
}

interopTest(
  "relay over TLS: str2str behind socat TLS -> station (src_tls, dst_tls, NTRIP_TLS_CA_FILE) -> caster behind socat TLS",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "wgedge-ntrip-tls-" });
    const cert = await makeCert("localhost", ["DNS:localhost"]);
    const procs: Proc[] = [];
    let feed: Deno.Conn | undefined;
    let client: NtripPeer | undefined;
    try {
      const [srcIn, srcCaster, srcTls, dstCaster, dstTls, relayAdmin] = [1, 2, 3, 4, 5, 6].map(() =>
        freePort()
      );
      procs.push(
        new Proc("str2str source caster", [
          "str2str",
          "-in",
          `tcpsvr://:${srcIn}`,
          "-out",
          `ntripc://rover:roverpw@:${srcCaster}/${SRC_STR}`,
        ]),
      );
      procs.push(tlsFront("socat TLS in front of str2str", srcTls, srcCaster, cert.certFile, cert.keyFile));
      await Deno.writeTextFile(
        `${dir}/mounts.json`,
        JSON.stringify([{ mount: "DST", source_password: "dstpw", users: ["rover:roverpw"] }]),
        { mode: 0o600 },
      );
      procs.push(
        new Proc("wgedge caster", [
          DENO,
          "run",
          "-A",
          "--config",
          DENO_JSON,
          MAIN_TS,
          "ntrip",
          "caster",
          "--listen",
          `127.0.0.1:${dstCaster}`,
          "--mounts",
          `${dir}/mounts.json`,
        ]),
      );
      procs.push(
        tlsFront("socat TLS in front of the caster", dstTls, dstCaster, cert.certFile, cert.keyFile),
      );
      const side = (prefix: "src" | "dst", host: string, port: number, mount: string) =>
        prefix === "src"
          ? {
            src_host: host,
            src_port: port,
            src_mount: mount,
            src_user: "rover",
            src_pass: "roverpw",
            src_tls: true,
          }
          : { dst_host: host, dst_port: port, dst_mount: mount, dst_pass: "dstpw", dst_tls: true };
      await Deno.writeTextFile(
        `${dir}/stations.json`,
        JSON.stringify(
          [
            {
              id: "TLSOK",
              ...side("src", "localhost", srcTls, "SRC"),
              ...side("dst", "localhost", dstTls, "DST"),
            },
            // The certificate names localhost only: dialled by address, verification must fail.
            {
              id: "BADNAME",
              ...side("src", "127.0.0.1", srcTls, "SRC"),
              ...side("dst", "localhost", dstTls, "X"),
            },
          ],
          null,
          2,
        ),
        { mode: 0o600 },
      );
      const relay = new Proc("wgedge relay", [
        DENO,
        "run",
        "-A",
        "--config",
        DENO_JSON,
        MAIN_TS,
        "ntrip",
        "relay",
        "-c",
        `${dir}/stations.json`,
        "--admin-listen",
        `127.0.0.1:${relayAdmin}`,
      ], { NTRIP_TLS_CA_FILE: cert.certFile });
      procs.push(relay);

      const waiting = await waitStation(
        relayAdmin,
        "TLSOK",
        (s) => s.state === "WAITING_DATA",
        "accepted by str2str through TLS",
        procs,
      );
      assertEquals(waiting.source.tls, true);
      assertEquals(waiting.source.path, "direct");
      assertEquals(waiting.source.lastReply, "ICY 200 OK");

      await waitFor(async () => {
        feed = await Deno.connect({ hostname: "127.0.0.1", port: srcIn }).catch(() => undefined);
        return feed !== undefined;
      }, "str2str's input port");
      const write = async (bytes: Uint8Array) => {
        for (let o = 0; o < bytes.length;) {
          o += await within(feed!.write(bytes.subarray(o)), "feeding str2str");
        }
      };
      const next = 20;
      for (const f of SOURCE_FRAMES.slice(0, next)) await write(f);
      const running = await waitStation(relayAdmin, "TLSOK", (s) => s.state === "RUNNING", "RUNNING", procs);
      assertEquals(running.destination.tls, true);
      assertEquals(
        running.destination.lastReply,
        "ICY 200 OK",
        "the wgedge caster accepted the push via TLS",
      );

      // A plain client on the destination caster, then the rest of the recording.
      client = await NtripPeer.open(
        dstCaster,
        `GET /DST HTTP/1.0\r\nUser-Agent: NTRIP test\r\n${basic("rover", "roverpw")}\r\n`,
      );
      await client.waitText("ICY 200 OK\r\n");
      const rest = SOURCE_FRAMES.slice(next);
      for (let i = 0; i < rest.length; i += 10) {
        for (const f of rest.slice(i, i + 10)) await write(f);
        await new Promise((r) => setTimeout(r, 50));
      }
      const last = SOURCE_FRAMES[SOURCE_FRAMES.length - 1];
      await waitFor(
        () => {
          const got = framesOf(client!.split().body);
          const tail = got[got.length - 1];
          return tail !== undefined && tail.length === last.length && tail.every((b, j) => b === last[j]);
        },
        "the client to get the last frame",
        400,
        100,
      );
      const got = framesOf(client.split().body);
      const body = client.split().body;
      assertEquals(got.reduce((n, f) => n + f.length, 0), body.length, "only whole frames");
      assert(got.length > 0 && got.length <= SOURCE_FRAMES.length);
      assertEquals(
        got,
        SOURCE_FRAMES.slice(SOURCE_FRAMES.length - got.length),
        "the source's frames, in order",
      );

      const bad = await waitStation(
        relayAdmin,
        "BADNAME",
        (s) => s.lastError?.kind === "tls",
        "a tls error",
        procs,
      );
      assertEquals(bad.lastError!.side, "source");
      assertStringIncludes(bad.lastError!.message, "TLS to 127.0.0.1:");
      assertStringIncludes(bad.lastError!.message, "certificate does not match the host name");
      assert(!relay.output.includes("roverpw") && !relay.output.includes("dstpw"), "no secret in the log");
    } finally {
      client?.close();
      try {
        feed?.close();
      } catch { /* closed */ }
      for (const p of [...procs].reverse()) await p.stop().catch(() => {});
      await cert.remove();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
  { tools: ["str2str", "socat", "openssl"] },
);
