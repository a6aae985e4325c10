/**
 * The last line of defence for a process that runs for months: an error that escapes every handler (a
 * rejected promise nobody awaited, a throw inside a timer callback) is logged with its stack and counted in
 * `/metrics`, and the process keeps serving, instead of Deno's default of exiting and taking every relay,
 * tunnel and mapping down with it. Each one is still a bug: the log line says so. The test suite sets
 * WGEDGE_FATAL_UNEXPECTED=1 (deno.json's test task), which makes every wgedge process it starts exit with
 * code 70 after logging, so such a bug fails a test instead of hiding behind the net.
 */
import { logger } from "./log.ts";

let installed = false;
let count = 0;

/** Errors caught by the safety net since start (exported as wgedge_unexpected_errors_total). */
export function unexpectedErrors(): number {
  return count;
}

function describe(reason: unknown): string {
  if (reason instanceof Error) return reason.stack ?? `${reason.name}: ${reason.message}`;
  try {
    return String(reason);
  } catch {
    return "(unprintable value)";
  }
}

/** Exit code when WGEDGE_FATAL_UNEXPECTED=1 (EX_SOFTWARE, "internal software error"). */
export const UNEXPECTED_ERROR_EXIT = 70;

function fatalWanted(): boolean {
  try {
    return Deno.env.get("WGEDGE_FATAL_UNEXPECTED") === "1";
  } catch {
    return false;
  }
}

export function installSafetyNet(): void {
  if (installed) return;
  installed = true;
  const log = logger("process");
  const fatal = fatalWanted();
  const report = (what: string, error: unknown) => {
    count++;
    log.error(`${what} (a bug; the process keeps running)`, { error: describe(error) });
    if (fatal) Deno.exit(UNEXPECTED_ERROR_EXIT);
  };
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    report("unhandled promise rejection", e.reason);
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    report("uncaught exception", e.error ?? e.message);
  });
}
