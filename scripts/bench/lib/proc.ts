/**
 * Processes, commands and /proc readings for the namespace benchmarks (ntrip.ts, tunnels.ts): every command
 * bounded in time, every spawned process registered with a Resources that stops it by its pid and removes the
 * namespaces, UAPI sockets and temp directory the run created.
 */

import { DENO_JSON } from "../../../tests/helpers/interop.ts";

const DENO = Deno.execPath();

/** USER_HZ: the unit of utime/stime in /proc/PID/stat on every Linux we run on. */
export const CLOCK_TICKS_PER_SEC = 100;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const MiB = (kib: number) => kib / 1024;

/** A numeric flag (or its fallback) in min..max; exits 2 with a message otherwise. */
export function numberFlag(
  name: string,
  given: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const x = Number(given ?? fallback);
  if (!Number.isFinite(x) || x < min || x > max) {
    console.error(`--${name}: expected a number in ${min}..${max}, got "${given}"`);
    Deno.exit(2);
  }
  return x;
}

// ---------------------------------------------------------------------------------------------------------
// Processes and commands (every one bounded in time)

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(
  cmd: string[],
  opts: { stdin?: string; check?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const res = {
    code: out.signal ? -1 : out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (opts.check !== false && res.code !== 0) {
    throw new Error(
      `${cmd.slice(0, 8).join(" ")} exited ${res.code}: ${(res.stderr || res.stdout).slice(0, 500)}`,
    );
  }
  return res;
}

/** Collects a piped stream into a growing string (the last 4 MiB of a chatty log are kept). */
export function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let buf = "";
  const dec = new TextDecoder();
  const done = (async () => {
    try {
      for await (const chunk of stream) {
        buf += dec.decode(chunk, { stream: true });
        if (buf.length > 8 << 20) buf = buf.slice(-(4 << 20));
      }
    } catch { /* closed */ }
  })();
  return { text: () => buf, done };
}

/** `deno run -A --config deno.json SCRIPT ARGS...`: how the benchmarks start wgedge and their own workers. */
export function denoRun(script: string, ...args: string[]): string[] {
  return [DENO, "run", "-A", "--config", DENO_JSON, script, ...args];
}

export interface Proc {
  name: string;
  child: Deno.ChildProcess;
  pid: number;
  exited: () => boolean;
  /** "running", "exit code N" or "killed by SIG...". */
  how: string;
  stdout: ReturnType<typeof collect>;
  stderr: ReturnType<typeof collect>;
  stdin?: WritableStreamDefaultWriter<Uint8Array>;
}

/** What a process has written, stderr then stdout (its log, for the summaries). */
export function logText(p: Proc): string {
  return p.stderr.text() + "\n" + p.stdout.text();
}

/**
 * Everything a run (or a phase of one) creates, torn down by cleanup(): processes (SIGTERM by pid, SIGKILL
 * after 10 s), then any process still inside one of its namespaces, then the namespaces, the UAPI sockets and
 * the temp directory.
 */
export class Resources {
  readonly procs: Proc[] = [];
  readonly namespaces: string[] = [];
  readonly sockets: string[] = [];
  dir?: string;
  #cleaned?: Promise<void>;
  readonly #env: Record<string, string>;
  readonly #namespacesTimeoutMs: number;

  /**
   * env: variables set (by `env`) for every process spawnIn starts, before its own; namespacesTimeoutMs: the
   * bound on killing what is left in the namespaces and deleting them.
   */
  constructor(opts: { env?: Record<string, string>; namespacesTimeoutMs?: number } = {}) {
    this.#env = opts.env ?? {};
    this.#namespacesTimeoutMs = opts.namespacesTimeoutMs ?? 120_000;
  }

  spawn(name: string, cmd: string[], opts: { env?: Record<string, string>; stdin?: boolean } = {}): Proc {
    const child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      env: opts.env,
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const p: Proc = {
      name,
      child,
      pid: child.pid,
      exited: () => exited,
      how: "running",
      stdout: collect(child.stdout),
      stderr: collect(child.stderr),
      stdin: opts.stdin ? child.stdin.getWriter() : undefined,
    };
    child.status.then((st) => {
      exited = true;
      p.how = st.signal ? `killed by ${st.signal}` : `exit code ${st.code}`;
    });
    this.procs.push(p);
    return p;
  }

  /** `ip netns exec NS [env K=V...] CMD`: both exec in place, so the pid is CMD's own. */
  spawnIn(ns: string, name: string, cmd: string[], env: Record<string, string> = {}, stdin = false): Proc {
    const all = { ...this.#env, ...env };
    const envArgs = Object.keys(all).length
      ? ["env", ...Object.entries(all).map(([k, v]) => `${k}=${v}`)]
      : [];
    return this.spawn(name, ["ip", "netns", "exec", ns, ...envArgs, ...cmd], { stdin });
  }

  /** `ip netns add NS` with its loopback up; registered first, so cleanup() deletes it. */
  async addNetns(ns: string): Promise<void> {
    this.namespaces.push(ns);
    await run(["ip", "netns", "add", ns]);
    await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }

  cleanup(): Promise<void> {
    this.#cleaned ??= this.#cleanup();
    return this.#cleaned;
  }

  async #cleanup(): Promise<void> {
    await Promise.all(this.procs.map((p) => stopProc(p, 10_000)));
    if (this.namespaces.length) {
      // Anything still in our namespaces was started by us (socat clients past their `timeout`, at worst).
      const script =
        'for ns in "$@"; do for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p"; done; ' +
        'ip netns del "$ns" 2>/dev/null; done; exit 0';
      await run(["sh", "-c", script, "sh", ...this.namespaces], {
        check: false,
        timeoutMs: this.#namespacesTimeoutMs,
      }).catch(
        (e) => console.error(`cleanup: deleting namespaces: ${(e as Error).message}`),
      );
    }
    for (const s of this.sockets) await Deno.remove(s).catch(() => {});
    if (this.dir) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Until remove(): the first SIGINT or SIGTERM prints "interrupted: cleaning up", runs cleanup and exits 130;
 * interrupted() tells whether one came.
 */
export function cleanupOnSignals(
  cleanup: () => Promise<void>,
): { interrupted: () => boolean; remove: () => void } {
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error("interrupted: cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  return {
    interrupted: () => interrupted,
    remove: () => {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
    },
  };
}

/** Closes its stdin, sends signal, SIGKILL after graceMs; then waits (bounded) for its output's end. */
export async function stopProc(p: Proc, graceMs: number, signal: Deno.Signal = "SIGTERM"): Promise<void> {
  await p.stdin?.close().catch(() => {});
  if (!p.exited()) {
    try {
      p.child.kill(signal);
    } catch { /* gone */ }
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const s = await Promise.race([
    p.child.status,
    new Promise<null>((r) => timer = setTimeout(() => r(null), graceMs)),
  ]);
  clearTimeout(timer);
  if (s === null) {
    try {
      p.child.kill("SIGKILL");
    } catch { /* gone */ }
    await Promise.race([p.child.status, sleep(5000)]);
  }
  await drained(p);
}

/** Waits (at most 2 s) until an exited process's output has been read to the end. */
export async function drained(p: Proc): Promise<void> {
  await Promise.race([Promise.all([p.stdout.done, p.stderr.done]), sleep(2000)]);
}

/** Polls cond every intervalMs until true; bounded by timeoutMs (and so by a count). */
export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / intervalMs) + 1; i++) {
    if (await cond()) return;
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

/**
 * `ip netns exec` and `env` exec in place: within moments p's pid is the program's own. Waits (at most 10 s,
 * quietly) until /proc/PID/comm says so or p has exited, so /proc readings are of the program.
 */
export async function execedInto(p: Proc, program: string, what: string): Promise<void> {
  const isProgram = () => {
    try {
      return Deno.readTextFileSync(`/proc/${p.pid}/comm`).startsWith(program);
    } catch {
      return false;
    }
  };
  await waitUntil(() => p.exited() || isProgram(), what, 10_000, 20).catch(() => {});
}

// ---------------------------------------------------------------------------------------------------------
// /proc readings

/** utime + stime of /proc/PID/stat in seconds; NaN once the process is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the parenthesised command name: utime is field 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_SEC;
  } catch {
    return NaN;
  }
}

/**
 * The machine's CPU time so far in USER_HZ ticks, all CPUs summed (the `cpu` line of /proc/stat): idle
 * (with iowait), irq + softirq, steal, and busy (everything but idle). With NO_HZ the kernel tracks idle
 * exactly while user and system are sampled at the tick, so wall time x CPUs - idle is the better measure of
 * how full the machine was; `busy` is the sum of the sampled fields.
 */
export function machineTicks(): { idle: number; softirq: number; steal: number; busy: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(
    Number,
  );
  return {
    idle: idle + iowait,
    softirq: irq + softirq,
    steal,
    busy: user + nice + system + irq + softirq + steal,
  };
}

/** The memory fields of /proc/PID/status and smaps_rollup, in KiB (NaN where a field is missing). */
export interface MemKiB {
  /** VmRSS. */
  rss: number;
  /** VmHWM, the peak RSS. */
  hwm: number;
  /** Pss of smaps_rollup. */
  pss: number;
  /** RssAnon (heap, stacks). */
  anon: number;
  /** RssFile (mapped files: the deno binary). */
  file: number;
}

/** Throws when the process is gone. */
export function memKiB(pid: number): MemKiB {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  return {
    rss: Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN),
    hwm: Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN),
    pss: Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? NaN),
    anon: Number(/^RssAnon:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN),
    file: Number(/^RssFile:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN),
  };
}

export function expectProgram(pid: number, name: string): void {
  const comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  if (!comm.startsWith(name)) throw new Error(`pid ${pid} is "${comm}", not ${name}`);
}

export function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}
