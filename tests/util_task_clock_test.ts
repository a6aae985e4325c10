/** taskClock: one reading of the system clock per synchronous run, a fresh one after the next microtask. */
import { assert, assertEquals } from "./helpers/assert.ts";
import { taskClock } from "../src/util/clock.ts";

Deno.test("taskClock: now() is read once per task and again after a microtask", async () => {
  const first = taskClock.now();
  // Spin (bounded) until the system clock has moved on: the task clock must not.
  for (let i = 0; i < 10_000_000 && performance.now() <= first; i++) { /* spin */ }
  assert(performance.now() > first, "the system clock advanced during the spin");
  assertEquals(taskClock.now(), first, "same task, same reading");
  await Promise.resolve();
  const second = taskClock.now();
  assert(second > first, `read again after a microtask: ${second} > ${first}`);
  assertEquals(taskClock.wallMs() > 1_600_000_000_000, true, "wall time is the system's");
});
