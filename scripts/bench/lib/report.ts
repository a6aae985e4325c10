/**
 * What the namespace benchmarks (ntrip.ts, tunnels.ts) print besides their tables: the machine and checkout
 * they ran on, and summaries of the JSON logs of the processes they started.
 */
import { run } from "./proc.ts";

/** The first line of a command's output ("?" when it cannot be run). */
export async function firstLine(cmd: string[]): Promise<string> {
  return (await run(cmd, { check: false, timeoutMs: 10_000 }).catch(() => ({ stdout: "?" }))).stdout
    .split("\n")[0]
    .trim();
}

/** `nproc N; MODEL; Linux RELEASE; M MiB RAM`. */
export async function machineLine(): Promise<string> {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown";
  return `nproc ${navigator.hardwareConcurrency}; ${model}; Linux ${await firstLine(["uname", "-r"])}; ` +
    `${
      Math.round(Number(/MemTotal:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1]) / 1024)
    } MiB RAM`;
}

/** The checkout at repo: HEAD's short hash ("" outside git) and `git status --porcelain` lines of src/, main.ts. */
export async function checkout(repo: string): Promise<{ head: string; dirty: string[] }> {
  const head = await firstLine(["git", "-C", repo, "rev-parse", "--short", "HEAD"]);
  const dirty = (await run(["git", "-C", repo, "status", "--porcelain", "--", "src", "main.ts"], {
    check: false,
    timeoutMs: 10_000,
  })).stdout.trim().split("\n").filter(Boolean);
  return { head, dirty };
}

/** `C x KEY` for the `top` most frequent keys, most frequent first, joined by "; ". */
export function topCounts(counts: Map<string, number>, top: number): string {
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, c]) => `${c} x ${k}`).join(
    "; ",
  );
}

/** A line of a JSON log, as far as the summaries read it. */
export interface LogLine {
  level?: string;
  msg?: string;
  message?: string;
  error?: string;
}

/**
 * The warn/error lines of a JSON log counted by key(line) (the 8 most frequent); lines that are not JSON (a
 * Deno warning, a crash trace) and look like trouble count by their first textChars characters.
 */
export function logSummary(
  text: string,
  key: (j: LogLine, line: string) => string,
  textChars: number,
): string {
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let j: LogLine | undefined;
    try {
      j = JSON.parse(line);
    } catch {
      if (/warn|error|panic|uncaught/i.test(line)) {
        const k = `(text) ${line.slice(0, textChars)}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      continue;
    }
    if (j?.level === "warn" || j?.level === "error") {
      const k = key(j, line);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  if (counts.size === 0) return "no warn/error lines";
  return topCounts(counts, 8);
}
