/**
 * NTRIP relay tests against real peers (ntrip_relay_interop_test.ts, ntrip_tls_interop_test.ts): child
 * processes whose output is kept for the message when a wait gives up, wgedge / str2str launchers (on the
 * host or inside a namespace), the relay's /api/v1/ntrip and a wait on one station's status, and the check
 * that a client received the recording's frames whole.
 */
import { DENO_JSON, MAIN_TS, type Netns, waitFor } from "./interop.ts";
import { assert, assertEquals } from "./assert.ts";
import { within } from "./tcp.ts";
import { framesOf } from "./ntrip_peer.ts";

const DENO = Deno.execPath();

/** The recording both tests feed (1 Hz, 26 epochs of 7 frames). */
export const F9T = Deno.readFileSync(new URL("../fixtures/rtcm3/f9t.rtcm3", import.meta.url));
export const SOURCE_FRAMES = framesOf(F9T);
/** str2str's sourcetable line for its caster output (mount SRC). */
export const SRC_STR = "SRC:RTCM 3.3;1005(1),1077(1);2;GPS;TEST;USA;44.06;-121.32;0;0;x;none;B;N;5000;test";

/** A child process (optionally inside a namespace) whose output is collected. */
export class Proc {
  readonly child: Deno.ChildProcess;
  #output = "";
  readonly #drains: Promise<void>[];

  constructor(
    readonly label: string,
    cmd: string[],
    opts: { env?: Record<string, string>; stdin?: boolean } = {},
  ) {
    this.child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      env: { NO_COLOR: "1", ...opts.env },
      stdin: opts.stdin ? "piped" : "null",
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

  /** SIGTERM, then SIGKILL when it does not exit within 5 s. */
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

/** The last 3000 characters of each process's output, labelled. */
export function outputs(procs: Proc[]): string {
  return procs.map((p) => `--- ${p.label}\n${p.output.slice(-3000)}`).join("\n");
}

/** Stops the processes, the last started first. */
export async function stopAll(procs: Proc[]): Promise<void> {
  for (const p of [...procs].reverse()) await p.stop().catch(() => {});
}

/** Runs `cmd` inside `ns` (or on the host when ns is undefined). */
export function inNs(ns: Netns | undefined, cmd: string[]): string[] {
  return ns ? ["ip", "netns", "exec", ns.name, ...cmd] : cmd;
}

/** `wgedge ARGS...` from the source tree (inside ns when given). */
export function wgedge(
  ns: Netns | undefined,
  args: string[],
  env: Record<string, string>,
  label = "wgedge",
): Proc {
  return new Proc(label, inNs(ns, [DENO, "run", "-A", "--config", DENO_JSON, MAIN_TS, ...args]), { env });
}

/** The arguments of `wgedge ntrip caster` on 127.0.0.1:port with a mounts file (and an admin API). */
export function casterArgs(port: number, mountsFile: string, admin?: number): string[] {
  return [
    "ntrip",
    "caster",
    "--listen",
    `127.0.0.1:${port}`,
    "--mounts",
    mountsFile,
    ...(admin === undefined ? [] : ["--admin-listen", `127.0.0.1:${admin}`]),
  ];
}

/** The arguments of `wgedge ntrip relay` with a stations file and its admin API on 127.0.0.1:admin. */
export function relayArgs(stationsFile: string, admin: number): string[] {
  return ["ntrip", "relay", "-c", stationsFile, "--admin-listen", `127.0.0.1:${admin}`];
}

/** Writes value as JSON (indented by `space` when given), mode 0600. */
export async function writeJson(path: string, value: unknown, space?: number): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(value, null, space), { mode: 0o600 });
}

/** str2str serving what is written to its tcpsvr input as mount SRC (v1 caster, rover:roverpw). */
export function str2strSourceCaster(ns: Netns | undefined, input: number, caster: number): Proc {
  return new Proc(
    "str2str source caster",
    inNs(ns, [
      "str2str",
      "-in",
      `tcpsvr://:${input}`,
      "-out",
      `ntripc://rover:roverpw@:${caster}/${SRC_STR}`,
    ]),
  );
}

export interface SideStatus {
  phase: string;
  path: string | null;
  endpoint: string | null;
  lastReply: string | null;
  attempts: number;
  version: number | string;
  tls: boolean;
}

export interface StationStatus {
  id: string;
  state: string;
  lastError: { side: string; kind: string; message: string } | null;
  nextRetryAt: string | null;
  source: SideStatus;
  destination: SideStatus;
  frames: number;
  framesOut: number;
  crcErrors: number;
  bytesIn: number;
  bytesOut: number;
  ggaSent: number;
}

/** GET /api/v1/ntrip on the admin API (inside the namespace through curl). */
export async function ntripApi(
  ns: Netns | undefined,
  admin: number,
): Promise<{ text: string; stations: StationStatus[] }> {
  const url = `http://127.0.0.1:${admin}/api/v1/ntrip`;
  let text: string;
  if (ns) {
    const r = await ns.exec(["curl", "-sS", "--max-time", "5", url], { check: false });
    text = r.stdout;
  } else {
    const res = await within(fetch(url), "the admin API");
    text = await res.text();
  }
  return { text, stations: JSON.parse(text).stations };
}

/** Station id's status, undefined while the API does not answer. */
export async function station(
  ns: Netns | undefined,
  admin: number,
  id: string,
): Promise<StationStatus | undefined> {
  try {
    return (await ntripApi(ns, admin)).stations.find((s) => s.id === id);
  } catch {
    return undefined;
  }
}

/** Waits until station id's status meets cond; gives up with its last status and the processes' output. */
export async function waitStation(
  ns: Netns | undefined,
  admin: number,
  id: string,
  cond: (s: StationStatus) => boolean,
  what: string,
  procs: Proc[] = [],
): Promise<StationStatus> {
  let last: StationStatus | undefined;
  await waitFor(async () => {
    last = await station(ns, admin, id);
    return last !== undefined && cond(last);
  }, () => `${id}: ${what}; last status ${JSON.stringify(last)}\n${outputs(procs)}`);
  return last!;
}

/** Whether bytes end with the recording's last frame. */
export function endsWithLastFrame(bytes: Uint8Array): boolean {
  const last = SOURCE_FRAMES[SOURCE_FRAMES.length - 1];
  const frames = framesOf(bytes);
  const tail = frames[frames.length - 1];
  return frames.length > 0 && tail.length === last.length && tail.every((b, i) => b === last[i]);
}

/**
 * What a client received must be the source's frames from some frame on, to the last one, frame by frame
 * (the client joined on a frame boundary after the stream began), with at most maxSkipped frames missed.
 */
export function assertFramesTail(got: Uint8Array, maxSkipped: number): void {
  const frames = framesOf(got);
  assertEquals(
    frames.reduce((n, f) => n + f.length, 0),
    got.length,
    "the file holds only whole frames (nothing between or around them)",
  );
  const skipped = SOURCE_FRAMES.length - frames.length;
  assert(skipped >= 0 && skipped <= maxSkipped, `${frames.length} frames of ${SOURCE_FRAMES.length}`);
  assertEquals(
    frames,
    SOURCE_FRAMES.slice(skipped),
    "frame by frame: the source's frames from a boundary on",
  );
}
