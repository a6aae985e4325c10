/**
 * `wgedge serve` as a real process: relays from an env file, the admin API, SIGHUP reload that restarts only
 * the changed relay (a live connection on an unchanged relay survives), and a bad RELAY_N that stops start-up
 * with the variable named.
 */
import { DENO_JSON, MAIN_TS, waitFor } from "./helpers/interop.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { echoWithRetry } from "./helpers/udp.ts";

const DENO = Deno.execPath();

/** Echo server: writes back whatever it reads, per connection. */
function echoServer() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const c of l) {
      conns.add(c);
      (async () => {
        const buf = new Uint8Array(4096);
        for (;;) {
          const n = await c.read(buf);
          if (n === null) break;
          await c.write(buf.subarray(0, n));
        }
      })().catch(() => {}).finally(() => {
        conns.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
      });
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    async close() {
      l.close();
      for (const c of conns) c.close();
      await loop;
    },
  };
}

async function echoOnce(c: Deno.Conn, msg: string): Promise<string> {
  await c.write(new TextEncoder().encode(msg));
  const buf = new Uint8Array(256);
  let got = "";
  for (let i = 0; i < 50 && got.length < msg.length; i++) {
    const n = await c.read(buf);
    if (n === null) break;
    got += new TextDecoder().decode(buf.subarray(0, n));
  }
  return got;
}

function spawnServe(envFile: string) {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--config", DENO_JSON, MAIN_TS, "serve", "--env-file", envFile],
    env: { WGEDGE_LOG_LEVEL: "info" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const dec = new TextDecoder();
  const drain = (async () => {
    for await (const chunk of child.stderr) stderr += dec.decode(chunk);
  })();
  const drainOut = (async () => {
    for await (const _ of child.stdout) { /* discard */ }
  })();
  return {
    child,
    stderr: () => stderr,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      const st = await child.status;
      await drain;
      await drainOut;
      return st;
    },
  };
}

Deno.test({
  name: "serve: env-file relays, admin status, SIGHUP restarts only the changed relay",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "wgedge-serve-" });
    const a = echoServer(), b = echoServer(), b2 = echoServer();
    const inA = freePort(), inB = freePort(), admin = freePort();
    const file = `${dir}/wgedge.env`;
    const write = (bPort: number) =>
      Deno.writeTextFile(
        file,
        [
          `WGEDGE_ADMIN_LISTEN=127.0.0.1:${admin}`,
          `RELAY_1="${inA};${a.port};127.0.0.1;TCP"`,
          `RELAY_2="${inB};${bPort};127.0.0.1;TCP"`,
          `ENABLE_LOGGING=y`,
          "",
        ].join("\n"),
      );
    await write(b.port);
    const proc = spawnServe(file);
    const status = async () => {
      const r = await fetch(`http://127.0.0.1:${admin}/api/v1/status`);
      return await r.json();
    };
    let live: Deno.Conn | undefined;
    try {
      await waitFor(
        async () => {
          try {
            return (await status()).relays?.length === 2;
          } catch {
            return false;
          }
        },
        "serve up with two relays",
        400,
        50,
      );

      live = await Deno.connect({ hostname: "127.0.0.1", port: inA });
      assertEquals(await echoOnce(live, "before reload"), "before reload");

      await write(b2.port); // RELAY_2 now points elsewhere; RELAY_1 unchanged
      Deno.kill(proc.child.pid, "SIGHUP");
      await waitFor(
        async () => {
          const s = await status();
          return s.relays.find((r: { id: string }) => r.id === "RELAY_2")?.target === `127.0.0.1:${b2.port}`;
        },
        "RELAY_2 reloaded",
        400,
        50,
      );

      // The connection through the unchanged relay is still the same, working connection.
      assertEquals(await echoOnce(live, "after reload"), "after reload");
      const s = await status();
      const r1 = s.relays.find((r: { id: string }) => r.id === "RELAY_1");
      assertEquals(r1.total, 1, "RELAY_1 was not restarted (its counters survived)");
      assertEquals(r1.active, 1);
      const viaB = await Deno.connect({ hostname: "127.0.0.1", port: inB });
      assertEquals(await echoOnce(viaB, "to b2"), "to b2");
      viaB.close();
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      assertStringIncludes(metrics, `wgedge_relay_up{relay="RELAY_2"`);
      // The log comes through a pipe, possibly after the status we saw: wait (bounded) for it.
      await waitFor(() => proc.stderr().includes("relay stopped"), "reload logged").catch(() => {});
      assert(proc.stderr().includes("relay stopped") && proc.stderr().includes("RELAY_2"), "reload logged");
      assert(!/relay stopped relay=RELAY_1/.test(proc.stderr()), "RELAY_1 never stopped");
    } finally {
      live?.close();
      const st = await proc.stop();
      assertEquals(st.code, 0, `serve exit code; stderr:\n${proc.stderr()}`);
      await a.close();
      await b.close();
      await b2.close();
      await Deno.remove(dir, { recursive: true });
    }
    assertStringIncludes(proc.stderr(), "shutting down");
  },
});

