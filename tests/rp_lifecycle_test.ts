/**
 * rps/rpc lifecycle with two wgedge processes on loopback: no server at start, kill -9 of the client (expiry),
 * a server restart (the client registers again on its own) and SIGTERM (the client deletes its mappings).
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { run, waitFor } from "./helpers/interop.ts";
import { freePort } from "./rp_loopback_net.ts";
import { adminMappings, WgedgeProcess, writePairConfigs } from "./rp_helpers.ts";

function localService() {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => new Response(`local page ${new URL(req.url).pathname}\n`),
  );
  return { port: server.addr.port, close: () => (ac.abort(), server.finished) };
}

Deno.test({
  name:
    "rp process: kill -9 rpc expires its mappings; rpc re-registers after an rps restart; SIGTERM deletes at once",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cfg = await writePairConfigs(freePort());
    const svc = localService();
    const publicPort = freePort(), adminPort = freePort();
    const rpsArgs = [
      "rps",
      "-c",
      cfg.serverConf,
      "--bind",
      "127.0.0.1",
      "--admin-listen",
      `127.0.0.1:${adminPort}`,
    ];
    const rpcArgs = [
      "rpc",
      "-c",
      cfg.clientConf,
      "-r",
      `127.0.0.1:${svc.port}-${publicPort}`,
      "--heartbeat",
      "1",
    ];
    const procs: WgedgeProcess[] = [];
    const spawn = (args: string[]) => {
      const p = new WgedgeProcess(args);
      procs.push(p);
      return p;
    };
    try {
      // rpc with no server: a clear error and a non-zero exit.
      const lonely = spawn([...rpcArgs, "--start-timeout", "2"]);
      const st = await lonely.status();
      assert(st.code !== 0, "rpc without a server exits non-zero");
      assertStringIncludes(lonely.log.text(), "not reachable");

      let rps = spawn([...rpsArgs, "--client-expiry", "3", "--sweep-interval", "1"]);
      await rps.waitLog("API listening", "rps up");
      let rpc = spawn(rpcArgs);
      await rpc.waitLog("rpc running", "rpc registered");
      assertEquals((await adminMappings(adminPort)).length, 1);

      // kill -9: no goodbye; the server expires the client and closes the public listener.
      rpc.kill("SIGKILL");
      await rpc.status();
      await waitFor(
        async () => (await adminMappings(adminPort)).length === 0,
        "expiry of the killed client",
        200,
        100,
      );
      await rps.waitLog("client expired"); // the log comes through a pipe, maybe after the state we saw
      assertStringIncludes(rps.log.text(), "client expired");
      const refused = await run(["curl", "-sS", "--max-time", "5", `http://127.0.0.1:${publicPort}/`], {
        check: false,
      });
      assert(refused.code !== 0, "public listener closed after expiry");

      // A new rpc registers; then rps restarts (default 60 s expiry) and rpc registers again by itself.
      rpc = spawn(rpcArgs);
      await rpc.waitLog("rpc running", "rpc registered again");
      rps.kill("SIGTERM");
      assertEquals((await rps.status()).code, 0);
      // No sleep for a new startup second: restarted within the same second, the new rps still lacks the
      // mapping, and its heartbeat reply says so; either way rpc must register again by itself. The
      // startup-time path alone is proven on an injected clock in rp_loopback_test.ts.
      rps = spawn(rpsArgs);
      await rps.waitLog("API listening", "rps restarted");
      await waitFor(
        async () => (await adminMappings(adminPort).catch(() => [])).length === 1,
        "re-registration",
        300,
        100,
      );
      await rpc.waitLog("registering again"); // the log comes through a pipe, maybe after the state we saw
      assertStringIncludes(rpc.log.text(), "registering again");
      const page = await run(["curl", "-sS", "--max-time", "20", `http://127.0.0.1:${publicPort}/back`]);
      assertEquals(page.stdout, "local page /back\n");

      // SIGTERM: rpc deletes its mappings before exiting (long before the 60 s expiry), and exits 0.
      rpc.kill("SIGTERM");
      assertEquals((await rpc.status()).code, 0);
      assertEquals((await adminMappings(adminPort)).length, 0);
      await rps.waitLog("deleted by client"); // the log comes through a pipe, maybe after the state we saw
      assertStringIncludes(rps.log.text(), "deleted by client");
    } finally {
      for (const p of procs) await p.stop();
      await svc.close();
      await Deno.remove(cfg.dir, { recursive: true });
    }
  },
});
