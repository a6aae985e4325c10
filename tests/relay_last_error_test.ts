/**
 * A relay's lastError carries its time, and a later success makes it history: a real TCP relay on loopback
 * (kernel TCP target), time from a ManualClock. One refused dial, then a good connection: the dashboard's
 * problems box is empty and the relay's row says how long ago the error was; a new error makes it a problem
 * again.
 */
import { RelayService } from "../src/services/relay/service.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { createHostNet } from "../src/net/host.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging } from "../src/util/log.ts";
import { renderDashboard } from "../src/services/admin/dashboard.ts";
import { within } from "./helpers/wait.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";

configureLogging({ level: "error" });

/** Connects through the relay and reads until it closes (refused target) or echoes `x` (live target). */
async function connectOnce(port: number): Promise<string> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await c.write(new TextEncoder().encode("x"));
    const buf = new Uint8Array(8);
    const n = await within(c.read(buf), "the relay to answer or close").catch((e) => {
      if (e instanceof Deno.errors.ConnectionReset) return null;
      throw e;
    });
    return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    c.close();
  }
}

function page(svc: RelayService, clock: ManualClock): string {
  return renderDashboard({ relays: svc.status() }, 5, clock.wallMs());
}

Deno.test("relay last error: timed, leaves the problems box after a success, returns with a new error", async () => {
  const clock = new ManualClock();
  const targetPort = freePort(); // nothing listens yet: the first dial is refused
  const inPort = freePort();
  const svc = new RelayService({ listenNet: createHostNet(), clock });
  await svc.apply(
    parseRelayConfig({ RELAY_1: `${inPort};${targetPort};127.0.0.1;TCP`, ENABLE_LOGGING: "n" }),
    true,
  );
  let target: Deno.TcpListener | undefined;
  try {
    assertEquals(await connectOnce(inPort), "");
    let st = svc.status()[0];
    assertEquals(st.failed, 1);
    assert(st.lastError, "a refused dial is the relay's last error");
    assertEquals(st.lastErrorAt, new Date(clock.wallMs()).toISOString());
    assertEquals(st.lastSuccessAt, undefined);
    let html = page(svc, clock);
    assert(html.includes('<section id="problems" class="bad">'), "the refused dial is a problem");

    clock.advance(3 * 60_000);
    target = Deno.listen({ hostname: "127.0.0.1", port: targetPort });
    const echo = (async () => {
      const c = await target!.accept();
      const buf = new Uint8Array(8);
      const n = await c.read(buf);
      if (n) await c.write(buf.subarray(0, n));
      c.close();
    })();
    assertEquals(await connectOnce(inPort), "x");
    await within(echo, "the target to echo");
    st = svc.status()[0];
    assertEquals(st.total, 2);
    assertEquals(st.lastSuccessAt, new Date(clock.wallMs()).toISOString());
    assertEquals(
      st.lastErrorAt,
      new Date(clock.wallMs() - 3 * 60_000).toISOString(),
      "the error keeps its time",
    );
    html = page(svc, clock);
    assert(
      html.includes('<p id="problems" class="allok">No problem found.</p>'),
      "a past error is no problem",
    );
    assert(/last error <span title="[^"]+">3 min ago<\/span>: /.test(html), "the row shows the error's age");

    target.close();
    target = undefined;
    clock.advance(60_000);
    assertEquals(await connectOnce(inPort), "");
    st = svc.status()[0];
    assertEquals(st.failed, 2);
    assertEquals(st.lastErrorAt, new Date(clock.wallMs()).toISOString());
    html = page(svc, clock);
    assert(
      html.includes('<section id="problems" class="bad">'),
      "an error after the success is a problem again",
    );
    assert(html.includes("last error <span"), "the row still shows the error with its age");
  } finally {
    target?.close();
    await svc.stop();
  }
});
