/** Debian `prometheus`'s promtool as the reference check of wgedge's /metrics text (CI installs it). */
import { onPath } from "./interop.ts";

/** Why the reference check cannot run here, or null. */
export const PROMTOOL_MISSING = onPath("promtool")
  ? null
  : "promtool not installed (Debian package prometheus)";

/** `promtool check metrics`, Prometheus's own parser and linter: throws with its findings unless it accepts. */
export async function promtoolCheck(text: string): Promise<void> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  const findings = `${dec.decode(out.stderr)}${dec.decode(out.stdout)}`.trim();
  // promtool exits 0 on lint findings that are not errors only in some versions: any output is a problem.
  if (!out.success || findings !== "") {
    throw new Error(`promtool check metrics (exit ${out.code}): ${findings}`);
  }
}
