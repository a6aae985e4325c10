/**
 * The admin API against browser-borne requests (src/services/admin/origin_guard.ts): without a token only
 * loopback Host values and the listen name are answered (DNS rebinding), and state-changing requests need a
 * JSON content type or X-Wgedge (cross-site requests). Through app.request, on the real operator route that
 * deletes rp port mappings.
 */
import { createAdminApp } from "../src/services/admin/app.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { RpServer } from "../src/services/rp/server.ts";
import { installOperatorRoutes } from "../src/services/rp/service.ts";
import { createHostNet } from "../src/net/host.ts";
import { ManualClock } from "../src/util/clock.ts";
import { configureLogging } from "../src/util/log.ts";
import { assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";

configureLogging({ level: "error" });
const TOKEN = "guard-test-token-0123456789abcdef";

function fixture(opts: { token?: string; listenHost?: string } = {}) {
  const host = createHostNet();
  const server = new RpServer({
    tunnelNet: host,
    hostNet: host,
    publicBind: "127.0.0.1",
    clock: new ManualClock(),
  });
  const registry = new ServiceRegistry();
  registry.addRoutes(installOperatorRoutes(server));
  const app = createAdminApp({ registry, version: "test", token: opts.token, listenHost: opts.listenHost });
  return { app, server };
}

Deno.test("admin guard: without a token, a foreign Host (DNS rebinding) gets 421 with the reason; loopback names pass", async () => {
  const { app, server } = fixture({ listenHost: "wgedge.lan" });
  try {
    for (const host of ["evil.example", "evil.example:8081", "127.0.0.1.evil.example", "10.0.0.5:8081", ""]) {
      for (const path of ["/api/v1/status", "/metrics", "/", "/api/v1/port-mappings"]) {
        const res = await app.request(`http://x${path}`, { headers: host ? { host } : {} });
        assertEquals(res.status, 421, `Host "${host}" ${path}`);
        const body = await res.json();
        assertStringIncludes(body.error, "DNS rebinding");
      }
    }
    // The rebinding page's DELETE is refused before it reaches the route.
    const del = await app.request("http://x/api/v1/port-mappings?port=1", {
      method: "DELETE",
      headers: { host: "evil.example:8081", "x-wgedge": "1" },
    });
    assertEquals(del.status, 421);
    for (
      const host of [
        "localhost",
        "localhost:8081",
        "127.0.0.1:8081",
        "[::1]:8081",
        "[::1]",
        "LOCALHOST:1",
        "wgedge.lan:8081",
      ]
    ) {
      assertEquals((await app.request("http://x/api/v1/status", { headers: { host } })).status, 200, host);
    }
    // Health checks need no particular name.
    assertEquals((await app.request("http://x/healthz", { headers: { host: "evil.example" } })).status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("admin guard: with a token any Host may authenticate (the token is the guard)", async () => {
  const { app, server } = fixture({ token: TOKEN });
  try {
    const headers = { host: "wgedge.example.net:8081" };
    assertEquals((await app.request("http://x/api/v1/status", { headers })).status, 401);
    const ok = await app.request("http://x/api/v1/status", {
      headers: { ...headers, authorization: `Bearer ${TOKEN}` },
    });
    assertEquals(ok.status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("admin guard: a state-changing request needs a JSON content type or X-Wgedge (403 with the reason)", async () => {
  for (const token of [undefined, TOKEN]) {
    const { app, server } = fixture({ token });
    const auth: Record<string, string> = token ? { authorization: `Basic ${btoa(`admin:${token}`)}` } : {};
    try {
      const port = freePort();
      const url = `http://localhost/api/v1/port-mappings?port=${port}`;
      // What a cross-site form or a "simple" fetch can send (Basic credentials a browser cached included).
      const simple: Record<string, string>[] = [
        {},
        { "content-type": "application/x-www-form-urlencoded" },
        { "content-type": "text/plain" },
      ];
      for (const headers of simple) {
        for (const method of ["DELETE", "POST", "PUT", "PATCH"]) {
          const res = await app.request(url, { method, headers: { ...auth, ...headers } });
          assertEquals(res.status, 403, `${method} ${JSON.stringify(headers)} token=${!!token}`);
          assertStringIncludes((await res.json()).error, "X-Wgedge: 1");
        }
      }
      // A script or curl says it means it: the route answers (no such mapping here).
      const marked = await app.request(url, { method: "DELETE", headers: { ...auth, "x-wgedge": "1" } });
      assertEquals(marked.status, 404, await marked.text());
      const json = await app.request(url, {
        method: "DELETE",
        headers: { ...auth, "content-type": "application/json; charset=utf-8" },
      });
      assertEquals(json.status, 404);
      // Reading stays as it was.
      assertEquals(
        (await app.request("http://localhost/api/v1/port-mappings", { headers: auth })).status,
        200,
      );
    } finally {
      await server.close();
    }
  }
});

Deno.test("admin guard: the 421 reason names each accepted host once (a listen on 127.0.0.1 is not listed twice)", async () => {
  for (
    const [listenHost, names] of [["127.0.0.1", "localhost, 127.0.0.1, [::1]"], [
      "wgedge.lan",
      "localhost, 127.0.0.1, [::1], wgedge.lan",
    ]]
  ) {
    const { app, server } = fixture({ listenHost });
    try {
      const res = await app.request("http://x/api/v1/status", { headers: { host: "evil.example" } });
      assertEquals(res.status, 421);
      assertStringIncludes(await res.text(), `only ${names} (any port)`);
    } finally {
      await server.close();
    }
  }
});
