/** `wgedge check-config` as a real process, for the tests that read what it prints. */
import { DENO_JSON, MAIN_TS } from "./interop.ts";

export interface CheckConfigResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs check-config with only the given wgedge variables: the caller's WG_, WGEDGE_ and NTRIP_ ones (the test
 * task sets some) are dropped, the rest of its environment (PATH, HOME) is kept.
 */
export async function runCheckConfig(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<CheckConfigResult> {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("WG_") && !k.startsWith("WGEDGE_") && !k.startsWith("NTRIP_")) base[k] = v;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_JSON, MAIN_TS, "check-config", ...args],
    env: { ...base, ...env, NO_COLOR: "1" },
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
