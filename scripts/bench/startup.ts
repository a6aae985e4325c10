/**
 * Start-up cost of light commands: wall time and peak RSS of `wgedge version`, `wgedge --help` and
 * `wgedge genkey`, each run N times as a fresh process under GNU time (`/usr/bin/time -f "%e %M"`); medians.
 * A bare `deno run` of a one-line script is measured the same way: the floor any `deno run` pays.
 *
 *   deno run -A scripts/bench/startup.ts [--runs 10] [--binary PATH]
 *
 * By default wgedge is `deno run -A main.ts` from this checkout (module cache warm: one untimed run first);
 * --binary measures a compiled wgedge (`deno task compile`) instead. Not a test: nothing is asserted.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "10" }, binary: { type: "string" } },
});
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 1000) {
  console.error(`--runs: expected an integer in 1..1000, got "${values.runs}"`);
  Deno.exit(2);
}
const ROOT = new URL("../../", import.meta.url).pathname;
const DENO = Deno.execPath();
const wgedge = values.binary
  ? [values.binary]
  : [DENO, "run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}main.ts`];

/** One run under GNU time: [wall seconds, peak RSS KiB]. */
async function timed(cmd: string[]): Promise<[number, number]> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%e %M", ...cmd],
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const last = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "";
  const [secs, kib] = last.split(" ").map(Number);
  if (!Number.isFinite(secs) || !Number.isFinite(kib)) {
    throw new Error(`${cmd.join(" ")}: no timing in "${last}"`);
  }
  return [secs, kib];
}

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
}

const bareDir = await Deno.makeTempDir({ prefix: "wgedge-startup-" });
try {
  await Deno.writeTextFile(`${bareDir}/bare.ts`, "console.log(1);\n");
  const cases: [string, string[]][] = [
    ["bare `deno run` of console.log(1)", [DENO, "run", `${bareDir}/bare.ts`]],
    ["wgedge version", [...wgedge, "version"]],
    ["wgedge --help", [...wgedge, "--help"]],
    ["wgedge genkey", [...wgedge, "genkey"]],
  ];
  const load = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const loadBefore = load();
  console.log(`| command | wall s (median of ${RUNS}) | min | peak RSS MiB (median) |`);
  console.log("|---|---:|---:|---:|");
  for (const [label, cmd] of cases) {
    await timed(cmd); // warm the module cache
    const secs: number[] = [], kib: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const [s, k] = await timed(cmd);
      secs.push(s);
      kib.push(k);
    }
    console.log(
      `| ${label} | ${median(secs).toFixed(2)} | ${Math.min(...secs).toFixed(2)} | ${
        (median(kib) / 1024).toFixed(1)
      } |`,
    );
  }
  console.log(
    `\n${values.binary ? `binary ${values.binary}` : "deno run main.ts"}; deno ${Deno.version.deno}; ` +
      `load average before ${loadBefore}, after ${load()}`,
  );
} finally {
  await Deno.remove(bareDir, { recursive: true });
}
