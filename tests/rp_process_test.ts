/**
 * Two wgedge processes on loopback — `wgedge rps` and `wgedge rpc` joined by a real userspace WireGuard
 * tunnel — driven from outside with curl and kernel sockets, and watched through both admin APIs.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { run, waitFor } from "./helpers/interop.ts";
import { seededRandom } from "../src/util/random.ts";
import { freePort } from "./rp_loopback_net.ts";
import { adminJson, adminMappings, WgedgeProcess, writePairConfigs } from "./rp_helpers.ts";
import { echoWithRetry, RecordingUdpEcho } from "./helpers/udp.ts";

const SIZE = 64 * 1024 * 1024;
const SEED = 2024;

function localService() {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => {
      const path = new URL(req.url).pathname;
      if (path !== "/big") return new Response(`local page ${path}\n`);
      const rng = seededRandom(SEED);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(ctl) {
          if (sent >= SIZE) return ctl.close();
          const n = Math.min(256 * 1024, SIZE - sent);
          ctl.enqueue(rng(new Uint8Array(n)));
          sent += n;
        },
      });
      return new Response(body, { headers: { "content-length": String(SIZE) } });
    },
  );
  return { port: server.addr.port, close: () => (ac.abort(), server.finished) };
}

/** Host TCP ports process `pid` listens on (from ss). */
async function listeningPorts(pid: number): Promise<number[]> {
  const r = await run(["ss", "-Hltnp"], { check: false });
  return r.stdout.split("\n").filter((l) => l.includes(`pid=${pid},`)).map((l) =>
    Number(/:(\d+)\s/.exec(l.split(/\s+/)[3] + " ")?.[1] ?? 0)
  );
}

