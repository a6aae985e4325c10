/**
 * Reload that means what it says (src/services/supervisor.ts): the supervisor of `serve`, in this process,
 * configured from an env file that each test rewrites before calling reload() (what SIGHUP calls). Tunnels
 * are userspace devices on loopback; relays and the reverse proxy carry real kernel TCP on 127.0.0.1.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { ask, connect, tcpEcho, within } from "./helpers/tcp.ts";
import { waitFor } from "./helpers/interop.ts";
import { writePairConfigs } from "./rp_helpers.ts";
import { createSupervisor } from "../src/cli/server.ts";
import type { Supervisor } from "../src/services/supervisor.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { configureLogging, logger, type LogLevel } from "../src/util/log.ts";

interface Serve {
  sup: Supervisor;
  /** Rewrites the env file. */
  write(text: string): Promise<void>;
  dir: string;
}

async function withServe(envText: string, fn: (s: Serve) => Promise<void>, admin = false): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-reload-" });
  const envFile = `${dir}/wgedge.env`;
  // No UAPI sockets: their names (x, y) are machine-wide and another run of this file may hold them.
  const write = (text: string) => Deno.writeTextFile(envFile, `WG_UAPI_DIR=off\n${text}`, { mode: 0o600 });
  await write(envText);
  const sup = createSupervisor({ flags: {}, env: {}, envFile, admin });
  try {
    await sup.start();
    await fn({ sup, write, dir });
  } finally {
    await sup.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

function status(sup: Supervisor): Record<string, unknown> {
  return sup.registry.status();
}

function tunnels(sup: Supervisor) {
  return status(sup).tunnels as {
    name: string;
    names: string[];
    refs: number;
    users: string[];
    publicKey: string;
  }[];
}

function metric(sup: Supervisor, line: string): string | undefined {
  return sup.registry.metrics.render().split("\n").find((l) => l.startsWith(line));
}

/** A tunnel config (wg-quick INI on one env line is not possible: a file under dir) and its public key. */
async function tunnelFile(dir: string, name: string, address: string) {
  const sk = generatePrivateKey();
  const peer = encodeKey(publicKey(generatePrivateKey()));
  const path = `${dir}/${name}.conf`;
  await Deno.writeTextFile(
    path,
    `[Interface]\nPrivateKey = ${
      encodeKey(sk)
    }\nAddress = ${address}/32\n\n[Peer]\nPublicKey = ${peer}\nAllowedIPs = 10.7.0.0/24\n`,
    { mode: 0o600 },
  );
  return { path, publicKey: encodeKey(publicKey(sk)) };
}

Deno.test("reload: a changed WG_TUNNEL_X is replaced and its relay restarts on the new device; a removed one closes", async () => {
  const relayPort = freePort();
  await withServe("", async ({ sup, write, dir }) => {
    const x1 = await tunnelFile(dir, "x1", "10.7.0.2"), y = await tunnelFile(dir, "y", "10.7.0.9");
    await write(
      `WG_TUNNEL_X=${x1.path}\nWG_TUNNEL_Y=${y.path}\nRELAY_1=${relayPort};80;10.7.0.1;TCP;via=wg:x\n`,
    );
    assertEquals((await sup.reload()).result, "success");
    const before = tunnels(sup);
    assertEquals(before.map((t) => [t.name, t.refs, t.users]), [
      ["x", 2, ["serve", "relay RELAY_1"]],
      ["y", 1, ["serve"]],
    ], "named tunnels are held by serve and shared with the relay that names them");
    assertEquals(before[0].publicKey, x1.publicKey);

    const x2 = await tunnelFile(dir, "x2", "10.7.0.3");
    await write(
      `WG_TUNNEL_X=${x2.path}\nWG_TUNNEL_Y=${y.path}\nRELAY_1=${relayPort};80;10.7.0.1;TCP;via=wg:x\n`,
    );
    assertEquals((await sup.reload()).result, "success");
    const after = tunnels(sup);
    assertEquals(after.map((t) => [t.name, t.refs]), [["y", 1], ["x", 2]], "the old device of x is gone");
    assertEquals(after.find((t) => t.name === "x")!.publicKey, x2.publicKey, "x runs its new configuration");
    assertEquals(sup.pool.size, 2);
    assertStringIncludes(metric(sup, 'wgedge_tunnel_references{tunnel="x"}') ?? "", " 2");

    await write(`WG_TUNNEL_Y=${y.path}\n`);
    assertEquals((await sup.reload()).result, "success");
    assertEquals(tunnels(sup).map((t) => t.name), ["y"], "x removed with its relay: closed");
    await write("");
    assertEquals((await sup.reload()).result, "success");
    assertEquals(sup.pool.size, 0, "no tunnel left open");
  });
});

Deno.test("reload: a relay whose port is busy fails alone; the others keep running and their connections live", async () => {
  const echo = tcpEcho();
  const p1 = freePort(), p2 = freePort(), busyPort = freePort();
  const busy = Deno.listen({ hostname: "0.0.0.0", port: busyPort });
  const env = (second: number) =>
    `RELAY_1=${p1};${echo.port};127.0.0.1;TCP\nRELAY_2=${second};${echo.port};127.0.0.1;TCP\n`;
  try {
    await withServe(env(p2), async ({ sup, write }) => {
      const live = await connect(p1);
      try {
        assertEquals(await ask(live, "before"), "before");
        await write(env(busyPort));
        const outcome = await sup.reload();
        assertEquals(outcome.result, "partial");
        assertEquals(outcome.errors.length, 1);
        assertStringIncludes(outcome.errors[0], "RELAY_2");
        assertEquals(await ask(live, "after"), "after", "the unchanged relay's connection lives on");
        const relays = status(sup).relays as { id: string; state: string; lastError?: string }[];
        assertEquals(relays.map((r) => [r.id, r.state]), [["RELAY_1", "listening"], ["RELAY_2", "error"]]);
        assert(relays[1].lastError, "the failed relay says why");
        const reload = status(sup).reload as { lastResult: string; errors: string[] };
        assertEquals(reload.lastResult, "partial");
        assertEquals(reload.errors, outcome.errors);
        assertEquals(
          metric(sup, "wgedge_config_last_reload_successful"),
          "wgedge_config_last_reload_successful 0",
        );
        assertEquals(
          metric(sup, 'wgedge_reload_total{result="partial"}'),
          'wgedge_reload_total{result="partial"} 1',
        );

        busy.close();
        assertEquals(
          (await sup.reload()).result,
          "success",
          "the next reload starts it once the port is free",
        );
        const fresh = await connect(busyPort);
        try {
          assertEquals(await ask(fresh, "now"), "now");
        } finally {
          fresh.close();
        }
        assertEquals(
          metric(sup, "wgedge_config_last_reload_successful"),
          "wgedge_config_last_reload_successful 1",
        );
      } finally {
        live.close();
      }
    });
  } finally {
    try {
      busy.close();
    } catch { /* closed in the test */ }
    echo.close();
  }
});

Deno.test("reload: a configuration with errors is rejected whole; status and metrics say so; the old one keeps running", async () => {
  const echo = tcpEcho();
  const p1 = freePort();
  try {
    await withServe(`RELAY_1=${p1};${echo.port};127.0.0.1;TCP\n`, async ({ sup, write }) => {
      await write(`RELAY_1=${p1};${echo.port};127.0.0.1;TCP\nRELAY_2=not-a-port;1;127.0.0.1;TCP\n`);
      const outcome = await sup.reload();
      assertEquals(outcome.result, "rejected");
      assert(outcome.errors.some((e) => e.includes("RELAY_2")), outcome.errors.join("\n"));
      const reload = status(sup).reload as { lastResult: string; errors: string[]; lastAt: string };
      assertEquals(reload.lastResult, "rejected");
      assert(reload.errors.some((e) => e.includes("RELAY_2")));
      assertEquals(
        metric(sup, "wgedge_config_last_reload_successful"),
        "wgedge_config_last_reload_successful 0",
      );
      assertEquals(
        metric(sup, 'wgedge_reload_total{result="rejected"}'),
        'wgedge_reload_total{result="rejected"} 1',
      );
      assertEquals((status(sup).relays as unknown[]).length, 1, "the running relays are untouched");
      const c = await connect(p1);
      try {
        assertEquals(await ask(c, "still"), "still");
      } finally {
        c.close();
      }
    });
  } finally {
    echo.close();
  }
});

Deno.test("reload: a rotated WGEDGE_ADMIN_TOKEN applies at once (old 401, new 200); a new admin address is moved to", async () => {
  const oldToken = "old-token-0123456789abcdef", newToken = "new-token-0123456789abcdef";
  const env = (token: string, listen: string) =>
    `WGEDGE_ADMIN_LISTEN=${listen}\nWGEDGE_ADMIN_TOKEN=${token}\n`;
  await withServe(env(oldToken, "127.0.0.1:0"), async ({ sup, write }) => {
    const get = async (port: number, token: string) => {
      const res = await within(
        fetch(`http://127.0.0.1:${port}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } }),
        "admin answer",
      );
      await res.body?.cancel();
      return res.status;
    };
    const first = sup.adminAddr!.port;
    assertEquals(await get(first, oldToken), 200);
    await write(env(newToken, "127.0.0.1:0"));
    assertEquals((await sup.reload()).result, "success");
    assertEquals(await get(first, oldToken), 401, "the old token no longer opens the API");
    assertEquals(await get(first, newToken), 200);

    const moved = freePort();
    await write(env(newToken, `127.0.0.1:${moved}`));
    assertEquals((await sup.reload()).result, "success");
    assertEquals(sup.adminAddr!.port, moved);
    assertEquals(await get(moved, newToken), 200);
    let refused = false;
    try {
      await get(first, newToken);
    } catch {
      refused = true;
    }
    assert(refused, "nothing listens on the old admin address");
  }, true);
});

Deno.test("reload: WGEDGE_LOG_LEVEL and WGEDGE_LOG_FORMAT from the env file apply at start and on reload", async () => {
  const lines: string[] = [];
  configureLogging({ sink: { write: (line: string, _l: LogLevel) => lines.push(line) } });
  const probe = logger("probe");
  try {
    await withServe("WGEDGE_LOG_LEVEL=warn\n", async ({ sup, write }) => {
      probe.info("info-at-warn");
      probe.warn("warn-at-warn");
      await write("WGEDGE_LOG_LEVEL=debug\nWGEDGE_LOG_FORMAT=json\n");
      assertEquals((await sup.reload()).result, "success");
      probe.debug("debug-after-reload");
    });
  } finally {
    configureLogging({
      level: "info",
      json: false,
      sink: { write: (line) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n")) },
    });
  }
  assert(!lines.some((l) => l.includes("info-at-warn")), "level warn from the env file hides info");
  assert(lines.some((l) => l.includes("warn-at-warn")));
  const debug = lines.find((l) => l.includes("debug-after-reload"));
  assert(debug, "level debug after reload");
  assertEquals(JSON.parse(debug).msg, "debug-after-reload", "format json after reload");
});

Deno.test({
  name:
    "reload: rpc routes and rps ports change in place; unchanged routes keep live connections; rps/rpc tunnels are in status",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cfg = await writePairConfigs(freePort());
    const echo = tcpEcho(), other = tcpEcho();
    const [p1, p2, p3] = [freePort(), freePort(), freePort()];
    const env = (routes: string, allow: string) =>
      `RPS_CONFIG=${cfg.serverConf}\nRPS_BIND=127.0.0.1\nRPS_ALLOW_PORTS=${allow}\n` +
      `RPC_CONFIG=${cfg.clientConf}\nRPC_ROUTES=${routes}\n`;
    const r1 = `127.0.0.1:${echo.port}-${p1}`, r2 = `127.0.0.1:${other.port}-${p2}`;
    const r3 = `127.0.0.1:${other.port}-${p3}`;
    try {
      await withServe(env(`${r1},${r2}`, `${p1},${p2},${p3}`), async ({ sup, write }) => {
        const ts = tunnels(sup);
        assertEquals(ts.map((t) => [t.name, t.refs, t.users]).sort(), [["rpc", 1, ["rpc"]], ["rps", 1, [
          "rps",
        ]]]);
        assert(metric(sup, 'wgedge_tunnel_references{tunnel="rps"} 1'), "rps's tunnel in metrics");
        assert(metric(sup, 'wgedge_tunnel_references{tunnel="rpc"} 1'), "rpc's tunnel in metrics");
        const live = await connect(p1);
        try {
          assertEquals(await ask(live, "one"), "one");

          await write(env(`${r1},${r3}`, `${p1},${p2},${p3}`));
          assertEquals((await sup.reload()).result, "success");
          assertEquals(await ask(live, "two"), "two", "the unchanged route's connection lives on");
          const routes = status(sup).rp_routes as { remote_port: number; state: string }[];
          assertEquals(routes.map((r) => [r.remote_port, r.state]), [[p1, "registered"], [p3, "registered"]]);
          const mapped = (status(sup).port_mappings as { remote_port: number }[]).map((m) => m.remote_port)
            .sort();
          assertEquals(mapped, [p1, p3].sort(), "the removed route was deleted on the server");
          const c3 = await connect(p3);
          try {
            assertEquals(await ask(c3, "three"), "three", "the new route carries traffic");
          } finally {
            c3.close();
          }
          await waitFor(async () => {
            try {
              (await Deno.connect({ hostname: "127.0.0.1", port: p2 })).close();
              return false;
            } catch {
              return true;
            }
          }, "the removed route's public port to close");

          // RPS_ALLOW_PORTS narrowed: applied in place, the mapping on a port no longer allowed goes.
          await write(env(`${r1},${r3}`, `${p1}`));
          assertEquals((await sup.reload()).result, "success");
          const left = (status(sup).port_mappings as { remote_port: number }[]).map((m) => m.remote_port);
          assertEquals(left, [p1]);
          assertEquals(await ask(live, "four"), "four", "rps was not restarted: the connection lives on");
          assertEquals(tunnels(sup).length, 2, "no tunnel replaced");
        } finally {
          live.close();
        }
      });
    } finally {
      echo.close();
      other.close();
      await Deno.remove(cfg.dir, { recursive: true });
    }
  },
});
