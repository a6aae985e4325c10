/** startReverseProxyDemo(): the README's story works end to end in one process (curl + dashboard). */
import { assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { run } from "./helpers/interop.ts";
import { startReverseProxyDemo } from "../src/services/rp/demo.ts";
import { freePort } from "./rp_loopback_net.ts";

Deno.test({
  name: "rp demo: curl the printed URL reaches the hello service; the dashboard shows the mapping",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const demo = await startReverseProxyDemo({
      publicPort: freePort(),
      adminListen: `127.0.0.1:${freePort()}`,
    });
    try {
      assertStringIncludes(demo.lines.join("\n"), `curl ${demo.publicUrl}`);
      const page = await run(["curl", "-sS", "--max-time", "20", `${demo.publicUrl}from-the-internet`]);
      assertStringIncludes(page.stdout, "Hello from a service behind NAT");
      assertStringIncludes(page.stdout, "/from-the-internet");
      const mappings = await (await fetch(`${demo.dashboardUrl}api/v1/port-mappings`)).json();
      assertEquals(mappings.mappings.length, 1);
      assertEquals(mappings.mappings[0].client_ip, "10.98.0.2");
      const dash = await (await fetch(demo.dashboardUrl!)).text();
      assertStringIncludes(dash, "port_mappings");
    } finally {
      await demo.stop();
    }
  },
});
