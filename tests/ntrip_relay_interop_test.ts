/**
 * The relay stations against real peers (shared/spec/ntrip.md, "Real peers"): RTKLIB str2str as the source
 * caster fed a real recording at its real rate, a wgedge station, the wgedge caster as the destination, and
 * str2str as an NTRIP client writing a file that must hold exactly the source's frames. Then the same with
 * the station's source side through a WireGuard tunnel (wireguard-go in a namespace, wg_config in seed 000's
 * pipe form) and its destination side through SOCKS5 (microsocks); then the failures: a wrong password, an
 * unknown mount, the source caster killed mid-stream and the destination caster killed.
 *
 * Everything runs on 127.0.0.1 or inside namespaces the test creates, with reserved ports; every wait is
 * bounded and every child is killed in `finally`. Data enters str2str through its `tcpsvr://` input, written
 * by the test (paced epoch by epoch), so the recording's timing is the test's.
 */
import { interopTest, Netns, waitFor, wgKeyPair, WireguardGo } from "./helpers/interop.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { within } from "./helpers/tcp.ts";
import { framesOf } from "./helpers/ntrip_peer.ts";
import {
  assertFramesTail,
  casterArgs,
  endsWithLastFrame,
  F9T,
  inNs,
  ntripApi,
  outputs,
  Proc,
  relayArgs,
  station,
  stopAll,
  str2strSourceCaster,
  waitStation,
  wgedge,
  writeJson,
} from "./helpers/ntrip_interop.ts";
import { VERSION } from "../src/cli/version.ts";

const TOOLS = ["str2str", "microsocks", "socat", "curl"];

/** The recording's epochs: each starts at a 1005 (station ARP) frame; 26 epochs over ~25 s. */
function epochs(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0, at = 0;
  for (const f of framesOf(bytes)) {
    const type = (f[3] << 4) | (f[4] >> 4);
    if (type === 1005 && at > start) {
      out.push(bytes.subarray(start, at));
      start = at;
    }
    at += f.length;
  }
  out.push(bytes.subarray(start, at));
  return out;
}

const EPOCHS = epochs(F9T);

/** A writer into str2str's tcpsvr input: socat inside the namespace, fed through its stdin. */
class Feeder {
  readonly proc: Proc;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;

  constructor(ns: Netns | undefined, port: number) {
    this.proc = new Proc(
      "socat feeder",
      inNs(ns, ["socat", "-u", "STDIN", `TCP:127.0.0.1:${port},retry=50,interval=0.1`]),
      {
        stdin: true,
      },
    );
    this.#writer = this.proc.child.stdin.getWriter();
  }

  async write(bytes: Uint8Array): Promise<void> {
    await within(this.#writer.write(bytes), "feeding str2str");
  }

  /** Feeds the recording epoch by epoch, `ms` apart (1000 = its real rate), `rounds` times. */
  async epochs(ms: number, rounds = 1, stop?: () => boolean): Promise<void> {
    for (let r = 0; r < rounds; r++) {
      for (const e of EPOCHS) {
        if (stop?.()) return;
        await this.write(e);
        await new Promise((res) => setTimeout(res, ms));
      }
    }
  }

  async stop(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.proc.stop();
  }
}

async function fileBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch {
    return new Uint8Array(0);
  }
}

/** Waits until the file ends with the recording's last frame. */
async function waitForLastFrame(path: string, procs: Proc[]): Promise<Uint8Array> {
  let got: Uint8Array = new Uint8Array(0);
  await waitFor(async () => {
    got = await fileBytes(path);
    return endsWithLastFrame(got);
  }, () => `the client's file to end with the last frame (${got.length} bytes)\n${outputs(procs)}`);
  return got;
}

