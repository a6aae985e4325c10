/** Runs wgedge commands inside a namespace and waits on their output (bounded). */
import { collect, DENO_JSON, MAIN_TS, type Netns, waitFor } from "./interop.ts";

export interface WgedgeProc {
  child: Deno.ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves the exit code (after the process ends by itself). */
  status: Promise<Deno.CommandStatus>;
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

export function startWgedge(ns: Netns, args: string[], env: Record<string, string> = {}): WgedgeProc {
  return watch(ns.spawnWgedge(args, { stdout: "piped", stderr: "piped", env: { NO_COLOR: "1", ...env } }));
}

/** wgedge in this network namespace (for tests that need no root: loopback only, ports from freePort()). */
export function startWgedgeHere(args: string[], env: Record<string, string> = {}): WgedgeProc {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_JSON, MAIN_TS, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return watch(child);
}

function watch(child: Deno.ChildProcess): WgedgeProc {
  const out = collect(child.stdout), err = collect(child.stderr);
  const status = child.status;
  return {
    child,
    stdout: out.text,
    stderr: err.text,
    status,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      const s = await status;
      await Promise.all([out.done, err.done]);
      return s;
    },
  };
}

/** Runs wgedge to completion; returns code and output. */
export async function runWgedge(ns: Netns, args: string[], env: Record<string, string> = {}) {
  const p = startWgedge(ns, args, env);
  const s = await p.status;
  await p.stop();
  return { code: s.code, stdout: p.stdout(), stderr: p.stderr() };
}

export async function waitForOutput(p: WgedgeProc, text: string, what = text, tries = 400): Promise<void> {
  await waitFor(
    () => p.stderr().includes(text) || p.stdout().includes(text),
    `${what}\n--- stderr ---\n${p.stderr()}`,
    tries,
    50,
  );
}

export async function writeConf(dir: string, name: string, text: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  return path;
}