/** A status section of a wgedge admin API as JSON text, or why it could not be read (bounded). */
async function statusSection(adminPort: number, names: string[]): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/api/v1/status`, {
      signal: AbortSignal.timeout(5000),
    });
    const all = await res.json() as Record<string, unknown>;
    return JSON.stringify(Object.fromEntries(names.map((n) => [n, all[n]])));
  } catch (e) {
    return `(status unreadable: ${(e as Error).message})`;
  }
}

/**
 * Why some of the UDP clients got no echo: per client, whether the echo saw its datagrams (and from which rpc
 * flow); then where the bytes stop, stage by stage (clients -> rps -> tunnel -> rpc -> echo and back), from
 * the counters of rps's mapping and rpc's route; and both sides' rp and tunnel status.
 */
async function udpDiagnosis(
  clients: { socket: Deno.DatagramConn; msg: string; result: PromiseSettledResult<number> }[],
  echo: RecordingUdpEcho,
  rps: { admin: number; log: string },
  rpc: { admin: number; log: string },
): Promise<string> {
  const rpsAdmin = rps.admin, rpcAdmin = rpc.admin;
  const lines: string[] = [];
  let sentBytes = 0;
  for (const c of clients) {
    const sends = c.result.status === "fulfilled" ? c.result.value : 30;
    sentBytes += sends * new TextEncoder().encode(c.msg).length;
    if (c.result.status === "fulfilled") continue;
    const port = (c.socket.addr as Deno.NetAddr).port;
    lines.push(
      `"${c.msg}" (client 127.0.0.1:${port}) got no echo in ${sends} sends; ${echo.describe(c.msg)}`,
    );
  }
  lines.push(`clients sent ${sentBytes} B in all; ${echo.summary()}`);
  const rpsUdp = (await adminMappings(rpsAdmin).catch(() => [])).find((m) => m.protocol === "udp");
  lines.push(
    `rps mapping: ${
      JSON.stringify(rpsUdp ?? null)
    } (bytes_in: public -> tunnel, bytes_out: tunnel -> public; connections = flows)`,
  );
  lines.push(`rps status: ${await statusSection(rpsAdmin, ["rp_server", "tunnels"])}`);
  lines.push(
    `rpc status (routes' bytes_in: tunnel -> echo, bytes_out: echo -> tunnel): ${await statusSection(
      rpcAdmin,
      ["rp_client", "rp_routes", "tunnels"],
    )}`,
  );
  // What either process warned about (a failed send, a receive loop that stopped...).
  for (const [name, log] of [["rps", rps.log], ["rpc", rpc.log]]) {
    const warnings = log.split("\n").filter((l) => / (WARN|ERROR) |"level":"(warn|error)"/.test(l)).slice(
      -20,
    );
    lines.push(
      `${name} warnings and errors (last 20): ${warnings.length ? "\n  " + warnings.join("\n  ") : "none"}`,
    );
  }
  return lines.join("\n");
}

Deno.test({
  name: "rp process: curl through a mapping, 64 MiB byte-exact, UDP echo from 20 ports, admin view",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cfg = await writePairConfigs(freePort());
    const svc = localService();
    const tcpPublic = freePort(), udpPublic = freePort(), adminPort = freePort(), rpcAdminPort = freePort();
    const echo = new RecordingUdpEcho();
    const rps = new WgedgeProcess([
      "rps",
      "-c",
      cfg.serverConf,
      "--bind",
      "127.0.0.1",
      "--allow-ports",
      `${tcpPublic},${udpPublic}`,
      "--admin-listen",
      `127.0.0.1:${adminPort}`,
    ]);
    let rpc: WgedgeProcess | undefined;
    const sockets: Deno.DatagramConn[] = [];
    try {
      await rps.waitLog("API listening addr=10.66.0.1:80", "rps API up");
      rpc = new WgedgeProcess([
        "rpc",
        "-c",
        cfg.clientConf,
        "-r",
        `127.0.0.1:${svc.port}-${tcpPublic}`,
        "-r",
        `127.0.0.1:${echo.port}-${udpPublic}/udp`,
        "--admin-listen",
        `127.0.0.1:${rpcAdminPort}`,
      ]);
      await rpc.waitLog("rpc running", "rpc registered");
      assertEquals(rpc.countLog("mapping registered"), 2);

      // curl to the public port returns the local service's page.
      const page = await run(["curl", "-sS", "--max-time", "20", `http://127.0.0.1:${tcpPublic}/hello`]);
      assertEquals(page.stdout, "local page /hello\n");

      // 64 MiB through public port -> rps -> tunnel -> rpc -> local service, compared byte by byte.
      const res = await fetch(`http://127.0.0.1:${tcpPublic}/big`);
      assertEquals(res.status, 200);
      const expect = seededRandom(SEED);
      let got = 0;
      for await (const chunk of res.body!) {
        const want = expect(new Uint8Array(chunk.length));
        for (let i = 0; i < chunk.length; i++) {
          if (chunk[i] !== want[i]) throw new Error(`byte ${got + i} differs`);
        }
        got += chunk.length;
      }
      assertEquals(got, SIZE);

      // A UDP echo answers through the /udp mapping from 20 client ports, each its own message.
      const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: udpPublic };
      for (let i = 0; i < 20; i++) {
        sockets.push(Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }));
      }
      const msgs = sockets.map((_, i) => `udp ${i} via the tunnel`);
      const results = await Promise.allSettled(sockets.map((s, i) => echoWithRetry(s, to, msgs[i])));
      if (results.some((r) => r.status === "rejected")) {
        const clients = sockets.map((socket, i) => ({ socket, msg: msgs[i], result: results[i] }));
        throw new Error(
          `UDP echo through rps/rpc failed:\n${await udpDiagnosis(
            clients,
            echo,
            { admin: adminPort, log: rps.log.text() },
            { admin: rpcAdminPort, log: rpc.log.text() },
          )}`,
        );
      }
      // Each message reached the echo, from one rpc flow each (20 flows on rpc as on rps).
      for (const m of msgs) assert(echo.seen.get(m)?.sources.size === 1, echo.describe(m));
      assertEquals(new Set([...echo.seen.values()].flatMap((r) => [...r.sources])).size, 20);

      // The operator view: owner, connections and bytes of every mapping; metrics; dashboard.
      // (The last bytes may still be in flight between rps and curl when fetch returns.)
      await waitFor(
        async () => {
          const m = (await adminMappings(adminPort)).find((m) => m.protocol === "tcp");
          return (m?.bytes_out as number) >= SIZE;
        },
        "the byte counter to reach 64 MiB",
        100,
        100,
      );
      const list = await adminMappings(adminPort);
      assertEquals(list.length, 2);
      const tcp = list.find((m) => m.protocol === "tcp")!, udp = list.find((m) => m.protocol === "udp")!;
      assertEquals(tcp.client_ip, "10.66.0.2");
      assert((tcp.bytes_out as number) >= SIZE, `bytes_out ${tcp.bytes_out}`);
      assert((tcp.connections_total as number) >= 2);
      assertEquals(udp.connections_total, 20);
      const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      assertStringIncludes(
        metrics,
        `wgedge_rp_bytes_total{remote_port="${tcpPublic}",protocol="tcp",client_ip="10.66.0.2",direction="out"}`,
      );
      assertStringIncludes(metrics, "wgedge_rp_mappings 2");
      const dash = await (await fetch(`http://127.0.0.1:${adminPort}/`)).text();
      assertStringIncludes(dash, "port_mappings");
      assertStringIncludes(dash, String(udpPublic));

      // The API lives only inside the tunnel: rps listens on the host only on the mapped ports and admin.
      const ports = await listeningPorts(rps.pid);
      assert(!ports.includes(80), `rps listens on host port 80: ${ports}`);
      assertEquals(ports.sort(), [tcpPublic, adminPort].sort());

      // An operator delete closes the public port.
      const del = await adminJson(
        adminPort,
        `/api/v1/port-mappings?port=${udpPublic}&protocol=udp`,
        "DELETE",
      );
      assertEquals(del.status, 200);
      assertEquals((await adminMappings(adminPort)).length, 1);
    } finally {
      for (const s of sockets) s.close();
      await rpc?.stop();
      await rps.stop();
      await echo.close();
      await svc.close();
      await Deno.remove(cfg.dir, { recursive: true });
    }
  },
});
