/**
 * The rps API through Hono's app.request() with the caller identity injected as the binding, against a real
 * RpServer whose public listeners are loopback sockets: routes, status codes, ownership, range, expiry.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { createRpApi } from "../src/services/rp/api.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { createHostNet } from "../src/net/host.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import type { NetAddr } from "../src/net/types.ts";
import { freePort } from "./rp_loopback_net.ts";
import { waitFor } from "./helpers/interop.ts";

const host = createHostNet();

function env(ip: string) {
  const remoteAddr: NetAddr = { transport: "tcp", hostname: ip, port: 40000 };
  const localAddr: NetAddr = { transport: "tcp", hostname: "10.0.0.1", port: 80 };
  return { remoteAddr, localAddr };
}

function setup(opts: { allow?: [number, number][]; max?: number } = {}) {
  const clock = new ManualClock();
  const server = new RpServer({
    tunnelNet: host,
    hostNet: host,
    publicBind: "127.0.0.1",
    allowPorts: opts.allow?.map(([from, to]) => ({ from, to })),
    maxMappingsPerClient: opts.max,
    clock,
  });
  const app = createRpApi({ server, maxBodyBytes: 1024 });
  const call = async (ip: string, method: string, path: string, body?: unknown) => {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    const res = await app.request(path, init, env(ip));
    const json = await res.json();
    assertEquals(typeof json.success, "boolean", `${method} ${path} has success`);
    assertEquals(typeof json.message, "string", `${method} ${path} has message`);
    return { status: res.status, json };
  };
  return { clock, server, app, call };
}

function canListen(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("rp api: create, replace, list, delete; the public port opens and closes", async () => {
  const { server, call } = setup();
  const port = freePort();
  try {
    const body = {
      local_addr: "127.0.0.1:8080",
      remote_port: port,
      client_ip: "10.0.0.2",
      client_port: 12345,
    };
    const created = await call("10.0.0.2", "POST", "/api/v1/port-mappings", body);
    assertEquals(created.status, 200);
    assertEquals(created.json.success, true);
    assertStringIncludes(created.json.message, "created");
    assert(!canListen(port), "public port is held by rps");

    const replaced = await call("10.0.0.2", "POST", "/api/v1/port-mappings", { ...body, client_port: 23456 });
    assertEquals(replaced.status, 200);
    assertStringIncludes(replaced.json.message, "replaced");

    const mine = await call("10.0.0.2", "GET", "/api/v1/port-mappings");
    assertEquals(mine.status, 200);
    assertEquals(mine.json.mappings.length, 1);
    assertEquals(mine.json.mappings[0].client_port, 23456);
    assertEquals(mine.json.mappings[0].protocol, "tcp");
    const theirs = await call("10.0.0.3", "GET", "/api/v1/port-mappings");
    assertEquals(theirs.json.mappings.length, 0, "another client does not see my mappings");

    const del = await call("10.0.0.2", "DELETE", `/api/v1/port-mappings?port=${port}`);
    assertEquals(del.status, 200);
    assert(canListen(port), "public port released after delete");
    const again = await call("10.0.0.2", "DELETE", `/api/v1/port-mappings?port=${port}`);
    assertEquals(again.status, 404);
  } finally {
    await server.close();
  }
});

Deno.test("rp api: identity comes from the tunnel source, not the body", async () => {
  const { server, call } = setup();
  const port = freePort();
  try {
    const spoof = await call("10.0.0.3", "POST", "/api/v1/port-mappings", {
      local_addr: "127.0.0.1:80",
      remote_port: port,
      client_ip: "10.0.0.2",
      client_port: 1000,
    });
    assertEquals(spoof.status, 403);
    assertEquals(spoof.json.success, false);
    // Without client_ip the caller's own address is used.
    const ok = await call("10.0.0.3", "POST", "/api/v1/port-mappings", {
      remote_port: port,
      client_port: 1000,
    });
    assertEquals(ok.status, 200);
    assertEquals(ok.json.mapping.client_ip, "10.0.0.3");
    const hb = await call("10.0.0.3", "POST", "/api/v1/heartbeat", { client_ip: "10.0.0.9" });
    assertEquals(hb.status, 403);
    // IPv6 identities compare canonically.
    const v6 = await call("fd00::2", "POST", "/api/v1/heartbeat", { client_ip: "fd00:0:0::2" });
    assertEquals(v6.status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("rp api: ownership — another client gets 409 on create and 403 on delete", async () => {
  const { server, call } = setup();
  const port = freePort();
  try {
    assertEquals(
      (await call("10.0.0.2", "POST", "/api/v1/port-mappings", { remote_port: port, client_port: 5 })).status,
      200,
    );
    const taken = await call("10.0.0.3", "POST", "/api/v1/port-mappings", {
      remote_port: port,
      client_port: 6,
    });
    assertEquals(taken.status, 409);
    const del = await call("10.0.0.3", "DELETE", `/api/v1/port-mappings?port=${port}`);
    assertEquals(del.status, 403);
    // Same port, other protocol is a different mapping.
    const udp = await call("10.0.0.3", "POST", "/api/v1/port-mappings", {
      remote_port: port,
      client_port: 6,
      protocol: "udp",
    });
    assertEquals(udp.status, 200);
    assertEquals((await call("10.0.0.3", "DELETE", `/api/v1/port-mappings?port=${port}`)).status, 403);
    assertEquals(
      (await call("10.0.0.3", "DELETE", `/api/v1/port-mappings?port=${port}&protocol=udp`)).status,
      200,
    );
    // The operator (caller null) may delete any mapping.
    assertEquals((await server.unregister(null, port, "tcp")).status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("rp api: validation — range, bad JSON, protocol, ports, unknown route, body limit, max mappings", async () => {
  const a = freePort(), b = freePort();
  const { server, call } = setup({ allow: [[a, a], [b, b]], max: 1 });
  try {
    const outside = await call("10.0.0.2", "POST", "/api/v1/port-mappings", {
      remote_port: 1,
      client_port: 5,
    });
    assertEquals(outside.status, 403);
    assertStringIncludes(outside.json.message, "outside the allowed ports");
    assertEquals((await call("10.0.0.2", "POST", "/api/v1/port-mappings", "{nope")).status, 400);
    assertEquals((await call("10.0.0.2", "POST", "/api/v1/port-mappings", "[1,2]")).status, 400);
    assertEquals((await call("10.0.0.2", "POST", "/api/v1/port-mappings", "")).status, 400);
    for (
      const bad of [
        { remote_port: 0, client_port: 5 },
        { remote_port: 70000, client_port: 5 },
        { remote_port: "80", client_port: 5 },
        { remote_port: a, client_port: 1.5 },
        { remote_port: a },
        { remote_port: a, client_port: 5, protocol: "sctp" },
        { remote_port: a, client_port: 5, local_addr: 7 },
        { remote_port: a, client_port: 5, client_ip: "not-an-ip" },
      ]
    ) {
      const r = await call("10.0.0.2", "POST", "/api/v1/port-mappings", bad);
      assertEquals(r.status, 400, JSON.stringify(bad));
    }
    assertEquals((await call("10.0.0.2", "DELETE", "/api/v1/port-mappings")).status, 400);
    assertEquals((await call("10.0.0.2", "DELETE", "/api/v1/port-mappings?port=abc")).status, 400);
    assertEquals((await call("10.0.0.2", "DELETE", "/api/v1/port-mappings?port=0")).status, 400);
    assertEquals((await call("10.0.0.2", "GET", "/api/v1/nothing")).status, 404);
    assertEquals((await call("10.0.0.2", "GET", "/")).status, 404);
    const big = await call(
      "10.0.0.2",
      "POST",
      "/api/v1/port-mappings",
      JSON.stringify({ x: "y".repeat(5000) }),
    );
    assertEquals(big.status, 413);
    assertEquals(
      (await call("10.0.0.2", "POST", "/api/v1/port-mappings", { remote_port: a, client_port: 5 })).status,
      200,
    );
    const second = await call("10.0.0.2", "POST", "/api/v1/port-mappings", {
      remote_port: b,
      client_port: 5,
    });
    assertEquals(second.status, 400);
    assertStringIncludes(second.json.message, "max 1");
  } finally {
    await server.close();
  }
});

Deno.test("rp api: a port the host refuses gives 500 with the reason", async () => {
  const { server, call } = setup();
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (blocker.addr as Deno.NetAddr).port;
    const r = await call("10.0.0.2", "POST", "/api/v1/port-mappings", { remote_port: port, client_port: 5 });
    assertEquals(r.status, 500);
    assertStringIncludes(r.json.message, `port ${port}`);
    assertEquals(server.listAll().length, 0);
  } finally {
    blocker.close();
    await server.close();
  }
});

Deno.test("rp api: heartbeat returns the startup time, protocols and the caller's mappings; silent clients expire at the sweep", async () => {
  const { server, call, clock } = setup();
  const p1 = freePort(), p2 = freePort();
  try {
    const hb = await call("10.0.0.2", "POST", "/api/v1/heartbeat", {});
    assertEquals(hb.json, {
      success: true,
      message: "Heartbeat received",
      server_startup_time: server.startupTime,
      protocols: ["tcp", "udp"],
      mappings: [],
    });
    assertEquals((await call("10.0.0.2", "POST", "/api/v1/heartbeat")).status, 200, "empty body accepted");
    await call("10.0.0.2", "POST", "/api/v1/port-mappings", { remote_port: p1, client_port: 5 });
    await call("10.0.0.3", "POST", "/api/v1/port-mappings", { remote_port: p2, client_port: 5 });
    // Only the caller's own mappings.
    assertEquals((await call("10.0.0.2", "POST", "/api/v1/heartbeat", {})).json.mappings, [
      { protocol: "tcp", remote_port: p1, client_port: 5 },
    ]);
    // 10.0.0.3 keeps sending heartbeats every 20 s; 10.0.0.2 goes silent.
    for (let t = 0; t < 4; t++) {
      clock.advance(20_000);
      await call("10.0.0.3", "POST", "/api/v1/heartbeat", {});
    }
    const left = server.listAll();
    assertEquals(left.map((m) => m.client_ip), ["10.0.0.3"]);
    await waitFor(() => canListen(p1), "expired client's public listener to close", 100, 10);
    assert(!canListen(p2), "live client's public listener stays");
  } finally {
    await server.close();
  }
});

Deno.test("rp api: random and mutated bodies never crash and never give 500", async () => {
  const port = freePort();
  const { server, app } = setup({ allow: [[port, port]] });
  const rng = seededRandom(99);
  const byte = () => rng(new Uint8Array(1))[0];
  const seeds = [
    JSON.stringify({ local_addr: "127.0.0.1:80", remote_port: port, client_port: 5, protocol: "udp" }),
    JSON.stringify({ client_ip: "10.0.0.2" }),
    '{"remote_port": 1e400, "client_port": -0, "protocol": null}',
  ];
  const statuses = new Set<number>();
  try {
    for (let i = 0; i < 600; i++) {
      const base = new TextEncoder().encode(seeds[i % seeds.length]);
      const body = i % 4 === 0 ? rng(new Uint8Array(byte())) : base.slice();
      if (i % 4 !== 0) { for (let m = 0; m < 1 + (byte() % 4); m++) body[byte() % body.length] = byte(); }
      const path = i % 2 ? "/api/v1/port-mappings" : "/api/v1/heartbeat";
      const res = await app.request(path, { method: "POST", body: new Uint8Array(body) }, env("10.0.0.2"));
      statuses.add(res.status);
      assert(res.status !== 500, `500 for ${JSON.stringify(new TextDecoder().decode(body))}`);
      const json = await res.json();
      assertEquals(typeof json.success, "boolean");
    }
    assert(statuses.has(400), "some inputs were rejected as bad");
  } finally {
    await server.close();
  }
});
