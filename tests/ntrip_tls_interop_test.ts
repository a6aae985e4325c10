/**
 * src_tls / dst_tls against real peers: RTKLIB str2str as the source caster and the wgedge caster as the
 * destination, each behind `socat OPENSSL-LISTEN` with a throwaway self-signed certificate (openssl), and a
 * `wgedge ntrip relay` whose station pulls and pushes over TLS, trusting the certificate through
 * NTRIP_TLS_CA_FILE. A plain NTRIP client on the destination caster must get the source's frames whole; a
 * second station dialling the same TLS port by an address the certificate does not name fails with a `tls`
 * error saying so. Ports are reserved, every wait is bounded and every child is killed in `finally`.
 */
import { interopTest, waitFor } from "./helpers/interop.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { within } from "./helpers/tcp.ts";
import { basic, NtripPeer } from "./helpers/ntrip_peer.ts";
import { makeCert } from "./helpers/tls.ts";
import {
  assertFramesTail,
  casterArgs,
  endsWithLastFrame,
  Proc,
  relayArgs,
  SOURCE_FRAMES,
  stopAll,
  str2strSourceCaster,
  waitStation,
  wgedge,
  writeJson,
} from "./helpers/ntrip_interop.ts";

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
      procs.push(str2strSourceCaster(undefined, srcIn, srcCaster));
      procs.push(tlsFront("socat TLS in front of str2str", srcTls, srcCaster, cert.certFile, cert.keyFile));
      await writeJson(`${dir}/mounts.json`, [{
        mount: "DST",
        source_password: "dstpw",
        users: ["rover:roverpw"],
      }]);
      procs.push(wgedge(undefined, casterArgs(dstCaster, `${dir}/mounts.json`), {}, "wgedge caster"));
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
      await writeJson(
        `${dir}/stations.json`,
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
        2,
      );
      const relay = wgedge(
        undefined,
        relayArgs(`${dir}/stations.json`, relayAdmin),
        { NTRIP_TLS_CA_FILE: cert.certFile },
        "wgedge relay",
      );
      procs.push(relay);

      const waiting = await waitStation(
        undefined,
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
      const running = await waitStation(
        undefined,
        relayAdmin,
        "TLSOK",
        (s) => s.state === "RUNNING",
        "RUNNING",
        procs,
      );
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
      await waitFor(
        () => endsWithLastFrame(client!.split().body),
        "the client to get the last frame",
        400,
        100,
      );
      // Any number of frames from a boundary on, at least one.
      assertFramesTail(client.split().body, SOURCE_FRAMES.length - 1);

      const bad = await waitStation(
        undefined,
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
      await stopAll(procs);
      await cert.remove();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
  { tools: ["str2str", "socat", "openssl"] },
);
