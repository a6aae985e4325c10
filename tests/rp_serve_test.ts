/**
 * `wgedge serve` starts either side of the reverse proxy from the environment alone: the wg-quick configs are
 * passed inline in RPS_CONFIG / RPC_CONFIG (env-only deployment), routes in RPC_ROUTES. A mismatched PSK keeps
 * the tunnel down, and rpc then fails with a clear error instead of running without its routes.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { run } from "./helpers/interop.ts";
import { freePort } from "./rp_loopback_net.ts";
import { WgedgeProcess, writePairConfigs } from "./rp_helpers.ts";

Deno.test({
  name: "rp serve: RPS_CONFIG / RPC_CONFIG inline + RPC_ROUTES start rps and rpc with no flags",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cfg = await writePairConfigs(freePort());
    const ac = new AbortController();
    const local = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
      () => new Response("served from env-only rpc\n"),
    );
    const publicPort = freePort(), adminA = freePort(), adminB = freePort();
    const serverText = await Deno.readTextFile(cfg.serverConf);
    const clientText = await Deno.readTextFile(cfg.clientConf);
    const procs: WgedgeProcess[] = [];
    try {
      const rps = new WgedgeProcess(["serve"], {
        RPS_CONFIG: serverText,
        RPS_BIND: "127.0.0.1",
        RPS_ALLOW_PORTS: String(publicPort),
        WGEDGE_ADMIN_LISTEN: `127.0.0.1:${adminA}`,
      });
      procs.push(rps);
      await rps.waitLog("service started service=rps", "rps via serve");
      const rpc = new WgedgeProcess(["serve"], {
        RPC_CONFIG: clientText,
        RPC_ROUTES: `127.0.0.1:${local.addr.port}-${publicPort}`,
        WGEDGE_ADMIN_LISTEN: `127.0.0.1:${adminB}`,
      });
      procs.push(rpc);
      await rpc.waitLog("service started service=rpc", "rpc via serve");
      const page = await run(["curl", "-sS", "--max-time", "20", `http://127.0.0.1:${publicPort}/`]);
      assertEquals(page.stdout, "served from env-only rpc\n");
      // The client side reports its routes in its own status JSON.
      const status = await (await fetch(`http://127.0.0.1:${adminB}/api/v1/status`)).json();
      assertEquals(status.rp_routes[0].state, "registered");
      assertEquals(status.rp_client.server_reachable, true);
      // Secrets never reach logs or status.
      const key = /PrivateKey = (\S+)/.exec(clientText)![1];
      const psk = /PresharedKey = (\S+)/.exec(clientText)![1];
      for (const text of [rps.log.text(), rpc.log.text(), JSON.stringify(status)]) {
        assert(!text.includes(key) && !text.includes(psk), "no key material in logs or status");
      }

      // A wrong PresharedKey: the handshake never completes and rpc exits non-zero, saying why.
      const wrongPsk = clientText.replace(psk, psk.slice(0, -4) + (psk.endsWith("AAA=") ? "AAE=" : "AAA="));
      const bad = new WgedgeProcess(["rpc", "--start-timeout", "3", "--server-api", "10.66.0.1"], {
        RPC_CONFIG: wrongPsk,
        RPC_ROUTES: `127.0.0.1:${local.addr.port}-${publicPort}`,
      });
      procs.push(bad);
      const st = await bad.status();
      assert(st.code !== 0, "rpc with a wrong PSK exits non-zero");
      assertStringIncludes(bad.log.text(), "not reachable");
    } finally {
      for (const p of procs) await p.stop();
      ac.abort();
      await local.finished;
      await Deno.remove(cfg.dir, { recursive: true });
    }
  },
});