interopTest(
  "relay: str2str source at real rate -> wgedge station -> wgedge caster -> str2str client: every frame",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "wgedge-ntrip-relay-" });
    const procs: Proc[] = [];
    let feeder: Feeder | undefined;
    try {
      const [srcIn, srcCaster, dstCaster, relayAdmin, casterAdmin] = [1, 2, 3, 4, 5].map(() => freePort());
      procs.push(str2strSourceCaster(undefined, srcIn, srcCaster));
      await writeJson(`${dir}/mounts.json`, [{
        mount: "DST",
        source_password: "dstpw",
        users: ["rover:roverpw"],
      }]);
      procs.push(wgedge(undefined, casterArgs(dstCaster, `${dir}/mounts.json`, casterAdmin), {}));
      await writeJson(
        `${dir}/stations.json`,
        [{
          id: "TCSL",
          enable: true,
          src_host: "127.0.0.1",
          src_port: srcCaster,
          src_mount: "SRC",
          src_user: "rover",
          src_pass: "roverpw",
          dst_host: "127.0.0.1",
          dst_port: dstCaster,
          dst_mount: "DST",
          dst_pass: "dstpw",
          lat: 44.06,
          lon: -121.32,
          alt: 1100,
          gga_interval: 5,
          note: "an extra field a real file carries",
        }],
        2,
      );
      const relay = wgedge(undefined, relayArgs(`${dir}/stations.json`, relayAdmin), {});
      procs.push(relay);
      await waitStation(
        undefined,
        relayAdmin,
        "TCSL",
        (s) => s.state === "WAITING_DATA",
        "accepted by str2str",
        procs,
      );
      assert(relay.output.includes('unknown field "note" ignored'), relay.output);

      feeder = new Feeder(undefined, srcIn);
      await feeder.write(EPOCHS[0]);
      const running = await waitStation(
        undefined,
        relayAdmin,
        "TCSL",
        (s) => s.state === "RUNNING",
        "RUNNING",
        procs,
      );
      assertEquals(running.source.lastReply, "ICY 200 OK");
      assertEquals(running.source.version, 2, "auto asks NTRIP 2 first; str2str answers ICY to it");
      assertEquals(running.destination.lastReply, "ICY 200 OK");

      const out = `${dir}/out.rtcm3`;
      const client = new Proc("str2str client", [
        "str2str",
        "-in",
        `ntrip://rover:roverpw@127.0.0.1:${dstCaster}/DST`,
        "-out",
        `file://${out}`,
      ]);
      procs.push(client);
      await waitFor(async () => {
        const r = await fetch(`http://127.0.0.1:${casterAdmin}/api/v1/status`).catch(() => undefined);
        if (!r) return false;
        const mounts = (await r.json()).ntrip_caster?.mounts ?? [];
        return mounts.some((m: { mount: string; clients: unknown[] }) =>
          m.mount === "DST" && m.clients.length > 0
        );
      }, () => `str2str's client on the caster\n${outputs(procs)}`);

      const casterStatus = await (await fetch(`http://127.0.0.1:${casterAdmin}/api/v1/status`)).json();
      const dstMount = casterStatus.ntrip_caster.mounts.find((m: { mount: string }) => m.mount === "DST");
      assertEquals(
        dstMount.source.agent,
        `NTRIP wgedge/${VERSION}`,
        "the station names itself, never a receiver",
      );

      // The rest of the recording at its real rate: one epoch a second.
      for (const e of EPOCHS.slice(1)) {
        await feeder.write(e);
        await new Promise((r) => setTimeout(r, 1000));
      }
      const got = await waitForLastFrame(out, procs);
      assertFramesTail(got, 7); // the client joined after the first epoch
      const { text, stations } = await ntripApi(undefined, relayAdmin);
      const s = stations[0];
      assertEquals([s.frames, s.crcErrors, s.bytesIn], [182, 0, F9T.length]);
      assert(
        s.framesOut >= 175 && s.framesOut < 182,
        `every frame after the destination was accepted: ${s.framesOut}`,
      );
      assert(s.ggaSent >= 5, `GGA sent ${s.ggaSent}`);
      for (const secret of ["roverpw", "dstpw"]) {
        assert(!text.includes(secret), `${secret} in the API`);
        assert(!relay.output.includes(secret), `${secret} in the log`);
      }
    } finally {
      await feeder?.stop();
      await stopAll(procs);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
  { tools: TOOLS },
);

