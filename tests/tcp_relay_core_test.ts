/**
 * The kernel-socket TCP relay core (src/sys/tcp_relay.ts) against kernel TCP on loopback: which relays run on
 * it, a dial that never completes failed by the connect timeout on the injected clock, open/close log lines
 * with the client's address, stop() with live connections, and the fallback to Deno's sockets in a process
 * without the FFI permission (WGEDGE_TCP=ffi then refuses to start, naming the variable). The byte-exact,
 * half-close, 1 000-connection and PROXY header tests in relay_tcp_test.ts and relay_health_test.ts run on
 * this core too (their relays go from the host to 127.0.0.1).
 */
import { RelayService } from "../src/services/relay/service.ts";
import type { TcpRelay } from "../src/services/relay/tcp.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { createHostNet } from "../src/net/host.ts";
import { MapResolver } from "../src/net/resolve.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging } from "../src/util/log.ts";
import { loadLibc } from "../src/sys/libc.ts";
import { collect, DENO_JSON, MAIN_TS } from "./helpers/interop.ts";
import { waitFor, within } from "./helpers/wait.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { ask, tcpEcho } from "./helpers/tcp.ts";
import { TcpRelayCore } from "../src/sys/tcp_relay.ts";
import {
  IPPROTO_TCP,
  SO_KEEPALIVE,
  SOL_SOCKET,
  TCP_KEEPCNT,
  TCP_KEEPIDLE,
  TCP_KEEPINTVL,
} from "../src/sys/constants.ts";

configureLogging({ level: "error" });

async function start(
  line: string,
  deps: ConstructorParameters<typeof RelayService>[0] = {},
  env: Record<string, string> = {},
) {
  const svc = new RelayService(deps);
  await svc.apply(parseRelayConfig({ RELAY_1: line, ENABLE_LOGGING: "n", ...env }), true);
  return svc;
}

function engineOf(svc: RelayService): string {
  return (svc.get("RELAY_1") as TcpRelay).engine;
}

/** Reads until EOF or reset; true when the connection ended. */
async function ended(c: Deno.Conn, what: string): Promise<boolean> {
  const buf = new Uint8Array(64);
  try {
    for (let i = 0; i < 100; i++) {
      if (await within(c.read(buf), what) === null) return true;
    }
    return false;
  } catch (e) {
    return e instanceof Deno.errors.ConnectionReset;
  }
}

Deno.test("tcp relay core: host to an IP address runs on it; a name, WGEDGE_TCP=deno and a bad value do not", async () => {
  const echo = tcpEcho();
  try {
    const kernel = await start(`${freePort()};${echo.port};127.0.0.1;TCP`);
    assertEquals(engineOf(kernel), "kernel");
    assertEquals(kernel.status()[0].engine, "kernel", "status says which engine");
    await kernel.stop();

    const named = await start(`${freePort()};${echo.port};echo.test;TCP`, {
      resolver: new MapResolver({ "echo.test": ["127.0.0.1"] }),
      listenNet: createHostNet({ resolver: new MapResolver({ "echo.test": ["127.0.0.1"] }) }),
    });
    assertEquals(engineOf(named), "deno");
    await named.stop();

    Deno.env.set("WGEDGE_TCP", "deno");
    try {
      const deno = await start(`${freePort()};${echo.port};127.0.0.1;TCP`);
      assertEquals(engineOf(deno), "deno");
      assertEquals(deno.status()[0].engine, "deno");
      await deno.stop();
      Deno.env.set("WGEDGE_TCP", "fast");
      const bad = new RelayService();
      const res = await bad.apply(parseRelayConfig({ RELAY_1: `${freePort()};${echo.port};127.0.0.1;TCP` }));
      assert(
        /WGEDGE_TCP: expected "deno", "ffi" or "auto", got "fast"/.test(res.failed.RELAY_1 ?? ""),
        res.failed.RELAY_1,
      );
      await bad.stop();
    } finally {
      Deno.env.delete("WGEDGE_TCP");
    }
  } finally {
    echo.close();
  }
});

Deno.test("tcp relay core: IPv6 listener and target, with the client's address in a PROXY v1 header", async () => {
  const target = Deno.listen({ hostname: "::1", port: 0 });
  const targetPort = (target.addr as Deno.NetAddr).port;
  const inPort = freePort();
  const svc = await start(`${inPort};${targetPort};[::1];TCP;bind=::1;proxy_protocol=v1`);
  try {
    assertEquals(engineOf(svc), "kernel");
    assertEquals(svc.status()[0].listen, `[::1]:${inPort}`);
    const client = await Deno.connect({ hostname: "::1", port: inPort });
    const clientPort = (client.localAddr as Deno.NetAddr).port;
    await client.write(new TextEncoder().encode("six"));
    await client.closeWrite();
    const server = await within(target.accept(), "the relay's dial");
    const got: number[] = [];
    const buf = new Uint8Array(256);
    for (let i = 0; i < 100; i++) {
      const n = await within(server.read(buf), "the header and bytes");
      if (n === null) break;
      got.push(...buf.subarray(0, n));
    }
    server.close();
    client.close();
    assertEquals(
      new TextDecoder().decode(new Uint8Array(got)),
      `PROXY TCP6 ::1 ::1 ${clientPort} ${inPort}\r\nsix`,
    );
  } finally {
    await svc.stop();
    target.close();
  }
});

