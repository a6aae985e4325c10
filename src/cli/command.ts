/** The shape of a CLI command and the shared flag parsing (node:util parseArgs, since JSR is unreachable). */
import { parseArgs, type ParseArgsConfig } from "node:util";

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

/** Misuse of the command line: printed with the usage line, exit 2. */
export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses args with `--help`/-h added; returns null when help was printed. Unknown flags and missing values
 * become UsageError with parseArgs's message.
 */
export function parseFlags<O extends Options>(
  cmd: Pick<Command, "name" | "usage" | "summary">,
  args: string[],
  options: O,
  allowPositionals = true,
) {
  try {
    const parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals,
      strict: true,
    });
    if ((parsed.values as Record<string, unknown>).help) {
      console.log(`${cmd.summary}\n\nUsage: wgedge ${cmd.usage}`);
      return null;
    }
    return parsed;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Parses an integer flag within [min, max] or throws UsageError naming the flag. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`--${name}: expected an integer, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name}: expected ${min}..${max}, got ${n}`);
  return n;
}

/** Resolves when SIGINT or SIGTERM arrives (or the signal aborts). */
export function waitForShutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handlers: [Deno.Signal, () => void][] = [];
    for (const sig of ["SIGINT", "SIGTERM"] as Deno.Signal[]) {
      const h = () => {
        for (const [s, hh] of handlers) Deno.removeSignalListener(s, hh);
        resolve(sig);
      };
      handlers.push([sig, h]);
      Deno.addSignalListener(sig, h);
    }
  });
}
