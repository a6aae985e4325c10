/** KEEPALIVE_IDLE/INTVL/CNT on host sockets: the sweep sets them, the kernel reports them back. */
import { assert, assertEquals } from "./helpers/assert.ts";
import { HostKeepalive, readKeepalive } from "../src/net/keepalive.ts";
import { collect, DENO_JSON, MAIN_TS, waitFor } from "./helpers/interop.ts";
import { freePort } from "./helpers/ports.ts";

Deno.test({
  name: "keepalive: sockets with SO_KEEPALIVE get the configured idle/interval/count; others are left alone",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const withKa = await Deno.connect({ hostname: "127.0.0.1", port });
    withKa.setKeepAlive(true);
    const without = await Deno.connect({ hostname: "127.0.0.1", port });
    const accepted = [await listener.accept(), await listener.accept()];
    const ka = new HostKeepalive({ idleSec: 17, intervalSec: 4, count: 5 });
    try {
      const fds = ka.sweep();
      assertEquals(fds.length, 1, "exactly the socket that asked for keepalive");
      assertEquals(readKeepalive(fds[0]), { on: true, idleSec: 17, intervalSec: 4, count: 5 });
      assertEquals(ka.sweep(), [], "a configured socket is not touched again");
      // The kernel re-armed the timer: ss shows the next probe within the new idle time, not hours away.
      const ss = new TextDecoder().decode(
        new Deno.Command("ss", {
          args: ["-tno", "state", "established", `sport = :${(withKa.localAddr as Deno.NetAddr).port}`],
        })
          .outputSync().stdout,
      );
      assert(/timer:\(keepalive,(\d+(\.\d+)?)(ms|sec),/.test(ss) && !/min/.test(ss), ss);
      withKa.setKeepAlive(true);
      without.setKeepAlive(true); // asked later: picked up by the next pass
      assertEquals(ka.sweep().length, 1);
      ka.update({ idleSec: 30, intervalSec: 5, count: 2 });
      assertEquals(ka.sweep().length, 2, "new timings reach every keepalive socket");
    } finally {
      ka.stop();
      withKa.close();
      without.close();
      for (const c of accepted) c.close();
      listener.close();
    }
  },
});

Deno.test({
  name: "keepalive: the periodic tick walks the descriptors only after new sockets or new timings",
  ignore: Deno.build.os !== "linux",
  async fn() {
    let opened = 0;
    const ka = new HostKeepalive({ idleSec: 19, intervalSec: 3, count: 4 }, 1000, () => opened);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const conns: Deno.Conn[] = [];
    try {
      ka.tick();
      assertEquals(ka.sweepsRun, 1, "the first tick sweeps");
      ka.tick();
      ka.tick();
      assertEquals(ka.sweepsRun, 1, "nothing new: no descriptor walk");
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(c, await listener.accept());
      c.setKeepAlive(true);
      opened++;
      const fds = ka.tick();
      assertEquals(ka.sweepsRun, 2);
      assertEquals(fds.length, 1, "the new keepalive socket is configured on the next tick");
      assertEquals(readKeepalive(fds[0])?.idleSec, 19);
      ka.update({ idleSec: 23, intervalSec: 3, count: 4 });
      assertEquals(ka.tick().length, 1, "new timings: swept again although no socket is new");
      assertEquals(readKeepalive(fds[0])?.idleSec, 23);
      ka.tick();
      assertEquals(ka.sweepsRun, 3);
    } finally {
      ka.stop();
      for (const c of conns) c.close();
      listener.close();
    }
  },
});

Deno.test({
  name: "keepalive: `wgedge relay` applies KEEPALIVE_IDLE to both of a relayed connection's host sockets",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const targetPort = (target.addr as Deno.NetAddr).port;
    const inPort = freePort();
    const relay = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        DENO_JSON,
        MAIN_TS,
        "relay",
        "-r",
        `${inPort};${targetPort};127.0.0.1;TCP`,
      ],
      env: { KEEPALIVE_IDLE: "11", KEEPALIVE_INTVL: "3", KEEPALIVE_CNT: "2", NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const err = collect(relay.stderr);
    let client: Deno.Conn | undefined, upstream: Deno.Conn | undefined;
    try {
      await waitFor(() => err.text().includes("relay started"), `relay start\n${err.text()}`, 400, 50);
      client = await Deno.connect({ hostname: "127.0.0.1", port: inPort });
      upstream = await target.accept();
      const timers = (filter: string) =>
        new TextDecoder().decode(
          new Deno.Command("ss", { args: ["-tno", "state", "established", filter] }).outputSync().stdout,
        );
      // The relay's accepted socket (source port inPort) and its dial to the target (destination targetPort).
      await waitFor(
        () => {
          const a = timers(`sport = :${inPort}`), b = timers(`dport = :${targetPort}`);
          return /keepalive,/.test(a) && /keepalive,/.test(b) && !/keepalive,\d+min/.test(a + b);
        },
        `keepalive timers within the configured idle time\n${timers(`sport = :${inPort}`)}`,
        100,
        100,
      );
    } finally {
      client?.close();
      upstream?.close();
      target.close();
      relay.kill("SIGTERM");
      await relay.status;
      await err.done;
    }
  },
});