interopTest(
  "relay: source side through a WireGuard tunnel (wireguard-go, pipe form), destination through SOCKS5 (microsocks)",
  async () => {
    const ns = await Netns.create("wgntrip");
    const procs: Proc[] = [];
    let feeder: Feeder | undefined;
    const dir = await Deno.makeTempDir({ prefix: "wgedge-ntrip-wg-" });
    try {
      const octet = 10 + Math.floor(Math.random() * 200);
      const server = await wgKeyPair(), client = await wgKeyPair();
      const wgPort = freePort();
      const wg = await WireguardGo.start(ns, {
        privateKey: server.privateKey,
        listenPort: wgPort,
        addresses: [`10.${octet}.0.1/24`],
        peers: [{ publicKey: client.publicKey, allowedIps: [`10.${octet}.0.2/32`] }],
      });
      const [srcIn, srcCaster, dstCaster, socks, admin] = [1, 2, 3, 4, 5].map(() => freePort());
      procs.push(str2strSourceCaster(ns, srcIn, srcCaster));
      procs.push(
        new Proc(
          "microsocks",
          inNs(ns, ["microsocks", "-i", "127.0.0.1", "-p", String(socks), "-u", "su", "-P", "socks-pw"]),
        ),
      );
      const stations = [{
        id: "WG1",
        src_host: `10.${octet}.0.1`,
        src_port: srcCaster,
        src_mount: "SRC",
        src_user: "rover",
        src_pass: "roverpw",
        src_ntrip_version: 1,
        wg_config: `${client.privateKey}|${server.publicKey}|127.0.0.1:${wgPort}|10.${octet}.0.2`,
        dst_host: "127.0.0.1",
        dst_port: dstCaster,
        dst_mount: "DST",
        dst_pass: "dstpw",
        dst_proxy: `127.0.0.1:${socks}:su:socks-pw`,
        dst_via: "proxy",
      }];
      await writeJson(`${dir}/stations.json`, stations);
      await writeJson(`${dir}/mounts.json`, [{ mount: "DST", source_password: "dstpw" }]);
      // One `serve` from the environment alone: the caster and the relay stations together.
      const serve = wgedge(ns, ["serve"], {
        NTRIP_STATIONS: `${dir}/stations.json`,
        NTRIP_CASTER_MOUNTS: `${dir}/mounts.json`,
        NTRIP_CASTER_LISTEN: `127.0.0.1:${dstCaster}`,
        WGEDGE_ADMIN_LISTEN: `127.0.0.1:${admin}`,
      });
      procs.push(serve);
      const waiting = await waitStation(
        ns,
        admin,
        "WG1",
        (s) => s.state === "WAITING_DATA",
        "accepted through the tunnel",
        procs,
      );
      assertEquals([waiting.source.path, waiting.source.endpoint], ["tunnel", `127.0.0.1:${wgPort}`]);
      assertEquals([waiting.destination.path, waiting.destination.endpoint], [
        "socks5",
        `127.0.0.1:${socks}`,
      ]);

      feeder = new Feeder(ns, srcIn);
      await feeder.write(EPOCHS[0]);
      await waitStation(ns, admin, "WG1", (s) => s.state === "RUNNING", "RUNNING", procs);
      const out = `${dir}/out.rtcm3`;
      const client2 = new Proc(
        "str2str client",
        inNs(ns, [
          "str2str",
          "-in",
          `ntrip://127.0.0.1:${dstCaster}/DST`,
          "-out",
          `file://${out}`,
        ]),
      );
      procs.push(client2);
      await waitFor(async () => {
        const r = await ns.exec(
          ["curl", "-sS", "--max-time", "5", `http://127.0.0.1:${admin}/api/v1/ntrip`],
          {
            check: false,
          },
        );
        try {
          return JSON.parse(r.stdout).caster?.mounts?.some((m: { clients: unknown[] }) =>
            m.clients.length > 0
          );
        } catch {
          return false;
        }
      }, () => `str2str's client on the caster (caster section in /api/v1/ntrip)\n${outputs(procs)}`);
      for (const e of EPOCHS.slice(1)) {
        await feeder.write(e);
        await new Promise((r) => setTimeout(r, 250));
      }
      const got = await waitForLastFrame(out, procs);
      assertFramesTail(got, 7);
      const transfer = await wg.show("transfer");
      const sentToStation = Number(transfer.trim().split(/\s+/)[2]);
      assert(
        sentToStation > F9T.length,
        `wireguard-go sent ${sentToStation} bytes into the station's tunnel`,
      );
      const { text, stations: st } = await ntripApi(ns, admin);
      assertEquals([st[0].frames, st[0].crcErrors], [182, 0]);
      for (const secret of ["roverpw", "dstpw", "socks-pw", client.privateKey]) {
        assert(!text.includes(secret), "a secret in the API");
        assert(!serve.output.includes(secret), "a secret in the log");
      }
      assert(serve.output.includes("tunnel up"), "the pool's log line");
    } finally {
      await feeder?.stop();
      await stopAll(procs);
      await ns.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
  { tools: TOOLS },
);

interopTest(
  "relay against str2str: wrong password -> ERROR; unknown mount -> not-found backoff; source killed; destination killed",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "wgedge-ntrip-fail-" });
    const procs: Proc[] = [];
    const feeders: Feeder[] = [];
    let feeding = true;
    const feeds: Promise<void>[] = [];
    /** Loops the recording into a str2str input at 10 epochs/s until the test ends. */
    const feed = (port: number) => {
      const f = new Feeder(undefined, port);
      feeders.push(f);
      feeds.push(f.epochs(100, 1000, () => !feeding).catch(() => {}));
      return f;
    };
    try {
      const [srcIn, srcCaster, src2In, src2Caster, dst1, dst2, admin] = [1, 2, 3, 4, 5, 6, 7].map(() =>
        freePort()
      );
      procs.push(str2strSourceCaster(undefined, srcIn, srcCaster));
      let src2 = str2strSourceCaster(undefined, src2In, src2Caster);
      procs.push(src2);
      await writeJson(`${dir}/mounts.json`, [{ mount: "DSTK", source_password: "pw" }, {
        mount: "DSTD",
        source_password: "pw",
      }]);
      procs.push(wgedge(undefined, casterArgs(dst1, `${dir}/mounts.json`), {}));
      let caster2 = wgedge(undefined, casterArgs(dst2, `${dir}/mounts.json`), {});
      procs.push(caster2);
      const base = {
        src_host: "127.0.0.1",
        src_port: srcCaster,
        src_mount: "SRC",
        src_user: "rover",
        dst_host: "127.0.0.1",
        dst_pass: "pw",
      };
      await writeJson(
        `${dir}/stations.json`,
        [
          { ...base, id: "WRONGPW", src_pass: "not-the-password", dst_port: dst1, dst_mount: "DSTW" },
          {
            ...base,
            id: "NOMOUNT",
            src_pass: "roverpw",
            src_mount: "NOPE",
            dst_port: dst1,
            dst_mount: "DSTN",
          },
          {
            ...base,
            id: "SRCKILL",
            src_pass: "roverpw",
            src_port: src2Caster,
            dst_port: dst1,
            dst_mount: "DSTK",
          },
          { ...base, id: "DSTKILL", src_pass: "roverpw", dst_port: dst2, dst_mount: "DSTD" },
        ],
      );
      const relay = wgedge(undefined, relayArgs(`${dir}/stations.json`, admin), {});
      procs.push(relay);
      feed(srcIn);
      feed(src2In);

      const wrong = await waitStation(
        undefined,
        admin,
        "WRONGPW",
        (s) => s.state === "ERROR",
        "ERROR",
        procs,
      );
      assertEquals(wrong.source.lastReply, "HTTP/1.0 401 Unauthorized", "str2str's reply line in status");
      assertEquals(wrong.lastError?.kind, "unauthorized");
      const retryIn = Date.parse(wrong.nextRetryAt!) - Date.now();
      assert(retryIn > 29 * 60_000 && retryIn <= 30 * 60_000, `retry in ${retryIn} ms`);

      const nomount = await waitStation(
        undefined,
        admin,
        "NOMOUNT",
        (s) => s.lastError?.kind === "not-found",
        "not found",
        procs,
      );
      assertEquals(nomount.state, "BACKOFF");
      assertEquals(nomount.source.lastReply, "SOURCETABLE 200 OK");
      const nfRetry = Date.parse(nomount.nextRetryAt!) - Date.now();
      assert(nfRetry > 40_000 && nfRetry <= 72_000, `not-found retry in ${nfRetry} ms (60 s +-20 %)`);

      await waitStation(undefined, admin, "SRCKILL", (s) => s.state === "RUNNING", "RUNNING", procs);
      await waitStation(undefined, admin, "DSTKILL", (s) => s.state === "RUNNING", "RUNNING", procs);

      // The source caster dies mid-stream: the station backs off and reconnects; its destination session stays.
      await src2.stop();
      const down = await waitStation(
        undefined,
        admin,
        "SRCKILL",
        (s) => s.source.phase === "backoff",
        "source backoff",
        procs,
      );
      assertEquals([down.state, down.destination.phase, down.destination.attempts], [
        "BACKOFF",
        "streaming",
        1,
      ]);
      src2 = str2strSourceCaster(undefined, src2In, src2Caster);
      procs.push(src2);
      feed(src2In);
      const back = await waitStation(
        undefined,
        admin,
        "SRCKILL",
        (s) => s.state === "RUNNING" && s.source.attempts >= 2,
        "RUNNING again",
        procs,
      );
      assertEquals(back.destination.attempts, 1, "the destination session was kept throughout");

      // The destination caster dies: the source stays connected; the destination comes back after >= 15 s.
      const before = (await station(undefined, admin, "DSTKILL"))!;
      const killedAt = Date.now();
      await caster2.stop();
      const dropped = await waitStation(
        undefined,
        admin,
        "DSTKILL",
        (s) => s.destination.phase === "backoff",
        "destination backoff",
        procs,
      );
      assertEquals([dropped.state, dropped.source.phase], ["BACKOFF", "streaming"]);
      caster2 = wgedge(undefined, casterArgs(dst2, `${dir}/mounts.json`), {});
      procs.push(caster2);
      const again = await waitStation(
        undefined,
        admin,
        "DSTKILL",
        (s) => s.state === "RUNNING" && s.destination.attempts > before.destination.attempts,
        "RUNNING with a new destination session",
        procs,
      );
      assert(Date.now() - killedAt >= 15_000, "at least 15 s after the destination drop");
      assertEquals(again.source.attempts, before.source.attempts, "the source stayed connected");
      assert(again.frames > before.frames);
      const { text } = await ntripApi(undefined, admin);
      assert(!text.includes("not-the-password") && !text.includes("roverpw"), "no password in the API");
    } finally {
      feeding = false;
      for (const f of feeders) await f.stop().catch(() => {});
      await Promise.allSettled(feeds);
      await stopAll(procs);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
  { tools: TOOLS },
);