Deno.test("tcp relay core: a dial that never completes is failed by the connect timeout on the injected clock", async () => {
  const libc = loadLibc();
  if ("reason" in libc) throw new Error(libc.reason);
  // A listener with a backlog of 0 that never accepts: once one connection waits in its queue, the kernel
  // drops further SYNs, so the relay's connect stays pending (SYN_SENT) until something gives up.
  const fd = libc.lib.socket(2, 1, 0);
  const name = new Uint8Array(16);
  name.set([2, 0, 0, 0, 127, 0, 0, 1]);
  assertEquals(libc.lib.bind(fd, name, 16), 0);
  assertEquals(libc.lib.listen(fd, 0), 0);
  const len = new Uint32Array([16]);
  libc.lib.getsockname(fd, name, len);
  const stuckPort = (name[2] << 8) | name[3];
  const fillers: Deno.Conn[] = [];
  const clock = new ManualClock();
  let svc: RelayService | undefined;
  try {
    // Fill the queue; a connect that does not complete at once means it is full.
    for (let i = 0; i < 4; i++) {
      const c = await Promise.race([
        Deno.connect({ hostname: "127.0.0.1", port: stuckPort }),
        new Promise<undefined>((r) => setTimeout(r, 200, undefined)),
      ]);
      if (!c) break;
      fillers.push(c);
    }
    svc = await start(`${freePort()};${stuckPort};127.0.0.1;TCP`, { clock }, { CONNECT_TIMEOUT: "5" });
    const port = Number(svc.status()[0].listen.split(":").pop());
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    await waitFor(() => svc!.status()[0].active === 1, "the relay to start dialling");
    assertEquals(svc.status()[0].failed, 0);
    clock.advance(4000);
    assertEquals(svc.status()[0].failed, 0, "not failed before the timeout");
    clock.advance(2000);
    assertEquals(svc.status()[0].failed, 1);
    assertEquals(svc.status()[0].active, 0);
    assertEquals(svc.status()[0].lastError, `connect 127.0.0.1:${stuckPort}: timed out`);
    assert(await ended(client, "the client to be closed after the timeout"), "client closed");
    client.close();
  } finally {
    await svc?.stop();
    for (const c of fillers) c.close();
    libc.lib.close(fd);
  }
  assertEquals(clock.pendingTimers, 0, "the sweep timer is cleared on stop");
});

Deno.test("tcp relay core: open and close are logged with the client's address and the bytes", async () => {
  const echo = tcpEcho();
  const records: { msg: string; [field: string]: unknown }[] = [];
  configureLogging({ level: "info", json: true, sink: { write: (line) => records.push(JSON.parse(line)) } });
  const svc = new RelayService();
  try {
    await svc.apply(parseRelayConfig({ RELAY_1: `${freePort()};${echo.port};127.0.0.1;TCP` }), true);
    assertEquals(engineOf(svc), "kernel");
    const port = Number(svc.status()[0].listen.split(":").pop());
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    const clientPort = (c.localAddr as Deno.NetAddr).port;
    await c.write(new TextEncoder().encode("hello"));
    const buf = new Uint8Array(16);
    assertEquals(await within(c.read(buf), "the echo"), 5);
    c.close();
    await waitFor(() => records.some((r) => r.msg === "close"), "the close line");
    const open = records.find((r) => r.msg === "open");
    const close = records.find((r) => r.msg === "close");
    assertEquals(open?.client, `127.0.0.1:${clientPort}`);
    assertEquals(open?.target, `127.0.0.1:${echo.port}`);
    assertEquals(close?.client, `127.0.0.1:${clientPort}`);
    assertEquals(close?.bytes_to_target, 5);
    assertEquals(close?.bytes_to_client, 5);
  } finally {
    configureLogging({ level: "error", json: false, sink: { write: (l) => console.error(l) } });
    await svc.stop();
    echo.close();
  }
});

