import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { echoWithRetry } from "./helpers/udp.ts";

/** An echo server that drops the first `drop` datagrams it receives. */
function lossyEcho(drop: number): { sock: Deno.DatagramConn; done: Promise<void> } {
  const sock = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  let seen = 0;
  const done = (async () => {
    try {
      for (;;) {
        const [d, from] = await sock.receive();
        if (seen++ >= drop) await sock.send(d, from);
      }
    } catch { /* closed */ }
  })();
  return { sock, done };
}

Deno.test("echoWithRetry: still sees the reply after a lost datagram (one receive kept across retries)", async () => {
  const echo = lossyEcho(2);
  const client = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    const to = echo.sock.addr as Deno.NetAddr;
    // The first two datagrams are dropped, so at least three are sent; more when a loaded machine delays
    // the echo past the (short) retry wait. A fresh receive per attempt would never see the echo at all.
    const sends = await echoWithRetry(client, to, "first", { firstWaitMs: 50 });
    assert(sends >= 3, `sends ${sends}`);
    // Late echoes of "first" are skipped; the generous wait makes one datagram enough even under load.
    assertEquals(await echoWithRetry(client, to, "second", { firstWaitMs: 5000 }), 1);
  } finally {
    client.close();
    echo.sock.close();
    await echo.done;
  }
});

Deno.test("echoWithRetry: gives up after the bounded number of datagrams", async () => {
  const echo = lossyEcho(1_000);
  const client = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    const to = echo.sock.addr as Deno.NetAddr;
    await assertRejects(
      () => echoWithRetry(client, to, "x", { attempts: 3, firstWaitMs: 20 }),
      "after 3 datagrams",
    );
  } finally {
    client.close();
    echo.sock.close();
    await echo.done;
  }
});