Deno.test("serve: a bad RELAY_N stops start-up, naming the variable and what was expected", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-serve-bad-" });
  try {
    const file = `${dir}/bad.env`;
    await Deno.writeTextFile(
      file,
      `RELAY_1="99999;25;host.example;TCP"\nRELAY_2="5000;25;host.example;ICMP"\n`,
    );
    const out = await new Deno.Command(DENO, {
      args: ["run", "-A", "--config", DENO_JSON, MAIN_TS, "serve", "--env-file", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, err);
    assertStringIncludes(err, `${file}:1: RELAY_1 in_port: expected a port number 1..65535, got "99999"`);
    assertStringIncludes(err, `${file}:2: RELAY_2 protocol: expected TCP or UDP, got "ICMP"`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "relay command: -r flags relay TCP and UDP, --admin-listen serves status, --logging n is quiet",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const echo = echoServer();
    const udpEcho = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    const udpLoop = (async () => {
      for (;;) {
        const [d, a] = await udpEcho.receive();
        await udpEcho.send(d, a);
      }
    })().catch(() => {});
    const inTcp = freePort(), admin = freePort(), inUdp = freePort();
    const child = new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        "--config",
        DENO_JSON,
        MAIN_TS,
        "relay",
        "-r",
        `${inTcp};${echo.port};127.0.0.1;TCP;bind=127.0.0.1`,
        "-r",
        `${inUdp};${(udpEcho.addr as Deno.NetAddr).port};127.0.0.1;UDP;bind=127.0.0.1`,
        "--admin-listen",
        `127.0.0.1:${admin}`,
        "--logging",
        "n",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const err = (async () => {
      let s = "";
      for await (const c of child.stderr) s += new TextDecoder().decode(c);
      return s;
    })();
    const client = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      await waitFor(
        async () => {
          try {
            return (await (await fetch(`http://127.0.0.1:${admin}/healthz`)).text()) === "ok\n";
          } catch {
            return false;
          }
        },
        "relay up",
        400,
        50,
      );
      const c = await Deno.connect({ hostname: "127.0.0.1", port: inTcp });
      assertEquals(await echoOnce(c, "via -r"), "via -r");
      c.close();
      // Resent until echoed (bounded): one lost datagram must not hang the test.
      await echoWithRetry(client, { transport: "udp", hostname: "127.0.0.1", port: inUdp }, "dgram");
      const st = await (await fetch(`http://127.0.0.1:${admin}/api/v1/status`)).json();
      assertEquals(st.relays.map((r: { id: string }) => r.id), ["--relay #1", "--relay #2"]);
      assertEquals(st.relays[0].listen, `127.0.0.1:${inTcp}`);
    } finally {
      client.close();
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      const status = await child.status;
      const stderr = await err;
      udpEcho.close();
      await udpLoop;
      await echo.close();
      assertEquals(status.code, 0, stderr);
      assert(!stderr.includes("open relay="), "--logging n: no per-connection lines");
    }
  },
});