Deno.test("tcp relay core: stop() closes the listener and every live connection", async () => {
  const echo = tcpEcho();
  const svc = await start(`${freePort()};${echo.port};127.0.0.1;TCP`);
  const port = Number(svc.status()[0].listen.split(":").pop());
  const clients = await Promise.all(
    Array.from({ length: 50 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  try {
    await waitFor(() => svc.status()[0].active === 50, "50 connections relaying");
    await svc.stop();
    const results = await Promise.all(clients.map((c) => ended(c, "the relay to close the client")));
    assertEquals(results.filter((x) => x).length, 50);
    let refused = false;
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    } catch (e) {
      refused = e instanceof Deno.errors.ConnectionRefused;
    }
    assert(refused, "the port is closed after stop()");
  } finally {
    for (const c of clients) c.close();
    echo.close();
  }
});

Deno.test("tcp relay core: without the FFI permission `wgedge relay` falls back to Deno's sockets; WGEDGE_TCP=ffi refuses", async () => {
  const echo = tcpEcho();
  const run = (inPort: number, env: Record<string, string>) =>
    new Deno.Command(Deno.execPath(), {
      // Everything but --allow-ffi.
      args: [
        "run",
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-write",
        "--allow-sys",
        "--allow-run",
        "--config",
        DENO_JSON,
        MAIN_TS,
        "relay",
        "-r",
        `${inPort};${echo.port};127.0.0.1;TCP`,
      ],
      env: { NO_COLOR: "1", WG_UAPI_DIR: "off", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  try {
    const inPort = freePort();
    const child = run(inPort, {});
    const err = collect(child.stderr), out = collect(child.stdout);
    try {
      await waitFor(() => err.text().includes("relay started"), `the relay to start\n${err.text()}`);
      const c = await Deno.connect({ hostname: "127.0.0.1", port: inPort });
      await c.write(new TextEncoder().encode("ping"));
      const buf = new Uint8Array(8);
      assertEquals(await within(c.read(buf), "the echo through the Deno path"), 4);
      c.close();
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await Promise.all([err.done, out.done]);
    }

    const refused = run(freePort(), { WGEDGE_TCP: "ffi" });
    const err2 = collect(refused.stderr), out2 = collect(refused.stdout);
    const status = await within(refused.status, "wgedge relay to exit", 60_000);
    await Promise.all([err2.done, out2.done]);
    assert(status.code !== 0, "exits with an error");
    assert(/WGEDGE_TCP=ffi: no FFI permission/.test(err2.text()), err2.text());
  } finally {
    echo.close();
  }
});

Deno.test("tcp relay core: a target socket gets keepalive once its connection lived a sweep; the sweep then stops", async () => {
  const libc = loadLibc();
  if ("reason" in libc) throw new Error(libc.reason);
  const echo = tcpEcho();
  const clock = new ManualClock();
  const dialed: { u: number }[] = [];
  const core = new TcpRelayCore({
    bind: new Uint8Array([127, 0, 0, 1]),
    port: 0,
    target: new Uint8Array([127, 0, 0, 1]),
    targetPort: echo.port,
    connectTimeoutMs: 10_000,
    keepalive: { idleSec: 42, intervalSec: 7, count: 3 },
    clock,
    counters: { aToB: 0, bToA: 0 },
    onDialed: (c) => dialed.push(c as unknown as { u: number }),
    onDialFailed: (message) => {
      throw new Error(`dial failed: ${message}`);
    },
    onAcceptError: (message) => {
      throw new Error(message);
    },
    wantClientAddress: false,
  });
  core.start();
  const value = new Int32Array(1);
  const size = new Uint32Array(1);
  const option = (fd: number, level: number, name: number) => {
    size[0] = 4;
    assertEquals(libc.lib.getsockopt(fd, level, name, value, size), 0);
    return value[0];
  };
  const open = async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: core.port });
    assertEquals(await ask(c, "x"), "x");
    return c;
  };
  const clients: Deno.Conn[] = [];
  try {
    clients.push(await open()); // opened at 0 ms
    clock.advance(500);
    clients.push(await open()); // opened at 500 ms
    await waitFor(() => dialed.length === 2, "both dials");
    const [first, second] = dialed.map((p) => p.u);
    assertEquals(option(first, SOL_SOCKET, SO_KEEPALIVE), 0, "no keepalive before the sweep");
    clock.advance(500); // the sweep at 1 s: only the first has lived a second
    assertEquals(option(first, SOL_SOCKET, SO_KEEPALIVE), 1);
    assertEquals(option(first, IPPROTO_TCP, TCP_KEEPIDLE), 42);
    assertEquals(option(first, IPPROTO_TCP, TCP_KEEPINTVL), 7);
    assertEquals(option(first, IPPROTO_TCP, TCP_KEEPCNT), 3);
    assertEquals(option(second, SOL_SOCKET, SO_KEEPALIVE), 0, "the younger one waits for the next sweep");
    assertEquals(clock.pendingTimers, 1, "the sweep goes on while a socket waits");
    clock.advance(1000);
    assertEquals(option(second, SOL_SOCKET, SO_KEEPALIVE), 1);
    assertEquals(clock.pendingTimers, 0, "nothing left to tune or to time out: no sweep");
    assertEquals(core.active, 2);
  } finally {
    for (const c of clients) c.close();
    await core.stop();
    echo.close();
  }
});
