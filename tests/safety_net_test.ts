/** The process-wide safety net: escaped errors are logged and counted, and the process keeps running. */
import { assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { DENO_JSON } from "./helpers/interop.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { UNEXPECTED_ERROR_EXIT } from "../src/util/safety_net.ts";

const SAFETY_NET = new URL("../src/util/safety_net.ts", import.meta.url).href;

Deno.test("safety net: an unhandled rejection and a throwing timer are logged, counted, and not fatal", async () => {
  const script = `
    import { installSafetyNet, unexpectedErrors } from "${SAFETY_NET}";
    installSafetyNet();
    Promise.reject(new Error("nobody awaited me"));
    setTimeout(() => { throw new TypeError("thrown in a timer"); }, 0);
    // Bounded: the two events arrive within a few turns of the event loop.
    for (let i = 0; i < 200 && unexpectedErrors() < 2; i++) await new Promise((r) => setTimeout(r, 10));
    console.log("still running, caught " + unexpectedErrors());
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", DENO_JSON, script],
    env: { WGEDGE_FATAL_UNEXPECTED: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout), stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, stderr);
  assertEquals(stdout.trim(), "still running, caught 2");
  assertStringIncludes(stderr, "unhandled promise rejection (a bug; the process keeps running)");
  assertStringIncludes(stderr, "nobody awaited me");
  assertStringIncludes(stderr, "uncaught exception (a bug; the process keeps running)");
  assertStringIncludes(stderr, "thrown in a timer");
});

Deno.test("safety net: with WGEDGE_FATAL_UNEXPECTED=1 (the test suite's setting) such a bug ends the process", async () => {
  const script = `
    import { installSafetyNet } from "${SAFETY_NET}";
    installSafetyNet();
    Promise.reject(new Error("nobody awaited me"));
    await new Promise((r) => setTimeout(r, 5000));
    console.log("should not get here");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", DENO_JSON, script],
    env: { WGEDGE_FATAL_UNEXPECTED: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, UNEXPECTED_ERROR_EXIT);
  assertEquals(new TextDecoder().decode(out.stdout), "");
  assertStringIncludes(new TextDecoder().decode(out.stderr), "nobody awaited me");
});

Deno.test("safety net: the count is exported in /metrics", () => {
  const text = new ServiceRegistry().metrics.render();
  assertStringIncludes(text, "# TYPE wgedge_unexpected_errors_total counter");
  assertStringIncludes(text, "\nwgedge_unexpected_errors_total 0\n");
});
