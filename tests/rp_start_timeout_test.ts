/**
 * rpc's start timeout governs the whole start: every heartbeat attempt's request timeout is cut to what is
 * left of it (a 10 s request timeout made `--start-timeout 5` take 10 s). Manual clock, a tunnel Net that
 * records the bound of each dial and refuses it.
 */
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { parseRoute, RpClient, RpClientError } from "../src/services/rp/client.ts";
import type { Net } from "../src/net/types.ts";
import { ManualClock } from "../src/util/clock.ts";

Deno.test("rpc start: no heartbeat attempt outlasts the start timeout", async () => {
  const clock = new ManualClock();
  const bounds: number[] = [];
  const refusing = {
    dialTcp(_host: string, _port: number, opts?: { timeoutMs?: number }) {
      bounds.push(opts?.timeoutMs ?? -1);
      return Promise.reject(new Error("connection refused"));
    },
  } as unknown as Net;
  const client = new RpClient({
    tunnelNet: refusing,
    hostNet: refusing,
    routes: [parseRoute("127.0.0.1:8080-18080")],
    serverApi: { host: "10.0.0.1" },
    clock,
    backoffInitialMs: 1000,
  });
  let settled = false;
  const started = client.start(5000);
  started.then(() => (settled = true), () => (settled = true));
  for (let i = 0; i < 100 && !settled; i++) {
    await new Promise((r) => setTimeout(r, 0));
    clock.advance(500);
  }
  const e = await assertRejects(() => started, "after 3 attempt(s)");
  assert(e instanceof RpClientError, String(e));
  // Attempts at 0, 1 s and 3 s of a 5 s start: each bounded by the time left, not the 10 s request timeout.
  assertEquals(bounds, [5000, 4000, 2000]);
});
