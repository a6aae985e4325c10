/**
 * The last line of defence for a process that runs for months: an error that escapes every handler (a
 * rejected promise nobody awaited, a throw inside a timer callback) is logged with its stack and counted in
 * `/metrics`, and the process keeps serving, instead of Deno's default of exiting and taking every relay,
 * tunnel and mapping down with it. Each one is still a bug: the log line says so, and tests fail on them
 * (Deno's test runner has its own handlers; this is installed only by main.ts).
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

export function installSafetyNet(): void {
  if (installed) return;
  installed = true;
  const log = logger("process");
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    count++;
    log.error("unhandled promise rejection (a bug; the process keeps running)", {
      error: describe(e.reason),
    });
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    count++;
    log.error("uncaught exception (a bug; the process keeps running)", {
      error: describe(e.error ?? e.message),
    });
  });
}
